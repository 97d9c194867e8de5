//! The storm drill (`drills/storm.toml`: an outage, 200 callers in 15 night minutes, drilled
//! at ×60) against one engine on this machine, with every role played by `astreinte drill`
//! over real sockets. Prints what the issue asks: tickets, pages, the time from each voicemail's
//! end to its first page (p50/p99, wall seconds), met and missed per severity, duplicate pages,
//! calls without a ticket, and the most pages one person received.
//!
//! `cargo bench --bench drill_storm` (run from the repository: the callers' speech is a bundled
//! prompt). The engine and the drill share this machine's cores: read the figures as this
//! machine's, noted with it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{free_port, Engine};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sip, http, phones, mail, webhook) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let people = [
        ("tech-a", "1999000001"),
        ("tech-e", "1999000002"),
        ("tech-b", "1999000003"),
        ("tech-c", "1999000004"),
        ("tech-d", "1999000005"),
    ]
    .iter()
    .map(|(id, n)| {
        format!(
            "[[paging.people]]\nid = \"{id}\"\nname = \"{id}\"\nphone = \"sip:{n}@127.0.0.1:{phones}\"\nemail = \"{id}@example.net\"\nlanguage = \"fr\"\n\n"
        )
    })
    .collect::<String>();
    let config = format!(
        r#"[sip]
listen = "127.0.0.1:{sip}"
drain_secs = 0

[sip.outbound]
proxy = "sip:127.0.0.1:{phones}"
from = "sip:astreinte@127.0.0.1"

[media]
rtp_ports = "30000-39999"
recordings_dir = "{dir}/recordings"

[store]
url = "sqlite://{dir}/astreinte.db"

[schedule.open]

[schedule.maintenance]

[drill]
time_scale = 60

[paging.phone]
ring_secs = 10

{people}[paging.ladder]
levels = [["tech-a", "tech-e"], ["tech-b"], ["tech-c"], ["tech-d"]]

[paging.smtp]
url = "smtp://127.0.0.1:{mail}"
from = "astreinte@example.net"

[[paging.webhooks]]
id = "ops"
url = "http://127.0.0.1:{webhook}/hook"
secret = "a drill storm secret, long enough to sign"
format = "json"

[http]
listen = "127.0.0.1:{http}"
"#,
        dir = dir.path().display()
    );
    let _engine = Engine::spawn(dir.path(), "astreinte.toml", &config, "warn");
    let cfg = dir.path().join("astreinte.toml");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut add = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "add", "drill", "--role", "viewer", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("users add");
    if let Some(mut input) = add.stdin.take() {
        let _ = writeln!(input, "a drill password 1");
    }
    assert!(add.wait().is_ok_and(|s| s.success()), "users add");
    let token = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["users", "token", "drill", "--config"])
        .arg(&cfg)
        .output()
        .expect("users token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();

    let json = dir.path().join("storm.json");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_astreinte"))
        .args(["drill", "drills/storm.toml", "--number", "611"])
        .args(["--target", &format!("127.0.0.1:{sip}")])
        .args(["--console", &format!("http://127.0.0.1:{http}")])
        .args(["--phones", &phones.to_string()])
        .args(["--mail", &mail.to_string()])
        .args(["--webhook", &webhook.to_string()])
        .arg("--json")
        .arg(&json)
        .env("ASTREINTE_DRILL_TOKEN", &token)
        .env("ASTREINTE_LOG", "warn")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("astreinte drill");
    let took = started.elapsed();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = match std::fs::read(&json) {
        Ok(b) => serde_json::from_slice(&b).expect("storm.json"),
        Err(e) => panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)),
    };
    let tickets = report["tickets"].as_array().cloned().unwrap_or_default();
    let pages: usize = tickets
        .iter()
        .map(|t| t["pages"].as_array().map_or(0, Vec::len))
        .sum();
    let mut per_person = std::collections::BTreeMap::<String, usize>::new();
    let mut to_first_page = Vec::new();
    for t in &tickets {
        let at = |v: &serde_json::Value| {
            v.as_str()
                .and_then(|s| s.parse::<chrono::DateTime<chrono::Utc>>().ok())
        };
        for p in t["pages"].as_array().into_iter().flatten() {
            *per_person
                .entry(p["person"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        if let (Some(end), Some(first)) = (at(&t["voicemail_end"]), at(&t["first_page"])) {
            to_first_page.push((first - end).num_milliseconds() as f64 / 1000.0);
        }
    }
    to_first_page.sort_by(f64::total_cmp);
    let q = |p: f64| {
        to_first_page
            .get(((to_first_page.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "--- storm drill, one node, this machine (2 cores shared by the engine and the drill)"
    );
    println!(
        "wall time {:.0} s; tickets {}; pages {} (per person: {per_person:?})",
        took.as_secs_f64(),
        tickets.len(),
        pages
    );
    println!(
        "voicemail end -> first page: p50 {:.1} s, p99 {:.1} s (wall; x60: one wall second is a night minute)",
        q(0.5),
        q(0.99)
    );
    println!(
        "met {} missed {}; duplicate pages {}; calls without ticket {}; exit {:?}",
        report["met"],
        report["missed"],
        report["duplicate_pages"],
        report["calls_without_ticket"],
        out.status.code()
    );
}
