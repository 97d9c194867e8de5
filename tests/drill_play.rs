//! `astreinte drill SCENARIO --target` plays a short night against a real engine drilled at
//! ×60: two callers (S1 in French, S2 in English) leave voicemails over SIP and RTP, the
//! on-call technician's phone (the drill's) answers each page and presses 3, the trunk's
//! customer (the drill's) answers the callback, the pages' e-mails arrive at the drill's mail
//! sink. The report says the promise held, from what the drill saw.

mod common;

use std::process::Command;

use common::voicemail::api_token;
use common::{free_port, Engine};

const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";

const SCENARIO: &str = r#"
[night]
name = "two calls, one technician who connects"
length = "2m"
time_scale = 60
ladder_levels = 1
s2_target = "30m"

[[technicians]]
id = "tech-a"
level = 1
answer_after = "1s"
press = "3"

[[calls]]
at = "0s"
severity = "S1"
lang = "fr"
caller = "+15145550101"

[[calls]]
at = "1m"
severity = "S2"
lang = "en"
caller = "+15145550102"

[trunk]
customer = "answer"
answer_after = "1s"
"#;

#[test]
fn a_short_night_is_played_and_the_promise_held() {
    let (phones, mail, webhook, http) = (free_port(), free_port(), free_port(), free_port());
    let config = format!(
        r#"{AFTER_HOURS}
[schedule.sla]
s2_callback_minutes = 30

[drill]
time_scale = 60

[sip.outbound]
proxy = "sip:127.0.0.1:{phones}"
from = "sip:astreinte@127.0.0.1"

[[paging.people]]
id = "tech-a"
name = "Tech A"
phone = "sip:1999000001@127.0.0.1:{phones}"
email = "tech-a@example.net"
language = "fr"

[[paging.rotations]]
id = "oncall"
people = ["tech-a"]

[paging.ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"

[paging.smtp]
url = "smtp://127.0.0.1:{mail}"
from = "astreinte@example.net"

[http]
listen = "127.0.0.1:{http}"
"#
    );
    let engine = Engine::start("", &config);
    let token = api_token(&engine, "admin");
    let scenario = engine.dir.path().join("night.toml");
    std::fs::write(&scenario, SCENARIO).expect("write scenario");
    let json = engine.dir.path().join("night.json");
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .arg("drill")
        .arg(&scenario)
        .args(["--target", &engine.addr().to_string()])
        .args(["--number", "5149073400"])
        .args(["--console", &format!("http://127.0.0.1:{http}")])
        .args(["--phones", &phones.to_string()])
        .args(["--mail", &mail.to_string()])
        .args(["--webhook", &webhook.to_string()])
        .arg("--json")
        .arg(&json)
        .env("ASTREINTE_DRILL_TOKEN", &token)
        .env("ASTREINTE_LOG", "warn")
        // The callers' speech is a bundled prompt.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("astreinte drill");
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("{table}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the promise held: {table}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        engine.log_text()
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("night.json")).expect("JSON");
    assert_eq!(report["promise_held"], true, "{report:#}");
    assert_eq!(report["met"]["S1"], 1, "{report:#}");
    assert_eq!(report["met"]["S2"], 1, "{report:#}");
    assert_eq!(report["calls_without_ticket"], 0);
    assert_eq!(report["duplicate_pages"], 0);
    let tickets = report["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 2, "{report:#}");

    // The console shows it: the report, its picture drawn by the console, the page.
    let get = |path: &str| http_get(http, path, &token);
    let shown = get("/api/drill/report");
    assert!(
        shown.starts_with("HTTP/1.1 200") && shown.contains("content-type: application/json"),
        "{shown}"
    );
    assert!(
        shown.contains("\"promise_held\":true") && shown.contains("\"posted_by\":\"drill-admin\""),
        "{shown}"
    );
    let svg = get("/api/drill/report.svg");
    assert!(
        svg.starts_with("HTTP/1.1 200")
            && svg.contains("content-type: image/svg+xml")
            && svg.contains("content-security-policy: default-src 'none'")
            && svg.contains("\r\n\r\n<svg"),
        "{svg}"
    );
    for t in tickets {
        assert!(svg.contains(t["number"].as_str().unwrap_or("?")), "{svg}");
    }
    // A report whose night is absurd is refused with why, and the last good one stays.
    let mut hostile = report.clone();
    hostile["time_scale"] = serde_json::json!(0);
    let refused = request(
        http,
        "POST",
        "/api/drill/report",
        &token,
        &hostile.to_string(),
    );
    assert!(
        refused.starts_with("HTTP/1.1 400") && refused.contains("time_scale 0"),
        "{refused}"
    );
    assert!(get("/api/drill/report").contains("\"promise_held\":true"));
    let page = get("/drill");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("/api/drill/report"),
        "{page}"
    );
    for t in tickets {
        assert_eq!(t["met"], true, "{t:#}");
        assert_eq!(t["verdict"]["by"], "callback_on_time", "{t:#}");
        let pages = t["pages"].as_array().cloned().unwrap_or_default();
        assert!(
            pages
                .iter()
                .any(|p| p["channel"] == "email" && p["result"] == "delivered"),
            "the e-mail page reached the drill's mail sink: {t:#}"
        );
        assert!(
            pages
                .iter()
                .any(|p| p["channel"] == "phone" && p["result"] == "answered"),
            "{t:#}"
        );
    }
}

/// GET `path` from the console with the API token; the whole answer, head and body.
fn http_get(port: u16, path: &str, token: &str) -> String {
    request(port, "GET", path, token, "")
}

/// One request to the console with the API token (a JSON body when not empty).
fn request(port: u16, method: &str, path: &str, token: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    // Header names are compared in lower case; the body is kept as it came.
    let text = String::from_utf8_lossy(&out).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => format!("{}\r\n\r\n{body}", head.to_ascii_lowercase())
            .replacen("http/1.1", "HTTP/1.1", 1),
        None => text,
    }
}
