//! The same store tests on SQLite (a temp dir) and PostgreSQL (ASTREINTE_TEST_PG_URL, one fresh
//! schema per test so they run in parallel). Without the URL the PostgreSQL half fails when CI
//! is set, and says it skipped otherwise.

use astreinte::call::callback::CallbackNumber;
use std::collections::BTreeMap;

use astreinte::schedule::{Due, Schedule, ScheduleConfig};
use astreinte::store::{
    number, Action, ListFilter, NewPage, NewTicket, PageOutcome, PageState, Status, Store,
    StoreConfig, StoreError, Voicemail,
};
use astreinte::triage::Severity;
use chrono::{DateTime, Duration, TimeZone, Utc};

mod common;
use common::backends::{pg, rand_suffix, sqlite};

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (s, _dir) = super::sqlite().await;
                super::$name(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(pg) = super::pg(stringify!($name)).await {
                    super::$name(&pg.store).await;
                    pg.drop().await;
                }
            }
        }
    };
}

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
        voicemail: Some(Voicemail {
            path: "/var/lib/astreinte/vm/1.wav".into(),
            seconds: 42.5,
            speech_detected: true,
        }),
        answers,
        classification_reasons: vec![
            "caller chose 1".into(),
            "transcript mentions \"panne\"".into(),
        ],
        suspected_incident: false,
        time_scale: astreinte::schedule::TimeScale::REAL,
        created_at: at,
        due: s.due(sev, at),
        pages: vec![
            NewPage::simple("sip", "on-call:primary", at),
            NewPage::simple("email", "on-call:primary", at),
        ],
        actor: "ivr".into(),
    }
}

async fn create_and_read(s: &Store) {
    let t = s
        .create_ticket(&new_ticket(Severity::S1, "15145550100", t0()))
        .await
        .unwrap();
    assert!(number::is_valid(&t.number), "{}", t.number);
    assert_eq!(t.severity, Severity::S1);
    assert_eq!(t.status, Status::Open);
    assert_eq!(t.created_at, t0());
    assert_eq!(t.callback_due_at, t0() + Duration::minutes(30));
    assert_eq!(t.resolution_due_at, t0() + Duration::hours(2));
    assert_eq!(
        t.voicemail_path.as_deref(),
        Some("/var/lib/astreinte/vm/1.wav")
    );
    assert_eq!(t.voicemail_seconds, Some(42.5));
    assert_eq!(t.speech_detected, Some(true));
    assert_eq!(
        t.answers.get("affected_service").map(String::as_str),
        Some("inbound calls")
    );
    assert_eq!(t.classification_reasons.len(), 2);
    let again = s.ticket(&t.number).await.unwrap();
    assert_eq!(again, t);
    let ev = s.events(&t.number).await.unwrap();
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "classified"]);
    assert!(ev[1].reason.as_deref().unwrap().contains("panne"));
    let jobs = s.page_jobs(&t.number).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .all(|j| j.state == PageState::Pending && j.ticket_number == t.number));
    assert!(matches!(
        s.ticket("12345674").await,
        Err(StoreError::NoSuchTicket(_))
    ));
}
both!(create_and_read);

async fn lifecycle(s: &Store) {
    let t = s
        .create_ticket(&new_ticket(Severity::S2, "15145550101", t0()))
        .await
        .unwrap();
    let n = &t.number;
    let t1 = t0() + Duration::minutes(3);
    let paged = s
        .transition(n, Action::Page, "paging", None, t1)
        .await
        .unwrap();
    assert_eq!((paged.status, paged.paged_at), (Status::Paged, Some(t1)));
    let ack = s
        .transition(
            n,
            Action::Acknowledge,
            "marie",
            Some("on it"),
            t1 + Duration::minutes(2),
        )
        .await
        .unwrap();
    assert_eq!(ack.status, Status::Acknowledged);
    // A human has it: pending pages stop.
    assert!(s
        .page_jobs(n)
        .await
        .unwrap()
        .iter()
        .all(|j| j.state == PageState::Cancelled));
    let cb = s
        .transition(
            n,
            Action::CalledBack,
            "marie",
            None,
            t1 + Duration::minutes(20),
        )
        .await
        .unwrap();
    assert_eq!(cb.called_back_at, Some(t1 + Duration::minutes(20)));
    let done = s
        .transition(
            n,
            Action::Resolve,
            "marie",
            Some("router rebooted"),
            t1 + Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(done.status, Status::Resolved);
    match s.transition(n, Action::Acknowledge, "paul", None, t1).await {
        Err(StoreError::BadTransition {
            from: Status::Resolved,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let ev = s.events(n).await.unwrap();
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "classified",
            "paged",
            "acknowledged",
            "called_back",
            "resolved"
        ]
    );
    assert_eq!(ev[3].actor, "marie");
    assert_eq!(ev[5].reason.as_deref(), Some("router rebooted"));
    assert_eq!(ev[5].from_status.as_deref(), Some("called_back"));
    assert!(matches!(
        s.transition("99999997", Action::Resolve, "x", None, t1)
            .await,
        Err(StoreError::NoSuchTicket(_))
    ));
}
both!(lifecycle);

async fn reclassify_keeps_reason(s: &Store) {
    let t = s
        .create_ticket(&new_ticket(Severity::S3, "15145550102", t0()))
        .await
        .unwrap();
    let due = Due {
        callback_due_at: t0() + Duration::minutes(30),
        resolution_due_at: t0() + Duration::hours(2),
    };
    assert!(matches!(
        s.reclassify(&t.number, Severity::S1, due, "marie", " ", t0())
            .await,
        Err(StoreError::Invalid(_))
    ));
    let r = s
        .reclassify(
            &t.number,
            Severity::S1,
            due,
            "marie",
            "whole office has no dial tone",
            t0() + Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(r.severity, Severity::S1);
    assert_eq!(r.callback_due_at, due.callback_due_at);
    let ev = s.events(&t.number).await.unwrap();
    let last = ev.last().unwrap();
    assert_eq!(last.kind, "reclassified");
    assert_eq!(
        (last.from_severity.as_deref(), last.to_severity.as_deref()),
        (Some("S3"), Some("S1"))
    );
    assert_eq!(
        last.reason.as_deref(),
        Some("whole office has no dial tone")
    );
}
both!(reclassify_keeps_reason);

async fn list_open_most_urgent_first(s: &Store) {
    let a = s
        .create_ticket(&new_ticket(Severity::S2, "15145550103", t0()))
        .await
        .unwrap();
    let b = s
        .create_ticket(&new_ticket(
            Severity::S1,
            "15145550104",
            t0() + Duration::minutes(5),
        ))
        .await
        .unwrap();
    let c = s
        .create_ticket(&new_ticket(
            Severity::S1,
            "15145550105",
            t0() + Duration::minutes(6),
        ))
        .await
        .unwrap();
    s.transition(
        &c.number,
        Action::Resolve,
        "x",
        None,
        t0() + Duration::minutes(7),
    )
    .await
    .unwrap();
    let open = s
        .list_tickets(&ListFilter {
            open_only: true,
            limit: None,
        })
        .await
        .unwrap();
    let nums: Vec<&str> = open.iter().map(|t| t.number.as_str()).collect();
    // b is due at +35 min, a at +60.
    assert_eq!(nums, [b.number.as_str(), a.number.as_str()]);
    let all = s
        .list_tickets(&ListFilter {
            open_only: false,
            limit: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|t| t.number.as_str()).collect::<Vec<_>>(),
        [c.number.as_str(), b.number.as_str()]
    );
}
both!(list_open_most_urgent_first);

const CSV: &str = "account,company,address,numbers,admin_name,admin_phone,admin_email,technical_name,technical_phone,technical_email,billing_name,billing_phone,billing_email
ACME,Acme Plomberie inc.,\"1200 rue Peel, Montréal\",+1 514 555 0199; 514-555-0198,Lise Tremblay,5145550190,lise@acme.example,Jean Roy,5145550191,jean@acme.example,,,
CLIN,Clinique Verdun,,4385550123,,,,Ana Diaz,,ana@clin.example,Bo Li,,bo@clin.example
";

async fn accounts_identify_callers(s: &Store) {
    assert_eq!(
        s.import_accounts_csv(CSV.as_bytes(), t0()).await.unwrap(),
        2
    );
    for written in ["+15145550199", "514 555 0198", "1-514-555-0199"] {
        let a = s.find_account_by_number(written).await.unwrap().unwrap();
        assert_eq!(a.code, "ACME", "{written}");
    }
    assert!(s
        .find_account_by_number("+15145559999")
        .await
        .unwrap()
        .is_none());
    let acme = s.account("ACME").await.unwrap().unwrap();
    assert_eq!(acme.contacts.len(), 2);
    assert_eq!(acme.address, "1200 rue Peel, Montréal");
    let clin = s.account("CLIN").await.unwrap().unwrap();
    assert_eq!(
        clin.contacts
            .iter()
            .map(|c| c.role.as_str())
            .collect::<Vec<_>>(),
        ["technical", "billing"]
    );
    // A ticket carries the matched account.
    let acct = s
        .find_account_by_number("4385550123")
        .await
        .unwrap()
        .unwrap();
    let mut nt = new_ticket(Severity::S2, "14385550123", t0());
    nt.account_id = Some(acct.id);
    let t = s.create_ticket(&nt).await.unwrap();
    assert_eq!(
        (t.account_code.as_deref(), t.company.as_deref()),
        (Some("CLIN"), Some("Clinique Verdun"))
    );
    // Re-import replaces; a bad line imports nothing and names its line.
    let bad = "account,company,address,numbers\nNEW,New Co,,5145550111\nBAD,Bad Co,,not-a-number\n";
    let err = s
        .import_accounts_csv(bad.as_bytes(), t0())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(s.account("NEW").await.unwrap().is_none());
    let moved = "account,company,address,numbers\nCLIN,Clinique Verdun (Wellington),,4385550123;4385550124\n";
    s.import_accounts_csv(moved.as_bytes(), t0()).await.unwrap();
    let clin = s.account("CLIN").await.unwrap().unwrap();
    assert_eq!(clin.numbers, ["14385550123", "14385550124"]);
    assert!(clin.contacts.is_empty());
}
both!(accounts_identify_callers);

async fn page_jobs_lease_once(s: &Store) {
    let t = s
        .create_ticket(&new_ticket(Severity::S1, "15145550106", t0()))
        .await
        .unwrap();
    let lease = Duration::seconds(30);
    // Not due yet.
    assert!(s
        .lease_page_jobs("node-a", t0() - Duration::seconds(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let a = s.lease_page_jobs("node-a", t0(), lease, 10).await.unwrap();
    assert_eq!(a.len(), 2);
    assert!(a
        .iter()
        .all(|j| j.state == PageState::Leased && j.attempts == 1));
    assert!(s
        .lease_page_jobs("node-b", t0() + Duration::seconds(5), lease, 10)
        .await
        .unwrap()
        .is_empty());
    // node-a went silent: its lease expires and node-b takes the jobs.
    let b = s
        .lease_page_jobs("node-b", t0() + Duration::seconds(31), lease, 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 2);
    assert!(!s
        .finish_page_job(
            a[0].id,
            "node-a",
            &PageOutcome::Done,
            t0() + Duration::seconds(32)
        )
        .await
        .unwrap());
    assert!(s
        .finish_page_job(
            b[0].id,
            "node-b",
            &PageOutcome::Done,
            t0() + Duration::seconds(32)
        )
        .await
        .unwrap());
    let retry_at = t0() + Duration::minutes(5);
    assert!(s
        .finish_page_job(
            b[1].id,
            "node-b",
            &PageOutcome::Retry {
                run_at: retry_at,
                error: "busy".into()
            },
            t0() + Duration::seconds(33)
        )
        .await
        .unwrap());
    let jobs = s.page_jobs(&t.number).await.unwrap();
    assert_eq!(jobs[0].state, PageState::Done);
    assert_eq!(
        (jobs[1].state, jobs[1].run_at, jobs[1].last_error.as_deref()),
        (PageState::Pending, retry_at, Some("busy"))
    );
    let id = s
        .enqueue_page(&t.number, &NewPage::simple("sms", "x", retry_at), t0())
        .await
        .unwrap();
    let c = s
        .lease_page_jobs("node-c", retry_at, lease, 10)
        .await
        .unwrap();
    assert_eq!(c.iter().map(|j| j.id).collect::<Vec<_>>(), [jobs[1].id, id]);
    assert!(matches!(
        s.enqueue_page("99999997", &NewPage::simple("sms", "x", t0()), t0())
            .await,
        Err(StoreError::NoSuchTicket(_))
    ));
}
both!(page_jobs_lease_once);

async fn concurrent_creation_gives_distinct_numbers(s: &Store) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_ticket(&new_ticket(Severity::S2, &format!("1514555{i:04}"), t0()))
                .await
                .unwrap()
                .number
        }));
    }
    let mut nums = Vec::new();
    for t in tasks {
        nums.push(t.await.unwrap());
    }
    nums.sort();
    nums.dedup();
    assert_eq!(nums.len(), 40);
    let customers = s
        .recent_customers(t0() - Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(customers.len(), 40);
    assert!(s
        .recent_customers(t0() + Duration::seconds(1))
        .await
        .unwrap()
        .is_empty());
}
both!(concurrent_creation_gives_distinct_numbers);

async fn sla_report_counts_misses(s: &Store) {
    let fast = s
        .create_ticket(&new_ticket(Severity::S1, "15145550107", t0()))
        .await
        .unwrap();
    let slow = s
        .create_ticket(&new_ticket(Severity::S1, "15145550108", t0()))
        .await
        .unwrap();
    let never = s
        .create_ticket(&new_ticket(Severity::S2, "15145550109", t0()))
        .await
        .unwrap();
    s.transition(
        &fast.number,
        Action::CalledBack,
        "m",
        None,
        t0() + Duration::minutes(12),
    )
    .await
    .unwrap();
    s.transition(
        &slow.number,
        Action::CalledBack,
        "m",
        None,
        t0() + Duration::minutes(45),
    )
    .await
    .unwrap();
    let rows = s
        .sla_tickets(t0() - Duration::days(1), t0() + Duration::days(1))
        .await
        .unwrap();
    let rep = astreinte::schedule::sla::report(&rows, t0() + Duration::hours(3));
    let s1 = &rep[0];
    assert_eq!((s1.tickets, s1.called_back, s1.within_target), (2, 2, 1));
    assert_eq!(s1.median_minutes_to_callback, Some(12.0));
    assert_eq!(s1.p90_minutes_to_callback, Some(45.0));
    assert_eq!(s1.misses.len(), 1);
    assert_eq!(
        (s1.misses[0].number.as_str(), s1.misses[0].late_minutes),
        (slow.number.as_str(), 15)
    );
    let s2 = &rep[1];
    assert_eq!((s2.tickets, s2.called_back, s2.misses.len()), (1, 0, 1));
    assert_eq!(s2.misses[0].number, never.number);
    assert_eq!(s2.misses[0].late_minutes, 120);
}
both!(sla_report_counts_misses);

/// A drill ticket (`[drill] time_scale`) keeps its scale on both backends and never counts in
/// the provider's SLA report.
async fn a_drill_ticket_keeps_its_scale_and_stays_out_of_the_sla(s: &Store) {
    let scale = astreinte::schedule::TimeScale::new(60).unwrap();
    let mut drill = new_ticket(Severity::S1, "15145550110", t0());
    drill.time_scale = scale;
    let d = s.create_ticket(&drill).await.unwrap();
    assert_eq!(d.time_scale, scale);
    assert_eq!(s.ticket(&d.number).await.unwrap().time_scale, scale);
    let real = s
        .create_ticket(&new_ticket(Severity::S1, "15145550111", t0()))
        .await
        .unwrap();
    assert_eq!(real.time_scale, astreinte::schedule::TimeScale::REAL);
    let rows = s
        .sla_tickets(t0() - Duration::days(1), t0() + Duration::days(1))
        .await
        .unwrap();
    let numbers: Vec<&str> = rows.iter().map(|r| r.number.as_str()).collect();
    assert_eq!(numbers, [real.number.as_str()]);
}
both!(a_drill_ticket_keeps_its_scale_and_stays_out_of_the_sla);

async fn migrations_are_idempotent(s: &Store) {
    assert_eq!(s.migrate().await.unwrap(), 0);
}
both!(migrations_are_idempotent);

async fn one_bad_ticket_does_not_fail_its_batch(s: &Store) {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = new_ticket(Severity::S2, &format!("1438555{i:04}"), t0());
            if i == 7 {
                // No such account: the foreign key refuses this one ticket only.
                t.account_id = Some(987_654);
            }
            s.create_ticket(&t).await.map(|t| t.number)
        }));
    }
    let mut ok = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(n) => {
                ok += 1;
                assert_eq!(s.events(&n).await.unwrap().len(), 2);
                assert_eq!(s.page_jobs(&n).await.unwrap().len(), 2);
            }
            Err(e) => assert_eq!(i, 7, "{e}"),
        }
    }
    assert_eq!(ok, 23);
}
both!(one_bad_ticket_does_not_fail_its_batch);

#[tokio::test]
async fn in_memory_sqlite_works_for_quick_tools() {
    let s = Store::connect(&StoreConfig::with_url("sqlite::memory:"))
        .await
        .unwrap();
    let t = s
        .create_ticket(&new_ticket(Severity::S1, "15145550110", t0()))
        .await
        .unwrap();
    assert_eq!(s.ticket(&t.number).await.unwrap().number, t.number);
}

#[tokio::test]
async fn event_log_is_append_only_in_the_database() {
    let (s, dir) = sqlite().await;
    let t = s
        .create_ticket(&new_ticket(Severity::S1, "15145550111", t0()))
        .await
        .unwrap();
    let url = format!("sqlite://{}/sub/dir/astreinte.db", dir.path().display());
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let upd = sqlx::query("UPDATE ticket_events SET reason = 'rewritten'")
        .execute(&raw)
        .await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = sqlx::query("DELETE FROM ticket_events").execute(&raw).await;
    assert!(del.unwrap_err().to_string().contains("append-only"));
    assert_eq!(s.events(&t.number).await.unwrap().len(), 2);
    if let Some(pg) = pg("append_only").await {
        let t = pg
            .store
            .create_ticket(&new_ticket(Severity::S1, "15145550111", t0()))
            .await
            .unwrap();
        let sql = format!(
            "UPDATE {}.ticket_events SET reason = 'rewritten'",
            pg.schema
        );
        let upd = sqlx::query(&sql).execute(&pg.admin).await;
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        assert_eq!(pg.store.events(&t.number).await.unwrap().len(), 2);
        pg.drop().await;
    }
}

/// The engine and an operator's CLI are two processes on one SQLite file: their writes wait
/// for each other instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_sqlite_file_write_together() {
    let (engine, dir) = sqlite().await;
    let url = format!("sqlite://{}/sub/dir/astreinte.db", dir.path().display());
    let cli = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    let mut nums = Vec::new();
    for i in 0..20 {
        let t = new_ticket(Severity::S1, &format!("1514666{i:04}"), t0());
        nums.push(engine.create_ticket(&t).await.unwrap().number);
    }
    let creating = {
        let engine = engine.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                let t = new_ticket(Severity::S2, &format!("1514777{i:04}"), t0());
                engine.create_ticket(&t).await.unwrap();
            }
        })
    };
    for n in &nums {
        cli.transition(n, Action::Acknowledge, "marie", None, t0())
            .await
            .unwrap();
        cli.reclassify(
            n,
            Severity::S2,
            Due {
                callback_due_at: t0(),
                resolution_due_at: t0(),
            },
            "marie",
            "partial",
            t0(),
        )
        .await
        .unwrap();
    }
    creating.await.unwrap();
    let open = engine
        .list_tickets(&ListFilter {
            open_only: true,
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 70);
}

async fn an_announcement_is_current_until_replaced_or_cleared(s: &Store) {
    use astreinte::store::NewAnnouncement;
    assert_eq!(s.current_announcement().await.unwrap(), None);
    let new = |phase: &str, fr: &str| NewAnnouncement {
        phase: phase.into(),
        text_fr: fr.into(),
        text_en: "Outage".into(),
        audio_fr: vec![1, 2, 3],
        audio_en: vec![4, 5],
        set_by: "admin".into(),
        at: t0(),
    };
    let first = s
        .set_announcement(&new("investigating", "Panne"))
        .await
        .unwrap();
    let second = s
        .set_announcement(&new("identified", "Cause trouvée"))
        .await
        .unwrap();
    assert!(second > first);
    let cur = s.current_announcement().await.unwrap().unwrap();
    assert_eq!((cur.id, cur.phase.as_str()), (second, "identified"));
    assert_eq!((cur.audio_fr, cur.audio_en), (vec![1, 2, 3], vec![4, 5]));
    assert_eq!(cur.set_at, t0());
    assert!(s.clear_announcement(t0()).await.unwrap());
    assert_eq!(s.current_announcement().await.unwrap(), None);
    assert!(!s.clear_announcement(t0()).await.unwrap());
    // A phase outside the three is refused by the database itself.
    assert!(s.set_announcement(&new("resolved", "x")).await.is_err());
}
both!(an_announcement_is_current_until_replaced_or_cleared);

fn planned(channel: &str, key: &str, at: DateTime<Utc>) -> NewPage {
    NewPage {
        person: Some("tech1".into()),
        level: 1,
        reason: "escalation".into(),
        dedup_key: Some(key.into()),
        ..NewPage::simple(channel, "tech1@example.net", at)
    }
}

/// A planner that runs twice (a restart, a second node) enqueues each page once; the first
/// page delivered makes the ticket paged, in one transaction with its event.
async fn planned_pages_are_enqueued_once_and_delivery_pages_the_ticket(s: &Store) {
    let mut nt = new_ticket(Severity::S1, "15145550107", t0());
    nt.pages.clear();
    let t = s.create_ticket(&nt).await.unwrap();
    let event = astreinte::store::NewEvent {
        kind: "escalated".into(),
        actor: "paging".into(),
        reason: Some("level 1: Martin Roy".into()),
    };
    let pages = [
        planned("email", "k:climb:1:0:tech1:email", t0()),
        planned("phone", "k:climb:1:0:tech1:phone", t0()),
    ];
    assert_eq!(
        s.enqueue_planned(t.id, &pages, Some(&event), t0())
            .await
            .unwrap(),
        2
    );
    // Again, as a second node would: nothing new, no second event.
    assert_eq!(
        s.enqueue_planned(t.id, &pages, Some(&event), t0())
            .await
            .unwrap(),
        0
    );
    let escalations = s
        .events(&t.number)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "escalated")
        .count();
    assert_eq!(escalations, 1);
    let jobs = s
        .lease_page_jobs("node-a", t0(), Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].person.as_deref(), Some("tech1"));
    assert_eq!(jobs[0].level, 1);
    let sent = astreinte::store::NewEvent {
        kind: "paged".into(),
        actor: "paging".into(),
        reason: Some("email to Martin Roy".into()),
    };
    // A worker whose lease was lost records nothing.
    assert!(!s
        .page_delivered(jobs[0].id, "node-b", &sent, t0())
        .await
        .unwrap());
    assert!(s
        .page_delivered(jobs[0].id, "node-a", &sent, t0() + Duration::seconds(2))
        .await
        .unwrap());
    let t = s.ticket(&t.number).await.unwrap();
    assert_eq!(t.status, Status::Paged);
    assert_eq!(t.paged_at, Some(t0() + Duration::seconds(2)));
    let failed = astreinte::store::NewEvent {
        kind: "page_failed".into(),
        actor: "paging".into(),
        reason: Some("phone to Martin Roy: 486 Busy Here".into()),
    };
    assert!(s
        .page_failed(
            jobs[1].id,
            "node-a",
            "486 Busy Here",
            &failed,
            t0() + Duration::seconds(3)
        )
        .await
        .unwrap());
    let events = s.events(&t.number).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["escalated", "paged", "page_failed"]
    );
    let paged = &events[events.len() - 2];
    assert_eq!(
        (paged.from_status.as_deref(), paged.to_status.as_deref()),
        (Some("open"), Some("paged"))
    );
    let jobs = s.page_jobs(&t.number).await.unwrap();
    assert_eq!(jobs[0].state, PageState::Done);
    assert_eq!(jobs[0].sent_at, Some(t0() + Duration::seconds(2)));
    assert_eq!(jobs[1].state, PageState::Failed);
    // The engine's own callback is logged as such and sets called_back_at.
    s.transition(
        &t.number,
        Action::Acknowledge,
        "tech1 (phone)",
        None,
        t0() + Duration::minutes(3),
    )
    .await
    .unwrap();
    let t = s
        .transition_as(
            &t.number,
            Action::CalledBack,
            "callback_connected",
            "tech1",
            Some("connected to +15145550100"),
            t0() + Duration::minutes(4),
        )
        .await
        .unwrap();
    assert_eq!(t.status, Status::CalledBack);
    assert_eq!(t.called_back_at, Some(t0() + Duration::minutes(4)));
    let last = s.events(&t.number).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "callback_connected");
    // Called back within the hour: still in the planner's view (webhooks may say "resolved").
    let in_view = s
        .tickets_in_paging(t0() + Duration::minutes(30), Duration::minutes(60))
        .await
        .unwrap();
    assert!(in_view.iter().any(|x| x.number == t.number));
    let in_view = s
        .tickets_in_paging(t0() + Duration::minutes(90), Duration::minutes(60))
        .await
        .unwrap();
    assert!(!in_view.iter().any(|x| x.number == t.number));
}
both!(planned_pages_are_enqueued_once_and_delivery_pages_the_ticket);

async fn people_overrides_and_settings(s: &Store) {
    use astreinte::store::PersonRow;
    let tech = PersonRow {
        id: "tech1".into(),
        name: "Martin Roy".into(),
        phone: Some("sip:tech1@10.0.0.5".into()),
        email: None,
        language: "fr".into(),
    };
    s.upsert_people(std::slice::from_ref(&tech), "config", t0())
        .await
        .unwrap();
    let changed = PersonRow {
        email: Some("tech1@example.net".into()),
        ..tech
    };
    s.upsert_people(std::slice::from_ref(&changed), "cli", t0())
        .await
        .unwrap();
    assert_eq!(s.people().await.unwrap(), vec![changed]);
    let id = s
        .add_override(
            "oncall",
            "tech1",
            t0(),
            t0() + Duration::hours(12),
            "swap",
            "cli",
            t0(),
        )
        .await
        .unwrap();
    assert!(s
        .add_override("oncall", "tech1", t0(), t0(), "", "cli", t0())
        .await
        .is_err());
    let now = s.overrides(t0() + Duration::hours(1)).await.unwrap();
    assert_eq!(now.iter().map(|o| o.id).collect::<Vec<_>>(), [id]);
    assert!(s
        .overrides(t0() + Duration::hours(13))
        .await
        .unwrap()
        .is_empty());
    assert!(s.remove_override(id).await.unwrap());
    assert!(!s.remove_override(id).await.unwrap());
    // The first value stored wins, for every node.
    let key = format!("test_key_{}", rand_suffix());
    assert_eq!(s.setting_or_init(&key, "aa").await.unwrap(), "aa");
    assert_eq!(s.setting_or_init(&key, "bb").await.unwrap(), "aa");
}
both!(people_overrides_and_settings);

// ---------------------------------------------------------------------------------------------
// Voicemail audio in the store (issue 14): committed with the ticket, readable from any node.

/// A WAV as the recorder writes it (8 kHz mono 16-bit) of `seconds`, with a signal that differs
/// per `seed` so two recordings never compare equal by chance.
fn wav_bytes(seconds: u32, seed: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for _ in 0..seconds * 8000 {
        // xorshift: noise-like audio, which is what compresses worst.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        w.write_sample((x >> 16) as u16 as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

/// A voicemail ticket whose recording is the file at `path`.
fn vm_ticket(caller: &str, path: &std::path::Path) -> NewTicket {
    let mut t = new_ticket(Severity::S1, caller, t0());
    t.voicemail = Some(Voicemail {
        path: path.to_string_lossy().into_owned(),
        seconds: 180.0,
        speech_detected: true,
    });
    t
}

async fn voicemail_audio_survives_the_loss_of_the_file(s: &Store) {
    use astreinte::store::{VoicemailWav, WavSource, MAX_VOICEMAIL_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("20250313T030000Z-1-call.wav");
    // Three minutes: about 2.9 MB.
    let wav = wav_bytes(180, 1);
    assert_eq!(wav.len(), 44 + 180 * 8000 * 2);
    std::fs::write(&path, &wav).unwrap();
    let t = s
        .create_ticket(&vm_ticket("15145550120", &path))
        .await
        .unwrap();
    // The node's disk dies: the audio is still in the store, byte for byte.
    std::fs::remove_file(&path).unwrap();
    let back = s.voicemail_audio(t.id).await.unwrap().expect("audio row");
    assert_eq!(back.len(), wav.len());
    assert!(back == wav, "the stored audio differs from the recording");
    let info = s.voicemail_audio_info(t.id).await.unwrap().expect("info");
    assert_eq!(info.bytes, wav.len() as i64);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&wav))
    };
    assert_eq!(info.sha256, sha);
    // Readers get it from the store, not the (gone) file.
    let got = s
        .voicemail_wav(
            &t.number,
            t.id,
            t.voicemail_path.as_deref(),
            MAX_VOICEMAIL_BYTES,
        )
        .await;
    assert_eq!(
        got,
        VoicemailWav::Found {
            wav: wav.clone(),
            source: WavSource::Store
        }
    );
    // A reader's smaller limit is checked without loading the audio.
    let small = s
        .voicemail_wav(&t.number, t.id, t.voicemail_path.as_deref(), 1024 * 1024)
        .await;
    assert_eq!(
        small,
        VoicemailWav::TooLarge {
            bytes: wav.len() as u64
        }
    );
    // Provenance: the ticket still names where it was recorded; its history is as before.
    assert_eq!(
        t.voicemail_path.as_deref(),
        Some(path.to_string_lossy().as_ref())
    );
    let ev = s.events(&t.number).await.unwrap();
    assert_eq!(ev.len(), 2);
    assert!(
        !ev[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not in the store"),
        "{:?}",
        ev[0].reason
    );
    // A ticket without a voicemail has none.
    let mut plain = new_ticket(Severity::S2, "15145550121", t0());
    plain.voicemail = None;
    let plain = s.create_ticket(&plain).await.unwrap();
    assert_eq!(s.voicemail_audio(plain.id).await.unwrap(), None);
    assert_eq!(
        s.voicemail_wav(&plain.number, plain.id, None, MAX_VOICEMAIL_BYTES)
            .await,
        VoicemailWav::NoVoicemail
    );
}
both!(voicemail_audio_survives_the_loss_of_the_file);

async fn tickets_created_together_each_keep_their_own_audio(s: &Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let path = dir.path().join(format!("vm-{i}.wav"));
        let wav = wav_bytes(5 + i, 100 + i);
        std::fs::write(&path, &wav).unwrap();
        let t = vm_ticket(&format!("1514555{i:04}"), &path);
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            (s.create_ticket(&t).await.unwrap(), wav)
        }));
    }
    for task in tasks {
        let (t, wav) = task.await.unwrap();
        let back = s.voicemail_audio(t.id).await.unwrap().expect("audio row");
        assert!(
            back == wav,
            "ticket {} has another recording's audio",
            t.number
        );
    }
}
both!(tickets_created_together_each_keep_their_own_audio);

async fn a_ticket_whose_recording_is_missing_is_still_created(s: &Store) {
    use astreinte::store::{VoicemailWav, MAX_VOICEMAIL_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never-written.wav");
    let t = s
        .create_ticket(&vm_ticket("15145550122", &path))
        .await
        .unwrap();
    assert_eq!(s.ticket(&t.number).await.unwrap(), t);
    assert_eq!(s.voicemail_audio(t.id).await.unwrap(), None);
    let ev = s.events(&t.number).await.unwrap();
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "classified"]);
    let why = ev[0].reason.as_deref().unwrap_or_default();
    assert!(why.contains("audio not in the store"), "{why}");
    assert!(why.contains("never-written.wav"), "{why}");
    assert_eq!(s.page_jobs(&t.number).await.unwrap().len(), 2);
    assert_eq!(
        s.voicemail_wav(
            &t.number,
            t.id,
            t.voicemail_path.as_deref(),
            MAX_VOICEMAIL_BYTES
        )
        .await,
        VoicemailWav::Gone
    );
}
both!(a_ticket_whose_recording_is_missing_is_still_created);

async fn backfill_stores_the_audio_of_older_tickets(s: &Store) {
    use astreinte::store::{BackfillReport, VoicemailWav, WavSource, MAX_VOICEMAIL_BYTES};
    let dir = tempfile::tempdir().unwrap();
    // An "older" ticket: made while its file was not readable, so it has no audio row.
    let path = dir.path().join("older.wav");
    let older = s
        .create_ticket(&vm_ticket("15145550123", &path))
        .await
        .unwrap();
    let elsewhere = s
        .create_ticket(&vm_ticket(
            "15145550124",
            &dir.path().join("other-node.wav"),
        ))
        .await
        .unwrap();
    let wav = wav_bytes(3, 7);
    std::fs::write(&path, &wav).unwrap();
    // Before the backfill, readers fall back to the local file.
    assert_eq!(
        s.voicemail_wav(
            &older.number,
            older.id,
            older.voicemail_path.as_deref(),
            MAX_VOICEMAIL_BYTES
        )
        .await,
        VoicemailWav::Found {
            wav: wav.clone(),
            source: WavSource::LocalFile
        }
    );
    let report = s.backfill_voicemail_audio().await.unwrap();
    assert_eq!(
        report,
        BackfillReport {
            stored: 1,
            not_here: 1,
            failed: 0
        }
    );
    std::fs::remove_file(&path).unwrap();
    assert!(s.voicemail_audio(older.id).await.unwrap() == Some(wav.clone()));
    assert_eq!(s.voicemail_audio(elsewhere.id).await.unwrap(), None);
    // Idempotent: a second start (or a second node) stores nothing twice.
    assert_eq!(s.backfill_voicemail_audio().await.unwrap().stored, 0);
    assert!(!s.store_voicemail_audio(older.id, b"other").await.unwrap());
    assert!(s.voicemail_audio(older.id).await.unwrap() == Some(wav));
    // Nothing beyond the limit is stored.
    let huge = vec![0u8; MAX_VOICEMAIL_BYTES as usize + 1];
    assert!(matches!(
        s.store_voicemail_audio(elsewhere.id, &huge).await,
        Err(StoreError::Invalid(_))
    ));
}
both!(backfill_stores_the_audio_of_older_tickets);
