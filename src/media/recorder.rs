//! WAV recorder (8 kHz mono 16-bit, `hound`): written as audio arrives through a buffer that
//! holds 0.9 s of audio, so the data reaches the file at least that often and a `kill -9` loses
//! at most one second (with the 80 ms the media thread stages). The header's sizes are written
//! only when the recording finishes: rewriting them every second cost three syscalls per call
//! per second, and the sizes of a file cut short are known anyway. A recording in progress
//! lives at `NAME.part` and is renamed to `NAME` when finished; at start-up
//! [`recover_unfinished`] patches the header of any `.part` left behind from its length and
//! renames it.
//!
//! Finishing syncs the file before renaming it and the directory after, so a recording reported
//! finished (and the caller then told their ticket number) survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec, WavWriter};

pub const SAMPLE_RATE: u32 = 8000;
/// Bytes of audio buffered before they are written to the file: 0.9 s.
const BUFFER_BYTES: usize = SAMPLE_RATE as usize * 2 * 9 / 10;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("recording {path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("recording {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn spec() -> WavSpec {
    WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    }
}

/// `x.wav` → `x.wav.part`.
pub fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

pub struct Recorder {
    writer: WavWriter<BufWriter<File>>,
    part: PathBuf,
    path: PathBuf,
    samples: u64,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder, RecordError> {
        let part = part_path(path);
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir).map_err(|source| RecordError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        let file = File::create(&part).map_err(|source| RecordError::Io {
            path: part.clone(),
            source,
        })?;
        let writer = WavWriter::new(BufWriter::with_capacity(BUFFER_BYTES, file), spec()).map_err(
            |source| RecordError::Wav {
                path: part.clone(),
                source,
            },
        )?;
        Ok(Recorder {
            writer,
            part,
            path: path.to_owned(),
            samples: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn write(&mut self, pcm: &[i16]) -> Result<(), RecordError> {
        let mut w = self.writer.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            w.write_sample(s);
        }
        w.flush().map_err(|source| RecordError::Wav {
            path: self.part.clone(),
            source,
        })?;
        // Into the 0.9 s buffer, which writes itself to the file when full.
        self.samples += pcm.len() as u64;
        Ok(())
    }

    /// Finalise. With `keep = Some((start, end))` (sample indices), only that range is kept in
    /// the saved file (silence trimmed); otherwise everything.
    pub fn finish(self, keep: Option<(u64, u64)>) -> Result<PathBuf, RecordError> {
        let Recorder {
            writer,
            part,
            path,
            samples,
            ..
        } = self;
        writer.finalize().map_err(|source| RecordError::Wav {
            path: part.clone(),
            source,
        })?;
        let io_err = |p: &Path| {
            let p = p.to_owned();
            move |source| RecordError::Io { path: p, source }
        };
        match keep {
            Some((start, end)) if start > 0 || end < samples => {
                let end = end.min(samples);
                let start = start.min(end);
                let mut reader =
                    hound::WavReader::open(&part).map_err(|source| RecordError::Wav {
                        path: part.clone(),
                        source,
                    })?;
                let tmp = part_path(&part);
                let mut out =
                    WavWriter::create(&tmp, spec()).map_err(|source| RecordError::Wav {
                        path: tmp.clone(),
                        source,
                    })?;
                for s in reader
                    .samples::<i16>()
                    .skip(start as usize)
                    .take((end - start) as usize)
                {
                    let s = s.map_err(|source| RecordError::Wav {
                        path: part.clone(),
                        source,
                    })?;
                    out.write_sample(s).map_err(|source| RecordError::Wav {
                        path: tmp.clone(),
                        source,
                    })?;
                }
                out.finalize().map_err(|source| RecordError::Wav {
                    path: tmp.clone(),
                    source,
                })?;
                sync_data(&tmp).map_err(io_err(&tmp))?;
                fs::rename(&tmp, &path).map_err(io_err(&path))?;
                fs::remove_file(&part).map_err(io_err(&part))?;
            }
            _ => {
                sync_data(&part).map_err(io_err(&part))?;
                fs::rename(&part, &path).map_err(io_err(&path))?;
            }
        }
        crate::durable::fsync_dir_of(&path).map_err(io_err(&path))?;
        Ok(path)
    }
}

fn sync_data(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// A recording found unfinished at start-up and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRecording {
    pub path: PathBuf,
    pub samples: u64,
    pub duration_ms: u64,
}

/// Patch the RIFF and data sizes of a WAV whose header was not finalised, to match the bytes
/// actually on disk (cut to whole samples). Returns the number of 16-bit mono samples.
pub fn patch_wav_header(path: &Path) -> io::Result<u64> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let file_len = f.metadata()?.len();
    let mut head = [0u8; 12];
    f.read_exact(&mut head)?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a RIFF/WAVE file",
        ));
    }
    let mut pos = 12u64;
    let mut block_align = 2u64;
    loop {
        if pos + 8 > file_len {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no data chunk"));
        }
        f.seek(SeekFrom::Start(pos))?;
        let mut ch = [0u8; 8];
        f.read_exact(&mut ch)?;
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as u64;
        if &ch[0..4] == b"fmt " && size >= 16 {
            let mut fmt = [0u8; 16];
            f.read_exact(&mut fmt)?;
            block_align = (u16::from_le_bytes([fmt[12], fmt[13]]) as u64).max(1);
        }
        if &ch[0..4] == b"data" {
            let data_off = pos + 8;
            let data_len = (file_len - data_off) / block_align * block_align;
            let data_len32 = u32::try_from(data_len).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "data larger than a WAV can hold",
                )
            })?;
            f.set_len(data_off + data_len)?;
            f.seek(SeekFrom::Start(pos + 4))?;
            f.write_all(&data_len32.to_le_bytes())?;
            let riff = (data_off + data_len - 8) as u32;
            f.seek(SeekFrom::Start(4))?;
            f.write_all(&riff.to_le_bytes())?;
            f.sync_all()?;
            return Ok(data_len / block_align);
        }
        pos += 8 + size + (size & 1);
    }
}

/// Patch and rename every `*.part` recording in `dir` (not recursive). Files that cannot be
/// repaired are logged and left in place.
pub fn recover_unfinished(dir: &Path) -> Vec<RecoveredRecording> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let part = e.path();
        if part.extension().and_then(|x| x.to_str()) != Some("part") {
            continue;
        }
        let final_path = part.with_extension("");
        if final_path.extension().and_then(|x| x.to_str()) == Some("part") {
            // A trim temp file (`x.wav.part.part`): the `.part` itself is the source; drop it.
            let _ = fs::remove_file(&part);
            continue;
        }
        match patch_wav_header(&part).and_then(|n| {
            fs::rename(&part, &final_path)?;
            crate::durable::fsync_dir_of(&final_path)?;
            Ok(n)
        }) {
            Ok(samples) => {
                tracing::info!(path = %final_path.display(), samples, "recovered unfinished recording");
                out.push(RecoveredRecording {
                    path: final_path,
                    samples,
                    duration_ms: samples * 1000 / SAMPLE_RATE as u64,
                });
            }
            Err(e) => {
                tracing::warn!(path = %part.display(), error = %e, "cannot recover recording")
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i * 37) % 65536) as u16 as i16).collect()
    }

    fn read(path: &Path) -> Vec<i16> {
        hound::WavReader::open(path)
            .unwrap()
            .samples::<i16>()
            .map(|s| s.unwrap())
            .collect()
    }

    #[test]
    fn finished_recording_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.wav");
        let mut r = Recorder::create(&path).unwrap();
        let audio = ramp(8000 * 3 + 80);
        for fr in audio.chunks(160) {
            r.write(fr).unwrap();
        }
        assert_eq!(r.finish(None).unwrap(), path);
        assert_eq!(read(&path), audio);
        assert!(!part_path(&path).exists());
    }

    #[test]
    fn trimming_keeps_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.wav");
        let mut r = Recorder::create(&path).unwrap();
        let audio = ramp(4000);
        r.write(&audio).unwrap();
        r.finish(Some((320, 3200))).unwrap();
        assert_eq!(read(&path), audio[320..3200]);
    }

    #[test]
    fn killed_recording_is_recovered_with_at_most_one_second_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.wav");
        let mut r = Recorder::create(&path).unwrap();
        let audio = ramp(8000 * 5 + 1234);
        for fr in audio.chunks(160) {
            r.write(fr).unwrap();
        }
        // kill -9: no destructor runs, neither hound's finalize nor BufWriter's flush.
        std::mem::forget(r);
        // A torn last sample (odd byte) as a crash mid-write could leave.
        {
            let mut f = OpenOptions::new()
                .append(true)
                .open(part_path(&path))
                .unwrap();
            f.write_all(&[0x42]).unwrap();
        }
        let rec = recover_unfinished(dir.path());
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].path, path);
        let got = read(&path);
        assert_eq!(rec[0].samples, got.len() as u64);
        assert!(
            got.len() as u64 + 8000 >= audio.len() as u64,
            "lost more than 1 s: {}",
            got.len()
        );
        assert_eq!(got[..], audio[..got.len()]);
        // Second start-up: nothing left to recover.
        assert!(recover_unfinished(dir.path()).is_empty());
    }

    #[test]
    fn garbage_part_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("junk.wav.part"), b"not a wav").unwrap();
        fs::write(dir.path().join("short.wav.part"), b"RI").unwrap();
        assert!(recover_unfinished(dir.path()).is_empty());
        assert!(dir.path().join("junk.wav.part").exists());
        assert!(recover_unfinished(Path::new("/nonexistent/dir")).is_empty());
    }
}
