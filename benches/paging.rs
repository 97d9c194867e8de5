//! Paging latency: from the moment a voicemail's ticket is committed (the end of the message,
//! as the desk sees it) to the first page leaving on every channel — e-mail (to an SMTP sink
//! on loopback), webhook (to an HTTP sink) and phone (the INVITE reaching the technician's
//! phone) — with 100 tickets opened in the same minute. On SQLite, and on PostgreSQL when
//! `ASTREINTE_BENCH_PG_URL` (or `ASTREINTE_TEST_PG_URL`) is set.
//!
//! On PostgreSQL a second phase runs two paging services at once, as two nodes would (a pool,
//! a SIP transport, a media engine and a lease owner name each: `bench-a-<pid>`,
//! `bench-b-<pid>`), contending for the same outbox (`FOR UPDATE SKIP LOCKED`) with the same
//! sinks and the same 100 tickets, opened on either node in turn and each waking both nodes'
//! planners (both race to enqueue and to lease every page). It prints the same figures
//! next to the one-worker ones, which node sent how many pages, and checks that no page was
//! sent twice (each ticket's e-mail and webhook reach their sink once, one call per ticket).
//!
//! Lease → send: a delivered job keeps no trace of its lease (`page_delivered` clears
//! `lease_owner` and `lease_until` and overwrites `updated_at`), so it cannot be computed from
//! the store. The bench reports, from the recorded `sent_at`, commit → send recorded, and on
//! PostgreSQL enqueue → send recorded (the job's `created_at` to its `sent_at`), an upper bound
//! of lease → send.
//!
//!     cargo bench --bench paging
//!     ASTREINTE_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench paging
//!
//! The planner, the worker, the store and the sinks share this process and the machine's cores:
//! the figures are end to end on one host, the SMTP and HTTP sinks answering at once.

use astreinte::call::callback::CallbackNumber;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astreinte::media::{MediaConfig, MediaEngine};
use astreinte::paging::config::PagingConfig;
use astreinte::paging::phone::{PhonePager, Trunk};
use astreinte::paging::service::{Paging, PagingDeps};
use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::sip::{InboundCall, SipConfig, SipHandle};
use astreinte::store::{NewTicket, PageState, Store, StoreConfig, Voicemail};
use astreinte::triage::Severity;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Notify};

const TICKETS: usize = 100;

/// When the first copy of a ticket's page reached a sink, and how many copies did.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    first: Instant,
    copies: usize,
}

type Arrivals = Arc<Mutex<BTreeMap<String, Arrival>>>;

fn arrived(arrivals: &Arrivals, ticket: String) {
    arrivals
        .lock()
        .expect("arrivals lock")
        .entry(ticket)
        .and_modify(|a| a.copies += 1)
        .or_insert(Arrival {
            first: Instant::now(),
            copies: 1,
        });
}

/// Copies beyond the first, over every ticket.
fn duplicates(arrivals: &Arrivals) -> usize {
    arrivals
        .lock()
        .expect("arrivals lock")
        .values()
        .map(|a| a.copies - 1)
        .sum()
}

/// A minimal SMTP sink: accepts every message and notes when the ones naming each ticket came.
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
                                arrived(&arrivals, s);
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
                    arrived(&arrivals, n.to_string());
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

/// What the technician's phone saw: when each call's first INVITE came, and from where (which
/// node's SIP transport).
#[derive(Debug, Default)]
struct Invites {
    at: Vec<Instant>,
    by_source: BTreeMap<SocketAddr, usize>,
}

/// The technician's phone: notes when each INVITE arrives (never answers).
async fn phone_sink(invites: Arc<Mutex<Invites>>) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind phone");
    let port = sock.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut seen = std::collections::HashSet::new();
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
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
                let mut inv = invites.lock().expect("invites lock");
                inv.at.push(Instant::now());
                *inv.by_source.entry(from).or_default() += 1;
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

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn print_line(name: &str, v: &[f64]) {
    println!(
        "  {name:8} received {:3}/{TICKETS}  p50 {:7.1}  p99 {:7.1}  max {:7.1}",
        v.len(),
        percentile(v, 0.50),
        percentile(v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

/// One paging service with what a node gives it: its own pool, SIP transport and media engine.
struct Node {
    name: String,
    store: Store,
    wake: Arc<Notify>,
    paging: Paging,
    stop: watch::Sender<bool>,
    sip: SipHandle,
    media: MediaEngine,
    _incoming: mpsc::Receiver<InboundCall>,
}

async fn start_node(
    config: &PagingConfig,
    store_url: &str,
    schedule: &Schedule,
    name: String,
    rtp_ports: &str,
) -> Node {
    let store = Store::connect(&StoreConfig::with_url(store_url))
        .await
        .expect("store");
    let sip_cfg = SipConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let (sip, incoming, _sip_task) = astreinte::sip::transport::start(&sip_cfg)
        .await
        .expect("sip");
    let media_cfg = MediaConfig {
        rtp_ports: rtp_ports.into(),
        realtime_priority: 0,
        ..Default::default()
    };
    let media = MediaEngine::start(&media_cfg, "127.0.0.1".parse().expect("ip")).expect("media");
    let phone_pager = PhonePager::new(
        sip.clone(),
        media.clone(),
        store.clone(),
        "127.0.0.1".parse().expect("ip"),
        Trunk::default(),
        config.phone.clone(),
        Arc::new(|n: &str| Ok(n.to_string())),
    );
    let wake = Arc::new(Notify::new());
    let (stop, stop_rx) = watch::channel(false);
    let paging = astreinte::paging::service::start(
        config,
        PagingDeps {
            store: store.clone(),
            schedule: schedule.clone().into(),
            phone: Some(phone_pager),
            ack_links: None,
            console_base: None,
            node: name.clone(),
            wake: wake.clone(),
        },
        stop_rx,
    )
    .await
    .expect("paging");
    Node {
        name,
        store,
        wake,
        paging,
        stop,
        sip,
        media,
        _incoming: incoming,
    }
}

impl Node {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.paging.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        self.sip.shutdown();
        self.media.shutdown();
    }
}

/// A run's commit → first page figures (ms, sorted) per channel, and the pages that reached
/// the e-mail and webhook sinks more than once.
struct Figures {
    email: Vec<f64>,
    webhook: Vec<f64>,
    phone: Vec<f64>,
    duplicates: usize,
}

/// `nodes` paging services (one lease owner name and RTP port range each) against `store_url`.
async fn run(label: &str, store_url: &str, nodes: &[(&str, &str)]) -> Figures {
    let emails: Arrivals = Arc::default();
    let hooks: Arrivals = Arc::default();
    let invites: Arc<Mutex<Invites>> = Arc::default();
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
    let schedule = Schedule::from_config(&ScheduleConfig::default()).expect("schedule");
    let mut started = Vec::new();
    for (name, ports) in nodes {
        started.push(start_node(&config, store_url, &schedule, name.to_string(), ports).await);
    }
    // 100 after-hours S1 tickets within the same minute, created the way the desk does, on
    // each node in turn (the calls land on either). Each wakes every node's planner, not only
    // its own: both planners enqueue the pages (the dedup keys keep one) and both workers race
    // for the lease, the most contention two nodes can have.
    let wakes: Vec<Arc<Notify>> = started.iter().map(|n| n.wake.clone()).collect();
    let mut created: BTreeMap<String, (Instant, DateTime<Utc>)> = BTreeMap::new();
    let mut order: Vec<Instant> = Vec::new();
    let t0 = Utc::now();
    let mut handles = Vec::new();
    for i in 0..TICKETS {
        let node = &started[i % started.len()];
        let store = node.store.clone();
        let wakes = wakes.clone();
        let schedule = schedule.clone();
        handles.push(tokio::spawn(async move {
            let mut answers = BTreeMap::new();
            answers.insert("business_hours".to_string(), "no".to_string());
            let at = t0 + chrono::Duration::milliseconds(i as i64 * 300);
            let t = NewTicket {
                severity: Severity::S1,
                caller: format!("1514555{:04}", i),
                callback_number: CallbackNumber::from_record(&format!("1514555{:04}", i)),
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
                time_scale: astreinte::schedule::TimeScale::REAL,
                created_at: at,
                due: schedule.due(Severity::S1, at),
                pages: vec![],
                actor: "bench".into(),
            };
            tokio::time::sleep(Duration::from_millis(i as u64 * 300)).await;
            let start = (Instant::now(), Utc::now());
            let t = store.create_ticket(&t).await.expect("ticket");
            for wake in &wakes {
                wake.notify_one();
            }
            (t.number, start)
        }));
    }
    for h in handles {
        let (n, at) = h.await.expect("task");
        created.insert(n, at);
        order.push(at.0);
    }
    order.sort();
    // Wait for every page.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let done = emails.lock().expect("emails").len() >= TICKETS
            && hooks.lock().expect("hooks").len() >= TICKETS
            && invites.lock().expect("invites").at.len() >= TICKETS;
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lat = |arr: &Arrivals| -> Vec<f64> {
        let arr = arr.lock().expect("arrivals lock");
        sorted(
            created
                .iter()
                .filter_map(|(n, (c, _))| {
                    arr.get(n)
                        .map(|a| a.first.duration_since(*c).as_secs_f64() * 1000.0)
                })
                .collect(),
        )
    };
    let e = lat(&emails);
    let w = lat(&hooks);
    // INVITEs carry no ticket number: the k-th INVITE is matched with the k-th ticket.
    let p: Vec<f64> = {
        let mut inv = invites.lock().expect("invites lock").at.clone();
        inv.sort();
        sorted(
            inv.iter()
                .zip(&order)
                .map(|(a, c)| a.saturating_duration_since(*c).as_secs_f64() * 1000.0)
                .collect(),
        )
    };
    let workers = started.len();
    println!(
        "paging/{label}: {TICKETS} tickets over 30 s, {workers} worker{}, ticket committed → page sent (ms)",
        if workers == 1 { "" } else { "s" }
    );
    for (name, v) in [("email", &e), ("webhook", &w), ("phone", &p)] {
        print_line(name, v);
    }

    // What the store recorded. The sinks answered before the jobs were marked done: give the
    // workers a moment to record the last ones.
    let store = started[0].store.clone();
    let mut jobs = Vec::new();
    let settle = Instant::now() + Duration::from_secs(5);
    loop {
        jobs.clear();
        for n in created.keys() {
            for j in store.page_jobs(n).await.expect("page jobs") {
                jobs.push((n.clone(), j));
            }
        }
        let sent = jobs
            .iter()
            .filter(|(_, j)| j.channel != "phone" && j.sent_at.is_some())
            .count();
        if sent >= 2 * TICKETS || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  recorded: lease → send cannot be computed (a delivered job keeps neither lease_until nor \
         lease_owner); ticket committed → sent_at (ms) instead:"
    );
    for (name, channel) in [("email", "email"), ("webhook", "webhook:ops")] {
        let v = sorted(
            jobs.iter()
                .filter(|(_, j)| j.channel == channel)
                .filter_map(|(n, j)| {
                    let sent = j.sent_at?;
                    let (_, committed) = created.get(n)?;
                    Some((sent - *committed).num_microseconds()? as f64 / 1000.0)
                })
                .collect(),
        );
        print_line(name, &v);
    }
    let releases = jobs.iter().filter(|(_, j)| j.attempts > 1).count();
    let by_state = |s: PageState| jobs.iter().filter(|(_, j)| j.state == s).count();
    println!(
        "  jobs: {} (done {}, leased {}, failed {}, pending {}); leased more than once: {releases}",
        jobs.len(),
        by_state(PageState::Done),
        by_state(PageState::Leased),
        by_state(PageState::Failed),
        by_state(PageState::Pending),
    );
    if store_url.starts_with("postgres") {
        // The job's created_at is when the planner enqueued it: enqueue → send bounds lease → send.
        let pool = sqlx::PgPool::connect(store_url).await.expect("postgres");
        let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT channel, created_at, sent_at FROM page_jobs WHERE sent_at IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .expect("page_jobs");
        pool.close().await;
        println!(
            "  recorded: job enqueued (created_at) → sent_at (ms), an upper bound of lease → send:"
        );
        for (name, channel) in [("email", "email"), ("webhook", "webhook:ops")] {
            let v = sorted(
                rows.iter()
                    .filter(|(c, _, _)| c == channel)
                    .filter_map(|(_, enq, sent)| {
                        Some((*sent - *enq).num_microseconds()? as f64 / 1000.0)
                    })
                    .collect(),
            );
            print_line(name, &v);
        }
    }

    // Who sent what: lease_owner does not survive a delivered job, so each node's counters.
    let by_source = invites.lock().expect("invites lock").by_source.clone();
    for node in &started {
        let counts: Vec<String> = node
            .paging
            .counters
            .snapshot()
            .into_iter()
            .map(|(c, n)| format!("{c} sent {} failed {}", n.sent, n.failed))
            .collect();
        let calls = by_source
            .get(&node.sip.local_addr())
            .copied()
            .unwrap_or_default();
        println!(
            "  {}: {}; phone INVITEs {calls}",
            node.name,
            if counts.is_empty() {
                "nothing sent".to_string()
            } else {
                counts.join(", ")
            }
        );
    }
    let (de, dw) = (duplicates(&emails), duplicates(&hooks));
    let calls: usize = by_source.values().sum();
    println!(
        "  sent twice: e-mail {de}, webhook {dw}; phone calls {calls} for {TICKETS} tickets{}",
        if de + dw == 0 && calls <= TICKETS {
            " — no page sent twice"
        } else {
            " — SOME PAGES WERE SENT TWICE"
        }
    );

    for node in started {
        node.stop().await;
    }
    Figures {
        email: e,
        webhook: w,
        phone: p,
        duplicates: de + dw + calls.saturating_sub(TICKETS),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pid = std::process::id();
    let one = format!("bench-{pid}");
    let (a, b) = (format!("bench-a-{pid}"), format!("bench-b-{pid}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    let lite = rt.block_on(run("sqlite", &sqlite, &[(&one, "41000-41999")]));
    assert_eq!(lite.duplicates, 0, "a page was sent twice (sqlite)");
    let pg = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok();
    let Some(url) = pg else {
        println!("paging/postgres: skipped (set ASTREINTE_BENCH_PG_URL)");
        println!("paging/postgres-2-workers: skipped (set ASTREINTE_BENCH_PG_URL)");
        return;
    };
    let (single, pair) = rt.block_on(async {
        // A database of its own per phase, so no other ticket is in the planners' view.
        use sqlx::Executor;
        let admin = sqlx::PgPool::connect(&url).await.expect("postgres");
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let mut figures = Vec::new();
        for (label, nodes) in [
            ("postgres", vec![(one.as_str(), "41000-41999")]),
            (
                "postgres-2-workers",
                vec![(a.as_str(), "41000-41499"), (b.as_str(), "41500-41999")],
            ),
        ] {
            let db = format!("astreinte_paging_bench_{pid}_{}", nodes.len());
            admin
                .execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
            figures.push(run(label, &format!("{base}/{db}"), &nodes).await);
            let _ = admin
                .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
                .await;
        }
        let pair = figures.pop().expect("two-worker figures");
        let single = figures.pop().expect("one-worker figures");
        (single, pair)
    });
    println!("paging/postgres: ticket committed → page sent (ms), 1 worker vs 2 workers");
    for (name, one, two) in [
        ("email", &single.email, &pair.email),
        ("webhook", &single.webhook, &pair.webhook),
        ("phone", &single.phone, &pair.phone),
    ] {
        println!(
            "  {name:8} 1 worker: p50 {:7.1}  p99 {:7.1}   2 workers: p50 {:7.1}  p99 {:7.1}",
            percentile(one, 0.50),
            percentile(one, 0.99),
            percentile(two, 0.50),
            percentile(two, 0.99),
        );
    }
    assert_eq!(
        single.duplicates + pair.duplicates,
        0,
        "a page was sent twice"
    );
}
