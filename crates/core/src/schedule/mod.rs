//! Business hours, holidays, maintenance windows and SLA deadlines.
//!
//! Everything here is pure: `now` is always an argument, so a whole year of calendar or a
//! daylight-saving night is a millisecond test. Hour ranges are written the way the guide writes
//! them, "08:00-18:00" with the end minute included (open at 18:00, closed from 18:01).

pub mod holidays;
pub mod sla;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config_issue::{ConfigIssue, KeySeg};
pub use holidays::{Calendar, ObservedRule};
pub use sla::{Due, SlaConfig, TimeScale};

/// How far ahead `next_change` and the business-time arithmetic look before giving up.
const HORIZON_DAYS: i64 = 800;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Opening hours per weekday; an empty `[schedule.open]` table means always closed.
    #[serde(default = "default_open")]
    pub open: WeekHours,
    #[serde(default)]
    pub holidays: HolidaysConfig,
    /// Planned maintenance windows per weekday (guide section 8: Mon–Thu 00:01–04:00).
    #[serde(default = "default_maintenance")]
    pub maintenance: WeekHours,
    #[serde(default)]
    pub sla: SlaConfig,
}

/// Ranges such as "08:00-18:00" per weekday, local to `[schedule] timezone`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeekHours {
    #[serde(default)]
    pub mon: Vec<String>,
    #[serde(default)]
    pub tue: Vec<String>,
    #[serde(default)]
    pub wed: Vec<String>,
    #[serde(default)]
    pub thu: Vec<String>,
    #[serde(default)]
    pub fri: Vec<String>,
    #[serde(default)]
    pub sat: Vec<String>,
    #[serde(default)]
    pub sun: Vec<String>,
}

impl WeekHours {
    fn days(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }

    fn weekdays(ranges: &[&str], days: &[usize]) -> WeekHours {
        let mut w = WeekHours::default();
        let v: Vec<String> = ranges.iter().map(|s| s.to_string()).collect();
        for &d in days {
            match d {
                0 => w.mon = v.clone(),
                1 => w.tue = v.clone(),
                2 => w.wed = v.clone(),
                3 => w.thu = v.clone(),
                4 => w.fri = v.clone(),
                5 => w.sat = v.clone(),
                _ => w.sun = v.clone(),
            }
        }
        w
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidaysConfig {
    /// "quebec" (the default) or "none".
    #[serde(default = "default_calendar")]
    pub calendar: String,
    /// "next_weekday" (default), "nearest_weekday" or "none": where a weekend holiday moves.
    #[serde(default = "default_observed")]
    pub observed: String,
    /// Admin-added closed days.
    #[serde(default)]
    pub extra: Vec<ExtraDay>,
    /// Computed holidays the business works anyway ("YYYY-MM-DD", legal or observed date).
    #[serde(default)]
    pub removed: Vec<String>,
    /// Closures by local date-time, e.g. a Christmas Eve afternoon.
    #[serde(default)]
    pub closures: Vec<ClosureConfig>,
}

impl Default for HolidaysConfig {
    fn default() -> Self {
        HolidaysConfig {
            calendar: default_calendar(),
            observed: default_observed(),
            extra: Vec::new(),
            removed: Vec::new(),
            closures: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDay {
    pub date: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureConfig {
    /// Local "YYYY-MM-DDTHH:MM".
    pub from: String,
    pub to: String,
    pub name: String,
}

fn default_tz() -> String {
    "America/Toronto".into()
}
fn default_open() -> WeekHours {
    WeekHours::weekdays(&["08:00-18:00"], &[0, 1, 2, 3, 4])
}
fn default_maintenance() -> WeekHours {
    WeekHours::weekdays(&["00:01-04:00"], &[0, 1, 2, 3])
}
fn default_calendar() -> String {
    "quebec".into()
}
fn default_observed() -> String {
    "next_weekday".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            timezone: default_tz(),
            open: default_open(),
            holidays: HolidaysConfig::default(),
            maintenance: default_maintenance(),
            sla: SlaConfig::default(),
        }
    }
}

impl ScheduleConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        for e in self.build().err().into_iter().flatten() {
            issues.push(e.into_issue());
        }
        self.sla.validate(issues);
    }

    fn build(&self) -> Result<Schedule, Vec<ScheduleError>> {
        let mut errors = Vec::new();
        let tz = match self.timezone.parse::<Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                errors.push(ScheduleError::new(
                    vec![KeySeg::Key("timezone")],
                    format!("\"{}\" is not an IANA time zone", self.timezone),
                    "write a zone name such as \"America/Toronto\"",
                ));
                Tz::America__Toronto
            }
        };
        let week = parse_week(&self.open, "open", &mut errors);
        let maintenance = parse_week(&self.maintenance, "maintenance", &mut errors);
        let h = &self.holidays;
        let calendar = match h.calendar.as_str() {
            "quebec" => Calendar::Quebec,
            "none" => Calendar::None,
            other => {
                errors.push(ScheduleError::new(
                    vec![KeySeg::Key("holidays"), KeySeg::Key("calendar")],
                    format!("unknown holiday calendar \"{other}\""),
                    "write \"quebec\" (Québec statutory holidays) or \"none\" (only the extra dates)",
                ));
                Calendar::Quebec
            }
        };
        let observed = match h.observed.as_str() {
            "next_weekday" => ObservedRule::NextWeekday,
            "nearest_weekday" => ObservedRule::NearestWeekday,
            "none" => ObservedRule::None,
            other => {
                errors.push(ScheduleError::new(
                    vec![KeySeg::Key("holidays"), KeySeg::Key("observed")],
                    format!("unknown observed-day rule \"{other}\""),
                    "write \"next_weekday\", \"nearest_weekday\" or \"none\"",
                ));
                ObservedRule::NextWeekday
            }
        };
        let mut extra = BTreeMap::new();
        for (i, e) in h.extra.iter().enumerate() {
            match NaiveDate::parse_from_str(&e.date, "%Y-%m-%d") {
                Ok(d) => {
                    extra.insert(d, e.name.clone());
                }
                Err(_) => errors.push(ScheduleError::new(
                    vec![
                        KeySeg::Key("holidays"),
                        KeySeg::Key("extra"),
                        KeySeg::Index(i),
                        KeySeg::Key("date"),
                    ],
                    format!("\"{}\" is not a date", e.date),
                    "write the date as \"YYYY-MM-DD\", e.g. \"2025-12-26\"",
                )),
            }
        }
        let mut removed = BTreeSet::new();
        for (i, r) in h.removed.iter().enumerate() {
            match NaiveDate::parse_from_str(r, "%Y-%m-%d") {
                Ok(d) => {
                    removed.insert(d);
                }
                Err(_) => errors.push(ScheduleError::new(
                    vec![
                        KeySeg::Key("holidays"),
                        KeySeg::Key("removed"),
                        KeySeg::Index(i),
                    ],
                    format!("\"{r}\" is not a date"),
                    "write the date as \"YYYY-MM-DD\"",
                )),
            }
        }
        let mut closures = Vec::new();
        for (i, c) in h.closures.iter().enumerate() {
            let parse = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").ok();
            let path = |k: &'static str| {
                vec![
                    KeySeg::Key("holidays"),
                    KeySeg::Key("closures"),
                    KeySeg::Index(i),
                    KeySeg::Key(k),
                ]
            };
            match (parse(&c.from), parse(&c.to)) {
                (Some(f), Some(t)) if f < t => {
                    closures.push((local_to_utc(tz, f), local_to_utc(tz, t), c.name.clone()))
                }
                (Some(_), Some(_)) => errors.push(ScheduleError::new(
                    path("to"),
                    format!("closure \"{}\" ends before it starts", c.name),
                    "make `to` later than `from`",
                )),
                (None, _) => errors.push(ScheduleError::new(
                    path("from"),
                    format!("\"{}\" is not a local date-time", c.from),
                    "write \"YYYY-MM-DDTHH:MM\" in the schedule's time zone",
                )),
                (_, None) => errors.push(ScheduleError::new(
                    path("to"),
                    format!("\"{}\" is not a local date-time", c.to),
                    "write \"YYYY-MM-DDTHH:MM\" in the schedule's time zone",
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Schedule {
            tz,
            week,
            maintenance,
            calendar,
            observed,
            extra,
            removed,
            closures,
            sla: self.sla.clone(),
        })
    }
}

/// A problem in `[schedule]`, with its key path below `schedule`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule.{key}: {message} (fix: {fix})")]
pub struct ScheduleError {
    path: Vec<KeySeg>,
    key: String,
    pub message: String,
    pub fix: String,
}

impl ScheduleError {
    fn new(path: Vec<KeySeg>, message: String, fix: &str) -> Self {
        let key = ConfigIssue::new(path.clone(), "", "").key_path();
        ScheduleError {
            path,
            key,
            message,
            fix: fix.into(),
        }
    }

    fn into_issue(self) -> ConfigIssue {
        let mut path = vec![KeySeg::Key("schedule")];
        path.extend(self.path);
        ConfigIssue::new(path, self.message, self.fix)
    }
}

/// Minutes of the day, end exclusive: "08:00-18:00" is (480, 1081).
type Range = (u16, u16);

fn parse_minute(s: &str) -> Option<u16> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()?;
    use chrono::Timelike;
    Some((t.hour() * 60 + t.minute()) as u16)
}

fn parse_range(s: &str) -> Option<Range> {
    let (a, b) = s.split_once('-')?;
    let start = parse_minute(a)?;
    let end = parse_minute(b)? + 1;
    (start < end).then_some((start, end))
}

fn parse_week(
    w: &WeekHours,
    section: &'static str,
    errors: &mut Vec<ScheduleError>,
) -> [Vec<Range>; 7] {
    let mut out: [Vec<Range>; 7] = Default::default();
    for (i, (day, ranges)) in w.days().into_iter().enumerate() {
        for (j, r) in ranges.iter().enumerate() {
            match parse_range(r) {
                Some(range) => out[i].push(range),
                None => errors.push(ScheduleError::new(
                    vec![KeySeg::Key(section), KeySeg::Key(day), KeySeg::Index(j)],
                    format!("\"{r}\" is not a range of hours"),
                    "write \"HH:MM-HH:MM\" with the end after the start, e.g. \"08:00-18:00\" (both minutes included)",
                )),
            }
        }
        out[i].sort();
    }
    out
}

/// A local wall time to an instant: the earlier of two in the autumn fold, and the first
/// instant after the spring gap for a time that does not exist.
fn local_to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = t;
    for _ in 0..180 {
        if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
            return dt.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    // No zone has a gap of three hours; treat the wall time as UTC rather than fail.
    Utc.from_utc_datetime(&t)
}

/// Why the line is open or closed at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    BusinessHours,
    Holiday { name: String, observed: bool },
    Closure { name: String },
    Weekend,
    OutsideHours,
    NoHoursThatDay,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BusinessHours => write!(f, "business hours"),
            Reason::Holiday {
                name,
                observed: false,
            } => write!(f, "holiday: {name}"),
            Reason::Holiday {
                name,
                observed: true,
            } => write!(f, "holiday: {name} (observed)"),
            Reason::Closure { name } => write!(f, "closure: {name}"),
            Reason::Weekend => write!(f, "weekend"),
            Reason::OutsideHours => write!(f, "outside business hours"),
            Reason::NoHoursThatDay => write!(f, "no business hours on that weekday"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Openness {
    pub open: bool,
    pub reason: Reason,
    /// When `open` flips next; `None` when it never does within the horizon (always closed).
    pub next_change: Option<DateTime<Utc>>,
    /// The planned maintenance window in progress, if any ("Mon 00:01-04:00").
    pub maintenance: Option<String>,
}

/// The compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    week: [Vec<Range>; 7],
    maintenance: [Vec<Range>; 7],
    calendar: Calendar,
    observed: ObservedRule,
    extra: BTreeMap<NaiveDate, String>,
    removed: BTreeSet<NaiveDate>,
    closures: Vec<(DateTime<Utc>, DateTime<Utc>, String)>,
    sla: SlaConfig,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn fmt_minute(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

impl Schedule {
    /// Compiles a configuration; the errors are the same ones `check-config` reports.
    pub fn from_config(cfg: &ScheduleConfig) -> Result<Schedule, Vec<ScheduleError>> {
        cfg.build()
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    pub fn sla(&self) -> &SlaConfig {
        &self.sla
    }

    /// The holiday that closes local date `d`, if any.
    pub fn holiday(&self, d: NaiveDate) -> Option<(String, bool)> {
        if self.removed.contains(&d) {
            return None;
        }
        if let Some(name) = self.extra.get(&d) {
            return Some((name.clone(), false));
        }
        holidays::closed_days(self.calendar, self.observed, d.year())
            .into_iter()
            .find(|c| c.date == d)
            .map(|c| (c.name.to_string(), c.observed))
    }

    /// Every holiday closure in a year, for `schedule` listings and tests.
    pub fn holidays_in(&self, year: i32) -> Vec<(NaiveDate, String, bool)> {
        let mut out: Vec<_> = holidays::closed_days(self.calendar, self.observed, year)
            .into_iter()
            .filter(|c| !self.removed.contains(&c.date))
            .map(|c| (c.date, c.name.to_string(), c.observed))
            .collect();
        for (d, name) in self.extra.range(
            NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(NaiveDate::MIN)
                ..=NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(NaiveDate::MAX),
        ) {
            out.push((*d, name.clone(), false));
        }
        out.sort();
        out
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    fn at(&self, d: NaiveDate, minute: u16) -> DateTime<Utc> {
        let (d, minute) = if minute >= 1440 {
            (d.succ_opt().unwrap_or(d), minute - 1440)
        } else {
            (d, minute)
        };
        let t = d.and_time(NaiveTime::MIN) + Duration::minutes(minute as i64);
        local_to_utc(self.tz, t)
    }

    /// Open spans of local day `d` as instants, after holidays and closures.
    fn day_spans(&self, d: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holiday(d).is_some() {
            return Vec::new();
        }
        let ranges = &self.week[d.weekday().num_days_from_monday() as usize];
        let mut spans: Vec<_> = ranges
            .iter()
            .map(|&(a, b)| (self.at(d, a), self.at(d, b)))
            .filter(|(a, b)| a < b)
            .collect();
        for (cf, ct, _) in &self.closures {
            spans = spans
                .into_iter()
                .flat_map(|(a, b)| {
                    if *ct <= a || *cf >= b {
                        vec![(a, b)]
                    } else {
                        let mut v = Vec::new();
                        if a < *cf {
                            v.push((a, *cf));
                        }
                        if *ct < b {
                            v.push((*ct, b));
                        }
                        v
                    }
                })
                .collect();
        }
        spans
    }

    /// Merged open spans that end after `t`, in order.
    fn spans_from(&self, t: DateTime<Utc>) -> Spans<'_> {
        let first = self.local_date(t).pred_opt().unwrap_or(NaiveDate::MIN);
        Spans {
            s: self,
            day: first,
            last: first + Duration::days(HORIZON_DAYS),
            buf: VecDeque::new(),
            after: t,
        }
    }

    /// Open or closed at `now`, why, and when that changes.
    pub fn is_open(&self, now: DateTime<Utc>) -> Openness {
        let next = self.spans_from(now).next();
        let horizon = now + Duration::days(HORIZON_DAYS - 2);
        let (open, next_change) = match next {
            Some((a, b)) if a <= now => (true, (b < horizon).then_some(b)),
            Some((a, _)) => (false, Some(a)),
            None => (false, None),
        };
        let reason = if open {
            Reason::BusinessHours
        } else {
            self.closed_reason(now)
        };
        Openness {
            open,
            reason,
            next_change,
            maintenance: self.maintenance_at(now),
        }
    }

    fn closed_reason(&self, now: DateTime<Utc>) -> Reason {
        if let Some((_, _, name)) = self.closures.iter().find(|(a, b, _)| *a <= now && now < *b) {
            return Reason::Closure { name: name.clone() };
        }
        let d = self.local_date(now);
        if let Some((name, observed)) = self.holiday(d) {
            return Reason::Holiday { name, observed };
        }
        let wd = d.weekday();
        if self.week[wd.num_days_from_monday() as usize].is_empty() {
            if matches!(wd, Weekday::Sat | Weekday::Sun) {
                Reason::Weekend
            } else {
                Reason::NoHoursThatDay
            }
        } else {
            Reason::OutsideHours
        }
    }

    /// The planned maintenance window containing `now` (by local wall time), if any.
    pub fn maintenance_at(&self, now: DateTime<Utc>) -> Option<String> {
        use chrono::Timelike;
        let local = now.with_timezone(&self.tz);
        let wd = local.weekday().num_days_from_monday() as usize;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.maintenance[wd]
            .iter()
            .find(|(a, b)| *a <= minute && minute < *b)
            .map(|(a, b)| {
                format!(
                    "{} {}-{}",
                    DAY_NAMES[wd],
                    fmt_minute(*a),
                    fmt_minute(*b - 1)
                )
            })
    }

    /// The next instant at or after `t` when the line is open.
    pub fn next_opening(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.spans_from(t).next().map(|(a, _)| a.max(t))
    }

    /// `t` plus `minutes` of real elapsed time: a 30-minute target across a daylight-saving
    /// change is still 30 minutes, whatever the wall clock shows.
    pub fn after_elapsed(t: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        t + Duration::minutes(minutes)
    }

    /// `t` plus `d` of open time: nights, weekends, holidays and closures do not count.
    pub fn add_business_time(&self, t: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        let mut left = d;
        for (a, b) in self.spans_from(t) {
            let a = a.max(t);
            if b - a >= left {
                return Some(a + left);
            }
            left -= b - a;
        }
        None
    }

    /// `n` business days after `t`: the same offset from opening on the n-th open day after the
    /// one `t` falls in (or the next opening when `t` is closed), capped at that day's close.
    pub fn add_business_days(&self, t: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
        let start = self.next_opening(t)?;
        let d0 = self.local_date(start);
        let first = self.day_spans(d0);
        let open0 = first.first().map(|s| s.0)?;
        let offset = start - open0;
        let mut d = d0;
        let mut count = 0;
        for _ in 0..HORIZON_DAYS {
            d = d.succ_opt()?;
            let spans = self.day_spans(d);
            if spans.is_empty() {
                continue;
            }
            count += 1;
            if count == n {
                let open = spans.first()?.0;
                let close = spans.last()?.1;
                return Some((open + offset).min(close));
            }
        }
        None
    }

    /// Callback and resolution deadlines of a ticket created at `created` (see [`sla`]).
    pub fn due(&self, severity: crate::triage::Severity, created: DateTime<Utc>) -> Due {
        sla::due(self, severity, created)
    }
}

struct Spans<'a> {
    s: &'a Schedule,
    day: NaiveDate,
    last: NaiveDate,
    buf: VecDeque<(DateTime<Utc>, DateTime<Utc>)>,
    after: DateTime<Utc>,
}

impl Spans<'_> {
    /// Loads the next day; false past the horizon.
    fn fill(&mut self) -> bool {
        if self.day > self.last {
            return false;
        }
        self.buf.extend(self.s.day_spans(self.day));
        self.day = match self.day.succ_opt() {
            Some(d) => d,
            None => return false,
        };
        true
    }

    fn next_raw(&mut self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        while self.buf.is_empty() {
            if !self.fill() {
                return None;
            }
        }
        let (a, mut b) = self.buf.pop_front()?;
        loop {
            if self.buf.is_empty() {
                if !self.fill() || self.buf.is_empty() {
                    break;
                }
                continue;
            }
            match self.buf.front() {
                Some(&(c, e)) if c <= b => {
                    b = b.max(e);
                    self.buf.pop_front();
                }
                _ => break,
            }
        }
        Some((a, b))
    }
}

impl Iterator for Spans<'_> {
    type Item = (DateTime<Utc>, DateTime<Utc>);
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (a, b) = self.next_raw()?;
            if b > self.after {
                return Some((a, b));
            }
        }
    }
}

/// The schedule every call and page reads, replaced whole when an admin changes the hours (on
/// any node: see the engine's `live::LiveSettings`). Readers take the current one (`get`) and keep it
/// for what they are deciding; a change never alters a decision half made.
#[derive(Debug, Clone)]
pub struct LiveSchedule(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Schedule>>>);

impl LiveSchedule {
    pub fn new(schedule: Schedule) -> LiveSchedule {
        LiveSchedule(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(schedule),
        )))
    }

    /// The schedule in force now.
    pub fn get(&self) -> std::sync::Arc<Schedule> {
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `schedule` in force for every reader from now on.
    pub fn set(&self, schedule: Schedule) {
        let next = std::sync::Arc::new(schedule);
        match self.0.write() {
            Ok(mut s) => *s = next,
            Err(p) => *p.into_inner() = next,
        }
    }
}

impl From<Schedule> for LiveSchedule {
    fn from(s: Schedule) -> LiveSchedule {
        LiveSchedule::new(s)
    }
}
