//! Playing a night: the scenario's timeline carried out against a running engine (or a
//! cluster behind Kamailio) over real sockets. Callers call at their offsets, the technicians'
//! phones and the trunk's customers answer as planned, the mail and webhook sinks go down and
//! up, the operator's fault commands run; then, once every target has passed, what the engine
//! did is read back for the report.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use astreinte_core::drill::report::CallTrace;
use astreinte_core::drill::scenario::{
    Call, CallerBehaviour as Behaviour, CallerId, Phone, Press, Scenario, Trunk,
};
use astreinte_core::drill::timeline::{timeline, Cue, SinkKind, SinkState};
use astreinte_core::lang::Lang;
use astreinte_core::triage::Severity;
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::faults::{FaultCommands, FaultRun};
use super::roles::{
    CallbackChoice, CallerBehaviour, CallerEnd, CallerOutcome, CallerPlan, CallerTiming,
    DrillCaller, Emergency, KeyPlan, Language, PhoneBank, PhoneBankConfig, PhoneBehaviour,
    PhonePlan, RingRecord,
};
use super::sinks::{Receipt, Sink, SinkMode, SinkSwitch};

/// Where the drill's roles listen: the engine under drill is configured to reach them (its
/// roster's phones, `[sip.outbound]`, `[paging.smtp]`, `[[paging.webhooks]]`).
#[derive(Debug, Clone)]
pub struct Stage {
    /// The engine's SIP address (a node, or Kamailio in front of several).
    pub target: String,
    /// The number the callers dial.
    pub number: String,
    /// The drill's own address (a concrete one: it is written in SDP and Contact).
    pub ip: IpAddr,
    /// The technicians' phones and the trunk's customers (SIP).
    pub phones_port: u16,
    /// The mail sink (SMTP).
    pub mail_port: u16,
    /// The webhook sink (HTTP).
    pub webhook_port: u16,
    /// What the callers say after the tone (8 kHz).
    pub speech: Arc<[i16]>,
    /// Networks the engine's nodes call the phones from.
    pub engine_nets: Vec<String>,
}

/// Calls a caller places for one scenario call, the first included.
const MAX_ATTEMPTS: u32 = 3;
/// How long a caller whose line dropped waits before calling again (wall time: a person's
/// pause does not shrink with the night).
const REDIAL_PAUSE: Duration = Duration::from_secs(3);

/// The line dropped before the caller heard their tracking number: refused, unanswered, hung
/// up on or gone silent (what a node's death looks like from outside). A person calls again;
/// an engine that already opened the ticket opens another, which the report shows.
fn dropped(outcome: &CallerOutcome) -> bool {
    !outcome.heard_readback
        && matches!(
            outcome.end,
            CallerEnd::Refused
                | CallerEnd::NotAnswered
                | CallerEnd::EngineHungUp { .. }
                | CallerEnd::TimedOut { .. }
        )
}

/// What the drill did during the night, with its phones and sinks still up: the engine may
/// page (escalations, re-pages) until the last target, and they must answer until the report
/// is made. [`PlayedNight::shutdown`] stops them.
#[derive(Debug)]
pub struct PlayedNight {
    pub start: DateTime<Utc>,
    /// Each call, its last attempt's outcome, and how many attempts it took.
    pub calls: Vec<(Call, CallerOutcome, u32)>,
    pub faults: Vec<FaultRun>,
    mail: Sink,
    webhook: Sink,
    bank: PhoneBank,
}

/// The digits of an E.164 caller ID, as a trunk would present them.
fn digits(n: &str) -> String {
    n.chars().filter(char::is_ascii_digit).collect()
}

fn phone_plan(phone: Phone) -> PhonePlan {
    match phone {
        // Answer delays are a person's, in real seconds: rings are never compressed.
        Phone::Answers { after, press } => {
            let keys = match press {
                Press::Acknowledge => KeyPlan::Press1,
                Press::HearThenAcknowledge => KeyPlan::Press2Then1 {
                    listen: Duration::from_secs(10),
                },
                Press::ConnectNow => KeyPlan::Press3 {
                    stay: Duration::from_secs(60),
                },
                Press::AcknowledgeNeverCallBack => KeyPlan::AckThenHangUp,
                Press::Nothing => KeyPlan::Nothing,
            };
            PhonePlan::answer_after(after, keys)
        }
        Phone::NeverAnswers => PhonePlan::with(PhoneBehaviour::NeverAnswer, KeyPlan::Nothing),
        Phone::Busy => PhonePlan::with(PhoneBehaviour::Busy, KeyPlan::Nothing),
    }
}

fn caller_plan(call: &Call, stage: &Stage) -> CallerPlan {
    CallerPlan {
        number: stage.number.clone(),
        caller_id: match &call.caller {
            CallerId::Number(n) => Some(digits(n)),
            CallerId::Anonymous => None,
        },
        language: match call.lang {
            Lang::En => Language::English,
            Lang::Fr => Language::French,
        },
        emergency: match call.severity {
            Severity::S1 => Emergency::S1,
            Severity::S2 => Emergency::S2,
            Severity::S3 => Emergency::Other,
        },
        callback: match &call.caller {
            CallerId::Number(_) => CallbackChoice::Confirm,
            // Nobody to call back at the caller ID: the caller keys a number the trunk
            // does not answer for (its callback stays untested, the ticket is not).
            CallerId::Anonymous => CallbackChoice::Enter("15145550199".into()),
        },
        behaviour: match call.behaviour {
            Behaviour::Normal => CallerBehaviour::Normal,
            Behaviour::HangsUpBeforeTone => CallerBehaviour::HangUpEarly,
            // Hangs up as soon as the message is said, without waiting for its number.
            Behaviour::HangsUpDuringMessage => CallerBehaviour::HangUpAfterHash,
            Behaviour::Silent => CallerBehaviour::Silent,
        },
        speech: stage.speech.clone(),
        timing: CallerTiming::default(),
    }
}

/// The phones: one per technician, and the trunk's customers (every callable caller ID).
fn phone_users(scenario: &Scenario) -> Vec<(String, PhonePlan)> {
    let mut users: Vec<(String, PhonePlan)> = scenario
        .technicians
        .iter()
        .map(|t| (t.number.clone(), phone_plan(t.phone)))
        .collect();
    let customer = match scenario.trunk {
        Trunk::Answers { after } => PhonePlan::answer_after(
            after,
            KeyPlan::Customer {
                stay: Duration::from_secs(5),
                speech: None,
            },
        ),
        Trunk::NeverAnswers => PhonePlan::with(PhoneBehaviour::NeverAnswer, KeyPlan::Nothing),
    };
    for call in scenario.calls() {
        if let (CallerId::Number(n), true) = (&call.caller, call.callable) {
            let n = digits(n);
            if !users.iter().any(|(u, _)| *u == n) {
                users.push((n, customer.clone()));
            }
        }
    }
    users
}

/// Plays `scenario` on `stage`; returns when every call is over and the night's length has
/// passed.
pub async fn play(
    scenario: &Scenario,
    stage: &Stage,
    faults: &FaultCommands,
) -> anyhow::Result<PlayedNight> {
    let at = |port: u16| SocketAddr::new(stage.ip, port);
    let mail = SinkSwitch::default();
    let hook = SinkSwitch::default();
    let mail_sink = Sink::mail(at(stage.mail_port), mail.clone()).await?;
    let hook_sink = Sink::webhook(at(stage.webhook_port), hook.clone()).await?;
    let bank = PhoneBank::start(PhoneBankConfig {
        listen: at(stage.phones_port),
        trusted: stage.engine_nets.clone(),
        rtp_ports: None,
        users: phone_users(scenario),
    })
    .await?;
    let caller = Arc::new(DrillCaller::start(at(0), &stage.target).await?);
    info!(phones = %bank.local_addr(), mail = %mail_sink.addr(), webhook = %hook_sink.addr(), target = %stage.target, "drill stage ready");

    let start = Utc::now();
    let origin = tokio::time::Instant::now();
    let mut calls = JoinSet::new();
    let mut fault_runs = Vec::new();
    for cue in timeline(scenario) {
        tokio::time::sleep_until(origin + cue.at).await;
        match cue.cue {
            Cue::Call { call, .. } => {
                let plan = caller_plan(&call, stage);
                let caller = caller.clone();
                calls.spawn(async move {
                    let mut attempts = 1;
                    let mut outcome = caller.call(&plan).await;
                    // A person whose line drops before the message is left (a node died
                    // under the call) calls again, twice at most, a few seconds later.
                    while attempts < MAX_ATTEMPTS && call.expects_ticket() && dropped(&outcome) {
                        info!(caller = %call.caller, end = ?outcome.end, "drill: the line dropped; the caller calls again");
                        tokio::time::sleep(REDIAL_PAUSE).await;
                        attempts += 1;
                        outcome = caller.call(&plan).await;
                    }
                    (call, outcome, attempts)
                });
            }
            Cue::Sink { sink, state } => {
                let mode = match state {
                    SinkState::Up => SinkMode::Up,
                    SinkState::Down => SinkMode::Down,
                    SinkState::Failing => SinkMode::Failing,
                };
                info!(?sink, ?mode, "drill: sink switched");
                match sink {
                    SinkKind::Mail => mail.set(mode),
                    SinkKind::Webhook => hook.set(mode),
                }
            }
            Cue::Fault(kind) => {
                let run = faults.run(kind).await;
                if let Err(e) = &run.outcome {
                    warn!(fault = run.fault, error = %e, "drill fault did not run as asked");
                }
                fault_runs.push(run);
            }
        }
    }
    let mut played = Vec::new();
    while let Some(done) = calls.join_next().await {
        match done {
            Ok(c) => played.push(c),
            Err(e) => warn!(error = %e, "a drill call's task failed"),
        }
    }
    // The night runs its length even when its calls are done early.
    tokio::time::sleep_until(origin + scenario.wall(scenario.night.length)).await;
    mail.set(SinkMode::Up);
    hook.set(SinkMode::Up);
    if let Ok(caller) = Arc::try_unwrap(caller) {
        caller.shutdown().await;
    }
    Ok(PlayedNight {
        start,
        calls: played,
        faults: fault_runs,
        mail: mail_sink,
        webhook: hook_sink,
        bank,
    })
}

impl PlayedNight {
    /// Every written page the sinks received so far.
    pub fn receipts(&self) -> Vec<Receipt> {
        [self.mail.receipts(), self.webhook.receipts()].concat()
    }

    /// Every call the phones received so far.
    pub fn rings(&self) -> Vec<RingRecord> {
        self.bank.records()
    }

    /// Stops the phones (calls in progress hung up) and the sinks.
    pub async fn shutdown(self) {
        self.bank.shutdown().await;
    }

    /// When the caller of `ticket` (matched in `calls`) ended its message.
    pub fn voicemail_end_of(&self, calls: &[CallTrace], ticket: &str) -> Option<DateTime<Utc>> {
        let call = calls.iter().find(|c| c.ticket.as_deref() == Some(ticket))?;
        self.calls
            .iter()
            .find(|(_, o, _)| o.placed_at == call.placed_at)
            .and_then(|(_, o, _)| o.voicemail_end.map(|v| v.at))
    }

    /// The calls as the report counts them, each matched to the ticket the engine opened for
    /// its caller ID (the first one opened after the call began).
    pub fn call_traces(&self, tickets: &[(String, String, DateTime<Utc>)]) -> Vec<CallTrace> {
        let mut taken = std::collections::BTreeSet::new();
        let mut calls: Vec<&(Call, CallerOutcome, u32)> = self.calls.iter().collect();
        calls.sort_by_key(|(_, o, _)| o.placed_at);
        calls
            .into_iter()
            .map(|(call, outcome, attempts)| {
                let me = outcome.caller_id.as_deref().map(digits);
                let ticket = tickets
                    .iter()
                    .filter(|(number, caller, created)| {
                        !taken.contains(number)
                            && *created >= outcome.placed_at - chrono::Duration::seconds(5)
                            && me
                                .as_deref()
                                .is_some_and(|m| !m.is_empty() && digits(caller).ends_with(m))
                    })
                    .min_by_key(|(_, _, created)| *created)
                    .map(|(n, _, _)| n.clone());
                if let Some(n) = &ticket {
                    taken.insert(n.clone());
                }
                CallTrace {
                    caller: call.caller.to_string(),
                    placed_at: outcome.placed_at,
                    severity: call.severity,
                    ticket,
                    expects_ticket: call.expects_ticket(),
                    attempts: *attempts,
                }
            })
            .collect()
    }
}
