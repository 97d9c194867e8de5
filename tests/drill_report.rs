//! `astreinte drill --since` against a drilled engine (`[drill] time_scale = 60`): a real
//! after-hours S1 voicemail, a ladder of one level whose technician's phone rings and is never
//! answered, and the report that says so. This is the drill's own proof that it can fail: the
//! promise is reported broken (exit status 1, `missed.S1 = 1`), with why.

mod common;

use std::process::Command;
use std::time::Duration;

use common::phone::Phone;
use common::voicemail::{api_token, cli_json, leave_s1_voicemail};
use common::{wait, Engine};

const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";

fn drill_config(phone: &str, http_port: u16) -> String {
    format!(
        r#"{AFTER_HOURS}
[drill]
time_scale = 60

[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "{phone}"
language = "fr"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"

[paging.phone]
ring_secs = 5

[http]
listen = "127.0.0.1:{http_port}"
"#
    )
}

#[test]
fn a_technician_who_never_answers_on_a_ladder_of_one_level_is_a_reported_miss() {
    let mut phone = Phone::listen();
    let http_port = common::free_port();
    let engine = Engine::start("", &drill_config(&phone.uri("tech1"), http_port));
    let token = api_token(&engine, "viewer");
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);

    let number = leave_s1_voicemail(&engine);
    let ticket = cli_json(&engine, &["tickets", "show", &number, "--json"]);
    assert_eq!(ticket["time_scale"], 60, "{ticket}");
    // ×60: the 30 minutes are 30 s of wall time.
    let created: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(ticket["created_at"].clone()).expect("created_at");
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(ticket["callback_due_at"].clone()).expect("callback_due_at");
    assert_eq!(due - created, chrono::Duration::seconds(30));

    // The page rings the technician, who never answers; the engine gives up after 5 s.
    assert!(phone.wait_invite(Duration::from_secs(20)), "no page call");
    wait::wait_for_or(
        "the unanswered page recorded as failed",
        Duration::from_secs(20),
        || {
            let t = cli_json(&engine, &["tickets", "show", &number, "--json"]);
            let jobs = t["page_jobs"].as_array()?.clone();
            jobs.iter()
                .any(|j| j["channel"] == "phone" && j["state"] == "failed")
                .then_some(())
        },
        || engine.log_text(),
    );
    // The target passes with nobody called back.
    let wait_due = (due - chrono::Utc::now()).to_std().unwrap_or_default();
    std::thread::sleep(wait_due + Duration::from_millis(500));

    let scenario = engine.dir.path().join("one-level.toml");
    std::fs::write(
        &scenario,
        "[night]\nname = \"one level, nobody answers\"\nlength = \"1h\"\ntime_scale = 60\nladder_levels = 1\n",
    )
    .expect("write scenario");
    let json = engine.dir.path().join("report.json");
    let svg = engine.dir.path().join("night.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .arg("drill")
        .arg(&scenario)
        .args(["--since", &since.to_rfc3339()])
        .args(["--console", &format!("http://127.0.0.1:{http_port}")])
        .env("ASTREINTE_DRILL_TOKEN", &token)
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("astreinte drill");
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken promise exits 1: {table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("DRILL (time ×60)"), "{table}");
    // A viewer's token reads the tickets but may not post the report to the console.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not posted to the console"), "{said}");
    assert!(table.contains(&number), "{table}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report.json")).expect("JSON");
    assert_eq!(report["time_scale"], 60);
    assert_eq!(report["missed"]["S1"], 1, "{report:#}");
    assert_eq!(report["met"]["S1"], 0, "{report:#}");
    assert_eq!(report["duplicate_pages"], 0);
    assert_eq!(report["promise_held"], false);
    let tickets = report["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 1, "{report:#}");
    assert_eq!(tickets[0]["number"], number.as_str());
    assert_eq!(tickets[0]["severity"], "S1");
    assert_eq!(tickets[0]["met"], false);
    let why = tickets[0]["verdict"]["explanation"].as_str().unwrap_or("");
    assert!(
        why.contains("reached nobody") && why.contains("not answered"),
        "the miss is explained: {why}"
    );
    let picture = std::fs::read_to_string(&svg).expect("night.svg");
    assert!(picture.starts_with("<svg") && picture.contains(&number));
}
