//! The escalation ladder, sans-I/O: given what is known of a ticket and the time, which pages
//! are due and when to look again.
//!
//! Every page the ladder can ask for belongs to a *track*: one (phase, level) pair with a first
//! page at a base time (round 0) and re-pages every `repeat_every` after it (rounds 1, 2, ...).
//! [`LadderPolicy::due`] returns, per track, only the latest round whose time has come; the
//! planner enqueues it under [`PageIntent::dedup_key`] and the database drops duplicates. So a
//! planner that runs every second, twice, on two nodes, or after a 30-minute outage, sends each
//! round at most once and never a backlog of missed rounds.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::facts::PageReason;
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::schedule::sla::SlaConfig;
use crate::triage::Severity;

/// `[paging.ladder]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LadderConfig {
    /// Each level: slots (person or rotation ids) paged together.
    pub levels: Vec<Vec<String>>,
    /// Offset of each level from the ticket's creation, S1 (absent: derived from the target).
    pub s1: Option<Vec<String>>,
    /// Same for S2.
    pub s2: Option<Vec<String>>,
    /// Re-page each reached level this often while unacknowledged; "0s" = never.
    pub repeat_every: String,
    /// Re-pages go on these channels only (the first page of a level goes on all).
    pub repeat_channels: Vec<String>,
    /// The top of the ladder has heard this long before the due time (paged a
    /// [`DELIVERY_LEAD`] earlier); acknowledged but not called back by then: climb again.
    pub reescalate_before: String,
    /// Stop repeating this long after the ticket's creation.
    pub repeat_for: String,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            levels: [["oncall"], ["director"], ["coo"], ["president"]]
                .iter()
                .map(|l| l.iter().map(|s| s.to_string()).collect())
                .collect(),
            s1: None,
            s2: None,
            repeat_every: "5m".into(),
            repeat_channels: vec!["phone".into(), "webhook".into()],
            reescalate_before: "5m".into(),
            repeat_for: "2h".into(),
        }
    }
}

fn ladder_key(k: &'static str) -> Vec<KeySeg> {
    vec![KeySeg::Key("paging"), KeySeg::Key("ladder"), KeySeg::Key(k)]
}

fn known_list(slots: &BTreeSet<String>) -> String {
    slots
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "0s", "90s", "10m", "1h30m" (humantime), to the millisecond.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let std = humantime::parse_duration(s.trim())
        .map_err(|e| format!("\"{}\" is not a duration ({e})", s.escape_debug()))?;
    let ms = i64::try_from(std.as_millis())
        .map_err(|_| format!("\"{}\" is too long", s.escape_debug()))?;
    // A week is far beyond any callback target; the bound keeps the arithmetic small.
    if ms > 7 * 24 * 3_600_000 {
        return Err(format!("\"{}\" is longer than a week", s.escape_debug()));
    }
    Ok(Duration::milliseconds(ms))
}

/// "25m" for messages.
fn show(d: Duration) -> String {
    let ms = u64::try_from(d.num_milliseconds()).unwrap_or(0);
    if ms == 0 {
        return "0s".into();
    }
    humantime::format_duration(std::time::Duration::from_millis(ms))
        .to_string()
        .replace(' ', "")
}

fn minutes(m: u32) -> Duration {
    Duration::minutes(m as i64)
}

/// How much earlier than `reescalate_before` the top of the ladder is paged: a page takes
/// seconds to arrive (a retry, a phone that rings), and the promise is that the top *has heard*
/// by the target minus that margin, not that a page leaves at that instant.
pub const DELIVERY_LEAD: Duration = Duration::minutes(1);

/// How much earlier than `reescalate_before` the top of the ladder is paged when pages to one
/// person are grouped for `group_window`: a page may wait that long for the person's last one,
/// and must still have arrived by the margin.
pub fn page_lead(group_window: Duration) -> Duration {
    DELIVERY_LEAD + group_window.max(Duration::zero())
}

/// The offsets used when `s1`/`s2` is absent: level 1 at 0, the last level `reescalate_before`
/// plus `lead` ([`page_lead`]) before the target (so the top of the ladder has heard of a
/// coming miss by the margin), and the levels between spread evenly over the target, rounded
/// down to the minute.
pub fn default_offsets(
    target: Duration,
    reescalate_before: Duration,
    lead: Duration,
    n: usize,
) -> Result<Vec<Duration>, String> {
    if n <= 1 {
        return Ok(vec![Duration::zero(); n]);
    }
    let last = target - reescalate_before - lead;
    let minute = Duration::minutes(1);
    let mut out = vec![Duration::zero()];
    let steps = n as i64 - 1;
    for i in 1..steps {
        let even = Duration::milliseconds(target.num_milliseconds() * i / steps);
        let floored = Duration::minutes(even.num_minutes());
        let prev = out.last().copied().unwrap_or_else(Duration::zero);
        // Room for the levels still to come, a minute apart, below the last one.
        let ceiling = last - minute * (steps - i) as i32;
        out.push(floored.min(ceiling).max(prev + minute));
    }
    out.push(last);
    let increasing = out.windows(2).all(|w| w[0] < w[1]);
    if !increasing {
        return Err(format!(
            "{n} levels cannot be spaced a minute apart between 0 and {} ({} target minus {} reescalate_before minus {} to deliver)",
            show(last),
            show(target),
            show(reescalate_before),
            show(lead)
        ));
    }
    Ok(out)
}

impl LadderConfig {
    /// `group_window`: `[paging] group_window` (the top is paged that much earlier).
    pub fn validate(
        &self,
        slots: &BTreeSet<String>,
        sla: &SlaConfig,
        channels: KnownChannels<'_>,
        group_window: Duration,
        issues: &mut Vec<ConfigIssue>,
    ) {
        if self.levels.is_empty() {
            issues.push(ConfigIssue::new(
                ladder_key("levels"),
                "the ladder has no level: nobody would be paged",
                "list at least one level, e.g. levels = [[\"oncall\"], [\"director\"]]",
            ));
        }
        for (i, level) in self.levels.iter().enumerate() {
            let mut path = ladder_key("levels");
            path.push(KeySeg::Index(i));
            if level.is_empty() {
                issues.push(ConfigIssue::new(
                    path.clone(),
                    format!("level {} names nobody", i + 1),
                    "name at least one person or rotation id in the level, or remove it",
                ));
            }
            // No people configured: paging is off, and the default ladder names nobody real.
            if slots.is_empty() {
                continue;
            }
            for (j, slot) in level.iter().enumerate() {
                if !slots.contains(slot) {
                    let mut p = path.clone();
                    p.push(KeySeg::Index(j));
                    issues.push(ConfigIssue::new(
                        p,
                        format!("\"{slot}\" is neither a person nor a rotation"),
                        format!("use one of {}", known_list(slots)),
                    ));
                }
            }
        }

        let mut duration = |key: &'static str, value: &str| match parse_duration(value) {
            Ok(d) => Some(d),
            Err(message) => {
                issues.push(ConfigIssue::new(
                    ladder_key(key),
                    message,
                    "write a duration such as \"0s\", \"90s\", \"5m\" or \"1h30m\"",
                ));
                None
            }
        };
        let repeat_every = duration("repeat_every", &self.repeat_every);
        let reescalate_before = duration("reescalate_before", &self.reescalate_before);
        let _ = duration("repeat_for", &self.repeat_for);
        if let Some(d) = repeat_every {
            if d > Duration::zero() && d < Duration::seconds(1) {
                issues.push(ConfigIssue::new(
                    ladder_key("repeat_every"),
                    format!("re-paging every {} would flood people", show(d)),
                    "write \"5m\" (or \"0s\" to never re-page)",
                ));
            }
        }
        for (i, ch) in self.repeat_channels.iter().enumerate() {
            if !channels.contains(ch) {
                let mut p = ladder_key("repeat_channels");
                p.push(KeySeg::Index(i));
                issues.push(ConfigIssue::new(
                    p,
                    format!("\"{ch}\" is not a channel"),
                    format!("use {}", channels.for_people()),
                ));
            }
        }

        let targets = [
            ("s1", &self.s1, sla.s1_callback_minutes),
            ("s2", &self.s2, sla.s2_callback_minutes),
        ];
        if let Some(before) = reescalate_before {
            // A zero target is reported by the SLA section itself.
            let shortest = targets.iter().map(|t| t.2).filter(|m| *m > 0).min();
            if let Some(t) = shortest {
                if before >= minutes(t) {
                    issues.push(ConfigIssue::new(
                        ladder_key("reescalate_before"),
                        format!(
                            "{} before the {t}-minute callback target is at or before the ticket's creation: an acknowledgement would climb again at once",
                            show(before)
                        ),
                        format!("write a duration below {}m (5m is usual)", t),
                    ));
                }
            }
        }
        for (key, offsets, target) in targets {
            if target == 0 {
                continue;
            }
            match offsets {
                Some(list) => check_offsets(key, list, self.levels.len(), minutes(target), issues),
                None => {
                    let Some(before) = reescalate_before else {
                        continue;
                    };
                    if let Err(message) = default_offsets(
                        minutes(target),
                        before,
                        page_lead(group_window),
                        self.levels.len(),
                    ) {
                        issues.push(ConfigIssue::new(
                            vec![KeySeg::Key("paging"), KeySeg::Key("ladder")],
                            format!("{key}: {message}"),
                            format!(
                                "write {key} = [...] with one offset per level, starting at \"0s\" and below {target}m"
                            ),
                        ));
                    }
                }
            }
        }
    }
}

fn check_offsets(
    key: &'static str,
    list: &[String],
    levels: usize,
    target: Duration,
    issues: &mut Vec<ConfigIssue>,
) {
    let at = |i: usize| {
        let mut p = ladder_key(key);
        p.push(KeySeg::Index(i));
        p
    };
    if list.len() != levels {
        issues.push(ConfigIssue::new(
            ladder_key(key),
            format!(
                "{} offsets for {} levels",
                list.len(),
                levels
            ),
            format!("give exactly one offset per level ({levels}), e.g. s1 = [\"0s\", \"10m\", \"20m\", \"25m\"] for four"),
        ));
    }
    let mut prev: Option<(Duration, &str)> = None;
    for (i, text) in list.iter().enumerate() {
        let d = match parse_duration(text) {
            Ok(d) => d,
            Err(message) => {
                issues.push(ConfigIssue::new(
                    at(i),
                    message,
                    "write a duration such as \"0s\", \"90s\", \"10m\" or \"1h30m\"",
                ));
                // The order cannot be checked across an unreadable offset.
                prev = None;
                continue;
            }
        };
        if i == 0 && d != Duration::zero() {
            issues.push(ConfigIssue::new(
                at(0),
                format!("the first level is paged {text} after the ticket is created"),
                "write \"0s\": the first level is paged as soon as the ticket exists",
            ));
        }
        if let Some((p, ptext)) = prev {
            if d <= p {
                issues.push(ConfigIssue::new(
                    at(i),
                    format!("{text} is not after {ptext}"),
                    "make each offset later than the one before (levels are paged in order)",
                ));
            }
        }
        if i + 1 == list.len() && d >= target {
            issues.push(ConfigIssue::new(
                at(i),
                format!(
                    "{text} is at or after the {} callback target: the top of the ladder would learn of a miss after it happened",
                    show(target)
                ),
                format!("write an offset below {} (5 minutes before is usual)", show(target)),
            ));
        }
        prev = Some((d, text));
    }
}

/// `[paging.in_hours]`: S3 tickets at any hour, and S1/S2 left in business hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticeConfig {
    /// Slots told once (empty: nobody).
    pub notify: Vec<String>,
    pub channels: Vec<String>,
}

impl Default for NoticeConfig {
    fn default() -> Self {
        NoticeConfig {
            notify: Vec::new(),
            channels: vec!["email".into()],
        }
    }
}

impl NoticeConfig {
    pub fn validate(
        &self,
        slots: &BTreeSet<String>,
        channels: KnownChannels<'_>,
        issues: &mut Vec<ConfigIssue>,
    ) {
        let key = |k: &'static str, i: Option<usize>| {
            let mut p = vec![
                KeySeg::Key("paging"),
                KeySeg::Key("in_hours"),
                KeySeg::Key(k),
            ];
            p.extend(i.map(KeySeg::Index));
            p
        };
        if !slots.is_empty() {
            for (i, slot) in self.notify.iter().enumerate() {
                if !slots.contains(slot) {
                    issues.push(ConfigIssue::new(
                        key("notify", Some(i)),
                        format!("\"{slot}\" is neither a person nor a rotation"),
                        format!("use one of {}", known_list(slots)),
                    ));
                }
            }
        }
        for (i, ch) in self.channels.iter().enumerate() {
            if !channels.contains(ch) {
                issues.push(ConfigIssue::new(
                    key("channels", Some(i)),
                    format!("\"{ch}\" is not a channel"),
                    format!("use {}", channels.for_people()),
                ));
            }
        }
        if self.channels.is_empty() && !self.notify.is_empty() {
            issues.push(ConfigIssue::new(
                key("channels", None),
                "no channel: the people in notify would never be told",
                "write channels = [\"email\"], or empty notify to tell nobody",
            ));
        }
    }
}

/// What the ladder needs to know of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClock {
    pub severity: Severity,
    pub after_hours: bool,
    /// When its call began: offsets and targets count from here.
    pub created_at: DateTime<Utc>,
    /// When the ticket was written: no page is due before (a level whose offset passed during
    /// the call is first paged now, on every channel, and repeated from here).
    pub opened_at: DateTime<Utc>,
    pub callback_due_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub called_back_at: Option<DateTime<Utc>>,
    /// Resolved or cancelled.
    pub closed: bool,
}

/// Which part of a ticket's life a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Unacknowledged: climbing the ladder.
    Climb,
    /// Acknowledged, but no callback near the due time: climbing again.
    Lapsed,
    /// Outside the ladder (S3, business hours): told once.
    Notice,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Climb => "climb",
            Phase::Lapsed => "lapsed",
            Phase::Notice => "notice",
        }
    }
}

/// The page channels the engine has, by name ("phone", "email", "webhook"): the engine's
/// channel registry lists them; the ladder only checks configured names against the list.
#[derive(Debug, Clone, Copy)]
pub struct KnownChannels<'a>(pub &'a [&'a str]);

impl KnownChannels<'_> {
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(&name)
    }

    /// `"phone", "email" or "webhook"`: for messages to people.
    pub fn for_people(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|c| format!("\"{c}\"")).collect();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// The channels a page may use, by name (see [`KnownChannels`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    All,
    Only(Vec<String>),
}

impl Channels {
    pub fn allows(&self, channel: &str) -> bool {
        match self {
            Channels::All => true,
            Channels::Only(list) => list.iter().any(|c| c == channel),
        }
    }
}

/// One page the planner should enqueue (one job per person and channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageIntent {
    pub phase: Phase,
    /// 1-based; 0 for a notice.
    pub level: u32,
    /// 0 for the first page of the (phase, level), then 1, 2... for re-pages.
    pub round: u32,
    pub slots: Vec<String>,
    /// When the page was due (at or before the `now` it was asked at).
    pub at: DateTime<Utc>,
    pub reason: PageReason,
    pub channels: Channels,
}

impl PageIntent {
    /// `"{ticket}:{phase}:{level}:{round}"`: the same page has the same key on every node.
    pub fn dedup_key(&self, ticket: &str) -> String {
        format!(
            "{ticket}:{}:{}:{}",
            self.phase.as_str(),
            self.level,
            self.round
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LadderDue {
    /// Ordered by time, then phase, then level.
    pub intents: Vec<PageIntent>,
    /// The earliest time after `now` at which `due` returns something new (None: never,
    /// unless the ticket changes).
    pub next_wake: Option<DateTime<Utc>>,
}

/// The ladder's rules, built once from the configuration.
#[derive(Debug, Clone)]
pub struct LadderPolicy {
    levels: Vec<Vec<String>>,
    s1: Vec<Duration>,
    s2: Vec<Duration>,
    /// None: never re-page.
    repeat_every: Option<Duration>,
    repeat_channels: Vec<String>,
    reescalate_before: Duration,
    /// [`page_lead`], compressed on a drill.
    delivery_lead: Duration,
    repeat_for: Duration,
    notify: Vec<String>,
    notice_channels: Vec<String>,
}

/// One (phase, level): a first page at `base`, re-pages after it.
struct Track<'a> {
    phase: Phase,
    level: u32,
    slots: &'a [String],
    base: DateTime<Utc>,
    first_reason: PageReason,
    /// Rounds after this instant do not exist (the climb stops at the acknowledgement).
    cap: Option<DateTime<Utc>>,
    /// Re-pages: every `.0`, strictly before `.1`.
    repeat: Option<(Duration, DateTime<Utc>)>,
}

impl Track<'_> {
    fn round_at(&self, r: i64) -> DateTime<Utc> {
        match self.repeat {
            Some((step, _)) => self.base + Duration::milliseconds(step.num_milliseconds() * r),
            None => self.base,
        }
    }

    /// The last round that exists at all.
    fn last_round(&self) -> i64 {
        let Some((step, until)) = self.repeat else {
            return 0;
        };
        let step = step.num_milliseconds().max(1);
        let mut r = ((until - self.base).num_milliseconds() - 1).max(0) / step;
        if let Some(cap) = self.cap {
            r = r.min((cap - self.base).num_milliseconds().max(0) / step);
        }
        r
    }

    fn exists(&self) -> bool {
        self.cap.is_none_or(|cap| self.base <= cap)
    }

    /// The latest round at or before `now`.
    fn latest(&self, now: DateTime<Utc>) -> Option<(i64, DateTime<Utc>)> {
        if !self.exists() || self.base > now {
            return None;
        }
        let r = match self.repeat {
            Some((step, _)) => ((now - self.base).num_milliseconds()
                / step.num_milliseconds().max(1))
            .min(self.last_round()),
            None => 0,
        };
        Some((r, self.round_at(r)))
    }

    /// The first round after `now`.
    fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.exists() {
            return None;
        }
        if self.base > now {
            return Some(self.base);
        }
        let (step, _) = self.repeat?;
        let r = (now - self.base).num_milliseconds() / step.num_milliseconds().max(1) + 1;
        (r <= self.last_round()).then(|| self.round_at(r))
    }

    /// `limited`: the channels of a notice, or of a re-page.
    fn intent(&self, round: i64, at: DateTime<Utc>, limited: &[String]) -> PageIntent {
        let (reason, channels) = if round == 0 {
            let channels = match self.phase {
                Phase::Notice => Channels::Only(limited.to_vec()),
                _ => Channels::All,
            };
            (self.first_reason, channels)
        } else {
            (PageReason::Repeat, Channels::Only(limited.to_vec()))
        };
        PageIntent {
            phase: self.phase,
            level: self.level,
            round: u32::try_from(round).unwrap_or(u32::MAX),
            slots: self.slots.to_vec(),
            at,
            reason,
            channels,
        }
    }
}

impl LadderPolicy {
    /// `group_window`: `[paging] group_window`, as written (a drill compresses it with the rest).
    pub fn from_config(
        ladder: &LadderConfig,
        notice: &NoticeConfig,
        sla: &SlaConfig,
        group_window: Duration,
    ) -> Result<Self, String> {
        // The same checks as check-config, minus the slot names (the roster resolves them).
        let mut issues = Vec::new();
        ladder.validate(
            &BTreeSet::new(),
            sla,
            KnownChannels(&["phone", "email", "webhook"]),
            group_window,
            &mut issues,
        );
        notice.validate(
            &BTreeSet::new(),
            KnownChannels(&["phone", "email", "webhook"]),
            &mut issues,
        );
        if let Some(first) = issues.first() {
            return Err(format!("{}: {}", first.key_path(), first.message));
        }
        // A drill deployment climbs the same ladder, faster: every offset, repeat and margin
        // is compressed as the SLA targets are (see `TimeScale`).
        let scale = sla.time_scale;
        let before = parse_duration(&ladder.reescalate_before)?;
        let offsets = |list: &Option<Vec<String>>, target: u32| -> Result<Vec<Duration>, String> {
            let night: Vec<Duration> = match list {
                Some(list) => list
                    .iter()
                    .map(|s| parse_duration(s))
                    .collect::<Result<_, _>>()?,
                None => default_offsets(
                    minutes(target),
                    before,
                    page_lead(group_window),
                    ladder.levels.len(),
                )?,
            };
            Ok(night.into_iter().map(|d| scale.compress(d)).collect())
        };
        let repeat_every = scale.compress(parse_duration(&ladder.repeat_every)?);
        Ok(LadderPolicy {
            levels: ladder.levels.clone(),
            s1: offsets(&ladder.s1, sla.s1_callback_minutes)?,
            s2: offsets(&ladder.s2, sla.s2_callback_minutes)?,
            repeat_every: (repeat_every > Duration::zero()).then_some(repeat_every),
            repeat_channels: ladder.repeat_channels.clone(),
            reescalate_before: scale.compress(before),
            delivery_lead: scale.compress(page_lead(group_window)),
            repeat_for: scale.compress(parse_duration(&ladder.repeat_for)?),
            notify: notice.notify.clone(),
            notice_channels: notice.channels.clone(),
        })
    }

    /// When each level is first paged, from the ticket's creation (empty for S3: no ladder).
    pub fn offsets(&self, s: Severity) -> &[Duration] {
        match s {
            Severity::S1 => &self.s1,
            Severity::S2 => &self.s2,
            Severity::S3 => &[],
        }
    }

    pub fn levels(&self) -> &[Vec<String>] {
        &self.levels
    }

    /// What is due for ticket `t` at `now`: per (phase, level), the latest round whose time has
    /// come. A pure function of its arguments.
    pub fn due(&self, t: &TicketClock, now: DateTime<Utc>) -> LadderDue {
        let tracks = self.tracks(t);
        let mut intents: Vec<PageIntent> = tracks
            .iter()
            .filter_map(|tr| {
                let (round, at) = tr.latest(now)?;
                let channels = match tr.phase {
                    Phase::Notice => &self.notice_channels,
                    _ => &self.repeat_channels,
                };
                Some(tr.intent(round, at, channels))
            })
            .collect();
        intents.sort_by_key(|i| (i.at, i.phase, i.level));
        LadderDue {
            intents,
            next_wake: tracks.iter().filter_map(|tr| tr.next_after(now)).min(),
        }
    }

    fn tracks(&self, t: &TicketClock) -> Vec<Track<'_>> {
        if t.closed || t.called_back_at.is_some() {
            return Vec::new();
        }
        let on_ladder = t.after_hours && matches!(t.severity, Severity::S1 | Severity::S2);
        if !on_ladder {
            if self.notify.is_empty() {
                return Vec::new();
            }
            return vec![Track {
                phase: Phase::Notice,
                level: 0,
                slots: &self.notify,
                base: t.created_at.max(t.opened_at),
                first_reason: PageReason::Notice,
                cap: None,
                repeat: None,
            }];
        }
        let repeat = self
            .repeat_every
            .map(|step| (step, t.created_at + self.repeat_for));
        let levels = self.levels.iter().zip(self.offsets(t.severity)).zip(1u32..);
        let mut tracks: Vec<Track> = levels
            .clone()
            .map(|((slots, offset), level)| Track {
                phase: Phase::Climb,
                level,
                slots,
                base: (t.created_at + *offset).max(t.opened_at),
                first_reason: PageReason::Escalation,
                cap: t.acknowledged_at,
                repeat,
            })
            .collect();
        if let Some(ack) = t.acknowledged_at {
            // Acknowledged, yet nobody has called back by a few minutes before the due time:
            // the levels already reached hear of it together, the others at their offsets
            // (a delivery lead early, so that they have heard by the margin).
            let lapse = (t.callback_due_at - self.reescalate_before - self.delivery_lead).max(ack);
            tracks.extend(levels.map(|((slots, offset), level)| Track {
                phase: Phase::Lapsed,
                level,
                slots,
                base: (t.created_at + *offset).max(lapse).max(t.opened_at),
                first_reason: PageReason::CallbackOverdue,
                cap: None,
                repeat,
            }));
        }
        tracks
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-10T03:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap()
    }

    fn m(n: i64) -> Duration {
        Duration::minutes(n)
    }

    fn policy() -> LadderPolicy {
        let notice = NoticeConfig {
            notify: vec!["support".into()],
            channels: vec!["email".into()],
        };
        LadderPolicy::from_config(
            &LadderConfig::default(),
            &notice,
            &SlaConfig::default(),
            Duration::zero(),
        )
        .unwrap()
    }

    /// An after-hours ticket created at `created`, due `target` minutes later.
    fn ticket(severity: Severity, created: DateTime<Utc>, target: i64) -> TicketClock {
        TicketClock {
            severity,
            after_hours: true,
            created_at: created,
            opened_at: created,
            callback_due_at: created + m(target),
            acknowledged_at: None,
            called_back_at: None,
            closed: false,
        }
    }

    /// What a ticket looks like at `now`, given the times things happen to it.
    #[derive(Clone)]
    struct Story {
        base: TicketClock,
        ack: Option<DateTime<Utc>>,
        callback: Option<DateTime<Utc>>,
    }

    impl Story {
        fn at(&self, now: DateTime<Utc>) -> TicketClock {
            let mut t = self.base.clone();
            t.acknowledged_at = self.ack.filter(|a| *a <= now);
            t.called_back_at = self.callback.filter(|c| *c <= now);
            t
        }
        fn events(&self) -> Vec<DateTime<Utc>> {
            self.ack
                .iter()
                .chain(self.callback.iter())
                .copied()
                .collect()
        }
    }

    /// Pages "sent": dedup key, when the planner enqueued it, and the intent.
    type Sent = Vec<(String, DateTime<Utc>, PageIntent)>;

    /// Plans at every `step` from `from` to `to`, enqueuing into a set of dedup keys as the
    /// database would; returns what was enqueued and when.
    fn walk(
        p: &LadderPolicy,
        stories: &[(&str, Story)],
        times: impl Iterator<Item = DateTime<Utc>>,
    ) -> Sent {
        let mut db = BTreeSet::new();
        let mut sent = Vec::new();
        for now in times {
            for (name, story) in stories {
                for intent in p.due(&story.at(now), now).intents {
                    assert!(intent.at <= now);
                    if db.insert(intent.dedup_key(name)) {
                        sent.push((intent.dedup_key(name), now, intent));
                    }
                }
            }
        }
        sent
    }

    fn every(step: Duration, hours: i64) -> impl Iterator<Item = DateTime<Utc>> {
        let end = t0() + Duration::hours(hours);
        std::iter::successors(Some(t0()), move |t| Some(*t + step)).take_while(move |t| *t <= end)
    }

    fn minute_of(t: DateTime<Utc>) -> f64 {
        (t - t0()).num_seconds() as f64 / 60.0
    }

    /// (level, minute sent, round, reason) for one phase.
    fn summary(sent: &Sent, phase: Phase) -> Vec<(u32, f64, u32, PageReason)> {
        sent.iter()
            .filter(|(_, _, i)| i.phase == phase)
            .map(|(_, now, i)| (i.level, minute_of(*now), i.round, i.reason))
            .collect()
    }

    #[test]
    fn nobody_answers_s1_climbs_all_levels_on_time_and_repeats_until_repeat_for() {
        let p = policy();
        let story = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: None,
            callback: None,
        };
        let sent = walk(&p, &[("1001", story)], every(Duration::seconds(1), 3));
        // Every page leaves at the second it is due.
        for (_, now, i) in &sent {
            assert_eq!(*now, i.at, "{i:?}");
        }
        let first: Vec<(u32, f64)> = summary(&sent, Phase::Climb)
            .into_iter()
            .filter(|s| s.2 == 0)
            .map(|s| (s.0, s.1))
            .collect();
        assert_eq!(first, vec![(1, 0.0), (2, 10.0), (3, 20.0), (4, 24.0)]);
        for (_, _, i) in &sent {
            assert_eq!(i.phase, Phase::Climb);
            assert_eq!(i.reason == PageReason::Escalation, i.round == 0);
            assert_eq!(i.channels == Channels::All, i.round == 0);
        }
        // Level 1 re-paged every 5 minutes, the last before 2 h.
        let l1: Vec<f64> = summary(&sent, Phase::Climb)
            .into_iter()
            .filter(|s| s.0 == 1)
            .map(|s| s.1)
            .collect();
        let expected: Vec<f64> = (0..24).map(|r| r as f64 * 5.0).collect();
        assert_eq!(l1, expected);
        // Level 4: 24, 29, ... 119.
        let l4 = summary(&sent, Phase::Climb)
            .into_iter()
            .filter(|s| s.0 == 4)
            .count();
        assert_eq!(l4, 20);
        let last = sent.iter().map(|s| s.1).max().unwrap();
        assert!(last < t0() + Duration::hours(2), "{last}");
        // Re-pages only on the repeat channels.
        let repeat = sent.iter().find(|s| s.2.round == 1).unwrap();
        assert!(repeat.2.channels.allows("phone") && !repeat.2.channels.allows("email"));
        assert_eq!(repeat.2.slots, vec!["oncall".to_string()]);
        assert_eq!(sent[0].0, "1001:climb:1:0");
    }

    /// A call that lasted 12 minutes: its ticket is dated from the call's start (the SLA is),
    /// but nobody is paged before it exists; then every level already due hears of it on
    /// every channel, and repeats count from there.
    #[test]
    fn a_ticket_opened_after_its_offsets_gets_first_pages_on_every_channel() {
        let p = policy();
        let mut base = ticket(Severity::S1, t0(), 30);
        base.opened_at = t0() + m(12);
        let story = Story {
            base,
            ack: None,
            callback: None,
        };
        let sent = walk(&p, &[("12", story)], every(Duration::seconds(1), 3));
        assert!(sent.iter().all(|s| s.1 >= t0() + m(12)), "{sent:?}");
        let first: Vec<(u32, f64, bool)> = sent
            .iter()
            .filter(|s| s.2.round == 0)
            .map(|s| (s.2.level, minute_of(s.1), s.2.channels == Channels::All))
            .collect();
        assert_eq!(
            first,
            vec![
                (1, 12.0, true),
                (2, 12.0, true),
                (3, 20.0, true),
                (4, 24.0, true)
            ]
        );
        let l1: Vec<f64> = summary(&sent, Phase::Climb)
            .into_iter()
            .filter(|s| s.0 == 1)
            .map(|s| s.1)
            .take(3)
            .collect();
        assert_eq!(l1, vec![12.0, 17.0, 22.0]);
    }

    #[test]
    fn acknowledged_at_minute_3_is_quiet_until_24_then_lapses_to_every_level() {
        let p = policy();
        let story = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: Some(t0() + m(3)),
            callback: None,
        };
        let sent = walk(&p, &[("7", story)], every(Duration::seconds(1), 3));
        let climb = summary(&sent, Phase::Climb);
        assert_eq!(climb, vec![(1, 0.0, 0, PageReason::Escalation)]);
        let lapsed = summary(&sent, Phase::Lapsed);
        // The target (30) minus the margin (5) minus a minute to deliver.
        let at24: Vec<(u32, u32, PageReason)> = lapsed
            .iter()
            .filter(|s| s.1 == 24.0)
            .map(|s| (s.0, s.2, s.3))
            .collect();
        assert_eq!(
            at24,
            (1..=4)
                .map(|l| (l, 0, PageReason::CallbackOverdue))
                .collect::<Vec<_>>()
        );
        assert!(lapsed.iter().all(|s| s.1 >= 24.0));
        // Then every level repeated every 5 minutes until 2 h: 29, 34 ... 119 → 19 rounds each.
        assert_eq!(lapsed.len(), 4 * 20);
        assert!(lapsed
            .iter()
            .all(|s| s.1 < 120.0 && (s.1 - 24.0) % 5.0 == 0.0));
    }

    #[test]
    fn acknowledged_late_lapses_at_once_for_reached_levels_only() {
        let p = policy();
        // Acknowledged at 15 min with the target at 60: lapse at 55, every level reached.
        // Acknowledged at 12 with S1 target moved far (due 40): lapse at 35 > every offset.
        // A due time close to the ack: lapse at the ack (22 > 30-10), levels 1-3 at once.
        let story = Story {
            base: {
                let mut t = ticket(Severity::S1, t0(), 30);
                t.callback_due_at = t0() + m(27);
                t
            },
            ack: Some(t0() + m(22)),
            callback: None,
        };
        let sent = walk(&p, &[("8", story)], every(Duration::seconds(1), 1));
        let first: Vec<(u32, f64)> = summary(&sent, Phase::Lapsed)
            .into_iter()
            .filter(|s| s.2 == 0)
            .map(|s| (s.0, s.1))
            .collect();
        // Due 27 − 5 − 1 = 21, before the ack: levels 1-3 at the ack (22), level 4 at its
        // offset, 24.
        assert_eq!(first, vec![(1, 22.0), (2, 22.0), (3, 22.0), (4, 24.0)]);
    }

    #[test]
    fn acknowledged_and_called_back_at_minute_12_stops_everything() {
        let p = policy();
        let story = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: Some(t0() + m(12)),
            callback: Some(t0() + m(12)),
        };
        let sent = walk(&p, &[("9", story.clone())], every(Duration::seconds(1), 3));
        let minutes: Vec<(u32, f64)> = sent.iter().map(|s| (s.2.level, minute_of(s.1))).collect();
        assert_eq!(minutes, vec![(1, 0.0), (1, 5.0), (1, 10.0), (2, 10.0)]);
        let after = story.at(t0() + m(12));
        assert_eq!(p.due(&after, t0() + m(12)), LadderDue::default());
    }

    #[test]
    fn s2_default_offsets_are_0_20_40_54() {
        let p = policy();
        let story = Story {
            base: ticket(Severity::S2, t0(), 60),
            ack: None,
            callback: None,
        };
        let sent = walk(&p, &[("2", story)], every(Duration::seconds(1), 3));
        let first: Vec<(u32, f64)> = summary(&sent, Phase::Climb)
            .into_iter()
            .filter(|s| s.2 == 0)
            .map(|s| (s.0, s.1))
            .collect();
        assert_eq!(first, vec![(1, 0.0), (2, 20.0), (3, 40.0), (4, 54.0)]);
    }

    #[test]
    fn two_tickets_at_once_are_independent() {
        let p = policy();
        let a = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: Some(t0() + m(3)),
            callback: None,
        };
        let b = Story {
            base: ticket(Severity::S1, t0() + m(1), 30),
            ack: None,
            callback: None,
        };
        let both = walk(
            &p,
            &[("a", a.clone()), ("b", b.clone())],
            every(Duration::seconds(1), 3),
        );
        let alone_a = walk(&p, &[("a", a)], every(Duration::seconds(1), 3));
        let alone_b = walk(&p, &[("b", b)], every(Duration::seconds(1), 3));
        let of = |sent: &Sent, name: &str| -> Vec<(String, DateTime<Utc>)> {
            sent.iter()
                .filter(|s| s.0.starts_with(&format!("{name}:")))
                .map(|s| (s.0.clone(), s.1))
                .collect()
        };
        assert_eq!(of(&both, "a"), of(&alone_a, "a"));
        assert_eq!(of(&both, "b"), of(&alone_b, "b"));
        // b was not acknowledged: it climbed to level 4 at 1 + 24 minutes.
        assert!(both
            .iter()
            .any(|s| s.0 == "b:climb:4:0" && s.1 == t0() + m(25)));
        assert!(!both.iter().any(|s| s.0 == "a:climb:2:0"));
    }

    #[test]
    fn a_restart_pages_each_reached_level_once_not_every_missed_round() {
        let p = policy();
        let story = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: None,
            callback: None,
        };
        // Up at 0..2 min, down until 31.
        let times =
            every(Duration::seconds(1), 3).filter(|t| *t <= t0() + m(2) || *t >= t0() + m(31));
        let sent = walk(&p, &[("r", story)], times);
        let at31: Vec<(u32, u32, f64)> = sent
            .iter()
            .filter(|s| s.1 == t0() + m(31))
            .map(|s| (s.2.level, s.2.round, minute_of(s.2.at)))
            .collect();
        // Each level once, at its latest round, ordered by time: level 4 round 1 (29 min),
        // level 1 round 6 (30), level 2 round 4 (30), level 3 round 2 (30).
        assert_eq!(
            at31,
            vec![(4, 1, 29.0), (1, 6, 30.0), (2, 4, 30.0), (3, 2, 30.0)]
        );
        assert_eq!(
            sent.iter()
                .filter(|s| s.1 > t0() + m(2) && s.1 < t0() + m(31))
                .count(),
            0
        );
        // And nothing at 31 that was already sent.
        let keys: BTreeSet<&String> = sent.iter().map(|s| &s.0).collect();
        assert_eq!(keys.len(), sent.len());
    }

    #[test]
    fn s3_and_in_hours_tickets_get_one_notice() {
        let p = policy();
        for (severity, after_hours) in [
            (Severity::S3, true),
            (Severity::S3, false),
            (Severity::S1, false),
            (Severity::S2, false),
        ] {
            let mut t = ticket(severity, t0(), 30);
            t.after_hours = after_hours;
            let story = Story {
                base: t,
                ack: None,
                callback: None,
            };
            let sent = walk(&p, &[("n", story.clone())], every(Duration::seconds(1), 3));
            assert_eq!(sent.len(), 1, "{severity:?} {after_hours}");
            let i = &sent[0].2;
            assert_eq!((i.phase, i.level, i.round), (Phase::Notice, 0, 0));
            assert_eq!(i.reason, PageReason::Notice);
            assert_eq!(i.channels, Channels::Only(vec!["email".into()]));
            assert_eq!(i.slots, vec!["support".to_string()]);
            assert_eq!(sent[0].1, t0());
            assert_eq!(sent[0].0, "n:notice:0:0");
            assert_eq!(p.due(&story.base, t0()).next_wake, None);
        }
        // Nobody to notify: nothing at all.
        let quiet = LadderPolicy::from_config(
            &LadderConfig::default(),
            &NoticeConfig::default(),
            &SlaConfig::default(),
            Duration::zero(),
        )
        .unwrap();
        let mut t = ticket(Severity::S3, t0(), 30);
        t.after_hours = false;
        assert_eq!(quiet.due(&t, t0() + m(1)), LadderDue::default());
    }

    #[test]
    fn closed_ticket_pages_nobody() {
        let p = policy();
        let mut t = ticket(Severity::S1, t0(), 30);
        t.closed = true;
        assert_eq!(p.due(&t, t0() + m(11)), LadderDue::default());
    }

    /// Plans only when woken (next_wake or a change to the ticket) and must send the same
    /// pages at the same times as planning every second.
    fn wake_walk(p: &LadderPolicy, story: &Story) -> Vec<(String, DateTime<Utc>)> {
        let end = t0() + Duration::hours(3);
        let mut db = BTreeSet::new();
        let mut sent = Vec::new();
        let mut now = t0();
        let mut wakes = 0;
        loop {
            let due = p.due(&story.at(now), now);
            for i in due.intents {
                if db.insert(i.dedup_key("w")) {
                    sent.push((i.dedup_key("w"), now));
                }
            }
            let next = due
                .next_wake
                .into_iter()
                .chain(story.events().into_iter().filter(|e| *e > now))
                .min();
            match next {
                Some(n) if n <= end => {
                    assert!(n > now);
                    now = n;
                }
                _ => break,
            }
            wakes += 1;
            assert!(wakes < 10_000);
        }
        sent
    }

    #[test]
    fn next_wake_is_exact() {
        let p = policy();
        let stories = [
            Story {
                base: ticket(Severity::S1, t0(), 30),
                ack: None,
                callback: None,
            },
            Story {
                base: ticket(Severity::S1, t0(), 30),
                ack: Some(t0() + m(3) + Duration::seconds(17)),
                callback: None,
            },
            Story {
                base: ticket(Severity::S2, t0(), 60),
                ack: Some(t0() + m(50)),
                callback: Some(t0() + m(70)),
            },
            Story {
                base: ticket(Severity::S3, t0(), 30),
                ack: None,
                callback: None,
            },
        ];
        for story in &stories {
            let slow: Vec<(String, DateTime<Utc>)> =
                walk(&p, &[("w", story.clone())], every(Duration::seconds(1), 3))
                    .into_iter()
                    .map(|s| (s.0, s.1))
                    .collect();
            assert!(!slow.is_empty());
            assert_eq!(wake_walk(&p, story), slow);
        }
        // Past the end of the repeats nothing is left to wake for.
        let t = ticket(Severity::S1, t0(), 30);
        assert_eq!(p.due(&t, t0() + Duration::hours(2)).next_wake, None);
        assert_eq!(p.due(&t, t0() + m(1)).next_wake, Some(t0() + m(5)));
        assert_eq!(p.due(&t, t0() + m(9)).next_wake, Some(t0() + m(10)));
    }

    #[test]
    fn no_repeats_when_repeat_every_is_zero() {
        let cfg = LadderConfig {
            repeat_every: "0s".into(),
            ..LadderConfig::default()
        };
        let p = LadderPolicy::from_config(
            &cfg,
            &NoticeConfig::default(),
            &SlaConfig::default(),
            Duration::zero(),
        )
        .unwrap();
        let story = Story {
            base: ticket(Severity::S1, t0(), 30),
            ack: None,
            callback: None,
        };
        let sent = walk(&p, &[("z", story)], every(Duration::seconds(1), 3));
        assert_eq!(sent.len(), 4);
        assert_eq!(
            p.due(&ticket(Severity::S1, t0(), 30), t0() + m(26))
                .next_wake,
            None
        );
    }

    #[test]
    fn default_offsets_for_30_and_60_minutes() {
        let mins = |target: i64, n: usize| -> Vec<i64> {
            default_offsets(m(target), m(5), DELIVERY_LEAD, n)
                .unwrap()
                .iter()
                .map(|d| d.num_minutes())
                .collect()
        };
        assert_eq!(mins(30, 1), vec![0]);
        // The last level a margin (5) and a minute to deliver before the target.
        assert_eq!(mins(30, 2), vec![0, 24]);
        assert_eq!(mins(30, 3), vec![0, 15, 24]);
        assert_eq!(mins(30, 4), vec![0, 10, 20, 24]);
        assert_eq!(mins(30, 5), vec![0, 7, 15, 22, 24]);
        assert_eq!(mins(60, 1), vec![0]);
        assert_eq!(mins(60, 2), vec![0, 54]);
        assert_eq!(mins(60, 3), vec![0, 30, 54]);
        assert_eq!(mins(60, 4), vec![0, 20, 40, 54]);
        assert_eq!(mins(60, 5), vec![0, 15, 30, 45, 54]);
        // Squeezed below a near last level, still increasing.
        let squeezed: Vec<i64> = default_offsets(m(30), m(15), DELIVERY_LEAD, 4)
            .unwrap()
            .iter()
            .map(|d| d.num_minutes())
            .collect();
        assert_eq!(squeezed, vec![0, 10, 13, 14]);
        assert!(default_offsets(m(5), m(3), DELIVERY_LEAD, 4).is_err());
        // Pages grouped for a minute: the top is paged that minute earlier still.
        let grouped: Vec<i64> = default_offsets(m(30), m(5), page_lead(m(1)), 4)
            .unwrap()
            .iter()
            .map(|d| d.num_minutes())
            .collect();
        assert_eq!(grouped, vec![0, 10, 20, 23]);
        let p = policy();
        assert_eq!(p.offsets(Severity::S1), &[m(0), m(10), m(20), m(24)]);
        assert!(p.offsets(Severity::S3).is_empty());
        assert_eq!(p.levels().len(), 4);
    }

    #[test]
    fn explicit_offsets_are_used() {
        let cfg = LadderConfig {
            s1: Some(vec!["0s".into(), "90s".into(), "1h30m".into()]),
            levels: vec![vec!["a".into()], vec!["b".into()], vec!["c".into()]],
            ..LadderConfig::default()
        };
        let sla = SlaConfig {
            s1_callback_minutes: 120,
            ..SlaConfig::default()
        };
        let p = LadderPolicy::from_config(&cfg, &NoticeConfig::default(), &sla, Duration::zero())
            .unwrap();
        assert_eq!(
            p.offsets(Severity::S1),
            &[m(0), Duration::seconds(90), m(90)]
        );
        // S2 derived for three levels over 60 minutes.
        assert_eq!(p.offsets(Severity::S2), &[m(0), m(30), m(54)]);
    }

    /// A drill at ×60 climbs the guide's ladder in seconds: level 4 of an S1 at 23 s instead
    /// of 23 min, re-pages every 5 s for 2 min, and nothing else changes.
    #[test]
    fn a_drill_compresses_offsets_repeats_and_margins() {
        let sla = SlaConfig {
            time_scale: crate::schedule::sla::TimeScale::new(60).unwrap(),
            ..SlaConfig::default()
        };
        let cfg = LadderConfig {
            levels: vec![
                vec!["a".into()],
                vec!["b".into()],
                vec!["c".into()],
                vec!["d".into()],
            ],
            ..LadderConfig::default()
        };
        // Pages grouped for a minute (the default): the top a minute earlier, compressed too.
        let drill = LadderPolicy::from_config(&cfg, &NoticeConfig::default(), &sla, m(1)).unwrap();
        let s = Duration::seconds;
        assert_eq!(drill.offsets(Severity::S1), &[s(0), s(10), s(20), s(23)]);
        assert_eq!(drill.offsets(Severity::S2), &[s(0), s(20), s(40), s(53)]);
        assert_eq!(drill.repeat_every, Some(s(5)));
        assert_eq!(drill.repeat_for, s(120));
        assert_eq!(drill.reescalate_before, s(5));
        assert_eq!(drill.delivery_lead, s(2));
        let real =
            LadderPolicy::from_config(&cfg, &NoticeConfig::default(), &SlaConfig::default(), m(1))
                .unwrap();
        assert_eq!(real.offsets(Severity::S1), &[m(0), m(10), m(20), m(23)]);
        let alone = LadderPolicy::from_config(
            &cfg,
            &NoticeConfig::default(),
            &SlaConfig::default(),
            Duration::zero(),
        )
        .unwrap();
        assert_eq!(alone.offsets(Severity::S1), &[m(0), m(10), m(20), m(24)]);
    }

    #[test]
    fn channels_and_keys() {
        assert!(Channels::All.allows("email"));
        let only = Channels::Only(vec!["phone".into()]);
        assert!(only.allows("phone") && !only.allows("webhook"));
        let i = PageIntent {
            phase: Phase::Lapsed,
            level: 3,
            round: 2,
            slots: vec![],
            at: t0(),
            reason: PageReason::Repeat,
            channels: Channels::All,
        };
        assert_eq!(i.dedup_key("20260110001"), "20260110001:lapsed:3:2");
    }

    #[test]
    fn without_people_slot_names_are_not_checked() {
        let mut issues = Vec::new();
        LadderConfig::default().validate(
            &BTreeSet::new(),
            &SlaConfig::default(),
            KnownChannels(&["phone", "email", "webhook"]),
            Duration::zero(),
            &mut issues,
        );
        NoticeConfig {
            notify: vec!["anyone".into()],
            ..NoticeConfig::default()
        }
        .validate(
            &BTreeSet::new(),
            KnownChannels(&["phone", "email", "webhook"]),
            &mut issues,
        );
        assert_eq!(issues, vec![]);
        let slots: BTreeSet<String> = ["tech1".to_string()].into();
        LadderConfig::default().validate(
            &slots,
            &SlaConfig::default(),
            KnownChannels(&["phone", "email", "webhook"]),
            Duration::zero(),
            &mut issues,
        );
        // The four default levels name nobody configured.
        assert_eq!(issues.len(), 4, "{issues:?}");
    }
}
