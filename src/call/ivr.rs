//! The IVR's tokio shell: runs one call's [`IvrFlow`] against the real SIP leg, media session,
//! voicemail desk and store, and its configuration (`[ivr]`).
//!
//! The flow decides; this file only does what it says (play, record, ring the support group,
//! open the ticket, look one up) and tells it what happened (keys, prompt ends, answers, the
//! store's reply, the clock).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, info_span, warn, Instrument};

use super::callback::CallbackPolicy;
use super::flow::{
    menu_departments, resolve_all, AnnouncementPhase, CallContext, CallbackTargets, ClockTime,
    Departments, Entry, FlowAction, FlowConfig, IvrFlow, Lang, PendingVoicemail, RecordingEnd,
    RecordingOutcome, TicketStatusView, VoicemailTicketRequest,
};
use super::status_limit::StatusLimits;
use super::voicemail::{Finished, Intake, VoicemailDesk};
use super::{file_safe, open_call_media, ring_before_answer, stop_requested, CallConfig};
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::media::{
    MediaEngine, MediaEvent, PlayOptions, PlaybackId, PromptRef, RecordOptions, RecordingSummary,
};
use crate::schedule::LiveSchedule;
use crate::shell::{CallLeg, LegInput};
use crate::sip::{CallRequest, InboundCall, SipHandle};
use crate::store::Store;
use crate::triage::Severity;

/// `[ivr]`: what the menus do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrConfig {
    /// SIP URIs rung together when a caller picks support in business hours (empty: straight
    /// to voicemail).
    #[serde(default)]
    pub support_group: Vec<String>,
    /// How long the support group rings before the caller goes to voicemail (the guide's
    /// "under 5 minutes" is the ceiling).
    #[serde(default = "default_support_ring")]
    pub support_ring_secs: u32,
    /// Longest voicemail.
    #[serde(default = "default_max_message")]
    pub max_message_secs: u32,
    /// A message ends after this much silence following speech.
    #[serde(default = "default_silence_end")]
    pub message_silence_end_ms: u32,
    /// No key at the language choice within this → French.
    #[serde(default = "default_language_timeout")]
    pub language_timeout_secs: u32,
    /// How long a menu waits for a key after its prompt.
    #[serde(default = "default_key_timeout")]
    pub key_timeout_secs: u32,
    /// Callback numbers the engine may dial later: North American prefixes (area code, or
    /// area code and exchange). Default: Québec's area codes and North American toll-free.
    #[serde(default)]
    pub callback_allow: Option<Vec<String>>,
    /// Tracking-number lookups by phone, per calling number (behind a trusted trunk) or source
    /// and hour, across calls (see `call::status_limit`). 0 is taken as 1.
    #[serde(default = "default_status_lookups")]
    pub status_lookups_per_hour: u32,
    #[serde(default)]
    pub departments: Departments,
}

fn default_status_lookups() -> u32 {
    10
}

fn default_support_ring() -> u32 {
    240
}
fn default_max_message() -> u32 {
    180
}
fn default_silence_end() -> u32 {
    4000
}
fn default_language_timeout() -> u32 {
    5
}
fn default_key_timeout() -> u32 {
    6
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            support_group: Vec::new(),
            support_ring_secs: default_support_ring(),
            max_message_secs: default_max_message(),
            message_silence_end_ms: default_silence_end(),
            language_timeout_secs: default_language_timeout(),
            key_timeout_secs: default_key_timeout(),
            callback_allow: None,
            status_lookups_per_hour: default_status_lookups(),
            departments: Departments::default(),
        }
    }
}

impl IvrConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let key = |k: &'static str| vec![KeySeg::Key("ivr"), KeySeg::Key(k)];
        for (i, uri) in self.support_group.iter().enumerate() {
            if crate::sip::message::Uri::parse(uri).is_none() {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("ivr"),
                        KeySeg::Key("support_group"),
                        KeySeg::Index(i),
                    ],
                    format!("\"{uri}\" is not a SIP URI"),
                    "write the technician's phone as a SIP URI, e.g. \"sip:tech1@10.0.0.5:5060\"",
                ));
            }
        }
        // The departments the main menu transfers to (`flow::MAIN_MENU`).
        for department in menu_departments() {
            if let Some(uri) = self.departments.uri(department) {
                if crate::sip::message::Uri::parse(uri).is_none() {
                    issues.push(ConfigIssue::new(
                        vec![
                            KeySeg::Key("ivr"),
                            KeySeg::Key("departments"),
                            KeySeg::Key(department.config_key()),
                        ],
                        format!("\"{uri}\" is not a SIP URI"),
                        "write the department's SIP URI, e.g. \"sip:sales@pbx.example.net\"",
                    ));
                }
            }
        }
        if !(10..=300).contains(&self.support_ring_secs) {
            issues.push(ConfigIssue::new(
                key("support_ring_secs"),
                format!("{} seconds of ringing is outside 10–300", self.support_ring_secs),
                "use at most 300 (the guide promises a technician in under 5 minutes); 240 is the default",
            ));
        }
        if !(10..=600).contains(&self.max_message_secs) {
            issues.push(ConfigIssue::new(
                key("max_message_secs"),
                format!("{} seconds is outside 10–600", self.max_message_secs),
                "use 180 (three minutes) or another value from 10 to 600",
            ));
        }
        if !(1_000..=30_000).contains(&self.message_silence_end_ms) {
            issues.push(ConfigIssue::new(
                key("message_silence_end_ms"),
                format!("{} ms is outside 1000–30000", self.message_silence_end_ms),
                "use 4000 (four seconds of silence end a message)",
            ));
        }
        for (k, v) in [
            ("language_timeout_secs", self.language_timeout_secs),
            ("key_timeout_secs", self.key_timeout_secs),
        ] {
            if !(1..=30).contains(&v) {
                issues.push(ConfigIssue::new(
                    key(k),
                    format!("{v} seconds is outside 1–30"),
                    "use a few seconds, e.g. 5",
                ));
            }
        }
        if let Some(allow) = &self.callback_allow {
            if let Err(e) = CallbackPolicy::new(allow.iter()) {
                issues.push(ConfigIssue::new(
                    key("callback_allow"),
                    e.to_string(),
                    "list North American prefixes of 3 or 6 digits, e.g. [\"514\", \"438\", \"800\"]",
                ));
            }
        }
    }

    /// The flow's settings (callback policy built; `validate` has checked it).
    pub fn flow_config(&self) -> FlowConfig {
        let callback_policy = self
            .callback_allow
            .as_ref()
            .and_then(|allow| CallbackPolicy::new(allow.iter()).ok())
            .unwrap_or_default();
        FlowConfig {
            language_timeout: Duration::from_secs(u64::from(self.language_timeout_secs)),
            key_timeout: Duration::from_secs(u64::from(self.key_timeout_secs)),
            support_group: self.support_group.clone(),
            support_ring_secs: self.support_ring_secs,
            departments: self.departments.clone(),
            max_message_secs: self.max_message_secs,
            callback_policy,
        }
    }
}

/// What every call's shell shares.
#[derive(Clone)]
pub struct IvrDeps {
    pub media: MediaEngine,
    pub sip: SipHandle,
    pub desk: VoicemailDesk,
    pub store: Store,
    pub schedule: LiveSchedule,
    pub ivr: IvrConfig,
    /// `ivr.flow_config()`, built once (its callback policy parsed once, not per call).
    pub flow: FlowConfig,
    pub call: CallConfig,
    pub recordings: PathBuf,
    /// Our address in SDP and Contact.
    pub advertised: IpAddr,
    /// The incident announcement new calls hear (`crate::live::LiveSettings::announcement`).
    pub announcement: watch::Receiver<Option<AnnouncementPhase>>,
    /// Tracking-number lookups across calls (`[ivr] status_lookups_per_hour`).
    pub status_limits: Arc<StatusLimits>,
}

/// The short code dialled from the provider's own phones: straight to support.
const SHORT_CODE: &str = "611";
/// How long the caller waits for a tracking number before hearing that the message is kept.
const TICKET_WAIT: Duration = Duration::from_secs(5);

/// What the shell's helpers report back into the loop.
enum Reply {
    Ticket(Result<String, ()>),
    Status(Option<TicketStatusView>),
    /// Over the lookup limit: nothing was looked up.
    StatusRefused,
    Bridged(Box<CallLeg>),
    BridgeFailed,
}

/// Runs one inbound call through the IVR to its end.
pub async fn run_ivr(call: InboundCall, deps: Arc<IvrDeps>, stopping: watch::Receiver<bool>) {
    let span = info_span!("call", call_id = %call.call.call_id, number = %call.call.number, ticket = tracing::field::Empty);
    Shell::run(call, deps, stopping).instrument(span).await
}

struct Shell {
    deps: Arc<IvrDeps>,
    flow: IvrFlow,
    /// The caller's leg and media.
    call: CallLeg,
    call_id: String,
    leg_id: u64,
    playing: Option<PlaybackId>,
    recording: Option<PathBuf>,
    /// Why the recording is ending, when the flow asked.
    stop_asked: bool,
    pending: Option<(PathBuf, Intake)>,
    replies_tx: mpsc::UnboundedSender<Reply>,
    ringing: Option<tokio::task::JoinHandle<()>>,
    tech: Option<CallLeg>,
    /// Where the INVITE came from (the tracking-number lookup limit's key when it is not a
    /// trusted trunk).
    source: IpAddr,
}

impl Shell {
    async fn run(call: InboundCall, deps: Arc<IvrDeps>, mut stopping: watch::Receiver<bool>) {
        let InboundCall {
            call: info,
            leg,
            mut events,
        } = call;
        let sip_peer = info.source.addr.ip();
        let Some(session) = open_call_media(&deps.media, &info.call_id, info.media, sip_peer, &leg)
        else {
            return;
        };
        if !ring_before_answer(&leg, &mut events, deps.call.ring_ms, &mut stopping).await {
            session.close().await;
            return;
        }
        leg.answer(SocketAddr::new(
            deps.advertised,
            session.local_rtp_addr().port(),
        ));
        let leg_id = leg.id().0;
        let call = CallLeg::inbound(leg, events, session, sip_peer);
        let caller = info.caller.user.clone();
        let ctx = call_context(&deps, &info.number, caller).await;
        let (replies_tx, mut replies) = mpsc::unbounded_channel();
        let mut shell = Shell {
            flow: IvrFlow::new(ctx, deps.flow.clone()),
            deps,
            call,
            call_id: info.call_id.clone(),
            leg_id,
            playing: None,
            recording: None,
            stop_asked: false,
            pending: None,
            replies_tx,
            ringing: None,
            tech: None,
            source: sip_peer,
        };
        let limit = tokio::time::sleep(Duration::from_secs(shell.deps.call.max_call_secs));
        tokio::pin!(limit);
        let mut started = false;
        let mut hung_up = false;
        loop {
            if shell.drain_actions() {
                hung_up = true;
                break;
            }
            let wake = shell.flow.poll_timeout();
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let tech_ended = async {
                match shell.tech.as_mut() {
                    Some(t) => loop {
                        if let LegInput::Ended(_) = t.next().await {
                            break;
                        }
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = shell.call.next() => match input {
                    LegInput::Answered => {
                        if !started {
                            started = true;
                            shell.flow.start(Instant::now());
                        }
                    }
                    LegInput::Key { digit, source } => {
                        debug!(%digit, ?source, "key");
                        shell.flow.handle_key(Instant::now(), digit);
                    }
                    LegInput::PlaybackFinished(id) => {
                        if shell.playing == Some(id) {
                            shell.playing = None;
                            shell.flow.handle_prompt_finished(Instant::now());
                        }
                    }
                    LegInput::RecordingFinished(r) => shell.recording_finished(&r, false),
                    // Bridged, the caller's RTP goes to the technician: their leg decides.
                    LegInput::MediaTimeout if shell.tech.is_some() => {}
                    LegInput::MediaTimeout => {
                        info!("no RTP from the caller: hanging up");
                        hung_up = true;
                        break;
                    }
                    LegInput::MediaFailed => {
                        warn!("media failed for this call: hanging up");
                        hung_up = true;
                        break;
                    }
                    LegInput::Ended(_) => break,
                },
                Some(reply) = replies.recv() => shell.reply(reply),
                _ = timer => shell.flow.handle_timeout(Instant::now()),
                _ = tech_ended => {
                    info!("the technician hung up: ending the call");
                    shell.tech = None;
                    hung_up = true;
                    break;
                }
                _ = &mut limit => {
                    info!(max_call_secs = shell.deps.call.max_call_secs, "call too long: hanging up");
                    hung_up = true;
                    break;
                }
                _ = stop_requested(&mut stopping) => {
                    info!("engine stopping: hanging up");
                    hung_up = true;
                    break;
                }
            }
        }
        if hung_up {
            shell.call.hangup();
        }
        shell.finish(hung_up).await;
    }

    /// Carries out what the flow asked; true when it asked to hang up.
    fn drain_actions(&mut self) -> bool {
        let mut hangup = false;
        while let Some(action) = self.flow.poll_action() {
            match action {
                FlowAction::Play {
                    lang,
                    items,
                    barge_in,
                } => {
                    let prompts: Vec<PromptRef> = resolve_all(lang, &items)
                        .into_iter()
                        .map(PromptRef::from)
                        .collect();
                    match self.call.session.play(
                        &prompts,
                        PlayOptions {
                            barge_in,
                            repeat: false,
                        },
                    ) {
                        Ok(id) => self.playing = Some(id),
                        Err(e) => {
                            // A prompt that cannot play must not leave the caller in silence.
                            warn!(error = %e, "prompt missing: skipped");
                            self.playing = None;
                            self.flow.handle_prompt_finished(Instant::now());
                        }
                    }
                }
                FlowAction::StopPlayback => {
                    self.call.session.stop_playback();
                    self.playing = None;
                }
                FlowAction::PersistPendingVoicemail(p) => self.persist(p),
                FlowAction::StartRecording { max_secs } => {
                    let path = match &self.pending {
                        Some((path, _)) => path.clone(),
                        None => self.recording_path(),
                    };
                    self.call.session.record(
                        path.clone(),
                        RecordOptions {
                            max_seconds: max_secs,
                            end_after_silence_ms: Some(self.deps.ivr.message_silence_end_ms),
                        },
                    );
                    self.recording = Some(path);
                    self.stop_asked = false;
                }
                FlowAction::StopRecording => {
                    self.stop_asked = true;
                    self.call.session.stop_recording();
                }
                FlowAction::CreateTicket(req) => self.create_ticket(req, true),
                FlowAction::LookupTicket { tracking, caller } => self.lookup(tracking, caller),
                FlowAction::Bridge { targets, ring_secs } => self.ring(targets, ring_secs),
                FlowAction::CancelBridge => {
                    if let Some(r) = self.ringing.take() {
                        r.abort();
                    }
                }
                FlowAction::Hangup => hangup = true,
            }
        }
        hangup
    }

    fn recording_path(&self) -> PathBuf {
        // Time and leg first: two Call-IDs that read alike as file names, or one reused after
        // a restart, never share a file.
        self.deps.recordings.join(format!(
            "{}-{}-{}.wav",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            self.leg_id,
            file_safe(&self.call_id)
        ))
    }

    /// Writes the intake beside the recording-to-be before the recording starts.
    fn persist(&mut self, p: PendingVoicemail) {
        let path = self.recording_path();
        let intake = intake_of(&self.call_id, &p);
        if let Err(e) = intake.write(&path) {
            // The message is still taken; only a crash before its end could lose its ticket.
            warn!(error = %e, "voicemail intake not written");
        }
        self.pending = Some((path, intake));
    }

    fn recording_finished(&mut self, r: &RecordingSummary, hung_up: bool) {
        info!(path = %r.path.display(), duration_ms = r.duration_ms, speech = r.speech_detected, dropped_ms = r.dropped_ms, "recording saved");
        self.recording = None;
        // What the technician will hear: the saved file, silence trimmed at both ends.
        let kept_ms = r
            .duration_ms
            .saturating_sub(r.trimmed_start_ms + r.trimmed_end_ms);
        let seconds = kept_ms as f32 / 1000.0;
        let ended_by = if hung_up {
            RecordingEnd::HangUp
        } else if self.stop_asked {
            RecordingEnd::Pound
        } else if r.duration_ms + 100 >= u64::from(self.deps.ivr.max_message_secs) * 1000 {
            RecordingEnd::MaxLength
        } else {
            RecordingEnd::Silence
        };
        if let Some((_, intake)) = self.pending.as_mut() {
            intake.finished = Some(Finished {
                seconds: f64::from(seconds),
                speech_detected: r.speech_detected,
            });
        }
        self.flow.handle_recording_finished(
            Instant::now(),
            RecordingOutcome {
                seconds,
                speech_detected: r.speech_detected,
                ended_by,
            },
        );
    }

    /// Hands the message to the desk; the caller hears its tracking number if it comes within
    /// [`TICKET_WAIT`], else that the message is kept (the desk keeps trying).
    fn create_ticket(&mut self, req: VoicemailTicketRequest, wait: bool) {
        let (path, mut intake) = match self.pending.take() {
            Some(p) => p,
            None => {
                let path = self.recording_path();
                (path, intake_of(&self.call_id, &req.pending))
            }
        };
        if intake.finished.is_none() {
            intake.finished = req.recording.map(|r| Finished {
                seconds: f64::from(r.seconds),
                speech_detected: r.speech_detected,
            });
        }
        let reply = self.deps.desk.submit(path, intake);
        if !wait {
            return;
        }
        let tx = self.replies_tx.clone();
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(TICKET_WAIT, reply).await {
                Ok(Ok(Ok(ticket))) => {
                    tracing::Span::current().record("ticket", ticket.number.as_str());
                    info!(ticket = %ticket.number, severity = %ticket.severity, "ticket opened for the voicemail");
                    Ok(ticket.number)
                }
                Ok(Ok(Err(e))) => {
                    warn!(error = %e, "no tracking number for the caller now");
                    Err(())
                }
                _ => Err(()),
            };
            let _ = tx.send(Reply::Ticket(outcome));
        }.in_current_span());
    }

    fn lookup(&mut self, tracking: String, caller: Option<String>) {
        if let Err(over) = self
            .deps
            .status_limits
            .check(caller.as_deref(), self.source)
        {
            warn!(call_id = %self.call_id, caller = caller.as_deref().unwrap_or("hidden"), source = %self.source, key = ?over.key, "tracking-number lookup refused: over the limit");
            let _ = self.replies_tx.send(Reply::StatusRefused);
            return;
        }
        let store = self.deps.store.clone();
        let tz = self.deps.schedule.get().timezone();
        let tx = self.replies_tx.clone();
        tokio::spawn(
            async move {
                let view = match store.ticket(&tracking).await {
                    Ok(t) => {
                        let mine = |n: &str| {
                            let norm = crate::store::accounts::normalise_number;
                            match (caller.as_deref().and_then(norm), norm(n)) {
                                (Some(a), Some(b)) => a == b,
                                _ => false,
                            }
                        };
                        let mut may_know = mine(&t.caller) || mine(&t.callback_number);
                        if !may_know {
                            if let (Some(c), Some(acct)) = (caller.as_deref(), t.account_id) {
                                may_know = matches!(
                                    store.find_account_by_number(c).await,
                                    Ok(Some(a)) if a.id == acct
                                );
                            }
                        }
                        let clock = |at: chrono::DateTime<Utc>| {
                            use chrono::Timelike;
                            let local = at.with_timezone(&tz);
                            ClockTime {
                                hour: local.hour() as u8,
                                minute: local.minute() as u8,
                            }
                        };
                        Some(TicketStatusView {
                            status: t.status,
                            acknowledged_at: t.acknowledged_at.map(clock),
                            callback_before: Some(clock(t.callback_due_at)),
                            caller_may_know: may_know,
                        })
                    }
                    Err(_) => None,
                };
                let _ = tx.send(Reply::Status(view));
            }
            .in_current_span(),
        );
    }

    /// Rings every target together; the first to answer is the technician.
    fn ring(&mut self, targets: Vec<String>, ring_secs: u32) {
        let sip = self.deps.sip.clone();
        let advertised = self.deps.advertised;
        let tx = self.replies_tx.clone();
        // Each leg's media on the caller's media thread, so the two can be bridged.
        let mut legs = Vec::new();
        for target in targets {
            match self
                .deps
                .media
                .open_session_near(&format!("{}-support", self.call_id), &self.call.session)
            {
                Ok(s) => legs.push((target, s)),
                Err(e) => warn!(error = %e, "no media for a support leg"),
            }
        }
        let task = tokio::spawn(
            async move {
                let from = format!("sip:support@{}", sip.advertised_addr());
                let mut ringing = tokio::task::JoinSet::new();
                for (target, session) in legs {
                    let req = CallRequest {
                        target: target.clone(),
                        proxy: None,
                        from: from.clone(),
                        credentials: None,
                        local_rtp: SocketAddr::new(advertised, session.local_rtp_addr().port()),
                    };
                    let sip = sip.clone();
                    ringing.spawn(async move {
                        let (leg, events) = match sip.place_call(req).await {
                            Ok(x) => x,
                            Err(e) => {
                                warn!(%target, error = %e, "cannot ring");
                                session.close().await;
                                return None;
                            }
                        };
                        let mut tech = CallLeg::outbound(leg, events, session);
                        loop {
                            match tech.next().await {
                                LegInput::Answered => return Some(tech),
                                LegInput::Ended(reason) => {
                                    debug!(%target, %reason, "support phone did not answer");
                                    break;
                                }
                                _ => {}
                            }
                        }
                        tech.close().await;
                        None
                    });
                }
                let deadline = tokio::time::sleep(Duration::from_secs(u64::from(ring_secs)));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        done = ringing.join_next() => match done {
                            Some(Ok(Some(tech))) => {
                                // The others stop ringing (their legs are dropped: CANCEL).
                                ringing.abort_all();
                                let _ = tx.send(Reply::Bridged(Box::new(tech)));
                                return;
                            }
                            Some(_) => {}
                            None => break,
                        },
                        _ = &mut deadline => break,
                    }
                }
                ringing.abort_all();
                let _ = tx.send(Reply::BridgeFailed);
            }
            .in_current_span(),
        );
        self.ringing = Some(task);
    }

    fn reply(&mut self, reply: Reply) {
        let now = Instant::now();
        match reply {
            Reply::Ticket(Ok(number)) => self.flow.handle_ticket_created(now, number),
            Reply::Ticket(Err(())) => self.flow.handle_store_failed(now),
            Reply::Status(view) => self.flow.handle_ticket_status(now, view),
            Reply::StatusRefused => self.flow.handle_ticket_status_refused(now),
            Reply::Bridged(tech) => {
                self.ringing = None;
                if let Err(e) = self.call.session.bridge(&tech.session) {
                    warn!(error = %e, "cannot bridge the technician");
                    self.flow.handle_bridge_failed(now);
                    return;
                }
                info!("caller connected to a technician");
                self.tech = Some(*tech);
                self.flow.handle_bridge_answered(now);
            }
            Reply::BridgeFailed => {
                self.ringing = None;
                self.flow.handle_bridge_failed(now);
            }
        }
    }

    /// The call is over: a message in progress is finished and ticketed, the technician's leg
    /// and the media session closed.
    async fn finish(mut self, hung_up: bool) {
        if let Some(r) = self.ringing.take() {
            r.abort();
        }
        if !hung_up {
            self.flow.handle_caller_hung_up(Instant::now());
        }
        let _ = self.drain_actions();
        if self.recording.is_some() {
            self.call.session.stop_recording();
            let drain = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(drain);
            while self.recording.is_some() {
                tokio::select! {
                    ev = self.call.session.next_event() => match ev {
                        Some(MediaEvent::RecordingFinished(r)) => self.recording_finished(&r, true),
                        Some(_) => {}
                        None => self.recording = None,
                    },
                    _ = &mut drain => self.recording = None,
                }
            }
            // Whatever the flow asks now (the ticket of a message cut by a hang-up) is done
            // without waiting: nobody is left to hear the tracking number.
            while let Some(action) = self.flow.poll_action() {
                if let FlowAction::CreateTicket(req) = action {
                    self.create_ticket(req, false);
                }
            }
        }
        // A message whose intake was written but never reached the desk (the caller hung up
        // at the tone) is still an emergency: ticket it.
        if let Some((path, intake)) = self.pending.take() {
            drop(self.deps.desk.submit(path, intake));
        }
        if let Some(tech) = self.tech.take() {
            self.call.session.unbridge();
            tech.hang_up_and_close().await;
        }
        self.call.await_hangup().await;
        // The media thread logs the call's statistics as it closes it ("media closed").
        self.call.close().await;
    }
}

/// What the flow needs to know when the call starts.
async fn call_context(deps: &IvrDeps, number: &str, caller: Option<String>) -> CallContext {
    // The account's language, for callers who skip the language choice (611). A store that
    // does not answer at once leaves it to the default (French): the call is not held up.
    let account_language = match caller.as_deref() {
        Some(c) => {
            let lookup = deps.store.find_account_by_number(c);
            match tokio::time::timeout(Duration::from_millis(500), lookup).await {
                Ok(Ok(Some(a))) => match a.language.as_deref() {
                    Some("en") => Some(Lang::En),
                    Some("fr") => Some(Lang::Fr),
                    _ => None,
                },
                _ => None,
            }
        }
        None => None,
    };
    let now = Utc::now();
    let schedule = deps.schedule.get();
    let open = schedule.is_open(now).open;
    let sla = schedule.sla();
    CallContext {
        caller,
        entry: if number == SHORT_CODE {
            Entry::ShortCode611
        } else {
            Entry::Main
        },
        account_language,
        support_open: open,
        departments_open: open,
        announcement: *deps.announcement.borrow(),
        in_maintenance: schedule.maintenance_at(now).is_some(),
        targets: CallbackTargets {
            s1_minutes: sla.s1_callback_minutes,
            s2_minutes: sla.s2_callback_minutes,
        },
    }
}

fn intake_of(call_id: &str, p: &PendingVoicemail) -> Intake {
    let keypress = p.keypress_severity.map(|s| match s {
        Severity::S1 => '1',
        Severity::S2 => '2',
        Severity::S3 => '3',
    });
    let mut answers: BTreeMap<String, String> = p.answers.clone();
    answers.insert("language".into(), p.language.as_str().into());
    Intake {
        call_id: call_id.to_string(),
        caller: p.caller.clone().unwrap_or_else(|| "anonymous".into()),
        callback_number: p.callback.clone(),
        keypress,
        language: p.language.as_str().into(),
        business_hours: p.business_hours,
        started_at: Utc::now(),
        answers,
        finished: None,
        ticket: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[ivr.departments]` keeps its four keys and refuses others; each key of the main menu's
    /// departments is checked as a SIP URI under its own name.
    #[test]
    fn every_menu_department_uri_is_validated_under_its_key() {
        let ivr: IvrConfig = toml::from_str(
            "[departments]\nsales = \"nope\"\norders = \"nope\"\nbilling = \"nope\"\nporting = \"nope\"\n",
        )
        .expect("the four department keys parse");
        assert!(toml::from_str::<IvrConfig>("[departments]\nsupport = \"sip:a@b\"\n").is_err());
        let mut issues = Vec::new();
        ivr.validate(&mut issues);
        let named: Vec<&KeySeg> = issues
            .iter()
            .filter(|i| i.path.get(1) == Some(&KeySeg::Key("departments")))
            .filter_map(|i| i.path.get(2))
            .collect();
        let expected: Vec<KeySeg> = menu_departments()
            .map(|d| KeySeg::Key(d.config_key()))
            .collect();
        assert_eq!(named, expected.iter().collect::<Vec<_>>());
        assert_eq!(
            ivr.flow_config()
                .departments
                .uri(crate::call::flow::Department::Porting),
            Some(&"nope".to_string())
        );
    }
}
