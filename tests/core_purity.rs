//! The cores stay pure because Cargo says so: `astreinte-core` depends on no async runtime, no
//! database, no network or HTTP crate, and neither on the clock's nor on the operating system's
//! randomness (chrono without "clock", rand without "getrandom"). This test reads Cargo's own
//! answer (`cargo tree`); `.ci/run` also builds and lints the core alone
//! (`cargo clippy -p astreinte-core`), where its `clippy.toml` forbids `Instant::now`,
//! `SystemTime::now`, sleeping, sockets and files.

use std::process::Command;

/// Crates whose presence under the core means I/O, a clock or ambient randomness.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "sqlx",
    "sqlx-core",
    "libsqlite3-sys",
    "hyper",
    "axum",
    "reqwest",
    "lettre",
    "io-uring",
    "libc",
    "rustix",
    "getrandom",
    "iana-time-zone",
    "tracing-subscriber",
];

#[test]
fn the_core_depends_on_no_runtime_database_socket_clock_or_os_randomness() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "astreinte-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"chrono"), "unexpected tree:\n{tree}");
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| crates.contains(f)).collect();
    assert!(
        found.is_empty(),
        "astreinte-core now depends on {found:?}: time, I/O and randomness are inputs of the cores, \
         not dependencies (see crates/core/Cargo.toml)\n{tree}"
    );
}

#[test]
fn the_core_reads_no_clock_and_draws_no_ambient_randomness() {
    // Belt and braces for what features alone cannot forbid (std's clock is always there):
    // the source never names it outside tests' synthetic origin.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/core/src");
    let mut offenders = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("core source") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source text");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for needle in [
                    "SystemTime::now",
                    "Utc::now",
                    "Local::now",
                    "thread_rng",
                    "rand::random",
                    "OsRng",
                ] {
                    if code.contains(needle) {
                        offenders.push(format!("{}:{}: {needle}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
