//! The console's tickets API, its SLA report and their pages, in process: the routes of
//! `admin::tickets` and `admin::sla` on a real socket (127.0.0.1:0) with the user put in the
//! request by an Extension layer (the authentication layer's contract), over a temp SQLite
//! store and, with ASTREINTE_TEST_PG_URL, PostgreSQL (one fresh schema per test). Without the
//! URL the PostgreSQL half fails when CI is set and says it skipped otherwise.

use astreinte::call::callback::CallbackNumber;
use std::collections::BTreeMap;
use std::sync::Arc;

use astreinte::admin::auth::{CurrentUser, Role};
use astreinte::admin::{self, AdminState};
use astreinte::config::Config;
use astreinte::schedule::{Due, Schedule, ScheduleConfig};
use astreinte::store::{number, Action, NewPage, NewTicket, Store, Voicemail};
use astreinte::triage::Severity;
use chrono::{DateTime, Duration, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Backends: tests/common/backends.rs

mod common;
use common::backends::{pg, sqlite};

/// Runs the scenario `$name(&Store, &Path)` on SQLite and on PostgreSQL.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (s, dir) = super::sqlite().await;
                super::$name(&s, dir.path()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(pg) = super::pg(stringify!($name)).await {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(&pg.store, dir.path()).await;
                    pg.drop().await;
                }
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The console on a socket

struct Console {
    base: String,
    http: reqwest::Client,
}

impl Console {
    async fn start(store: &Store, role: Role) -> Console {
        Console::start_as(store, CurrentUser::new("ada", role)).await
    }

    async fn start_as(store: &Store, user: CurrentUser) -> Console {
        let state = AdminState {
            store: store.clone(),
            secure_cookies: false,
            login_limiter: Default::default(),
            media: None,
            config: Arc::new(Config::default()),
        };
        let app = admin::tickets::routes()
            .merge(admin::sla::routes())
            .layer(axum::Extension(user))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Console {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn page(&self, path: &str) -> (StatusCode, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ctype, r.text().await.unwrap())
    }
}

// ---------------------------------------------------------------------------------------------
// Tickets

fn t0() -> DateTime<Utc> {
    // Wednesday 2025-03-12 23:00 in Montréal: after hours.
    Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap()
}

fn new_ticket(sev: Severity, caller: &str, at: DateTime<Utc>) -> NewTicket {
    let s = Schedule::from_config(&ScheduleConfig::default()).unwrap();
    let mut answers = BTreeMap::new();
    answers.insert("affected_service".to_string(), "inbound calls".to_string());
    NewTicket {
        severity: sev,
        caller: caller.into(),
        callback_number: CallbackNumber::from_record("15145550100"),
        account_id: None,
        language: "fr".into(),
        voicemail: None,
        answers,
        classification_reasons: vec!["caller chose 1".into(), "<b>panne</b> & co".into()],
        suspected_incident: false,
        time_scale: astreinte::schedule::TimeScale::REAL,
        created_at: at,
        due: s.due(sev, at),
        pages: vec![NewPage::simple("email", "on-call:primary", at)],
        actor: "ivr".into(),
    }
}

/// A ticket created at `at` whose callback is due at `due`.
fn due_at(sev: Severity, caller: &str, at: DateTime<Utc>, due: DateTime<Utc>) -> NewTicket {
    let mut t = new_ticket(sev, caller, at);
    t.due = Due {
        callback_due_at: due,
        resolution_due_at: due + Duration::hours(2),
    };
    t
}

fn numbers(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_str().unwrap().to_string())
        .collect()
}

/// A valid tracking number that no ticket of `taken` has.
fn unknown_number(taken: &[&str]) -> String {
    (1_000_000..)
        .map(number::from_payload)
        .find(|n| !taken.contains(&n.as_str()))
        .unwrap()
}

async fn list_order_and_fields(store: &Store, _dir: &std::path::Path) {
    let now = Utc::now();
    let hour = Duration::hours(1);
    let soon = store
        .create_ticket(&due_at(
            Severity::S2,
            "15145550001",
            now - hour,
            now + Duration::minutes(20),
        ))
        .await
        .unwrap();
    let late = store
        .create_ticket(&due_at(
            Severity::S1,
            "15145550002",
            now - hour,
            now - Duration::minutes(5),
        ))
        .await
        .unwrap();
    let later = store
        .create_ticket(&due_at(
            Severity::S3,
            "15145550003",
            now - hour,
            now + Duration::hours(2),
        ))
        .await
        .unwrap();
    let old_closed = store
        .create_ticket(&due_at(
            Severity::S2,
            "15145550004",
            now - Duration::hours(10),
            now - Duration::hours(9),
        ))
        .await
        .unwrap();
    let new_closed = store
        .create_ticket(&due_at(
            Severity::S1,
            "15145550005",
            now - Duration::hours(5),
            now - Duration::hours(4),
        ))
        .await
        .unwrap();
    store
        .transition(&old_closed.number, Action::Resolve, "bob", None, now)
        .await
        .unwrap();
    store
        .transition(&new_closed.number, Action::Cancel, "bob", None, now)
        .await
        .unwrap();
    // Called back: the clock runs to the resolution target.
    store
        .transition(&later.number, Action::CalledBack, "bob", None, now)
        .await
        .unwrap();

    let c = Console::start(store, Role::Viewer).await;
    let (status, list) = c.get("/api/tickets").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    // Open first by callback due (the called-back one is still open), then closed newest first.
    assert_eq!(
        numbers(&list),
        vec![
            late.number.clone(),
            soon.number.clone(),
            later.number.clone(),
            new_closed.number.clone(),
            old_closed.number.clone()
        ]
    );
    let rows = list.as_array().unwrap();
    // Every field of `tickets list --json` (a serialized store::Ticket), with the same values.
    for row in rows {
        let n = row["number"].as_str().unwrap();
        let cli = serde_json::to_value(store.ticket(n).await.unwrap()).unwrap();
        for (k, v) in cli.as_object().unwrap() {
            assert_eq!(&row[k], v, "field {k} of {n}");
        }
    }
    let secs = |i: usize| rows[i]["seconds_to_target"].as_i64();
    let late_s = secs(0).unwrap();
    assert!((-310..=-290).contains(&late_s), "late: {late_s}");
    assert_eq!(rows[0]["target"], "callback");
    let soon_s = secs(1).unwrap();
    assert!((1190..=1200).contains(&soon_s), "soon: {soon_s}");
    assert_eq!(rows[2]["target"], "resolution");
    assert!(secs(2).unwrap() > 0);
    assert!(rows[3]["seconds_to_target"].is_null());
    assert!(rows[4]["seconds_to_target"].is_null());
    assert!(rows[0]["callback_due_local"]
        .as_str()
        .unwrap()
        .contains(':'));

    let (_, open) = c.get("/api/tickets?open=true").await;
    assert_eq!(
        numbers(&open),
        vec![
            late.number.clone(),
            soon.number.clone(),
            later.number.clone()
        ]
    );
    let (_, closed) = c.get("/api/tickets?open=false").await;
    assert_eq!(
        numbers(&closed),
        vec![new_closed.number.clone(), old_closed.number.clone()]
    );
    let (_, two) = c.get("/api/tickets?limit=2").await;
    assert_eq!(
        numbers(&two),
        vec![late.number.clone(), soon.number.clone()]
    );
    let (_, four) = c.get("/api/tickets?limit=4").await;
    assert_eq!(numbers(&four).last(), Some(&new_closed.number));

    for bad in [
        "/api/tickets?limit=0",
        "/api/tickets?limit=1001",
        "/api/tickets?limit=ten",
        "/api/tickets?open=maybe",
    ] {
        let (status, body) = c.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().len() > 10, "{bad}: {body}");
    }

    // Concurrent reads share store reads, yet a ticket committed before a request is in its
    // answer (and a change made through the store too).
    let mut reads = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/api/tickets", c.base);
        let http = c.http.clone();
        reads.push(tokio::spawn(async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            numbers(&v)
        }));
    }
    for r in reads {
        assert_eq!(r.await.unwrap().len(), 5);
    }
    let newest = store
        .create_ticket(&due_at(Severity::S1, "15145550006", now, now - hour))
        .await
        .unwrap();
    let (_, list) = c.get("/api/tickets").await;
    assert_eq!(numbers(&list)[0], newest.number);
    store
        .transition(&newest.number, Action::Acknowledge, "bob", None, now)
        .await
        .unwrap();
    let (_, list) = c.get("/api/tickets").await;
    assert_eq!(list[0]["status"], "acknowledged");

    // The list reads the indexes, never the whole table. (PostgreSQL's planner rightly scans
    // a 5-row table: its plans and speed are measured on 100,000 tickets by `cargo bench --bench console`.)
    if store.backend() == "sqlite" {
        let (open_plan, closed_plan) = store.ticket_view_plans().await.unwrap();
        assert!(open_plan.contains("tickets_open"), "{open_plan}");
        assert!(closed_plan.contains("tickets_created"), "{closed_plan}");
    }
}
both!(list_order_and_fields);

/// An 8 kHz mono 16-bit WAV of `samples`, as the recorder writes.
fn write_wav(path: &std::path::Path, samples: impl Iterator<Item = i16>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for v in samples {
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

async fn show_and_voicemail(store: &Store, dir: &std::path::Path) {
    let wav = dir.join("vm.wav");
    write_wav(&wav, (0..800i32).map(|i| ((i % 40) * 500 - 10_000) as i16));
    let mut with_vm = new_ticket(Severity::S1, "15145550100", t0());
    with_vm.voicemail = Some(Voicemail {
        path: wav.display().to_string(),
        seconds: 0.1,
        speech_detected: true,
    });
    let t = store.create_ticket(&with_vm).await.unwrap();
    let bare = store
        .create_ticket(&new_ticket(Severity::S3, "15145550101", t0()))
        .await
        .unwrap();
    let gone = {
        let mut g = new_ticket(Severity::S2, "15145550102", t0());
        g.voicemail = Some(Voicemail {
            path: dir.join("missing.wav").display().to_string(),
            seconds: 3.0,
            speech_detected: false,
        });
        store.create_ticket(&g).await.unwrap()
    };

    let c = Console::start(store, Role::Viewer).await;
    let (status, v) = c.get(&format!("/api/tickets/{}", t.number)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["number"], t.number.as_str());
    assert_eq!(v["severity"], "S1");
    assert_eq!(v["status"], "open");
    assert_eq!(v["answers"]["affected_service"], "inbound calls");
    assert_eq!(v["classification_reasons"][1], "<b>panne</b> & co");
    assert_eq!(v["events"][0]["kind"], "created");
    assert_eq!(v["page_jobs"].as_array().unwrap().len(), 1);
    assert_eq!(v["page_jobs"][0]["channel"], "email");
    assert!(v["callback_target_met"].is_null());
    assert!(v["account"].is_null());
    assert_eq!(v["callback_due_at"], json!(t.callback_due_at));
    // Long past due (2025) and not called back: late.
    assert!(v["seconds_to_target"].as_i64().unwrap() < 0);

    // A number spelt in two groups is the same number.
    let spaced = format!("/api/tickets/{}%20{}", &t.number[..4], &t.number[4..]);
    assert_eq!(c.get(&spaced).await.0, StatusCode::OK);

    let r = c
        .http
        .get(format!("{}/api/tickets/{}/voicemail", c.base, t.number))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), std::fs::read(&wav).unwrap().as_slice());

    let (status, body) = c
        .get(&format!("/api/tickets/{}/voicemail", bare.number))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = c
        .get(&format!("/api/tickets/{}/voicemail", gone.number))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Malformed numbers: 400; a well-formed unknown one: 404.
    let mut wrong_check = t.number.clone().into_bytes();
    wrong_check[7] = b'0' + (wrong_check[7] - b'0' + 1) % 10;
    let wrong_check = String::from_utf8(wrong_check).unwrap();
    for bad in ["123", "abcdefgh", "../../etc/passwd", wrong_check.as_str()] {
        for suffix in ["", "/voicemail"] {
            let (status, body) = c.get(&format!("/api/tickets/{bad}{suffix}")).await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
                "{bad}{suffix}: {status} {body}"
            );
            if !bad.contains('/') {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}{suffix}: {body}");
            }
        }
    }
    let unknown = unknown_number(&[&t.number, &bare.number, &gone.number]);
    let (status, body) = c.get(&format!("/api/tickets/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&unknown));
}
both!(show_and_voicemail);

/// The player works from any node: the audio comes from the store once the recording node's
/// file is gone (issue 14).
async fn voicemail_is_served_from_the_store(store: &Store, dir: &std::path::Path) {
    let wav_path = dir.join("vm-store.wav");
    write_wav(
        &wav_path,
        (0..16_000i32).map(|i| ((i * 37 % 200) * 100 - 10_000) as i16),
    );
    let wav = std::fs::read(&wav_path).unwrap();
    let mut t = new_ticket(Severity::S1, "15145550103", t0());
    t.voicemail = Some(Voicemail {
        path: wav_path.display().to_string(),
        seconds: 2.0,
        speech_detected: true,
    });
    let t = store.create_ticket(&t).await.unwrap();
    std::fs::remove_file(&wav_path).unwrap();

    let c = Console::start(store, Role::Viewer).await;
    let r = c
        .http
        .get(format!("{}/api/tickets/{}/voicemail", c.base, t.number))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.headers()["cache-control"], "private, max-age=3600");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.as_ref() == wav.as_slice(), "not the recording");
}
both!(voicemail_is_served_from_the_store);

async fn lifecycle_and_refusals(store: &Store, _dir: &std::path::Path) {
    let t = store
        .create_ticket(&new_ticket(Severity::S2, "15145550100", t0()))
        .await
        .unwrap();
    let viewer = Console::start(store, Role::Viewer).await;
    let tech = Console::start(store, Role::Technician).await;
    let path = |action: &str| format!("/api/tickets/{}/{action}", t.number);

    // A viewer reads but changes nothing.
    for action in ["acknowledge", "callback", "resolve"] {
        let (status, body) = viewer.post(&path(action), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
    }
    let (status, body) = viewer
        .post(
            &path("reclassify"),
            json!({"severity": "S1", "reason": "down"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(viewer.get("/api/tickets").await.0, StatusCode::OK);
    assert_eq!(
        store.ticket(&t.number).await.unwrap().status.as_str(),
        "open"
    );

    // Reclassify: the reason is required; then severity and deadlines follow the schedule.
    let (status, body) = tech
        .post(&path("reclassify"), json!({"severity": "S1"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = tech
        .post(
            &path("reclassify"),
            json!({"severity": "S1", "reason": "  "}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = tech
        .post(
            &path("reclassify"),
            json!({"severity": "S9", "reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        store.ticket(&t.number).await.unwrap().severity,
        Severity::S2
    );
    let (status, body) = tech
        .post(
            &path("reclassify"),
            json!({"severity": "S1", "reason": "whole office down"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["severity"], "S1");
    // After hours: S1 is called back within 30 min of the call (S2 was 60).
    assert_eq!(t.callback_due_at, t0() + Duration::minutes(60));
    assert_eq!(body["callback_due_at"], json!(t0() + Duration::minutes(30)));
    assert_eq!(body["resolution_due_at"], json!(t0() + Duration::hours(2)));

    // A body that is not JSON: 400, nothing changed.
    let r = tech
        .http
        .post(format!("{}{}", tech.base, path("acknowledge")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // acknowledge (no body at all), called back, resolve.
    let r = tech
        .http
        .post(format!("{}{}", tech.base, path("acknowledge")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "acknowledged");
    let (status, body) = tech
        .post(&path("callback"), json!({"reason": "spoke to Marie"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "called_back");
    // Acknowledging now is not allowed: 409 with the store's message.
    let (status, body) = tech.post(&path("acknowledge"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("called_back"),
        "{body}"
    );
    let (status, body) = tech.post(&path("resolve"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert!(body["seconds_to_target"].is_null());
    for action in ["resolve", "callback", "acknowledge"] {
        let (status, body) = tech.post(&path(action), json!({})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
    }
    let (status, body) = tech
        .post(
            &path("reclassify"),
            json!({"severity": "S3", "reason": "late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, v) = viewer.get(&format!("/api/tickets/{}", t.number)).await;
    let events: Vec<(String, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(_, actor)| actor == "ada")
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["reclassified", "acknowledged", "called_back", "resolved"]
    );
    let callback = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "called_back")
        .unwrap();
    assert_eq!(callback["reason"], "spoke to Marie");
    let reclass = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reclassified")
        .unwrap();
    assert_eq!(reclass["from_severity"], "S2");
    assert_eq!(reclass["to_severity"], "S1");
    assert_eq!(reclass["reason"], "whole office down");
    assert_eq!(v["callback_target_met"], json!(false));

    // Changes on malformed and unknown numbers.
    let (status, _) = tech.post("/api/tickets/1234/acknowledge", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let unknown = unknown_number(&[&t.number]);
    let (status, _) = tech
        .post(&format!("/api/tickets/{unknown}/resolve"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both!(lifecycle_and_refusals);

// ---------------------------------------------------------------------------------------------
// SLA report

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
}

async fn sla_report_numbers(store: &Store, _dir: &std::path::Path) {
    let m = Duration::minutes;
    // (severity, created, callback due after, called back after)
    let cases: [(Severity, DateTime<Utc>, i64, Option<i64>); 6] = [
        // Week of Monday 2025-03-03 (local days).
        (Severity::S1, at(4, 3), 30, Some(20)), // met
        (Severity::S1, at(5, 3), 30, Some(45)), // missed
        (Severity::S2, at(6, 3), 60, Some(50)), // met
        // Week of Monday 2025-03-10.
        (Severity::S2, at(11, 3), 60, None), // past target, no callback
        (Severity::S3, at(12, 15), 24 * 60, Some(120)), // met
        // After the range.
        (Severity::S1, at(20, 3), 30, None),
    ];
    for (i, (sev, created, due, back)) in cases.iter().enumerate() {
        let t = store
            .create_ticket(&due_at(
                *sev,
                &format!("1514555020{i}"),
                *created,
                *created + m(*due),
            ))
            .await
            .unwrap();
        if let Some(b) = back {
            store
                .transition(&t.number, Action::CalledBack, "bob", None, *created + m(*b))
                .await
                .unwrap();
        }
    }
    // Cancelled tickets are left out (as in `sla report`).
    let cancelled = store
        .create_ticket(&due_at(Severity::S1, "15145550299", at(12, 4), at(12, 5)))
        .await
        .unwrap();
    store
        .transition(&cancelled.number, Action::Cancel, "bob", None, at(12, 6))
        .await
        .unwrap();

    let c = Console::start(store, Role::Viewer).await;
    let (status, r) = c.get("/api/sla/report?from=2025-03-03&to=2025-03-16").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["from"], "2025-03-03");
    assert_eq!(r["to"], "2025-03-16");
    assert_eq!(r["timezone"], "America/Toronto");
    assert_eq!(r["period_start"], json!(at(3, 5)));
    // DST began on 2025-03-09: the day after the 16th starts at 04:00 UTC.
    assert_eq!(r["period_end"], json!(at(17, 4)));

    let t = &r["totals"];
    assert_eq!(t["tickets"], 5);
    assert_eq!(t["met"], 3);
    assert_eq!(t["missed"], 1);
    assert_eq!(t["open_past_target"], 1);
    assert_eq!(t["pending"], 0);
    assert_eq!(t["called_back"], 4);
    assert_eq!(t["median_minutes_to_callback"], 45.0);
    assert_eq!(t["p90_minutes_to_callback"], 120.0);

    // The CLI's figures per severity.
    let sev = |s: &str| {
        r["severities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["severity"] == s)
            .unwrap()
            .clone()
    };
    let s1 = sev("S1");
    assert_eq!(
        (&s1["tickets"], &s1["called_back"], &s1["within_target"]),
        (&json!(2), &json!(2), &json!(1))
    );
    assert_eq!(s1["misses"].as_array().unwrap().len(), 1);
    assert_eq!(s1["misses"][0]["late_minutes"], 15);
    assert_eq!(s1["median_minutes_to_callback"], 20.0);
    let s2 = sev("S2");
    assert_eq!(
        (&s2["tickets"], &s2["called_back"], &s2["within_target"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert!(s2["misses"][0]["called_back_at"].is_null());
    let s3 = sev("S3");
    assert_eq!(s3["misses"].as_array().unwrap().len(), 0);
    assert_eq!(s3["p90_minutes_to_callback"], 120.0);

    // Per week and severity.
    let weeks = r["weeks"].as_array().unwrap();
    assert_eq!(weeks.len(), 2);
    assert_eq!(weeks[0]["week_start"], "2025-03-03");
    assert_eq!(weeks[1]["week_start"], "2025-03-10");
    let cell = |w: usize, s: usize, k: &str| weeks[w]["severities"][s][k].as_u64().unwrap();
    assert_eq!(weeks[0]["severities"][0]["severity"], "S1");
    assert_eq!(
        (
            cell(0, 0, "tickets"),
            cell(0, 0, "met"),
            cell(0, 0, "missed")
        ),
        (2, 1, 1)
    );
    assert_eq!((cell(0, 1, "tickets"), cell(0, 1, "met")), (1, 1));
    assert_eq!(cell(0, 2, "tickets"), 0);
    assert_eq!(cell(1, 0, "tickets"), 0);
    assert_eq!(
        (cell(1, 1, "tickets"), cell(1, 1, "open_past_target")),
        (1, 1)
    );
    assert_eq!((cell(1, 2, "tickets"), cell(1, 2, "met")), (1, 1));

    // One day: only the S1 of Tuesday the 4th (UTC), i.e. Monday the 3rd local.
    let (_, one) = c.get("/api/sla/report?from=2025-03-03&to=2025-03-03").await;
    assert_eq!(one["totals"]["tickets"], 1);
    assert_eq!(one["weeks"].as_array().unwrap().len(), 1);

    // Default: the last 12 weeks up to today.
    let (status, d) = c.get("/api/sla/report").await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["weeks"].as_array().unwrap().len(), 12);

    for bad in [
        "/api/sla/report?from=2025-3-1x&to=2025-03-16",
        "/api/sla/report?from=2025-03-03&to=16/03/2025",
        "/api/sla/report?from=2025-03-16&to=2025-03-03",
        "/api/sla/report?from=2020-01-01&to=2025-03-03",
    ] {
        let (status, body) = c.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}
both!(sla_report_numbers);

// ---------------------------------------------------------------------------------------------
// Pages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_have_their_hooks() {
    let (store, _dir) = sqlite().await;
    let t = store
        .create_ticket(&new_ticket(Severity::S1, "15145550100", t0()))
        .await
        .unwrap();
    let c = Console::start(&store, Role::Viewer).await;

    let (status, ctype, html) = c.page("/tickets").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    for hook in [
        "id=\"tickets\"",
        "data-ticket=",
        "countdown",
        "class=\"status\"",
        "/api/tickets",
        "America/Toronto",
        "setInterval(load, 10000)",
    ] {
        assert!(html.contains(hook), "/tickets lacks {hook}");
    }
    assert!(!html.contains("<script src=\"http"), "no external script");

    let (status, _, html) = c.page(&format!("/tickets/{}", t.number)).await;
    assert_eq!(status, StatusCode::OK);
    for hook in [
        "id=\"ack\"",
        "id=\"callback\"",
        "id=\"resolve\"",
        "id=\"reclassify\"",
        "name=\"severity\"",
        "required",
        "/voicemail",
        "<audio controls",
        "countdown",
        "id=\"events\"",
        "id=\"page-jobs\"",
        "id=\"account\"",
        "id=\"answers\"",
        "id=\"reasons\"",
        &format!("const NUMBER = \"{}\"", t.number),
    ] {
        assert!(html.contains(hook), "ticket page lacks {hook}");
    }
    let (status, _, html) = c.page("/tickets/12345678%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!html.contains("<script>alert"), "escaped");
    assert!(html.contains("&lt;script&gt;"), "{html}");

    let (status, ctype, html) = c.page("/sla").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    for hook in [
        "id=\"chart\"",
        "<svg",
        "id=\"range\"",
        "type=\"date\"",
        "id=\"totals\"",
        "id=\"weeks\"",
        "/api/sla/report",
    ] {
        assert!(html.contains(hook), "/sla lacks {hook}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_user_everything_is_401() {
    let (store, _dir) = sqlite().await;
    let state = AdminState {
        store: store.clone(),
        secure_cookies: false,
        login_limiter: Default::default(),
        media: None,
        config: Arc::new(Config::default()),
    };
    let app = admin::tickets::routes()
        .merge(admin::sla::routes())
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::new();
    for path in ["/api/tickets", "/api/sla/report", "/tickets", "/sla"] {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = http
        .post(format!("http://{addr}/api/tickets/48210937/acknowledge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// "Only mine": the person a login is linked to (issue 21)

/// The numbers the list marks `mine` for the reader.
fn mine(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|t| t["mine"] == json!(true))
        .map(|t| t["number"].as_str().unwrap().to_string())
        .collect()
}

async fn only_mine_follows_the_linked_person(store: &Store, _dir: &std::path::Path) {
    let now = Utc::now();
    // Paged to tech1; paged to tech2; acknowledged from tech1's phone; acknowledged in the
    // console by the login "mroy"; nobody's.
    let paged_to = |person: &str| {
        let mut t = new_ticket(Severity::S1, "15145550100", now);
        t.pages = vec![NewPage {
            person: Some(person.to_string()),
            level: 1,
            ..NewPage::simple("email", &format!("{person}@example.net"), now)
        }];
        t
    };
    let a = store.create_ticket(&paged_to("tech1")).await.unwrap();
    let b = store.create_ticket(&paged_to("tech2")).await.unwrap();
    let c = store
        .create_ticket(&new_ticket(Severity::S2, "15145550101", now))
        .await
        .unwrap();
    store
        .transition(&c.number, Action::Acknowledge, "tech1 (phone)", None, now)
        .await
        .unwrap();
    let d = store
        .create_ticket(&new_ticket(Severity::S2, "15145550102", now))
        .await
        .unwrap();
    store
        .transition(&d.number, Action::Acknowledge, "mroy", None, now)
        .await
        .unwrap();
    let e = store
        .create_ticket(&new_ticket(Severity::S3, "15145550103", now))
        .await
        .unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    // The login "mroy" linked to person tech1: the pages to tech1, tech1's phone ack, and
    // their own console ack.
    let linked = CurrentUser {
        person: Some("tech1".into()),
        ..CurrentUser::new("mroy", Role::Technician)
    };
    let console = Console::start_as(store, linked).await;
    let (status, list) = console.get("/api/tickets").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(numbers(&list).len(), 5, "{list}");
    assert_eq!(
        sorted(mine(&list)),
        sorted(vec![a.number.clone(), c.number.clone(), d.number.clone()]),
        "{list}"
    );
    // Unlinked, "mroy" is taken for person "mroy": only what the login itself acknowledged.
    let console = Console::start_as(store, CurrentUser::new("mroy", Role::Technician)).await;
    let (_, list) = console.get("/api/tickets").await;
    assert_eq!(mine(&list), vec![d.number.clone()], "{list}");
    // A login named after its person id (deployments before links) keeps its tickets.
    let console = Console::start_as(store, CurrentUser::new("tech2", Role::Technician)).await;
    let (_, list) = console.get("/api/tickets").await;
    assert_eq!(mine(&list), vec![b.number.clone()], "{list}");
    assert!(!mine(&list).contains(&e.number));
}
both!(only_mine_follows_the_linked_person);
