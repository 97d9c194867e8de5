//! The drill's roles (issue 20) against the built engine, over real sockets: a `DrillCaller`
//! leaves an after-hours S1 voicemail and the engine opens its ticket; a `PhoneBank` phone is
//! paged for it, answers after 1 s, presses 1, and the ticket is acknowledged; and a phone
//! that presses 3 gets the customer, whom the same bank answers as the trunk.
//!
//! Each test owns its tokio runtime (the roles run on its threads while the test thread polls
//! the engine's CLI); the runtime, the bank and the engine stop on drop, even on failure.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use astreinte::drill::roles::{
    default_speech, CallerBehaviour, CallerEnd, CallerOutcome, CallerPlan, DrillCaller, KeyPlan,
    PhoneBank, PhoneBankConfig, PhoneBehaviour, PhoneOutcome, PhonePlan, RingRecord,
};
use common::voicemail::cli_json;
use common::Engine;

/// Always closed, and no maintenance window: every call is after hours.
const AFTER_HOURS: &str = "[schedule.open]\n\n[schedule.maintenance]\n";
const CALLER_ID: &str = "5145550100";
const TECH: &str = "5145550201";
const DIRECTOR: &str = "5145550202";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Two seconds of the bundled greeting's voice.
fn speech() -> Arc<[i16]> {
    let clip = default_speech(&Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"))
        .expect("prompts/en/greeting.wav");
    clip[..clip.len().min(16000)].into()
}

/// A drill caller's S1 voicemail from `CALLER_ID`, bounded as a whole; `behaviour` says
/// whether it stays for the tracking number (about 17 s) or hangs up after '#'.
fn leave_voicemail(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    behaviour: CallerBehaviour,
) -> CallerOutcome {
    rt.block_on(async {
        let caller = DrillCaller::start(any_port(), &engine.addr().to_string())
            .await
            .expect("the drill caller's SIP");
        let plan = CallerPlan {
            behaviour,
            ..CallerPlan::s1("5149073400", CALLER_ID, speech())
        };
        let outcome = tokio::time::timeout(Duration::from_secs(45), caller.call(&plan))
            .await
            .expect("the call's steps are bounded");
        caller.shutdown().await;
        outcome
    })
}

fn only_ticket(engine: &Engine) -> serde_json::Value {
    common::wait::wait_for_or(
        "the voicemail's ticket",
        Duration::from_secs(15),
        || {
            let list = cli_json(engine, &["tickets", "list", "--json"]);
            list.as_array().and_then(|a| a.first()).cloned()
        },
        || engine.log_text(),
    )
}

fn time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

fn assert_left_voicemail(outcome: &CallerOutcome, engine: &Engine) {
    assert!(
        outcome.left_voicemail()
            && matches!(
                outcome.end,
                CallerEnd::Completed | CallerEnd::CompletedByEngine
            ),
        "{outcome:#?}\n{}",
        engine.log_text()
    );
    assert!(outcome.answered_at.is_some() && outcome.rtp.keys_sent >= 5);
    assert_eq!(outcome.rtp.malformed, 0, "{outcome:#?}");
}

#[test]
fn a_drill_caller_leaves_an_after_hours_s1_voicemail_and_its_ticket_opens() {
    let engine = Engine::start("", AFTER_HOURS);
    let rt = runtime();
    let outcome = leave_voicemail(&rt, &engine, CallerBehaviour::Normal);
    assert_left_voicemail(&outcome, &engine);
    assert!(outcome.heard_readback, "{outcome:#?}");

    let list = cli_json(&engine, &["tickets", "list", "--json"]);
    let t = only_ticket(&engine);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#?}");
    assert_eq!(t["severity"], "S1", "{t:#?}");
    assert!(
        t["caller"].as_str().unwrap_or_default().contains(CALLER_ID),
        "{t:#?}"
    );
    assert_eq!(t["callback_number"], "+15145550100", "{t:#?}");
    // The report can place the ticket within the call: it is dated from the call's start, and
    // exists once the caller's '#' ended the message.
    let ended = outcome.voicemail_end.expect("voicemail end").at;
    let created = time(&t["created_at"]);
    assert!(
        created >= outcome.placed_at - chrono::Duration::seconds(1) && created <= ended,
        "ticket created at {created}, call placed at {}, '#' at {ended}",
        outcome.placed_at
    );
}

fn paging_config(tech: &str, director: &str, http_port: u16) -> String {
    paging_config_with(tech, director, http_port, "")
}

/// `extra` is appended (e.g. `[sip.outbound]`, the trunk).
fn paging_config_with(tech: &str, director: &str, http_port: u16, extra: &str) -> String {
    format!(
        r#"{AFTER_HOURS}
[[paging.people]]
id = "tech1"
name = "Martin Roy"
phone = "{tech}"
language = "en"

[[paging.people]]
id = "director"
name = "Directrice du service"
phone = "{director}"
language = "fr"

[[paging.rotations]]
id = "oncall"
people = ["tech1"]

[paging.ladder]
levels = [["oncall"], ["director"]]
s1 = ["0s", "30s"]
s2 = ["0s", "30s"]
repeat_every = "0s"

[http]
listen = "127.0.0.1:{http_port}"

{extra}"#
    )
}

fn event_kinds(t: &serde_json::Value) -> Vec<String> {
    t["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_phone_bank_phone_is_paged_answers_after_1_s_and_presses_1_to_acknowledge() {
    paged_phone_acknowledges(KeyPlan::Press1, "1");
}

#[test]
fn a_paged_phone_presses_2_hears_the_voicemail_then_presses_1() {
    let r = paged_phone_acknowledges(
        KeyPlan::Press2Then1 {
            listen: Duration::from_secs(3),
        },
        "21",
    );
    // Between the keys, the voicemail (2 s of the caller's voice) played.
    let gap = (r.keys[1].1 - r.keys[0].1).num_milliseconds();
    assert!(gap >= 2000, "1 pressed {gap} ms after 2: {r:#?}");
}

/// A bank phone paged for a drill caller's S1 voicemail answers after 1 s, presses `keys`
/// (`pressed` expected), and the ticket is acknowledged; its record.
fn paged_phone_acknowledges(keys: KeyPlan, pressed: &str) -> RingRecord {
    let rt = runtime();
    let bank = rt
        .block_on(PhoneBank::start(PhoneBankConfig {
            listen: any_port(),
            trusted: vec!["127.0.0.0/8".into()],
            rtp_ports: None,
            users: vec![
                (
                    TECH.into(),
                    PhonePlan::answer_after(Duration::from_secs(1), keys),
                ),
                (
                    DIRECTOR.into(),
                    PhonePlan::with(PhoneBehaviour::Busy, KeyPlan::Nothing),
                ),
            ],
        }))
        .expect("the phone bank");
    let cfg = paging_config(&bank.uri(TECH), &bank.uri(DIRECTOR), common::free_port());
    let engine = Engine::start("", &cfg);
    // The tracking number was heard in the first test: hang up after '#'.
    let outcome = leave_voicemail(&rt, &engine, CallerBehaviour::HangUpAfterHash);
    assert_left_voicemail(&outcome, &engine);
    let number = only_ticket(&engine)["number"]
        .as_str()
        .expect("tracking number")
        .to_string();

    let mut t = serde_json::Value::Null;
    let acknowledged = common::wait::poll_until(Duration::from_secs(25), || {
        t = cli_json(&engine, &["tickets", "show", &number, "--json"]);
        event_kinds(&t).iter().any(|k| k == "acknowledged")
    });
    assert!(
        acknowledged,
        "not acknowledged: {:#?}\n{:#?}\n{}",
        t["events"],
        bank.records(),
        engine.log_text()
    );
    assert_eq!(t["status"], "acknowledged", "{t:#?}");
    let kinds = event_kinds(&t);
    let pos = |k: &str| kinds.iter().position(|x| x == k);
    assert!(pos("paged") < pos("acknowledged"), "{kinds:?}");

    // The bank's record: the technician's phone rang, answered after 1 s, pressed 1, and the
    // engine hung up after its thanks. The director was never called.
    let done = common::wait::poll_until(Duration::from_secs(15), || {
        bank.records().iter().all(|r| r.outcome.is_some())
    });
    let records = bank.records();
    assert!(done, "{records:#?}");
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert!(r.user.ends_with(TECH), "{r:#?}");
    let answered = r.answered_at.expect("answered");
    assert!(
        (answered - r.at).num_milliseconds() >= 1000,
        "answered too soon: {r:#?}"
    );
    assert_eq!(
        r.keys.iter().map(|(k, _)| *k).collect::<String>(),
        pressed,
        "{r:#?}"
    );
    assert_eq!(
        r.outcome,
        Some(PhoneOutcome::Completed {
            engine_hung_up: true
        }),
        "{r:#?}"
    );
    assert!(r.rtp.packets_received > 0 && r.rtp.malformed == 0, "{r:#?}");
    let r = r.clone();
    drop(engine);
    rt.block_on(bank.shutdown());
    r
}

#[test]
fn a_phone_bank_phone_presses_3_and_the_bank_answers_the_callback_as_the_customer() {
    let rt = runtime();
    let customer = format!("+1{CALLER_ID}");
    let bank = rt
        .block_on(PhoneBank::start(PhoneBankConfig {
            listen: any_port(),
            trusted: vec!["127.0.0.0/8".into()],
            rtp_ports: None,
            users: vec![
                (
                    TECH.into(),
                    PhonePlan::answer_after(
                        Duration::from_millis(500),
                        KeyPlan::Press3 {
                            stay: Duration::from_secs(20),
                        },
                    ),
                ),
                (
                    customer.clone(),
                    PhonePlan::answer_after(
                        Duration::from_secs(1),
                        KeyPlan::Customer {
                            stay: Duration::from_secs(2),
                            speech: Some(speech()),
                        },
                    ),
                ),
            ],
        }))
        .expect("the phone bank");
    // The bank is also the trunk: callbacks to +1 514 555 0100 go to it.
    let trunk = format!(
        "[sip.outbound]\nproxy = \"sip:{}\"\nfrom = \"sip:astreinte@127.0.0.1\"\n",
        bank.local_addr()
    );
    let cfg = paging_config_with(
        &bank.uri(TECH),
        &bank.uri(DIRECTOR),
        common::free_port(),
        &trunk,
    );
    let engine = Engine::start("", &cfg);
    // The tracking number was heard in the first test: hang up after '#'.
    let outcome = leave_voicemail(&rt, &engine, CallerBehaviour::HangUpAfterHash);
    assert_left_voicemail(&outcome, &engine);

    // Both calls over: the customer hung up after 2 s, the engine then ended the bridge.
    let done = common::wait::poll_until(Duration::from_secs(40), || {
        let r = bank.records();
        r.len() == 2 && r.iter().all(|r| r.outcome.is_some())
    });
    let records = bank.records();
    assert!(done, "{records:#?}\n{}", engine.log_text());
    let tech = records
        .iter()
        .find(|r| r.user.ends_with(TECH))
        .expect("tech");
    let cust = records
        .iter()
        .find(|r| r.user.ends_with(CALLER_ID))
        .expect("customer");
    assert_eq!(
        tech.keys.iter().map(|(k, _)| *k).collect::<String>(),
        "3",
        "{tech:#?}"
    );
    assert!(cust.at >= tech.keys[0].1, "{records:#?}");
    assert_eq!(
        cust.outcome,
        Some(PhoneOutcome::Completed {
            engine_hung_up: false
        }),
        "{cust:#?}"
    );
    assert_eq!(
        tech.outcome,
        Some(PhoneOutcome::Completed {
            engine_hung_up: true
        }),
        "{tech:#?}"
    );
    // The customer heard the technician's side of the bridge (RTP flowed to it).
    assert!(cust.rtp.packets_received > 0, "{cust:#?}");
    let number = only_ticket(&engine)["number"]
        .as_str()
        .expect("tracking number")
        .to_string();
    let t = cli_json(&engine, &["tickets", "show", &number, "--json"]);
    assert!(
        event_kinds(&t).iter().any(|k| k == "callback_connected"),
        "{:#?}",
        t["events"]
    );
    drop(engine);
    rt.block_on(bank.shutdown());
}
