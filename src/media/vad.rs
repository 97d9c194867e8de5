//! Voice activity: `webrtc-vad` per 20 ms frame, and a sans-I/O talk-spurt tracker with onset
//! and hang-over that turns per-frame decisions into speech-start/speech-end events.
//!
//! `webrtc_vad::Vad` holds a raw pointer to its C state and is neither `Send` nor `Sync`. We do
//! not assert otherwise: [`FrameVad`] is created lazily on the media thread that owns the call
//! (inside that thread's call state, which never leaves it), so no `unsafe impl` is needed.

use webrtc_vad::{SampleRate, Vad, VadMode};

/// Per-frame classifier. Not `Send`: build it on the thread that uses it.
pub struct FrameVad {
    vad: Vad,
}

impl Default for FrameVad {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameVad {
    pub fn new() -> Self {
        FrameVad {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate8kHz, VadMode::Aggressive),
        }
    }

    /// Whether this frame is speech. Frames must be 80, 160 or 240 samples (10/20/30 ms); any
    /// other length (including empty, which the crate would index out of bounds) is "not speech".
    pub fn is_speech(&mut self, frame: &[i16]) -> bool {
        matches!(frame.len(), 80 | 160 | 240) && self.vad.is_voice_segment(frame).unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechEvent {
    /// Speech began at this frame index (the first voiced frame of the onset run).
    Started { frame: u64 },
    /// Speech ended; `frame` is the last voiced frame.
    Ended { frame: u64 },
}

/// Talk-spurt tracker: speech starts after `onset` consecutive voiced frames and ends after
/// `hangover` consecutive unvoiced ones.
#[derive(Debug, Clone)]
pub struct SpeechTracker {
    onset: u32,
    hangover: u32,
    frame: u64,
    run_voiced: u32,
    run_silent: u32,
    in_speech: bool,
    last_voiced: Option<u64>,
    /// First and last voiced frame of any talk spurt so far (for trimming).
    pub first_speech: Option<u64>,
    pub last_speech: Option<u64>,
}

impl SpeechTracker {
    pub fn new(onset: u32, hangover: u32) -> Self {
        SpeechTracker {
            onset: onset.max(1),
            hangover: hangover.max(1),
            frame: 0,
            run_voiced: 0,
            run_silent: 0,
            in_speech: false,
            last_voiced: None,
            first_speech: None,
            last_speech: None,
        }
    }

    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Frames of continuous silence so far (since the last voiced frame).
    pub fn silent_frames(&self) -> u32 {
        self.run_silent
    }

    pub fn frames(&self) -> u64 {
        self.frame
    }

    pub fn push(&mut self, voiced: bool) -> Option<SpeechEvent> {
        let f = self.frame;
        self.frame += 1;
        let mut ev = None;
        if voiced {
            self.run_voiced += 1;
            self.run_silent = 0;
            self.last_voiced = Some(f);
            if !self.in_speech && self.run_voiced >= self.onset {
                self.in_speech = true;
                let start = f + 1 - self.onset as u64;
                self.first_speech.get_or_insert(start);
                ev = Some(SpeechEvent::Started { frame: start });
            }
            if self.in_speech {
                self.last_speech = Some(f);
            }
        } else {
            self.run_voiced = 0;
            self.run_silent = self.run_silent.saturating_add(1);
            if self.in_speech && self.run_silent >= self.hangover {
                self.in_speech = false;
                ev = Some(SpeechEvent::Ended {
                    frame: self.last_voiced.unwrap_or(f),
                });
            }
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onset_and_hangover() {
        let mut t = SpeechTracker::new(3, 5);
        let pattern = "..x.xxx.xx...xx.....x...";
        let mut evs = vec![];
        for c in pattern.chars() {
            evs.extend(t.push(c == 'x'));
        }
        // Isolated clicks do not start speech; 3 in a row at frames 4-6 do; short pauses are
        // bridged by the hang-over; 5 silent frames after frame 14 end it.
        assert_eq!(
            evs,
            vec![
                SpeechEvent::Started { frame: 4 },
                SpeechEvent::Ended { frame: 14 }
            ]
        );
        assert_eq!(t.first_speech, Some(4));
        assert_eq!(t.last_speech, Some(14));
        assert!(!t.in_speech());
    }

    #[test]
    fn webrtc_vad_separates_silence_from_voice_like_audio() {
        let mut v = FrameVad::new();
        let silence = [0i16; 160];
        assert!(!v.is_speech(&silence));
        assert!(!v.is_speech(&[]));
        assert!(!v.is_speech(&[0; 100]));
        // A harmonic-rich voiced signal (f0 = 140 Hz, formant-like weights), 1 s.
        let mut speechy = 0;
        for f in 0..50 {
            let mut fr = [0i16; 160];
            for (i, s) in fr.iter_mut().enumerate() {
                let t = (f * 160 + i) as f32 / 8000.0;
                let mut x = 0.0;
                for h in 1..20 {
                    let w = 1.0 / h as f32;
                    x += w * (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin();
                }
                *s = (x * 6000.0) as i16;
            }
            if v.is_speech(&fr) {
                speechy += 1;
            }
        }
        assert!(speechy > 25, "only {speechy} of 50 voiced frames");
    }
}
