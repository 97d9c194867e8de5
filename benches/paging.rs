//! Paging latency: from the moment a voicemail's ticket is committed (the end of the message,
//! as the desk sees it) to the first page leaving on every channel — e-mail (to an SMTP sink
//! on loopback), webhook (to an HTTP sink) and phone (the INVITE reaching the technician's
//! phone) — with 100 tickets opened in the same minute. On SQLite, and on PostgreSQL when
//! `ASTREINTE_BENCH_PG_URL` (or `ASTREINTE_TEST_PG_URL`) is set.
//!
//!     cargo bench --bench paging
//!
//! The planner, the worker, the store and the sinks share this process and the machine's cores:
//! the figures are end to end on one host, the SMTP and HTTP sinks answering at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astreinte::paging::config::PagingConfig;
use astreinte::paging::phone::{PhonePager, Trunk};
use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{NewTicket, Store, StoreConfig, Voicemail};
use astreinte::triage::Severity;
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

const TICKETS: usize = 100;

type Arrivals = Arc<Mutex<BTreeMap<String, Instant>>>;

/// A minimal SMTP sink: accepts every message and notes when the one naming each ticket came.
async fn smtp_sink(arrivals: Arrivals) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 sink ESMTP\r\n").await;
                let mut in_data = false;
                let mut subject: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            if let Some(s) = subject.take() {
                                arrivals
                                    .lock()
                                    .unwrap()
                                    .entry(s)
                                    .or_insert_with(Instant::now);
                            }
                            let _ = w.write_all(b"250 ok\r\n").await;
                        } else if subject.is_none() {
                            if let Some(n) = ticket_in(&line) {
                                subject = Some(n);
                            }
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 sink\r\n"
                    } else if cmd.starts_with("DATA") {
                        in_data = true;
                        b"354 go\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    port
}

/// The first 8-digit run in a line (a tracking number).
fn ticket_in(line: &str) -> Option<String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 8 {
                return Some(line[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

async fn http_sink(arrivals: Arrivals) -> u16 {
    use axum::routing::post;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let arrivals = arrivals.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                if let Some(n) = v["ticket"]["number"].as_str() {
                    arrivals
                        .lock()
                        .unwrap()
                        .entry(n.to_string())
                        .or_insert_with(Instant::now);
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// The technician's phone: notes when each INVITE arrives (never answers).
async fn phone_sink(arrivals: Arc<Mutex<Vec<Instant>>>) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind phone");
    let port = sock.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut seen = std::collections::HashSet::new();
        while let Ok((n, _)) = sock.recv_from(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.starts_with("INVITE ") {
                continue;
            }
            let call_id = text
                .lines()
                .find_map(|l| l.strip_prefix("Call-ID:"))
                .unwrap_or_default()
                .trim()
                .to_string();
            if seen.insert(call_id) {
                arrivals.lock().unwrap().push(Instant::now());
            }
        }
    });
    port
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(label: &str, store_url: &str) {
    let emails: Arrivals = Arc::default();
    let hooks: Arrivals = Arc::default();
    let invites: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let smtp = smtp_sink(emails.clone()).await;
    let http = http_sink(hooks.clone()).await;
    let phone = phone_sink(invites.clone()).await;
    let config_text = format!(
        r#"
[[people]]
id = "tech1"
name = "Martin Roy"
phone = "sip:tech1@127.0.0.1:{phone}"
email = "tech1@example.net"
language = "fr"
[[rotations]]
id = "oncall"
people = ["tech1"]
[ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"
[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "astreinte@example.net"
[[webhooks]]
id = "ops"
url = "http://127.0.0.1:{http}/hook"
secret = "bench-secret"
[worker]
plan_every_ms = 1000
"#
    );
    let config: PagingConfig = toml::from_str(&config_text).expect("paging config");
    let store = Store::connect(&StoreConfig::with_url(store_url))
        .await
        .expect("store");
    let schedule = Schedule::from_config(&ScheduleConfig::default()).expect("schedule");
    let sip_cfg = astreinte::sip::SipConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let (sip, _incoming, _sip_task) = astreinte::sip::transport::start(&sip_cfg)
        .await
        .expect("sip");
    let media_cfg = astreinte::media::MediaConfig {
        rtp_ports: "41000-41999".into(),
        realtime_priority: 0,
        ..Default::default()
    };
    let media = astreinte::media::MediaEngine::start(&media_cfg, "127.0.0.1".parse().unwrap())
        .expect("media");
    let phone_pager = PhonePager::new(
        sip.clone(),
        media.clone(),
        store.clone(),
        "127.0.0.1".parse().unwrap(),
        Trunk::default(),
        config.phone.clone(),
        Arc::new(|n: &str| Ok(n.to_string())),
    );
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let paging = astreinte::paging::service::start(
        &config,
        astreinte::paging::service::PagingDeps {
            store: store.clone(),
            schedule: schedule.clone().into(),
            phone: Some(phone_pager),
            ack_links: None,
            node: format!("bench-{}", std::process::id()),
            wake: wake.clone(),
        },
        stop_rx,
    )
    .await
    .expect("paging");
    // 100 after-hours S1 tickets within the same minute, created the way the desk does.
    let mut created: BTreeMap<String, Instant> = BTreeMap::new();
    let mut order: Vec<Instant> = Vec::new();
    let t0 = Utc::now();
    let mut handles = Vec::new();
    for i in 0..TICKETS {
        let store = store.clone();
        let schedule = schedule.clone();
        let wake = wake.clone();
        handles.push(tokio::spawn(async move {
            let mut answers = BTreeMap::new();
            answers.insert("business_hours".to_string(), "no".to_string());
            let at = t0 + chrono::Duration::milliseconds(i as i64 * 300);
            let t = NewTicket {
                severity: Severity::S1,
                caller: format!("1514555{:04}", i),
                callback_number: format!("1514555{:04}", i),
                account_id: None,
                language: "fr".into(),
                voicemail: Some(Voicemail {
                    path: "/nonexistent/vm.wav".into(),
                    seconds: 30.0,
                    speech_detected: true,
                }),
                answers,
                classification_reasons: vec![],
                suspected_incident: false,
                created_at: at,
                due: schedule.due(Severity::S1, at),
                pages: vec![],
                actor: "bench".into(),
            };
            tokio::time::sleep(Duration::from_millis(i as u64 * 300)).await;
            let start = Instant::now();
            let t = store.create_ticket(&t).await.expect("ticket");
            wake.notify_one();
            (t.number, start)
        }));
    }
    for h in handles {
        let (n, at) = h.await.expect("task");
        created.insert(n, at);
        order.push(at);
    }
    order.sort();
    // Wait for every page.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let done = emails.lock().unwrap().len() >= TICKETS
            && hooks.lock().unwrap().len() >= TICKETS
            && invites.lock().unwrap().len() >= TICKETS;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lat = |arr: &BTreeMap<String, Instant>| -> Vec<f64> {
        let mut v: Vec<f64> = created
            .iter()
            .filter_map(|(n, c)| {
                arr.get(n)
                    .map(|a| a.duration_since(*c).as_secs_f64() * 1000.0)
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let e = lat(&emails.lock().unwrap());
    let w = lat(&hooks.lock().unwrap());
    // INVITEs carry no ticket number: the k-th INVITE is matched with the k-th ticket.
    let mut p: Vec<f64> = {
        let inv = invites.lock().unwrap();
        let mut inv = inv.clone();
        inv.sort();
        inv.iter()
            .zip(&order)
            .map(|(a, c)| a.saturating_duration_since(*c).as_secs_f64() * 1000.0)
            .collect()
    };
    p.sort_by(|a, b| a.total_cmp(b));
    println!("paging/{label}: {TICKETS} tickets over 30 s, ticket committed → page sent (ms)");
    for (name, v) in [("email", &e), ("webhook", &w), ("phone", &p)] {
        println!(
            "  {name:8} received {:3}/{TICKETS}  p50 {:7.1}  p99 {:7.1}  max {:7.1}",
            v.len(),
            percentile(v, 0.50),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    let _ = stop_tx.send(true);
    for t in paging.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    sip.shutdown();
    media.shutdown();
    let _ = SocketAddr::from(([127, 0, 0, 1], 0));
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    rt.block_on(run("sqlite", &sqlite));
    let pg = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok();
    match pg {
        Some(url) => rt.block_on(async {
            // A database of its own, so no other ticket is in the planner's view.
            use sqlx::Executor;
            let admin = sqlx::PgPool::connect(&url).await.expect("postgres");
            let db = format!("astreinte_paging_bench_{}", std::process::id());
            admin
                .execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            run("postgres", &format!("{base}/{db}")).await;
            let _ = admin
                .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
                .await;
        }),
        None => println!("paging/postgres: skipped (set ASTREINTE_BENCH_PG_URL)"),
    }
}
