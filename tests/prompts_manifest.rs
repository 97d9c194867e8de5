//! The prompt manifest is the one list of what callers may hear: every prompt it names exists
//! in French and English as an 8 kHz mono 16-bit WAV that is neither empty nor silent, and no
//! bundled WAV is missing from it.

use std::collections::BTreeSet;
use std::path::Path;

fn manifest_names() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let text = std::fs::read_to_string(root.join("manifest.toml")).expect("prompts/manifest.toml");
    let table: toml::Table = text.parse().expect("manifest.toml is TOML");
    let mut names = BTreeSet::new();
    for (name, entry) in &table {
        for lang in ["fr", "en"] {
            let said = entry.get(lang).and_then(|v| v.as_str()).unwrap_or_default();
            assert!(!said.trim().is_empty(), "{name} has no {lang} text");
        }
        names.insert(name.clone());
    }
    for i in 0..10 {
        names.insert(format!("digit-{i}"));
    }
    for n in 0..=120 {
        names.insert(format!("number-{n}"));
    }
    names.insert("beep".into());
    names
}

#[test]
fn every_prompt_in_the_manifest_is_bundled_in_both_languages_and_nothing_else_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let names = manifest_names();
    for lang in ["fr", "en"] {
        let mut bundled = BTreeSet::new();
        for e in std::fs::read_dir(root.join(lang))
            .expect("prompts dir")
            .flatten()
        {
            let file = e.file_name().to_string_lossy().into_owned();
            let name = file
                .strip_suffix(".wav")
                .expect("only WAV files")
                .to_string();
            let mut r = hound::WavReader::open(e.path()).expect("a WAV");
            let spec = r.spec();
            assert_eq!(
                (spec.sample_rate, spec.channels, spec.bits_per_sample),
                (8000, 1, 16),
                "{lang}/{file}"
            );
            let samples: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
            assert!(samples.len() >= 800, "{lang}/{file} is shorter than 100 ms");
            let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 3000, "{lang}/{file} is silent (peak {peak})");
            bundled.insert(name);
        }
        let missing: Vec<_> = names.difference(&bundled).collect();
        let unlisted: Vec<_> = bundled.difference(&names).collect();
        assert!(
            missing.is_empty(),
            "{lang}: missing {missing:?} (run prompts/make-prompts.sh)"
        );
        assert!(
            unlisted.is_empty(),
            "{lang}: not in the manifest {unlisted:?}"
        );
    }
}
