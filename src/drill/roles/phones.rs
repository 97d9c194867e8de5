//! [`PhoneBank`]: the technicians' phones and the trunk's customers. One SIP UAS (the engine's
//! own stack, `numbers` = the users it answers) answers each call per its user's
//! [`PhonePlan`]: after N seconds, never, or busy; then keys as a technician would (1; 2, hear
//! the voicemail, 1; 3 and stay for the bridge; ...) or, as a customer called back through the
//! trunk, stays on a few seconds and hangs up. Every call it receives is recorded
//! ([`RingRecord`]) for the report.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, info_span, warn, Instrument};

use super::rtp::{RtpPeer, RtpStats};
use super::{during, RoleError, Stop};
use crate::sip::routing::NumberSet;
use crate::sip::transport::{self, InboundCall, LegEvent, SipError, SipHandle};
use crate::sip::SipConfig;

/// Whether and when the phone picks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneBehaviour {
    /// Rings, then answers after this long.
    AnswerAfter(Duration),
    /// Rings until the engine gives up (CANCEL), bounded by [`PhonePlan::ring_max`].
    NeverAnswer,
    /// 486 Busy Here at once.
    Busy,
}

/// What the person does once the call is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyPlan {
    /// Hears the page begin, presses 1 (acknowledge), waits for the engine's goodbye.
    Press1,
    /// Presses 2 (hear the voicemail), listens to it, then presses 1: at the first quiet gap
    /// of [`PhonePlan::voicemail_quiet`], or after `listen` (the engine follows the voicemail
    /// with its menu at once, so its end may never be heard as silence; a scenario knows how
    /// long its callers spoke).
    Press2Then1 { listen: Duration },
    /// Presses 3 (acknowledge and call the customer back), stays on the bridge until the
    /// engine ends it or `stay` has passed.
    Press3 { stay: Duration },
    /// Presses 1 and hangs up at once, without waiting for the thanks.
    AckThenHangUp,
    /// Presses nothing; listens until the engine hangs up (bounded by `stay_max`).
    Nothing,
    /// The customer the engine calls back through the trunk: says `speech` (if any), stays
    /// on for `stay`, hangs up.
    Customer {
        stay: Duration,
        speech: Option<Arc<[i16]>>,
    },
}

/// One user's phone.
#[derive(Debug, Clone, PartialEq)]
pub struct PhonePlan {
    pub behaviour: PhoneBehaviour,
    pub keys: KeyPlan,
    /// For the page's first prompt to begin after the answer.
    pub prompt_within: Duration,
    /// How long the person listens to the page before pressing (a human pace).
    pub listen_before_key: Duration,
    /// Silence that means the voicemail (key 2) is over.
    pub voicemail_quiet: Duration,
    /// Longest a phone stays on once its part is done, waiting for the engine to hang up.
    pub stay_max: Duration,
    /// Longest a never-answered phone rings before it gives up (480).
    pub ring_max: Duration,
}

impl PhonePlan {
    /// Answers after `after`, then follows `keys`, with the default pace and bounds.
    pub fn answer_after(after: Duration, keys: KeyPlan) -> PhonePlan {
        PhonePlan {
            behaviour: PhoneBehaviour::AnswerAfter(after),
            ..PhonePlan::with(PhoneBehaviour::NeverAnswer, keys)
        }
    }

    pub fn with(behaviour: PhoneBehaviour, keys: KeyPlan) -> PhonePlan {
        PhonePlan {
            behaviour,
            keys,
            prompt_within: Duration::from_secs(30),
            listen_before_key: Duration::from_millis(500),
            voicemail_quiet: Duration::from_millis(1000),
            stay_max: Duration::from_secs(30),
            ring_max: Duration::from_secs(300),
        }
    }
}

/// How one received call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneOutcome {
    /// Refused 486, as planned.
    Busy,
    /// Never answered: the engine cancelled, or we gave up ringing.
    Unanswered {
        reason: String,
    },
    /// Answered and the plan was carried out; who hung up last.
    Completed {
        engine_hung_up: bool,
    },
    /// The engine hung up before the plan was done, during `step`.
    EngineHungUp {
        step: String,
        reason: String,
    },
    /// `step` timed out (we hung up).
    TimedOut {
        step: String,
        what: String,
    },
    Failed(String),
}

/// One call the bank received.
#[derive(Debug, Clone, PartialEq)]
pub struct RingRecord {
    /// The called user (canonical number).
    pub user: String,
    pub call_id: String,
    /// Who called (the From's user).
    pub from: String,
    /// When the INVITE arrived.
    pub at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Keys pressed and when each press began.
    pub keys: Vec<(char, DateTime<Utc>)>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `None` while the call goes on.
    pub outcome: Option<PhoneOutcome>,
    pub rtp: RtpStats,
}

/// Where the bank listens and whom it answers.
#[derive(Debug, Clone)]
pub struct PhoneBankConfig {
    /// SIP (UDP and TCP) listen address; port 0 for any.
    pub listen: SocketAddr,
    /// Networks allowed to call the bank (the engine's).
    pub trusted: Vec<String>,
    /// RTP port range (inclusive), or any free port.
    pub rtp_ports: Option<(u16, u16)>,
    /// Each user (a number: the engine's SIP stack answers numbers) and its phone.
    pub users: Vec<(String, PhonePlan)>,
}

/// The phones of the drill.
#[derive(Debug)]
pub struct PhoneBank {
    sip: SipHandle,
    sip_task: Option<JoinHandle<Result<(), SipError>>>,
    accept: JoinHandle<()>,
    records: Arc<Mutex<Vec<RingRecord>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PhoneBank {
    pub async fn start(config: PhoneBankConfig) -> Result<PhoneBank, RoleError> {
        let mut plans = HashMap::new();
        for (user, plan) in &config.users {
            let canonical = NumberSet::new([user.as_str()])
                .lookup(user)
                .ok_or_else(|| RoleError::BadUser(user.clone()))?;
            plans.insert(canonical, plan.clone());
        }
        let sip_config = SipConfig {
            listen: config.listen.to_string(),
            numbers: config.users.iter().map(|(u, _)| u.clone()).collect(),
            trusted: config.trusted.clone(),
            drain_secs: 0,
            user_agent: "astreinte-drill".into(),
            ..SipConfig::default()
        };
        let (sip, inbound, sip_task) = transport::start(&sip_config).await?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(Ctx {
            plans,
            records: records.clone(),
            rtp_ip: sip.advertised_addr().ip(),
            rtp_ports: config.rtp_ports,
        });
        let accept = tokio::spawn(accept(inbound, ctx));
        info!(addr = %sip.local_addr(), "phone bank listening");
        Ok(PhoneBank {
            sip,
            sip_task: Some(sip_task),
            accept,
            records,
        })
    }

    /// Where the bank's SIP listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.sip.local_addr()
    }

    /// The URI that reaches `user` on this bank (a roster person's `phone`).
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip.advertised_addr())
    }

    /// Every call received so far, in arrival order (those in progress have no outcome yet).
    pub fn records(&self) -> Vec<RingRecord> {
        lock(&self.records).clone()
    }

    /// Stops the bank: calls in progress are hung up, the SIP service stops.
    pub async fn shutdown(mut self) {
        self.accept.abort();
        self.sip.shutdown();
        if let Some(task) = self.sip_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for PhoneBank {
    fn drop(&mut self) {
        // The accept task owns the calls' JoinSet: aborting it aborts them all.
        self.accept.abort();
        self.sip.shutdown();
        if let Some(task) = self.sip_task.take() {
            task.abort();
        }
    }
}

struct Ctx {
    plans: HashMap<String, PhonePlan>,
    records: Arc<Mutex<Vec<RingRecord>>>,
    rtp_ip: IpAddr,
    rtp_ports: Option<(u16, u16)>,
}

async fn accept(mut inbound: mpsc::Receiver<InboundCall>, ctx: Arc<Ctx>) {
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            call = inbound.recv() => match call {
                Some(call) => {
                    let span = info_span!(
                        "drill_phone",
                        call_id = %call.call.call_id,
                        user = %call.call.number,
                    );
                    calls.spawn(answer(call, ctx.clone()).instrument(span));
                }
                None => break,
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
    while calls.join_next().await.is_some() {}
}

/// One received call, start to end.
async fn answer(call: InboundCall, ctx: Arc<Ctx>) {
    let InboundCall {
        call,
        leg,
        mut events,
    } = call;
    let index = {
        let mut r = lock(&ctx.records);
        r.push(RingRecord {
            user: call.number.clone(),
            call_id: call.call_id.clone(),
            from: call.caller.user.clone().unwrap_or_default(),
            at: Utc::now(),
            answered_at: None,
            keys: Vec::new(),
            ended_at: None,
            outcome: None,
            rtp: RtpStats::default(),
        });
        r.len() - 1
    };
    let update = |f: &dyn Fn(&mut RingRecord)| {
        if let Some(rec) = lock(&ctx.records).get_mut(index) {
            f(rec);
        }
    };
    let Some(plan) = ctx.plans.get(&call.number).cloned() else {
        // The SIP stack answers only our numbers; a plan is missing only by a bug.
        leg.reject(404);
        update(&|r| {
            r.outcome = Some(PhoneOutcome::Failed("no plan for this user".into()));
            r.ended_at = Some(Utc::now());
        });
        return;
    };
    info!(from = %call.caller.user.as_deref().unwrap_or("?"), "ringing");

    let after = match plan.behaviour {
        PhoneBehaviour::Busy => {
            leg.reject(486);
            update(&|r| {
                r.outcome = Some(PhoneOutcome::Busy);
                r.ended_at = Some(Utc::now());
            });
            return;
        }
        PhoneBehaviour::NeverAnswer => plan.ring_max,
        PhoneBehaviour::AnswerAfter(after) => after,
    };
    leg.ring();
    // Ring for `after`, unless the engine cancels first.
    let cancelled = tokio::time::timeout(after, async {
        while let Some(ev) = events.recv().await {
            if let LegEvent::Ended { reason } = ev {
                return reason.to_string();
            }
        }
        "SIP service stopped".to_string()
    })
    .await;
    match (cancelled, plan.behaviour) {
        (Ok(reason), _) => {
            info!(%reason, "not answered");
            update(&|r| {
                r.outcome = Some(PhoneOutcome::Unanswered {
                    reason: reason.clone(),
                });
                r.ended_at = Some(Utc::now());
            });
            return;
        }
        (Err(_), PhoneBehaviour::NeverAnswer) => {
            leg.reject(480);
            update(&|r| {
                r.outcome = Some(PhoneOutcome::Unanswered {
                    reason: "rang too long: 480".into(),
                });
                r.ended_at = Some(Utc::now());
            });
            return;
        }
        (Err(_), _) => {}
    }

    let rtp = match RtpPeer::bind(ctx.rtp_ip, ctx.rtp_ports).await {
        Ok(r) => r,
        Err(e) => {
            leg.reject(500);
            let e = e.to_string();
            update(&|r| {
                r.outcome = Some(PhoneOutcome::Failed(e.clone()));
                r.ended_at = Some(Utc::now());
            });
            return;
        }
    };
    if let Some(media) = &call.media {
        rtp.connect(media);
    }
    leg.answer(rtp.local_addr());
    update(&|r| r.answered_at = Some(Utc::now()));
    info!("answered");

    // Keys go into the record as they are pressed: a report read mid-call sees them.
    let pressed = |key: char, at: DateTime<Utc>| update(&|r| r.keys.push((key, at)));
    let result = act(&plan, &rtp, &mut events, &pressed).await;
    let outcome = match result {
        Ok(()) => {
            // Our part is done: stay until the engine hangs up, within `stay_max`, unless the
            // plan hangs up itself.
            let wait = match plan.keys {
                KeyPlan::AckThenHangUp | KeyPlan::Customer { .. } | KeyPlan::Press3 { .. } => {
                    Duration::ZERO
                }
                _ => plan.stay_max,
            };
            let ended = during("stay", &mut events, &rtp, async {
                tokio::time::sleep(wait).await;
                Ok(())
            })
            .await;
            PhoneOutcome::Completed {
                engine_hung_up: ended.is_err(),
            }
        }
        // The bridge or the customer's call ended by the engine: the plan's normal end.
        Err(("bridge" | "customer", Stop::Ended(_))) => PhoneOutcome::Completed {
            engine_hung_up: true,
        },
        Err((step, Stop::Ended(reason))) => PhoneOutcome::EngineHungUp {
            step: step.to_string(),
            reason: reason.to_string(),
        },
        Err((step, Stop::Failed(RoleError::Timeout { what, .. }))) => PhoneOutcome::TimedOut {
            step: step.to_string(),
            what,
        },
        Err((step, Stop::Failed(e))) => PhoneOutcome::Failed(format!("{step}: {e}")),
    };
    if !matches!(
        outcome,
        PhoneOutcome::EngineHungUp { .. }
            | PhoneOutcome::Completed {
                engine_hung_up: true
            }
    ) {
        leg.hangup();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(ev) = events.recv().await {
                if matches!(ev, LegEvent::Ended { .. }) {
                    break;
                }
            }
        })
        .await;
    }
    rtp.close();
    let stats = rtp.stats();
    if !matches!(outcome, PhoneOutcome::Completed { .. }) {
        warn!(?outcome, "phone call did not go as planned");
    } else {
        info!(?outcome, "phone call over");
    }
    update(&|r| {
        r.outcome = Some(outcome.clone());
        r.ended_at = Some(Utc::now());
        r.rtp = stats;
    });
}

/// The person's part once the call is answered.
async fn act(
    plan: &PhonePlan,
    rtp: &RtpPeer,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    pressed: &(dyn Fn(char, DateTime<Utc>) + Sync),
) -> Result<(), (&'static str, Stop)> {
    // The INVITE had no SDP: our offer went in the 200, the engine's answer comes in the ACK.
    if !rtp.is_connected() {
        let got = tokio::time::timeout(plan.prompt_within, async {
            while let Some(ev) = events.recv().await {
                match ev {
                    LegEvent::Confirmed { media: Some(m) }
                    | LegEvent::MediaUpdated { media: m } => return Ok(m),
                    LegEvent::Ended { reason } => return Err(Stop::Ended(reason)),
                    _ => {}
                }
            }
            Err(Stop::Failed(RoleError::Sip(SipError::Stopped)))
        })
        .await;
        match got {
            Ok(Ok(m)) => rtp.connect(&m),
            Ok(Err(stop)) => return Err(("ack", stop)),
            Err(_) => {
                return Err((
                    "ack",
                    Stop::Failed(RoleError::Timeout {
                        what: "the SDP answer in the ACK".into(),
                        after: plan.prompt_within,
                    }),
                ))
            }
        }
    }
    let press = |key: char| async move {
        // When the press began: the peer acts on its first packet.
        let at = Utc::now();
        rtp.press(key).await?;
        pressed(key, at);
        Ok::<(), RoleError>(())
    };
    let hear_page = || async {
        rtp.wait_prompt_start(plan.prompt_within).await?;
        // Not an event: a person listens a moment before pressing.
        tokio::time::sleep(plan.listen_before_key).await;
        Ok::<(), RoleError>(())
    };
    match &plan.keys {
        KeyPlan::Press1 | KeyPlan::AckThenHangUp => {
            during("page", events, rtp, hear_page()).await?;
            during("key 1", events, rtp, press('1')).await?;
        }
        KeyPlan::Press2Then1 { listen } => {
            during("page", events, rtp, hear_page()).await?;
            during("key 2", events, rtp, press('2')).await?;
            let listen = *listen;
            during("voicemail", events, rtp, async {
                rtp.wait_prompt_start(plan.prompt_within).await?;
                match rtp.wait_prompt_end(plan.voicemail_quiet, listen).await {
                    // Heard long enough without a gap: the menu follows; press now.
                    Err(RoleError::Timeout { .. }) => Ok(()),
                    r => r,
                }
            })
            .await?;
            during("key 1", events, rtp, press('1')).await?;
        }
        KeyPlan::Press3 { stay } => {
            during("page", events, rtp, hear_page()).await?;
            during("key 3", events, rtp, press('3')).await?;
            // On the bridge until the engine ends it or we have stayed long enough.
            let stay = *stay;
            during("bridge", events, rtp, async {
                tokio::time::sleep(stay).await;
                Ok(())
            })
            .await?;
        }
        KeyPlan::Nothing => {}
        KeyPlan::Customer { stay, speech } => {
            if let Some(s) = speech {
                rtp.say(s);
            }
            let stay = *stay;
            during("customer", events, rtp, async {
                tokio::time::sleep(stay).await;
                Ok(())
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The roles against each other, no engine: a drill caller dials the bank's phones, which
    //! play no IVR, so the caller's bounds and the bank's refusals are what is tested.

    use super::*;
    use crate::drill::roles::{CallerEnd, CallerPlan, DrillCaller};

    const BUSY: &str = "5145550301";
    const NEVER: &str = "5145550302";
    const HANGS_UP: &str = "5145550303";

    async fn bank() -> PhoneBank {
        let plan = |b, k| PhonePlan::with(b, k);
        PhoneBank::start(PhoneBankConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            trusted: vec!["127.0.0.0/8".into()],
            rtp_ports: None,
            users: vec![
                (BUSY.into(), plan(PhoneBehaviour::Busy, KeyPlan::Nothing)),
                (
                    NEVER.into(),
                    plan(PhoneBehaviour::NeverAnswer, KeyPlan::Nothing),
                ),
                (
                    HANGS_UP.into(),
                    PhonePlan::answer_after(
                        Duration::from_millis(200),
                        KeyPlan::Customer {
                            stay: Duration::from_millis(1500),
                            speech: None,
                        },
                    ),
                ),
            ],
        })
        .await
        .expect("bank")
    }

    fn plan_for(number: &str) -> CallerPlan {
        let mut plan = CallerPlan::s1(number, "5145550100", Arc::from(vec![0i16; 800]));
        plan.timing.answer_within = Duration::from_secs(2);
        plan.timing.prompt_within = Duration::from_secs(5);
        plan
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_unanswered_and_hung_up_calls_end_with_clear_outcomes() {
        let bank = bank().await;
        let caller = DrillCaller::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &bank.local_addr().to_string(),
        )
        .await
        .expect("caller");
        let plans = [plan_for(BUSY), plan_for(NEVER), plan_for(HANGS_UP)];
        let (busy, never, hangs_up) = tokio::join!(
            caller.call(&plans[0]),
            caller.call(&plans[1]),
            caller.call(&plans[2]),
        );
        assert_eq!(busy.end, CallerEnd::Refused, "{busy:#?}");
        assert!(
            busy.refused.as_deref().is_some_and(|r| r.contains("486")),
            "{busy:#?}"
        );
        assert_eq!(never.end, CallerEnd::NotAnswered, "{never:#?}");
        // Answered, but no menu ever plays: the phone hangs up while the caller waits.
        assert!(
            matches!(&hangs_up.end, CallerEnd::EngineHungUp { step, .. } if step == "language"),
            "{hangs_up:#?}"
        );
        assert!(hangs_up.answered_at.is_some() && hangs_up.voicemail_end.is_none());

        let done = tokio::time::timeout(Duration::from_secs(10), async {
            while !bank.records().iter().all(|r| r.outcome.is_some()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let records = bank.records();
        assert!(done.is_ok() && records.len() == 3, "{records:#?}");
        let of = |user: &str| {
            records
                .iter()
                .find(|r| r.user.ends_with(user))
                .and_then(|r| r.outcome.clone())
        };
        assert_eq!(of(BUSY), Some(PhoneOutcome::Busy));
        assert!(
            matches!(of(NEVER), Some(PhoneOutcome::Unanswered { .. })),
            "{records:#?}"
        );
        assert_eq!(
            of(HANGS_UP),
            Some(PhoneOutcome::Completed {
                engine_hung_up: false
            })
        );
        caller.shutdown().await;
        bank.shutdown().await;
    }

    #[tokio::test]
    async fn a_user_that_is_not_a_number_is_refused_at_start() {
        let err = PhoneBank::start(PhoneBankConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            trusted: Vec::new(),
            rtp_ports: None,
            users: vec![(
                "tech1".into(),
                PhonePlan::with(PhoneBehaviour::Busy, KeyPlan::Nothing),
            )],
        })
        .await;
        assert!(matches!(err, Err(RoleError::BadUser(u)) if u == "tech1"));
    }
}
