//! Property tests of the console's API from its own OpenAPI document: schemathesis (PyPI)
//! generates requests for every operation of `/api/openapi.json`, valid and not, as an admin
//! with an API token, against the built engine. No answer may be a 5xx.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Engine;

#[test]
fn no_generated_request_gets_a_server_error() {
    if Command::new("st").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI=true but schemathesis is missing (pip install schemathesis; scripts/test.sh does)"
        );
        common::skip(
            "no_generated_request_gets_a_server_error",
            "schemathesis is not installed (pip install schemathesis)",
        );
        return;
    }
    let http_port = common::free_port();
    let engine = Engine::start(
        "",
        &format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[[paging.people]]\nid = \"tech1\"\nname = \"Martin Roy\"\nemail = \"tech1@example.net\"\n\n[[paging.rotations]]\nid = \"oncall\"\npeople = [\"tech1\"]\n\n[paging.ladder]\nlevels = [[\"oncall\"]]\n"),
    );
    let config = engine.dir.path().join("astreinte.toml");
    let mut add = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "add", "ada", "--role", "admin", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    let token = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "token", "ada", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let out = Command::new("st")
        .args([
            "run",
            &format!("http://127.0.0.1:{http_port}/api/openapi.json"),
        ])
        .args(["--checks", "not_a_server_error"])
        .args([
            "--max-examples",
            "15",
            "--request-timeout",
            "20",
            "--generation-deterministic",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env("NO_COLOR", "1")
        .current_dir(engine.dir.path())
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found server errors:\n{report}\n--- engine log (tail)\n{}",
        engine
            .log_text()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
