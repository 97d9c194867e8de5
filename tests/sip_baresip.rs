//! A real softphone (baresip, headless, audio from and to files) calls the built engine.

mod common;

use std::process::Command;

use common::{baresip_dir, Engine};

/// Two seconds of a 440 Hz tone: baresip hangs up when its source file ends.
fn tone_2s() -> Vec<i16> {
    (0..16000)
        .map(|i| ((i as f64 * 440.0 * 2.0 * std::f64::consts::PI / 8000.0).sin() * 8000.0) as i16)
        .collect()
}

#[test]
fn baresip_calls_611_and_hangs_up() {
    let engine = Engine::start("", "");
    let dir = baresip_dir(&tone_2s(), "");
    let out = Command::new("timeout")
        .args(["30", "baresip", "-f", dir.path().to_str().unwrap()])
        .args(["-e", &format!("/dial sip:611@{}", engine.addr()), "-t", "4"])
        .output()
        .expect("run baresip (apt-get install baresip)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Call established"),
        "baresip:\n{said}\nengine:\n{}",
        engine.log_text()
    );
    assert!(said.contains("terminated"), "{said}");
    let log = engine.log_text();
    assert!(
        log.contains("call started") && log.contains("number=611"),
        "{log}"
    );
    assert!(log.contains("call ended reason=remote hung up"), "{log}");
}
