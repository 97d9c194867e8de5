//! A drill's scenario: the night to play against a running engine, read from TOML.
//!
//! Every time in the file is NIGHT time, what the night would be in reality; `time_scale` says
//! how much faster the runner plays it (60: 30 min of night last 30 s of wall time). Durations
//! are humantime: "0s", "90s", "25m", "2h30m". Offsets (`at`, `from`, `to`) count from the
//! night's start and must fall inside `length`. Array items are named from 0 in messages
//! (`calls[3]` is the fourth `[[calls]]`).
//!
//! ```toml
//! [night]
//! name = "quiet night"      # required: the report's title
//! length = "6h"             # required, at most 24h
//! time_scale = 60           # 1..=3600, default 1
//! ladder_levels = 4         # levels of the engine's ladder, the last is "the top"; default 4
//! s1_target = "30m"         # after-hours callback targets, default 30m and 60m
//! s2_target = "60m"
//! margin = "5m"             # the top must be paged by target - margin; default 5m
//!
//! [[technicians]]           # one per phone the drill plays
//! id = "tech-a"             # person id in the engine's roster, unique
//! number = "15145550901"    # the user the drill's phone answers (3-15 digits); the roster's
//!                           # phone for tech-a is "sip:15145550901@<--phones address>";
//!                           # default "19990000NN" (NN: 01 for the first technician)
//! level = 1                 # 1..=ladder_levels
//! phone = "answer"          # "answer" (default), "never" (rings out) or "busy"
//! answer_after = "8s"       # with "answer" only; default 5s
//! press = "1"               # with "answer" only: "1" (acknowledge, default), "2 then 1"
//!                           # (hear the voicemail, then acknowledge), "3" (acknowledge and be
//!                           # connected to the customer now), "ack-then-never-call-back",
//!                           # "nothing" (hang up without a key)
//!
//! [[calls]]
//! at = "12m"
//! severity = "S1"           # what the caller picks in the menu: "S1", "S2" or "S3"
//! lang = "fr"               # "fr" (default) or "en"
//! caller = "+15145550101"   # E.164, or "anonymous"
//! callable = true           # the engine may call the caller ID back ([ivr] callback_allow
//!                           # admits it: the caller confirms it with 1); false: the caller
//!                           # keys a number the trunk does not answer; default true
//! behaviour = "normal"      # "normal" (default), "hangs-up-before-tone",
//!                           # "hangs-up-during-message" or "silent"
//!
//! [[bursts]]                # many calls in one item: `count` calls evenly spaced in [from, to)
//! from = "0s"
//! to = "15m"
//! count = 200               # every call of the drill together: at most 10,000
//! severity = "S1"
//! lang = "fr"
//! caller_from = "+15146000000"  # the first caller; the next ones count up (or "anonymous")
//! callable = true
//! behaviour = "normal"
//!
//! [trunk]                   # the customer's phone when a technician presses 3
//! customer = "answer"       # "answer" (default) or "never"
//! answer_after = "5s"       # with "answer" only; default 5s
//!
//! [[smtp.outages]]          # the mail server's bad windows; [[webhook.outages]] likewise
//! from = "1h"
//! to = "2h"
//! mode = "down"             # "down" (refuses connections) or "5xx" (answers with errors)
//!
//! [[faults]]                # what happens to the engine itself
//! at = "4h"
//! kind = "kill"             # "kill" (kill -9 a node), "stop" (drain a node), "restart-postgres"
//! node = "a"                # "a" or "b", for "kill" and "stop" only
//! ```
//!
//! SMTP and webhook troubles live in their sections only, not in `[[faults]]`.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::lang::Lang;
use crate::triage::Severity;

/// Every call of a drill together, bursts expanded: the storm is 200, this is far beyond.
pub const MAX_CALLS: usize = 10_000;
/// A night longer than a day is not a night.
pub const MAX_NIGHT: Duration = Duration::from_secs(24 * 3600);
/// Beyond this a second of wall time holds over an hour of night: timers would blur.
pub const MAX_TIME_SCALE: u32 = 3600;
/// Levels of a ladder the drill may expect.
pub const MAX_LADDER_LEVELS: u32 = 20;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub night: NightPlan,
    pub technicians: Vec<Technician>,
    /// The `[[calls]]` as written (see [`Scenario::calls`] for every call, bursts included).
    pub listed_calls: Vec<Call>,
    pub bursts: Vec<Burst>,
    pub trunk: Trunk,
    pub smtp: Vec<Outage>,
    pub webhook: Vec<Outage>,
    pub faults: Vec<Fault>,
}

/// `[night]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NightPlan {
    pub name: String,
    pub length: Duration,
    pub time_scale: u32,
    pub ladder_levels: u32,
    pub s1_target: Duration,
    pub s2_target: Duration,
    pub margin: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician {
    pub id: String,
    /// The number the drill's phone answers for this person (digits): the engine's roster
    /// gives the person `phone = "sip:NUMBER@<the drill's phone address>"`. Default
    /// `19990000NN`, NN the technician's rank from 01.
    pub number: String,
    pub level: u32,
    pub phone: Phone,
}

/// What a technician's phone does when the engine pages it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phone {
    Answers { after: Duration, press: Press },
    NeverAnswers,
    Busy,
}

/// What a technician does once the page call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// "1": acknowledge (and call the customer back from the console).
    Acknowledge,
    /// "2 then 1": hear the voicemail, then acknowledge.
    HearThenAcknowledge,
    /// "3": acknowledge and be connected to the customer now.
    ConnectNow,
    /// Acknowledge, then never call back: the ladder must climb again.
    AcknowledgeNeverCallBack,
    /// Hang up without a key.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub at: Duration,
    pub severity: Severity,
    pub lang: Lang,
    pub caller: CallerId,
    pub callable: bool,
    pub behaviour: CallerBehaviour,
}

impl Call {
    /// Whether the caller gets as far as leaving a message (even a silent or cut one).
    pub fn leaves_message(&self) -> bool {
        self.behaviour != CallerBehaviour::HangsUpBeforeTone
    }

    /// An after-hours S1/S2 caller who left a message must end up in a ticket (every drill
    /// call is after hours: the drill plays a night).
    pub fn expects_ticket(&self) -> bool {
        self.severity != Severity::S3 && self.leaves_message()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// E.164: "+" and up to 15 digits.
    Number(String),
    Anonymous,
}

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerId::Number(n) => f.write_str(n),
            CallerId::Anonymous => f.write_str("anonymous"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerBehaviour {
    Normal,
    HangsUpBeforeTone,
    HangsUpDuringMessage,
    /// Stays on the line and says nothing.
    Silent,
}

/// `[[bursts]]`: `count` calls evenly spaced in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    pub from: Duration,
    pub to: Duration,
    pub count: u32,
    pub severity: Severity,
    pub lang: Lang,
    /// The first caller; the others count up from it.
    pub caller_from: CallerId,
    pub callable: bool,
    pub behaviour: CallerBehaviour,
}

impl Burst {
    /// The burst's calls: call `i` at `from + (to - from) * i / count`, caller `caller_from + i`.
    pub fn expand(&self) -> Vec<Call> {
        let span = self.to.saturating_sub(self.from);
        let count = self.count.max(1);
        (0..self.count)
            .map(|i| Call {
                at: self.from + span.mul_f64(f64::from(i) / f64::from(count)),
                severity: self.severity,
                lang: self.lang,
                caller: match &self.caller_from {
                    CallerId::Anonymous => CallerId::Anonymous,
                    CallerId::Number(first) => CallerId::Number(numbered(first, i)),
                },
                callable: self.callable,
                behaviour: self.behaviour,
            })
            .collect()
    }
}

/// "+33610000000" counted up by `i`, keeping its width (validation made sure it fits).
fn numbered(first: &str, i: u32) -> String {
    let digits = first.trim_start_matches('+');
    match digits.parse::<u64>() {
        Ok(n) => format!("+{:0width$}", n + u64::from(i), width = digits.len()),
        Err(_) => first.to_string(),
    }
}

/// `[trunk]`: the customer's phone when a technician presses 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trunk {
    Answers { after: Duration },
    NeverAnswers,
}

impl Default for Trunk {
    fn default() -> Self {
        Trunk::Answers {
            after: DEFAULT_ANSWER_AFTER,
        }
    }
}

const DEFAULT_ANSWER_AFTER: Duration = Duration::from_secs(5);

/// A window when the SMTP server or the webhook receiver misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub from: Duration,
    pub to: Duration,
    pub mode: OutageMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageMode {
    /// Refuses connections.
    Down,
    /// Accepts them and answers 5xx.
    ServerError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub at: Duration,
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// kill -9 the node.
    Kill(Node),
    /// Drain the node (SIGTERM, graceful stop).
    Stop(Node),
    RestartPostgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    A,
    B,
}

impl Scenario {
    /// Parses and validates; every problem found is reported with its line.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError {
            issues: vec![ScenarioIssue {
                line: e.span().map(|s| line_of(text, s.start)),
                message: e.message().trim().to_string(),
            }],
        })?;
        let mut check = Check {
            text,
            issues: Vec::new(),
        };
        let scenario = check.scenario(&raw);
        match scenario {
            Some(s) if check.issues.is_empty() => Ok(s),
            _ => {
                check.issues.sort_by_key(|i| i.line);
                Err(ScenarioError {
                    issues: check.issues,
                })
            }
        }
    }

    /// Every call of the night, bursts expanded, ordered by time (listed calls first at a tie).
    pub fn calls(&self) -> Vec<Call> {
        let mut all = self.listed_calls.clone();
        for b in &self.bursts {
            all.extend(b.expand());
        }
        all.sort_by_key(|c| c.at);
        all
    }

    /// How long `night` of night time lasts on the wall clock.
    pub fn wall(&self, night: Duration) -> Duration {
        night / self.night.time_scale.max(1)
    }

    /// The night time `wall` of wall-clock time stands for (the reverse of [`Scenario::wall`]).
    pub fn night_time(&self, wall: Duration) -> Duration {
        wall.checked_mul(self.night.time_scale.max(1))
            .unwrap_or(Duration::MAX)
    }
}

/// Problems in a scenario file, each with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", show_issues(.issues))]
pub struct ScenarioError {
    pub issues: Vec<ScenarioIssue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioIssue {
    /// 1-based; None when the parser could not place it.
    pub line: Option<usize>,
    /// `calls[3].severity = "S4": expected "S1", "S2" or "S3"`
    pub message: String,
}

impl fmt::Display for ScenarioIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn show_issues(issues: &[ScenarioIssue]) -> String {
    issues
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

// The file as written. Values that validation may refuse keep their span, for the line.

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    night: RawNight,
    #[serde(default)]
    technicians: Vec<RawTechnician>,
    #[serde(default)]
    calls: Vec<RawCall>,
    #[serde(default)]
    bursts: Vec<RawBurst>,
    trunk: Option<RawTrunk>,
    smtp: Option<RawService>,
    webhook: Option<RawService>,
    #[serde(default)]
    faults: Vec<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNight {
    name: S<String>,
    length: S<String>,
    time_scale: Option<S<i64>>,
    ladder_levels: Option<S<i64>>,
    s1_target: Option<S<String>>,
    s2_target: Option<S<String>>,
    margin: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTechnician {
    id: S<String>,
    number: Option<S<String>>,
    level: S<i64>,
    phone: Option<S<String>>,
    answer_after: Option<S<String>>,
    press: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    at: S<String>,
    severity: S<String>,
    lang: Option<S<String>>,
    caller: S<String>,
    callable: Option<bool>,
    behaviour: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBurst {
    from: S<String>,
    to: S<String>,
    count: S<i64>,
    severity: S<String>,
    lang: Option<S<String>>,
    caller_from: S<String>,
    callable: Option<bool>,
    behaviour: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    customer: Option<S<String>>,
    answer_after: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    #[serde(default)]
    outages: Vec<RawOutage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutage {
    from: S<String>,
    to: S<String>,
    mode: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    at: S<String>,
    kind: S<String>,
    node: Option<S<String>>,
}

const SEVERITIES: &[(&str, Severity)] = &[
    ("S1", Severity::S1),
    ("S2", Severity::S2),
    ("S3", Severity::S3),
];
const LANGS: &[(&str, Lang)] = &[("fr", Lang::Fr), ("en", Lang::En)];
const BEHAVIOURS: &[(&str, CallerBehaviour)] = &[
    ("normal", CallerBehaviour::Normal),
    ("hangs-up-before-tone", CallerBehaviour::HangsUpBeforeTone),
    (
        "hangs-up-during-message",
        CallerBehaviour::HangsUpDuringMessage,
    ),
    ("silent", CallerBehaviour::Silent),
];
const PRESSES: &[(&str, Press)] = &[
    ("1", Press::Acknowledge),
    ("2 then 1", Press::HearThenAcknowledge),
    ("3", Press::ConnectNow),
    ("ack-then-never-call-back", Press::AcknowledgeNeverCallBack),
    ("nothing", Press::Nothing),
];
#[derive(Clone, Copy)]
enum PhoneKind {
    Answer,
    Never,
    Busy,
}
const PHONES: &[(&str, PhoneKind)] = &[
    ("answer", PhoneKind::Answer),
    ("never", PhoneKind::Never),
    ("busy", PhoneKind::Busy),
];
const CUSTOMERS: &[(&str, bool)] = &[("answer", true), ("never", false)];
const MODES: &[(&str, OutageMode)] =
    &[("down", OutageMode::Down), ("5xx", OutageMode::ServerError)];
#[derive(Clone, Copy)]
enum FaultName {
    Kill,
    Stop,
    RestartPostgres,
}
const FAULTS: &[(&str, FaultName)] = &[
    ("kill", FaultName::Kill),
    ("stop", FaultName::Stop),
    ("restart-postgres", FaultName::RestartPostgres),
];
const NODES: &[(&str, Node)] = &[("a", Node::A), ("b", Node::B)];

/// Validation: collects every issue, each with its line.
struct Check<'t> {
    text: &'t str,
    issues: Vec<ScenarioIssue>,
}

impl Check<'_> {
    fn fail(&mut self, span: Range<usize>, message: String) {
        self.issues.push(ScenarioIssue {
            line: Some(line_of(self.text, span.start)),
            message,
        });
    }

    fn choice<T: Copy>(&mut self, v: &S<String>, key: &str, options: &[(&str, T)]) -> Option<T> {
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v.get_ref()) {
            return Some(*t);
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let expected = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        self.fail(
            v.span(),
            format!(
                "{key} = \"{}\": expected {expected}",
                v.get_ref().escape_debug()
            ),
        );
        None
    }

    fn choice_or<T: Copy>(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        match v {
            Some(v) => self.choice(v, key, options),
            None => Some(default),
        }
    }

    fn duration(&mut self, v: &S<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if d <= MAX_NIGHT => Some(d),
            Ok(_) => {
                self.fail(
                    v.span(),
                    format!(
                        "{key} = \"{}\": longer than a day; a drill plays one night",
                        v.get_ref().escape_debug()
                    ),
                );
                None
            }
            Err(e) => {
                self.fail(
                    v.span(),
                    format!(
                        "{key} = \"{}\": not a duration ({e}); write e.g. \"0s\", \"90s\", \"25m\" or \"2h30m\"",
                        v.get_ref().escape_debug()
                    ),
                );
                None
            }
        }
    }

    fn duration_or(
        &mut self,
        v: &Option<S<String>>,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        match v {
            Some(v) => self.duration(v, key),
            None => Some(default),
        }
    }

    /// A night offset: a duration before the night's end (`inclusive`: at the end allowed).
    fn offset(
        &mut self,
        v: &S<String>,
        key: &str,
        length: Option<Duration>,
        inclusive: bool,
    ) -> Option<Duration> {
        let d = self.duration(v, key)?;
        let length = length?;
        let outside = if inclusive { d > length } else { d >= length };
        if outside {
            self.fail(
                v.span(),
                format!(
                    "{key} = \"{}\": after the night's end ({}); make it shorter or lengthen night.length",
                    v.get_ref().escape_debug(),
                    show(length)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn integer(&mut self, v: &S<i64>, key: &str, range: Range<i64>, fix: &str) -> Option<u32> {
        let n = *v.get_ref();
        if range.contains(&n) {
            u32::try_from(n).ok()
        } else {
            self.fail(v.span(), format!("{key} = {n}: {fix}"));
            None
        }
    }

    fn caller(&mut self, v: &S<String>, key: &str, room: u32) -> Option<CallerId> {
        let s = v.get_ref().trim();
        if s == "anonymous" {
            return Some(CallerId::Anonymous);
        }
        let digits = s.strip_prefix('+').unwrap_or("");
        let e164 = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !e164 {
            self.fail(
                v.span(),
                format!(
                    "{key} = \"{}\": expected an E.164 number such as \"+33612345678\" or \"anonymous\"",
                    v.get_ref().escape_debug()
                ),
            );
            return None;
        }
        // A burst counts callers up from this one: the last must keep the width.
        let last = digits.parse::<u64>().ok().map(|n| n + u64::from(room));
        if last.is_none_or(|l| l.to_string().len() != digits.len()) {
            self.fail(
                v.span(),
                format!(
                    "{key} = \"{s}\": counting {room} callers up from it leaves E.164; start lower (e.g. \"+33610000000\")"
                ),
            );
            return None;
        }
        Some(CallerId::Number(s.to_string()))
    }

    fn window(
        &mut self,
        from: &S<String>,
        to: &S<String>,
        key: &str,
        length: Option<Duration>,
    ) -> Option<(Duration, Duration)> {
        let f = self.offset(from, &format!("{key}.from"), length, false);
        let t = self.offset(to, &format!("{key}.to"), length, true);
        let (f, t) = (f?, t?);
        if f >= t {
            self.fail(
                to.span(),
                format!(
                    "{key}.to = \"{}\": not after from = \"{}\"; the window must end after it starts",
                    to.get_ref().escape_debug(),
                    from.get_ref().escape_debug()
                ),
            );
            return None;
        }
        Some((f, t))
    }

    fn scenario(&mut self, raw: &RawScenario) -> Option<Scenario> {
        let (night, length, levels) = self.night(&raw.night);

        let mut technicians = Vec::new();
        let mut ids = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for (i, t) in raw.technicians.iter().enumerate() {
            let key = format!("technicians[{i}]");
            let id = t.id.get_ref().trim();
            if id.is_empty() {
                self.fail(
                    t.id.span(),
                    format!("{key}.id is empty: give the person id of the engine's roster"),
                );
            } else if !ids.insert(id.to_string()) {
                self.fail(
                    t.id.span(),
                    format!(
                        "{key}.id = \"{}\": already used by another technician; ids are unique",
                        id.escape_debug()
                    ),
                );
            }
            let top = i64::from(levels.unwrap_or(MAX_LADDER_LEVELS));
            let level = self.integer(
                &t.level,
                &format!("{key}.level"),
                1..top + 1,
                &format!("expected a ladder level from 1 to {top} (night.ladder_levels)"),
            );
            let number = match &t.number {
                None => format!("19990000{:02}", i + 1),
                Some(n) => {
                    let digits = n.get_ref().trim();
                    if !(3..=15).contains(&digits.len())
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        self.fail(
                            n.span(),
                            format!(
                                "{key}.number = \"{}\": expected 3 to 15 digits (the user the drill's phone answers)",
                                digits.escape_debug()
                            ),
                        );
                    } else if !numbers.insert(digits.to_string()) {
                        self.fail(
                            n.span(),
                            format!("{key}.number = \"{digits}\": already another technician's"),
                        );
                    }
                    digits.to_string()
                }
            };
            if let Some(mut t) = self.technician(t, &key, id, level) {
                t.number = number;
                technicians.push(t);
            }
        }

        let mut calls = Vec::new();
        for (i, c) in raw.calls.iter().enumerate() {
            let key = format!("calls[{i}]");
            let at = self.offset(&c.at, &format!("{key}.at"), length, false);
            let severity = self.choice(&c.severity, &format!("{key}.severity"), SEVERITIES);
            let lang = self.choice_or(&c.lang, &format!("{key}.lang"), LANGS, Lang::Fr);
            let caller = self.caller(&c.caller, &format!("{key}.caller"), 0);
            let behaviour = self.choice_or(
                &c.behaviour,
                &format!("{key}.behaviour"),
                BEHAVIOURS,
                CallerBehaviour::Normal,
            );
            if let (Some(at), Some(severity), Some(lang), Some(caller), Some(behaviour)) =
                (at, severity, lang, caller, behaviour)
            {
                calls.push(Call {
                    at,
                    severity,
                    lang,
                    caller,
                    callable: c.callable.unwrap_or(true),
                    behaviour,
                });
            }
        }

        let mut bursts = Vec::new();
        let mut total = raw.calls.len();
        for (i, b) in raw.bursts.iter().enumerate() {
            let key = format!("bursts[{i}]");
            let window = self.window(&b.from, &b.to, &key, length);
            let count = self.integer(
                &b.count,
                &format!("{key}.count"),
                1..MAX_CALLS as i64 + 1,
                &format!("expected 1 to {MAX_CALLS} calls"),
            );
            if let Some(n) = count {
                total += n as usize;
                if total > MAX_CALLS {
                    self.fail(
                        b.count.span(),
                        format!("{key}.count = {n}: the drill would place {total} calls; at most {MAX_CALLS} in all"),
                    );
                }
            }
            let severity = self.choice(&b.severity, &format!("{key}.severity"), SEVERITIES);
            let lang = self.choice_or(&b.lang, &format!("{key}.lang"), LANGS, Lang::Fr);
            let caller = self.caller(
                &b.caller_from,
                &format!("{key}.caller_from"),
                count.unwrap_or(1).saturating_sub(1),
            );
            let behaviour = self.choice_or(
                &b.behaviour,
                &format!("{key}.behaviour"),
                BEHAVIOURS,
                CallerBehaviour::Normal,
            );
            if let (
                Some((from, to)),
                Some(count),
                Some(severity),
                Some(lang),
                Some(caller),
                Some(behaviour),
            ) = (window, count, severity, lang, caller, behaviour)
            {
                bursts.push(Burst {
                    from,
                    to,
                    count,
                    severity,
                    lang,
                    caller_from: caller,
                    callable: b.callable.unwrap_or(true),
                    behaviour,
                });
            }
        }

        let trunk = match &raw.trunk {
            None => Some(Trunk::default()),
            Some(t) => self.trunk(t),
        };
        let smtp = self.outages(raw.smtp.as_ref(), "smtp", length);
        let webhook = self.outages(raw.webhook.as_ref(), "webhook", length);

        let mut faults = Vec::new();
        for (i, f) in raw.faults.iter().enumerate() {
            let key = format!("faults[{i}]");
            let at = self.offset(&f.at, &format!("{key}.at"), length, false);
            let kind = self.fault(f, &key);
            if let (Some(at), Some(kind)) = (at, kind) {
                faults.push(Fault { at, kind });
            }
        }
        faults.sort_by_key(|f| f.at);

        Some(Scenario {
            night: night?,
            technicians,
            listed_calls: calls,
            bursts,
            trunk: trunk?,
            smtp: smtp?,
            webhook: webhook?,
            faults,
        })
    }

    /// The plan if valid, and the length and ladder levels if those are (to check the rest
    /// against them even when another `[night]` key is wrong).
    fn night(&mut self, n: &RawNight) -> (Option<NightPlan>, Option<Duration>, Option<u32>) {
        let name = n.name.get_ref().trim().to_string();
        if name.is_empty() {
            self.fail(
                n.name.span(),
                "night.name is empty: name the night (the report's title)".into(),
            );
        }
        let length = self.duration(&n.length, "night.length");
        if length == Some(Duration::ZERO) {
            self.fail(
                n.length.span(),
                "night.length = \"0s\": a night lasts; write e.g. \"6h\"".into(),
            );
        }
        let time_scale = match &n.time_scale {
            Some(v) => self.integer(
                v,
                "night.time_scale",
                1..i64::from(MAX_TIME_SCALE) + 1,
                &format!("expected an integer from 1 (real time) to {MAX_TIME_SCALE}, e.g. 60"),
            ),
            None => Some(1),
        };
        let ladder_levels = match &n.ladder_levels {
            Some(v) => self.integer(
                v,
                "night.ladder_levels",
                1..i64::from(MAX_LADDER_LEVELS) + 1,
                &format!("expected the engine's number of ladder levels, 1 to {MAX_LADDER_LEVELS}"),
            ),
            None => Some(4),
        };
        let s1_target = self.duration_or(
            &n.s1_target,
            "night.s1_target",
            Duration::from_secs(30 * 60),
        );
        let s2_target = self.duration_or(
            &n.s2_target,
            "night.s2_target",
            Duration::from_secs(60 * 60),
        );
        let margin = self.duration_or(&n.margin, "night.margin", Duration::from_secs(5 * 60));
        for (key, v, t) in [
            ("night.s1_target", &n.s1_target, s1_target),
            ("night.s2_target", &n.s2_target, s2_target),
        ] {
            if let (Some(t), Some(m)) = (t, margin) {
                if t <= m {
                    // A default target is at fault only through the margin: point there.
                    let span = v
                        .as_ref()
                        .or(n.margin.as_ref())
                        .map_or(n.name.span(), |v| v.span());
                    self.fail(
                        span,
                        format!(
                            "{key} ({}) is not longer than night.margin ({}): the top could never be paged in time; shorten the margin",
                            show(t),
                            show(m)
                        ),
                    );
                }
            }
        }
        let length = length.filter(|l| !l.is_zero());
        let plan = (|| {
            Some(NightPlan {
                name: Some(name).filter(|n| !n.is_empty())?,
                length: length?,
                time_scale: time_scale?,
                ladder_levels: ladder_levels?,
                s1_target: s1_target?,
                s2_target: s2_target?,
                margin: margin?,
            })
        })();
        (plan, length, ladder_levels)
    }

    fn technician(
        &mut self,
        t: &RawTechnician,
        key: &str,
        id: &str,
        level: Option<u32>,
    ) -> Option<Technician> {
        let kind = self.choice_or(&t.phone, &format!("{key}.phone"), PHONES, PhoneKind::Answer)?;
        let phone = match kind {
            PhoneKind::Answer => Phone::Answers {
                after: self.duration_or(
                    &t.answer_after,
                    &format!("{key}.answer_after"),
                    DEFAULT_ANSWER_AFTER,
                )?,
                press: self.choice_or(
                    &t.press,
                    &format!("{key}.press"),
                    PRESSES,
                    Press::Acknowledge,
                )?,
            },
            PhoneKind::Never | PhoneKind::Busy => {
                for (v, name) in [(&t.answer_after, "answer_after"), (&t.press, "press")] {
                    if let Some(v) = v {
                        self.fail(
                            v.span(),
                            format!("{key}.{name}: this phone never answers; remove {name} or write phone = \"answer\""),
                        );
                    }
                }
                if matches!(kind, PhoneKind::Never) {
                    Phone::NeverAnswers
                } else {
                    Phone::Busy
                }
            }
        };
        Some(Technician {
            id: id.to_string(),
            number: String::new(),
            level: level?,
            phone,
        })
    }

    fn trunk(&mut self, t: &RawTrunk) -> Option<Trunk> {
        let answers = self.choice_or(&t.customer, "trunk.customer", CUSTOMERS, true)?;
        if answers {
            let after =
                self.duration_or(&t.answer_after, "trunk.answer_after", DEFAULT_ANSWER_AFTER)?;
            return Some(Trunk::Answers { after });
        }
        if let Some(v) = &t.answer_after {
            self.fail(
                v.span(),
                "trunk.answer_after: the customer never answers; remove it or write customer = \"answer\"".into(),
            );
            return None;
        }
        Some(Trunk::NeverAnswers)
    }

    fn outages(
        &mut self,
        s: Option<&RawService>,
        section: &str,
        length: Option<Duration>,
    ) -> Option<Vec<Outage>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, o) in s
            .map(|s| s.outages.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let key = format!("{section}.outages[{i}]");
            let window = self.window(&o.from, &o.to, &key, length);
            let mode = self.choice(&o.mode, &format!("{key}.mode"), MODES);
            match (window, mode) {
                (Some((from, to)), Some(mode)) => out.push(Outage { from, to, mode }),
                _ => ok = false,
            }
        }
        out.sort_by_key(|o| o.from);
        ok.then_some(out)
    }

    fn fault(&mut self, f: &RawFault, key: &str) -> Option<FaultKind> {
        let kind = self.choice(&f.kind, &format!("{key}.kind"), FAULTS)?;
        let node = match &f.node {
            Some(n) => Some(self.choice(n, &format!("{key}.node"), NODES)?),
            None => None,
        };
        match (kind, node) {
            (FaultName::Kill, Some(n)) => Some(FaultKind::Kill(n)),
            (FaultName::Stop, Some(n)) => Some(FaultKind::Stop(n)),
            (FaultName::RestartPostgres, None) => Some(FaultKind::RestartPostgres),
            (FaultName::Kill | FaultName::Stop, None) => {
                self.fail(
                    f.kind.span(),
                    format!(
                        "{key}.kind = \"{}\": which node? add node = \"a\" or \"b\"",
                        f.kind.get_ref()
                    ),
                );
                None
            }
            (FaultName::RestartPostgres, Some(_)) => {
                let span = f.node.as_ref().map(|n| n.span()).unwrap_or(f.kind.span());
                self.fail(
                    span,
                    format!("{key}.node: restart-postgres concerns no node; remove node"),
                );
                None
            }
        }
    }
}

/// "2h30m" for messages.
fn show(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: &str = include_str!("../../../../drills/quiet-night.toml");
    const BAD: &str = include_str!("../../../../drills/bad-night.toml");
    const STORM: &str = include_str!("../../../../drills/storm.toml");

    fn parse(text: &str) -> Scenario {
        match Scenario::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> String {
        match Scenario::parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn technicians_have_numbers_for_the_drills_phones() {
        let ok = Scenario::parse(
            "[night]\nname = \"n\"\nlength = \"1h\"\n\n[[technicians]]\nid = \"a\"\nlevel = 1\n\n[[technicians]]\nid = \"b\"\nlevel = 2\nnumber = \"15145550902\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let numbers: Vec<&str> = ok.technicians.iter().map(|t| t.number.as_str()).collect();
        assert_eq!(numbers, ["1999000001", "15145550902"]);
        let err = Scenario::parse(
            "[night]\nname = \"n\"\nlength = \"1h\"\n\n[[technicians]]\nid = \"a\"\nlevel = 1\nnumber = \"sip:x\"\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("line 8: technicians[0].number = \"sip:x\": expected 3 to 15 digits"),
            "{err}"
        );
    }

    #[test]
    fn the_quiet_night_has_a_few_calls_and_technicians_who_answer() {
        let s = parse(QUIET);
        assert_eq!(s.night.time_scale, 60);
        let calls = s.calls();
        assert!((3..=10).contains(&calls.len()), "{}", calls.len());
        for sev in [Severity::S1, Severity::S2, Severity::S3] {
            assert!(calls.iter().any(|c| c.severity == sev), "{sev}");
        }
        assert!(calls.iter().any(|c| c.lang == Lang::En));
        let presses: Vec<Press> = s
            .technicians
            .iter()
            .filter_map(|t| match t.phone {
                Phone::Answers { press, .. } => Some(press),
                _ => None,
            })
            .collect();
        for p in [
            Press::Acknowledge,
            Press::HearThenAcknowledge,
            Press::ConnectNow,
        ] {
            assert!(presses.contains(&p), "{p:?}");
        }
        assert!(s.faults.is_empty() && s.smtp.is_empty());
    }

    #[test]
    fn the_bad_night_has_a_silent_phone_a_mail_outage_a_kill_and_ten_s1_in_ten_minutes() {
        let s = parse(BAD);
        assert_eq!(s.night.time_scale, 60);
        let calls = s.calls();
        assert!(calls.len() >= 12, "{}", calls.len());
        assert!(s.technicians.iter().any(|t| t.phone == Phone::NeverAnswers));
        assert!(s
            .smtp
            .iter()
            .any(|o| o.mode == OutageMode::Down && o.to - o.from >= 60 * MIN));
        assert!(s
            .faults
            .iter()
            .any(|f| matches!(f.kind, FaultKind::Kill(_))));
        // Ten S1 within some ten minutes.
        let s1: Vec<Duration> = calls
            .iter()
            .filter(|c| c.severity == Severity::S1)
            .map(|c| c.at)
            .collect();
        assert!(s1.windows(10).any(|w| w[9] - w[0] <= 10 * MIN), "{s1:?}");
    }

    #[test]
    fn the_storm_expands_to_200_calls_inside_15_minutes() {
        let s = parse(STORM);
        assert_eq!(s.night.time_scale, 60);
        let calls = s.calls();
        assert_eq!(calls.len(), 200);
        assert!(calls.iter().all(|c| c.at < 15 * MIN));
        let callers: BTreeSet<String> = calls.iter().map(|c| c.caller.to_string()).collect();
        assert!(callers.len() > 150, "numbered callers: {}", callers.len());
        assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    }

    const MINIMAL: &str = "[night]\nname = \"n\"\nlength = \"6h\"\n";

    #[test]
    fn defaults_are_the_guides_targets_and_real_time() {
        let s = parse(MINIMAL);
        assert_eq!(s.night.time_scale, 1);
        assert_eq!(s.night.ladder_levels, 4);
        assert_eq!(s.night.s1_target, 30 * MIN);
        assert_eq!(s.night.s2_target, 60 * MIN);
        assert_eq!(s.night.margin, 5 * MIN);
        assert_eq!(s.trunk, Trunk::default());
    }

    #[test]
    fn bursts_are_evenly_spaced_with_numbered_callers() {
        let text = format!(
            "{MINIMAL}[[bursts]]\nfrom = \"10m\"\nto = \"20m\"\ncount = 4\nseverity = \"S2\"\ncaller_from = \"+33610000098\"\n"
        );
        let calls = parse(&text).calls();
        let at: Vec<u64> = calls.iter().map(|c| c.at.as_secs()).collect();
        assert_eq!(at, [600, 750, 900, 1050]);
        let callers: Vec<String> = calls.iter().map(|c| c.caller.to_string()).collect();
        assert_eq!(
            callers,
            [
                "+33610000098",
                "+33610000099",
                "+33610000100",
                "+33610000101"
            ]
        );
        assert!(calls
            .iter()
            .all(|c| c.severity == Severity::S2 && c.callable));
    }

    #[test]
    fn wall_time_is_night_time_divided_by_the_scale() {
        let mut s = parse(MINIMAL);
        s.night.time_scale = 60;
        assert_eq!(s.wall(30 * MIN), Duration::from_secs(30));
        assert_eq!(s.night_time(Duration::from_secs(30)), 30 * MIN);
        assert_eq!(s.night_time(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_bad_severity_names_its_line_key_and_choices() {
        let text = format!(
            "{MINIMAL}\n[[calls]]\nat = \"1m\"\nseverity = \"S1\"\ncaller = \"anonymous\"\n\n[[calls]]\nat = \"2m\"\nseverity = \"S4\"\ncaller = \"anonymous\"\n"
        );
        assert_eq!(
            err(&text),
            "line 12: calls[1].severity = \"S4\": expected \"S1\", \"S2\" or \"S3\""
        );
    }

    #[test]
    fn every_problem_is_reported_on_its_line() {
        let text = "[night]\nname = \"n\"\nlength = \"2h\"\ntime_scale = 0\n\n\
            [[technicians]]\nid = \"t\"\nlevel = 5\n\n\
            [[technicians]]\nid = \"t\"\nlevel = 1\nphone = \"never\"\npress = \"1\"\n\n\
            [[calls]]\nat = \"3h\"\nseverity = \"S1\"\ncaller = \"0612\"\n\n\
            [[smtp.outages]]\nfrom = \"1h\"\nto = \"30m\"\nmode = \"down\"\n\n\
            [[faults]]\nat = \"1h\"\nkind = \"kill\"\n";
        let e = err(text);
        let lines: Vec<&str> = e.lines().collect();
        let want = [
            "line 4: night.time_scale = 0",
            "line 8: technicians[0].level = 5: expected a ladder level from 1 to 4",
            "line 11: technicians[1].id = \"t\": already used",
            "line 14: technicians[1].press: this phone never answers",
            "line 17: calls[0].at = \"3h\": after the night's end (2h)",
            "line 19: calls[0].caller = \"0612\": expected an E.164 number",
            "line 23: smtp.outages[0].to = \"30m\": not after from = \"1h\"",
            "line 28: faults[0].kind = \"kill\": which node?",
        ];
        assert_eq!(lines.len(), want.len(), "{e}");
        for (l, w) in lines.iter().zip(want) {
            assert!(l.starts_with(w), "{l}\n  wanted {w}...\n{e}");
        }
    }

    #[test]
    fn unknown_keys_and_syntax_errors_name_their_line() {
        let e = err(&format!(
            "{MINIMAL}\n[trunk]\ncustomer = \"answer\"\nring = 3\n"
        ));
        assert!(e.starts_with("line 7: unknown field `ring`"), "{e}");
        let e = err("[night]\nname = \"n\"\nlength = 6h\n");
        assert!(e.starts_with("line 3: "), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[[calls]]\nat = \"1m\"\nseverity = \"S1\"\n"
        ));
        assert!(e.contains("missing field `caller`"), "{e}");
        assert!(e.starts_with("line 5: "), "{e}");
        let e = err("[[calls]]\nat = \"1m\"\nseverity = \"S1\"\ncaller = \"anonymous\"\n");
        assert!(e.contains("missing field `night`"), "{e}");
        let e = err(&format!("{MINIMAL}length2 = \"1h\"\n"));
        assert!(e.contains("unknown field `length2`"), "{e}");
    }

    #[test]
    fn durations_and_counts_are_bounded() {
        let e = err("[night]\nname = \"n\"\nlength = \"30h\"\n");
        assert!(
            e.starts_with("line 3: night.length = \"30h\": longer than a day"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}[[bursts]]\nfrom = \"0s\"\nto = \"1h\"\ncount = 6000\nseverity = \"S1\"\ncaller_from = \"anonymous\"\n\
             [[bursts]]\nfrom = \"0s\"\nto = \"1h\"\ncount = 6000\nseverity = \"S1\"\ncaller_from = \"anonymous\"\n"
        ));
        assert!(
            e.contains("bursts[1].count = 6000: the drill would place 12000 calls"),
            "{e}"
        );
        let e = err(&format!(
            "{MINIMAL}[[bursts]]\nfrom = \"0s\"\nto = \"1h\"\ncount = 20\nseverity = \"S1\"\ncaller_from = \"+999999999990\"\n"
        ));
        assert!(
            e.contains("counting 19 callers up from it leaves E.164"),
            "{e}"
        );
        let e = err("[night]\nname = \"n\"\nlength = \"6h\"\nmargin = \"30m\"\n");
        assert!(
            e.starts_with("line 4: night.s1_target (30m) is not longer than night.margin (30m)"),
            "{e}"
        );
    }

    #[test]
    fn faults_name_a_node_only_when_they_concern_one() {
        let ok = parse(&format!(
            "{MINIMAL}[[faults]]\nat = \"4h\"\nkind = \"restart-postgres\"\n[[faults]]\nat = \"2h\"\nkind = \"stop\"\nnode = \"b\"\n"
        ));
        assert_eq!(
            ok.faults.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FaultKind::Stop(Node::B), FaultKind::RestartPostgres]
        );
        let e = err(&format!(
            "{MINIMAL}[[faults]]\nat = \"4h\"\nkind = \"restart-postgres\"\nnode = \"a\"\n"
        ));
        assert!(
            e.contains("faults[0].node: restart-postgres concerns no node"),
            "{e}"
        );
    }
}
