//! On-call paging end to end, against real parts: a caller leaves an after-hours S1 voicemail
//! on the built engine; a real SMTP server (aiosmtpd) receives the page with the WAV; the
//! technician's phone (a test phone on real sockets) is called and presses 3 (RFC 4733); the
//! engine calls the customer through the trunk (SIPp, echoing) and bridges them; the ticket's
//! history ends paged → acknowledged → callback_connected, within target. And when the
//! technician's phone refuses, the next level is called at its offset.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::phone::{tone, tone_power, Phone};
use common::smtp::SmtpServer;
use common::voicemail::{cli_json as cli, leave_s1_voicemail};
use common::Engine;

/// Always closed, and no maintenance window: every call is after hours.
const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";
const PROMPT_WITHIN: Duration = Duration::from_secs(30);

/// SIPp answering as the trunk (the customer's phone), sending back what it hears.
struct Trunk {
    child: Child,
    port: u16,
}

impl Trunk {
    fn start() -> Trunk {
        let port = common::free_port();
        let media = common::free_media_base();
        let child = Command::new("sipp")
            .args([
                "-sf",
                common::scenario("uas_technician.xml").to_str().unwrap(),
            ])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-rtp_echo"])
            .args(["-m", "1", "-timeout", "120s", "-timeout_error", "-nostdin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sipp (install sip-tester)");
        Trunk { child, port }
    }
}

impl Drop for Trunk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ticket(engine: &Engine, number: &str) -> serde_json::Value {
    cli(engine, &["tickets", "show", number, "--json"])
}

fn event_kinds(t: &serde_json::Value) -> Vec<String> {
    t["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_event(engine: &Engine, number: &str, kind: &str, within: Duration) -> serde_json::Value {
    let mut t = serde_json::Value::Null;
    let found = common::wait::poll_until(within, || {
        t = ticket(engine, number);
        event_kinds(&t).iter().any(|k| k == kind)
    });
    assert!(
        found,
        "no {kind} event within {within:?}: {:#?}\n{}",
        t["events"],
        engine.log_text()
    );
    t
}

fn paging_config(
    tech: &str,
    director: &str,
    smtp_port: u16,
    trunk_port: Option<u16>,
    http_port: u16,
) -> String {
    let trunk = trunk_port
        .map(|p| format!("[sip.outbound]\nproxy = \"sip:127.0.0.1:{p}\"\nfrom = \"sip:astreinte@127.0.0.1\"\n"))
        .unwrap_or_default();
    format!(
        r#"{AFTER_HOURS}
[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "{tech}"
email = "tech1@example.net"
language = "en"

[[paging.people]]
id = "director"
name = "Directrice du service"
phone = "{director}"
email = "director@example.net"
language = "fr"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"], ["director"]]
s1 = ["0s", "12s"]
s2 = ["0s", "12s"]
repeat_every = "0s"

[paging.smtp]
url = "smtp://127.0.0.1:{smtp_port}"
from = "astreinte@example.net"

[http]
listen = "127.0.0.1:{http_port}"

{trunk}"#
    )
}

#[test]
fn an_after_hours_s1_voicemail_pages_by_mail_and_phone_and_key_3_connects_the_customer() {
    let smtp = SmtpServer::start();
    let trunk = Trunk::start();
    let mut tech = Phone::listen();
    let director = Phone::listen();
    let http_port = common::free_port();
    // The trunk is [sip.outbound]; [sip] lines go first.
    let cfg = paging_config(
        &tech.uri("tech1"),
        &director.uri("director"),
        smtp.port,
        Some(trunk.port),
        http_port,
    );
    let engine = Engine::start("", &cfg);
    let number = leave_s1_voicemail(&engine);

    // The technician's phone rings at once; they hear the page and press 3.
    assert!(
        tech.wait_invite(Duration::from_secs(15)),
        "the technician was not called:\n{}",
        engine.log_text()
    );
    tech.answer();
    tech.wait_prompt_start(PROMPT_WITHIN);
    // Not an event: the technician listens to the page for a moment, at a human pace,
    // before pressing 3 during it.
    std::thread::sleep(Duration::from_millis(500));
    tech.press('3');
    let t = wait_event(
        &engine,
        &number,
        "callback_connected",
        Duration::from_secs(30),
    );
    // Audio crosses the bridge both ways: the trunk echoes what the technician says. The
    // check is on the 2.6 s of audio heard from the start of the 2 s tone.
    let mark = tech.heard().len();
    tech.say(&tone(1000.0, 2000, 8000));
    common::wait::wait_until("2.6 s of audio heard", Duration::from_secs(10), || {
        tech.heard().len() >= mark + 2600 * 8
    });
    let back = &tech.heard()[mark..mark + 2600 * 8];
    assert!(
        tone_power(back, 1000.0) > 10.0 * tone_power(back, 2300.0),
        "the technician did not hear their own voice back from the customer's side:\n{}",
        engine.log_text()
    );
    tech.hang_up();

    // The ticket's history: paged, acknowledged, callback_connected, in that order, in target.
    let kinds = event_kinds(&t);
    let pos = |k: &str| kinds.iter().position(|x| x == k);
    let (p, a, c) = (pos("paged"), pos("acknowledged"), pos("callback_connected"));
    assert!(
        p.is_some() && a.is_some() && c.is_some() && p < a && a < c,
        "events out of order: {kinds:?}"
    );
    assert_eq!(t["status"], "called_back", "{t:#?}");
    assert_eq!(t["callback_target_met"], true, "{t:#?}");
    let connected = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "callback_connected")
        .unwrap();
    assert!(
        connected["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("+15145550100"),
        "{connected:#?}"
    );

    // The e-mail page reached the technician with the voicemail attached.
    let mails = smtp.wait_messages(1, Duration::from_secs(20));
    assert!(!mails.is_empty(), "no e-mail page:\n{}", engine.log_text());
    let mail = smtp.parse(&mails[0]);
    assert!(
        mail["subject"]
            .as_str()
            .unwrap_or_default()
            .contains(&number),
        "{mail:#?}"
    );
    let wav = mail["attachments"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["type"] == "audio/wav"))
        .unwrap_or_else(|| panic!("no WAV attached: {mail:#?}"));
    let bytes = hex_decode(wav["hex"].as_str().unwrap());
    let on_disk = std::fs::read(t["voicemail_path"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, on_disk, "the attachment is the voicemail");
    assert!(
        mail["body"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("/ack/{number}")),
        "no acknowledgement link: {mail:#?}"
    );
    // Level 2 is never paged: the ticket was acknowledged before its offset. Not an event:
    // the wait past level 2's 12 s offset is what shows that nothing is sent.
    std::thread::sleep(Duration::from_secs(13));
    let t = ticket(&engine, &number);
    assert!(
        !event_kinds(&t).iter().any(|k| k == "escalated"),
        "{:#?}",
        t["events"]
    );
    drop(director);
}

#[test]
fn a_technician_phone_that_refuses_escalates_to_level_2_at_its_offset() {
    let smtp = SmtpServer::start();
    let mut tech = Phone::listen();
    let mut director = Phone::listen();
    let http_port = common::free_port();
    let cfg = paging_config(
        &tech.uri("tech1"),
        &director.uri("director"),
        smtp.port,
        None,
        http_port,
    );
    let engine = Engine::start("", &cfg);
    let number = leave_s1_voicemail(&engine);
    let created = ticket(&engine, &number)["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        tech.wait_invite(Duration::from_secs(15)),
        "{}",
        engine.log_text()
    );
    tech.reject(486);
    let t = wait_event(&engine, &number, "page_failed", Duration::from_secs(10));
    assert!(
        format!("{}", t["events"]).contains("486"),
        "{:#?}",
        t["events"]
    );
    // Level 2 (the director, in French) is called at 12 s after the ticket's creation.
    assert!(
        director.wait_invite(Duration::from_secs(30)),
        "level 2 was not called:\n{}",
        engine.log_text()
    );
    let called = chrono::Utc::now();
    let created = chrono::DateTime::parse_from_rfc3339(&created).unwrap();
    let after = (called - created.with_timezone(&chrono::Utc)).num_milliseconds();
    assert!(
        (11_000..25_000).contains(&after),
        "level 2 called {after} ms after the ticket"
    );
    director.answer();
    director.wait_prompt_start(PROMPT_WITHIN);
    director.press('1');
    let t = wait_event(&engine, &number, "acknowledged", Duration::from_secs(20));
    assert_eq!(t["status"], "acknowledged", "{t:#?}");
    let kinds = event_kinds(&t);
    assert!(kinds.iter().any(|k| k == "escalated"), "{kinds:?}");
    assert!(
        director.wait_bye(Duration::from_secs(20)),
        "the engine hung up after the thanks"
    );
    // Both were e-mailed (level 1 at once, level 2 at its offset).
    let mails = smtp.wait_messages(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2, "{}", engine.log_text());
    // The engine's /metrics counts what was sent and what failed, per channel.
    let metrics = http_get(http_port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("astreinte_pages_sent_total{channel=\"email\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("astreinte_pages_failed_total{channel=\"phone\"} 1"),
        "{metrics}"
    );
    assert!(http_get(http_port, "/readyz").starts_with("HTTP/1.1 200"));
}

/// A plain HTTP/1.1 GET on loopback; the whole answer as text.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to [http] listen");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
