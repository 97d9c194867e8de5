//! The e-mail and webhook page channels against real servers: aiosmtpd (a Python SMTP server,
//! started per test on a free port) and an axum receiver in this process.
//!
//! aiosmtpd must be installed (`pip install aiosmtpd`). Without it the SMTP tests say so and
//! stop, unless CI=true: there they fail.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astreinte::paging::email::{Mailer, SmtpConfig};
use astreinte::paging::facts::{PageReason, PagedPerson};
use astreinte::paging::webhook::{WebhookConfig, WebhookEvent, WebhookFormat, WebhookSender};
use astreinte::paging::{ChannelError, PageFacts};
use astreinte::store::{Store, StoreConfig};
use astreinte::triage::Severity;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[path = "common/skip.rs"]
mod skip;
#[path = "common/wait.rs"]
mod wait;

// ---------------------------------------------------------------------------------------------
// Shared facts.

fn facts(lang: &str, voicemail: Option<PathBuf>) -> PageFacts {
    // 07:17 UTC on 2024-01-16 is 02:17 EST; due 30 minutes later.
    let created = Utc
        .with_ymd_and_hms(2024, 1, 16, 7, 17, 0)
        .single()
        .unwrap_or_default();
    PageFacts {
        ticket: "4821337".into(),
        // No such ticket in the tests' store: the voicemail is read from `voicemail_path`.
        ticket_id: 0,
        severity: Severity::S1,
        status: "paged".into(),
        company: Some("Plomberie Tremblay".into()),
        account_code: Some("PT-042".into()),
        caller: "\"Tremblay\" <sip:5145550100@trunk>".into(),
        callback_number: "15145550100".into(),
        created_at: created,
        callback_due_at: created + chrono::Duration::minutes(30),
        timezone: chrono_tz::America::Toronto,
        level: 1,
        reason: PageReason::Escalation,
        person: Some(PagedPerson {
            id: "tech1".into(),
            name: "Martin Roy".into(),
            language: lang.into(),
            phone: Some("sip:tech1@127.0.0.1:5060".into()),
            email: Some("tech1@example.net".into()),
        }),
        answers: BTreeMap::from([("service".to_string(), "téléphones muets".to_string())]),
        classification_reasons: vec!["menu: 1".into()],
        voicemail_path: voicemail,
        voicemail_seconds: Some(0.5),
        ack_url: Some("https://astreinte.example.net/ack/4821337?sig=ab12".into()),
        console_url: Some("https://astreinte.example.net/tickets/4821337".into()),
        time_scale: astreinte::schedule::TimeScale::REAL,
        page_key: None,
        also: Vec::new(),
    }
}

/// An empty store: what `send_page` reads voicemail audio from first.
async fn store() -> Store {
    Store::connect(&StoreConfig::with_url("sqlite::memory:"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

// ---------------------------------------------------------------------------------------------
// SMTP: aiosmtpd.

/// Kills the server when the test ends, passed or failed.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether aiosmtpd can run here; under CI=true its absence fails the test.
fn aiosmtpd_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the SMTP tests: install aiosmtpd (pip install aiosmtpd)"
        );
        skip::skip(
            test,
            "python3 with aiosmtpd is not installed (pip install aiosmtpd)",
        );
    }
    ok
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp")
}

/// Starts `python3 -m aiosmtpd` with `handler` (and its arguments) on a free port, and waits
/// until it accepts connections.
fn start_smtp(handler: &[&str], log: &Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let stderr = std::fs::File::create(log).unwrap_or_else(|e| panic!("log file: {e}"));
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
        ])
        .args(handler)
        .env("PYTHONPATH", fixtures())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("python3 -m aiosmtpd: {e}"));
    let mut guard = KillOnDrop(child);
    wait::wait_until(
        "aiosmtpd to accept connections",
        Duration::from_secs(15),
        || {
            if let Ok(Some(status)) = guard.0.try_wait() {
                let out = std::fs::read_to_string(log).unwrap_or_default();
                panic!("aiosmtpd exited ({status}) before listening:\n{out}");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        },
    );
    (guard, port)
}

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        url: format!("smtp://127.0.0.1:{port}"),
        from: "Astreinte <astreinte@example.net>".into(),
        username: None,
        password: None,
        timeout_secs: 5,
        max_attachment_mb: 10,
    }
}

/// The messages in a Maildir, parsed by Python's `email` package (an independent MIME parser).
fn stored_messages(maildir: &Path) -> Vec<Value> {
    const SCRIPT: &str = r#"
import email, email.policy, json, mailbox, sys
out = []
for _, stored in mailbox.Maildir(sys.argv[1], create=False).items():
    m = email.message_from_bytes(stored.as_bytes(), policy=email.policy.default)
    parts = []
    for part in m.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        parts.append({
            "type": part.get_content_type(),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
            "hex": data.hex(),
            "text": part.get_content() if part.get_content_maintype() == "text" else None,
        })
    out.append({
        "subject": str(m["subject"]),
        "to": str(m["to"]),
        "from": str(m["from"]),
        "rcpt": str(m["X-RcptTo"]),
        "page_key": str(m["X-Astreinte-Page"]),
        "header_names": [k.lower() for k in m.keys()],
        "parts": parts,
    })
print(json.dumps(out))
"#;
    let output = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(maildir)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        output.status.success(),
        "parsing the Maildir failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout)
        .unwrap_or_else(|e| panic!("python output: {e}"))
}

/// A real half-second WAV (8 kHz mono 16-bit), as the recorder writes them.
fn write_wav(path: &Path) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap_or_else(|e| panic!("wav: {e}"));
    for i in 0..4000u32 {
        let t = f64::from(i) / 8000.0;
        let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        w.write_sample(s as i16)
            .unwrap_or_else(|e| panic!("wav: {e}"));
    }
    w.finalize().unwrap_or_else(|e| panic!("wav: {e}"));
    std::fs::read(path).unwrap_or_else(|e| panic!("wav: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn smtp_page_arrives_once_with_subject_link_and_the_voicemail() {
    if !aiosmtpd_available("smtp_page_arrives_once_with_subject_link_and_the_voicemail") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let maildir = dir.path().join("mail");
    let maildir_arg = maildir.display().to_string();
    let (_server, port) = start_smtp(
        &["aiosmtpd.handlers.Mailbox", &maildir_arg],
        &dir.path().join("smtp.log"),
    );
    let wav_path = dir.path().join("vm.wav");
    let wav = write_wav(&wav_path);

    let mailer = Mailer::new(&smtp_config(port)).unwrap_or_else(|e| panic!("{e}"));
    let mut f = facts("fr", Some(wav_path));
    // A hostile company name (it comes from the caller's account or answers).
    f.company = Some("Evil\r\nBcc: victim@example.org\r\n\r\n".into());
    // A person id with a space and a line break: the key header stays one printable token.
    f.page_key = Some("4821337:climb:1:0:tech 1\r\nBcc: x@example.org:email".into());
    mailer
        .send_page("Martin Roy <tech1@example.net>", &f, &store().await)
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));

    let stored = stored_messages(&maildir);
    assert_eq!(stored.len(), 1, "delivered once: {stored:?}");
    let m = &stored[0];
    assert_eq!(
        str_of(m, "subject"),
        "[S1] Billet 4821337 — rappeler avant 02:47 (HNE)"
    );
    assert_eq!(str_of(m, "to"), "Martin Roy <tech1@example.net>");
    assert_eq!(str_of(m, "rcpt"), "tech1@example.net");
    assert_eq!(str_of(m, "from"), "Astreinte <astreinte@example.net>");
    assert_eq!(
        str_of(m, "page_key"),
        "4821337:climb:1:0:tech1Bcc:x@example.org:email"
    );
    // lettre's own headers; nothing from the caller became a header.
    let names: Vec<&str> = m["header_names"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(!names.contains(&"bcc"), "{names:?}");
    for required in ["date", "message-id"] {
        assert!(names.contains(&required), "{required} missing: {names:?}");
    }

    let parts = m["parts"].as_array().cloned().unwrap_or_default();
    assert_eq!(parts.len(), 2, "{parts:?}");
    let text = parts
        .iter()
        .find(|p| str_of(p, "type") == "text/plain")
        .unwrap_or_else(|| panic!("no text part: {parts:?}"));
    let body = str_of(text, "text");
    assert!(
        body.contains("https://astreinte.example.net/ack/4821337?sig=ab12"),
        "{body}"
    );
    assert!(
        body.contains("Numéro de rappel : +1 514-555-0100"),
        "{body}"
    );
    assert!(body.contains("- service : téléphones muets"), "{body}");
    assert!(body.contains("joint : ticket-4821337.wav"), "{body}");
    assert!(
        body.contains("Entreprise : Evil Bcc: victim@example.org (compte PT-042)"),
        "{body}"
    );

    let attachment = parts
        .iter()
        .find(|p| str_of(p, "type") == "audio/wav")
        .unwrap_or_else(|| panic!("no audio/wav part: {parts:?}"));
    assert_eq!(str_of(attachment, "disposition"), "attachment");
    assert_eq!(str_of(attachment, "filename"), "ticket-4821337.wav");
    let bytes = hex::decode(str_of(attachment, "hex")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bytes, wav, "the attachment is the recording, byte for byte");
    let decoded = hound::WavReader::new(std::io::Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("attachment is not a WAV: {e}"));
    assert_eq!(decoded.spec().sample_rate, 8000);
    assert_eq!(decoded.len(), 4000);
}

#[tokio::test]
async fn smtp_recording_over_the_limit_or_missing_is_said_not_attached() {
    if !aiosmtpd_available("smtp_recording_over_the_limit_or_missing_is_said_not_attached") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let maildir = dir.path().join("mail");
    let maildir_arg = maildir.display().to_string();
    let (_server, port) = start_smtp(
        &["aiosmtpd.handlers.Mailbox", &maildir_arg],
        &dir.path().join("smtp.log"),
    );
    let wav_path = dir.path().join("vm.wav");
    write_wav(&wav_path);
    let mailer = Mailer::new(&SmtpConfig {
        max_attachment_mb: 0,
        ..smtp_config(port)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    mailer
        .send_page(
            "big@example.net",
            &facts("en", Some(wav_path)),
            &store().await,
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    mailer
        .send_page(
            "gone@example.net",
            &facts("en", Some(dir.path().join("gone.wav"))),
            &store().await,
        )
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));

    let stored = stored_messages(&maildir);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for m in &stored {
        let parts = m["parts"].as_array().cloned().unwrap_or_default();
        assert_eq!(parts.len(), 1, "no attachment: {parts:?}");
        let body = str_of(&parts[0], "text");
        let expected = match str_of(m, "rcpt") {
            "big@example.net" => "recording too large to attach",
            _ => "recording unavailable",
        };
        assert!(body.contains(expected), "{body}");
        assert_eq!(
            str_of(m, "subject"),
            "[S1] Ticket 4821337 — call back before 02:47 (EST)"
        );
    }
}

#[tokio::test]
async fn smtp_server_down_is_transient() {
    let port = free_port(); // nothing listens there any more
    let mailer = Mailer::new(&smtp_config(port)).unwrap_or_else(|e| panic!("{e}"));
    let store = store().await;
    let started = Instant::now();
    let res = mailer
        .send_page("tech1@example.net", &facts("fr", None), &store)
        .await;
    assert!(matches!(res, Err(ChannelError::Transient(_))), "{res:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn smtp_refused_recipient_is_permanent() {
    if !aiosmtpd_available("smtp_refused_recipient_is_permanent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_server, port) = start_smtp(
        &["astreinte_smtp_fixtures.RefuseRecipient"],
        &dir.path().join("smtp.log"),
    );
    let mailer = Mailer::new(&smtp_config(port)).unwrap_or_else(|e| panic!("{e}"));
    let res = mailer
        .send_page("nobody@example.net", &facts("fr", None), &store().await)
        .await;
    match res {
        Err(ChannelError::Permanent(msg)) => assert!(msg.contains("550"), "{msg}"),
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn smtp_deferred_recipient_is_transient() {
    if !aiosmtpd_available("smtp_deferred_recipient_is_transient") {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_server, port) = start_smtp(
        &["astreinte_smtp_fixtures.DeferRecipient"],
        &dir.path().join("smtp.log"),
    );
    let mailer = Mailer::new(&smtp_config(port)).unwrap_or_else(|e| panic!("{e}"));
    let res = mailer
        .send_page("later@example.net", &facts("fr", None), &store().await)
        .await;
    match res {
        Err(ChannelError::Transient(msg)) => assert!(msg.contains("451"), "{msg}"),
        other => panic!("expected Transient, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks: an axum receiver in this process.

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Received>>>;

fn record(log: &Log, path: &str, headers: HeaderMap, body: Bytes) {
    if let Ok(mut l) = log.lock() {
        l.push(Received {
            path: path.into(),
            headers,
            body,
        });
    }
}

/// Starts the receiver on 127.0.0.1:0; the task ends with the test's runtime.
async fn start_receiver() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let app = Router::new()
        .route(
            "/ok",
            post(
                |State(log): State<Log>, h: HeaderMap, b: Bytes| async move {
                    record(&log, "/ok", h, b);
                    StatusCode::ACCEPTED
                },
            ),
        )
        .route(
            "/fail",
            post(
                |State(log): State<Log>, h: HeaderMap, b: Bytes| async move {
                    record(&log, "/fail", h, b);
                    (StatusCode::INTERNAL_SERVER_ERROR, "database down")
                },
            ),
        )
        .route(
            "/busy",
            post(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down") }),
        )
        .route(
            "/bad",
            post(|| async {
                let answer = format!("bad\r\nsignature\u{1b}[31m {}", "x".repeat(500));
                (StatusCode::BAD_REQUEST, answer)
            }),
        )
        .route(
            "/moved",
            post(|| async {
                (
                    StatusCode::FOUND,
                    [("location", "https://elsewhere.example.net/hook")],
                )
                    .into_response()
            }),
        )
        .route(
            "/hang",
            post(|| async {
                // A server that never answers is the behaviour under test, not an event.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK
            }),
        )
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, log)
}

const SECRET: &str = "a-shared-secret-of-some-length";

fn hook(addr: SocketAddr, path: &str, format: WebhookFormat) -> WebhookConfig {
    WebhookConfig {
        id: "ops".into(),
        url: format!("http://{addr}{path}"),
        format,
        secret: (format == WebhookFormat::Json).then(|| SECRET.to_string()),
        routing_key: (format == WebhookFormat::Pagerduty).then(|| "R0UT1NGKEY".to_string()),
        timeout_secs: 1,
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn sender() -> WebhookSender {
    WebhookSender::new().unwrap_or_else(|e| panic!("{e}"))
}

fn received(log: &Log) -> Vec<Received> {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// What a receiver does: HMAC over "timestamp.body", compared in constant time.
fn verify(r: &Received, secret: &[u8]) -> bool {
    let ts = header(r, "x-astreinte-timestamp");
    let Some(hex_sig) = header(r, "x-astreinte-signature").strip_prefix("v1=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    mac.verify_slice(&sig).is_ok()
}

#[tokio::test]
async fn json_webhook_is_signed_and_shaped_as_documented() {
    let (addr, log) = start_receiver().await;
    let f = facts("en", None);
    let sent_at = now();
    sender()
        .send(
            &hook(addr, "/ok", WebhookFormat::Json),
            &WebhookEvent::Page(&f),
            sent_at,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = received(&log);
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(header(r, "content-type"), "application/json");
    assert_eq!(
        header(r, "x-astreinte-timestamp"),
        sent_at.timestamp().to_string()
    );
    assert!(verify(r, SECRET.as_bytes()), "the signature verifies");
    assert!(!verify(r, b"another secret"), "and only with the secret");
    let mut tampered = r.clone();
    tampered.body = Bytes::from(String::from_utf8_lossy(&r.body).replace("S1", "S3"));
    assert!(
        !verify(&tampered, SECRET.as_bytes()),
        "a changed body fails"
    );

    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["event"], "page");
    assert_eq!(v["ticket"]["number"], "4821337");
    assert_eq!(v["ticket"]["severity"], "S1");
    assert_eq!(v["ticket"]["callback_due_at"], "2024-01-16T07:47:00Z");
    assert_eq!(v["ticket"]["answers"]["service"], "téléphones muets");
    assert_eq!(v["page"]["level"], 1);
    assert_eq!(v["page"]["reason"], "escalation");
    assert_eq!(v["page"]["person"]["id"], "tech1");
    assert_eq!(v["page"]["person"]["language"], "en");
    assert_eq!(
        v["ack_url"],
        "https://astreinte.example.net/ack/4821337?sig=ab12"
    );
    assert_eq!(
        v["text"],
        "[S1] Ticket 4821337, Plomberie Tremblay: call +1 514-555-0100 back before 02:47 (EST)"
    );
}

#[tokio::test]
async fn pagerduty_webhook_sends_events_api_v2_bodies() {
    let (addr, log) = start_receiver().await;
    let f = facts("fr", None);
    let cfg = hook(addr, "/ok", WebhookFormat::Pagerduty);
    let s = sender();
    s.send(&cfg, &WebhookEvent::Page(&f), now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.send(
        &cfg,
        &WebhookEvent::Acknowledged {
            facts: &f,
            by: "tech1",
        },
        now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    s.send(&cfg, &WebhookEvent::Resolved { facts: &f }, now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let bodies: Vec<Value> = received(&log)
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(bodies.len(), 3);
    let trigger = &bodies[0];
    assert_eq!(trigger["routing_key"], "R0UT1NGKEY");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], "4821337");
    assert_eq!(trigger["payload"]["source"], "astreinte");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["component"], "Plomberie Tremblay");
    assert_eq!(trigger["payload"]["timestamp"], "2024-01-16T07:17:00Z");
    assert!(
        str_of(&trigger["payload"], "summary").starts_with("[S1] Billet 4821337"),
        "{trigger}"
    );
    assert_eq!(
        trigger["links"][0]["href"],
        "https://astreinte.example.net/ack/4821337?sig=ab12"
    );
    for (body, action) in bodies[1..].iter().zip(["acknowledge", "resolve"]) {
        assert_eq!(body["event_action"], action);
        assert_eq!(body["dedup_key"], "4821337");
        assert!(
            body.get("payload").is_none() && body.get("links").is_none(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let (addr, log) = start_receiver().await;
    let f = facts("fr", None);
    for (path, answer) in [
        ("/fail", "answered 500 Internal Server Error: database down"),
        ("/busy", "answered 429 Too Many Requests: slow down"),
    ] {
        let res = sender()
            .send(
                &hook(addr, path, WebhookFormat::Json),
                &WebhookEvent::Page(&f),
                now(),
            )
            .await;
        assert!(
            matches!(&res, Err(ChannelError::Transient(m)) if m.contains(answer)),
            "{path}: {res:?}"
        );
    }
    let paths: Vec<String> = received(&log).into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/fail"], "the 500 receiver saw the post");
    let closed = format!("127.0.0.1:{}", free_port());
    let res = sender()
        .send(
            &WebhookConfig {
                url: format!("http://{closed}/"),
                ..hook(addr, "/", WebhookFormat::Json)
            },
            &WebhookEvent::Page(&f),
            now(),
        )
        .await;
    assert!(
        matches!(res, Err(ChannelError::Transient(_))),
        "refused: {res:?}"
    );
}

#[tokio::test]
async fn a_client_error_is_permanent_and_quotes_the_answer_safely() {
    let (addr, _log) = start_receiver().await;
    let f = facts("fr", None);
    let res = sender()
        .send(
            &hook(addr, "/bad", WebhookFormat::Json),
            &WebhookEvent::Page(&f),
            now(),
        )
        .await;
    match res {
        Err(ChannelError::Permanent(msg)) => {
            assert!(msg.contains("400"), "{msg}");
            assert!(msg.contains("bad signature"), "{msg}");
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(
                msg.matches('x').count() < 200,
                "at most 200 bytes quoted: {msg}"
            );
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_permanent_and_names_the_location() {
    let (addr, _log) = start_receiver().await;
    let f = facts("fr", None);
    let res = sender()
        .send(
            &hook(addr, "/moved", WebhookFormat::Json),
            &WebhookEvent::Page(&f),
            now(),
        )
        .await;
    match res {
        Err(ChannelError::Permanent(msg)) => {
            assert!(msg.contains("302"), "{msg}");
            assert!(msg.contains("https://elsewhere.example.net/hook"), "{msg}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_transient_within_the_timeout() {
    let (addr, _log) = start_receiver().await;
    let f = facts("fr", None);
    let started = Instant::now();
    let res = sender()
        .send(
            &hook(addr, "/hang", WebhookFormat::Json),
            &WebhookEvent::Page(&f),
            now(),
        )
        .await;
    let waited = started.elapsed();
    assert!(
        matches!(&res, Err(ChannelError::Transient(m)) if m.contains("no answer within 1 s")),
        "{res:?}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
