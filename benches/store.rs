//! Store benchmark (plain main, prints figures):
//! 1. tickets created per second, each with its 2 event rows and 2 page jobs, on SQLite and on
//!    PostgreSQL (ASTREINTE_BENCH_PG_URL or ASTREINTE_TEST_PG_URL), one task and 16 at once;
//! 2. `tickets list --open` on a store of 1 million tickets (0.1 % open): the library call and
//!    the real CLI process.
//!
//! Run: `cargo bench --bench store` (env ASTREINTE_BENCH_TICKETS, ASTREINTE_BENCH_ROWS to size).

use astreinte::call::callback::CallbackNumber;
use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{ListFilter, NewPage, NewTicket, Store, StoreConfig, Voicemail};
use astreinte::triage::Severity;
use chrono::{TimeZone, Utc};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A 31.5 s voicemail WAV (8 kHz mono 16-bit, about 500 KB) for the tickets that carry audio.
fn voicemail_wav() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("astreinte-bench-vm-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).expect("bench wav");
        for n in 0..252_000u32 {
            let v = ((n as f32 * 0.07).sin() * 8000.0) as i16;
            w.write_sample(v).expect("bench wav sample");
        }
        w.finalize().expect("bench wav");
        path.display().to_string()
    })
}

/// With `audio`, the voicemail file exists, so its bytes are committed with the ticket (as
/// the desk does); without, the path leads nowhere and only the ticket's rows are written.
fn ticket_with_audio(i: usize, audio: bool) -> NewTicket {
    let sched = Schedule::from_config(&ScheduleConfig::default()).expect("default schedule");
    let at = Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap()
        + chrono::Duration::milliseconds(i as i64);
    let mut answers = BTreeMap::new();
    answers.insert("affected_service".into(), "inbound calls".into());
    NewTicket {
        severity: Severity::S1,
        caller: format!("1514555{:04}", i % 10_000),
        callback_number: CallbackNumber::from_record("15145550100"),
        account_id: None,
        language: "fr".into(),
        voicemail: Some(Voicemail {
            path: if audio {
                voicemail_wav().to_string()
            } else {
                format!("/var/lib/astreinte/vm/{i}.wav")
            },
            seconds: 31.5,
            speech_detected: true,
        }),
        answers,
        classification_reasons: vec!["caller chose 1: service not working".into()],
        suspected_incident: false,
        time_scale: astreinte::schedule::TimeScale::REAL,
        created_at: at,
        due: sched.due(Severity::S1, at),
        pages: vec![
            NewPage::simple("sip", "on-call:primary", at),
            NewPage::simple("email", "on-call:primary", at),
        ],
        actor: "ivr".into(),
    }
}

async fn create_rate(store: &Store, n: usize, tasks: usize) -> f64 {
    create_rate_with(store, n, tasks, false).await
}

async fn create_rate_with(store: &Store, n: usize, tasks: usize, audio: bool) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                store
                    .create_ticket(&ticket_with_audio(i, audio))
                    .await
                    .expect("create_ticket");
                i += tasks;
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn bench_create(label: &str, cfg: &StoreConfig, n: usize) {
    let store = Store::connect(cfg).await.expect("connect");
    let one = create_rate(&store, n, 1).await;
    let many = create_rate(&store, n, 16).await;
    println!("create_ticket {label}: {one:.0} tickets/s (1 task), {many:.0} tickets/s (16 tasks), n={n} each, 2 events + 2 page jobs per ticket");
    // With the voicemail's audio committed beside each ticket (issue 14): 200 tickets of 31.5 s.
    let with_audio = create_rate_with(&store, 200, 16, true).await;
    println!(
        "create_ticket {label} with a 31.5 s voicemail's audio (504 KB) each: {with_audio:.0} tickets/s (16 tasks), {:.0} MB/s of audio",
        with_audio * 0.504
    );
    store.close().await;
}

async fn pg_schema(url: &str, name: &str) -> (String, sqlx::PgPool, String) {
    let admin = sqlx::PgPool::connect(url)
        .await
        .expect("connect to PostgreSQL");
    let schema = format!("bench_{name}_{}", std::process::id());
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("drop");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .expect("schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        format!("{url}{sep}options=-c%20search_path%3D{schema}"),
        admin,
        schema,
    )
}

const SEED_SQLITE: &str = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1)
INSERT INTO tickets (number, severity, status, caller, callback_number, language, created_at,
  callback_due_at, resolution_due_at, voicemail_path, voicemail_seconds, speech_detected,
  answers, classification_reasons, suspected_incident, called_back_at, resolved_at)
SELECT printf('%08d', 10000000 + i), 'S' || (1 + i % 3),
  CASE WHEN i % 1000 = 0 THEN 'open' ELSE 'resolved' END,
  '1514555' || printf('%04d', i % 10000), '15145550100', 'fr',
  strftime('%Y-%m-%dT%H:%M:%S+00:00', 1600000000 + i * 60, 'unixepoch'),
  strftime('%Y-%m-%dT%H:%M:%S+00:00', 1600000000 + i * 60 + 1800, 'unixepoch'),
  strftime('%Y-%m-%dT%H:%M:%S+00:00', 1600000000 + i * 60 + 7200, 'unixepoch'),
  '/vm/' || i || '.wav', 30.0, 1, '{}', '[\"seeded\"]', 0,
  CASE WHEN i % 1000 = 0 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%S+00:00', 1600000000 + i * 60 + 900, 'unixepoch') END,
  CASE WHEN i % 1000 = 0 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%S+00:00', 1600000000 + i * 60 + 3600, 'unixepoch') END
FROM seq";

const SEED_PG: &str = "INSERT INTO tickets (number, severity, status, caller, callback_number, language, created_at,
  callback_due_at, resolution_due_at, voicemail_path, voicemail_seconds, speech_detected,
  answers, classification_reasons, suspected_incident, called_back_at, resolved_at)
SELECT (10000000 + i)::text, 'S' || (1 + i % 3),
  CASE WHEN i % 1000 = 0 THEN 'open' ELSE 'resolved' END,
  '1514555' || lpad((i % 10000)::text, 4, '0'), '15145550100', 'fr',
  to_timestamp(1600000000 + i * 60), to_timestamp(1600000000 + i * 60 + 1800),
  to_timestamp(1600000000 + i * 60 + 7200), '/vm/' || i || '.wav', 30.0, true, '{}', '[\"seeded\"]', false,
  CASE WHEN i % 1000 = 0 THEN NULL ELSE to_timestamp(1600000000 + i * 60 + 900) END,
  CASE WHEN i % 1000 = 0 THEN NULL ELSE to_timestamp(1600000000 + i * 60 + 3600) END
FROM generate_series(1, $1) AS i";

fn median(mut v: Vec<StdDuration>) -> StdDuration {
    v.sort();
    v[v.len() / 2]
}

async fn bench_list(label: &str, store: &Store, config_file: &std::path::Path) {
    let mut lib = Vec::new();
    let mut count = 0;
    for _ in 0..20 {
        let t = Instant::now();
        count = store
            .list_tickets(&ListFilter {
                open_only: true,
                limit: Some(1000),
            })
            .await
            .expect("list")
            .len();
        lib.push(t.elapsed());
    }
    let mut cli = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_astreinte"))
            .args(["tickets", "list", "--open", "--json", "--config"])
            .arg(config_file)
            .output()
            .expect("run the CLI");
        cli.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "tickets list --open {label}: {count} open of 1M+: library median {:.1} ms (max {:.1}), CLI process median {:.1} ms (max {:.1})",
        median(lib.clone()).as_secs_f64() * 1e3,
        lib.iter().max().unwrap().as_secs_f64() * 1e3,
        median(cli.clone()).as_secs_f64() * 1e3,
        cli.iter().max().unwrap().as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let n = env_usize("ASTREINTE_BENCH_TICKETS", 5000);
    let rows = env_usize("ASTREINTE_BENCH_ROWS", 1_000_000) as i64;
    let pg_url = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        for sync in ["full", "normal"] {
            let cfg = StoreConfig {
                url: format!("sqlite://{}/create-{sync}.db", dir.path().display()),
                sqlite_synchronous: sync.into(),
                ..StoreConfig::default()
            };
            bench_create(&format!("sqlite synchronous={sync}"), &cfg, n).await;
        }
        if let Some(url) = &pg_url {
            let (u, admin, schema) = pg_schema(url, "create").await;
            bench_create("postgres", &StoreConfig::with_url(u), n).await;
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await;
        } else {
            println!("create_ticket postgres: SKIPPED (set ASTREINTE_BENCH_PG_URL)");
        }

        // 1M tickets: bulk seeded in one statement, then list the open ones.
        let url = format!("sqlite://{}/million.db", dir.path().display());
        let store = Store::connect(&StoreConfig::with_url(&url))
            .await
            .expect("connect");
        let t = Instant::now();
        let mut conn = sqlx::SqlitePool::connect(&url).await.expect("seed pool");
        sqlx::query(SEED_SQLITE)
            .bind(rows)
            .execute(&conn)
            .await
            .expect("seed sqlite");
        conn.close().await;
        conn = sqlx::SqlitePool::connect(&url).await.expect("analyze pool");
        sqlx::query("ANALYZE")
            .execute(&conn)
            .await
            .expect("analyze");
        conn.close().await;
        println!(
            "seeded {rows} tickets on sqlite in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let cfg_file = dir.path().join("million.toml");
        std::fs::write(&cfg_file, format!("[store]\nurl = \"{url}\"\n")).expect("config");
        bench_list("sqlite", &store, &cfg_file).await;
        store.close().await;

        if let Some(url) = &pg_url {
            let (u, admin, schema) = pg_schema(url, "million").await;
            let store = Store::connect(&StoreConfig::with_url(&u))
                .await
                .expect("connect");
            let t = Instant::now();
            let seed = sqlx::PgPool::connect(&u).await.expect("seed pool");
            sqlx::query(SEED_PG)
                .bind(rows)
                .execute(&seed)
                .await
                .expect("seed pg");
            sqlx::query("ANALYZE tickets")
                .execute(&seed)
                .await
                .expect("analyze");
            seed.close().await;
            println!(
                "seeded {rows} tickets on postgres in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let cfg_file = dir.path().join("million-pg.toml");
            std::fs::write(&cfg_file, format!("[store]\nurl = \"{u}\"\n")).expect("config");
            bench_list("postgres", &store, &cfg_file).await;
            store.close().await;
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await;
        }
    });
}
