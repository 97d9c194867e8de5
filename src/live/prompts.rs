//! Prompts uploaded in the console, as new calls hear them: [`PromptsFeed`] applies the store's
//! active versions to the media engine and keeps it in step with the store's change counter
//! (the service in `live` decides when to look). The node that took a change also applies it
//! at once (`admin::prompts` calls [`apply`]). `MediaEngine::set_prompt` never cuts a prompt
//! already playing: a call hears the old recording to its end, the next playlist the new one.
//!
//! Rolling back to the default plays again what the engine loaded at start: the first time
//! this module touches an engine it keeps a copy of those prompts (before any override), so
//! the default is this node's own (bundled, or its `prompts_dir`).

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use tracing::{debug, info, warn};

use crate::media::convert::decode_wav_8k;
use crate::media::prompts::{PromptSet, LANGUAGES};
use crate::media::{g711, Codec, MediaEngine};
use crate::store::Store;

/// The manifest the engine is built with.
const MANIFEST: &str = include_str!("../../prompts/manifest.toml");

/// A prompt of `prompts/manifest.toml`: its name and its text per language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPrompt {
    pub name: String,
    pub texts: HashMap<String, String>,
}

static PROMPTS: LazyLock<Vec<ManifestPrompt>> = LazyLock::new(|| {
    let mut out: Vec<ManifestPrompt> = MANIFEST
        .parse::<toml::Table>()
        .map(|t| {
            t.into_iter()
                .map(|(name, v)| ManifestPrompt {
                    name,
                    texts: v
                        .as_table()
                        .map(|t| {
                            t.iter()
                                .filter_map(|(l, s)| Some((l.clone(), s.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
});

/// Every prompt of the manifest, sorted by name.
pub fn manifest() -> &'static [ManifestPrompt] {
    &PROMPTS
}

/// The manifest prompts as the engine loaded them at start: name → µ-law audio.
type Defaults = HashMap<String, Box<[u8]>>;

static ENGINE_DEFAULTS: OnceLock<Defaults> = OnceLock::new();
static BUNDLED_DEFAULTS: LazyLock<Defaults> = LazyLock::new(|| match PromptSet::bundled() {
    Ok(set) => snapshot(&set),
    Err(e) => {
        warn!(error = %e, "bundled prompts unreadable: defaults cannot be played back");
        Defaults::new()
    }
});

/// The manifest's prompts of `set` (µ-law, what a PCMU caller hears bit for bit; the engine
/// keeps no linear copy).
fn snapshot(set: &PromptSet) -> Defaults {
    let mut out = Defaults::new();
    for p in manifest() {
        for lang in LANGUAGES {
            let full = format!("{lang}/{}", p.name);
            if let Some(prompt) = set.id(&full).and_then(|id| set.get(id)) {
                let audio = prompt.pcmu.get(..prompt.samples).unwrap_or(&prompt.pcmu);
                out.insert(full, audio.into());
            }
        }
    }
    out
}

/// The default (version 0) of `lang/name` as linear PCM: what the engine loaded at start when
/// this process has seen one, else the bundled prompt.
pub fn default_pcm(full_name: &str) -> Option<Vec<i16>> {
    let defaults = ENGINE_DEFAULTS.get().unwrap_or(&BUNDLED_DEFAULTS);
    let ulaw = defaults.get(full_name)?;
    let mut pcm = vec![0i16; ulaw.len()];
    g711::decode(Codec::Pcmu, ulaw, &mut pcm);
    Some(pcm)
}

/// Makes `full_name` play `pcm` (None: its default) on `media` for new calls.
pub fn apply(media: &MediaEngine, full_name: &str, pcm: Option<&[i16]>) {
    ENGINE_DEFAULTS.get_or_init(|| snapshot(&media.prompts()));
    match pcm {
        Some(pcm) => media.set_prompt(full_name, pcm),
        None => match default_pcm(full_name) {
            Some(pcm) => media.set_prompt(full_name, &pcm),
            None => warn!(prompt = full_name, "no default to roll back to"),
        },
    }
}

/// What this node's engine plays of the stored prompts.
#[derive(Default)]
pub(super) struct PromptsFeed {
    /// The change counter last applied in full.
    generation: Option<i64>,
    /// What this watcher made each prompt play: its version, 0 for the default.
    applied: HashMap<String, i64>,
}

impl PromptsFeed {
    /// The change counter last applied in full (None: not yet).
    pub(super) fn generation(&self) -> Option<i64> {
        self.generation
    }

    /// Looks at the store's change counter and, when it moved, applies what changed: new
    /// versions, and defaults back where a version is no longer active. The store being
    /// down changes nothing (the calls keep what they have).
    pub(super) async fn look(&mut self, store: &Store, media: &MediaEngine) {
        let generation = match store.prompts_generation().await {
            Ok(g) => g,
            Err(e) => {
                // The store is down: keep playing what we have.
                debug!(error = %e, "prompts not refreshed");
                return;
            }
        };
        if self.generation == Some(generation) {
            return;
        }
        let active = match store.active_prompt_versions().await {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "prompts not refreshed");
                return;
            }
        };
        let mut complete = true;
        let mut wanted: HashMap<String, i64> = HashMap::new();
        for (lang, name, version) in active {
            let full = format!("{lang}/{name}");
            if self.applied.get(&full) != Some(&version) {
                match store.prompt_audio(&lang, &name, version).await {
                    Ok(Some(wav)) => match decode_wav_8k(&wav) {
                        Ok(pcm) => {
                            apply(media, &full, Some(&pcm));
                            info!(prompt = %full, version, "prompt changed");
                            self.applied.insert(full.clone(), version);
                        }
                        Err(e) => {
                            warn!(prompt = %full, version, error = %e, "stored prompt unreadable")
                        }
                    },
                    // Changed again in between: the next look catches up.
                    Ok(None) => complete = false,
                    Err(e) => {
                        debug!(error = %e, "prompt audio not read");
                        complete = false;
                    }
                }
            }
            wanted.insert(full, version);
        }
        for (full, version) in self.applied.iter_mut() {
            if *version != 0 && !wanted.contains_key(full) {
                apply(media, full, None);
                info!(prompt = %full, "prompt back to its default");
                *version = 0;
            }
        }
        if complete {
            self.generation = Some(generation);
        }
    }
}
