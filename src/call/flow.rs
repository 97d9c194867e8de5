//! The caller's call flow (the IVR) as a sans-I/O state machine.
//!
//! One [`IvrFlow`] per call. Like the SIP [`Endpoint`](crate::sip::endpoint), it never reads a
//! clock or touches media: the shell calls [`IvrFlow::start`] once the call is up, passes what
//! happens through the `handle_*` methods (each with `now`), then drains
//! [`IvrFlow::poll_action`] and sleeps until [`IvrFlow::poll_timeout`], where it calls
//! [`IvrFlow::handle_timeout`]. Every wait has a deadline, so a caller is never left in silence.
//!
//! What the shell owes the flow:
//! - `handle_prompt_finished` only for the playback of the latest [`FlowAction::Play`] (a new
//!   `play` replaces the current one, which then reports finished too: filter by `PlaybackId`).
//! - `handle_recording_finished` only once the recording is fsynced (the ticket follows it).
//! - After [`FlowAction::CreateTicket`], exactly one of `handle_ticket_created` and
//!   `handle_store_failed`; on a store failure the shell keeps the request queued and creates
//!   the ticket when the store is back, in order.
//! - [`FlowAction::PersistPendingVoicemail`] written durably before the recording starts, so a
//!   crash mid-message still opens its ticket at the next start.
//!
//! Where the issue is silent, the choices are written beside the code (`///` on the states).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::callback::{CallbackNumber, CallbackPolicy, CallbackRefusal};
use crate::media::PromptRef;
use crate::store::tickets::Status;
use crate::triage::Severity;

/// Longest a prompt may play before the flow stops waiting for its end (a lost "finished"
/// must not leave the caller in silence). The longest playlist, a status read-back followed
/// by a menu, lasts well under a minute.
const PLAYBACK_GUARD: Duration = Duration::from_secs(120);
/// Grace after `ring_secs` for the shell to report the bridge's outcome.
const BRIDGE_GRACE: Duration = Duration::from_secs(5);
/// Grace after `max_message_secs` (and after a stop) for the recording's report.
const RECORDING_GRACE: Duration = Duration::from_secs(10);
/// How long the caller waits for the store (ticket created or lookup answered).
const STORE_WAIT: Duration = Duration::from_secs(15);
/// Failures (invalid or no input) before a menu gives up and takes its default.
const MAX_TRIES: u8 = 3;
/// Tracking-number misses before the call ends (no enumeration of tickets by phone).
const MAX_STATUS_MISSES: u8 = 3;
/// Repeats of the tracking number before goodbye (a call does not loop forever).
const MAX_READBACK_REPEATS: u8 = 5;
/// Longest digit string kept while the caller keys a number.
const MAX_KEYED: usize = 32;

/// The caller's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// `"fr"` or `"en"`: the prompt directory and the ticket's language.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the call reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// One of the published numbers: language choice, then the main menu.
    Main,
    /// 611 from the provider's own phones: straight to support.
    ShortCode611,
}

/// The phase of the current incident announcement (`astreinte announce set --phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnouncementPhase {
    Investigating,
    Identified,
    Monitoring,
}

impl AnnouncementPhase {
    fn prompt(self) -> &'static str {
        match self {
            AnnouncementPhase::Investigating => "incident-investigating",
            AnnouncementPhase::Identified => "incident-identified",
            AnnouncementPhase::Monitoring => "incident-monitoring",
        }
    }
}

/// After-hours callback targets told to the caller (`[schedule.sla]`, 30 and 60 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackTargets {
    pub s1_minutes: u32,
    pub s2_minutes: u32,
}

impl Default for CallbackTargets {
    fn default() -> Self {
        CallbackTargets {
            s1_minutes: 30,
            s2_minutes: 60,
        }
    }
}

/// What the shell knows when the call starts.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The From user part, as received (may be hidden or garbage).
    pub caller: Option<String>,
    pub entry: Entry,
    /// The language on the caller's account, when the calling number matched one.
    pub account_language: Option<Lang>,
    /// Support is in business hours (`Schedule::is_open`).
    pub support_open: bool,
    /// The other departments are open.
    pub departments_open: bool,
    pub announcement: Option<AnnouncementPhase>,
    pub in_maintenance: bool,
    pub targets: CallbackTargets,
}

/// `[ivr.departments]`: where main-menu options 1, 3, 4 and 5 transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Departments {
    pub sales: Option<String>,
    pub orders: Option<String>,
    pub billing: Option<String>,
    pub porting: Option<String>,
}

/// `[ivr]`.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// No key at the language choice within this → French.
    pub language_timeout: Duration,
    /// How long a menu waits for a key after its prompt.
    pub key_timeout: Duration,
    /// SIP URIs rung together for support.
    pub support_group: Vec<String>,
    pub support_ring_secs: u32,
    pub departments: Departments,
    pub max_message_secs: u32,
    pub callback_policy: CallbackPolicy,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            language_timeout: Duration::from_secs(5),
            key_timeout: Duration::from_secs(6),
            support_group: Vec::new(),
            support_ring_secs: 240,
            departments: Departments::default(),
            max_message_secs: 180,
            callback_policy: CallbackPolicy::default(),
        }
    }
}

/// One element of a playlist; [`PromptItem::resolve`] turns it into media prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptItem {
    /// A manifest prompt in the call's language.
    Prompt(&'static str),
    /// A manifest prompt in a fixed language (the bilingual language choice).
    PromptIn(Lang, &'static str),
    /// Read digit by digit (tracking numbers, callback numbers).
    Digits(String),
    /// `number-N`, N in 0..=59.
    Number(u8),
    /// The current incident announcement's audio in this language; the shell loads it as the
    /// prompt `"<lang>/announcement"`.
    Announcement(Lang),
    /// A local wall-clock time, said the way the language says it.
    Time { hour: u8, minute: u8 },
}

impl PromptItem {
    /// The media prompts for this item, named `"<lang>/<name>"`.
    pub fn resolve(&self, lang: Lang) -> Vec<PromptRef> {
        let l = lang.as_str();
        let named = |name: &str| PromptRef::named(format!("{l}/{name}"));
        match self {
            PromptItem::Prompt(name) => vec![named(name)],
            PromptItem::PromptIn(fixed, name) => {
                vec![PromptRef::named(format!("{}/{name}", fixed.as_str()))]
            }
            PromptItem::Digits(d) => vec![PromptRef::digits(l, d.clone())],
            PromptItem::Number(n) => vec![named(&format!("number-{n}"))],
            PromptItem::Announcement(a) => {
                vec![PromptRef::named(format!("{}/announcement", a.as_str()))]
            }
            PromptItem::Time { hour, minute } => time_names(lang, *hour, *minute)
                .into_iter()
                .map(|n| named(&n))
                .collect(),
        }
    }
}

/// Names (without the language) that say a time: "14 heures 5" in French, "2 05 p.m." in
/// English.
fn time_names(lang: Lang, hour: u8, minute: u8) -> Vec<String> {
    let hour = hour.min(23);
    let minute = minute.min(59);
    let mut out = Vec::new();
    match lang {
        Lang::Fr => {
            out.push(format!("number-{hour}"));
            out.push("hours".into());
            if minute != 0 {
                out.push(format!("number-{minute}"));
            }
        }
        Lang::En => {
            let h12 = match hour % 12 {
                0 => 12,
                h => h,
            };
            out.push(format!("number-{h12}"));
            if minute != 0 {
                if minute < 10 {
                    out.push("digit-0".into());
                }
                out.push(format!("number-{minute}"));
            }
            out.push(if hour < 12 { "a-m" } else { "p-m" }.into());
        }
    }
    out
}

/// Resolves a whole playlist for [`MediaSession::play`](crate::media::MediaSession::play).
pub fn resolve_all(lang: Lang, items: &[PromptItem]) -> Vec<PromptRef> {
    items.iter().flat_map(|i| i.resolve(lang)).collect()
}

/// How a recording ended, as the media engine says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingEnd {
    Pound,
    Silence,
    MaxLength,
    HangUp,
}

/// The recording's summary, reported once it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordingOutcome {
    pub seconds: f32,
    pub speech_detected: bool,
    pub ended_by: RecordingEnd,
}

/// Written beside the recording when the message starts, so a crash mid-message still opens
/// its ticket at the next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingVoicemail {
    /// The From user part as received (the account is matched from it).
    pub caller: Option<String>,
    /// None when the caller gave none we may call (see [`IvrFlow`]'s callback rules).
    pub callback: Option<CallbackNumber>,
    /// 1 → S1, 2 → S2 in the after-hours menu; 3 then 1 → S3; None in business hours (and
    /// after hours when no choice was made): triage decides.
    pub keypress_severity: Option<Severity>,
    pub language: Lang,
    pub business_hours: bool,
    /// What the IVR collected, question → answer, for the ticket.
    pub answers: BTreeMap<String, String>,
}

/// The ticket to open when a message ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoicemailTicketRequest {
    pub pending: PendingVoicemail,
    /// None when the caller hung up before the tone (the emergency is kept without audio).
    pub recording: Option<RecordingOutcome>,
}

/// A ticket's state as the caller may hear it (times already in local wall-clock time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketStatusView {
    pub status: Status,
    pub acknowledged_at: Option<ClockTime>,
    pub callback_before: Option<ClockTime>,
    /// The calling number is the ticket's caller, its callback number or one of its
    /// account's numbers: only then are details told.
    pub caller_may_know: bool,
}

/// A local time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockTime {
    pub hour: u8,
    pub minute: u8,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowAction {
    /// Play the items (see [`resolve_all`]) in `lang`, replacing anything playing; with
    /// `barge_in`, a key stops it.
    Play {
        lang: Lang,
        items: Vec<PromptItem>,
        barge_in: bool,
    },
    StopPlayback,
    StartRecording {
        max_secs: u32,
    },
    /// End the recording; its `handle_recording_finished` follows.
    StopRecording,
    /// Ring `targets` together with ringback to the caller; the first to answer is bridged.
    Bridge {
        targets: Vec<String>,
        ring_secs: u32,
    },
    /// Stop ringing the targets of the last `Bridge` (the flow gave up waiting, or the caller
    /// left).
    CancelBridge,
    PersistPendingVoicemail(PendingVoicemail),
    CreateTicket(VoicemailTicketRequest),
    LookupTicket {
        tracking: String,
        caller: Option<String>,
    },
    /// Send BYE.
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Department {
    Sales,
    Orders,
    Billing,
    Porting,
}

/// Where a status lookup returns once told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    MainMenu,
    AfterHoursMenu,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Created; waiting for `start`.
    Idle,
    /// 1 French, 9 English; any other key or none → French (the default the caller hears
    /// first), without re-prompting.
    Language,
    MainMenu {
        failures: u8,
    },
    /// "Please hold…" then the department's bridge.
    Transfer {
        target: String,
    },
    /// Nobody answering a department takes the caller back to the main menu (there is no
    /// department voicemail).
    DepartmentRinging,
    SupportConnecting,
    SupportRinging,
    /// Bridged: the flow's job is done until hang-up.
    Connected,
    /// 1 S1, 2 S2, 3 other. Three failures → a message with no keypress severity (triage
    /// decides): an emergency is never turned away for want of a key.
    AfterHoursMenu {
        failures: u8,
    },
    /// 1 → an S3 message for the next business day; anything else → goodbye.
    AfterHoursOther,
    /// 1 takes the caller ID, 2 enters another; three failures take the caller ID (already
    /// checked allowed).
    CallbackConfirm {
        number: CallbackNumber,
        failures: u8,
    },
    /// Keys until '#' (or a pause after some digits). Three failures → the caller ID if it is
    /// allowed, else no callback number at all: the message (and an S1/S2 emergency) is never
    /// lost for want of a number; the technician hears the message and the caller ID.
    CallbackEnter {
        failures: u8,
        keyed: String,
    },
    /// Instructions then the tone; a key skips to the tone.
    MessageIntro,
    Recording {
        stop_sent: bool,
    },
    /// The ticket was asked for; "message saved" plays meanwhile.
    AwaitTicket {
        answer: Option<TicketAnswer>,
    },
    Readback {
        tracking: String,
        repeats: u8,
    },
    StatusEntry {
        origin: Origin,
        keyed: String,
    },
    StatusLookup {
        origin: Origin,
    },
    /// Goodbye playing; then BYE.
    Closing,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TicketAnswer {
    Created(String),
    Failed,
}

/// One call's IVR. See the module documentation for the loop the shell runs.
#[derive(Debug)]
pub struct IvrFlow {
    ctx: CallContext,
    config: FlowConfig,
    lang: Lang,
    state: State,
    /// Some(barge_in) while a Play is under way.
    playing: Option<bool>,
    deadline: Option<Instant>,
    actions: VecDeque<FlowAction>,
    severity: Option<Severity>,
    callback: Option<CallbackNumber>,
    pending: Option<PendingVoicemail>,
    answers: BTreeMap<String, String>,
    status_misses: u8,
    hung_up: bool,
}

impl IvrFlow {
    pub fn new(ctx: CallContext, config: FlowConfig) -> Self {
        let lang = match ctx.entry {
            Entry::ShortCode611 => ctx.account_language.unwrap_or(Lang::Fr),
            Entry::Main => Lang::Fr,
        };
        IvrFlow {
            ctx,
            config,
            lang,
            state: State::Idle,
            playing: None,
            deadline: None,
            actions: VecDeque::new(),
            severity: None,
            callback: None,
            pending: None,
            answers: BTreeMap::new(),
            status_misses: 0,
            hung_up: false,
        }
    }

    // Getters.

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The call is over for the flow (hung up, or bridged and then hung up).
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// The caller is bridged to a person; the flow waits only for the hang-up.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The severity chosen by keypress, if any.
    pub fn keypress_severity(&self) -> Option<Severity> {
        self.severity
    }

    // Commands.

    /// The call is up (ACK received, media flowing): greet the caller.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.answers
            .insert("entry".into(), entry_name(self.ctx.entry).into());
        match self.ctx.entry {
            Entry::Main => {
                self.state = State::Language;
                self.play(
                    now,
                    vec![
                        PromptItem::PromptIn(Lang::Fr, "language-choice"),
                        PromptItem::PromptIn(Lang::En, "language-choice"),
                    ],
                    true,
                );
            }
            Entry::ShortCode611 => {
                self.answers
                    .insert("language".into(), self.lang.to_string());
                let intro = self.notices();
                self.support(now, intro);
            }
        }
    }

    // Inputs.

    /// A key from the caller (RFC 4733, SIP INFO or in-band, already merged by the shell).
    pub fn handle_key(&mut self, now: Instant, key: char) {
        if !matches!(key, '0'..='9' | '*' | '#' | 'A'..='D') || self.hung_up {
            return;
        }
        if let Some(barge_in) = self.playing {
            let repeat_readback = matches!(self.state, State::Readback { .. }) && key == '9';
            if !(barge_in || repeat_readback) {
                return;
            }
            self.actions.push_back(FlowAction::StopPlayback);
            self.playing = None;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Language => {
                self.lang = if key == '9' { Lang::En } else { Lang::Fr };
                self.answers
                    .insert("language".into(), self.lang.to_string());
                self.main_menu(now, Vec::new(), 0, true);
            }
            State::MainMenu { failures } => self.main_menu_key(now, key, failures),
            State::AfterHoursMenu { failures } => self.after_hours_key(now, key, failures),
            State::AfterHoursOther => {
                if key == '1' {
                    self.answers.insert("after_hours_other".into(), "1".into());
                    self.severity = Some(Severity::S3);
                    self.begin_callback(now, Vec::new());
                } else {
                    self.close(now, Vec::new());
                }
            }
            State::CallbackConfirm { number, failures } => match key {
                '1' => {
                    self.answers
                        .insert("callback".into(), "caller id confirmed".into());
                    self.callback = Some(number);
                    self.begin_message(now, Vec::new());
                }
                '2' => {
                    self.state = State::CallbackEnter {
                        failures: 0,
                        keyed: String::new(),
                    };
                    self.play(now, vec![PromptItem::Prompt("callback-enter")], true);
                }
                _ => self.callback_confirm_failed(now, number, failures, "invalid-choice"),
            },
            State::CallbackEnter {
                failures,
                mut keyed,
            } => {
                if key == '#' {
                    self.callback_entered(now, failures, keyed);
                } else {
                    // Past MAX_KEYED it is malformed anyway (a valid entry is at most 20).
                    if keyed.len() < MAX_KEYED {
                        keyed.push(key);
                    }
                    self.state = State::CallbackEnter { failures, keyed };
                    self.deadline = Some(now + self.config.key_timeout);
                }
            }
            State::MessageIntro => {
                // The caller knows the drill: straight to the tone.
                self.state = State::MessageIntro;
                self.play(now, vec![PromptItem::Prompt("beep")], false);
            }
            State::Recording { stop_sent } => {
                if key == '#' && !stop_sent {
                    self.stop_recording(now);
                } else {
                    self.state = State::Recording { stop_sent };
                }
            }
            State::Readback { tracking, repeats } => {
                if key == '9' && repeats < MAX_READBACK_REPEATS {
                    self.readback(now, tracking, repeats + 1);
                } else {
                    self.close(now, Vec::new());
                }
            }
            State::StatusEntry { origin, mut keyed } => {
                if key == '#' {
                    self.status_entered(now, origin, keyed);
                } else {
                    if keyed.len() < MAX_KEYED {
                        keyed.push(key);
                    }
                    self.state = State::StatusEntry { origin, keyed };
                    self.deadline = Some(now + self.config.key_timeout);
                }
            }
            // Keys mean nothing here (the bridge relays them once connected).
            other => self.state = other,
        }
    }

    /// The latest Play finished (or was stopped).
    pub fn handle_prompt_finished(&mut self, now: Instant) {
        if self.playing.take().is_none() {
            return;
        }
        self.deadline = None;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Language => {
                self.state = State::Language;
                self.deadline = Some(now + self.config.language_timeout);
            }
            s @ (State::MainMenu { .. }
            | State::AfterHoursMenu { .. }
            | State::AfterHoursOther
            | State::CallbackConfirm { .. }
            | State::CallbackEnter { .. }
            | State::Readback { .. }
            | State::StatusEntry { .. }) => {
                self.state = s;
                self.deadline = Some(now + self.config.key_timeout);
            }
            State::Transfer { target } => {
                self.actions.push_back(FlowAction::Bridge {
                    targets: vec![target],
                    ring_secs: self.config.support_ring_secs,
                });
                self.state = State::DepartmentRinging;
                self.deadline = Some(now + self.ring_wait());
            }
            State::SupportConnecting => {
                self.actions.push_back(FlowAction::Bridge {
                    targets: self.config.support_group.clone(),
                    ring_secs: self.config.support_ring_secs,
                });
                self.state = State::SupportRinging;
                self.deadline = Some(now + self.ring_wait());
            }
            State::MessageIntro => {
                let max_secs = self.config.max_message_secs;
                self.actions
                    .push_back(FlowAction::StartRecording { max_secs });
                self.state = State::Recording { stop_sent: false };
                self.deadline = Some(now + Duration::from_secs(max_secs.into()) + RECORDING_GRACE);
            }
            State::AwaitTicket { answer } => match answer {
                Some(a) => self.ticket_answered(now, a),
                None => {
                    self.state = State::AwaitTicket { answer: None };
                    self.deadline = Some(now + STORE_WAIT);
                }
            },
            State::Closing => self.hang_up(),
            other => self.state = other,
        }
    }

    pub fn handle_recording_finished(&mut self, now: Instant, outcome: RecordingOutcome) {
        if !matches!(self.state, State::Recording { .. }) {
            return;
        }
        let Some(pending) = self.pending.clone() else {
            return;
        };
        self.actions
            .push_back(FlowAction::CreateTicket(VoicemailTicketRequest {
                pending,
                recording: Some(outcome),
            }));
        if self.hung_up || outcome.ended_by == RecordingEnd::HangUp {
            self.finish();
            return;
        }
        self.state = State::AwaitTicket { answer: None };
        self.play(now, vec![PromptItem::Prompt("message-saved")], false);
    }

    pub fn handle_bridge_answered(&mut self, _now: Instant) {
        if matches!(self.state, State::SupportRinging | State::DepartmentRinging) {
            self.state = State::Connected;
            self.deadline = None;
        }
    }

    /// Nobody answered, all were busy, or the bridge could not be set up.
    pub fn handle_bridge_failed(&mut self, now: Instant) {
        match self.state {
            State::SupportRinging => self.support_unavailable(now),
            State::DepartmentRinging => self.main_menu(now, Vec::new(), 0, false),
            _ => {}
        }
    }

    /// The caller hung up (BYE, CANCEL, media timeout).
    pub fn handle_caller_hung_up(&mut self, now: Instant) {
        if self.hung_up || self.state == State::Done {
            return;
        }
        self.hung_up = true;
        self.playing = None;
        match std::mem::replace(&mut self.state, State::Done) {
            State::Recording { stop_sent } => {
                // What was said is kept: wait for the recording's report, then the ticket.
                if !stop_sent {
                    self.actions.push_back(FlowAction::StopRecording);
                }
                self.state = State::Recording { stop_sent: true };
                self.deadline = Some(now + RECORDING_GRACE);
            }
            State::MessageIntro => {
                // Gone before the tone: the choice and callback still make a ticket.
                if let Some(pending) = self.pending.clone() {
                    self.actions
                        .push_back(FlowAction::CreateTicket(VoicemailTicketRequest {
                            pending,
                            recording: None,
                        }));
                }
                self.finish();
            }
            State::SupportRinging | State::DepartmentRinging => {
                self.actions.push_back(FlowAction::CancelBridge);
                self.finish();
            }
            _ => self.finish(),
        }
    }

    pub fn handle_ticket_created(&mut self, now: Instant, tracking: String) {
        self.store_answered(now, TicketAnswer::Created(tracking));
    }

    /// The ticket could not be created now; the shell keeps it queued.
    pub fn handle_store_failed(&mut self, now: Instant) {
        self.store_answered(now, TicketAnswer::Failed);
    }

    /// The answer to `LookupTicket`: None when unknown (or failing its check digit).
    pub fn handle_ticket_status(&mut self, now: Instant, view: Option<TicketStatusView>) {
        let State::StatusLookup { origin } = self.state else {
            return;
        };
        match view {
            None => self.status_missed(now, origin, "status-unknown"),
            Some(v) => {
                let mut items = status_items(&v);
                let (menu, state) = self.origin_menu(origin);
                items.push(PromptItem::Prompt(menu));
                self.state = state;
                self.play(now, items, true);
            }
        }
    }

    /// The deadline of `poll_timeout` passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if now >= d => self.deadline = None,
            _ => return,
        }
        if self.playing.is_some() {
            // The prompt's end was lost: carry on as if it had been heard.
            self.handle_prompt_finished(now);
            return;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Language => {
                self.answers.insert("language".into(), "fr (no key)".into());
                self.lang = Lang::Fr;
                self.main_menu(now, Vec::new(), 0, true);
            }
            State::MainMenu { failures } => self.main_menu_failed(now, failures, "no-input"),
            State::AfterHoursMenu { failures } => {
                self.after_hours_failed(now, failures, "no-input")
            }
            State::AfterHoursOther => self.close(now, Vec::new()),
            State::CallbackConfirm { number, failures } => {
                self.callback_confirm_failed(now, number, failures, "no-input")
            }
            State::CallbackEnter { failures, keyed } => {
                if keyed.is_empty() {
                    self.callback_enter_failed(now, failures, "no-input");
                } else {
                    // A pause after digits ends the number, as '#' would.
                    self.callback_entered(now, failures, keyed);
                }
            }
            State::StatusEntry { origin, keyed } => {
                if keyed.is_empty() {
                    self.status_missed(now, origin, "no-input");
                } else {
                    self.status_entered(now, origin, keyed);
                }
            }
            State::StatusLookup { origin } => self.status_missed(now, origin, "status-unknown"),
            State::SupportRinging => {
                self.actions.push_back(FlowAction::CancelBridge);
                self.support_unavailable(now);
            }
            State::DepartmentRinging => {
                self.actions.push_back(FlowAction::CancelBridge);
                self.main_menu(now, Vec::new(), 0, false);
            }
            State::Recording { stop_sent } => {
                if !stop_sent {
                    self.stop_recording(now);
                } else if self.hung_up {
                    // No report: the pending record and the recording on disk are recovered.
                    self.finish();
                } else {
                    self.close(now, vec![PromptItem::Prompt("technical-difficulty")]);
                }
            }
            State::AwaitTicket { answer } => {
                self.ticket_answered(now, answer.unwrap_or(TicketAnswer::Failed))
            }
            State::Readback { .. } => self.close(now, Vec::new()),
            other => self.state = other,
        }
    }

    // Outputs.

    pub fn poll_action(&mut self) -> Option<FlowAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            None
        } else {
            self.deadline
        }
    }

    // The steps.

    fn play(&mut self, now: Instant, items: Vec<PromptItem>, barge_in: bool) {
        self.actions.push_back(FlowAction::Play {
            lang: self.lang,
            items,
            barge_in,
        });
        self.playing = Some(barge_in);
        self.deadline = Some(now + PLAYBACK_GUARD);
    }

    /// Welcome (main entry only), the incident announcement and the maintenance notice.
    fn notices(&self) -> Vec<PromptItem> {
        let mut items = Vec::new();
        if let Some(phase) = self.ctx.announcement {
            items.push(PromptItem::Prompt(phase.prompt()));
            items.push(PromptItem::Announcement(self.lang));
        }
        if self.ctx.in_maintenance {
            items.push(PromptItem::Prompt("maintenance-notice"));
        }
        items
    }

    fn main_menu(&mut self, now: Instant, mut prefix: Vec<PromptItem>, failures: u8, first: bool) {
        if first {
            prefix.push(PromptItem::Prompt("welcome"));
            prefix.extend(self.notices());
        }
        prefix.push(PromptItem::Prompt("main-menu"));
        self.state = State::MainMenu { failures };
        self.play(now, prefix, true);
    }

    fn main_menu_key(&mut self, now: Instant, key: char, failures: u8) {
        let department = match key {
            '1' => Some(Department::Sales),
            '3' => Some(Department::Orders),
            '4' => Some(Department::Billing),
            '5' => Some(Department::Porting),
            _ => None,
        };
        if let Some(d) = department {
            self.answers.insert("main_menu".into(), key.to_string());
            let uri = match d {
                Department::Sales => &self.config.departments.sales,
                Department::Orders => &self.config.departments.orders,
                Department::Billing => &self.config.departments.billing,
                Department::Porting => &self.config.departments.porting,
            };
            match (self.ctx.departments_open, uri.clone()) {
                (true, Some(target)) => {
                    self.state = State::Transfer { target };
                    self.play(now, vec![PromptItem::Prompt("transfer")], false);
                }
                // Closed, or nobody configured to take it: say when departments are open.
                _ => self.main_menu(
                    now,
                    vec![PromptItem::Prompt("department-closed")],
                    failures,
                    false,
                ),
            }
            return;
        }
        match key {
            '2' => {
                self.answers.insert("main_menu".into(), "2".into());
                self.support(now, Vec::new());
            }
            '8' => self.main_menu(
                now,
                vec![PromptItem::Prompt("hours-and-contacts")],
                failures,
                false,
            ),
            '9' => self.main_menu(now, Vec::new(), failures, false),
            '*' => self.status_entry(now, Origin::MainMenu, Vec::new()),
            _ => self.main_menu_failed(now, failures, "invalid-choice"),
        }
    }

    fn main_menu_failed(&mut self, now: Instant, failures: u8, why: &'static str) {
        let failures = failures + 1;
        if failures >= MAX_TRIES {
            self.answers
                .insert("main_menu".into(), "none (sent to support)".into());
            self.support(now, Vec::new());
        } else {
            self.main_menu(now, vec![PromptItem::Prompt(why)], failures, false);
        }
    }

    /// Support: ring the group in business hours, else the after-hours menu.
    fn support(&mut self, now: Instant, prefix: Vec<PromptItem>) {
        if self.ctx.support_open {
            let mut items = prefix;
            if self.config.support_group.is_empty() {
                // Nobody to ring: straight to the voicemail.
                items.push(PromptItem::Prompt("support-unavailable"));
                self.begin_callback(now, items);
                return;
            }
            items.push(PromptItem::Prompt("support-connecting"));
            self.state = State::SupportConnecting;
            self.play(now, items, false);
        } else {
            self.after_hours_menu(now, prefix, 0);
        }
    }

    fn support_unavailable(&mut self, now: Instant) {
        self.begin_callback(now, vec![PromptItem::Prompt("support-unavailable")]);
    }

    fn ring_wait(&self) -> Duration {
        Duration::from_secs(self.config.support_ring_secs.into()) + BRIDGE_GRACE
    }

    fn after_hours_menu(&mut self, now: Instant, mut items: Vec<PromptItem>, failures: u8) {
        items.push(PromptItem::Prompt("after-hours-menu"));
        self.state = State::AfterHoursMenu { failures };
        self.play(now, items, true);
    }

    fn after_hours_key(&mut self, now: Instant, key: char, failures: u8) {
        match key {
            '1' | '2' => {
                self.answers
                    .insert("after_hours_menu".into(), key.to_string());
                self.severity = Some(if key == '1' {
                    Severity::S1
                } else {
                    Severity::S2
                });
                self.begin_callback(now, Vec::new());
            }
            '3' => {
                self.answers.insert("after_hours_menu".into(), "3".into());
                self.state = State::AfterHoursOther;
                self.play(now, vec![PromptItem::Prompt("after-hours-other")], true);
            }
            '*' => self.status_entry(now, Origin::AfterHoursMenu, Vec::new()),
            _ => self.after_hours_failed(now, failures, "invalid-choice"),
        }
    }

    fn after_hours_failed(&mut self, now: Instant, failures: u8, why: &'static str) {
        let failures = failures + 1;
        if failures >= MAX_TRIES {
            self.answers
                .insert("after_hours_menu".into(), "none".into());
            self.begin_callback(now, Vec::new());
        } else {
            self.after_hours_menu(now, vec![PromptItem::Prompt(why)], failures);
        }
    }

    /// Step 6: confirm the caller ID when we may call it, else ask for a number.
    fn begin_callback(&mut self, now: Instant, prefix: Vec<PromptItem>) {
        let caller_id = self
            .config
            .callback_policy
            .from_caller_id(self.ctx.caller.as_deref());
        match caller_id {
            Some(number) => self.callback_confirm(now, prefix, number, 0),
            None => {
                let mut items = prefix;
                items.push(PromptItem::Prompt("callback-enter"));
                self.state = State::CallbackEnter {
                    failures: 0,
                    keyed: String::new(),
                };
                self.play(now, items, true);
            }
        }
    }

    fn callback_confirm(
        &mut self,
        now: Instant,
        mut items: Vec<PromptItem>,
        number: CallbackNumber,
        failures: u8,
    ) {
        items.push(PromptItem::Prompt("callback-confirm"));
        items.push(PromptItem::Digits(number.national().to_string()));
        items.push(PromptItem::Prompt("callback-or-other"));
        self.state = State::CallbackConfirm { number, failures };
        self.play(now, items, true);
    }

    fn callback_confirm_failed(
        &mut self,
        now: Instant,
        number: CallbackNumber,
        failures: u8,
        why: &'static str,
    ) {
        let failures = failures + 1;
        if failures >= MAX_TRIES {
            self.answers
                .insert("callback".into(), "caller id (no answer)".into());
            self.callback = Some(number);
            self.begin_message(now, Vec::new());
        } else {
            self.callback_confirm(now, vec![PromptItem::Prompt(why)], number, failures);
        }
    }

    fn callback_entered(&mut self, now: Instant, failures: u8, keyed: String) {
        match self.config.callback_policy.check(&keyed) {
            Ok(number) => {
                self.answers.insert("callback".into(), "keyed".into());
                self.callback = Some(number);
                self.begin_message(now, Vec::new());
            }
            Err(CallbackRefusal::Malformed) => {
                self.callback_enter_failed(now, failures, "callback-invalid")
            }
            Err(CallbackRefusal::NotAllowed) => {
                self.answers
                    .insert("callback_refused".into(), keyed.chars().take(20).collect());
                self.callback_enter_failed(now, failures, "callback-refused")
            }
        }
    }

    fn callback_enter_failed(&mut self, now: Instant, failures: u8, why: &'static str) {
        let failures = failures + 1;
        if failures >= MAX_TRIES {
            self.callback = self
                .config
                .callback_policy
                .from_caller_id(self.ctx.caller.as_deref());
            let how = if self.callback.is_some() {
                "caller id (no valid number keyed)"
            } else {
                "none"
            };
            self.answers.insert("callback".into(), how.into());
            self.begin_message(now, Vec::new());
        } else {
            self.state = State::CallbackEnter {
                failures,
                keyed: String::new(),
            };
            self.play(
                now,
                vec![
                    PromptItem::Prompt(why),
                    PromptItem::Prompt("callback-enter"),
                ],
                true,
            );
        }
    }

    /// Step 7: the pending record first (durable before the tone), then instructions and tone.
    fn begin_message(&mut self, now: Instant, mut items: Vec<PromptItem>) {
        let pending = PendingVoicemail {
            caller: self.ctx.caller.clone(),
            callback: self.callback.clone(),
            keypress_severity: self.severity,
            language: self.lang,
            business_hours: self.ctx.support_open,
            answers: self.answers.clone(),
        };
        self.actions
            .push_back(FlowAction::PersistPendingVoicemail(pending.clone()));
        self.pending = Some(pending);
        items.push(PromptItem::Prompt("message-instructions"));
        items.push(PromptItem::Prompt("beep"));
        self.state = State::MessageIntro;
        self.play(now, items, true);
    }

    fn stop_recording(&mut self, now: Instant) {
        self.actions.push_back(FlowAction::StopRecording);
        self.state = State::Recording { stop_sent: true };
        self.deadline = Some(now + RECORDING_GRACE);
    }

    fn store_answered(&mut self, now: Instant, answer: TicketAnswer) {
        let State::AwaitTicket { answer: None } = self.state else {
            return;
        };
        if self.playing.is_some() {
            // Let "message saved" finish first.
            self.state = State::AwaitTicket {
                answer: Some(answer),
            };
        } else {
            self.ticket_answered(now, answer);
        }
    }

    fn ticket_answered(&mut self, now: Instant, answer: TicketAnswer) {
        match answer {
            TicketAnswer::Created(tracking) => self.readback(now, tracking, 0),
            // The shell keeps the ticket queued: the caller is told it is kept.
            TicketAnswer::Failed => {
                self.close(now, vec![PromptItem::Prompt("technical-difficulty")])
            }
        }
    }

    /// Step 8: the tracking number and the callback promise that applies.
    fn readback(&mut self, now: Instant, tracking: String, repeats: u8) {
        let mut items = vec![
            PromptItem::Prompt("tracking-number-is"),
            PromptItem::Digits(tracking.clone()),
        ];
        // In hours, or after hours without a keypress (triage decides), the promise is "as
        // soon as possible"; after hours, the target of the severity chosen.
        match (self.ctx.support_open, self.severity) {
            (false, Some(Severity::S1)) => {
                items.push(PromptItem::Prompt("callback-within"));
                items.extend(duration_items(self.ctx.targets.s1_minutes));
            }
            (false, Some(Severity::S2)) => {
                items.push(PromptItem::Prompt("callback-within"));
                items.extend(duration_items(self.ctx.targets.s2_minutes));
            }
            (_, Some(Severity::S3)) => items.push(PromptItem::Prompt("callback-next-business-day")),
            _ => items.push(PromptItem::Prompt("callback-asap")),
        }
        items.push(PromptItem::Prompt("repeat-or-goodbye"));
        self.state = State::Readback { tracking, repeats };
        // Not barge-in: a stray key must not cut the tracking number (9 still restarts it).
        self.play(now, items, false);
    }

    fn status_entry(&mut self, now: Instant, origin: Origin, mut items: Vec<PromptItem>) {
        items.push(PromptItem::Prompt("status-enter"));
        self.state = State::StatusEntry {
            origin,
            keyed: String::new(),
        };
        self.play(now, items, true);
    }

    fn status_entered(&mut self, now: Instant, origin: Origin, keyed: String) {
        let tracking: String = keyed.chars().filter(|c| c.is_ascii_digit()).collect();
        if tracking.is_empty() || tracking.len() != keyed.len() {
            self.status_missed(now, origin, "status-unknown");
            return;
        }
        self.actions.push_back(FlowAction::LookupTicket {
            tracking,
            caller: self.ctx.caller.clone(),
        });
        self.state = State::StatusLookup { origin };
        self.deadline = Some(now + STORE_WAIT);
    }

    /// Unknown, malformed, unanswered or empty: three in a call end it.
    fn status_missed(&mut self, now: Instant, origin: Origin, why: &'static str) {
        self.status_misses += 1;
        if self.status_misses >= MAX_STATUS_MISSES {
            self.close(now, vec![PromptItem::Prompt(why)]);
        } else {
            self.status_entry(now, origin, vec![PromptItem::Prompt(why)]);
        }
    }

    fn origin_menu(&self, origin: Origin) -> (&'static str, State) {
        match origin {
            Origin::MainMenu => ("main-menu", State::MainMenu { failures: 0 }),
            Origin::AfterHoursMenu => ("after-hours-menu", State::AfterHoursMenu { failures: 0 }),
        }
    }

    /// Goodbye, then BYE.
    fn close(&mut self, now: Instant, mut items: Vec<PromptItem>) {
        items.push(PromptItem::Prompt("goodbye"));
        self.state = State::Closing;
        self.play(now, items, false);
    }

    fn hang_up(&mut self) {
        self.actions.push_back(FlowAction::Hangup);
        self.finish();
    }

    fn finish(&mut self) {
        self.state = State::Done;
        self.playing = None;
        self.deadline = None;
    }
}

fn entry_name(e: Entry) -> &'static str {
    match e {
        Entry::Main => "main",
        Entry::ShortCode611 => "611",
    }
}

/// "30 minutes", or "1 hours" from 60 on (the prompts have numbers 0–59 only).
fn duration_items(minutes: u32) -> Vec<PromptItem> {
    let mut items = Vec::new();
    let (h, m) = (minutes / 60, minutes % 60);
    if h > 0 {
        items.push(PromptItem::Number(h.min(59) as u8));
        items.push(PromptItem::Prompt("hours"));
    }
    if m > 0 || h == 0 {
        items.push(PromptItem::Number(m as u8));
        items.push(PromptItem::Prompt("minutes"));
    }
    items
}

/// What a caller hears about a ticket; details only when they may know them.
fn status_items(v: &TicketStatusView) -> Vec<PromptItem> {
    if !v.caller_may_know {
        return vec![PromptItem::Prompt("status-no-details")];
    }
    let time = |t: ClockTime| PromptItem::Time {
        hour: t.hour,
        minute: t.minute,
    };
    let mut items = Vec::new();
    match v.status {
        Status::Open | Status::Paged => items.push(PromptItem::Prompt("status-open")),
        Status::Acknowledged => match v.acknowledged_at {
            Some(t) => {
                items.push(PromptItem::Prompt("status-acknowledged-at"));
                items.push(time(t));
            }
            None => items.push(PromptItem::Prompt("status-open")),
        },
        Status::CalledBack => return vec![PromptItem::Prompt("status-called-back")],
        // A cancelled request is closed, as a resolved one is.
        Status::Resolved | Status::Cancelled => return vec![PromptItem::Prompt("status-resolved")],
    }
    if let Some(t) = v.callback_before {
        items.push(PromptItem::Prompt("status-callback-before"));
        items.push(time(t));
    }
    items
}
