//! Every input under `tests/fixtures/fuzz-regressions/<target>/` (a crash `cargo fuzz` found,
//! minimised) replayed through the same entry point as the fuzz target of that name
//! (`astreinte::fuzzing`). Any panic fails the test with the file's name.
//!
//! The hand-made seeds of each target (`fuzz/corpus/<target>/seed-*`, from `fuzz/make_seeds.py`)
//! are replayed too, so the properties the targets assert hold on them in every test run.
//!
//! Inputs under `<target>/open/` crash in code this suite does not own yet: they are expected to
//! panic, and the test fails when one stops panicking so it is moved up a level once fixed.

use std::panic;
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-regressions");
    let mut ran = 0;
    let mut failures = Vec::new();
    for (target, entry) in astreinte::fuzzing::TARGETS {
        let dir = root.join(target);
        for file in inputs(&dir) {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if panic::catch_unwind(|| entry(&data)).is_err() {
                failures.push(format!("{} panics", file.display()));
            }
            ran += 1;
        }
        let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        for file in inputs(&seeds).into_iter().filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        }) {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if panic::catch_unwind(|| entry(&data)).is_err() {
                failures.push(format!("{} panics", file.display()));
            }
            ran += 1;
        }
        for file in inputs(&dir.join("open")) {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if panic::catch_unwind(|| entry(&data)).is_ok() {
                failures.push(format!(
                    "{} no longer panics: move it out of open/",
                    file.display()
                ));
            }
            ran += 1;
        }
    }
    assert!(ran > 0, "no input under {}", root.display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
