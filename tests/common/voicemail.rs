//! What several end-to-end tests do the same way: leave an after-hours S1 voicemail with the
//! test caller, and read the engine's store with its CLI.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::caller::Caller;
use super::wait;
use super::Engine;

const PROMPT_QUIET: Duration = Duration::from_millis(700);
const PROMPT_WITHIN: Duration = Duration::from_secs(30);

/// Runs `astreinte ARGS --config <the engine's>` and returns what it printed.
pub fn cli(engine: &Engine, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(args)
        .arg("--config")
        .arg(engine.dir.path().join("astreinte.toml"))
        .current_dir(engine.dir.path())
        .output()
        .expect("run astreinte");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like [`cli`], parsing the JSON it printed.
pub fn cli_json(engine: &Engine, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&cli(engine, args)).expect("JSON")
}

/// A few seconds of speech (a bundled prompt's voice) for a caller to say.
pub fn speech() -> Vec<i16> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/en/greeting.wav");
    hound::WavReader::open(p)
        .unwrap()
        .samples::<i16>()
        .map(|s| s.unwrap())
        .collect()
}

/// Leaves an S1 voicemail after hours from 514 555 0100 (in English) and returns its tracking
/// number once the ticket exists.
pub fn leave_s1_voicemail(engine: &Engine) -> String {
    leave_s1_voicemail_from(engine, "5145550100", &[])
}

/// Like [`leave_s1_voicemail`], from `from`, waiting for a ticket that is none of `known`.
pub fn leave_s1_voicemail_from(engine: &Engine, from: &str, known: &[String]) -> String {
    let mut c = Caller::call(engine.addr(), "5149073400", from);
    c.wait_prompt_start(PROMPT_WITHIN); // language choice
    c.press('9'); // English
    c.wait_prompt_start(PROMPT_WITHIN); // welcome, main menu
    c.press('2'); // support
    c.wait_prompt_start(PROMPT_WITHIN); // emergency menu
    c.press('1'); // no calls at all: S1
    c.wait_prompt_start(PROMPT_WITHIN); // call you back at 514 555 0100?
    c.press('1'); // yes
    c.wait_prompt_end(PROMPT_QUIET, PROMPT_WITHIN); // instructions, tone
    c.say(&speech()[..16000]);
    c.wait_said(Duration::from_secs(20));
    c.press('#');
    let number = wait::wait_for_or(
        "the voicemail's ticket",
        Duration::from_secs(30),
        || {
            let list = cli_json(engine, &["tickets", "list", "--json"]);
            list.as_array()?
                .iter()
                .filter_map(|t| t["number"].as_str())
                .find(|n| !known.iter().any(|k| k == n))
                .map(str::to_string)
        },
        || engine.log_text(),
    );
    c.hang_up();
    number
}

/// The password the drill's API user is made with.
const DRILL_PASSWORD: &str = "a drill password 1";

/// An API token for the drill, for a user of `role` made with the CLI as an operator would.
pub fn api_token(engine: &Engine, role: &str) -> String {
    let name = format!("drill-{role}");
    let config = engine.dir.path().join("astreinte.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "add", &name, "--role", role, "--config"])
        .arg(&config)
        .env("ASTREINTE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("astreinte users add");
    if let Some(mut input) = child.stdin.take() {
        let _ = writeln!(input, "{DRILL_PASSWORD}");
    }
    let out = child.wait_with_output().expect("users add");
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli(engine, &["users", "token", &name]).trim().to_string()
}
