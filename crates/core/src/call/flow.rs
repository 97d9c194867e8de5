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
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::callback::{CallbackNumber, CallbackPolicy, CallbackRefusal};
use crate::media::PromptCue;
use crate::ticket::Status;
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
pub use crate::lang::Lang;

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
    /// From the stored name ("investigating", "identified", "monitoring").
    pub fn from_name(name: &str) -> Option<AnnouncementPhase> {
        match name {
            "investigating" => Some(AnnouncementPhase::Investigating),
            "identified" => Some(AnnouncementPhase::Identified),
            "monitoring" => Some(AnnouncementPhase::Monitoring),
            _ => None,
        }
    }

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
    /// The SLA's defaults ([`crate::schedule::sla::SlaConfig`]), never a copy of them.
    fn default() -> Self {
        let sla = crate::schedule::sla::SlaConfig::default();
        CallbackTargets {
            s1_minutes: sla.s1_callback_minutes,
            s2_minutes: sla.s2_callback_minutes,
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

/// A department the main menu transfers to (see [`MAIN_MENU`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Department {
    Sales,
    Orders,
    Billing,
    Porting,
}

impl Department {
    /// Its key in `[ivr.departments]`.
    pub fn config_key(self) -> &'static str {
        match self {
            Department::Sales => "sales",
            Department::Orders => "orders",
            Department::Billing => "billing",
            Department::Porting => "porting",
        }
    }
}

/// `[ivr.departments]`: where the main menu's department keys ([`MAIN_MENU`]) transfer in
/// business hours. The config's own type: the flow reads it as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Departments {
    pub sales: Option<String>,
    pub orders: Option<String>,
    pub billing: Option<String>,
    pub porting: Option<String>,
}

impl Departments {
    /// The SIP URI that takes `department`'s calls, if one is set.
    pub fn uri(&self, department: Department) -> Option<&String> {
        match department {
            Department::Sales => self.sales.as_ref(),
            Department::Orders => self.orders.as_ref(),
            Department::Billing => self.billing.as_ref(),
            Department::Porting => self.porting.as_ref(),
        }
    }
}

/// What a main-menu key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// In business hours and with a URI in `[ivr.departments]`: "please hold" and transfer;
    /// otherwise the department's hours, then the menu again.
    Transfer(Department),
    /// Support: its group in business hours, the after-hours menu otherwise.
    Support,
    /// The hours and contacts, then the menu again.
    HoursAndContacts,
    /// The menu again.
    Repeat,
    /// A tracking-number lookup. The menu's wording does not offer it (callers learn it from
    /// the after-hours menu and the ticket e-mails); it is here so that one table holds every
    /// key the main menu takes.
    TicketStatus,
}

impl MenuAction {
    /// The main-menu prompt (`[main-menu]` in `prompts/manifest.toml`) offers this key.
    pub fn is_said(self) -> bool {
        !matches!(self, MenuAction::TicketStatus)
    }
}

/// The main menu: every key it takes and what the key does. The flow, the config validation of
/// `[ivr.departments]` and the check of the prompt's wording (a unit test) all read this; a key
/// not here is an invalid choice.
pub const MAIN_MENU: &[(char, MenuAction)] = &[
    ('1', MenuAction::Transfer(Department::Sales)),
    ('2', MenuAction::Support),
    ('3', MenuAction::Transfer(Department::Orders)),
    ('4', MenuAction::Transfer(Department::Billing)),
    ('5', MenuAction::Transfer(Department::Porting)),
    ('8', MenuAction::HoursAndContacts),
    ('9', MenuAction::Repeat),
    ('*', MenuAction::TicketStatus),
];

/// What `key` does at the main menu, if anything.
pub fn main_menu_action(key: char) -> Option<MenuAction> {
    MAIN_MENU
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, action)| *action)
}

/// The departments the main menu transfers to, in key order.
pub fn menu_departments() -> impl Iterator<Item = Department> {
    MAIN_MENU.iter().filter_map(|(_, action)| match action {
        MenuAction::Transfer(d) => Some(*d),
        _ => None,
    })
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
    /// How long support (and, lacking a setting of their own, a department) rings before the
    /// flow gives up on it.
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

/// The largest `number-N` prompt bundled (`prompts/make-prompts.sh`).
pub const MAX_NUMBER: u8 = crate::media::MAX_NUMBER_PROMPT;

/// One element of a playlist; [`PromptItem::resolve`] turns it into media prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptItem {
    /// A manifest prompt in the call's language.
    Prompt(&'static str),
    /// A manifest prompt in a fixed language (the bilingual language choice).
    PromptIn(Lang, &'static str),
    /// Read digit by digit (tracking numbers, callback numbers).
    Digits(String),
    /// `number-N`, N in 0..=[`MAX_NUMBER`].
    Number(u8),
    /// The current incident announcement's audio in this language; the shell loads it as the
    /// prompt `"<lang>/announcement"`.
    Announcement(Lang),
    /// A local wall-clock time, said the way the language says it.
    Time { hour: u8, minute: u8 },
}

impl PromptItem {
    /// The media prompts for this item, named `"<lang>/<name>"`.
    pub fn resolve(&self, lang: Lang) -> Vec<PromptCue> {
        let l = lang.as_str();
        let named = |name: &str| PromptCue::named(format!("{l}/{name}"));
        match self {
            PromptItem::Prompt(name) => vec![named(name)],
            PromptItem::PromptIn(fixed, name) => {
                vec![PromptCue::named(format!("{}/{name}", fixed.as_str()))]
            }
            PromptItem::Digits(d) => vec![PromptCue::digits(l, d.clone())],
            PromptItem::Number(n) => vec![named(&format!("number-{n}"))],
            PromptItem::Announcement(a) => {
                vec![PromptCue::named(format!("{}/announcement", a.as_str()))]
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
pub fn resolve_all(lang: Lang, items: &[PromptItem]) -> Vec<PromptCue> {
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
    ///
    /// A caller who may not know a ticket's details hears exactly what they hear for a number
    /// that names no ticket ("details only to the number that opened the request", a miss,
    /// then the entry again): what they hear never says which tracking numbers exist.
    pub fn handle_ticket_status(&mut self, now: Instant, view: Option<TicketStatusView>) {
        let State::StatusLookup { origin } = self.state else {
            return;
        };
        match view.filter(|v| v.caller_may_know) {
            None => self.status_missed(now, origin, "status-no-details"),
            Some(v) => {
                let mut items = status_items(&v);
                let (menu, state) = self.origin_menu(origin);
                items.push(PromptItem::Prompt(menu));
                self.state = state;
                self.play(now, items, true);
            }
        }
    }

    /// The shell refused the `LookupTicket` (too many lookups from this calling number or
    /// source across calls): the caller is asked to try later and goes back to the menu they
    /// came from (an emergency can still be left).
    pub fn handle_ticket_status_refused(&mut self, now: Instant) {
        let State::StatusLookup { origin } = self.state else {
            return;
        };
        let (menu, state) = self.origin_menu(origin);
        self.answers
            .insert("status_lookup".into(), "refused: over the limit".into());
        self.state = state;
        self.play(
            now,
            vec![
                PromptItem::Prompt("status-try-later"),
                PromptItem::Prompt(menu),
            ],
            true,
        );
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
        let Some(action) = main_menu_action(key) else {
            self.main_menu_failed(now, failures, "invalid-choice");
            return;
        };
        match action {
            MenuAction::Transfer(department) => {
                self.answers.insert("main_menu".into(), key.to_string());
                let uri = self.config.departments.uri(department).cloned();
                match (self.ctx.departments_open, uri) {
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
            }
            MenuAction::Support => {
                self.answers.insert("main_menu".into(), key.to_string());
                self.support(now, Vec::new());
            }
            MenuAction::HoursAndContacts => self.main_menu(
                now,
                vec![PromptItem::Prompt("hours-and-contacts")],
                failures,
                false,
            ),
            MenuAction::Repeat => self.main_menu(now, Vec::new(), failures, false),
            MenuAction::TicketStatus => self.status_entry(now, Origin::MainMenu, Vec::new()),
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

/// "30 minutes", "60 minutes" (as the guide says it) up to 120, then "3 hours 15 minutes"
/// (the prompts have numbers 0–120).
fn duration_items(minutes: u32) -> Vec<PromptItem> {
    if minutes <= u32::from(MAX_NUMBER) {
        return vec![
            PromptItem::Number(minutes as u8),
            PromptItem::Prompt("minutes"),
        ];
    }
    let mut items = Vec::new();
    let (h, m) = (minutes / 60, minutes % 60);
    items.push(PromptItem::Number(h.min(u32::from(MAX_NUMBER)) as u8));
    items.push(PromptItem::Prompt("hours"));
    if m > 0 {
        items.push(PromptItem::Number(m as u8));
        items.push(PromptItem::Prompt("minutes"));
    }
    items
}

/// What a caller who may know a ticket's details hears about it.
fn status_items(v: &TicketStatusView) -> Vec<PromptItem> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng as StdRng;

    const TRACKING: &str = "48210937";

    fn ctx() -> CallContext {
        CallContext {
            caller: Some("+15149073400".into()),
            entry: Entry::Main,
            account_language: None,
            support_open: true,
            departments_open: true,
            announcement: None,
            in_maintenance: false,
            targets: CallbackTargets::default(),
        }
    }

    fn after_hours() -> CallContext {
        CallContext {
            support_open: false,
            departments_open: false,
            ..ctx()
        }
    }

    fn hidden() -> CallContext {
        CallContext {
            caller: Some("anonymous".into()),
            ..after_hours()
        }
    }

    fn cfg() -> FlowConfig {
        FlowConfig {
            support_group: vec![
                "sip:tech-a@support.test".into(),
                "sip:tech-b@support.test".into(),
            ],
            departments: Departments {
                sales: Some("sip:sales@pbx.test".into()),
                orders: Some("sip:orders@pbx.test".into()),
                billing: Some("sip:billing@pbx.test".into()),
                porting: None,
            },
            ..FlowConfig::default()
        }
    }

    /// Drives one flow with synthetic time and keeps every action it emitted.
    struct H {
        flow: IvrFlow,
        now: Instant,
        log: Vec<FlowAction>,
    }

    impl H {
        fn with(ctx: CallContext, config: FlowConfig) -> (H, Vec<String>) {
            let mut h = H {
                flow: IvrFlow::new(ctx, config),
                now: crate::test_origin(),
                log: Vec::new(),
            };
            h.flow.start(h.now);
            let first = h.drain();
            (h, first)
        }

        fn new(ctx: CallContext) -> (H, Vec<String>) {
            H::with(ctx, cfg())
        }

        fn drain(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some(a) = self.flow.poll_action() {
                out.extend(label(&a));
                self.log.push(a);
            }
            out
        }

        fn key(&mut self, k: char) -> Vec<String> {
            self.flow.handle_key(self.now, k);
            self.drain()
        }

        fn keys(&mut self, ks: &str) -> Vec<String> {
            ks.chars().flat_map(|k| self.key(k)).collect()
        }

        fn done(&mut self) -> Vec<String> {
            self.flow.handle_prompt_finished(self.now);
            self.drain()
        }

        /// Lets time pass, firing the flow's timer if it falls due.
        fn advance(&mut self, d: Duration) -> Vec<String> {
            self.now += d;
            if self.flow.poll_timeout().is_some_and(|t| t <= self.now) {
                self.flow.handle_timeout(self.now);
            }
            self.drain()
        }

        /// Jumps to the flow's deadline and fires it.
        fn expire(&mut self) -> Vec<String> {
            let t = self.flow.poll_timeout().expect("a deadline");
            assert!(t > self.now, "deadline in the past");
            self.now = t;
            self.flow.handle_timeout(self.now);
            self.drain()
        }

        fn wait_left(&self) -> Duration {
            self.flow.poll_timeout().expect("a deadline") - self.now
        }

        fn hang_up(&mut self) -> Vec<String> {
            self.flow.handle_caller_hung_up(self.now);
            self.drain()
        }

        fn recorded(&mut self, secs: f32, ended_by: RecordingEnd) -> Vec<String> {
            self.flow.handle_recording_finished(
                self.now,
                RecordingOutcome {
                    seconds: secs,
                    speech_detected: true,
                    ended_by,
                },
            );
            self.drain()
        }

        fn ticket(&mut self, tracking: &str) -> Vec<String> {
            self.flow.handle_ticket_created(self.now, tracking.into());
            self.drain()
        }

        fn last_play(&self) -> (Lang, bool) {
            self.log
                .iter()
                .rev()
                .find_map(|a| match a {
                    FlowAction::Play { lang, barge_in, .. } => Some((*lang, *barge_in)),
                    _ => None,
                })
                .expect("a play")
        }

        fn pending(&self) -> PendingVoicemail {
            self.log
                .iter()
                .find_map(|a| match a {
                    FlowAction::PersistPendingVoicemail(p) => Some(p.clone()),
                    _ => None,
                })
                .expect("a pending voicemail")
        }

        fn tickets(&self) -> Vec<VoicemailTicketRequest> {
            self.log
                .iter()
                .filter_map(|a| match a {
                    FlowAction::CreateTicket(t) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        }

        fn assert_over(&self) {
            assert!(self.flow.is_finished());
            assert_eq!(self.flow.poll_timeout(), None);
        }
    }

    fn label(a: &FlowAction) -> Vec<String> {
        match a {
            FlowAction::Play { items, .. } => items
                .iter()
                .map(|i| match i {
                    PromptItem::Prompt(n) => n.to_string(),
                    PromptItem::PromptIn(l, n) => format!("{l}/{n}"),
                    PromptItem::Digits(d) => format!("digits:{d}"),
                    PromptItem::Number(n) => format!("number-{n}"),
                    PromptItem::Announcement(l) => format!("announcement:{l}"),
                    PromptItem::Time { hour, minute } => format!("time:{hour}:{minute:02}"),
                })
                .collect(),
            FlowAction::StopPlayback => vec!["STOP".into()],
            FlowAction::StartRecording { max_secs } => vec![format!("RECORD:{max_secs}")],
            FlowAction::StopRecording => vec!["STOP-RECORDING".into()],
            FlowAction::Bridge { targets, ring_secs } => {
                vec![format!("BRIDGE:{}:{ring_secs}", targets.join(","))]
            }
            FlowAction::CancelBridge => vec!["CANCEL-BRIDGE".into()],
            FlowAction::PersistPendingVoicemail(_) => vec!["PERSIST".into()],
            FlowAction::CreateTicket(_) => vec!["TICKET".into()],
            FlowAction::LookupTicket { tracking, .. } => vec![format!("LOOKUP:{tracking}")],
            FlowAction::Hangup => vec!["HANGUP".into()],
        }
    }

    fn l(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    const CONFIRM: &[&str] = &["callback-confirm", "digits:5149073400", "callback-or-other"];

    fn with(prefix: &[&str], rest: &[&str]) -> Vec<String> {
        l(prefix).into_iter().chain(l(rest)).collect()
    }

    /// Main entry, French, at the main menu (prompt heard).
    fn at_main_menu(ctx: CallContext) -> H {
        let (mut h, first) = H::new(ctx);
        assert_eq!(first, l(&["fr/language-choice", "en/language-choice"]));
        h.done();
        assert_eq!(h.key('1'), l(&["welcome", "main-menu"]));
        h.done();
        h
    }

    /// After hours, at the after-hours menu (prompt heard).
    fn at_after_hours_menu(ctx: CallContext) -> H {
        let mut h = at_main_menu(ctx);
        assert_eq!(h.key('2'), l(&["after-hours-menu"]));
        h.done();
        h
    }

    /// Recording the message, the caller's ID confirmed as callback number.
    fn recording_s1() -> H {
        let mut h = at_after_hours_menu(after_hours());
        assert_eq!(h.key('1'), l(CONFIRM));
        h.done();
        assert_eq!(h.key('1'), l(&["PERSIST", "message-instructions", "beep"]));
        assert_eq!(h.done(), l(&["RECORD:180"]));
        h
    }

    // Every scenario is a test, and the manifest test walks them all again collecting prompts.
    macro_rules! scenarios {
        ($(fn $name:ident() -> H $body:block)*) => {
            mod scenario {
                use super::*;
                $(pub fn $name() -> H $body)*
                pub const ALL: &[fn() -> H] = &[$($name),*];
            }
            $(#[test] fn $name() { scenario::$name(); })*
        };
    }

    scenarios! {
        fn language_1_is_french_after_the_prompt() -> H {
            let h = at_main_menu(ctx());
            assert_eq!(h.flow.lang(), Lang::Fr);
            assert_eq!(h.last_play(), (Lang::Fr, true));
            h
        }

        fn language_9_barges_in_and_is_english() -> H {
            let (mut h, _) = H::new(ctx());
            assert_eq!(h.key('9'), l(&["STOP", "welcome", "main-menu"]));
            assert_eq!(h.flow.lang(), Lang::En);
            assert_eq!(h.last_play(), (Lang::En, true));
            h
        }

        fn language_timeout_is_french() -> H {
            let (mut h, _) = H::new(ctx());
            h.done();
            assert_eq!(h.wait_left(), secs(5));
            assert!(h.advance(Duration::from_millis(4999)).is_empty());
            assert_eq!(h.advance(Duration::from_millis(1)), l(&["welcome", "main-menu"]));
            assert_eq!(h.flow.lang(), Lang::Fr);
            h
        }

        fn another_key_at_the_language_choice_is_french() -> H {
            let (mut h, _) = H::new(ctx());
            h.done();
            assert_eq!(h.key('2'), l(&["welcome", "main-menu"]));
            assert_eq!(h.flow.lang(), Lang::Fr);
            h
        }

        fn incident_and_maintenance_play_before_the_menu() -> H {
            let c = CallContext {
                announcement: Some(AnnouncementPhase::Identified),
                in_maintenance: true,
                ..ctx()
            };
            let (mut h, _) = H::new(c);
            assert_eq!(
                h.key('9'),
                l(&[
                    "STOP",
                    "welcome",
                    "incident-identified",
                    "announcement:en",
                    "maintenance-notice",
                    "main-menu",
                ])
            );
            // A key during the announcement is the menu choice.
            assert_eq!(h.key('2'), l(&["STOP", "support-connecting"]));
            h
        }

        fn every_announcement_phase_has_its_prompt() -> H {
            let mut last = None;
            for (phase, name) in [
                (AnnouncementPhase::Investigating, "incident-investigating"),
                (AnnouncementPhase::Monitoring, "incident-monitoring"),
            ] {
                let (mut h, _) = H::new(CallContext { announcement: Some(phase), ..ctx() });
                h.done();
                assert_eq!(h.key('1'), l(&["welcome", name, "announcement:fr", "main-menu"]));
                last = Some(h);
            }
            last.unwrap()
        }

        fn sales_transfers_in_business_hours() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('1'), l(&["transfer"]));
            assert_eq!(h.last_play(), (Lang::Fr, false));
            assert_eq!(h.done(), l(&["BRIDGE:sip:sales@pbx.test:240"]));
            h.flow.handle_bridge_answered(h.now);
            assert!(h.flow.is_connected());
            assert_eq!(h.flow.poll_timeout(), None);
            // Keys are the bridge's now.
            assert!(h.keys("123#").is_empty());
            assert!(h.hang_up().is_empty());
            h.assert_over();
            h
        }

        fn departments_are_closed_after_hours() -> H {
            let mut h = at_main_menu(after_hours());
            for k in ['1', '3', '4', '5'] {
                assert_eq!(h.key(k), l(&["department-closed", "main-menu"]));
                h.done();
            }
            h
        }

        fn a_department_without_a_uri_says_when_it_is_open() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('5'), l(&["department-closed", "main-menu"]));
            h
        }

        fn a_department_nobody_answers_returns_to_the_menu() -> H {
            let mut h = at_main_menu(ctx());
            h.key('3');
            h.done();
            h.flow.handle_bridge_failed(h.now);
            assert_eq!(h.drain(), l(&["main-menu"]));
            h.done();
            h.key('4');
            h.done();
            assert_eq!(h.wait_left(), secs(245));
            assert_eq!(h.expire(), l(&["CANCEL-BRIDGE", "main-menu"]));
            h
        }

        fn hours_and_repeat_keep_the_menu() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('8'), l(&["hours-and-contacts", "main-menu"]));
            assert_eq!(h.key('9'), l(&["STOP", "main-menu"]));
            h.done();
            assert_eq!(h.key('9'), l(&["main-menu"]));
            h
        }

        fn invalid_or_no_input_twice_then_support() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('7'), l(&["invalid-choice", "main-menu"]));
            h.done();
            assert_eq!(h.wait_left(), secs(6));
            assert_eq!(h.expire(), l(&["no-input", "main-menu"]));
            h.done();
            assert_eq!(h.key('#'), l(&["support-connecting"]));
            h
        }

        fn no_input_at_all_reaches_the_after_hours_menu() -> H {
            let mut h = at_main_menu(after_hours());
            assert_eq!(h.expire(), l(&["no-input", "main-menu"]));
            h.done();
            assert_eq!(h.expire(), l(&["no-input", "main-menu"]));
            h.done();
            assert_eq!(h.expire(), l(&["after-hours-menu"]));
            h
        }

        fn support_answered_in_business_hours() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('2'), l(&["support-connecting"]));
            // Not barge-in: a key does not cut "connecting you".
            assert!(h.key('5').is_empty());
            assert_eq!(
                h.done(),
                l(&["BRIDGE:sip:tech-a@support.test,sip:tech-b@support.test:240"])
            );
            h.flow.handle_bridge_answered(h.now);
            assert!(h.flow.is_connected());
            assert!(h.hang_up().is_empty());
            h.assert_over();
            h
        }

        fn nobody_answers_support_then_voicemail_in_hours() -> H {
            let mut h = at_main_menu(ctx());
            h.key('2');
            h.done();
            h.flow.handle_bridge_failed(h.now);
            assert_eq!(h.drain(), with(&["support-unavailable"], CONFIRM));
            assert_eq!(h.key('1'), l(&["STOP", "PERSIST", "message-instructions", "beep"]));
            let p = h.pending();
            assert_eq!(p.keypress_severity, None);
            assert!(p.business_hours);
            assert_eq!(p.callback.as_ref().map(|c| c.e164()), Some("+15149073400".into()));
            assert_eq!(p.answers.get("main_menu").map(String::as_str), Some("2"));
            assert_eq!(h.done(), l(&["RECORD:180"]));
            assert_eq!(h.key('#'), l(&["STOP-RECORDING"]));
            assert_eq!(h.recorded(42.5, RecordingEnd::Pound), l(&["TICKET", "message-saved"]));
            let t = h.tickets();
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].pending, p);
            assert_eq!(t[0].recording.unwrap().seconds, 42.5);
            h.done();
            assert_eq!(
                h.ticket(TRACKING),
                l(&["tracking-number-is", "digits:48210937", "callback-asap", "repeat-or-goodbye"])
            );
            h.done();
            assert_eq!(h.expire(), l(&["goodbye"]));
            assert_eq!(h.done(), l(&["HANGUP"]));
            h.assert_over();
            h
        }

        fn support_ring_timeout_cancels_and_goes_to_voicemail() -> H {
            let mut h = at_main_menu(CallContext { caller: None, ..ctx() });
            h.key('2');
            h.done();
            assert!(h.advance(secs(244)).is_empty());
            assert_eq!(
                h.advance(secs(1)),
                l(&["CANCEL-BRIDGE", "support-unavailable", "callback-enter"])
            );
            h
        }

        fn no_support_group_goes_straight_to_voicemail() -> H {
            let (mut h, _) = H::with(ctx(), FlowConfig { support_group: vec![], ..cfg() });
            h.key('1');
            assert_eq!(h.key('2'), with(&["STOP", "support-unavailable"], CONFIRM));
            h
        }

        fn after_hours_s1_tells_the_30_minute_target() -> H {
            let mut h = recording_s1();
            let p = h.pending();
            assert_eq!(p.keypress_severity, Some(Severity::S1));
            assert!(!p.business_hours);
            assert_eq!(p.language, Lang::Fr);
            // Other keys do not end the message; '#' does.
            assert!(h.keys("12").is_empty());
            assert_eq!(h.key('#'), l(&["STOP-RECORDING"]));
            assert!(h.key('#').is_empty());
            h.recorded(30.0, RecordingEnd::Pound);
            h.done();
            let readback = l(&[
                "tracking-number-is",
                "digits:48210937",
                "callback-within",
                "number-30",
                "minutes",
                "repeat-or-goodbye",
            ]);
            assert_eq!(h.ticket(TRACKING), readback);
            assert_eq!(h.last_play(), (Lang::Fr, false));
            // A stray key does not cut the tracking number; 9 restarts it.
            assert!(h.key('5').is_empty());
            assert_eq!(h.key('9'), with(&["STOP"], &readback.iter().map(String::as_str).collect::<Vec<_>>()));
            h.done();
            assert_eq!(h.key('9'), readback);
            h.done();
            assert_eq!(h.key('1'), l(&["goodbye"]));
            assert!(h.key('9').is_empty());
            assert_eq!(h.done(), l(&["HANGUP"]));
            h.assert_over();
            h
        }

        fn after_hours_s2_in_english_tells_one_hour() -> H {
            let (mut h, _) = H::new(after_hours());
            h.key('9');
            h.key('2');
            assert_eq!(h.key('2'), with(&["STOP"], CONFIRM));
            assert_eq!(h.last_play(), (Lang::En, true));
            h.key('1');
            h.done();
            h.recorded(12.0, RecordingEnd::Silence);
            let p = h.pending();
            assert_eq!((p.keypress_severity, p.language), (Some(Severity::S2), Lang::En));
            h.done();
            let heard = h.ticket(TRACKING);
            assert_eq!(heard[2..5], l(&["callback-within", "number-60", "minutes"]));
            h
        }

        fn after_hours_other_leaves_an_s3_message_for_the_next_business_day() -> H {
            let mut h = at_after_hours_menu(after_hours());
            assert_eq!(h.key('3'), l(&["after-hours-other"]));
            h.done();
            assert_eq!(h.key('1'), l(CONFIRM));
            h.done();
            h.key('1');
            assert_eq!(h.pending().keypress_severity, Some(Severity::S3));
            h.done();
            h.recorded(8.0, RecordingEnd::Silence);
            h.done();
            assert_eq!(
                h.ticket(TRACKING),
                l(&[
                    "tracking-number-is",
                    "digits:48210937",
                    "callback-next-business-day",
                    "repeat-or-goodbye",
                ])
            );
            h
        }

        fn after_hours_other_without_a_choice_says_goodbye() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('3');
            h.done();
            assert_eq!(h.expire(), l(&["goodbye"]));
            assert_eq!(h.done(), l(&["HANGUP"]));
            h.assert_over();
            let mut h = at_after_hours_menu(after_hours());
            h.key('3');
            assert_eq!(h.key('2'), l(&["STOP", "goodbye"]));
            assert!(h.tickets().is_empty());
            h
        }

        fn after_hours_menu_failures_still_take_the_message() -> H {
            let mut h = at_after_hours_menu(after_hours());
            assert_eq!(h.key('7'), l(&["invalid-choice", "after-hours-menu"]));
            h.done();
            assert_eq!(h.expire(), l(&["no-input", "after-hours-menu"]));
            h.done();
            assert_eq!(h.expire(), l(CONFIRM));
            h.done();
            h.key('1');
            let p = h.pending();
            assert_eq!(p.keypress_severity, None);
            h.done();
            h.recorded(5.0, RecordingEnd::Pound);
            h.done();
            assert_eq!(h.ticket(TRACKING)[2], "callback-asap");
            h
        }

        fn a_900_number_is_refused_as_callback() -> H {
            let mut h = at_after_hours_menu(hidden());
            assert_eq!(h.key('1'), l(&["callback-enter"]));
            h.done();
            assert_eq!(h.keys("9005551234#"), l(&["callback-refused", "callback-enter"]));
            // The next number barges in.
            assert_eq!(
                h.keys("5149073400*12#"),
                l(&["STOP", "PERSIST", "message-instructions", "beep"])
            );
            let p = h.pending();
            assert_eq!(p.callback.unwrap().to_string(), "+15149073400;ext=12");
            assert_eq!(p.caller.as_deref(), Some("anonymous"));
            assert_eq!(p.answers.get("callback_refused").map(String::as_str), Some("9005551234"));
            h
        }

        fn a_malformed_number_is_invalid_and_a_pause_ends_a_number() -> H {
            let mut h = at_after_hours_menu(hidden());
            h.key('2');
            h.done();
            assert_eq!(h.keys("12345#"), l(&["callback-invalid", "callback-enter"]));
            h.done();
            assert_eq!(h.expire(), l(&["no-input", "callback-enter"]));
            h.done();
            assert!(h.keys("418555123").is_empty());
            assert!(h.advance(secs(5)).is_empty());
            assert!(h.keys("4").is_empty());
            assert_eq!(h.wait_left(), secs(6));
            assert_eq!(h.expire(), l(&["PERSIST", "message-instructions", "beep"]));
            assert_eq!(h.pending().callback.unwrap().e164(), "+14185551234");
            h
        }

        fn three_bad_numbers_proceed_without_a_callback_number() -> H {
            let mut h = at_after_hours_menu(hidden());
            h.key('1');
            h.keys("0#");
            h.keys("911#");
            assert_eq!(h.keys("2125551234#"), l(&["STOP", "PERSIST", "message-instructions", "beep"]));
            let p = h.pending();
            assert_eq!(p.callback, None);
            assert_eq!(p.keypress_severity, Some(Severity::S1));
            assert_eq!(p.answers.get("callback").map(String::as_str), Some("none"));
            h
        }

        fn another_number_then_three_failures_falls_back_to_the_caller_id() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('1');
            assert_eq!(h.key('2'), l(&["STOP", "callback-enter"]));
            h.done();
            h.expire();
            h.done();
            h.expire();
            h.done();
            assert_eq!(h.expire(), l(&["PERSIST", "message-instructions", "beep"]));
            assert_eq!(h.pending().callback.unwrap().e164(), "+15149073400");
            h
        }

        fn the_confirmation_reprompts_then_takes_the_caller_id() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('1');
            h.done();
            assert_eq!(h.key('5'), with(&["invalid-choice"], CONFIRM));
            h.done();
            assert_eq!(h.expire(), with(&["no-input"], CONFIRM));
            h.done();
            assert_eq!(h.expire(), l(&["PERSIST", "message-instructions", "beep"]));
            assert!(h.pending().callback.is_some());
            h
        }

        fn a_key_during_the_instructions_skips_to_the_tone() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('1');
            h.done();
            h.key('1');
            assert_eq!(h.key('5'), l(&["STOP", "beep"]));
            assert!(h.key('5').is_empty());
            assert_eq!(h.done(), l(&["RECORD:180"]));
            h
        }

        fn short_code_611_goes_straight_to_support_in_the_account_language() -> H {
            let c = CallContext {
                entry: Entry::ShortCode611,
                account_language: Some(Lang::En),
                ..ctx()
            };
            let (mut h, first) = H::new(c);
            assert_eq!(first, l(&["support-connecting"]));
            assert_eq!(h.last_play(), (Lang::En, false));
            assert_eq!(
                h.done(),
                l(&["BRIDGE:sip:tech-a@support.test,sip:tech-b@support.test:240"])
            );
            h
        }

        fn short_code_611_after_hours_hears_the_notices_then_the_emergency_menu() -> H {
            let c = CallContext {
                entry: Entry::ShortCode611,
                announcement: Some(AnnouncementPhase::Investigating),
                ..after_hours()
            };
            let (h, first) = H::new(c);
            assert_eq!(
                first,
                l(&["incident-investigating", "announcement:fr", "after-hours-menu"])
            );
            assert_eq!(h.flow.lang(), Lang::Fr);
            h
        }

        fn hang_up_mid_message_still_creates_the_ticket() -> H {
            let mut h = recording_s1();
            h.advance(secs(20));
            assert_eq!(h.hang_up(), l(&["STOP-RECORDING"]));
            assert!(!h.flow.is_finished());
            assert_eq!(h.recorded(20.0, RecordingEnd::HangUp), l(&["TICKET"]));
            h.assert_over();
            let t = h.tickets();
            assert_eq!(t[0].recording.unwrap().ended_by, RecordingEnd::HangUp);
            assert_eq!(t[0].pending.keypress_severity, Some(Severity::S1));
            h
        }

        fn a_recording_ended_by_hang_up_creates_the_ticket() -> H {
            let mut h = recording_s1();
            assert_eq!(h.recorded(3.0, RecordingEnd::HangUp), l(&["TICKET"]));
            h.assert_over();
            assert!(h.hang_up().is_empty());
            h
        }

        fn hang_up_before_the_tone_keeps_the_emergency() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('1');
            h.key('1');
            assert_eq!(h.hang_up(), l(&["TICKET"]));
            let t = h.tickets();
            assert_eq!(t[0].recording, None);
            assert_eq!(t[0].pending.keypress_severity, Some(Severity::S1));
            h.assert_over();
            h
        }

        fn a_recording_never_reported_after_hang_up_is_left_to_recovery() -> H {
            let mut h = recording_s1();
            h.hang_up();
            assert_eq!(h.wait_left(), secs(10));
            assert!(h.expire().is_empty());
            h.assert_over();
            assert!(h.tickets().is_empty());
            h
        }

        fn the_longest_message_is_stopped_and_kept() -> H {
            let mut h = recording_s1();
            assert_eq!(h.wait_left(), secs(190));
            assert_eq!(h.expire(), l(&["STOP-RECORDING"]));
            assert_eq!(h.recorded(180.0, RecordingEnd::MaxLength), l(&["TICKET", "message-saved"]));
            h
        }

        fn a_recording_never_reported_is_a_technical_difficulty() -> H {
            let mut h = recording_s1();
            h.key('#');
            assert_eq!(h.expire(), l(&["technical-difficulty", "goodbye"]));
            // The late report changes nothing.
            assert!(h.recorded(1.0, RecordingEnd::Pound).is_empty());
            assert_eq!(h.done(), l(&["HANGUP"]));
            h
        }

        fn a_store_failure_after_the_message_says_it_is_kept() -> H {
            let mut h = recording_s1();
            h.key('#');
            h.recorded(10.0, RecordingEnd::Pound);
            // The store answers while "message saved" plays: it finishes first.
            h.flow.handle_store_failed(h.now);
            assert!(h.drain().is_empty());
            assert_eq!(h.done(), l(&["technical-difficulty", "goodbye"]));
            assert!(h.ticket(TRACKING).is_empty());
            assert_eq!(h.done(), l(&["HANGUP"]));
            h.assert_over();
            h
        }

        fn a_silent_store_is_a_technical_difficulty() -> H {
            let mut h = recording_s1();
            h.key('#');
            h.recorded(10.0, RecordingEnd::Pound);
            h.done();
            assert_eq!(h.wait_left(), secs(15));
            assert_eq!(h.expire(), l(&["technical-difficulty", "goodbye"]));
            h
        }

        fn a_ticket_created_during_message_saved_waits_for_it() -> H {
            let mut h = recording_s1();
            h.key('#');
            h.recorded(10.0, RecordingEnd::Pound);
            assert!(h.ticket(TRACKING).is_empty());
            assert_eq!(h.done()[..2], l(&["tracking-number-is", "digits:48210937"]));
            h
        }

        fn status_is_told_to_the_caller_then_the_menu() -> H {
            let mut h = at_main_menu(ctx());
            assert_eq!(h.key('*'), l(&["status-enter"]));
            assert_eq!(h.keys("4821"), l(&["STOP"]));
            assert_eq!(h.keys("0937#"), l(&["LOOKUP:48210937"]));
            assert!(h.log.contains(&FlowAction::LookupTicket {
                tracking: TRACKING.into(),
                caller: Some("+15149073400".into()),
            }));
            h.flow.handle_ticket_status(
                h.now,
                Some(TicketStatusView {
                    status: Status::Acknowledged,
                    acknowledged_at: Some(ClockTime { hour: 14, minute: 14 }),
                    callback_before: Some(ClockTime { hour: 14, minute: 44 }),
                    caller_may_know: true,
                }),
            );
            assert_eq!(
                h.drain(),
                l(&[
                    "status-acknowledged-at",
                    "time:14:14",
                    "status-callback-before",
                    "time:14:44",
                    "main-menu",
                ])
            );
            assert_eq!(h.key('2'), l(&["STOP", "support-connecting"]));
            h
        }

        fn every_status_has_its_words() -> H {
            let mut h = at_main_menu(ctx());
            let cases = [
                (Status::Open, None, Some(ClockTime { hour: 2, minute: 44 }), &["status-open", "status-callback-before", "time:2:44"][..]),
                (Status::Paged, None, None, &["status-open"][..]),
                (Status::Acknowledged, None, None, &["status-open"][..]),
                (Status::CalledBack, None, None, &["status-called-back"][..]),
                (Status::Resolved, None, None, &["status-resolved"][..]),
                (Status::Cancelled, None, None, &["status-resolved"][..]),
            ];
            for (status, acknowledged_at, callback_before, words) in cases {
                h.key('*');
                h.keys("1#");
                h.flow.handle_ticket_status(
                    h.now,
                    Some(TicketStatusView { status, acknowledged_at, callback_before, caller_may_know: true }),
                );
                assert_eq!(h.drain(), with(words, &["main-menu"]));
            }
            h
        }

        fn status_details_only_to_who_may_know() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('*');
            h.keys("48210937#");
            h.flow.handle_ticket_status(
                h.now,
                Some(TicketStatusView {
                    status: Status::Open,
                    acknowledged_at: None,
                    callback_before: None,
                    caller_may_know: false,
                }),
            );
            assert_eq!(h.drain(), l(&["status-no-details", "status-enter"]));
            h.done();
            h
        }

        fn a_stranger_hears_the_same_for_an_existing_and_a_wrong_number() -> H {
            let stranger = Some(TicketStatusView {
                status: Status::Acknowledged,
                acknowledged_at: Some(ClockTime { hour: 1, minute: 2 }),
                callback_before: Some(ClockTime { hour: 1, minute: 30 }),
                caller_may_know: false,
            });
            let mut heard = Vec::new();
            let mut last = None;
            for answer in [stranger, None] {
                let mut h = at_after_hours_menu(after_hours());
                let mut all = h.key('*');
                for _ in 0..MAX_STATUS_MISSES {
                    all.extend(h.done());
                    all.extend(h.keys("48210937#"));
                    h.flow.handle_ticket_status(h.now, answer.clone());
                    all.extend(h.drain());
                }
                all.extend(h.done());
                h.assert_over();
                heard.push(all);
                last = Some(h);
            }
            assert_eq!(heard[0], heard[1]);
            assert_eq!(
                heard[0][heard[0].len() - 3..],
                l(&["status-no-details", "goodbye", "HANGUP"])
            );
            last.expect("two calls")
        }

        fn over_the_lookup_limit_the_caller_is_asked_to_try_later() -> H {
            let mut h = at_after_hours_menu(after_hours());
            h.key('*');
            h.done();
            assert_eq!(h.keys("48210937#"), l(&["LOOKUP:48210937"]));
            h.flow.handle_ticket_status_refused(h.now);
            assert_eq!(h.drain(), l(&["status-try-later", "after-hours-menu"]));
            // A late answer to the refused lookup changes nothing.
            h.flow.handle_ticket_status(h.now, None);
            assert!(h.drain().is_empty());
            h.done();
            // The emergency can still be left.
            assert_eq!(h.key('1'), l(CONFIRM));
            h
        }

        fn three_status_misses_end_the_call() -> H {
            let mut h = at_main_menu(ctx());
            h.key('*');
            h.keys("11111111#");
            h.flow.handle_ticket_status(h.now, None);
            assert_eq!(h.drain(), l(&["status-no-details", "status-enter"]));
            assert_eq!(h.keys("12*#"), l(&["STOP", "status-unknown", "status-enter"]));
            h.done();
            h.keys("22222222#");
            // The store does not answer: a miss too.
            assert_eq!(h.wait_left(), secs(15));
            assert_eq!(h.expire(), l(&["status-unknown", "goodbye"]));
            assert_eq!(h.done(), l(&["HANGUP"]));
            h.assert_over();
            h
        }

        fn status_entry_timeouts_count_as_misses() -> H {
            let mut h = at_main_menu(ctx());
            h.key('*');
            h.done();
            assert_eq!(h.expire(), l(&["no-input", "status-enter"]));
            h.done();
            h.keys("48");
            assert_eq!(h.expire(), l(&["LOOKUP:48"]));
            h
        }

        fn a_lost_prompt_end_never_leaves_the_caller_in_silence() -> H {
            let mut h = at_main_menu(ctx());
            h.key('8');
            assert_eq!(h.wait_left(), PLAYBACK_GUARD);
            assert!(h.expire().is_empty());
            assert_eq!(h.wait_left(), secs(6));
            assert_eq!(h.expire(), l(&["no-input", "main-menu"]));
            h
        }

        fn stale_and_late_inputs_change_nothing() -> H {
            let mut h = at_main_menu(ctx());
            h.flow.handle_prompt_finished(h.now);
            h.flow.handle_bridge_answered(h.now);
            h.flow.handle_bridge_failed(h.now);
            h.flow.handle_ticket_created(h.now, "1".into());
            h.flow.handle_store_failed(h.now);
            h.flow.handle_ticket_status(h.now, None);
            h.recorded(1.0, RecordingEnd::Pound);
            h.flow.handle_timeout(h.now);
            assert!(h.drain().is_empty());
            assert!(!h.flow.is_connected());
            assert!(h.keys("xé\u{0}").is_empty());
            h.flow.start(h.now);
            assert!(h.drain().is_empty());
            h
        }
    }

    #[test]
    fn hang_up_at_every_step_ends_cleanly() {
        type Step = fn(&mut H);
        let steps: &[(&str, CallContext, Step, &[&str])] = &[
            ("language", ctx(), |_| {}, &[]),
            (
                "language wait",
                ctx(),
                |h| {
                    h.done();
                },
                &[],
            ),
            (
                "main menu",
                ctx(),
                |h| {
                    h.key('1');
                },
                &[],
            ),
            (
                "transfer prompt",
                ctx(),
                |h| {
                    h.key('1');
                    h.key('1');
                },
                &[],
            ),
            (
                "department ringing",
                ctx(),
                |h| {
                    h.key('1');
                    h.key('1');
                    h.done();
                },
                &["CANCEL-BRIDGE"],
            ),
            (
                "support ringing",
                ctx(),
                |h| {
                    h.key('1');
                    h.key('2');
                    h.done();
                },
                &["CANCEL-BRIDGE"],
            ),
            (
                "connected",
                ctx(),
                |h| {
                    h.key('1');
                    h.key('2');
                    h.done();
                    h.flow.handle_bridge_answered(h.now);
                },
                &[],
            ),
            (
                "after-hours menu",
                after_hours(),
                |h| {
                    h.key('1');
                    h.key('2');
                },
                &[],
            ),
            (
                "after-hours other",
                after_hours(),
                |h| {
                    h.keys("123");
                },
                &[],
            ),
            (
                "callback confirm",
                after_hours(),
                |h| {
                    h.keys("121");
                },
                &[],
            ),
            (
                "callback enter",
                hidden(),
                |h| {
                    h.keys("12151");
                },
                &[],
            ),
            (
                "message intro",
                after_hours(),
                |h| {
                    h.keys("1211");
                },
                &["TICKET"],
            ),
            (
                "awaiting the ticket",
                after_hours(),
                |h| {
                    h.keys("1211");
                    h.done();
                    h.recorded(4.0, RecordingEnd::Silence);
                },
                &[],
            ),
            (
                "readback",
                after_hours(),
                |h| {
                    h.keys("1211");
                    h.done();
                    h.recorded(4.0, RecordingEnd::Silence);
                    h.done();
                    h.ticket(TRACKING);
                },
                &[],
            ),
            (
                "status entry",
                ctx(),
                |h| {
                    h.keys("1*4");
                },
                &[],
            ),
            (
                "status lookup",
                ctx(),
                |h| {
                    h.keys("1*4#");
                },
                &[],
            ),
            (
                "goodbye",
                after_hours(),
                |h| {
                    h.keys("123");
                    h.done();
                    h.expire();
                },
                &[],
            ),
        ];
        for (name, c, walk, expected) in steps {
            let (mut h, _) = H::new(c.clone());
            walk(&mut h);
            h.drain();
            assert_eq!(h.hang_up(), l(expected), "{name}");
            h.assert_over();
            // Nothing after the end.
            assert!(h.keys("129#*").is_empty(), "{name}");
            h.flow.handle_prompt_finished(h.now);
            h.flow.handle_timeout(h.now + secs(1000));
            assert!(h.drain().is_empty(), "{name}");
        }
    }

    #[test]
    fn the_pending_voicemail_is_persisted_before_the_recording_starts() {
        let h = recording_s1();
        let persist = h
            .log
            .iter()
            .position(|a| matches!(a, FlowAction::PersistPendingVoicemail(_)));
        let record = h
            .log
            .iter()
            .position(|a| matches!(a, FlowAction::StartRecording { .. }));
        assert!(persist.unwrap() < record.unwrap());
    }

    #[test]
    fn times_and_durations_are_said_with_manifest_words() {
        let names = |lang, h, m| time_names(lang, h, m);
        assert_eq!(names(Lang::Fr, 14, 14), ["number-14", "hours", "number-14"]);
        assert_eq!(names(Lang::Fr, 9, 0), ["number-9", "hours"]);
        assert_eq!(
            names(Lang::En, 14, 5),
            ["number-2", "digit-0", "number-5", "p-m"]
        );
        assert_eq!(names(Lang::En, 0, 30), ["number-12", "number-30", "a-m"]);
        assert_eq!(names(Lang::En, 12, 0), ["number-12", "p-m"]);
        assert_eq!(names(Lang::En, 200, 200), ["number-11", "number-59", "p-m"]);
        let d = |m| duration_items(m);
        assert_eq!(
            d(30),
            [PromptItem::Number(30), PromptItem::Prompt("minutes")]
        );
        assert_eq!(
            d(60),
            [PromptItem::Number(60), PromptItem::Prompt("minutes")]
        );
        assert_eq!(
            d(150),
            [
                PromptItem::Number(2),
                PromptItem::Prompt("hours"),
                PromptItem::Number(30),
                PromptItem::Prompt("minutes"),
            ]
        );
        assert_eq!(d(0), [PromptItem::Number(0), PromptItem::Prompt("minutes")]);
    }

    #[test]
    fn items_resolve_to_language_prompts() {
        assert_eq!(
            resolve_all(
                Lang::En,
                &[
                    PromptItem::Prompt("goodbye"),
                    PromptItem::PromptIn(Lang::Fr, "language-choice"),
                    PromptItem::Digits("12".into()),
                    PromptItem::Number(7),
                    PromptItem::Announcement(Lang::En),
                    PromptItem::Time { hour: 8, minute: 0 },
                ]
            ),
            [
                PromptCue::named("en/goodbye"),
                PromptCue::named("fr/language-choice"),
                PromptCue::digits("en", "12"),
                PromptCue::named("en/number-7"),
                PromptCue::named("en/announcement"),
                PromptCue::named("en/number-8"),
                PromptCue::named("en/a-m"),
            ]
        );
    }

    /// Random walks: no panic, and unless the call is over or bridged there is always a
    /// deadline (the caller is never left in silence).
    #[test]
    fn random_calls_never_panic_nor_go_silent() {
        let mut rng = StdRng::seed_from_u64(611);
        let contexts = [
            ctx(),
            after_hours(),
            hidden(),
            CallContext {
                entry: Entry::ShortCode611,
                ..hidden()
            },
        ];
        for _ in 0..2000 {
            let (mut h, _) = H::new(contexts[rng.gen_range(0..contexts.len())].clone());
            for _ in 0..60 {
                match rng.gen_range(0..14) {
                    0..=4 => {
                        let k = b"0123456789*#A"[rng.gen_range(0..13)] as char;
                        h.flow.handle_key(h.now, k);
                    }
                    5 | 6 => h.flow.handle_prompt_finished(h.now),
                    7 => {
                        if let Some(t) = h.flow.poll_timeout() {
                            h.now = t;
                            h.flow.handle_timeout(t);
                        }
                    }
                    8 => h.flow.handle_bridge_failed(h.now),
                    9 => {
                        let ended_by = [
                            RecordingEnd::Pound,
                            RecordingEnd::Silence,
                            RecordingEnd::MaxLength,
                            RecordingEnd::HangUp,
                        ][rng.gen_range(0..4)];
                        h.flow.handle_recording_finished(
                            h.now,
                            RecordingOutcome {
                                seconds: 1.0,
                                speech_detected: false,
                                ended_by,
                            },
                        );
                    }
                    10 => h.flow.handle_ticket_created(h.now, "12345678".into()),
                    11 => h.flow.handle_store_failed(h.now),
                    12 => h.flow.handle_ticket_status(h.now, None),
                    _ => {
                        if rng.gen_ratio(1, 8) {
                            h.flow.handle_caller_hung_up(h.now)
                        } else {
                            h.flow.handle_bridge_answered(h.now)
                        }
                    }
                }
                h.drain();
                if !(h.flow.is_finished() || h.flow.is_connected()) {
                    assert!(
                        h.flow.poll_timeout().is_some_and(|t| t > h.now - secs(1)),
                        "silent: {:?}",
                        h.flow.state
                    );
                }
            }
            // One ticket at most per call, and only after its pending record.
            let tickets = h.tickets().len();
            assert!(tickets <= 1);
            if tickets == 1 {
                h.pending();
            }
        }
    }

    /// Every prompt any scenario played is in the manifest (or generated: digits, numbers,
    /// beep), in both languages.
    #[test]
    fn every_prompt_the_flow_plays_is_in_the_manifest() {
        let manifest: toml::Table = include_str!("../../../../prompts/manifest.toml")
            .parse()
            .expect("manifest parses");
        let known = |name: &str| {
            manifest.contains_key(name)
                || name == "beep"
                || name == "announcement"
                || name
                    .strip_prefix("digit-")
                    .is_some_and(|n| n.len() == 1 && n.bytes().all(|b| b.is_ascii_digit()))
                || name
                    .strip_prefix("number-")
                    .and_then(|n| n.parse::<u8>().ok())
                    .is_some_and(|n| n <= MAX_NUMBER)
        };
        let mut seen = std::collections::BTreeSet::new();
        for scenario in scenario::ALL {
            let h = scenario();
            for a in &h.log {
                let FlowAction::Play { items, .. } = a else {
                    continue;
                };
                for lang in [Lang::Fr, Lang::En] {
                    for r in resolve_all(lang, items) {
                        match r {
                            PromptCue::Named(n) => {
                                let (_, name) = n.split_once('/').expect("lang/name");
                                assert!(known(name), "{n} is not in prompts/manifest.toml");
                                seen.insert(name.to_string());
                            }
                            PromptCue::Digits { digits, .. } => {
                                assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits}")
                            }
                        }
                    }
                }
            }
        }
        // The walk covers the menus the flow has; a new prompt needs a scenario.
        for name in [
            "language-choice",
            "main-menu",
            "after-hours-menu",
            "callback-refused",
            "status-no-details",
            "technical-difficulty",
            "goodbye",
            "beep",
        ] {
            assert!(seen.contains(name), "no scenario plays {name}");
        }
    }

    /// What a main-menu key means, as the `[main-menu]` prompt says it in each language. A
    /// new action must be given its words here (the match is exhaustive).
    fn menu_meaning(action: MenuAction, lang: Lang) -> &'static str {
        let [fr, en] = match action {
            MenuAction::Transfer(Department::Sales) => ["ventes", "sales"],
            MenuAction::Transfer(Department::Orders) => ["commandes", "orders"],
            MenuAction::Transfer(Department::Billing) => ["facturation", "billing"],
            MenuAction::Transfer(Department::Porting) => ["transfert de numéros", "number porting"],
            MenuAction::Support => ["soutien technique", "technical support"],
            MenuAction::HoursAndContacts => ["heures", "hours"],
            MenuAction::Repeat => ["réécouter ce menu", "hear this menu again"],
            MenuAction::TicketStatus => ["numéro de suivi", "tracking number"],
        };
        match lang {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }

    /// Where the main-menu wording `text` disagrees with [`MAIN_MENU`]: a key the table has and
    /// says that the text does not offer with its meaning, a key the text offers that the table
    /// lacks (or does not say), a key said twice, a key the checker cannot read.
    fn menu_wording_problems(lang: Lang, text: &str) -> Vec<String> {
        let invite = match lang {
            Lang::Fr => "faites le ",
            Lang::En => "press ",
        };
        let mut problems = Vec::new();
        // The keys the text offers, each with its sentence.
        let mut offered: Vec<(char, &str)> = Vec::new();
        for sentence in text.split_terminator(". ").map(|s| s.trim_end_matches('.')) {
            let Some((_, after)) = sentence.split_once(invite) else {
                continue;
            };
            let mut chars = after.chars();
            match (chars.next(), chars.next()) {
                (Some(k), None) if k.is_ascii_digit() || k == '*' || k == '#' => {
                    offered.push((k, sentence))
                }
                _ => problems.push(format!("{lang}: cannot read the key in \"{sentence}\"")),
            }
        }
        // A key said some other way ("appuyez sur 6") is still offered.
        let keys_in_text = text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '*' || *c == '#')
            .count();
        if keys_in_text != offered.len() {
            problems.push(format!(
                "{lang}: the text names {keys_in_text} keys, {} as \"{invite}N\"",
                offered.len()
            ));
        }
        for (key, action) in MAIN_MENU {
            let said: Vec<&str> = offered
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, s)| *s)
                .collect();
            let meaning = menu_meaning(*action, lang);
            match (action.is_said(), said.as_slice()) {
                (true, [sentence]) => {
                    if !sentence.to_lowercase().contains(meaning) {
                        problems.push(format!(
                            "{lang}: key {key} is {action:?}, but the text says \"{sentence}\" \
                             (expected \"{meaning}\")"
                        ));
                    }
                }
                (true, []) => problems.push(format!(
                    "{lang}: key {key} ({action:?}) is not offered; say \"{meaning}\""
                )),
                (true, _) => problems.push(format!("{lang}: key {key} is offered more than once")),
                (false, []) => {}
                (false, _) => problems.push(format!(
                    "{lang}: key {key} ({action:?}) is offered, but the table does not say it"
                )),
            }
        }
        for (key, sentence) in &offered {
            if !MAIN_MENU.iter().any(|(k, _)| k == key) {
                problems.push(format!(
                    "{lang}: \"{sentence}\" offers key {key}, which the main menu does not take"
                ));
            }
        }
        problems
    }

    /// The main-menu prompt says every key of [`MAIN_MENU`] (but `*`) with its meaning, in
    /// both languages, and offers no other.
    #[test]
    fn the_main_menu_prompt_says_the_keys_of_the_table() {
        let manifest: toml::Table = include_str!("../../../../prompts/manifest.toml")
            .parse()
            .expect("manifest parses");
        let menu = manifest["main-menu"].as_table().expect("[main-menu]");
        for lang in [Lang::Fr, Lang::En] {
            let text = menu[lang.as_str()].as_str().expect("main-menu text");
            let problems = menu_wording_problems(lang, text);
            assert!(problems.is_empty(), "{problems:#?}");
            // The check bites: a key the table lacks, a key left out, a meaning changed.
            let six = format!(
                "{text} {}",
                match lang {
                    Lang::Fr => "Pour autre chose, faites le 6.",
                    Lang::En => "For anything else, press 6.",
                }
            );
            assert!(
                !menu_wording_problems(lang, &six).is_empty(),
                "6 went unseen"
            );
            let first_sentence_end = text.find(". ").expect("sentences") + 2;
            let no_sales = &text[first_sentence_end..];
            assert!(
                !menu_wording_problems(lang, no_sales).is_empty(),
                "1 left out went unseen"
            );
            let swapped = text.replacen(
                menu_meaning(MenuAction::Transfer(Department::Billing), lang),
                "x",
                1,
            );
            assert!(
                !menu_wording_problems(lang, &swapped).is_empty(),
                "4's meaning went unseen"
            );
        }
    }

    #[test]
    fn the_main_menu_table_has_each_key_once_and_every_department() {
        for (i, (key, _)) in MAIN_MENU.iter().enumerate() {
            assert!(
                !MAIN_MENU[..i].iter().any(|(k, _)| k == key),
                "key {key} twice in MAIN_MENU"
            );
        }
        let departments: Vec<Department> = menu_departments().collect();
        for d in [
            Department::Sales,
            Department::Orders,
            Department::Billing,
            Department::Porting,
        ] {
            assert!(departments.contains(&d), "{d:?} has no key");
        }
    }
}
