//! The console in a real browser (Debian's chromium, driven by playwright-core from
//! `tests/browser/`), against the built engine: an admin logs in, sees a ticket's countdown,
//! acknowledges it, looks at the SLA report, uploads a prompt — and the next SIP call hears the
//! upload. Screenshots of the ticket list and the SLA report are written under
//! `target/console-screenshots/` and named in the test output.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use astreinte::media::{g711, Codec};
use common::caller::Caller;
use common::voicemail::{cli_json, leave_s1_voicemail};
use common::Engine;

const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";

/// Node, playwright-core and chromium, or why not (a failure under CI, a skip elsewhere).
fn browser_tools() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("run `npm ci` in tests/browser (scripts/test.sh does)".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("install chromium (apt-get install chromium)".into());
    }
    Ok(dir)
}

fn astreinte(engine: &Engine, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(args)
        .arg("--config")
        .arg(engine.dir.path().join("astreinte.toml"))
        .current_dir(engine.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("astreinte");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A recording no prompt sounds like: rising tones, 44.1 kHz stereo (the console converts it).
fn upload_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(44100 * 2) {
        let t = f64::from(i) / 44100.0;
        let f = 400.0 + 300.0 * (t * 2.0).floor();
        let s = (0.4 * 32767.0 * (2.0 * std::f64::consts::PI * f * t).sin()) as i16;
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// The loudest 20 ms of `pcm` as a phone hears it (through µ-law): prompt frames are sent
/// whole, so it appears exactly in what the caller decodes.
fn loudest_frame_heard(pcm: &[i16]) -> Vec<i16> {
    let loudest = pcm
        .chunks_exact(160)
        .max_by_key(|f| f.iter().map(|s| i64::from(s.unsigned_abs())).sum::<i64>())
        .expect("20 ms of audio");
    let mut enc = [0u8; 160];
    g711::encode(Codec::Pcmu, loudest, &mut enc);
    let mut dec = vec![0i16; 160];
    g711::decode(Codec::Pcmu, &enc, &mut dec);
    dec
}

#[test]
fn an_admin_logs_in_acknowledges_a_ticket_and_the_next_call_hears_an_uploaded_prompt() {
    let tools = match browser_tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI=true but the browser test cannot run: {why}"
            );
            common::skip("the browser test", &why);
            return;
        }
    };
    let http_port = common::free_port();
    let engine = Engine::start(
        "",
        &format!("{AFTER_HOURS}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n"),
    );
    let base = format!("http://127.0.0.1:{http_port}");
    let password = "correct horse battery staple";
    astreinte(
        &engine,
        &["users", "add", "ada", "--role", "admin"],
        Some(&format!("{password}\n")),
    );
    let ticket = leave_s1_voicemail(&engine);

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let wav = engine.dir.path().join("upload.wav");
    upload_wav(&wav);
    let out = Command::new("node")
        .arg(tools.join("console.mjs"))
        .current_dir(&tools)
        .env("BASE", &base)
        .env("NAME", "ada")
        .env("PASS", password)
        .env("TICKET", &ticket)
        .env("WAV", &wav)
        .env("SHOTS", &shots)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}\n--- engine\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        engine.log_text()
    );
    let seen: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .expect("the script's report");
    for name in ["tickets.png", "ticket.png", "sla.png", "prompts.png"] {
        println!("screenshot: {}", shots.join(name).display());
    }
    // The countdown was on screen and ticking.
    let cd = &seen["countdown"];
    assert_ne!(cd[0], cd[1], "the countdown did not move: {seen}");
    assert!(cd[0].as_str().unwrap_or("").contains(':'), "{seen}");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    // The acknowledgement is the admin's, in the ticket's history.
    let t = cli_json(&engine, &["tickets", "show", &ticket, "--json"]);
    assert_eq!(t["status"], "acknowledged", "{t:#}");
    let acked = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "acknowledged")
        .unwrap();
    assert!(acked["actor"].as_str().unwrap().contains("ada"), "{acked}");

    // The next call hears the upload, as converted by the console.
    let token = astreinte(&engine, &["users", "token", "ada"], None)
        .trim()
        .to_string();
    let converted = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}/api/prompts/fr/language-choice/audio"))
        .output()
        .expect("curl");
    assert!(converted.status.success(), "GET the prompt's audio");
    let pcm: Vec<i16> = hound::WavReader::new(std::io::Cursor::new(converted.stdout))
        .unwrap()
        .into_samples::<i16>()
        .map(|s| s.unwrap())
        .collect();
    let frame = loudest_frame_heard(&pcm);
    let mut c = Caller::call(engine.addr(), "5149073400", "5145550101");
    common::wait::poll_until(Duration::from_secs(3), || {
        c.heard().windows(160).any(|w| w == frame.as_slice())
    });
    let heard = c.heard();
    c.hang_up();
    assert!(
        heard.windows(160).any(|w| w == frame.as_slice()),
        "the caller did not hear the uploaded prompt ({} samples heard)",
        heard.len()
    );
}

/// `users add NAME --role ROLE` with `password` on standard input.
fn add_user(engine: &Engine, name: &str, role: &str, password: &str) {
    astreinte(
        engine,
        &["users", "add", name, "--role", role],
        Some(&format!("{password}\n")),
    );
}

/// GET `path` of the console's API with `token`, as JSON.
fn api_get(base: &str, token: &str, path: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET {path}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_technician_runs_the_night_from_a_phone_in_french_and_in_english() {
    let tools = match browser_tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI=true but the browser test cannot run: {why}"
            );
            common::skip("the phone-size browser test", &why);
            return;
        }
    };
    let smtp = common::smtp::SmtpServer::start();
    let http_port = common::free_port();
    let base = format!("http://127.0.0.1:{http_port}");
    let engine = Engine::start(
        "",
        &format!(
            r#"{AFTER_HOURS}
[[paging.people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
language = "fr"

[[paging.people]]
id = "claire"
name = "Claire Dubé"
email = "claire@example.net"
language = "en"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"

[paging.smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "astreinte@example.net"

[http]
listen = "127.0.0.1:{http_port}"
public_url = "{base}"
"#,
            smtp = smtp.port
        ),
    );
    let password = "correct horse battery staple";
    add_user(&engine, "ada", "admin", password);
    add_user(&engine, "tech1", "technician", password);
    add_user(&engine, "vic", "viewer", password);
    let first = common::voicemail::leave_s1_voicemail(&engine);
    let second = common::voicemail::leave_s1_voicemail_from(
        &engine,
        "4385550123",
        std::slice::from_ref(&first),
    );
    // The page e-mail links to the ticket in the console.
    let mails = smtp.wait_messages(1, Duration::from_secs(30));
    let mail = smtp.parse(&mails[0]);
    let body = mail["body"].as_str().unwrap_or("");
    assert!(
        body.contains(&format!("{base}/tickets/")),
        "the page e-mail has no console link: {body}"
    );

    // A test page: sent, delivered, and in neither the queue nor the SLA report.
    let token = astreinte(&engine, &["users", "token", "ada"], None)
        .trim()
        .to_string();
    let sent = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .arg(format!("{base}/api/people/claire/test-page"))
        .output()
        .expect("curl");
    assert!(sent.status.success(), "POST the test page");
    let test: serde_json::Value = serde_json::from_slice(&sent.stdout).expect("JSON");
    let test_ticket = test["ticket"].as_str().expect("the test page's ticket");
    common::wait::wait_until("the test page's e-mail", Duration::from_secs(30), || {
        smtp.messages().iter().any(|m| {
            smtp.parse(m)["to"]
                .as_str()
                .unwrap_or("")
                .contains("claire")
        })
    });
    common::wait::wait_until(
        "the test page marked delivered",
        Duration::from_secs(30),
        || {
            api_get(&base, &token, &format!("/api/tickets/{test_ticket}"))["page_jobs"]
                .as_array()
                .is_some_and(|j| !j.is_empty() && j.iter().all(|j| j["state"] == "done"))
        },
    );
    let delivered = api_get(&base, &token, &format!("/api/tickets/{test_ticket}"));
    assert_eq!(delivered["test_page"], true, "{delivered}");
    let queue = api_get(&base, &token, "/api/tickets");
    let listed: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["number"].as_str())
        .collect();
    assert!(!listed.contains(&test_ticket), "in the queue: {listed:?}");
    assert!(listed.contains(&first.as_str()) && listed.contains(&second.as_str()));
    let sla = api_get(&base, &token, "/api/sla/report");
    assert_eq!(
        sla["totals"]["tickets"], 2,
        "the SLA report counts the test page: {sla}"
    );
    assert!(!sla.to_string().contains(test_ticket), "{sla}");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots/phone");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(tools.join("console_phone.mjs"))
        .current_dir(&tools)
        .env("BASE", &base)
        .env("SHOTS", &shots)
        .env("TECH", "tech1")
        .env("TECH_PASS", password)
        .env("TECH_NAME", "Martin Roy")
        .env("ADMIN", "ada")
        .env("ADMIN_PASS", password)
        .env("VIEWER", "vic")
        .env("VIEWER_PASS", password)
        .env("TICKET_FR", &first)
        .env("TICKET_EN", &second)
        // Each caller asked to be called back on their own number.
        .env("CALLBACK_FR", "tel:+15145550100")
        .env("CALLBACK_EN", "tel:+14385550123")
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}\n--- engine\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        engine.log_text()
    );
    let seen: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("{}"),
    )
    .expect("the script's report");
    assert_eq!(seen["page_errors"], serde_json::json!([]), "{seen}");
    for shot in seen["screenshots"].as_array().into_iter().flatten() {
        println!("screenshot: {}", shot.as_str().unwrap_or(""));
    }
    // Both acknowledgements are the technician's.
    for n in [&first, &second] {
        let t = cli_json(&engine, &["tickets", "show", n, "--json"]);
        assert_eq!(t["status"], "acknowledged", "{t:#}");
    }
}
