//! The storm drill (`drills/storm.toml`: an outage, 200 callers in 15 night minutes, drilled
//! at ×60) with every role played by `astreinte drill` over real sockets. On two nodes behind
//! Kamailio on one PostgreSQL when `ASTREINTE_BENCH_PG_URL` (or `ASTREINTE_TEST_PG_URL`) names
//! one (needs kamailio and psql), else on one node with SQLite (and says so). Prints what the
//! issue asks: tickets, pages, the time from each voicemail's end to its first page (p50/p99,
//! wall seconds), met and missed per severity, duplicate pages, calls without a ticket, and
//! the most pages one person received (a page carrying several tickets counts once).
//!
//!     ASTREINTE_BENCH_PG_URL=postgres://... cargo bench --bench drill_storm
//!
//! Run from the repository (the callers' speech is a bundled prompt). The engines, Kamailio and
//! the drill share this machine's cores: read the figures as this machine's, noted with it.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{free_port, Engine, Schema};

#[allow(dead_code)]
#[path = "../tests/common/kamailio.rs"]
mod kamailio;

/// The ports the drill listens on, which every node's config names.
struct DrillPorts {
    phones: u16,
    mail: u16,
    webhook: u16,
}

/// One node's config: `store` its database, `rtp` its own port range.
fn node_config(
    dir: &Path,
    name: &str,
    sip: u16,
    http: u16,
    store: &str,
    rtp: &str,
    d: &DrillPorts,
) -> String {
    let DrillPorts {
        phones,
        mail,
        webhook,
    } = d;
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
    format!(
        r#"[sip]
listen = "127.0.0.1:{sip}"
drain_secs = 0

[sip.outbound]
proxy = "sip:127.0.0.1:{phones}"
from = "sip:astreinte@127.0.0.1"

[media]
rtp_ports = "{rtp}"
recordings_dir = "{dir}/{name}-recordings"

[store]
url = "{store}"

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
        dir = dir.display()
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drill = DrillPorts {
        phones: free_port(),
        mail: free_port(),
        webhook: free_port(),
    };
    let pg = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok();
    let schema = pg.as_deref().map(|admin| Schema::create(admin, "storm"));
    let (sip_a, http_a) = (free_port(), free_port());
    let mut nodes = Vec::new();
    let target: SocketAddr;
    let _proxy;
    let setup;
    match &schema {
        Some(schema) => {
            let (sip_b, http_b) = (free_port(), free_port());
            nodes.push(Engine::spawn(
                dir.path(),
                "a.toml",
                &node_config(
                    dir.path(),
                    "a",
                    sip_a,
                    http_a,
                    &schema.url,
                    "30000-34999",
                    &drill,
                ),
                "warn",
            ));
            nodes.push(Engine::spawn(
                dir.path(),
                "b.toml",
                &node_config(
                    dir.path(),
                    "b",
                    sip_b,
                    http_b,
                    &schema.url,
                    "35000-39999",
                    &drill,
                ),
                "warn",
            ));
            std::thread::sleep(std::time::Duration::from_secs(3));
            let proxy = kamailio::Kamailio::start(
                &[
                    SocketAddr::from(([127, 0, 0, 1], sip_a)),
                    SocketAddr::from(([127, 0, 0, 1], sip_b)),
                ],
                1,
            );
            target = proxy.addr;
            _proxy = Some(proxy);
            setup = "two nodes behind Kamailio on one PostgreSQL";
        }
        None => {
            let store = format!("sqlite://{}/astreinte.db", dir.path().display());
            nodes.push(Engine::spawn(
                dir.path(),
                "a.toml",
                &node_config(
                    dir.path(),
                    "a",
                    sip_a,
                    http_a,
                    &store,
                    "30000-39999",
                    &drill,
                ),
                "warn",
            ));
            std::thread::sleep(std::time::Duration::from_secs(3));
            target = SocketAddr::from(([127, 0, 0, 1], sip_a));
            _proxy = None;
            setup = "ONE node on SQLite (set ASTREINTE_BENCH_PG_URL for two nodes)";
        }
    }
    let (phones, mail, webhook) = (drill.phones, drill.mail, drill.webhook);
    let http = http_a;
    let cfg = dir.path().join("a.toml");
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
        .args(["--target", &target.to_string()])
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
        // A page that carried several tickets is one page to its person.
        for p in t["pages"].as_array().into_iter().flatten() {
            if p["carried"] != true {
                *per_person
                    .entry(p["person"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
            }
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
    println!("--- storm drill, {setup}, this machine (2 cores shared by every process)");
    println!(
        "wall time {:.0} s; tickets {}; page records {} (pages each person received: {per_person:?})",
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
