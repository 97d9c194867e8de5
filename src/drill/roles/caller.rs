//! [`DrillCaller`]: callers that dial the engine over real SIP and RTP and walk the IVR as a
//! person would: language, support, after hours the emergency menu, the callback number, a
//! message spoken after the tone, '#', the tracking number heard, then hang up.
//!
//! Every wait is bounded: a step that times out, or an engine that hangs up, ends the call with
//! an outcome that says which step and why; a call never hangs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::{info, info_span, warn, Instrument};

use super::rtp::{RtpPeer, RtpStats};
use super::{during, RoleError, Stop};
use crate::sip::transport::{self, CallRequest, LegEvent, LegHandle, SipHandle};
use crate::sip::SipConfig;

/// The language the caller picks at the first menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Any key but 9 (the caller presses 1).
    #[default]
    French,
    /// Key 9.
    English,
}

/// The after-hours emergency menu's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emergency {
    /// 1: no calls at all.
    #[default]
    S1,
    /// 2: calls degraded.
    S2,
    /// 3, then 1 to leave a message anyway (an S3).
    Other,
}

impl Emergency {
    fn key(self) -> char {
        match self {
            Emergency::S1 => '1',
            Emergency::S2 => '2',
            Emergency::Other => '3',
        }
    }
}

/// What the caller answers to "shall we call you back at …?".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CallbackChoice {
    /// 1: the caller ID is the number.
    #[default]
    Confirm,
    /// 2, then this number and '#' (its digits are keyed; "+", spaces and dashes are not
    /// keys and are skipped). With no caller ID the engine asks for a number at once: the
    /// caller keys it without the 2.
    Enter(String),
}

/// How the caller behaves once the message is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallerBehaviour {
    /// Speaks the clip after the tone, presses '#', listens to the tracking number.
    #[default]
    Normal,
    /// Hangs up during the instructions, before the tone.
    HangUpEarly,
    /// Says nothing after the tone for [`CallerTiming::silence`], then presses '#'.
    Silent,
    /// Speaks, presses '#' and hangs up at once, without waiting for the tracking number.
    HangUpAfterHash,
}

/// The bounds and pace of one caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerTiming {
    /// From the INVITE to the answer.
    pub answer_within: Duration,
    /// For each prompt to begin or to end.
    pub prompt_within: Duration,
    /// Silence that means the instructions and tone are over.
    pub quiet: Duration,
    /// Press during a menu once it has begun (a caller who knows the menus). False: listen to
    /// each menu to its end, then press.
    pub barge_in: bool,
    /// For the tracking number to begin after '#' (the ticket is created first).
    pub readback_within: Duration,
    /// Silence that means the tracking number's read-back is over (digits have short gaps).
    pub readback_quiet: Duration,
    /// How long a silent caller stays silent after the tone.
    pub silence: Duration,
    /// For our BYE to be answered.
    pub hangup_within: Duration,
}

impl Default for CallerTiming {
    fn default() -> Self {
        CallerTiming {
            answer_within: Duration::from_secs(15),
            prompt_within: Duration::from_secs(30),
            quiet: Duration::from_millis(700),
            barge_in: true,
            readback_within: Duration::from_secs(30),
            readback_quiet: Duration::from_millis(1500),
            silence: Duration::from_secs(5),
            hangup_within: Duration::from_secs(5),
        }
    }
}

/// One call to place and how the caller walks it.
#[derive(Debug, Clone)]
pub struct CallerPlan {
    /// The dialled number (the Request-URI's user), e.g. "5149073400".
    pub number: String,
    /// The caller ID (From's user), e.g. "5145550100"; `None` calls as "anonymous".
    pub caller_id: Option<String>,
    pub language: Language,
    pub emergency: Emergency,
    pub callback: CallbackChoice,
    pub behaviour: CallerBehaviour,
    /// What the caller says after the tone (8 kHz samples, e.g. [`super::load_clip`]).
    pub speech: Arc<[i16]>,
    pub timing: CallerTiming,
}

impl CallerPlan {
    /// A normal English-speaking S1 caller who confirms its caller ID.
    pub fn s1(number: &str, caller_id: &str, speech: Arc<[i16]>) -> CallerPlan {
        CallerPlan {
            number: number.to_string(),
            caller_id: Some(caller_id.to_string()),
            language: Language::English,
            emergency: Emergency::S1,
            callback: CallbackChoice::Confirm,
            behaviour: CallerBehaviour::Normal,
            speech,
            timing: CallerTiming::default(),
        }
    }
}

/// How the voicemail ended, from the caller's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailEndKind {
    /// The caller pressed '#'.
    Hash,
    /// The caller hung up while recording.
    HungUp,
    /// The engine ended the recording (or the call) on its own.
    Engine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoicemailEnd {
    pub at: DateTime<Utc>,
    pub kind: VoicemailEndKind,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerEnd {
    /// Walked to the end and hung up: after the tracking number, or after '#' for
    /// [`CallerBehaviour::HangUpAfterHash`].
    Completed,
    /// The engine hung up after the voicemail (its goodbye): also a complete walk.
    CompletedByEngine,
    /// Hung up before the tone, as planned.
    HungUpEarly,
    /// The INVITE was refused; see [`CallerOutcome::refused`].
    Refused,
    /// No answer within the bound (we cancelled).
    NotAnswered,
    /// The engine hung up during `step`.
    EngineHungUp { step: String, reason: String },
    /// `step` timed out (we hung up).
    TimedOut { step: String, what: String },
    /// Something on our side failed (SIP stopped, RTP could not bind).
    Failed(String),
}

/// What happened to one drill call, for the report.
#[derive(Debug, Clone)]
pub struct CallerOutcome {
    pub number: String,
    pub caller_id: Option<String>,
    /// Our SIP leg (the call's id in our logs' spans).
    pub leg: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// When the caller began speaking after the tone (or staying silent).
    pub voicemail_started_at: Option<DateTime<Utc>>,
    /// When and how the voicemail ended (None: no message was left).
    pub voicemail_end: Option<VoicemailEnd>,
    /// The tracking number's read-back was heard to its end.
    pub heard_readback: bool,
    /// When the call was over (our hang-up answered, or the engine's BYE).
    pub ended_at: DateTime<Utc>,
    pub end: CallerEnd,
    /// Why the INVITE was refused (the SIP status or the failure).
    pub refused: Option<String>,
    /// Each step walked and when it was done: ("language", t), ("support", t), ...
    pub steps: Vec<(String, DateTime<Utc>)>,
    pub rtp: RtpStats,
}

impl CallerOutcome {
    /// A message was left and ended by the caller's '#'.
    pub fn left_voicemail(&self) -> bool {
        self.voicemail_end
            .is_some_and(|v| v.kind == VoicemailEndKind::Hash)
    }
}

/// The drill's calling side: one SIP user agent (the engine's own stack, answering no number)
/// that places any number of calls to `target`.
#[derive(Debug)]
pub struct DrillCaller {
    sip: SipHandle,
    task: Option<tokio::task::JoinHandle<Result<(), transport::SipError>>>,
    target: String,
    rtp_ip: IpAddr,
    rtp_ports: Option<(u16, u16)>,
}

impl DrillCaller {
    /// Listens for SIP on `listen` (port 0: any) and calls `target` ("host:port" of the
    /// engine). Only `target`'s address may send us requests.
    pub async fn start(listen: SocketAddr, target: &str) -> Result<DrillCaller, RoleError> {
        let mut trusted = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
        if let Ok(addrs) = tokio::net::lookup_host(target).await {
            for a in addrs {
                let bits = if a.is_ipv4() { 32 } else { 128 };
                trusted.push(format!("{}/{bits}", a.ip()));
            }
        }
        let config = SipConfig {
            listen: listen.to_string(),
            numbers: Vec::new(),
            trusted,
            drain_secs: 0,
            user_agent: "astreinte-drill".into(),
            ..SipConfig::default()
        };
        let (sip, mut inbound, task) = transport::start(&config).await?;
        // We answer no number, so nothing arrives; drop what would.
        tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        let rtp_ip = sip.advertised_addr().ip();
        Ok(DrillCaller {
            sip,
            task: Some(task),
            target: target.to_string(),
            rtp_ip,
            rtp_ports: None,
        })
    }

    /// Binds each call's RTP in `lo..=hi` instead of any free port (a firewall's range).
    pub fn with_rtp_ports(mut self, lo: u16, hi: u16) -> DrillCaller {
        self.rtp_ports = Some((lo, hi));
        self
    }

    /// Where our SIP listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.sip.local_addr()
    }

    /// Places one call per `plan` and walks it; returns when the call is over (every step is
    /// bounded by `plan.timing`).
    pub async fn call(&self, plan: &CallerPlan) -> CallerOutcome {
        let span = info_span!(
            "drill_caller",
            number = %plan.number,
            caller_id = plan.caller_id.as_deref().unwrap_or("anonymous"),
            leg = tracing::field::Empty,
        );
        self.call_inner(plan).instrument(span).await
    }

    async fn call_inner(&self, plan: &CallerPlan) -> CallerOutcome {
        let mut out = CallerOutcome {
            number: plan.number.clone(),
            caller_id: plan.caller_id.clone(),
            leg: None,
            placed_at: Utc::now(),
            answered_at: None,
            voicemail_started_at: None,
            voicemail_end: None,
            heard_readback: false,
            ended_at: Utc::now(),
            end: CallerEnd::Failed(String::new()),
            refused: None,
            steps: Vec::new(),
            rtp: RtpStats::default(),
        };
        let rtp = match RtpPeer::bind(self.rtp_ip, self.rtp_ports).await {
            Ok(r) => r,
            Err(e) => {
                out.end = CallerEnd::Failed(e.to_string());
                return out;
            }
        };
        let host = self.sip.advertised_addr().ip();
        let host = if host.is_ipv6() {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let user = plan.caller_id.as_deref().unwrap_or("anonymous");
        let req = CallRequest {
            target: format!("sip:{}@{}", plan.number, self.target),
            proxy: None,
            from: format!("sip:{user}@{host}"),
            credentials: None,
            local_rtp: rtp.local_addr(),
        };
        out.placed_at = Utc::now();
        let (leg, mut events) = match self.sip.place_call(req).await {
            Ok(x) => x,
            Err(e) => {
                out.refused = Some(e.to_string());
                out.end = CallerEnd::Refused;
                out.ended_at = Utc::now();
                return out;
            }
        };
        out.leg = Some(leg.id().to_string());
        tracing::Span::current().record("leg", tracing::field::display(leg.id()));
        info!("call placed");

        // The answer.
        let answered = tokio::time::timeout(plan.timing.answer_within, async {
            while let Some(ev) = events.recv().await {
                match ev {
                    LegEvent::Answered { media } | LegEvent::Confirmed { media } => {
                        return Ok(media);
                    }
                    LegEvent::Ended { reason } => return Err(Some(reason)),
                    _ => {}
                }
            }
            Err(None)
        })
        .await;
        match answered {
            Ok(Ok(Some(media))) => rtp.connect(&media),
            Ok(Ok(None)) => {
                out.answered_at = Some(Utc::now());
                out.end = CallerEnd::Failed("answered without media".into());
                return finish(out, &rtp, leg, &mut events, plan).await;
            }
            Ok(Err(reason)) => {
                out.refused = Some(reason.map_or("SIP service stopped".into(), |r| r.to_string()));
                out.end = CallerEnd::Refused;
                out.ended_at = Utc::now();
                out.rtp = rtp.stats();
                warn!(refused = ?out.refused, "call refused");
                return out;
            }
            Err(_) => {
                out.end = CallerEnd::NotAnswered;
                return finish(out, &rtp, leg, &mut events, plan).await;
            }
        }
        out.answered_at = Some(Utc::now());
        info!("answered");

        match walk(plan, &rtp, &mut events, &mut out).await {
            Ok(end) => out.end = end,
            Err((step, Stop::Ended(reason))) => {
                out.ended_at = Utc::now();
                out.rtp = rtp.stats();
                if out.voicemail_started_at.is_some() && out.voicemail_end.is_none() {
                    out.voicemail_end = Some(VoicemailEnd {
                        at: out.ended_at,
                        kind: VoicemailEndKind::Engine,
                    });
                }
                // The engine's goodbye after the message is the walk's normal end.
                out.end = if out.voicemail_end.is_some() && step == "readback" {
                    CallerEnd::CompletedByEngine
                } else {
                    CallerEnd::EngineHungUp {
                        step: step.to_string(),
                        reason: reason.to_string(),
                    }
                };
                info!(end = ?out.end, "the engine hung up");
                return out;
            }
            Err((step, Stop::Failed(e))) => {
                warn!(step, error = %e, "step failed");
                out.end = match e {
                    RoleError::Timeout { what, .. } => CallerEnd::TimedOut {
                        step: step.to_string(),
                        what,
                    },
                    e => CallerEnd::Failed(format!("{step}: {e}")),
                };
            }
        }
        finish(out, &rtp, leg, &mut events, plan).await
    }

    /// Stops the user agent (calls in progress end).
    pub async fn shutdown(mut self) {
        self.sip.shutdown();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for DrillCaller {
    fn drop(&mut self) {
        self.sip.shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Hangs up (if the engine has not) and waits, bounded, for the leg to end.
async fn finish(
    mut out: CallerOutcome,
    rtp: &RtpPeer,
    leg: LegHandle,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    plan: &CallerPlan,
) -> CallerOutcome {
    if out.voicemail_started_at.is_some() && out.voicemail_end.is_none() {
        out.voicemail_end = Some(VoicemailEnd {
            at: Utc::now(),
            kind: VoicemailEndKind::HungUp,
        });
    }
    leg.hangup();
    let _ = tokio::time::timeout(plan.timing.hangup_within, async {
        while let Some(ev) = events.recv().await {
            if matches!(ev, LegEvent::Ended { .. }) {
                break;
            }
        }
    })
    .await;
    rtp.close();
    out.rtp = rtp.stats();
    out.ended_at = Utc::now();
    info!(end = ?out.end, "call over");
    out
}

/// Waits for a menu the way the plan says (barge in once it began, or hear it out).
async fn hear_menu(rtp: &RtpPeer, t: &CallerTiming) -> Result<(), RoleError> {
    if t.barge_in {
        rtp.wait_prompt_start(t.prompt_within).await
    } else {
        rtp.wait_prompt_end(t.quiet, t.prompt_within).await
    }
}

/// The IVR walk, from the answer to the end of the read-back.
async fn walk(
    plan: &CallerPlan,
    rtp: &RtpPeer,
    events: &mut mpsc::UnboundedReceiver<LegEvent>,
    out: &mut CallerOutcome,
) -> Result<CallerEnd, (&'static str, Stop)> {
    let t = &plan.timing;
    let menu = |key: char| async move {
        hear_menu(rtp, t).await?;
        rtp.press(key).await
    };
    let lang_key = match plan.language {
        Language::English => '9',
        Language::French => '1',
    };
    during("language", events, rtp, menu(lang_key)).await?;
    out.steps.push(("language".into(), Utc::now()));
    during("support", events, rtp, menu('2')).await?;
    out.steps.push(("support".into(), Utc::now()));
    during("emergency", events, rtp, menu(plan.emergency.key())).await?;
    out.steps.push(("emergency".into(), Utc::now()));
    if plan.emergency == Emergency::Other {
        // "Leave a message anyway?": 1.
        during("other", events, rtp, menu('1')).await?;
        out.steps.push(("other".into(), Utc::now()));
    }
    let anonymous = plan.caller_id.is_none();
    let key_number = |number: &str| {
        let keys: String = number.chars().filter(char::is_ascii_digit).collect();
        async move {
            rtp.press_all(&keys).await?;
            rtp.press('#').await
        }
    };
    let callback = async {
        match (&plan.callback, anonymous) {
            (CallbackChoice::Confirm, false) => menu('1').await,
            // No caller ID: nothing to confirm; the engine's own policy applies.
            (CallbackChoice::Confirm, true) => Ok(()),
            (CallbackChoice::Enter(number), false) => {
                menu('2').await?;
                hear_menu(rtp, t).await?;
                key_number(number).await
            }
            (CallbackChoice::Enter(number), true) => {
                hear_menu(rtp, t).await?;
                key_number(number).await
            }
        }
    };
    during("callback", events, rtp, callback).await?;
    out.steps.push(("callback".into(), Utc::now()));

    if plan.behaviour == CallerBehaviour::HangUpEarly {
        // The instructions have begun: hang up before the tone.
        during(
            "instructions",
            events,
            rtp,
            rtp.wait_prompt_start(t.prompt_within),
        )
        .await?;
        out.steps.push(("hung up early".into(), Utc::now()));
        return Ok(CallerEnd::HungUpEarly);
    }
    during(
        "instructions",
        events,
        rtp,
        rtp.wait_prompt_end(t.quiet, t.prompt_within),
    )
    .await?;
    out.voicemail_started_at = Some(Utc::now());
    out.steps.push(("tone".into(), Utc::now()));
    match plan.behaviour {
        CallerBehaviour::Silent => {
            during("message", events, rtp, async {
                tokio::time::sleep(t.silence).await;
                Ok(())
            })
            .await?;
        }
        _ => {
            rtp.say(&plan.speech);
            // The clip's own length, plus room for a loaded machine.
            let length = Duration::from_millis(plan.speech.len() as u64 / 8);
            during(
                "message",
                events,
                rtp,
                rtp.wait_said(length + Duration::from_secs(5)),
            )
            .await?;
        }
    }
    during("message", events, rtp, rtp.press('#')).await?;
    out.voicemail_end = Some(VoicemailEnd {
        at: Utc::now(),
        kind: VoicemailEndKind::Hash,
    });
    out.steps.push(("#".into(), Utc::now()));
    if plan.behaviour == CallerBehaviour::HangUpAfterHash {
        return Ok(CallerEnd::Completed);
    }
    // The tracking number, read back once the ticket exists.
    during("readback", events, rtp, async {
        rtp.wait_prompt_start(t.readback_within).await?;
        rtp.wait_prompt_end(t.readback_quiet, t.readback_within)
            .await
    })
    .await?;
    out.heard_readback = true;
    out.steps.push(("readback".into(), Utc::now()));
    Ok(CallerEnd::Completed)
}
