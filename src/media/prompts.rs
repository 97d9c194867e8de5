//! Prompts: WAV files under `prompts_dir/<lang>/<name>.wav` (8 kHz mono 16-bit), decoded once at
//! start-up and held pre-encoded in both G.711 laws, so playing one is a copy of 160 bytes per
//! packet. Names are `"<lang>/<name>"`, e.g. `"fr/greeting"`; digits are `"<lang>/digit-N"`.
//!
//! Audio is reference-counted: the set holds one reference to each prompt, and every playlist
//! that plays it holds another. Replacing a prompt drops the set's reference, so the old audio
//! lives exactly as long as the calls still playing it. Audio that is no prompt at all (a
//! ticket's voicemail heard on a page call) plays as a [`Clip`]: owned by that call's playlist,
//! freed when it has played or the call ends, never added to the set.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::g711;
use super::types::Codec;

/// 20 ms at 8 kHz.
pub const FRAME: usize = 160;

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("prompts directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("prompt {path}: {reason}")]
    Bad { path: PathBuf, reason: String },
    #[error("prompt {name} is missing: no {path} (prompts/manifest.toml lists it; run prompts/make-prompts.sh or copy the WAV there)")]
    Missing { name: String, path: PathBuf },
}

/// The manifest of every prompt the call flow may play (`prompts/manifest.toml`).
const MANIFEST: &str = include_str!("../../prompts/manifest.toml");
/// Languages every prompt exists in.
pub const LANGUAGES: [&str; 2] = ["fr", "en"];
pub use astreinte_core::media::{PromptCue, MAX_NUMBER_PROMPT};

/// Every prompt name the engine needs, without its language: the manifest's, the digits, the
/// numbers and the record tone.
pub fn required_prompt_names() -> Vec<String> {
    let mut names: Vec<String> = MANIFEST
        .parse::<toml::Table>()
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    names.extend((0..10).map(|i| format!("digit-{i}")));
    names.extend((0..=MAX_NUMBER_PROMPT).map(|n| format!("number-{n}")));
    names.push("beep".into());
    names
}

/// What to play: a loaded prompt by name, digits read out one prompt each, or a one-off clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptRef {
    Named(String),
    /// Read out `digits` with the `<lang>/digit-N` prompts; other characters are skipped.
    Digits {
        lang: String,
        digits: String,
    },
    /// Audio played to this call only (see [`Clip`]).
    Clip(Clip),
}

/// Audio encoded for one call's playback and not kept anywhere else: freed once the playlist
/// holding it has played (or been stopped, or its call closed) and the caller dropped its copy.
#[derive(Clone)]
pub struct Clip(Arc<Prompt>);

impl Clip {
    /// Encodes `pcm` (8 kHz mono) in both laws; `name` is for the logs only.
    pub fn new(name: impl Into<String>, pcm: &[i16]) -> Clip {
        Clip(Arc::new(Prompt::from_samples(name.into(), pcm)))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn samples(&self) -> usize {
        self.0.samples
    }

    /// Bytes of encoded audio it holds (both laws).
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// A handle that does not keep the audio alive: tells when it has been freed.
    pub fn watch(&self) -> std::sync::Weak<Prompt> {
        Arc::downgrade(&self.0)
    }
}

/// The same clip, not merely the same audio.
impl PartialEq for Clip {
    fn eq(&self, other: &Clip) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Clip {}

impl fmt::Debug for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clip")
            .field("name", &self.0.name)
            .field("samples", &self.0.samples)
            .finish()
    }
}

/// What a flow asks for, played from the loaded set.
impl From<PromptCue> for PromptRef {
    fn from(cue: PromptCue) -> PromptRef {
        match cue {
            PromptCue::Named(name) => PromptRef::Named(name),
            PromptCue::Digits { lang, digits } => PromptRef::Digits { lang, digits },
        }
    }
}

impl PromptRef {
    pub fn named(name: impl Into<String>) -> Self {
        PromptRef::Named(name.into())
    }
    pub fn digits(lang: impl Into<String>, digits: impl Into<String>) -> Self {
        PromptRef::Digits {
            lang: lang.into(),
            digits: digits.into(),
        }
    }
    pub fn clip(clip: Clip) -> Self {
        PromptRef::Clip(clip)
    }
}

/// Index of a loaded prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PromptId(pub u32);

#[derive(Clone)]
pub struct Prompt {
    pub name: String,
    pub samples: usize,
    /// Encoded audio padded with silence to whole 20 ms frames.
    pub pcmu: Box<[u8]>,
    pub pcma: Box<[u8]>,
}

impl Prompt {
    pub fn from_samples(name: String, pcm: &[i16]) -> Prompt {
        let frames = pcm.len().div_ceil(FRAME).max(1);
        let mut pcmu = vec![g711::silence_code(Codec::Pcmu); frames * FRAME];
        let mut pcma = vec![g711::silence_code(Codec::Pcma); frames * FRAME];
        g711::encode(Codec::Pcmu, pcm, &mut pcmu);
        g711::encode(Codec::Pcma, pcm, &mut pcma);
        Prompt {
            name,
            samples: pcm.len(),
            pcmu: pcmu.into_boxed_slice(),
            pcma: pcma.into_boxed_slice(),
        }
    }

    pub fn frames(&self) -> usize {
        self.pcmu.len() / FRAME
    }

    /// Bytes of encoded audio (both laws).
    pub fn bytes(&self) -> usize {
        self.pcmu.len() + self.pcma.len()
    }

    /// Frame `i` in `codec`, `None` past the end.
    #[inline]
    pub fn frame(&self, codec: Codec, i: usize) -> Option<&[u8]> {
        let data = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        };
        data.get(i * FRAME..(i + 1) * FRAME)
    }
}

// The prompts shipped in `prompts/`, compiled in so the engine runs from any directory with
// its embedded defaults: `const BUNDLED: &[(&str, &[u8])]`, written by `build.rs` from the
// files under `prompts/fr` and `prompts/en`.
include!(concat!(env!("OUT_DIR"), "/bundled_prompts.rs"));

/// The prompts by name. Cloning it copies references, not audio (an admin's change makes a new
/// set; see `MediaEngine::set_prompt`).
#[derive(Default, Clone)]
pub struct PromptSet {
    prompts: Vec<Arc<Prompt>>,
    by_name: HashMap<String, PromptId>,
}

impl PromptSet {
    /// Load every `<dir>/<lang>/*.wav`. A file in the wrong format stops start-up with its
    /// path and the reason.
    pub fn load(dir: &Path) -> Result<PromptSet, PromptError> {
        let mut set = PromptSet::default();
        let langs = std::fs::read_dir(dir).map_err(|e| PromptError::Dir(dir.to_owned(), e))?;
        let mut files = Vec::new();
        for lang in langs.flatten() {
            if !lang.path().is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(lang.path()) else {
                continue;
            };
            for f in entries.flatten() {
                let p = f.path();
                if p.extension().and_then(|x| x.to_str()) == Some("wav") {
                    files.push(p);
                }
            }
        }
        files.sort();
        for p in files {
            let (Some(stem), Some(lang)) = (
                p.file_stem().and_then(|s| s.to_str()),
                p.parent()
                    .and_then(|d| d.file_name())
                    .and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let name = format!("{lang}/{stem}");
            let pcm = read_wav(&p)?;
            set.insert(Prompt::from_samples(name, &pcm));
        }
        Ok(set)
    }

    /// The bundled prompts (see `BUNDLED`).
    pub fn bundled() -> Result<PromptSet, PromptError> {
        let mut set = PromptSet::default();
        for (name, bytes) in BUNDLED {
            let path = Path::new(name);
            let reader = hound::WavReader::new(std::io::Cursor::new(*bytes)).map_err(|e| {
                PromptError::Bad {
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            let pcm = samples_8k_mono(path, reader)?;
            set.insert(Prompt::from_samples((*name).to_string(), &pcm));
        }
        Ok(set)
    }

    /// The first required prompt (see [`required_prompt_names`]) this set lacks, as the error
    /// that names it and the file it should be in under `dir`.
    pub fn check_complete(&self, dir: &Path) -> Result<(), PromptError> {
        for name in required_prompt_names() {
            for lang in LANGUAGES {
                let full = format!("{lang}/{name}");
                if !self.by_name.contains_key(&full) {
                    return Err(PromptError::Missing {
                        path: dir.join(lang).join(format!("{name}.wav")),
                        name: full,
                    });
                }
            }
        }
        Ok(())
    }

    /// Adds `p`, or replaces the prompt of the same name in place (same id). The replaced audio
    /// is freed at once unless a playlist still plays it; then when that playlist ends.
    pub fn insert(&mut self, p: Prompt) -> PromptId {
        if let Some(&id) = self.by_name.get(&p.name) {
            if let Some(slot) = self.prompts.get_mut(id.0 as usize) {
                *slot = Arc::new(p);
                return id;
            }
        }
        let id = PromptId(self.prompts.len() as u32);
        self.by_name.insert(p.name.clone(), id);
        self.prompts.push(Arc::new(p));
        id
    }

    pub fn get(&self, id: PromptId) -> Option<&Prompt> {
        self.prompts.get(id.0 as usize).map(|p| &**p)
    }

    /// Bytes of encoded audio the set holds (both laws, every prompt).
    pub fn bytes(&self) -> usize {
        self.prompts.iter().map(|p| p.bytes()).sum()
    }

    pub fn id(&self, name: &str) -> Option<PromptId> {
        self.by_name.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    fn audio(&self, name: &str) -> Option<&Arc<Prompt>> {
        self.by_name
            .get(name)
            .and_then(|id| self.prompts.get(id.0 as usize))
    }

    /// Resolve a playlist to the audio it plays (references, not copies); unknown names are
    /// reported as `Err(name)`. The playlist keeps what it plays alive, whatever the set does.
    pub fn resolve(&self, refs: &[PromptRef], out: &mut Vec<Arc<Prompt>>) -> Result<(), String> {
        for r in refs {
            match r {
                PromptRef::Named(n) => out.push(self.audio(n).ok_or_else(|| n.clone())?.clone()),
                PromptRef::Digits { lang, digits } => {
                    for d in digits.chars().filter(char::is_ascii_digit) {
                        let n = format!("{lang}/digit-{d}");
                        let audio = self.audio(&n).ok_or(n)?;
                        out.push(audio.clone());
                    }
                }
                PromptRef::Clip(c) => out.push(c.0.clone()),
            }
        }
        Ok(())
    }
}

fn read_wav(path: &Path) -> Result<Vec<i16>, PromptError> {
    let bad = |reason: String| PromptError::Bad {
        path: path.to_owned(),
        reason,
    };
    let r = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
    samples_8k_mono(path, r)
}

fn samples_8k_mono<R: std::io::Read>(
    path: &Path,
    mut r: hound::WavReader<R>,
) -> Result<Vec<i16>, PromptError> {
    let bad = |reason: String| PromptError::Bad {
        path: path.to_owned(),
        reason,
    };
    let s = r.spec();
    if s.channels != 1
        || s.sample_rate != 8000
        || s.bits_per_sample != 16
        || s.sample_format != hound::SampleFormat::Int
    {
        return Err(bad(format!(
            "is {} Hz, {} channel(s), {} bits; prompts must be 8000 Hz mono 16-bit PCM \
             (convert with: sox IN -r 8000 -c 1 -b 16 OUT)",
            s.sample_rate, s.channels, s.bits_per_sample
        )));
    }
    r.samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_prompts() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts")
    }

    #[test]
    fn bundled_prompts_load_in_both_languages_and_both_laws() {
        let set = PromptSet::load(&repo_prompts()).unwrap();
        for lang in ["fr", "en"] {
            for name in ["greeting", "beep"] {
                assert!(set.id(&format!("{lang}/{name}")).is_some(), "{lang}/{name}");
            }
            for d in 0..10 {
                assert!(set.id(&format!("{lang}/digit-{d}")).is_some());
            }
        }
        let id = set.id("fr/greeting").unwrap();
        let p = set.get(id).unwrap();
        let pcm = read_wav(&repo_prompts().join("fr/greeting.wav")).unwrap();
        assert_eq!(p.samples, pcm.len());
        assert!(
            p.samples > 8000 * 3,
            "greeting is only {} samples",
            p.samples
        );
        for (i, &s) in pcm.iter().enumerate() {
            assert_eq!(p.pcmu[i], g711::linear_to_ulaw(s));
            assert_eq!(p.pcma[i], g711::linear_to_alaw(s));
        }
        // Padding is silence, whole frames.
        assert_eq!(p.pcmu.len() % FRAME, 0);
        assert!(p.pcmu[pcm.len()..].iter().all(|&c| c == 0xFF));
        assert!(p.frame(Codec::Pcma, p.frames()).is_none());
    }

    #[test]
    fn playlists_resolve_digits_and_report_unknown_names() {
        let set = PromptSet::load(&repo_prompts()).unwrap();
        let mut ids = vec![];
        set.resolve(
            &[
                PromptRef::named("en/greeting"),
                PromptRef::digits("fr", "T-402"),
            ],
            &mut ids,
        )
        .unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[1].name, "fr/digit-4");
        assert_eq!(ids[3].name, "fr/digit-2");
        let mut ids = vec![];
        assert_eq!(
            set.resolve(&[PromptRef::named("de/greeting")], &mut ids),
            Err("de/greeting".into())
        );
    }

    /// 1,000 voicemails' worth of replacements of one prompt: the set keeps one prompt's audio,
    /// and the replaced audio is freed as soon as no playlist holds it (one playing keeps its own
    /// until it ends).
    #[test]
    fn a_replaced_prompt_is_freed_once_no_playlist_holds_it() {
        let mut set = PromptSet::default();
        set.insert(Prompt::from_samples("fr/goodbye".into(), &[0; 800]));
        let id = set.id("fr/goodbye").unwrap();
        let (count, bytes) = (set.len(), set.bytes());
        let mut playing = Vec::new();
        set.resolve(&[PromptRef::named("fr/goodbye")], &mut playing)
            .unwrap();
        let first = Arc::downgrade(&playing[0]);
        let mut replaced = Vec::new();
        for i in 0..1000 {
            let old = Arc::downgrade(set.audio("fr/goodbye").unwrap());
            let pcm = vec![i as i16; 800];
            assert_eq!(
                set.insert(Prompt::from_samples("fr/goodbye".into(), &pcm)),
                id
            );
            replaced.push(old);
        }
        assert_eq!((set.len(), set.bytes()), (count, bytes));
        assert_eq!(set.get(id).unwrap().pcmu[0], g711::linear_to_ulaw(999));
        // The first audio is still played by the playlist that holds it; the others are gone.
        assert!(first.upgrade().is_some());
        assert_eq!(replaced.iter().filter(|w| w.upgrade().is_some()).count(), 1);
        drop(playing);
        assert!(first.upgrade().is_none());
        assert!(replaced.iter().all(|w| w.upgrade().is_none()));
    }

    #[test]
    fn a_clip_plays_without_joining_the_set_and_goes_with_its_playlist() {
        let mut set = PromptSet::default();
        set.insert(Prompt::from_samples("fr/page-menu".into(), &[0; 160]));
        let (count, bytes) = (set.len(), set.bytes());
        let mut watches = Vec::new();
        for i in 0..1000 {
            let clip = Clip::new(format!("vm/{i}"), &vec![7i16; 8000]);
            assert_eq!(clip.bytes(), 16000);
            watches.push(clip.watch());
            let mut list = Vec::new();
            set.resolve(
                &[PromptRef::clip(clip), PromptRef::named("fr/page-menu")],
                &mut list,
            )
            .unwrap();
            assert_eq!(list.len(), 2);
            assert_eq!(list[0].frames(), 50);
            // The call's playlist is the clip's last owner.
            assert!(watches[i].upgrade().is_some());
        }
        assert!(watches.iter().all(|w| w.upgrade().is_none()));
        assert_eq!((set.len(), set.bytes()), (count, bytes));
        let a = Clip::new("a", &[1]);
        assert_eq!(PromptRef::clip(a.clone()), PromptRef::clip(a.clone()));
        assert_ne!(PromptRef::clip(a), PromptRef::clip(Clip::new("a", &[1])));
    }

    #[test]
    fn wrong_format_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fr")).unwrap();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.path().join("fr/x.wav"), spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        let err = PromptSet::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("16000 Hz") && err.contains("fr/x.wav"),
            "{err}"
        );
    }
}
