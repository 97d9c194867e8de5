//! The drill's report: from what the runner observed (plain data, in wall time), a verdict per
//! ticket, totals, and the table, JSON and SVG that say whether the promise held.
//!
//! The promise (issue 20): every S1/S2 ticket after hours is called back by its callback due
//! time, or else the top of the ladder was paged by that due time minus the margin. S3 tickets
//! carry no promise at night: they are listed with the verdict `no_target` and `met = true`
//! (nothing promised, nothing broken), and count in neither `met` nor `missed`.
//!
//! Times in traces are wall time, the engine's (scaled) clock; every duration the report shows
//! is NIGHT time (wall × time_scale), so a drill at ×60 still reads "18 min".

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::scenario::{Scenario, MAX_CALLS, MAX_LADDER_LEVELS, MAX_NIGHT, MAX_TIME_SCALE};
use crate::printable::escaped;
use crate::triage::Severity;

/// The night as played.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Night {
    /// The scenario's name.
    pub name: String,
    /// Wall time.
    pub start: DateTime<Utc>,
    /// Wall time.
    pub end: DateTime<Utc>,
    /// Night time per unit of wall time (1: real time).
    pub time_scale: u32,
    /// The ladder's last level: paging it in time keeps the promise.
    pub top_level: u32,
    /// Night seconds: the top must be paged by the due time minus this.
    pub margin_secs: u64,
    /// Night seconds: the after-hours callback targets, for the reader.
    pub s1_target_secs: u64,
    pub s2_target_secs: u64,
}

impl Night {
    /// The night of `scenario` played from wall time `start`.
    pub fn from_scenario(scenario: &Scenario, start: DateTime<Utc>) -> Night {
        let plan = &scenario.night;
        let wall = Duration::from_std(scenario.wall(plan.length)).unwrap_or(Duration::zero());
        Night {
            name: plan.name.clone(),
            start,
            end: start + wall,
            time_scale: plan.time_scale,
            top_level: plan.ladder_levels,
            margin_secs: plan.margin.as_secs(),
            s1_target_secs: plan.s1_target.as_secs(),
            s2_target_secs: plan.s2_target.as_secs(),
        }
    }

    fn scale(&self) -> i64 {
        i64::from(self.time_scale.max(1))
    }

    /// The night time a wall-time span stands for (clamped to ±100 years: never a panic).
    pub fn night_span(&self, wall: Duration) -> Duration {
        const BOUND: i128 = 100 * 366 * 86_400_000;
        let ms = i128::from(wall.num_milliseconds()) * i128::from(self.scale());
        Duration::milliseconds(i64::try_from(ms.clamp(-BOUND, BOUND)).unwrap_or(0))
    }

    /// Night time since the start of `t` (negative before it).
    pub fn offset(&self, t: DateTime<Utc>) -> Duration {
        self.night_span(t - self.start)
    }

    /// The margin on the wall clock.
    fn wall_margin(&self) -> Duration {
        let ms = i64::try_from(self.margin_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Duration::milliseconds(ms / self.scale())
    }
}

/// What became of one page job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageResult {
    /// E-mail or webhook accepted by the other end.
    Delivered,
    /// The phone was answered.
    Answered,
    NotAnswered,
    Busy,
    /// The channel failed (SMTP down, webhook 5xx, no route): nobody heard of it.
    Failed(String),
}

impl PageResult {
    /// Whether the page reached someone: a phone that rang unanswered or was busy told
    /// nobody, so it does not count as the level knowing (nor as the top paged).
    fn reached(&self) -> bool {
        matches!(self, PageResult::Delivered | PageResult::Answered)
    }

    fn word(&self) -> &str {
        match self {
            PageResult::Delivered => "delivered",
            PageResult::Answered => "answered",
            PageResult::NotAnswered => "not answered",
            PageResult::Busy => "busy",
            PageResult::Failed(_) => "failed",
        }
    }
}

fn climb() -> String {
    "climb".into()
}

/// One page the runner saw (a technician's phone rang, a mail or webhook arrived or failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageTrace {
    pub at: DateTime<Utc>,
    /// "phone", "email", "webhook"...
    pub channel: String,
    pub level: u32,
    pub round: u32,
    pub person: String,
    pub result: PageResult,
    /// The ladder's phase ("climb", "lapsed", "notice"): part of the engine's dedup key, so a
    /// lapsed re-climb is not a duplicate of the first climb. Absent: "climb".
    #[serde(default = "climb")]
    pub phase: String,
    /// Told by another ticket's page (pages to one person grouped): not a page of its own.
    #[serde(default)]
    pub carried: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub at: DateTime<Utc>,
    pub by: String,
}

/// One ticket as the runner saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketTrace {
    pub number: String,
    pub severity: Severity,
    pub caller: String,
    pub voicemail_end: DateTime<Utc>,
    pub callback_due: DateTime<Utc>,
    pub pages: Vec<PageTrace>,
    pub acknowledged: Option<Ack>,
    pub callback_connected: Option<DateTime<Utc>>,
}

/// One call the runner placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTrace {
    pub caller: String,
    pub placed_at: DateTime<Utc>,
    pub severity: Severity,
    /// The ticket the call ended in, if any.
    pub ticket: Option<String>,
    /// An after-hours S1/S2 caller who left a message expects one (see
    /// [`super::scenario::Call::expects_ticket`]).
    pub expects_ticket: bool,
    /// Calls placed: more than one when the line dropped before the message was left (a node
    /// died under it) and the caller, as a person would, called again.
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetBy {
    /// The customer was connected by the due time.
    CallbackOnTime,
    /// Not called back in time, but the top of the ladder was paged by due time − margin.
    TopPagedInTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    Met {
        by: MetBy,
    },
    Missed {
        explanation: String,
    },
    /// S3: no callback promised at night.
    NoTarget,
}

/// One ticket's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketVerdict {
    pub number: String,
    pub severity: Severity,
    /// Whether the promise held for this ticket (S3: always, nothing was promised).
    pub met: bool,
    pub verdict: Verdict,
    pub caller: String,
    pub voicemail_end: DateTime<Utc>,
    pub callback_due: DateTime<Utc>,
    pub first_page: Option<DateTime<Utc>>,
    pub acknowledged: Option<Ack>,
    pub callback_connected: Option<DateTime<Utc>>,
    /// Pages beyond the first with the same (phase, channel, person, level, round).
    pub duplicate_pages: usize,
    pub pages: Vec<PageTrace>,
}

/// The drill's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightReport {
    #[serde(flatten)]
    pub night: Night,
    /// No S1/S2 missed and no call lost.
    pub promise_held: bool,
    /// Ordered by voicemail end.
    pub tickets: Vec<TicketVerdict>,
    /// Tickets per severity, S3 included.
    pub ticket_counts: BTreeMap<Severity, usize>,
    /// S1 and S2 only, zeros included.
    pub met: BTreeMap<Severity, usize>,
    pub missed: BTreeMap<Severity, usize>,
    /// Every ticket's duplicate pages together.
    pub duplicate_pages: usize,
    /// Calls that expected a ticket and got none.
    pub calls_without_ticket: usize,
    pub lost_calls: Vec<CallTrace>,
    /// Callers whose line dropped before their message was left and who called again.
    #[serde(default)]
    pub callers_who_called_again: usize,
    /// The person who received the most pages (calls, e-mails, webhooks; a page that carried
    /// several tickets counts once), and how many.
    #[serde(default)]
    pub most_paged: Option<PersonPages>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonPages {
    pub person: String,
    pub pages: usize,
}

impl NightReport {
    /// Whether a report read from outside (the console takes them over HTTP) is one a drill
    /// could have made: every figure in range and every time within the night or the week
    /// after it, so that drawing it is bounded and no time arithmetic can overflow.
    pub fn check(&self) -> Result<(), String> {
        let n = &self.night;
        let max_night = MAX_NIGHT.as_secs();
        if !(1..=MAX_TIME_SCALE).contains(&n.time_scale) {
            return Err(format!(
                "time_scale {} is not 1 to {MAX_TIME_SCALE}",
                n.time_scale
            ));
        }
        if n.top_level == 0 || n.top_level > MAX_LADDER_LEVELS {
            return Err(format!(
                "top_level {} is not 1 to {MAX_LADDER_LEVELS}",
                n.top_level
            ));
        }
        for (what, v) in [
            ("margin_secs", n.margin_secs),
            ("s1_target_secs", n.s1_target_secs),
            ("s2_target_secs", n.s2_target_secs),
        ] {
            if v > max_night {
                return Err(format!("{what} {v} is longer than a night ({max_night} s)"));
            }
        }
        if n.end < n.start || n.night_span(n.end - n.start) > secs(max_night) {
            return Err("the night ends before it starts, or lasts more than 24 hours".into());
        }
        if self.tickets.len() > MAX_CALLS || self.lost_calls.len() > MAX_CALLS {
            return Err(format!("more than {MAX_CALLS} tickets or calls"));
        }
        let pages: usize = self.tickets.iter().map(|t| t.pages.len()).sum();
        if pages > MAX_PAGES {
            return Err(format!("{pages} pages: at most {MAX_PAGES}"));
        }
        let (from, to) = (n.start - Duration::days(1), n.end + Duration::days(7));
        let inside = |t: DateTime<Utc>| (from..=to).contains(&t);
        for t in &self.tickets {
            let times = [
                Some(t.voicemail_end),
                Some(t.callback_due),
                t.first_page,
                t.callback_connected,
            ]
            .into_iter()
            .flatten()
            .chain(t.acknowledged.iter().map(|a| a.at))
            .chain(t.pages.iter().map(|p| p.at));
            if let Some(bad) = times.into_iter().find(|&x| !inside(x)) {
                return Err(format!("ticket {}: {bad} is outside the night", t.number));
            }
        }
        Ok(())
    }

    pub fn build(night: Night, tickets: &[TicketTrace], calls: &[CallTrace]) -> NightReport {
        let mut verdicts: Vec<TicketVerdict> = tickets.iter().map(|t| judge(&night, t)).collect();
        verdicts.sort_by(|a, b| (a.voicemail_end, &a.number).cmp(&(b.voicemail_end, &b.number)));
        let mut ticket_counts = BTreeMap::new();
        let mut met = BTreeMap::from([(Severity::S1, 0), (Severity::S2, 0)]);
        let mut missed = met.clone();
        for v in &verdicts {
            *ticket_counts.entry(v.severity).or_insert(0) += 1;
            match v.verdict {
                Verdict::Met { .. } => *met.entry(v.severity).or_insert(0) += 1,
                Verdict::Missed { .. } => *missed.entry(v.severity).or_insert(0) += 1,
                Verdict::NoTarget => {}
            }
        }
        let lost_calls: Vec<CallTrace> = calls
            .iter()
            .filter(|c| c.expects_ticket && c.ticket.is_none())
            .cloned()
            .collect();
        let duplicate_pages = verdicts.iter().map(|v| v.duplicate_pages).sum();
        NightReport {
            promise_held: missed.values().all(|&n| n == 0) && lost_calls.is_empty(),
            night,
            tickets: verdicts,
            ticket_counts,
            met,
            missed,
            duplicate_pages,
            calls_without_ticket: lost_calls.len(),
            lost_calls,
            callers_who_called_again: calls.iter().filter(|c| c.attempts > 1).count(),
            most_paged: most_paged(tickets),
        }
    }

    /// The report for a terminal: a header, one row per ticket, the totals.
    pub fn table(&self) -> String {
        let n = &self.night;
        let mut out = String::new();
        let title = escaped(&n.name);
        if n.time_scale > 1 {
            let _ = writeln!(out, "DRILL (time ×{}): {title}", n.time_scale);
        } else {
            let _ = writeln!(out, "DRILL (real time): {title}");
        }
        let _ = writeln!(
            out,
            "night of {} (wall time {} to {}); targets S1 {}, S2 {}; the top (level {}) by target − {}; times are night offsets",
            span(n.night_span(n.end - n.start)),
            n.start.format("%H:%M:%S"),
            n.end.format("%H:%M:%S"),
            span(secs(n.s1_target_secs)),
            span(secs(n.s2_target_secs)),
            n.top_level,
            span(secs(n.margin_secs)),
        );
        out.push('\n');

        let header = [
            "TICKET",
            "SEV",
            "VOICEMAIL",
            "1ST PAGE",
            "ACK",
            "CALLBACK",
            "TARGET",
            "VERDICT",
            "WHY",
        ];
        let at = |t: Option<DateTime<Utc>>| t.map(|t| clock(n.offset(t))).unwrap_or("-".into());
        let rows: Vec<[String; 9]> = self
            .tickets
            .iter()
            .map(|v| {
                let (word, why) = match &v.verdict {
                    Verdict::Met {
                        by: MetBy::CallbackOnTime,
                    } => ("MET", "called back on time".to_string()),
                    Verdict::Met {
                        by: MetBy::TopPagedInTime,
                    } => ("MET", top_paged(n, v)),
                    Verdict::Missed { explanation } => ("MISSED", explanation.clone()),
                    Verdict::NoTarget => ("-", "no target tonight".to_string()),
                };
                let ack = match &v.acknowledged {
                    Some(a) => format!("{} {}", escaped(&a.by), clock(n.offset(a.at))),
                    None => "-".into(),
                };
                let dup = if v.duplicate_pages > 0 {
                    format!(" ({} duplicate pages)", v.duplicate_pages)
                } else {
                    String::new()
                };
                [
                    escaped(&v.number).into_owned(),
                    v.severity.to_string(),
                    at(Some(v.voicemail_end)),
                    at(v.first_page),
                    ack,
                    at(v.callback_connected),
                    at(Some(v.callback_due)),
                    word.to_string(),
                    format!("{why}{dup}"),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = w.saturating_sub(cell.chars().count());
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad + 2));
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&header));
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            let _ = writeln!(out, "{}", line(&cells));
        }
        out.push('\n');

        for sev in [Severity::S1, Severity::S2] {
            let _ = writeln!(
                out,
                "{sev}: {} tickets, {} met, {} missed",
                self.ticket_counts.get(&sev).unwrap_or(&0),
                self.met.get(&sev).unwrap_or(&0),
                self.missed.get(&sev).unwrap_or(&0),
            );
        }
        let _ = writeln!(
            out,
            "S3: {} tickets (no target tonight)",
            self.ticket_counts.get(&Severity::S3).unwrap_or(&0)
        );
        let _ = writeln!(out, "duplicate pages: {}", self.duplicate_pages);
        if let Some(m) = &self.most_paged {
            let _ = writeln!(out, "most pages to one person: {} ({})", m.pages, m.person);
        }
        if self.callers_who_called_again > 0 {
            let _ = writeln!(
                out,
                "callers who called again after their line dropped: {}",
                self.callers_who_called_again
            );
        }
        let _ = write!(out, "calls without ticket: {}", self.calls_without_ticket);
        let lost: Vec<String> = self
            .lost_calls
            .iter()
            .take(10)
            .map(|c| {
                format!(
                    "{} {} at {}",
                    c.severity,
                    escaped(&c.caller),
                    clock(n.offset(c.placed_at))
                )
            })
            .collect();
        if !lost.is_empty() {
            let more = if self.lost_calls.len() > lost.len() {
                ", ..."
            } else {
                ""
            };
            let _ = write!(out, " ({}{more})", lost.join(", "));
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            if self.promise_held {
                "PROMISE HELD"
            } else {
                "PROMISE BROKEN"
            }
        );
        out
    }

    /// The night drawn: see [`super::svg`].
    pub fn svg(&self) -> String {
        super::svg::render(self)
    }
}

/// "not called back in time; the top (tech-d) was paged 12 min before the target".
fn top_paged(night: &Night, v: &TicketVerdict) -> String {
    let first = v
        .pages
        .iter()
        .filter(|p| p.level >= night.top_level && p.result.reached())
        .min_by_key(|p| p.at);
    match first {
        Some(p) => format!(
            "not called back in time; the top ({}) was paged {}",
            escaped(&p.person),
            relative(night, p.at, v.callback_due)
        ),
        None => "the top was paged in time".into(),
    }
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

/// A night span for people: "45 s", "4 min 30 s", "18 min", "90 min", "6 h", "2 h 05 min".
pub(crate) fn span(d: Duration) -> String {
    let s = d.num_seconds().abs();
    if s < 60 {
        format!("{s} s")
    } else if s < 600 && s % 60 != 0 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 2 * 3600 {
        format!("{} min", s / 60)
    } else if s % 3600 < 60 {
        format!("{} h", s / 3600)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// A night offset for the table: "+1:02:03" ("-0:00:05" before the start).
pub(crate) fn clock(d: Duration) -> String {
    let s = d.num_seconds();
    let sign = if s < 0 { '-' } else { '+' };
    let s = s.abs();
    format!("{sign}{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// "18 min before the target", "3 min after the target", "at the target".
fn relative(night: &Night, t: DateTime<Utc>, due: DateTime<Utc>) -> String {
    let d = night.night_span(due - t);
    if d.num_seconds() == 0 {
        "at the target".into()
    } else if d > Duration::zero() {
        format!("{} before the target", span(d))
    } else {
        format!("{} after the target", span(d))
    }
}

fn judge(night: &Night, t: &TicketTrace) -> TicketVerdict {
    let verdict = verdict(night, t);
    let mut seen: HashMap<(&str, &str, &str, u32, u32), usize> = HashMap::new();
    for p in &t.pages {
        *seen
            .entry((&p.phase, &p.channel, &p.person, p.level, p.round))
            .or_insert(0) += 1;
    }
    TicketVerdict {
        number: t.number.clone(),
        severity: t.severity,
        met: !matches!(verdict, Verdict::Missed { .. }),
        verdict,
        caller: t.caller.clone(),
        voicemail_end: t.voicemail_end,
        callback_due: t.callback_due,
        first_page: t.pages.iter().map(|p| p.at).min(),
        acknowledged: t.acknowledged.clone(),
        callback_connected: t.callback_connected,
        duplicate_pages: seen.values().map(|n| n - 1).sum(),
        pages: t.pages.clone(),
    }
}

/// Pages each person received (carried ones are part of another page), the most first.
fn most_paged(tickets: &[TicketTrace]) -> Option<PersonPages> {
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for p in tickets.iter().flat_map(|t| &t.pages).filter(|p| !p.carried) {
        *per.entry(p.person.as_str()).or_insert(0) += 1;
    }
    per.into_iter()
        .max_by_key(|(person, n)| (*n, std::cmp::Reverse(*person)))
        .map(|(person, pages)| PersonPages {
            person: person.to_string(),
            pages,
        })
}

fn verdict(night: &Night, t: &TicketTrace) -> Verdict {
    if t.severity == Severity::S3 {
        return Verdict::NoTarget;
    }
    if t.callback_connected.is_some_and(|c| c <= t.callback_due) {
        return Verdict::Met {
            by: MetBy::CallbackOnTime,
        };
    }
    let deadline = t.callback_due - night.wall_margin();
    let top_in_time = t
        .pages
        .iter()
        .any(|p| p.level >= night.top_level && p.result.reached() && p.at <= deadline);
    if top_in_time {
        return Verdict::Met {
            by: MetBy::TopPagedInTime,
        };
    }
    Verdict::Missed {
        explanation: explain(night, t),
    }
}

/// Per channel, the best its pages did: "phone not answered, email failed, webhook delivered".
fn how_it_went<'p>(pages: impl Iterator<Item = &'p PageTrace>) -> String {
    // Answered beats delivered beats busy beats silence beats failure.
    let rank = |r: &PageResult| match r {
        PageResult::Answered => 0,
        PageResult::Delivered => 1,
        PageResult::Busy => 2,
        PageResult::NotAnswered => 3,
        PageResult::Failed(_) => 4,
    };
    let mut best: Vec<(&str, &PageResult)> = Vec::new();
    for p in pages {
        match best.iter_mut().find(|(c, _)| *c == p.channel) {
            Some(b) if rank(&p.result) < rank(b.1) => b.1 = &p.result,
            Some(_) => {}
            None => best.push((&p.channel, &p.result)),
        }
    }
    best.iter()
        .map(|(c, r)| format!("{c} {}", r.word()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most pages a report may hold (the storm on one node made about 19,000).
pub const MAX_PAGES: usize = 1_000_000;

/// Why a ticket missed: who knew, how long before the target, and what the top heard.
fn explain(night: &Night, t: &TicketTrace) -> String {
    let due = t.callback_due;
    let top = night.top_level;
    let margin = span(secs(night.margin_secs));
    let reached: Vec<&PageTrace> = t
        .pages
        .iter()
        .filter(|p| p.result.reached() && p.at <= due)
        .collect();
    let mut parts = Vec::new();

    match reached.iter().map(|p| p.level).max() {
        None => {
            let failed: Vec<&PageTrace> = t.pages.iter().filter(|p| !p.result.reached()).collect();
            let late = t
                .pages
                .iter()
                .filter(|p| p.result.reached())
                .map(|p| p.at)
                .min();
            let mut s = "nobody was paged before the target".to_string();
            if t.pages.is_empty() {
                s = "nobody was paged".into();
            }
            if let Some(f) = failed.first() {
                let reason = match &f.result {
                    PageResult::Failed(r) => r.as_str(),
                    other => other.word(),
                };
                let _ = write!(
                    s,
                    " ({} page{} reached nobody, first: {} {})",
                    failed.len(),
                    if failed.len() == 1 { "" } else { "s" },
                    f.channel,
                    reason
                );
            }
            if let Some(l) = late {
                let _ = write!(s, "; the first page came {}", relative(night, l, due));
            }
            parts.push(s);
        }
        Some(level) => {
            let here: Vec<&&PageTrace> = reached.iter().filter(|p| p.level == level).collect();
            let mut people: Vec<&str> = here.iter().map(|p| p.person.as_str()).collect();
            people.sort_unstable();
            people.dedup();
            let first = here.iter().map(|p| p.at).min().unwrap_or(due);
            let best = how_it_went(t.pages.iter().filter(|p| p.level == level && p.at <= due));
            let name = if level >= top {
                format!("the top (level {level}: {})", people.join(", "))
            } else {
                format!("level {level} ({})", people.join(", "))
            };
            let mut s = format!("{name} was paged {} ({best})", relative(night, first, due));
            if level >= top {
                let _ = write!(s, ", later than the {margin} margin");
            }
            parts.push(s);
        }
    }

    match &t.acknowledged {
        Some(a) => parts.push(format!(
            "acknowledged by {} {}",
            a.by,
            relative(night, a.at, due)
        )),
        None => parts.push("nobody acknowledged".into()),
    }
    match t.callback_connected {
        Some(c) => parts.push(format!("called back {}", relative(night, c, due))),
        None if t.acknowledged.is_some() => parts.push("never called back".into()),
        None => {}
    }

    let highest = reached.iter().map(|p| p.level).max().unwrap_or(0);
    if highest < top {
        let top_pages: Vec<&PageTrace> = t.pages.iter().filter(|p| p.level >= top).collect();
        let first_reached = top_pages
            .iter()
            .filter(|p| p.result.reached())
            .map(|p| p.at)
            .min();
        parts.push(match first_reached {
            Some(at) => format!(
                "the top (level {top}) was paged {}",
                relative(night, at, due)
            ),
            None if !top_pages.is_empty() => {
                format!("no page to the top (level {top}) reached anyone")
            }
            None => format!("the top (level {top}) was never paged"),
        });
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 22, 0, 0).unwrap()
    }

    /// Night minutes after the start, at `scale`.
    fn at(scale: u32, night_min: f64) -> DateTime<Utc> {
        t0() + Duration::milliseconds((night_min * 60_000.0 / f64::from(scale)) as i64)
    }

    fn night(scale: u32) -> Night {
        Night {
            name: "test night".into(),
            start: t0(),
            end: at(scale, 360.0),
            time_scale: scale,
            top_level: 4,
            margin_secs: 300,
            s1_target_secs: 1800,
            s2_target_secs: 3600,
        }
    }

    fn page(scale: u32, min: f64, level: u32, person: &str, result: PageResult) -> PageTrace {
        PageTrace {
            at: at(scale, min),
            channel: "phone".into(),
            level,
            round: 0,
            person: person.into(),
            result,
            phase: "climb".into(),
            carried: false,
        }
    }

    /// One e-mail that carried three tickets is one page to its person.
    #[test]
    fn a_page_carrying_others_counts_once_for_its_person() {
        let lead = PageTrace {
            channel: "email".into(),
            ..page(60, 12.0, 1, "tech-a", PageResult::Delivered)
        };
        let carried = PageTrace {
            carried: true,
            ..lead.clone()
        };
        let call = page(60, 13.0, 1, "tech-b", PageResult::Answered);
        let tickets = vec![
            s1(60, "T1", vec![lead, call.clone()]),
            s1(60, "T2", vec![carried.clone(), call]),
            s1(60, "T3", vec![carried]),
        ];
        assert_eq!(
            most_paged(&tickets),
            Some(PersonPages {
                person: "tech-b".into(),
                pages: 2
            })
        );
    }

    /// An S1 whose voicemail ended at night minute 10: due at 40.
    fn s1(scale: u32, number: &str, pages: Vec<PageTrace>) -> TicketTrace {
        TicketTrace {
            number: number.into(),
            severity: Severity::S1,
            caller: "+33612345678".into(),
            voicemail_end: at(scale, 10.0),
            callback_due: at(scale, 40.0),
            pages,
            acknowledged: None,
            callback_connected: None,
        }
    }

    fn one(scale: u32, t: TicketTrace) -> TicketVerdict {
        let r = NightReport::build(night(scale), &[t], &[]);
        r.tickets.into_iter().next().unwrap()
    }

    fn explanation(v: &TicketVerdict) -> &str {
        match &v.verdict {
            Verdict::Missed { explanation } => explanation,
            other => panic!("not missed: {other:?}"),
        }
    }

    #[test]
    fn called_back_on_time_is_met() {
        let mut t = s1(
            60,
            "T1",
            vec![page(60, 10.0, 1, "tech-a", PageResult::Answered)],
        );
        t.callback_connected = Some(at(60, 40.0));
        let v = one(60, t);
        assert_eq!(
            v.verdict,
            Verdict::Met {
                by: MetBy::CallbackOnTime
            }
        );
        assert!(v.met);
    }

    #[test]
    fn not_called_back_but_the_top_paged_by_target_minus_margin_is_met() {
        let mut t = s1(
            60,
            "T1",
            vec![
                page(60, 10.0, 1, "tech-a", PageResult::NotAnswered),
                page(60, 35.0, 4, "tech-d", PageResult::Answered),
            ],
        );
        t.callback_connected = Some(at(60, 50.0));
        assert_eq!(
            one(60, t).verdict,
            Verdict::Met {
                by: MetBy::TopPagedInTime
            }
        );
    }

    #[test]
    fn a_failed_page_to_the_top_does_not_count() {
        let t = s1(
            60,
            "T1",
            vec![PageTrace {
                channel: "email".into(),
                ..page(
                    60,
                    20.0,
                    4,
                    "tech-d",
                    PageResult::Failed("smtp down".into()),
                )
            }],
        );
        let v = one(60, t);
        assert!(!v.met);
        assert_eq!(
            explanation(&v),
            "nobody was paged before the target (1 page reached nobody, first: email smtp down); \
             nobody acknowledged; no page to the top (level 4) reached anyone"
        );
    }

    #[test]
    fn the_explanation_says_how_each_channel_of_the_level_fared() {
        let p = page(60, 12.0, 1, "tech-a", PageResult::NotAnswered);
        let email = PageTrace {
            channel: "email".into(),
            result: PageResult::Failed("smtp refused".into()),
            ..p.clone()
        };
        let webhook = PageTrace {
            channel: "webhook".into(),
            result: PageResult::Delivered,
            ..p.clone()
        };
        let again = PageTrace {
            round: 1,
            result: PageResult::Busy,
            ..p.clone()
        };
        let v = one(60, s1(60, "T1", vec![p, email, webhook, again]));
        assert!(
            explanation(&v).starts_with(
                "level 1 (tech-a) was paged 28 min before the target \
                 (phone busy, email failed, webhook delivered); nobody acknowledged"
            ),
            "{}",
            explanation(&v)
        );
    }

    #[test]
    fn the_table_says_when_the_top_was_paged_for_a_ticket_met_that_way() {
        let t = s1(
            60,
            "T1",
            vec![page(60, 30.0, 4, "tech-d", PageResult::Answered)],
        );
        let r = NightReport::build(night(60), &[t], &[]);
        assert!(
            r.table()
                .contains("MET      not called back in time; the top (tech-d) was paged 10 min before the target"),
            "{}",
            r.table()
        );
    }

    #[test]
    fn missed_with_nobody_paged() {
        let v = one(60, s1(60, "T1", vec![]));
        assert!(!v.met);
        assert_eq!(
            explanation(&v),
            "nobody was paged; nobody acknowledged; the top (level 4) was never paged"
        );
    }

    #[test]
    fn missed_with_a_level_that_acknowledged_and_never_called_back() {
        let mut t = s1(
            60,
            "T1",
            vec![
                page(60, 10.0, 1, "tech-a", PageResult::NotAnswered),
                page(60, 22.0, 2, "tech-b", PageResult::Answered),
            ],
        );
        t.acknowledged = Some(Ack {
            at: at(60, 23.0),
            by: "tech-b".into(),
        });
        let v = one(60, t);
        assert_eq!(
            explanation(&v),
            "level 2 (tech-b) was paged 18 min before the target (phone answered); \
             acknowledged by tech-b 17 min before the target; never called back; \
             the top (level 4) was never paged"
        );
    }

    /// The issue's own counter-example: one level, and its technician never answers. A phone
    /// that rang unanswered told nobody, so the top did not know: missed, and said why.
    #[test]
    fn a_top_that_never_answers_did_not_know() {
        let night = Night {
            top_level: 1,
            ..night(60)
        };
        let t = s1(
            60,
            "T1",
            vec![
                page(60, 10.0, 1, "tech-a", PageResult::NotAnswered),
                page(60, 15.0, 1, "tech-a", PageResult::Busy),
            ],
        );
        let r = NightReport::build(night, &[t], &[]);
        let v = &r.tickets[0];
        assert!(!v.met);
        assert!(!r.promise_held);
        assert_eq!(
            explanation(v),
            "nobody was paged before the target (2 pages reached nobody, first: phone not answered); \
             nobody acknowledged; no page to the top (level 1) reached anyone"
        );
    }

    #[test]
    fn missed_when_the_top_was_paged_too_late() {
        let t = s1(
            60,
            "T1",
            vec![
                page(60, 20.0, 3, "tech-c", PageResult::Answered),
                page(60, 38.0, 4, "tech-d", PageResult::Answered),
            ],
        );
        let v = one(60, t);
        assert_eq!(
            explanation(&v),
            "the top (level 4: tech-d) was paged 2 min before the target (phone answered), later \
             than the 5 min margin; nobody acknowledged"
        );
        let t = s1(
            60,
            "T2",
            vec![
                page(60, 20.0, 3, "tech-c", PageResult::Answered),
                page(60, 43.0, 4, "tech-d", PageResult::Answered),
            ],
        );
        let mut t = t;
        t.callback_connected = Some(at(60, 55.5));
        let v = one(60, t);
        assert_eq!(
            explanation(&v),
            "level 3 (tech-c) was paged 20 min before the target (phone answered); nobody acknowledged; \
             called back 15 min after the target; the top (level 4) was paged 3 min after the target"
        );
    }

    #[test]
    fn explanations_read_in_night_time_at_any_scale() {
        for scale in [1, 60] {
            let t = s1(
                scale,
                "T1",
                vec![page(scale, 22.0, 2, "tech-b", PageResult::Answered)],
            );
            let v = one(scale, t);
            assert!(
                explanation(&v).starts_with("level 2 (tech-b) was paged 18 min before the target"),
                "scale {scale}: {}",
                explanation(&v)
            );
        }
        // At ×60 the 5 min margin is 5 s of wall time: a top page 4 night minutes before the
        // target is late, one 6 minutes before is in time.
        let late = s1(60, "T1", vec![page(60, 36.0, 4, "d", PageResult::Answered)]);
        assert!(!one(60, late).met);
        let ok = s1(60, "T1", vec![page(60, 34.0, 4, "d", PageResult::Answered)]);
        assert!(one(60, ok).met);
    }

    #[test]
    fn s3_has_no_target_and_counts_in_neither_met_nor_missed() {
        let mut t = s1(1, "T3", vec![]);
        t.severity = Severity::S3;
        let r = NightReport::build(night(1), &[t], &[]);
        assert_eq!(r.tickets[0].verdict, Verdict::NoTarget);
        assert!(r.tickets[0].met);
        assert_eq!(r.ticket_counts.get(&Severity::S3), Some(&1));
        assert_eq!(r.met.values().sum::<usize>(), 0);
        assert_eq!(r.missed.values().sum::<usize>(), 0);
        assert!(r.promise_held);
        assert!(r.table().contains("no target tonight"));
    }

    #[test]
    fn duplicate_pages_are_the_extra_copies_of_a_page() {
        let p = page(1, 10.0, 1, "tech-a", PageResult::NotAnswered);
        let email = PageTrace {
            channel: "email".into(),
            result: PageResult::Delivered,
            ..p.clone()
        };
        let lapsed = PageTrace {
            phase: "lapsed".into(),
            ..p.clone()
        };
        let round1 = PageTrace {
            round: 1,
            ..p.clone()
        };
        let t1 = s1(
            1,
            "T1",
            vec![p.clone(), p.clone(), p.clone(), email, lapsed, round1],
        );
        let t2 = s1(1, "T2", vec![p.clone(), p]);
        let r = NightReport::build(night(1), &[t1, t2], &[]);
        assert_eq!(r.tickets[0].duplicate_pages, 2);
        assert_eq!(r.tickets[1].duplicate_pages, 1);
        assert_eq!(r.duplicate_pages, 3);
    }

    #[test]
    fn calls_that_expected_a_ticket_and_got_none_are_lost() {
        let call = |caller: &str, ticket: Option<&str>, expects: bool| CallTrace {
            caller: caller.into(),
            placed_at: at(1, 5.0),
            severity: Severity::S1,
            ticket: ticket.map(String::from),
            expects_ticket: expects,
            attempts: 1,
        };
        let calls = [
            call("+331", Some("T1"), true),
            call("+332", None, true),
            call("+333", None, false),
        ];
        let r = NightReport::build(night(1), &[], &calls);
        assert_eq!(r.calls_without_ticket, 1);
        assert_eq!(r.lost_calls[0].caller, "+332");
        assert!(!r.promise_held);
        assert!(r
            .table()
            .contains("calls without ticket: 1 (S1 +332 at +0:05:00)"));
    }

    fn mixed(scale: u32) -> NightReport {
        let mut on_time = s1(
            scale,
            "20260110001",
            vec![page(scale, 10.0, 1, "tech-a", PageResult::Answered)],
        );
        on_time.acknowledged = Some(Ack {
            at: at(scale, 11.0),
            by: "tech-a".into(),
        });
        on_time.callback_connected = Some(at(scale, 20.0));
        let missed = s1(scale, "20260110002", vec![]);
        let mut s2 = s1(
            scale,
            "20260110003",
            vec![page(
                scale,
                10.0,
                1,
                "<b>&",
                PageResult::Failed("503".into()),
            )],
        );
        s2.severity = Severity::S2;
        s2.callback_due = at(scale, 70.0);
        s2.callback_connected = Some(at(scale, 30.0));
        NightReport::build(night(scale), &[on_time, missed, s2], &[])
    }

    #[test]
    fn the_json_has_the_runners_keys() {
        let r = mixed(60);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["time_scale"], 60);
        assert_eq!(json["duplicate_pages"], 0);
        assert_eq!(json["calls_without_ticket"], 0);
        assert_eq!(json["met"], serde_json::json!({"S1": 1, "S2": 1}));
        assert_eq!(json["missed"], serde_json::json!({"S1": 1, "S2": 0}));
        let t = &json["tickets"][1];
        assert_eq!(t["number"], "20260110002");
        assert_eq!(t["severity"], "S1");
        assert_eq!(t["met"], false);
        assert_eq!(t["verdict"]["kind"], "missed");
        assert_eq!(json["tickets"][0]["verdict"]["by"], "callback_on_time");
        assert_eq!(json["promise_held"], false);
    }

    /// A report from outside (the console takes them over HTTP) is checked before it is kept
    /// or drawn: absurd scales, nights and times are refused, and nothing on the way panics.
    #[test]
    fn a_hostile_report_is_refused_and_never_panics() {
        let mut t = s1(
            60,
            "T1",
            vec![page(60, 10.0, 1, "tech-a", PageResult::Answered)],
        );
        t.callback_connected = Some(at(60, 20.0));
        let good = NightReport::build(night(60), &[t], &[]);
        assert_eq!(good.check(), Ok(()));
        let far = DateTime::<Utc>::MIN_UTC;
        let mut cases: Vec<NightReport> = Vec::new();
        let mut r = good.clone();
        r.night.time_scale = 0;
        cases.push(r);
        let mut r = good.clone();
        r.night.margin_secs = u64::MAX;
        cases.push(r);
        let mut r = good.clone();
        r.night.start = far;
        cases.push(r);
        let mut r = good.clone();
        r.night.end = DateTime::<Utc>::MAX_UTC;
        r.night.time_scale = 3600;
        cases.push(r);
        let mut r = good.clone();
        r.tickets[0].pages[0].at = far;
        cases.push(r);
        for (i, r) in cases.iter().enumerate() {
            assert!(r.check().is_err(), "case {i} accepted");
            // Drawn anyway (as the CLI would, from the engine's own data): no panic.
            let _ = (r.table(), r.svg());
        }
    }

    /// The console keeps a report as JSON and draws it again: what it reads back is the same.
    #[test]
    fn a_report_round_trips_through_json() {
        let mut t = s1(
            60,
            "T1",
            vec![page(60, 10.0, 1, "tech-a", PageResult::Answered)],
        );
        t.callback_connected = Some(at(60, 20.0));
        let r = NightReport::build(night(60), &[t], &[]);
        let json = serde_json::to_string(&r).unwrap_or_default();
        let back: NightReport = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }

    #[test]
    fn traces_round_trip_through_json() {
        let mut t = s1(
            60,
            "T1",
            vec![page(60, 10.0, 1, "tech-a", PageResult::Failed("x".into()))],
        );
        t.acknowledged = Some(Ack {
            at: at(60, 12.0),
            by: "tech-a".into(),
        });
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TicketTrace>(&json).unwrap(), t);
        // A trace written without a phase is a climb.
        let page = r#"{"at":"2026-01-10T22:00:00Z","channel":"phone","level":1,"round":0,"person":"a","result":"busy"}"#;
        assert_eq!(
            serde_json::from_str::<PageTrace>(page).unwrap().phase,
            "climb"
        );
    }

    #[test]
    fn the_table_says_drill_scale_and_one_row_per_ticket() {
        let r = mixed(60);
        let table = r.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "DRILL (time ×60): test night");
        assert!(
            lines[1].contains("targets S1 30 min, S2 60 min"),
            "{}",
            lines[1]
        );
        let row = lines.iter().find(|l| l.starts_with("20260110001")).unwrap();
        assert!(
            row.contains("+0:10:00") && row.contains("tech-a +0:11:00") && row.contains("MET"),
            "{row}"
        );
        let row = lines.iter().find(|l| l.starts_with("20260110002")).unwrap();
        assert!(
            row.contains("MISSED") && row.contains("nobody was paged"),
            "{row}"
        );
        assert!(table.contains("S1: 2 tickets, 1 met, 1 missed"), "{table}");
        assert!(table.ends_with("PROMISE BROKEN\n"), "{table}");
        assert!(mixed(1)
            .table()
            .starts_with("DRILL (real time): test night\n"));
    }

    #[test]
    fn night_from_a_scenario_ends_after_its_wall_length() {
        let s = Scenario::parse(
            "[night]\nname = \"n\"\nlength = \"6h\"\ntime_scale = 60\nmargin = \"4m\"\n",
        )
        .unwrap();
        let n = Night::from_scenario(&s, t0());
        assert_eq!(n.end - n.start, Duration::minutes(6));
        assert_eq!(
            (n.top_level, n.margin_secs, n.s1_target_secs),
            (4, 240, 1800)
        );
        assert_eq!(n.offset(n.end), Duration::hours(6));
    }
}
