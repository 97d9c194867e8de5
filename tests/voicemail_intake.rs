//! Voicemails into tickets with a real store: the normal path, a crash mid-message (recovered at
//! the next start), a crash before any audio, a second submission of the same message, and a
//! PostgreSQL that becomes unreachable while messages end (through a TCP relay the test cuts).

use astreinte::call::callback::CallbackNumber;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use astreinte::call::voicemail::{pending_intakes, DeskError, Finished, Intake, VoicemailDesk};
use astreinte::schedule::{Schedule, ScheduleConfig};
use astreinte::store::{Store, StoreConfig};
use astreinte::triage::{Severity, Triage};
use chrono::{TimeZone, Utc};

#[path = "common/skip.rs"]
mod skip;
#[path = "common/wait.rs"]
mod wait;

fn schedule() -> Schedule {
    Schedule::from_config(&ScheduleConfig::default()).expect("default schedule")
}

/// Wednesday 2025-03-12 23:00 in Montréal: after hours.
fn night() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 13, 3, 0, 0).unwrap()
}

fn intake(call_id: &str, key: char, finished: Option<Finished>) -> Intake {
    Intake {
        call_id: call_id.into(),
        caller: "5145550100".into(),
        callback_number: CallbackNumber::from_record("+15145550199"),
        keypress: Some(key),
        language: "fr".into(),
        business_hours: false,
        started_at: night(),
        answers: Default::default(),
        finished,
        ticket: None,
    }
}

/// A WAV of the bundled French greeting (speech), as a finished recording would be.
fn speech_wav(path: &Path) -> f64 {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/fr/greeting.wav");
    std::fs::copy(src, path).unwrap();
    let r = hound::WavReader::open(path).unwrap();
    f64::from(r.duration()) / 8000.0
}

async fn sqlite(dir: &Path) -> Store {
    let url = format!("sqlite://{}/astreinte.db", dir.display());
    Store::connect(&StoreConfig::with_url(url)).await.unwrap()
}

async fn wait_for_ticket(store: &Store, recording: &Path) -> astreinte::store::Ticket {
    let path = recording.to_string_lossy().into_owned();
    wait::wait_for_async(
        &format!("a ticket for {path}"),
        Duration::from_secs(10),
        || async { store.ticket_for_voicemail(&path).await.unwrap() },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_message_becomes_one_ticket_and_is_marked_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let desk = VoicemailDesk::start(store.clone(), schedule(), Triage::embedded());
    let rec = dir.path().join("vm-1.wav");
    let seconds = speech_wav(&rec);
    let i = intake(
        "call-1",
        '1',
        Some(Finished {
            seconds,
            speech_detected: true,
        }),
    );
    i.write(&rec).unwrap();
    let t = desk.submit(rec.clone(), i.clone()).await.unwrap().unwrap();
    assert_eq!(t.severity, Severity::S1);
    assert_eq!(t.callback_number, "+15145550199");
    assert_eq!(t.voicemail_path.as_deref(), Some(rec.to_str().unwrap()));
    assert!((t.voicemail_seconds.unwrap() - seconds).abs() < 0.01);
    assert_eq!(t.speech_detected, Some(true));
    assert_eq!(t.created_at, night());
    // 30 minutes after the call for an S1 at night (DOMAIN.md).
    assert_eq!(t.callback_due_at, night() + chrono::Duration::minutes(30));
    assert!(!Intake::path_for(&rec).exists(), "intake marked done");
    let done = Intake::read(&dir.path().join("vm-1.ticket.json")).unwrap();
    assert_eq!(done.ticket.as_deref(), Some(t.number.as_str()));
    assert!(pending_intakes(dir.path()).is_empty());
    // The same message again (a crash before the intake was marked): the same ticket.
    let again = desk.submit(rec.clone(), i).await.unwrap().unwrap();
    assert_eq!(again.number, t.number);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_crash_left_behind_are_ticketed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    // The previous run: two intakes written, one recording on disk (made whole by
    // media::recover_unfinished), the other call died before any audio reached the disk.
    let with_audio = dir.path().join("vm-a.wav");
    let seconds = speech_wav(&with_audio);
    intake("call-a", '2', None).write(&with_audio).unwrap();
    let no_audio = dir.path().join("vm-b.wav");
    let mut b = intake("call-b", '1', None);
    b.started_at = night() + chrono::Duration::seconds(5);
    b.write(&no_audio).unwrap();
    assert_eq!(pending_intakes(dir.path()).len(), 2);

    let store = sqlite(dir.path()).await;
    let desk = VoicemailDesk::start(store.clone(), schedule(), Triage::embedded());
    assert_eq!(desk.recover(dir.path()), 2);
    let a = wait_for_ticket(&store, &with_audio).await;
    assert_eq!(a.severity, Severity::S2);
    assert!((a.voicemail_seconds.unwrap() - seconds).abs() < 0.01);
    assert_eq!(
        a.speech_detected,
        Some(true),
        "speech found in the recovered file"
    );
    assert!(a.answers.contains_key("recovered"));
    // The one without audio still has its ticket, found by its done marker.
    let b_marker = dir.path().join("vm-b.ticket.json");
    wait::poll_for_async(Duration::from_secs(10), || {
        std::future::ready(b_marker.exists().then_some(()))
    })
    .await;
    let b_done = Intake::read(&dir.path().join("vm-b.ticket.json")).unwrap();
    let b = store
        .ticket(b_done.ticket.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(b.severity, Severity::S1);
    assert_eq!(b.voicemail_path, None);
    assert!(pending_intakes(dir.path()).is_empty());
}

/// A TCP relay to PostgreSQL that the test can cut: while down it closes every connection and
/// refuses new ones, as an unreachable server would.
struct Relay {
    addr: std::net::SocketAddr,
    down: Arc<AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl Relay {
    async fn start(upstream: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        Relay { addr, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut.notify_waiters();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_end_while_postgresql_is_unreachable_are_ticketed_in_order_once_it_is_back() {
    let Ok(url) = std::env::var("ASTREINTE_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ASTREINTE_TEST_PG_URL is not"
        );
        skip::skip(
            "messages_that_end_while_postgresql_is_unreachable_are_ticketed_in_order_once_it_is_back",
            "ASTREINTE_TEST_PG_URL is not set (scripts/test.sh sets it)",
        );
        return;
    };
    // A fresh schema, reached through the relay.
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let schema = format!("t_vm_outage_{}", std::process::id());
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let parsed: url_parts::Parts = url_parts::parse(&url);
    let upstream = format!("{}:{}", parsed.host, parsed.port).parse().unwrap();
    let relay = Relay::start(upstream).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let via_relay = format!(
        "postgres://{}@{}/{}{sep}options=-c%20search_path%3D{schema}",
        parsed.user, relay.addr, parsed.db
    );
    let store = Store::connect(&StoreConfig::with_url(via_relay))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let desk = VoicemailDesk::start(store.clone(), schedule(), Triage::embedded());

    relay.set_down(true);
    let mut recordings: Vec<PathBuf> = Vec::new();
    for n in 0..3 {
        let rec = dir.path().join(format!("vm-{n}.wav"));
        let seconds = speech_wav(&rec);
        let mut i = intake(
            &format!("outage-{n}"),
            '1',
            Some(Finished {
                seconds,
                speech_detected: true,
            }),
        );
        i.started_at = night() + chrono::Duration::seconds(n);
        i.write(&rec).unwrap();
        let reply = desk.submit(rec.clone(), i);
        recordings.push(rec);
        if n == 0 {
            // The caller is told (no tracking number): the store is down.
            match tokio::time::timeout(Duration::from_secs(20), reply).await {
                Ok(Ok(Err(DeskError::StoreDown(_)))) => {}
                other => panic!("expected StoreDown, got {other:?}"),
            }
        }
    }
    // Not an event: two seconds of the store being down, the desk retrying, is what shows
    // that nothing is lost meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pending_intakes(dir.path()).len(),
        3,
        "nothing is lost meanwhile"
    );
    relay.set_down(false);
    let mut numbers = Vec::new();
    for rec in &recordings {
        let path = rec.to_string_lossy().into_owned();
        let found = wait::poll_for_async(Duration::from_secs(60), || async {
            store.ticket_for_voicemail(&path).await.ok().flatten()
        })
        .await;
        let t = found.unwrap_or_else(|| panic!("no ticket for {path} after the store came back"));
        numbers.push(t.id);
    }
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    store.close().await;
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}

/// Enough of a postgres:// URL for the relay (user, host, port, database).
mod url_parts {
    pub struct Parts {
        pub user: String,
        pub host: String,
        pub port: u16,
        pub db: String,
    }

    pub fn parse(url: &str) -> Parts {
        let rest = url
            .trim_start_matches("postgres://")
            .trim_start_matches("postgresql://");
        let (auth, rest) = rest.split_once('@').unwrap_or(("postgres", rest));
        let (hostport, db) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let db = db.split('?').next().unwrap_or("postgres").to_string();
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Parts {
            user: auth.to_string(),
            host: host.to_string(),
            port: port.parse().unwrap_or(5432),
            db,
        }
    }
}

#[test]
fn an_unreadable_intake_is_left_on_disk_and_the_others_are_still_ticketed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("vm-x.intake.json");
    std::fs::write(&bad, b"\xff\xfe{ not json \x00").unwrap();
    let good = dir.path().join("vm-y.wav");
    intake("call-y", '1', None).write(&good).unwrap();
    let pending = pending_intakes(dir.path());
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, good);
    assert!(bad.exists(), "kept for a person to read");
}
