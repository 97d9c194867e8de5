//! Compiles the bundled prompts in: every `prompts/<lang>/<name>.wav` becomes an entry of the
//! `BUNDLED` table (`media::prompts`), so the engine runs from any directory with its embedded
//! defaults. `prompts/manifest.toml` is the list of what should be there; a test keeps the
//! folder and the manifest in step.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a build script compiled for another
    // checkout sharing this target directory would otherwise bundle that checkout's prompts.
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        panic!("cargo sets CARGO_MANIFEST_DIR for build scripts");
    };
    let root = Path::new(&manifest_dir).join("prompts");
    println!("cargo:rerun-if-changed=prompts");
    // sqlx::migrate! embeds the migrations: a new one must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let mut entries = Vec::new();
    for lang in ["fr", "en"] {
        let dir = root.join(lang);
        println!("cargo:rerun-if-changed={}", dir.display());
        // No prompts would build an engine that cannot greet anyone: stop here instead.
        let files = match std::fs::read_dir(&dir) {
            Ok(f) => f,
            Err(e) => panic!("reading the bundled prompts in {}: {e}", dir.display()),
        };
        for f in files.flatten() {
            let path = f.path();
            if path.extension().and_then(|x| x.to_str()) != Some("wav") {
                continue;
            }
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                entries.push((format!("{lang}/{stem}"), path.display().to_string()));
            }
        }
    }
    entries.sort();
    let mut out = String::from("const BUNDLED: &[(&str, &[u8])] = &[\n");
    for (name, path) in &entries {
        let _ = writeln!(out, "    ({name:?}, include_bytes!({path:?})),");
    }
    out.push_str("];\n");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let dest = Path::new(&out_dir).join("bundled_prompts.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("writing {}: {e}", dest.display());
    }
}
