//! A test that cannot run here (a tool or a server missing, outside CI) says so in the test
//! run's output. libtest captures `eprintln!` and shows it only when a test fails, so a skipped
//! test would read as a plain "ok"; a write to the process's standard error is not captured.
//! Files that do not load all of `common` take this one alone:
//! `#[path = "common/skip.rs"] mod skip;`.

#![allow(dead_code)]

use std::io::Write;

/// Writes `SKIP <test>: <why>` straight to standard error, where `cargo test` shows it.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIP {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
