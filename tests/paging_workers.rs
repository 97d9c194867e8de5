//! The page outbox under two nodes and a restart, in-process against a real SMTP server
//! (aiosmtpd) and a real HTTP receiver: two paging services on one PostgreSQL (and on one
//! SQLite file) never send a page twice; a service stopped mid-climb and another started later
//! sends the next level once, at its offset, and never the first again.

mod common;

use astreinte::call::callback::CallbackNumber;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use astreinte::paging::config::PagingConfig;
use astreinte::paging::service::{self, Paging, PagingDeps};
use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{NewTicket, Store, StoreConfig};
use astreinte::triage::Severity;
use chrono::Utc;
use common::smtp::SmtpServer;

/// Webhook deliveries: (ticket, person) → how many.
type Hooks = Arc<Mutex<BTreeMap<(String, String), usize>>>;

async fn webhook_receiver(hooks: Hooks) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let hooks = hooks.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let ticket = v["ticket"]["number"].as_str().unwrap().to_string();
                let person = v["page"]["person"]["id"].as_str().unwrap_or("").to_string();
                *hooks.lock().unwrap().entry((ticket, person)).or_default() += 1;
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn config(smtp: u16, hook: u16, level2: &str) -> PagingConfig {
    let text = format!(
        r#"
[[people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
[[people]]
id = "director"
name = "Directrice"
email = "director@example.net"
[[rotations]]
id = "oncall"
people = ["tech1"]
[ladder]
levels = [["oncall"], ["director"]]
s1 = ["0s", "{level2}"]
s2 = ["0s", "{level2}"]
repeat_every = "0s"
[smtp]
url = "smtp://127.0.0.1:{smtp}"
from = "astreinte@example.net"
[[webhooks]]
id = "ops"
url = "http://127.0.0.1:{hook}/hook"
secret = "a-long-enough-test-secret"
[worker]
plan_every_ms = 200
"#
    );
    // These tests count one page per ticket and person: pages go alone (grouping has its own
    // test below).
    let text = format!("group_window = \"0s\"\n{text}");
    let c: PagingConfig = toml::from_str(&text).unwrap();
    let mut issues = Vec::new();
    c.validate(&ScheduleConfig::default().sla, &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
    c
}

async fn start(
    config: &PagingConfig,
    store: &Store,
    node: &str,
) -> (Paging, tokio::sync::watch::Sender<bool>) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let paging = service::start(
        config,
        PagingDeps {
            store: store.clone(),
            schedule: Schedule::from_config(&ScheduleConfig::default())
                .unwrap()
                .into(),
            phone: None,
            ack_links: None,
            console_base: None,
            node: node.to_string(),
            wake: Arc::new(tokio::sync::Notify::new()),
        },
        stop_rx,
    )
    .await
    .unwrap();
    (paging, stop_tx)
}

async fn stop(paging: Paging, stop: tokio::sync::watch::Sender<bool>) {
    let _ = stop.send(true);
    for t in paging.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
}

async fn open_s1(store: &Store) -> String {
    let schedule = Schedule::from_config(&ScheduleConfig::default()).unwrap();
    let now = Utc::now();
    let mut answers = BTreeMap::new();
    answers.insert("business_hours".to_string(), "no".to_string());
    let t = NewTicket {
        severity: Severity::S1,
        caller: "15145550100".into(),
        callback_number: CallbackNumber::from_record("15145550100"),
        account_id: None,
        language: "fr".into(),
        voicemail: None,
        answers,
        classification_reasons: vec![],
        suspected_incident: false,
        time_scale: astreinte::schedule::TimeScale::REAL,
        created_at: now,
        due: schedule.due(Severity::S1, now),
        pages: vec![],
        actor: "test".into(),
    };
    store.create_ticket(&t).await.unwrap().number
}

/// E-mails received: (ticket, recipient) → how many.
fn mails(smtp: &SmtpServer) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for m in smtp.messages() {
        let v = smtp.parse(&m);
        let subject = v["subject"].as_str().unwrap_or_default();
        let ticket: String = subject
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 8)
            .unwrap_or_default()
            .to_string();
        *out.entry((ticket, v["to"].as_str().unwrap_or_default().to_string()))
            .or_default() += 1;
    }
    out
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    common::wait::wait_until_async(what, within, || std::future::ready(done())).await;
}

async fn two_nodes_never_page_twice(store: &Store, other: &Store) {
    let smtp = SmtpServer::start();
    let hooks: Hooks = Arc::default();
    let hook = webhook_receiver(hooks.clone()).await;
    let cfg = config(smtp.port, hook, "3s");
    let (a, stop_a) = start(&cfg, store, "node-a").await;
    let (b, stop_b) = start(&cfg, other, "node-b").await;
    let mut tickets = Vec::new();
    for _ in 0..12 {
        tickets.push(open_s1(store).await);
    }
    // Each ticket: level 1 (tech1) at once, level 2 (director) at 3 s, by mail and webhook.
    let want = tickets.len() * 2;
    wait_until("every webhook page", Duration::from_secs(30), || {
        hooks.lock().unwrap().len() >= want
    })
    .await;
    wait_until("every e-mail page", Duration::from_secs(30), || {
        smtp.messages().len() >= want
    })
    .await;
    // A few more planner passes on both nodes: nothing more is sent. Not an event: the time
    // in which nothing happens is what is tested.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(a, stop_a).await;
    stop(b, stop_b).await;
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), want, "{hooks:?}");
    assert!(
        hooks.values().all(|&n| n == 1),
        "a webhook page sent twice: {hooks:?}"
    );
    let mails = mails(&smtp);
    assert_eq!(mails.len(), want, "{mails:?}");
    assert!(
        mails.values().all(|&n| n == 1),
        "an e-mail page sent twice: {mails:?}"
    );
    for t in &tickets {
        assert!(
            mails.contains_key(&(t.clone(), "tech1@example.net".into())),
            "{mails:?}"
        );
        assert!(
            mails.contains_key(&(t.clone(), "director@example.net".into())),
            "{mails:?}"
        );
        let jobs = store.page_jobs(t).await.unwrap();
        assert!(jobs.iter().all(|j| j.attempts == 1), "{jobs:#?}");
    }
}

async fn a_restart_mid_climb_sends_the_next_level_once(store: &Store) {
    let smtp = SmtpServer::start();
    let hooks: Hooks = Arc::default();
    let hook = webhook_receiver(hooks.clone()).await;
    let cfg = config(smtp.port, hook, "6s");
    let (a, stop_a) = start(&cfg, store, "node-a").await;
    let created = Instant::now();
    let ticket = open_s1(store).await;
    wait_until("level 1", Duration::from_secs(10), || {
        hooks
            .lock()
            .unwrap()
            .contains_key(&(ticket.clone(), "tech1".into()))
    })
    .await;
    // The node stops before level 2 is due; another starts a moment later.
    stop(a, stop_a).await;
    // Not an event: a gap with no node at all is the scenario.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b, stop_b) = start(&cfg, store, "node-b").await;
    wait_until("level 2", Duration::from_secs(15), || {
        hooks
            .lock()
            .unwrap()
            .contains_key(&(ticket.clone(), "director".into()))
    })
    .await;
    let at = created.elapsed();
    assert!(
        at >= Duration::from_secs(5),
        "level 2 came after {at:?}, before its offset"
    );
    // Not an event: two more seconds in which nothing more may be sent is what is tested.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(b, stop_b).await;
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(
        hooks.get(&(ticket.clone(), "tech1".into())),
        Some(&1),
        "{hooks:?}"
    );
    assert_eq!(
        hooks.get(&(ticket.clone(), "director".into())),
        Some(&1),
        "{hooks:?}"
    );
    let events = store.events(&ticket).await.unwrap();
    let escalated = events.iter().filter(|e| e.kind == "escalated").count();
    assert_eq!(escalated, 1, "{events:#?}");
}

async fn pg_store(test: &str) -> Option<(Store, sqlx::PgPool, String)> {
    let Ok(url) = std::env::var("ASTREINTE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ASTREINTE_TEST_PG_URL is not: this test cannot be skipped in CI"
        );
        common::skip(
            &format!("{test} on PostgreSQL"),
            "ASTREINTE_TEST_PG_URL is not set (scripts/test.sh sets it)",
        );
        return None;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let schema = format!("pw_{test}_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let store = Store::connect(&StoreConfig::with_url(pg_url_for(&schema)))
        .await
        .unwrap();
    Some((store, admin, schema))
}

fn pg_url_for(schema: &str) -> String {
    let url = std::env::var("ASTREINTE_TEST_PG_URL").unwrap_or_default();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

async fn drop_pg(store: Store, admin: sqlx::PgPool, schema: String) {
    store.close().await;
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_never_page_twice() {
    if let Some((store, admin, schema)) = pg_store("twonodes").await {
        // The second node has its own pool, as another process would.
        let other = Store::connect(&StoreConfig::with_url(pg_url_for(&schema)))
            .await
            .unwrap();
        two_nodes_never_page_twice(&store, &other).await;
        other.close().await;
        drop_pg(store, admin, schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_sqlite_file_never_page_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    // Two stores on one file, as two processes would have.
    let a = Store::connect(&StoreConfig::with_url(url.clone()))
        .await
        .unwrap();
    let b = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    two_nodes_never_page_twice(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_climb_on_postgresql_sends_the_next_level_once() {
    if let Some((store, admin, schema)) = pg_store("restart").await {
        a_restart_mid_climb_sends_the_next_level_once(&store).await;
        drop_pg(store, admin, schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_climb_on_sqlite_sends_the_next_level_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    a_restart_mid_climb_sends_the_next_level_once(&store).await;
}

/// Pages to one person are grouped: six tickets for the on-call technician within a few
/// seconds reach them in at most three e-mails and three webhook calls (the first at once, the
/// rest once the window has passed), every ticket told exactly once, the pages at least the
/// window apart, and a held page is not an attempt.
async fn pages_to_one_person_are_grouped(store: &Store) {
    let smtp = SmtpServer::start();
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let hook = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let bodies = bodies.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    bodies.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        port
    };
    let window = chrono::Duration::seconds(3);
    let mut cfg = config(smtp.port, hook, "10m");
    cfg.group_window = "3s".into();
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(open_s1(store).await);
    }
    let (a, stop_a) = start(&cfg, store, "node-a").await;
    wait_until("the first e-mail", Duration::from_secs(15), || {
        !smtp.messages().is_empty()
    })
    .await;
    tickets.push(open_s1(store).await);
    let all_done = |channel: &'static str| {
        let tickets = tickets.clone();
        move || {
            let tickets = tickets.clone();
            async move {
                for t in &tickets {
                    let jobs = store.page_jobs(t).await.unwrap();
                    let done = jobs.iter().any(|j| {
                        j.channel == channel && j.state == astreinte::store::PageState::Done
                    });
                    if !done {
                        return false;
                    }
                }
                true
            }
        }
    };
    common::wait::wait_until_async(
        "every e-mail page done",
        Duration::from_secs(30),
        all_done("email"),
    )
    .await;
    common::wait::wait_until_async(
        "every webhook page done",
        Duration::from_secs(30),
        all_done("webhook:ops"),
    )
    .await;
    stop(a, stop_a).await;

    // Every ticket in exactly one e-mail (the subject's ticket, or listed in the body), in
    // fewer e-mails than tickets; a carrying e-mail says how many it carries.
    let messages: Vec<serde_json::Value> = smtp.messages().iter().map(|m| smtp.parse(m)).collect();
    assert!(
        (2..=3).contains(&messages.len()),
        "{} e-mails: {messages:#?}",
        messages.len()
    );
    for t in &tickets {
        let told = messages
            .iter()
            .filter(|m| m["body"].as_str().unwrap_or_default().contains(t.as_str()))
            .count();
        assert_eq!(told, 1, "ticket {t} told in {told} e-mails: {messages:#?}");
    }
    assert!(
        messages.iter().any(|m| m["subject"]
            .as_str()
            .unwrap_or_default()
            .contains(" autres)")),
        "no e-mail carried others: {messages:#?}"
    );
    // Every ticket in exactly one webhook call (its ticket, or among page.carried).
    let bodies = bodies.lock().unwrap().clone();
    assert!((2..=3).contains(&bodies.len()), "{bodies:#?}");
    for t in &tickets {
        let told = bodies
            .iter()
            .filter(|b| {
                b["ticket"]["number"] == t.as_str()
                    || b["page"]["carried"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["number"] == t.as_str() && c["key"].is_string())
                    })
            })
            .count();
        assert_eq!(told, 1, "ticket {t} in {told} webhook calls: {bodies:#?}");
    }
    // In the store, per channel: the pages that went (no group_of) at least the window apart,
    // every other job carried by one of them, every job done in one attempt.
    for channel in ["email", "webhook:ops"] {
        let mut jobs = Vec::new();
        for t in &tickets {
            jobs.extend(
                store
                    .page_jobs(t)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|j| j.channel == channel),
            );
        }
        let mut sent: Vec<_> = jobs
            .iter()
            .filter(|j| j.group_of.is_none())
            .filter_map(|j| j.sent_at)
            .collect();
        sent.sort();
        assert!(
            sent.windows(2).all(|w| w[1] - w[0] >= window),
            "{channel}: pages less than the window apart: {sent:?}"
        );
        let leads: Vec<i64> = jobs
            .iter()
            .filter(|j| j.group_of.is_none())
            .map(|j| j.id)
            .collect();
        for j in &jobs {
            assert_eq!(j.state, astreinte::store::PageState::Done, "{j:#?}");
            assert_eq!(j.attempts, 1, "a held page is not an attempt: {j:#?}");
            if let Some(lead) = j.group_of {
                assert!(
                    leads.contains(&lead),
                    "{channel}: {j:#?} carried by {lead}, not a page sent"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_to_one_person_are_grouped_on_postgresql() {
    if let Some((store, admin, schema)) = pg_store("grouped").await {
        pages_to_one_person_are_grouped(&store).await;
        drop_pg(store, admin, schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_to_one_person_are_grouped_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    pages_to_one_person_are_grouped(&store).await;
}

/// PagerDuty Events v2: one incident per ticket (dedup key = tracking number), triggered by the
/// first page, acknowledged and resolved as the ticket is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pagerduty_incident_follows_the_ticket() {
    let actions: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = actions.clone();
    let app = axum::Router::new().route(
        "/v2/enqueue",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["routing_key"], "R0UT1NGKEY");
                seen.lock().unwrap().push((
                    v["dedup_key"].as_str().unwrap().to_string(),
                    v["event_action"].as_str().unwrap().to_string(),
                ));
                (axum::http::StatusCode::ACCEPTED, "{\"status\":\"success\"}")
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let text = format!(
        r#"
[[people]]
id = "tech1"
name = "Martin Roy"
email = "tech1@example.net"
[[rotations]]
id = "oncall"
people = ["tech1"]
[ladder]
levels = [["oncall"]]
s1 = ["0s"]
s2 = ["0s"]
repeat_every = "0s"
[[webhooks]]
id = "pd"
url = "http://127.0.0.1:{port}/v2/enqueue"
format = "pagerduty"
routing_key = "R0UT1NGKEY"
[worker]
plan_every_ms = 100
"#
    );
    let cfg: PagingConfig = toml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&StoreConfig::with_url(format!(
        "sqlite://{}/astreinte.db",
        dir.path().display()
    )))
    .await
    .unwrap();
    let (paging, stop_tx) = start(&cfg, &store, "node-a").await;
    let ticket = open_s1(&store).await;
    let has = |action: &str| {
        let actions = actions.clone();
        let ticket = ticket.clone();
        let action = action.to_string();
        move || {
            actions
                .lock()
                .unwrap()
                .contains(&(ticket.clone(), action.clone()))
        }
    };
    wait_until("trigger", Duration::from_secs(10), has("trigger")).await;
    let now = Utc::now();
    store
        .transition(
            &ticket,
            astreinte::store::Action::Acknowledge,
            "tech1 (link)",
            None,
            now,
        )
        .await
        .unwrap();
    wait_until("acknowledge", Duration::from_secs(10), has("acknowledge")).await;
    store
        .transition_as(
            &ticket,
            astreinte::store::Action::CalledBack,
            "callback_connected",
            "tech1",
            None,
            now,
        )
        .await
        .unwrap();
    wait_until("resolve", Duration::from_secs(10), has("resolve")).await;
    // Not an event: half a second in which no further action may be sent is what is tested.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop(paging, stop_tx).await;
    let actions = actions.lock().unwrap().clone();
    assert_eq!(
        actions,
        [
            (ticket.clone(), "trigger".to_string()),
            (ticket.clone(), "acknowledge".to_string()),
            (ticket, "resolve".to_string())
        ]
    );
}
