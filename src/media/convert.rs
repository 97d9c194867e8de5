//! Converting an uploaded recording into a prompt: WAV (any common rate, 8/16/24/32-bit integer
//! or 32-bit float, any channel count; A-law/µ-law WAVs through symphonia), MP3 and Ogg/Vorbis,
//! mixed to mono, resampled to 8 kHz with an anti-aliasing (FFT) resampler and quantised to
//! 16 bits: what [`super::prompts::PromptSet`] and `MediaEngine::set_prompt` take.
//!
//! Sans-I/O: pure functions on bytes. Uploads are hostile: any input gives a [`ConvertError`]
//! whose text a person understands, never a panic (the third-party decoders run inside
//! `catch_unwind` as well), and decoding stops as soon as the audio is longer than the limit,
//! so a small file that expands to hours cannot fill the memory.

use std::io::Cursor;

use rubato::{FftFixedIn, Resampler};

/// The rate prompts are played at.
pub const RATE: u32 = 8000;
/// The largest upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;
/// The lowest and highest source rates accepted.
const MIN_SOURCE_RATE: u32 = 4000;
const MAX_SOURCE_RATE: u32 = 384_000;
/// A sample at or above this magnitude (of full scale) counts as clipped: −0.09 dBFS.
const NEAR_FULL_SCALE: f32 = 0.99;

/// What an upload must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest recording, in seconds.
    pub max_seconds: f64,
    /// Shortest recording, in seconds.
    pub min_seconds: f64,
    /// Largest file, in bytes.
    pub max_bytes: usize,
    /// Largest share of samples at or near full scale (after mixing to mono), 0.005 = 0.5 %.
    pub max_clipped: f64,
    /// A recording whose RMS level is below this (dBFS) is silent.
    pub min_level_dbfs: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_seconds: 60.0,
            min_seconds: 0.2,
            max_bytes: MAX_UPLOAD_BYTES,
            max_clipped: 0.005,
            min_level_dbfs: -50.0,
        }
    }
}

/// The container an upload was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Wav,
    Mp3,
    Ogg,
}

impl std::fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceFormat::Wav => "WAV",
            SourceFormat::Mp3 => "MP3",
            SourceFormat::Ogg => "Ogg/Vorbis",
        })
    }
}

/// Why an upload was refused. The texts are shown to the person who uploaded it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "the file is {:.1} MB; the largest accepted is {:.0} MB",
        mb(*.bytes),
        mb(*.max)
    )]
    TooLarge { bytes: usize, max: usize },
    #[error("this is not an audio file that can be read: send a WAV, MP3 or Ogg/Vorbis file")]
    NotAudio,
    #[error("the {format} file could not be decoded ({reason}); export it again and retry")]
    Damaged {
        format: SourceFormat,
        reason: String,
    },
    #[error("the {format} file is not supported: {reason}")]
    Unsupported {
        format: SourceFormat,
        reason: String,
    },
    #[error("the recording is longer than {max:.0} s; shorten it")]
    TooLong { max: f64 },
    #[error("the recording lasts only {seconds:.2} s; a prompt must last at least {min} s")]
    TooShort { seconds: f64, min: f64 },
    #[error(
        "the recording is clipped: {:.1} % of its samples are at full scale (at most {:.1} % \
         is accepted); record it again at a lower level",
        .share * 100.0,
        .max * 100.0
    )]
    Clipped { share: f64, max: f64 },
    #[error(
        "the recording is silent: its level is {}, below {min:.0} dBFS; check the microphone",
        level(*.dbfs)
    )]
    Silent { dbfs: f64, min: f64 },
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn level(dbfs: f64) -> String {
    if dbfs.is_finite() {
        format!("{dbfs:.0} dBFS")
    } else {
        "no sound at all".into()
    }
}

/// An accepted upload: 8 kHz mono 16-bit PCM and what it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub pcm: Vec<i16>,
    pub format: SourceFormat,
    pub source_rate: u32,
    pub source_channels: u16,
}

impl Converted {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.pcm.len() as f64 / RATE as f64
    }

    /// The prompt as an 8 kHz mono 16-bit WAV file.
    pub fn wav(&self) -> Vec<u8> {
        encode_wav(&self.pcm)
    }
}

/// Converts an upload with the default [`Limits`].
pub fn convert(bytes: &[u8]) -> Result<Converted, ConvertError> {
    convert_with(bytes, &Limits::default())
}

/// Converts an upload: sniffs its format from its first bytes (not from a name or a content
/// type), decodes it, checks it against `limits` and resamples it to 8 kHz mono 16-bit.
pub fn convert_with(bytes: &[u8], limits: &Limits) -> Result<Converted, ConvertError> {
    if bytes.is_empty() {
        return Err(ConvertError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(ConvertError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let format = sniff(bytes).ok_or(ConvertError::NotAudio)?;
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode(format, bytes, limits)
    }))
    .unwrap_or_else(|panic| {
        Err(ConvertError::Damaged {
            format,
            reason: format!("the decoder failed: {}", crate::panics::message(&*panic)),
        })
    })?;
    check(&decoded, limits)?;
    let resampled =
        resample(&decoded.mono, decoded.rate).map_err(|reason| ConvertError::Unsupported {
            format,
            reason: format!("cannot resample from {} Hz: {reason}", decoded.rate),
        })?;
    let pcm = resampled
        .iter()
        .map(|&x| (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(Converted {
        pcm,
        format,
        source_rate: decoded.rate,
        source_channels: decoded.channels,
    })
}

/// The format from the file's first bytes.
fn sniff(b: &[u8]) -> Option<SourceFormat> {
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WAVE" {
        return Some(SourceFormat::Wav);
    }
    if b.starts_with(b"OggS") {
        return Some(SourceFormat::Ogg);
    }
    if b.starts_with(b"ID3") {
        return Some(SourceFormat::Mp3);
    }
    // An MPEG audio frame header: 11 sync bits, a version other than "reserved", layer III.
    match b {
        [0xFF, b1, ..]
            if b1 & 0xE0 == 0xE0 && (b1 >> 3) & 0b11 != 0b01 && (b1 >> 1) & 0b11 == 0b01 =>
        {
            Some(SourceFormat::Mp3)
        }
        _ => None,
    }
}

/// Decoded audio, already mixed to mono, at its own rate.
#[derive(Debug)]
struct Decoded {
    mono: Vec<f32>,
    rate: u32,
    channels: u16,
}

/// Appends interleaved frames to a mono mix, refusing past the length limit.
struct Mixer {
    mono: Vec<f32>,
    rate: u32,
    channels: usize,
    max_frames: usize,
    max_seconds: f64,
}

impl Mixer {
    fn new(rate: u32, channels: usize, limits: &Limits) -> Mixer {
        let max_frames = (limits.max_seconds.max(0.0) * rate as f64).ceil() as usize;
        Mixer {
            mono: Vec::new(),
            rate,
            channels: channels.max(1),
            max_frames,
            max_seconds: limits.max_seconds,
        }
    }

    fn push_interleaved(&mut self, samples: &[f32]) -> Result<(), ConvertError> {
        let scale = 1.0 / self.channels as f32;
        for frame in samples.chunks_exact(self.channels) {
            self.mono.push(frame.iter().sum::<f32>() * scale);
        }
        if self.mono.len() > self.max_frames {
            return Err(ConvertError::TooLong {
                max: self.max_seconds,
            });
        }
        Ok(())
    }

    fn finish(self) -> Decoded {
        Decoded {
            mono: self.mono,
            rate: self.rate,
            channels: u16::try_from(self.channels).unwrap_or(u16::MAX),
        }
    }
}

fn check_rate(format: SourceFormat, rate: u32) -> Result<(), ConvertError> {
    if (MIN_SOURCE_RATE..=MAX_SOURCE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(ConvertError::Unsupported {
            format,
            reason: format!(
                "a sample rate of {rate} Hz (accepted: {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz)"
            ),
        })
    }
}

fn decode(format: SourceFormat, bytes: &[u8], limits: &Limits) -> Result<Decoded, ConvertError> {
    match format {
        SourceFormat::Wav => match decode_wav(bytes, limits) {
            // What hound does not read (A-law, µ-law, 64-bit float…) symphonia may.
            Err(ConvertError::Unsupported { reason, .. }) => {
                decode_symphonia(format, bytes, limits).map_err(|e| match e {
                    ConvertError::Damaged { .. } | ConvertError::Unsupported { .. } => {
                        ConvertError::Unsupported { format, reason }
                    }
                    other => other,
                })
            }
            other => other,
        },
        SourceFormat::Mp3 | SourceFormat::Ogg => decode_symphonia(format, bytes, limits),
    }
}

fn decode_wav(bytes: &[u8], limits: &Limits) -> Result<Decoded, ConvertError> {
    let format = SourceFormat::Wav;
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| match e {
        hound::Error::Unsupported => ConvertError::Unsupported {
            format,
            reason: "this kind of WAV encoding".into(),
        },
        other => ConvertError::Damaged {
            format,
            reason: other.to_string(),
        },
    })?;
    let spec = reader.spec();
    check_rate(format, spec.sample_rate)?;
    if spec.channels == 0 {
        return Err(ConvertError::Damaged {
            format,
            reason: "the header says it has no channels".into(),
        });
    }
    // The header's length, when it is believable, refuses a long file before decoding it.
    if f64::from(reader.duration()) > limits.max_seconds * f64::from(spec.sample_rate) + 1.0 {
        return Err(ConvertError::TooLong {
            max: limits.max_seconds,
        });
    }
    let mut mixer = Mixer::new(spec.sample_rate, spec.channels.into(), limits);
    // Mixed a block of whole frames at a time.
    let block = usize::from(spec.channels) * 1024;
    let mut chunk: Vec<f32> = Vec::with_capacity(block);
    // A file cut short (a recorder that never wrote the final length) keeps what was read.
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in reader.into_samples::<f32>().map_while(Result::ok) {
                chunk.push(if s.is_finite() { s } else { 0.0 });
                if chunk.len() >= block {
                    mixer.push_interleaved(&chunk)?;
                    chunk.clear();
                }
            }
        }
        (hound::SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.into_samples::<i32>().map_while(Result::ok) {
                chunk.push((f64::from(s) * scale) as f32);
                if chunk.len() >= block {
                    mixer.push_interleaved(&chunk)?;
                    chunk.clear();
                }
            }
        }
        (_, bits) => {
            return Err(ConvertError::Unsupported {
                format,
                reason: format!("{bits}-bit {:?} samples", spec.sample_format),
            })
        }
    }
    // Whole frames only: a cut-off last frame is dropped by `chunks_exact`.
    mixer.push_interleaved(&chunk)?;
    Ok(mixer.finish())
}

fn decode_symphonia(
    format: SourceFormat,
    bytes: &[u8],
    limits: &Limits,
) -> Result<Decoded, ConvertError> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let damaged = |reason: String| ConvertError::Damaged { format, reason };
    let mut hint = Hint::new();
    hint.with_extension(match format {
        SourceFormat::Wav => "wav",
        SourceFormat::Mp3 => "mp3",
        SourceFormat::Ogg => "ogg",
    });
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| damaged(e.to_string()))?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| damaged("it holds no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| ConvertError::Unsupported {
            format,
            reason: e.to_string(),
        })?;
    let mut mixer: Option<Mixer> = None;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    let mut last_error = String::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(Error::ResetRequired) => break,
            // Damage after some audio ends the file there; before any, it is an error.
            Err(e) if mixer.as_ref().is_some_and(|m| !m.mono.is_empty()) => {
                last_error = e.to_string();
                break;
            }
            Err(e) => return Err(damaged(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(a) => a,
            Err(Error::DecodeError(e)) => {
                bad_packets += 1;
                last_error = e.to_string();
                continue;
            }
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(damaged(e.to_string())),
        };
        let spec = *audio.spec();
        let channels = spec.channels.count();
        if audio.frames() == 0 {
            continue;
        }
        let m = match &mut mixer {
            Some(m) => {
                if m.rate != spec.rate || m.channels != channels.max(1) {
                    return Err(ConvertError::Unsupported {
                        format,
                        reason: "the sample rate or channel count changes within the file".into(),
                    });
                }
                m
            }
            None => {
                check_rate(format, spec.rate)?;
                if channels == 0 {
                    return Err(damaged("a packet has no channels".into()));
                }
                mixer.insert(Mixer::new(spec.rate, channels, limits))
            }
        };
        let needed = audio.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            _ => buffer.insert(SampleBuffer::<f32>::new(needed, spec)),
        };
        buf.copy_interleaved_ref(audio);
        m.push_interleaved(buf.samples())?;
    }
    match mixer {
        Some(m) if !m.mono.is_empty() => Ok(m.finish()),
        _ if bad_packets > 0 || !last_error.is_empty() => Err(damaged(last_error)),
        _ => Err(damaged("it holds no audio".into())),
    }
}

/// Length, clipping and level, on the mono mix at the source rate.
fn check(d: &Decoded, limits: &Limits) -> Result<(), ConvertError> {
    let seconds = d.mono.len() as f64 / f64::from(d.rate.max(1));
    if seconds > limits.max_seconds {
        return Err(ConvertError::TooLong {
            max: limits.max_seconds,
        });
    }
    if seconds < limits.min_seconds {
        return Err(ConvertError::TooShort {
            seconds,
            min: limits.min_seconds,
        });
    }
    let n = d.mono.len().max(1) as f64;
    let clipped = d.mono.iter().filter(|x| x.abs() >= NEAR_FULL_SCALE).count() as f64;
    if clipped / n > limits.max_clipped {
        return Err(ConvertError::Clipped {
            share: clipped / n,
            max: limits.max_clipped,
        });
    }
    let energy: f64 = d.mono.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let dbfs = 10.0 * (energy / n).log10();
    if dbfs.is_nan() || dbfs < limits.min_level_dbfs {
        return Err(ConvertError::Silent {
            dbfs,
            min: limits.min_level_dbfs,
        });
    }
    Ok(())
}

/// Resamples mono audio to [`RATE`] with rubato's FFT resampler (its anti-aliasing filter
/// removes what lies above 4 kHz before decimating), with the resampler's delay removed so
/// the output lines up with the input.
fn resample(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == RATE {
        return Ok(input.to_vec());
    }
    const CHUNK: usize = 1024;
    let mut r = FftFixedIn::<f32>::new(rate as usize, RATE as usize, CHUNK, 2, 1)
        .map_err(|e| e.to_string())?;
    let expected = (input.len() as u64 * u64::from(RATE)).div_ceil(u64::from(rate)) as usize;
    let delay = r.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(expected + delay + CHUNK);
    let mut rest = input;
    loop {
        let need = r.input_frames_next();
        if rest.len() < need {
            break;
        }
        let (now, later) = rest.split_at(need);
        let chunk = r.process(&[now], None).map_err(|e| e.to_string())?;
        out.extend(chunk.iter().flatten());
        rest = later;
    }
    if !rest.is_empty() {
        let chunk = r
            .process_partial(Some(&[rest]), None)
            .map_err(|e| e.to_string())?;
        out.extend(chunk.iter().flatten());
    }
    // Flush the filter's tail; each call gives at least a few frames, a bounded number suffices.
    let mut flushes = 0;
    while out.len() < delay + expected && flushes < 64 {
        let chunk = r
            .process_partial(None::<&[&[f32]]>, None)
            .map_err(|e| e.to_string())?;
        out.extend(chunk.iter().flatten());
        flushes += 1;
    }
    Ok(out
        .get(delay..)
        .unwrap_or_default()
        .iter()
        .take(expected)
        .copied()
        .collect())
}

/// An 8 kHz mono 16-bit PCM WAV file of `pcm`.
pub fn encode_wav(pcm: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(pcm.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + pcm.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// The samples of an 8 kHz mono 16-bit WAV (what the store keeps); anything else is an error.
pub fn decode_wav_8k(bytes: &[u8]) -> Result<Vec<i16>, String> {
    let r = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let s = r.spec();
    if s.sample_rate != RATE
        || s.channels != 1
        || s.bits_per_sample != 16
        || s.sample_format != hound::SampleFormat::Int
    {
        return Err(format!(
            "{} Hz, {} channel(s), {} bits: not 8 kHz mono 16-bit",
            s.sample_rate, s.channels, s.bits_per_sample
        ));
    }
    r.into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MP3: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audio/tone-1k-44k1-stereo.mp3"
    ));
    const OGG: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audio/tone-1k-48k-mono.ogg"
    ));

    /// `seconds` of sines (frequency, amplitude of full scale) summed, as a WAV of the spec.
    fn wav(spec: hound::WavSpec, seconds: f64, tones: &[(f64, f64)]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        let frames = (seconds * spec.sample_rate as f64) as usize;
        for i in 0..frames {
            let t = i as f64 / spec.sample_rate as f64;
            let x: f64 = tones
                .iter()
                .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                .sum::<f64>()
                .clamp(-1.0, 1.0);
            for _ in 0..spec.channels {
                match spec.sample_format {
                    hound::SampleFormat::Float => w.write_sample(x as f32).unwrap(),
                    hound::SampleFormat::Int => {
                        let full = ((1i64 << (spec.bits_per_sample - 1)) - 1) as f64;
                        w.write_sample((x * full).round() as i32).unwrap()
                    }
                }
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    /// Power of `freq` in `pcm` (8 kHz) relative to a full-scale sine, in dB (Goertzel).
    fn tone_db(pcm: &[i16], freq: f64) -> f64 {
        let n = pcm.len() as f64;
        let k = (0.5 + n * freq / RATE as f64).floor();
        let w = 2.0 * std::f64::consts::PI * k / n;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s = f64::from(x) / 32768.0 + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        // A full-scale sine gives (n/2)^2.
        10.0 * (power / (n / 2.0).powi(2)).log10()
    }

    fn rms_db(pcm: &[i16]) -> f64 {
        let e: f64 = pcm.iter().map(|&x| (f64::from(x) / 32768.0).powi(2)).sum();
        10.0 * (e / pcm.len() as f64).log10()
    }

    #[test]
    fn wav_44k1_stereo_24_bit_becomes_8k_mono_16_bit() {
        let bytes = wav(spec(44100, 2, 24, false), 1.5, &[(1000.0, 0.5)]);
        let c = convert(&bytes).unwrap();
        assert_eq!(c.format, SourceFormat::Wav);
        assert_eq!((c.source_rate, c.source_channels), (44100, 2));
        assert!((c.pcm.len() as i64 - 12000).abs() <= 1, "{}", c.pcm.len());
        assert!(tone_db(&c.pcm[800..11200], 1000.0) > -7.0);
        let back = decode_wav_8k(&c.wav()).unwrap();
        assert_eq!(back, c.pcm);
    }

    #[test]
    fn wav_48k_float_8_bit_16_bit_32_bit_and_8k_are_read() {
        for (s, amp) in [
            (spec(48000, 1, 32, true), 0.5),
            (spec(22050, 1, 8, false), 0.5),
            (spec(16000, 2, 16, false), 0.5),
            (spec(96000, 1, 32, false), 0.5),
            (spec(11025, 3, 16, false), 0.5),
            (spec(8000, 1, 16, false), 0.5),
        ] {
            let c = convert(&wav(s, 1.0, &[(1000.0, amp)])).unwrap();
            assert!((c.pcm.len() as i64 - 8000).abs() <= 1, "{s:?}");
            let db = tone_db(&c.pcm[400..7600], 1000.0);
            assert!(db > -7.5 && db < -5.0, "{s:?}: {db}");
        }
    }

    #[test]
    fn a_1khz_tone_from_48k_keeps_its_frequency_and_a_5khz_tone_does_not_alias() {
        let c = convert(&wav(spec(48000, 1, 16, false), 2.0, &[(1000.0, 0.5)])).unwrap();
        let body = &c.pcm[800..15200];
        let at_1k = tone_db(body, 1000.0);
        assert!(at_1k > -6.5, "1 kHz at {at_1k} dB");
        for f in [500.0, 900.0, 1100.0, 2000.0, 3000.0] {
            assert!(tone_db(body, f) < at_1k - 30.0, "{f} Hz");
        }
        // 5 kHz is above the 4 kHz Nyquist frequency of 8 kHz: sample dropping would fold it
        // to 3 kHz; the anti-aliasing filter removes it.
        let c = convert(&wav(spec(48000, 1, 16, false), 2.0, &[(5000.0, 0.5)])).unwrap();
        let body = &c.pcm[800..15200];
        // The source is at -9 dBFS RMS; what is left of it is more than 30 dB below.
        assert!(rms_db(body) < -9.0 - 30.0, "{}", rms_db(body));
        assert!(
            tone_db(body, 3000.0) < -6.0 - 30.0,
            "{}",
            tone_db(body, 3000.0)
        );
    }

    #[test]
    fn mp3_and_ogg_vorbis_are_decoded() {
        for (bytes, format, rate, channels) in [
            (MP3, SourceFormat::Mp3, 44100, 2),
            (OGG, SourceFormat::Ogg, 48000, 1),
        ] {
            let c = convert(bytes).unwrap();
            assert_eq!(c.format, format);
            assert_eq!((c.source_rate, c.source_channels), (rate, channels));
            assert!(c.seconds() > 0.95 && c.seconds() < 1.2, "{}", c.seconds());
            let db = tone_db(&c.pcm[1600..6400], 1000.0);
            assert!(db > -8.0, "{format}: {db}");
        }
    }

    #[test]
    fn refusals_say_why() {
        let s = spec(16000, 1, 16, false);
        let err = |b: &[u8]| convert(b).unwrap_err();
        assert_eq!(err(b""), ConvertError::Empty);
        assert_eq!(err(b"hello, this is a text file\n"), ConvertError::NotAudio);
        assert!(matches!(
            err(&wav(s, 70.0, &[(440.0, 0.3)])),
            ConvertError::TooLong { .. }
        ));
        assert!(matches!(
            err(&wav(s, 0.1, &[(440.0, 0.3)])),
            ConvertError::TooShort { .. }
        ));
        let clipped = err(&wav(s, 1.0, &[(440.0, 3.0)]));
        assert!(
            matches!(clipped, ConvertError::Clipped { .. }),
            "{clipped:?}"
        );
        assert!(clipped.to_string().contains("clipped"));
        let silent = err(&wav(s, 1.0, &[]));
        assert!(silent.to_string().contains("no sound at all"), "{silent}");
        let quiet = err(&wav(s, 1.0, &[(440.0, 0.002)]));
        assert!(matches!(quiet, ConvertError::Silent { .. }), "{quiet:?}");
        let big = vec![0u8; MAX_UPLOAD_BYTES + 1];
        assert!(err(&big).to_string().contains("20 MB"));
        let odd_rate = wav(spec(1000, 1, 16, false), 1.0, &[(100.0, 0.3)]);
        assert!(matches!(err(&odd_rate), ConvertError::Unsupported { .. }));
        // A long MP3 is refused by a small limit while it is decoded.
        let short = Limits {
            max_seconds: 0.5,
            ..Limits::default()
        };
        assert_eq!(
            convert_with(MP3, &short),
            Err(ConvertError::TooLong { max: 0.5 })
        );
    }

    #[test]
    fn damaged_and_random_bytes_give_errors_not_panics() {
        let good = [
            wav(spec(44100, 2, 24, false), 0.3, &[(1000.0, 0.5)]),
            wav(spec(48000, 1, 32, true), 0.3, &[(1000.0, 0.5)]),
            MP3.to_vec(),
            OGG.to_vec(),
        ];
        // Truncations at every length up to the first few kB, then coarser.
        for g in &good {
            let mut cut = 0;
            while cut < g.len() {
                let _ = convert(&g[..cut]);
                cut += if cut < 256 { 1 } else { 1021 };
            }
        }
        // Random bytes, and random bytes behind each format's magic.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let prefixes: [&[u8]; 5] = [
            b"",
            b"RIFF\x24\x00\x00\x00WAVEfmt ",
            b"OggS",
            b"ID3",
            b"\xFF\xFB",
        ];
        for round in 0..400 {
            let len = (next() % 4096) as usize;
            let mut b: Vec<u8> = prefixes[round % prefixes.len()].to_vec();
            b.extend((0..len).map(|_| next() as u8));
            let _ = convert(&b);
        }
        // Corrupted bytes in the middle of real files.
        for g in &good {
            for _ in 0..40 {
                let mut b = g.clone();
                for _ in 0..8 {
                    let i = (next() as usize) % b.len();
                    b[i] = next() as u8;
                }
                let _ = convert(&b);
            }
        }
    }

    #[test]
    fn encode_wav_writes_8k_mono_16_bit() {
        let pcm: Vec<i16> = (0..800).map(|i| (i * 37 % 2000) as i16 - 1000).collect();
        let bytes = encode_wav(&pcm);
        assert_eq!(bytes.len(), 44 + 1600);
        let r = hound::WavReader::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(r.spec(), spec(8000, 1, 16, false));
        assert_eq!(decode_wav_8k(&bytes).unwrap(), pcm);
        assert!(decode_wav_8k(&wav(spec(16000, 1, 16, false), 0.1, &[])).is_err());
    }
}
