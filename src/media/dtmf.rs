//! In-band DTMF detection with Goertzel filters (sans-I/O).
//!
//! Samples are cut into blocks of 205 (25.6 ms at 8 kHz, the classic size whose bins fall near
//! all eight DTMF frequencies). A block holds a digit when: the strongest row and column tones
//! are each above an absolute energy floor; their twist is within 8 dB (column louder, "normal")
//! or 4 dB (row louder, "reverse"), as Q.24 allows; every other row/column is at least 8 dB
//! below the peak of its group; and the two tones carry most of the block's energy (speech and
//! music spread theirs). A digit is reported after two consecutive blocks agree and is not
//! reported again until two blocks without it, so one press is one digit.

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
pub const BLOCK: usize = 205;
const SAMPLE_RATE: f32 = 8000.0;
/// 8 dB.
const NORMAL_TWIST: f32 = 6.31;
/// 4 dB.
const REVERSE_TWIST: f32 = 2.51;
/// Other tones of a group must be this far (8 dB) below the peak.
const RELATIVE_PEAK: f32 = 6.31;
/// Each tone's mean power per sample must exceed that of a sine of amplitude ~500
/// (about -33 dBm0).
const MIN_TONE_POWER: f32 = 500.0 * 500.0 / 2.0;
/// The two tones must carry this share of the block's energy.
const MIN_TONE_SHARE: f32 = 0.70;

pub struct DtmfDetector {
    coeffs: [f32; 8],
    s1: [f32; 8],
    s2: [f32; 8],
    energy: f32,
    n: usize,
    last_hit: Option<char>,
    reported: Option<char>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let mut coeffs = [0f32; 8];
        for (i, f) in ROWS.iter().chain(COLS.iter()).enumerate() {
            // Goertzel on the nearest bin of the 205-point DFT.
            let k = (BLOCK as f32 * f / SAMPLE_RATE).round();
            coeffs[i] = 2.0 * (2.0 * std::f32::consts::PI * k / BLOCK as f32).cos();
        }
        DtmfDetector {
            coeffs,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            n: 0,
            last_hit: None,
            reported: None,
        }
    }

    /// Feed samples (any count); returns a digit when a new press is confirmed. A 20 ms frame
    /// completes at most one block, so at most one digit comes back per call with ≤ 205 samples;
    /// with more, the first confirmed digit is returned.
    pub fn process(&mut self, samples: &[i16]) -> Option<char> {
        let mut out = None;
        let mut rest = samples;
        while !rest.is_empty() {
            let take = rest.len().min(BLOCK - self.n);
            let (now, later) = rest.split_at(take);
            self.filter(now);
            self.n += take;
            rest = later;
            if self.n == BLOCK {
                let hit = self.classify_block();
                self.reset_block();
                if let Some(d) = self.debounce(hit) {
                    out = out.or(Some(d));
                }
            }
        }
        out
    }

    /// Run the eight filters over `samples` (all within one block).
    fn filter(&mut self, samples: &[i16]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU has the features the function is compiled for (checked above).
            unsafe { self.filter_fma(samples) };
            return;
        }
        self.filter_portable(samples);
    }

    /// The recurrence is latency-bound (each sample needs the previous state), so the state
    /// stays in locals and the sum is ordered to keep one multiply-add on the chain:
    /// `(x - s2) + c·s1` — `x - s2` does not wait for `s1`.
    #[inline(always)]
    fn filter_body(&mut self, samples: &[i16], fused: bool) {
        let c = self.coeffs;
        let (mut s1, mut s2, mut energy) = (self.s1, self.s2, self.energy);
        for &s in samples {
            let x = s as f32;
            energy += x * x;
            for i in 0..8 {
                let s0 = if fused {
                    c[i].mul_add(s1[i], x - s2[i])
                } else {
                    (x - s2[i]) + c[i] * s1[i]
                };
                s2[i] = s1[i];
                s1[i] = s0;
            }
        }
        (self.s1, self.s2, self.energy) = (s1, s2, energy);
    }

    fn filter_portable(&mut self, samples: &[i16]) {
        self.filter_body(samples, false);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn filter_fma(&mut self, samples: &[i16]) {
        self.filter_body(samples, true);
    }

    fn reset_block(&mut self) {
        self.s1 = [0.0; 8];
        self.s2 = [0.0; 8];
        self.energy = 0.0;
        self.n = 0;
    }

    fn debounce(&mut self, hit: Option<char>) -> Option<char> {
        let mut out = None;
        match hit {
            Some(d) if self.last_hit == Some(d) && self.reported != Some(d) => {
                self.reported = Some(d);
                out = Some(d);
            }
            None if self.last_hit.is_none() => self.reported = None,
            _ => {}
        }
        self.last_hit = hit;
        out
    }

    fn classify_block(&self) -> Option<char> {
        let mut p = [0f32; 8];
        for (i, pi) in p.iter_mut().enumerate() {
            let (a, b) = (self.s1[i], self.s2[i]);
            // |X(k)|^2, scaled to mean power per sample of the tone: 2|X|^2 / N^2.
            *pi = (a * a + b * b - self.coeffs[i] * a * b) * 2.0 / (BLOCK * BLOCK) as f32;
        }
        let (ri, rp) = peak(&p[..4]);
        let (ci, cp) = peak(&p[4..]);
        if rp < MIN_TONE_POWER || cp < MIN_TONE_POWER {
            return None;
        }
        if cp > rp * NORMAL_TWIST || rp > cp * REVERSE_TWIST {
            return None;
        }
        for i in 0..4 {
            if i != ri && p[i] * RELATIVE_PEAK > rp {
                return None;
            }
            if i != ci && p[4 + i] * RELATIVE_PEAK > cp {
                return None;
            }
        }
        let mean_power = self.energy / BLOCK as f32;
        if rp + cp < MIN_TONE_SHARE * mean_power {
            return None;
        }
        Some(KEYS[ri][ci])
    }
}

fn peak(p: &[f32]) -> (usize, f32) {
    let mut best = (0, p[0]);
    for (i, &v) in p.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Generate a DTMF tone pair into `out` (for tests, and for sending in-band digits).
pub fn generate(digit: char, row_amp: f32, col_amp: f32, start_sample: usize, out: &mut [i16]) {
    let mut rc = None;
    for (r, row) in KEYS.iter().enumerate() {
        for (c, &k) in row.iter().enumerate() {
            if k == digit.to_ascii_uppercase() {
                rc = Some((r, c));
            }
        }
    }
    let Some((r, c)) = rc else {
        out.fill(0);
        return;
    };
    for (i, o) in out.iter_mut().enumerate() {
        let t = (start_sample + i) as f32 / SAMPLE_RATE;
        let v = row_amp * (2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
            + col_amp * (2.0 * std::f32::consts::PI * COLS[c] * t).sin();
        *o = v.clamp(-32768.0, 32767.0) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused path (taken on CPUs with FMA) and the portable one compute the same filters.
    #[test]
    fn fused_and_portable_filters_agree() {
        let mut pcm = [0i16; BLOCK];
        generate('9', 4000.0, 5000.0, 0, &mut pcm);
        let (mut a, mut b) = (DtmfDetector::new(), DtmfDetector::new());
        a.filter_portable(&pcm[..BLOCK - 1]);
        b.filter(&pcm[..BLOCK - 1]);
        for i in 0..8 {
            let tol = 1e-3 * a.s1[i].abs().max(1.0);
            assert!(
                (a.s1[i] - b.s1[i]).abs() <= tol,
                "filter {i}: {} vs {}",
                a.s1[i],
                b.s1[i]
            );
        }
        a.n = BLOCK - 1;
        b.n = BLOCK - 1;
        a.filter_portable(&pcm[BLOCK - 1..]);
        b.filter(&pcm[BLOCK - 1..]);
        assert_eq!(a.classify_block(), Some('9'));
        assert_eq!(b.classify_block(), Some('9'));
    }

    /// Deterministic noise (xorshift), uniform in [-amp, amp].
    struct Noise(u32);
    impl Noise {
        fn next(&mut self, amp: f32) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 as f32 / u32::MAX as f32 * 2.0 - 1.0) * amp
        }
    }

    /// Build a signal of digits, each `on_ms` of tone then `off_ms` of noise only, and run it
    /// through the detector in 160-sample frames as the media path does.
    fn detect(
        digits: &str,
        row_amp: f32,
        col_amp: f32,
        noise: f32,
        on_ms: usize,
        off_ms: usize,
    ) -> String {
        let mut sig = Vec::new();
        let mut n = Noise(0x1234_5678);
        for d in digits.chars() {
            let mut tone = vec![0i16; on_ms * 8];
            generate(d, row_amp, col_amp, sig.len(), &mut tone);
            sig.extend(tone);
            sig.extend(std::iter::repeat_n(0i16, off_ms * 8));
        }
        for s in sig.iter_mut() {
            *s = (*s as f32 + n.next(noise)).clamp(-32768.0, 32767.0) as i16;
        }
        let mut det = DtmfDetector::new();
        let mut out = String::new();
        for frame in sig.chunks(160) {
            out.extend(det.process(frame));
        }
        out
    }

    #[test]
    fn all_sixteen_digits_clean() {
        assert_eq!(
            detect("0123456789*#ABCD", 7000.0, 7000.0, 0.0, 100, 100),
            "0123456789*#ABCD"
        );
    }

    #[test]
    fn digits_in_noise_and_with_allowed_twist() {
        // Uniform noise of ±2000 (power ~1.3e6) against tones of 6000 (power 1.8e7 each): ~14 dB SNR.
        assert_eq!(detect("159#", 6000.0, 6000.0, 2000.0, 80, 60), "159#");
        // Column 6 dB louder (normal twist), row 3 dB louder (reverse twist): accepted.
        assert_eq!(detect("37", 4000.0, 8000.0, 500.0, 100, 100), "37");
        assert_eq!(detect("37", 8000.0, 5700.0, 500.0, 100, 100), "37");
    }

    #[test]
    fn excessive_twist_weak_tones_and_single_tones_are_rejected() {
        // 12 dB normal twist, 8 dB reverse twist.
        assert_eq!(detect("5", 2000.0, 8000.0, 0.0, 200, 100), "");
        assert_eq!(detect("5", 8000.0, 3200.0, 0.0, 200, 100), "");
        // Below the energy floor.
        assert_eq!(detect("5", 200.0, 200.0, 0.0, 200, 100), "");
        // One tone only.
        assert_eq!(detect("5", 8000.0, 0.0, 0.0, 200, 100), "");
        // Drowned in noise (tone share too small).
        assert_eq!(detect("5", 3000.0, 3000.0, 12000.0, 200, 100), "");
    }

    #[test]
    fn long_press_is_one_digit_and_short_blips_are_none() {
        assert_eq!(detect("8", 7000.0, 7000.0, 300.0, 2000, 100), "8");
        // 30 ms is shorter than two blocks: not a digit (Q.24 minimum is 40 ms).
        assert_eq!(detect("8", 7000.0, 7000.0, 0.0, 30, 100), "");
        // Same key twice with a pause: two digits.
        assert_eq!(detect("88", 7000.0, 7000.0, 0.0, 100, 100), "88");
    }

    #[test]
    fn voiced_speech_like_harmonics_do_not_trigger() {
        // A vowel-like signal: f0 sweeping 100-220 Hz with 30 harmonics under a formant envelope
        // peaked near 700 and 1200 Hz (the DTMF bands), 5 seconds.
        let mut det = DtmfDetector::new();
        let mut phase = 0f32;
        let mut out = String::new();
        let mut frame = [0i16; 160];
        for f in 0..250 {
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (f * 160 + i) as f32 / 8000.0;
                let f0 = 160.0 + 60.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin();
                phase += 2.0 * std::f32::consts::PI * f0 / 8000.0;
                let mut v = 0.0;
                for h in 1..=30 {
                    let fh = f0 * h as f32;
                    if fh > 3800.0 {
                        break;
                    }
                    let env = (-((fh - 700.0) / 150.0).powi(2)).exp()
                        + 0.7 * (-((fh - 1200.0) / 200.0).powi(2)).exp()
                        + 0.1;
                    v += env * (phase * h as f32).sin();
                }
                *s = (v * 4000.0).clamp(-32768.0, 32767.0) as i16;
            }
            out.extend(det.process(&frame));
        }
        assert_eq!(out, "");
    }

    #[test]
    fn espeak_prompts_do_not_trigger() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
        let mut checked = 0;
        for lang in ["fr", "en"] {
            let Ok(entries) = std::fs::read_dir(dir.join(lang)) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(mut r) = hound::WavReader::open(e.path()) else {
                    continue;
                };
                let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
                let mut det = DtmfDetector::new();
                let mut out = String::new();
                for frame in samples.chunks(160) {
                    out.extend(det.process(frame));
                }
                assert_eq!(out, "", "{} triggered DTMF", e.path().display());
                checked += 1;
            }
        }
        assert!(checked > 0 || !dir.exists());
    }
}
