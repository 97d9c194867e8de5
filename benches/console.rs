//! The console's ticket list under load: 100,000 tickets in the store (2 % open), 20 concurrent
//! clients with an API token, through the whole console router (the authentication layer
//! included), on SQLite and on PostgreSQL (`ASTREINTE_BENCH_PG_URL` or `ASTREINTE_TEST_PG_URL`).
//! The target: p99 under 50 ms for `GET /api/tickets` and the `/tickets` page.
//!
//!     cargo bench --bench console
//!
//! Client and server share this process and the machine's cores: the figures are end to end
//! on one host.

use std::sync::Arc;
use std::time::Instant;

use astreinte::admin::auth::{new_api_token, secret_hash};
use astreinte::admin::AdminState;
use astreinte::config::Config;
use astreinte::store::{Store, StoreConfig};
use chrono::{Duration, Utc};

const TICKETS: usize = 100_000;
const CLIENTS: usize = 20;
const PER_CLIENT: usize = 100;

/// Inserts `n` tickets straight into the table, one per minute back from now, 2 % open.
macro_rules! seed {
    ($pool:expr, $n:expr) => {{
        let pool = $pool;
        let now = Utc::now();
        let mut tx = pool.begin().await.expect("begin");
        for i in 0..$n {
            let created = now - Duration::minutes(i as i64);
            let status = if i % 50 == 0 { "paged" } else if i % 7 == 0 { "cancelled" } else { "resolved" };
            sqlx::query(
                "INSERT INTO tickets (number, severity, status, caller, callback_number, language, \
                 created_at, callback_due_at, resolution_due_at, answers, classification_reasons) \
                 VALUES ($1, $2, $3, '15145550100', '15145550100', 'fr', $4, $5, $6, \
                 '{\"affected_service\":\"inbound calls\"}', '[\"caller chose 1\"]')",
            )
            .bind(format!("9{i:07}"))
            .bind(["S1", "S2", "S3"][i % 3])
            .bind(status)
            .bind(created)
            .bind(created + Duration::minutes(30))
            .bind(created + Duration::hours(2))
            .execute(&mut *tx)
            .await
            .expect("insert");
        }
        tx.commit().await.expect("commit");
    }};
}

async fn hammer(base: &str, path: &str, token: &str) -> (f64, f64, f64) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let http = http.clone();
        let url = format!("{base}{path}");
        let auth = format!("Bearer {token}");
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..PER_CLIENT {
                let t = Instant::now();
                let r = http
                    .get(&url)
                    .header("Authorization", &auth)
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{url}: {}", r.status());
                let _ = r.bytes().await.expect("body");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| all[((p * all.len() as f64).ceil() as usize).clamp(1, all.len()) - 1];
    (at(0.5), at(0.99), rate)
}

async fn run(label: &str, store: Store) {
    let now = Utc::now();
    store
        .create_user("bench", "viewer", "x", "bench", now)
        .await
        .expect("user");
    let token = new_api_token();
    store
        .create_api_token("bench", &secret_hash(&token), "bench", "bench", now)
        .await
        .expect("token");
    let state = AdminState {
        store,
        secure_cookies: false,
        login_limiter: Default::default(),
        media: None,
        config: Arc::new(Config::default()),
    };
    let app = astreinte::admin::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let _ = hammer(&base, "/api/tickets", &token).await; // warm up
    println!("console/{label}: {TICKETS} tickets, {CLIENTS} clients x {PER_CLIENT} requests");
    for path in ["/api/tickets", "/api/tickets?open=true", "/tickets"] {
        let (p50, p99, rate) = hammer(&base, path, &token).await;
        println!("  {path:24} p50 {p50:6.1} ms  p99 {p99:6.1} ms  {rate:7.0} req/s");
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    rt.block_on(async {
        let store = Store::connect(&StoreConfig::with_url(&url))
            .await
            .expect("store");
        let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
        seed!(&pool, TICKETS);
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
        pool.close().await;
        run("sqlite", store).await;
    });
    let pg = std::env::var("ASTREINTE_BENCH_PG_URL")
        .or_else(|_| std::env::var("ASTREINTE_TEST_PG_URL"))
        .ok();
    match pg {
        Some(url) => rt.block_on(async {
            use sqlx::Executor;
            let admin = sqlx::PgPool::connect(&url).await.expect("postgres");
            let db = format!("astreinte_console_bench_{}", std::process::id());
            admin
                .execute(format!("CREATE DATABASE {db}").as_str())
                .await
                .expect("create database");
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            let db_url = format!("{base}/{db}");
            let store = Store::connect(&StoreConfig::with_url(&db_url))
                .await
                .expect("store");
            let pool = sqlx::PgPool::connect(&db_url).await.expect("pool");
            seed!(&pool, TICKETS);
            sqlx::query("ANALYZE tickets")
                .execute(&pool)
                .await
                .expect("analyze");
            pool.close().await;
            run("postgres", store.clone()).await;
            store.close().await;
            let _ = admin
                .execute(format!("DROP DATABASE {db} WITH (FORCE)").as_str())
                .await;
        }),
        None => println!("console/postgres: skipped (set ASTREINTE_BENCH_PG_URL)"),
    }
}
