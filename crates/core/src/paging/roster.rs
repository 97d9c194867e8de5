//! Who is on call: people, rotations (weekly by default, hand-over Monday 08:00 in the
//! schedule's zone) and overrides (a person covers a rotation from/to). Sans-I/O: the time is
//! an argument.
//!
//! A rotation is an endless sequence of slots: slot `k` starts at hand-over `k` (the local date
//! `start + k·every` at the hand-over time, converted to UTC in the schedule's zone, so Monday
//! 08:00 stays Monday 08:00 across daylight saving) and is held by `people[k mod n]`. Slot 0
//! is the first hand-over on or after `start`; slots before it exist too (negative `k`), so
//! a rotation always has someone on call.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

use super::facts::PagedPerson;
use crate::config_issue::{ConfigIssue, KeySeg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "fr".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    pub id: String,
    pub people: Vec<String>,
    #[serde(default = "default_every")]
    pub every: String,
    #[serde(default = "default_handover")]
    pub handover: String,
    #[serde(default)]
    pub start: Option<String>,
}

fn default_every() -> String {
    "1w".into()
}
fn default_handover() -> String {
    "mon 08:00".into()
}

/// The first hand-over when `start` is not given (a Monday).
const DEFAULT_START: &str = "2026-01-05";
/// Longest rotation period accepted, in days.
const MAX_EVERY_DAYS: u32 = 366;

impl PersonConfig {
    /// The person as the paging channels see them.
    pub fn to_paged(&self) -> PagedPerson {
        PagedPerson {
            id: self.id.clone(),
            name: self.name.clone(),
            language: self.language.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
        }
    }
}

pub fn validate(
    people: &[PersonConfig],
    rotations: &[RotationConfig],
    issues: &mut Vec<ConfigIssue>,
) {
    let mut person_ids = BTreeSet::new();
    for (i, p) in people.iter().enumerate() {
        let key = |k: &'static str| {
            vec![
                KeySeg::Key("paging"),
                KeySeg::Key("people"),
                KeySeg::Index(i),
                KeySeg::Key(k),
            ]
        };
        if let Err(message) = check_id(&p.id) {
            issues.push(ConfigIssue::new(key("id"), message, ID_FIX));
        } else if !person_ids.insert(p.id.as_str()) {
            issues.push(ConfigIssue::new(
                key("id"),
                format!("person \"{}\" is defined twice", p.id),
                "give each person a different id",
            ));
        }
        if p.name.trim().is_empty() {
            issues.push(ConfigIssue::new(
                key("name"),
                "the name is empty",
                "write the person's name as it is said on a page, e.g. name = \"Martin Roy\"",
            ));
        }
        if p.phone.is_none() && p.email.is_none() {
            issues.push(ConfigIssue::new(
                vec![
                    KeySeg::Key("paging"),
                    KeySeg::Key("people"),
                    KeySeg::Index(i),
                ],
                format!("person \"{}\" has neither a phone nor an e-mail: nobody could page them", p.id),
                "add phone = \"sip:user@host\" or \"+15145551234\", or email = \"name@example.net\"",
            ));
        }
        if let Some(phone) = &p.phone {
            if let Err(message) = check_phone(phone) {
                issues.push(ConfigIssue::new(
                    key("phone"),
                    message,
                    "write a SIP URI such as \"sip:tech1@10.0.0.5:5060\" (called directly) or an E.164 number such as \"+15145551234\" (called through the trunk)",
                ));
            }
        }
        if let Some(email) = &p.email {
            if let Err(message) = check_email(email) {
                issues.push(ConfigIssue::new(
                    key("email"),
                    message,
                    "write one address such as \"tech1@example.net\"",
                ));
            }
        }
        if p.language != "fr" && p.language != "en" {
            issues.push(ConfigIssue::new(
                key("language"),
                format!("\"{}\" is not a language pages are written in", p.language),
                "write \"fr\" or \"en\"",
            ));
        }
    }

    let mut rotation_ids = BTreeSet::new();
    for (i, r) in rotations.iter().enumerate() {
        let key = |k: &'static str| {
            vec![
                KeySeg::Key("paging"),
                KeySeg::Key("rotations"),
                KeySeg::Index(i),
                KeySeg::Key(k),
            ]
        };
        if let Err(message) = check_id(&r.id) {
            issues.push(ConfigIssue::new(key("id"), message, ID_FIX));
        } else if person_ids.contains(r.id.as_str()) {
            issues.push(ConfigIssue::new(
                key("id"),
                format!("\"{}\" is both a person and a rotation: the ladder could not tell which is meant", r.id),
                "rename the rotation (e.g. \"oncall\") or the person",
            ));
        } else if !rotation_ids.insert(r.id.as_str()) {
            issues.push(ConfigIssue::new(
                key("id"),
                format!("rotation \"{}\" is defined twice", r.id),
                "give each rotation a different id, or merge their people",
            ));
        }
        if r.people.is_empty() {
            issues.push(ConfigIssue::new(
                key("people"),
                format!("rotation \"{}\" has nobody in it", r.id),
                "list the ids of the people who take turns, e.g. people = [\"tech1\", \"tech2\"]",
            ));
        }
        for (j, id) in r.people.iter().enumerate() {
            if !person_ids.contains(id.as_str()) {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("paging"),
                        KeySeg::Key("rotations"),
                        KeySeg::Index(i),
                        KeySeg::Key("people"),
                        KeySeg::Index(j),
                    ],
                    format!("\"{id}\" is not a person"),
                    format!(
                        "use one of the ids of [[paging.people]]: {}",
                        known_list(person_ids.iter().copied())
                    ),
                ));
            }
        }
        let every = parse_every(&r.every);
        if let Err(message) = &every {
            issues.push(ConfigIssue::new(
                key("every"),
                message.clone(),
                "write whole days or weeks: \"1d\", \"2d\", \"1w\" or \"2w\"",
            ));
        }
        let handover = parse_handover(&r.handover);
        match &handover {
            Err(message) => issues.push(ConfigIssue::new(
                key("handover"),
                message.clone(),
                "write a weekday and a local time, \"mon 08:00\", or a time alone for daily rotations, \"08:00\"",
            )),
            Ok((Some(_), _)) if every.as_ref().is_ok_and(|d| d % 7 != 0) => {
                issues.push(ConfigIssue::new(
                    key("handover"),
                    format!(
                        "a hand-over on a weekday (\"{}\") needs a rotation of whole weeks, not \"{}\"",
                        r.handover, r.every
                    ),
                    "write every = \"1w\" (or \"2w\"), or the time alone (\"08:00\") for a daily hand-over",
                ))
            }
            Ok(_) => {}
        }
        if let Some(start) = &r.start {
            match parse_start(start) {
                Err(message) => issues.push(ConfigIssue::new(
                    key("start"),
                    message,
                    "write the local date of the first hand-over as YYYY-MM-DD, e.g. \"2026-01-05\"",
                )),
                Ok(date) => {
                    if let Ok((Some(day), _)) = handover {
                        if date.weekday() != day {
                            issues.push(ConfigIssue::new(
                                key("start"),
                                format!(
                                    "{start} is a {}, but hand-overs are on {}",
                                    weekday_name(date.weekday()),
                                    weekday_name(day)
                                ),
                                format!(
                                    "use a {} such as {}",
                                    weekday_name(day),
                                    align(date, Some(day))
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
}

pub fn slot_names(people: &[PersonConfig], rotations: &[RotationConfig]) -> BTreeSet<String> {
    people
        .iter()
        .map(|p| p.id.clone())
        .chain(rotations.iter().map(|r| r.id.clone()))
        .collect()
}

const ID_FIX: &str = "use lowercase letters, digits, '_' and '-', e.g. \"tech1\" or \"oncall\"";

fn known_list<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = ids.map(|s| format!("\"{s}\"")).collect();
    if list.is_empty() {
        "(none defined yet)".into()
    } else {
        list.join(", ")
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the id is empty".into());
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Err(format!("\"{}\" is not a valid id", id.escape_debug()));
    }
    Ok(())
}

/// `sip:user@host[:port]` (SIPS too), or E.164.
fn check_phone(phone: &str) -> Result<(), String> {
    let shown = phone.escape_debug();
    if let Some(digits) = phone.strip_prefix('+') {
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        return Err(format!(
            "\"{shown}\" is not an E.164 number ('+' then 8 to 15 digits, no spaces)"
        ));
    }
    let lower = phone.to_ascii_lowercase();
    let rest = if lower.starts_with("sips:") {
        &phone[5..]
    } else if lower.starts_with("sip:") {
        &phone[4..]
    } else {
        return Err(format!(
            "\"{shown}\" is neither a SIP URI (sip:user@host) nor an E.164 number (+ and digits)"
        ));
    };
    if rest
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return Err(format!("\"{shown}\" contains spaces or control characters"));
    }
    // Only the address: parameters and headers are the phone channel's business, not config's.
    let hostport = match rest.split_once('@') {
        Some((user, h)) if !user.is_empty() => h,
        _ => {
            return Err(format!(
                "\"{shown}\" has no user part (sip:user@host[:port])"
            ))
        }
    };
    if hostport.contains('@') || hostport.contains(';') || hostport.contains('?') {
        return Err(format!(
            "\"{shown}\" is not sip:user@host[:port] (no parameters or headers)"
        ));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        // An IPv6 reference "[::1]" without a port ends with ']'.
        Some((h, p)) if !hostport.ends_with(']') => (h, Some(p)),
        _ => (hostport, None),
    };
    if host.is_empty() {
        return Err(format!("\"{shown}\" has no host"));
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|n| n > 0) {
            return Err(format!("\"{shown}\" has a bad port \"{p}\" (1 to 65535)"));
        }
    }
    Ok(())
}

fn check_email(email: &str) -> Result<(), String> {
    let shown = email.escape_debug();
    if email.chars().any(|c| c.is_control()) {
        return Err(format!(
            "\"{shown}\" contains a control character (a line break could inject mail headers)"
        ));
    }
    if email.chars().any(char::is_whitespace) {
        return Err(format!("\"{shown}\" contains a space"));
    }
    let (local, domain) = match email.split_once('@') {
        Some(parts) => parts,
        None => return Err(format!("\"{shown}\" has no '@'")),
    };
    if domain.contains('@') {
        return Err(format!("\"{shown}\" has more than one '@'"));
    }
    if local.is_empty() {
        return Err(format!("\"{shown}\" has nothing before the '@'"));
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(format!(
            "\"{shown}\" has no domain with a dot after the '@'"
        ));
    }
    Ok(())
}

/// "1d", "2d", "1w", "2w": the length of a rotation slot in days.
fn parse_every(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "\"{}\" is not a whole number of days or weeks",
            s.escape_debug()
        )
    };
    let t = s.trim();
    let (num, unit_days) = if let Some(n) = t.strip_suffix('d') {
        (n, 1)
    } else if let Some(n) = t.strip_suffix('w') {
        (n, 7)
    } else {
        return Err(bad());
    };
    let n: u32 = num.parse().map_err(|_| bad())?;
    let days = n.checked_mul(unit_days).ok_or_else(bad)?;
    if days == 0 {
        return Err("a rotation of 0 days never hands over".into());
    }
    if days > MAX_EVERY_DAYS {
        return Err(format!("\"{s}\" is longer than a year"));
    }
    Ok(days)
}

/// "mon 08:00" or "08:00".
fn parse_handover(s: &str) -> Result<(Option<Weekday>, NaiveTime), String> {
    let bad = || format!("\"{}\" is not a hand-over time", s.escape_debug());
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, time) = match parts.as_slice() {
        [time] => (None, *time),
        [day, time] => (Some(day.parse::<Weekday>().map_err(|_| bad())?), *time),
        _ => return Err(bad()),
    };
    let time = NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| bad())?;
    Ok((day, time))
}

fn parse_start(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("\"{}\" is not a date (YYYY-MM-DD)", s.escape_debug()))
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// The first date on or after `d` that falls on `day` (`d` itself without a weekday).
fn align(d: NaiveDate, day: Option<Weekday>) -> NaiveDate {
    match day {
        None => d,
        Some(day) => {
            let ahead = (7 + day.num_days_from_monday() - d.weekday().num_days_from_monday()) % 7;
            d + Duration::days(ahead as i64)
        }
    }
}

/// A local wall time to an instant: the earlier of two in the autumn fold, and the first
/// instant after the spring gap for a time that does not exist.
fn local_to_utc(tz: Tz, t: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = t;
    // Gaps are whole minutes and at most a few hours long in every zone.
    for _ in 0..(24 * 60) {
        if let Some(dt) = tz.from_local_datetime(&probe).earliest() {
            return Some(dt.with_timezone(&Utc));
        }
        probe = probe.checked_add_signed(Duration::minutes(1))?;
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    #[error("rotation \"{rotation}\": {message}")]
    Rotation { rotation: String, message: String },
    #[error("rotation \"{0}\" is defined twice")]
    Duplicate(String),
}

/// A person covering a rotation from/to, instead of whoever the rotation names. The store
/// keeps them; the roster only computes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: i64,
    pub rotation: String,
    pub person: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: String,
}

/// Who holds a rotation over an interval `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub person: PagedPerson,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by_override: bool,
    pub override_id: Option<i64>,
}

#[derive(Debug, Clone)]
struct Rotation {
    id: String,
    people: Vec<String>,
    every_days: i64,
    time: NaiveTime,
    /// The local date of slot 0.
    first: NaiveDate,
}

/// What decides who holds a rotation at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Index into the overrides slice.
    Override(usize),
    /// Rotation slot number.
    Slot(i64),
}

#[derive(Debug, Clone)]
pub struct Roster {
    people: BTreeMap<String, PagedPerson>,
    rotations: Vec<Rotation>,
    tz: Tz,
}

impl Roster {
    /// Whether anyone at all can be paged.
    pub fn has_people(&self) -> bool {
        !self.people.is_empty()
    }

    /// People come from the store at run time (the config only seeds them), so a rotation may
    /// name someone who is not in `people`: that is not an error (see [`Roster::on_call`]).
    pub fn new(
        people: Vec<PagedPerson>,
        rotations: &[RotationConfig],
        tz: Tz,
    ) -> Result<Roster, RosterError> {
        let mut built: Vec<Rotation> = Vec::with_capacity(rotations.len());
        for r in rotations {
            let err = |message: String| RosterError::Rotation {
                rotation: r.id.clone(),
                message,
            };
            if built.iter().any(|b| b.id == r.id) {
                return Err(RosterError::Duplicate(r.id.clone()));
            }
            if r.people.is_empty() {
                return Err(err("nobody in it".into()));
            }
            let every_days = parse_every(&r.every).map_err(err)?;
            let (day, time) = parse_handover(&r.handover).map_err(err)?;
            if day.is_some() && every_days % 7 != 0 {
                return Err(err(format!(
                    "a weekday hand-over needs whole weeks, not \"{}\"",
                    r.every
                )));
            }
            let start = parse_start(r.start.as_deref().unwrap_or(DEFAULT_START)).map_err(err)?;
            built.push(Rotation {
                id: r.id.clone(),
                people: r.people.clone(),
                every_days: every_days as i64,
                time,
                first: align(start, day),
            });
        }
        Ok(Roster {
            people: people.into_iter().map(|p| (p.id.clone(), p)).collect(),
            rotations: built,
            tz,
        })
    }

    pub fn rotations(&self) -> impl Iterator<Item = &str> {
        self.rotations.iter().map(|r| r.id.as_str())
    }

    pub fn person(&self, id: &str) -> Option<&PagedPerson> {
        self.people.get(id)
    }

    /// Who holds `rotation` at `at`: an override active then (`from <= at < to`) wins over the
    /// rotation; among several, the latest `from`, then the highest id. None for an unknown
    /// rotation, or when nobody in it is left.
    pub fn on_call(
        &self,
        rotation: &str,
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Option<Shift> {
        let rot = self.rotations.iter().find(|r| r.id == rotation)?;
        let src = self.source_at(rot, at, overrides)?;
        let person = self.person_of(rot, src, overrides)?.clone();

        // The shift runs between the nearest instants where the source changes: hand-overs
        // and the ends of overrides.
        let mut points: Vec<DateTime<Utc>> = self.override_points(rot, overrides);
        if let Source::Slot(k) = src {
            points.push(self.handover(rot, k)?);
            points.push(self.handover(rot, k + 1)?);
        }
        points.sort();
        points.dedup();
        let until = points
            .iter()
            .copied()
            .filter(|p| *p > at)
            .find(|p| self.source_at(rot, *p, overrides) != Some(src))?;
        let from = points
            .iter()
            .rev()
            .copied()
            .filter(|p| *p <= at)
            .find(|p| self.source_at(rot, *p - Duration::nanoseconds(1), overrides) != Some(src))?;
        let override_id = match src {
            Source::Override(i) => overrides.get(i).map(|o| o.id),
            Source::Slot(_) => None,
        };
        Some(Shift {
            person,
            from,
            until,
            by_override: override_id.is_some(),
            override_id,
        })
    }

    /// The shift after the one holding `rotation` at `at`.
    pub fn next_on_call(
        &self,
        rotation: &str,
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Option<Shift> {
        let current = self.on_call(rotation, at, overrides)?;
        self.on_call(rotation, current.until, overrides)
    }

    /// The people a ladder slot names at `at`: a person id → that person; a rotation id → the
    /// person on call; anything else → nobody.
    pub fn resolve(
        &self,
        slot: &str,
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<PagedPerson> {
        if let Some(p) = self.people.get(slot) {
            return vec![p.clone()];
        }
        self.on_call(slot, at, overrides)
            .map(|s| vec![s.person])
            .unwrap_or_default()
    }

    /// The override that wins at `t`, else the rotation slot holding `t`.
    fn source_at(
        &self,
        rot: &Rotation,
        t: DateTime<Utc>,
        overrides: &[Override],
    ) -> Option<Source> {
        let winner = overrides
            .iter()
            .enumerate()
            .filter(|(_, o)| self.override_applies(rot, o) && o.from <= t && t < o.to)
            .max_by_key(|(_, o)| (o.from, o.id));
        match winner {
            Some((i, _)) => Some(Source::Override(i)),
            None => self.slot_at(rot, t).map(Source::Slot),
        }
    }

    /// An override for a person deleted since is ignored: the rotation covers.
    fn override_applies(&self, rot: &Rotation, o: &Override) -> bool {
        o.rotation == rot.id && o.from < o.to && self.people.contains_key(&o.person)
    }

    fn override_points(&self, rot: &Rotation, overrides: &[Override]) -> Vec<DateTime<Utc>> {
        overrides
            .iter()
            .filter(|o| self.override_applies(rot, o))
            .flat_map(|o| [o.from, o.to])
            .collect()
    }

    fn person_of(
        &self,
        rot: &Rotation,
        src: Source,
        overrides: &[Override],
    ) -> Option<&PagedPerson> {
        match src {
            Source::Override(i) => self.people.get(&overrides.get(i)?.person),
            Source::Slot(k) => {
                // A person listed in the rotation but deleted from the people since (at run
                // time, by the CLI) is skipped: the next person in the rotation's order covers
                // their turn, so the rotation never pages nobody while someone is left.
                let n = rot.people.len() as i64;
                (0..n).find_map(|j| {
                    let idx = usize::try_from((k + j).rem_euclid(n)).ok()?;
                    self.people.get(rot.people.get(idx)?)
                })
            }
        }
    }

    /// Hand-over `k`, in UTC.
    fn handover(&self, rot: &Rotation, k: i64) -> Option<DateTime<Utc>> {
        let days = Duration::try_days(k.checked_mul(rot.every_days)?)?;
        let date = rot.first.checked_add_signed(days)?;
        local_to_utc(self.tz, date.and_time(rot.time))
    }

    /// The slot holding `t`: hand-over k <= t < hand-over k+1.
    fn slot_at(&self, rot: &Rotation, t: DateTime<Utc>) -> Option<i64> {
        let local = t.with_timezone(&self.tz).date_naive();
        let mut k = (local - rot.first).num_days().div_euclid(rot.every_days);
        // The estimate from the local date is off by at most one slot (time of day, DST).
        for _ in 0..4 {
            if self.handover(rot, k)? > t {
                k -= 1;
            } else if self.handover(rot, k + 1)? <= t {
                k += 1;
            } else {
                return Some(k);
            }
        }
        None
    }
}

/// What is wrong with one level of the escalation ladder at an instant. A level that pages
/// nobody is skipped by the climb; a level that pages only someone a lower level already paged
/// adds nobody: either way a ticket reaches the top with fewer people than the ladder promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LadderGap {
    /// Level `level` (1-based), made of `slots`, has nobody on call.
    Empty { level: usize, slots: Vec<String> },
    /// Level `level` pages `person` (`name`), whom the lower level `lower` already pages.
    Duplicate {
        level: usize,
        slots: Vec<String>,
        person: String,
        name: String,
        lower: usize,
    },
}

impl LadderGap {
    /// The level, 1-based.
    pub fn level(&self) -> usize {
        match self {
            LadderGap::Empty { level, .. } | LadderGap::Duplicate { level, .. } => *level,
        }
    }

    /// "level 2 (director) is tech1 (Martin Roy), who is already level 1"; with `would`, as
    /// the consequence of a change not made yet ("would be", "would have").
    pub fn describe(&self, would: bool) -> String {
        match self {
            LadderGap::Empty { level, slots } => format!(
                "level {level} ({}) {} nobody on call",
                slots.join(", "),
                if would { "would have" } else { "has" }
            ),
            LadderGap::Duplicate {
                level,
                slots,
                person,
                name,
                lower,
            } => format!(
                "level {level} ({}) {} {person} ({name}), who is already level {lower}",
                slots.join(", "),
                if would { "would be" } else { "is" }
            ),
        }
    }
}

impl std::fmt::Display for LadderGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(false))
    }
}

/// How far into a change [`new_ladder_gaps`] looks: a year of hand-overs is enough to meet
/// every person of every rotation, and keeps an admin's century-long cover cheap to check.
pub const GAP_CHECK_DAYS: i64 = 366;
/// At most this many instants are looked at (a daily rotation over a year is 366).
const GAP_CHECK_POINTS: usize = 20_000;

impl Roster {
    /// Who holds `rotation` at `at` (the person only: no shift bounds, so it is cheap).
    fn holder(&self, rotation: &str, at: DateTime<Utc>, overrides: &[Override]) -> Option<&str> {
        let rot = self.rotations.iter().find(|r| r.id == rotation)?;
        let src = self.source_at(rot, at, overrides)?;
        self.person_of(rot, src, overrides).map(|p| p.id.as_str())
    }

    /// The gaps of the ladder `levels` at `at`: each level that pages nobody, and each person
    /// a level pages whom a lower level already pages (named with the lowest such level).
    /// Two slots of one level naming the same person are not a gap.
    pub fn ladder_gaps(
        &self,
        levels: &[Vec<String>],
        at: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<LadderGap> {
        let mut out = Vec::new();
        // Person id → the lowest level (1-based) that pages them.
        let mut paged: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, slots) in levels.iter().enumerate() {
            let level = i + 1;
            let mut here: Vec<&str> = Vec::new();
            for slot in slots {
                let id = match self.people.get_key_value(slot.as_str()) {
                    Some((id, _)) => Some(id.as_str()),
                    None => self.holder(slot, at, overrides),
                };
                if let Some(id) = id {
                    if !here.contains(&id) {
                        here.push(id);
                    }
                }
            }
            if here.is_empty() {
                out.push(LadderGap::Empty {
                    level,
                    slots: slots.clone(),
                });
            }
            for id in here {
                match paged.get(id) {
                    Some(&lower) => out.push(LadderGap::Duplicate {
                        level,
                        slots: slots.clone(),
                        person: id.to_string(),
                        name: self
                            .people
                            .get(id)
                            .map(|p| p.name.clone())
                            .unwrap_or_default(),
                        lower,
                    }),
                    None => {
                        paged.insert(id, level);
                    }
                }
            }
        }
        out
    }

    /// `from`, then every hand-over and override bound in `(from, until)`: between two of
    /// them nobody's turn changes.
    fn change_points(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<DateTime<Utc>> {
        let mut points = vec![from];
        for rot in &self.rotations {
            let Some(mut k) = self.slot_at(rot, from) else {
                continue;
            };
            while points.len() < GAP_CHECK_POINTS {
                k += 1;
                match self.handover(rot, k) {
                    Some(t) if t < until => points.push(t),
                    _ => break,
                }
            }
        }
        for o in overrides {
            points.extend(
                [o.from, o.to]
                    .into_iter()
                    .filter(|t| from < *t && *t < until),
            );
        }
        points.sort();
        points.dedup();
        points.truncate(GAP_CHECK_POINTS);
        points
    }
}

/// The roster and overrides before a change, or after it.
pub type RosterState<'a> = (&'a Roster, &'a [Override]);

/// The gaps of the ladder `levels` that a change brings, from `from` to `until` (at most
/// [`GAP_CHECK_DAYS`] of it): those the state `after` has at some instant where `before` did
/// not. Each gap is given once, with the first instant it appears. A gap the ladder already
/// had, or that the rotations alone have at that instant without any cover (the config's own,
/// e.g. one person at two levels), is not the change's doing: removing a cover that mended
/// the config's gap is not refused. Pure.
pub fn new_ladder_gaps(
    levels: &[Vec<String>],
    before: RosterState<'_>,
    after: RosterState<'_>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, LadderGap)> {
    let until = until.min(from + Duration::days(GAP_CHECK_DAYS));
    if until <= from {
        return Vec::new();
    }
    let mut points = before.0.change_points(from, until, before.1);
    points.extend(after.0.change_points(from, until, after.1));
    points.sort();
    points.dedup();
    points.truncate(GAP_CHECK_POINTS);
    let mut out: Vec<(DateTime<Utc>, LadderGap)> = Vec::new();
    for at in points {
        let had = before.0.ladder_gaps(levels, at, before.1);
        let bare = after.0.ladder_gaps(levels, at, &[]);
        for gap in after.0.ladder_gaps(levels, at, after.1) {
            if !had.contains(&gap) && !bare.contains(&gap) && !out.iter().any(|(_, g)| *g == gap) {
                out.push((at, gap));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap()
    }

    fn person(id: &str) -> PagedPerson {
        PagedPerson {
            id: id.into(),
            name: format!("Person {id}"),
            language: "fr".into(),
            phone: Some(format!("sip:{id}@10.0.0.5")),
            email: None,
        }
    }

    fn rotation(id: &str, people: &[&str], every: &str, handover: &str) -> RotationConfig {
        RotationConfig {
            id: id.into(),
            people: people.iter().map(|s| s.to_string()).collect(),
            every: every.into(),
            handover: handover.into(),
            start: None,
        }
    }

    fn roster(people: &[&str], rotations: &[RotationConfig]) -> Roster {
        Roster::new(
            people.iter().map(|p| person(p)).collect(),
            rotations,
            chrono_tz::America::Toronto,
        )
        .unwrap()
    }

    fn weekly() -> Roster {
        roster(
            &["tech1", "tech2", "tech3"],
            &[rotation(
                "oncall",
                &["tech1", "tech2", "tech3"],
                "1w",
                "mon 08:00",
            )],
        )
    }

    fn ovr(id: i64, person: &str, from: &str, to: &str) -> Override {
        Override {
            id,
            rotation: "oncall".into(),
            person: person.into(),
            from: utc(from),
            to: utc(to),
            reason: "test".into(),
        }
    }

    #[test]
    fn weekly_rotation_hands_over_monday_0800_local_winter_and_summer() {
        let r = weekly();
        // 2026-01-05 is slot 0 (tech1); 08:00 EST = 13:00Z.
        let s = r
            .on_call("oncall", utc("2026-01-07T12:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.person.id, "tech1");
        assert_eq!(s.from, utc("2026-01-05T13:00:00Z"));
        assert_eq!(s.until, utc("2026-01-12T13:00:00Z"));
        assert!(!s.by_override);
        // One second before the hand-over it is still tech1; at it, tech2.
        let before = r
            .on_call("oncall", utc("2026-01-12T12:59:59Z"), &[])
            .unwrap();
        assert_eq!(before.person.id, "tech1");
        let at = r
            .on_call("oncall", utc("2026-01-12T13:00:00Z"), &[])
            .unwrap();
        assert_eq!(at.person.id, "tech2");
        // Summer: 08:00 EDT = 12:00Z. 2026-07-06 is 26 weeks after slot 0: 26 mod 3 = 2.
        let s = r
            .on_call("oncall", utc("2026-07-06T12:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.person.id, "tech3");
        assert_eq!(s.from, utc("2026-07-06T12:00:00Z"));
        assert_eq!(s.until, utc("2026-07-13T12:00:00Z"));
        let s = r
            .on_call("oncall", utc("2026-07-06T11:59:59Z"), &[])
            .unwrap();
        assert_eq!(s.person.id, "tech2");
        // The week over the spring change: from 13:00Z (EST) to 12:00Z (EDT).
        let s = r
            .on_call("oncall", utc("2026-03-08T12:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.from, utc("2026-03-02T13:00:00Z"));
        assert_eq!(s.until, utc("2026-03-09T12:00:00Z"));
    }

    #[test]
    fn before_the_start_the_rotation_runs_backwards() {
        let r = weekly();
        let s = r
            .on_call("oncall", utc("2026-01-01T00:00:00Z"), &[])
            .unwrap();
        // Slot -1 is people[2].
        assert_eq!(s.person.id, "tech3");
        assert_eq!(s.from, utc("2025-12-29T13:00:00Z"));
        assert_eq!(s.until, utc("2026-01-05T13:00:00Z"));
    }

    #[test]
    fn explicit_start_and_tuesday_handover() {
        let mut rot = rotation("oncall", &["tech1", "tech2"], "2w", "tue 09:30");
        rot.start = Some("2026-02-03".into());
        let r = roster(&["tech1", "tech2"], &[rot]);
        let s = r
            .on_call("oncall", utc("2026-02-10T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.person.id, "tech1");
        assert_eq!(s.from, utc("2026-02-03T14:30:00Z"));
        assert_eq!(s.until, utc("2026-02-17T14:30:00Z"));
        let n = r
            .next_on_call("oncall", utc("2026-02-10T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(n.person.id, "tech2");
        assert_eq!(n.from, utc("2026-02-17T14:30:00Z"));
        assert_eq!(n.until, utc("2026-03-03T14:30:00Z"));
    }

    #[test]
    fn spring_gap_handover_happens_at_the_first_instant_after_the_gap() {
        // Daily at 02:30: on 2026-03-08 Toronto jumps from 02:00 EST to 03:00 EDT (07:00Z).
        let r = roster(
            &["a", "b"],
            &[rotation("night", &["a", "b"], "1d", "02:30")],
        );
        let s = r
            .on_call("night", utc("2026-03-08T06:59:59Z"), &[])
            .unwrap();
        assert_eq!(s.from, utc("2026-03-07T07:30:00Z"));
        assert_eq!(s.until, utc("2026-03-08T07:00:00Z"));
        let s2 = r
            .on_call("night", utc("2026-03-08T07:00:00Z"), &[])
            .unwrap();
        assert_ne!(s.person, s2.person);
        assert_eq!(s2.from, utc("2026-03-08T07:00:00Z"));
        // The day after: 02:30 EDT = 06:30Z.
        assert_eq!(s2.until, utc("2026-03-09T06:30:00Z"));
    }

    #[test]
    fn autumn_fold_handover_takes_the_earlier_instant() {
        // Daily at 01:30: on 2026-11-01 01:30 happens twice, EDT (05:30Z) then EST (06:30Z).
        let r = roster(
            &["a", "b"],
            &[rotation("night", &["a", "b"], "1d", "01:30")],
        );
        let s = r
            .on_call("night", utc("2026-11-01T06:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.from, utc("2026-11-01T05:30:00Z"));
        // The next day: 01:30 EST = 06:30Z.
        assert_eq!(s.until, utc("2026-11-02T06:30:00Z"));
        let prev = r
            .on_call("night", utc("2026-11-01T05:29:59Z"), &[])
            .unwrap();
        assert_eq!(prev.until, utc("2026-11-01T05:30:00Z"));
        assert_eq!(prev.from, utc("2026-10-31T05:30:00Z"));
        assert_ne!(prev.person, s.person);
    }

    #[test]
    fn weekly_handover_across_autumn_change() {
        let r = weekly();
        // Week of 2026-10-26 (EDT start) to 2026-11-02 (EST end).
        let s = r
            .on_call("oncall", utc("2026-11-01T12:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.from, utc("2026-10-26T12:00:00Z"));
        assert_eq!(s.until, utc("2026-11-02T13:00:00Z"));
    }

    #[test]
    fn override_wins_and_cuts_the_shift() {
        let r = weekly();
        let o = [ovr(
            7,
            "tech3",
            "2026-01-07T23:00:00Z",
            "2026-01-08T11:00:00Z",
        )];
        // Before the override: tech1, whose shift now ends where the override starts.
        let s = r
            .on_call("oncall", utc("2026-01-07T12:00:00Z"), &o)
            .unwrap();
        assert_eq!(s.person.id, "tech1");
        assert_eq!(s.until, utc("2026-01-07T23:00:00Z"));
        let n = r
            .next_on_call("oncall", utc("2026-01-07T12:00:00Z"), &o)
            .unwrap();
        assert_eq!(n.person.id, "tech3");
        assert!(n.by_override);
        assert_eq!(n.override_id, Some(7));
        assert_eq!(n.from, utc("2026-01-07T23:00:00Z"));
        assert_eq!(n.until, utc("2026-01-08T11:00:00Z"));
        // After it, tech1 again until the hand-over.
        let after = r
            .on_call("oncall", utc("2026-01-08T11:00:00Z"), &o)
            .unwrap();
        assert_eq!(after.person.id, "tech1");
        assert_eq!(after.from, utc("2026-01-08T11:00:00Z"));
        assert_eq!(after.until, utc("2026-01-12T13:00:00Z"));
        // The end is exclusive; the start inclusive.
        assert!(
            r.on_call("oncall", utc("2026-01-07T23:00:00Z"), &o)
                .unwrap()
                .by_override
        );
    }

    #[test]
    fn override_across_a_handover_is_one_shift() {
        let r = weekly();
        let o = [ovr(
            1,
            "tech3",
            "2026-01-10T00:00:00Z",
            "2026-01-14T00:00:00Z",
        )];
        let s = r
            .on_call("oncall", utc("2026-01-12T14:00:00Z"), &o)
            .unwrap();
        assert_eq!(s.person.id, "tech3");
        assert_eq!(s.from, utc("2026-01-10T00:00:00Z"));
        assert_eq!(s.until, utc("2026-01-14T00:00:00Z"));
        // Then tech2, whose week started under the override.
        let n = r
            .next_on_call("oncall", utc("2026-01-12T14:00:00Z"), &o)
            .unwrap();
        assert_eq!(n.person.id, "tech2");
        assert_eq!(n.from, utc("2026-01-14T00:00:00Z"));
        assert_eq!(n.until, utc("2026-01-19T13:00:00Z"));
    }

    #[test]
    fn several_overrides_latest_from_then_highest_id_wins() {
        let r = weekly();
        let o = [
            ovr(5, "tech2", "2026-01-06T00:00:00Z", "2026-01-09T00:00:00Z"),
            ovr(3, "tech3", "2026-01-07T00:00:00Z", "2026-01-08T00:00:00Z"),
            ovr(4, "tech1", "2026-01-07T00:00:00Z", "2026-01-07T12:00:00Z"),
        ];
        let at = |s: &str| r.on_call("oncall", utc(s), &o).unwrap();
        assert_eq!(at("2026-01-06T12:00:00Z").override_id, Some(5));
        assert_eq!(
            at("2026-01-06T12:00:00Z").until,
            utc("2026-01-07T00:00:00Z")
        );
        // Same from: the highest id (4) wins until it ends, then 3.
        let s = at("2026-01-07T06:00:00Z");
        assert_eq!((s.override_id, s.person.id.as_str()), (Some(4), "tech1"));
        assert_eq!(s.until, utc("2026-01-07T12:00:00Z"));
        let s = at("2026-01-07T12:00:00Z");
        assert_eq!(s.override_id, Some(3));
        assert_eq!(s.from, utc("2026-01-07T12:00:00Z"));
        assert_eq!(s.until, utc("2026-01-08T00:00:00Z"));
        // Then 5 again, to its end.
        let s = at("2026-01-08T00:00:00Z");
        assert_eq!(s.override_id, Some(5));
        assert_eq!(s.from, utc("2026-01-08T00:00:00Z"));
        assert_eq!(s.until, utc("2026-01-09T00:00:00Z"));
    }

    #[test]
    fn overrides_of_other_rotations_or_deleted_people_are_ignored() {
        let r = weekly();
        let mut other = ovr(1, "tech3", "2026-01-06T00:00:00Z", "2026-01-09T00:00:00Z");
        other.rotation = "other".into();
        let ghost = ovr(2, "gone", "2026-01-06T00:00:00Z", "2026-01-09T00:00:00Z");
        let s = r
            .on_call("oncall", utc("2026-01-07T00:00:00Z"), &[other, ghost])
            .unwrap();
        assert_eq!(s.person.id, "tech1");
        assert!(!s.by_override);
        assert_eq!(s.until, utc("2026-01-12T13:00:00Z"));
    }

    #[test]
    fn deleted_person_is_covered_by_the_next_in_order() {
        let r = roster(
            &["tech1", "tech3"],
            &[rotation(
                "oncall",
                &["tech1", "tech2", "tech3"],
                "1w",
                "mon 08:00",
            )],
        );
        // Slot 1 was tech2's: tech3 covers.
        let s = r
            .on_call("oncall", utc("2026-01-13T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(s.person.id, "tech3");
        let nobody = roster(&[], &[rotation("oncall", &["tech1"], "1w", "mon 08:00")]);
        assert!(nobody
            .on_call("oncall", utc("2026-01-13T00:00:00Z"), &[])
            .is_none());
    }

    #[test]
    fn resolve_slots() {
        let r = weekly();
        let at = utc("2026-01-13T00:00:00Z");
        assert_eq!(r.resolve("tech3", at, &[]), vec![person("tech3")]);
        assert_eq!(r.resolve("oncall", at, &[]), vec![person("tech2")]);
        assert!(r.resolve("nobody", at, &[]).is_empty());
        assert_eq!(r.rotations().collect::<Vec<_>>(), vec!["oncall"]);
        assert_eq!(r.person("tech1"), Some(&person("tech1")));
        assert!(r.person("oncall").is_none());
    }

    #[test]
    fn new_refuses_bad_rotations() {
        let tz = chrono_tz::America::Toronto;
        let bad = |rot: RotationConfig| Roster::new(vec![person("a")], &[rot], tz).unwrap_err();
        assert!(matches!(
            bad(rotation("r", &["a"], "3x", "mon 08:00")),
            RosterError::Rotation { .. }
        ));
        assert!(matches!(
            bad(rotation("r", &["a"], "1d", "mon 08:00")),
            RosterError::Rotation { .. }
        ));
        assert!(matches!(
            bad(rotation("r", &[], "1d", "08:00")),
            RosterError::Rotation { .. }
        ));
        let twice = Roster::new(
            vec![],
            &[
                rotation("r", &["a"], "1d", "08:00"),
                rotation("r", &["a"], "1d", "08:00"),
            ],
            tz,
        );
        assert_eq!(twice.unwrap_err(), RosterError::Duplicate("r".into()));
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_every("1d"), Ok(1));
        assert_eq!(parse_every("2w"), Ok(14));
        assert!(parse_every("0d").is_err());
        assert!(parse_every("1h").is_err());
        assert!(parse_every("").is_err());
        assert!(parse_every("w").is_err());
        assert!(parse_every("1é").is_err());
        assert!(parse_every("é").is_err());
        assert!(parse_every("100w").is_err());
        assert_eq!(
            parse_handover("mon 08:00"),
            Ok((
                Some(Weekday::Mon),
                NaiveTime::from_hms_opt(8, 0, 0).unwrap()
            ))
        );
        assert_eq!(
            parse_handover("08:00"),
            Ok((None, NaiveTime::from_hms_opt(8, 0, 0).unwrap()))
        );
        assert!(parse_handover("monday").is_err());
        assert!(parse_handover("xyz 08:00").is_err());
        assert!(parse_handover("mon 25:00").is_err());
        assert!(check_phone("sip:tech1@10.0.0.5:5060").is_ok());
        assert!(check_phone("sips:tech1@pbx.example.net").is_ok());
        assert!(check_phone("+15145551234").is_ok());
        for bad in [
            "+1514",
            "+1514555123456789",
            "15145551234",
            "+1 514 555 1234",
            "sip:10.0.0.5",
            "sip:@host",
            "sip:a@",
            "sip:a@host:99999",
            "sip:a@ho st",
            "tel:+15145551234",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
        assert!(check_email("tech1@example.net").is_ok());
        for bad in [
            "tech1",
            "a@b@example.net",
            "@example.net",
            "a@localhost",
            "a@example.net\r\nBcc: x@y.z",
            "a b@example.net",
            "a@.net",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    // ---- ladder gaps ----

    /// tech1 and tech2 take weekly turns at "oncall" (tech1 the week of 2026-01-05); claire is
    /// the "director" rotation.
    fn two_rotations() -> Roster {
        roster(
            &["tech1", "tech2", "claire"],
            &[
                rotation("oncall", &["tech1", "tech2"], "1w", "mon 08:00"),
                rotation("director", &["claire"], "1w", "mon 08:00"),
            ],
        )
    }

    fn levels(l: &[&[&str]]) -> Vec<Vec<String>> {
        l.iter()
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .collect()
    }

    fn cover(id: i64, rotation: &str, person: &str, from: &str, to: &str) -> Override {
        Override {
            rotation: rotation.into(),
            ..ovr(id, person, from, to)
        }
    }

    #[test]
    fn a_sound_ladder_has_no_gap() {
        let r = two_rotations();
        let l = levels(&[&["oncall"], &["director"]]);
        assert!(r
            .ladder_gaps(&l, utc("2026-01-07T12:00:00Z"), &[])
            .is_empty());
        // Two slots of one level naming the same person page them once: not a gap.
        let l = levels(&[&["oncall", "tech1"], &["director"]]);
        assert!(r
            .ladder_gaps(&l, utc("2026-01-07T12:00:00Z"), &[])
            .is_empty());
    }

    #[test]
    fn ladder_gaps_name_an_empty_level_and_a_person_already_paged_lower() {
        let r = roster(
            &["tech1", "tech2"],
            &[
                rotation("oncall", &["tech1", "tech2"], "1w", "mon 08:00"),
                // Its only person was deleted since.
                rotation("director", &["claire"], "1w", "mon 08:00"),
            ],
        );
        let l = levels(&[&["oncall"], &["director"], &["tech1", "tech2"]]);
        let gaps = r.ladder_gaps(&l, utc("2026-01-07T12:00:00Z"), &[]);
        assert_eq!(
            gaps,
            vec![
                LadderGap::Empty {
                    level: 2,
                    slots: vec!["director".into()]
                },
                LadderGap::Duplicate {
                    level: 3,
                    slots: vec!["tech1".into(), "tech2".into()],
                    person: "tech1".into(),
                    name: "Person tech1".into(),
                    lower: 1,
                },
            ]
        );
        assert_eq!(gaps[0].to_string(), "level 2 (director) has nobody on call");
        assert_eq!(
            gaps[1].to_string(),
            "level 3 (tech1, tech2) is tech1 (Person tech1), who is already level 1"
        );
        assert_eq!(gaps[1].level(), 3);
        // A slot that names nobody at all is an empty level too.
        let l = levels(&[&["oncall"], &["ghost"]]);
        assert_eq!(
            r.ladder_gaps(&l, utc("2026-01-07T12:00:00Z"), &[]),
            vec![LadderGap::Empty {
                level: 2,
                slots: vec!["ghost".into()]
            }]
        );
    }

    #[test]
    fn a_cover_making_level_2_the_person_of_level_1_is_a_new_gap() {
        let r = two_rotations();
        let l = levels(&[&["oncall"], &["director"]]);
        // tech1 (on call that week) covers the director's rotation.
        let o = [cover(
            1,
            "director",
            "tech1",
            "2026-01-07T00:00:00Z",
            "2126-01-07T00:00:00Z",
        )];
        let gaps = new_ladder_gaps(
            &l,
            (&r, &[]),
            (&r, &o),
            utc("2026-01-07T12:00:00Z"),
            utc("2126-01-07T00:00:00Z"),
        );
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        let (at, gap) = &gaps[0];
        assert_eq!(*at, utc("2026-01-07T12:00:00Z"));
        assert_eq!(
            gap.describe(true),
            "level 2 (director) would be tech1 (Person tech1), who is already level 1"
        );
        // The same cover by tech2 is sound that week, and a gap from the hand-over on.
        let o = [cover(
            1,
            "director",
            "tech2",
            "2026-01-07T00:00:00Z",
            "2026-01-14T00:00:00Z",
        )];
        let gaps = new_ladder_gaps(
            &l,
            (&r, &[]),
            (&r, &o),
            utc("2026-01-07T00:00:00Z"),
            utc("2026-01-14T00:00:00Z"),
        );
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, utc("2026-01-12T13:00:00Z"));
        assert!(
            matches!(&gaps[0].1, LadderGap::Duplicate { level: 2, person, lower: 1, .. } if person == "tech2")
        );
    }

    #[test]
    fn a_gap_the_ladder_already_had_is_not_the_changes_doing() {
        let r = two_rotations();
        // The config pages tech1 at level 2: a gap every week tech1 is on call.
        let l = levels(&[&["oncall"], &["tech1"]]);
        assert_eq!(r.ladder_gaps(&l, utc("2026-01-07T12:00:00Z"), &[]).len(), 1);
        // claire covers the director's rotation: nothing new.
        let o = [cover(
            1,
            "director",
            "claire",
            "2026-01-07T00:00:00Z",
            "2026-01-09T00:00:00Z",
        )];
        assert!(new_ladder_gaps(
            &l,
            (&r, &[]),
            (&r, &o),
            utc("2026-01-07T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        )
        .is_empty());
        // tech2 covering "oncall" that week mends it, and brings nothing new.
        let o = [cover(
            2,
            "oncall",
            "tech2",
            "2026-01-07T00:00:00Z",
            "2026-01-09T00:00:00Z",
        )];
        assert!(new_ladder_gaps(
            &l,
            (&r, &[]),
            (&r, &o),
            utc("2026-01-07T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        )
        .is_empty());
    }

    #[test]
    fn removing_a_cover_can_bring_a_gap_back() {
        let r = two_rotations();
        let l = levels(&[&["oncall"], &["director"]]);
        // tech1 (on call that week) covers the director's rotation, and tech2 "oncall".
        let both = [
            cover(
                1,
                "director",
                "tech1",
                "2026-01-07T00:00:00Z",
                "2026-01-09T00:00:00Z",
            ),
            cover(
                2,
                "oncall",
                "tech2",
                "2026-01-07T00:00:00Z",
                "2026-01-09T00:00:00Z",
            ),
        ];
        assert!(r
            .ladder_gaps(&l, utc("2026-01-08T00:00:00Z"), &both)
            .is_empty());
        // Removing tech2's leaves tech1 at both levels.
        let gaps = new_ladder_gaps(
            &l,
            (&r, &both),
            (&r, &both[..1]),
            utc("2026-01-08T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        );
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(
            gaps[0].1.describe(true),
            "level 2 (director) would be tech1 (Person tech1), who is already level 1"
        );
        // Removing tech1's brings nothing.
        assert!(new_ladder_gaps(
            &l,
            (&r, &both),
            (&r, &both[1..]),
            utc("2026-01-08T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        )
        .is_empty());
    }

    #[test]
    fn removing_a_cover_that_mended_the_configs_own_gap_is_not_refused() {
        let r = two_rotations();
        // The config pages tech1 at level 2: a gap in tech1's weeks, mended by tech2's cover.
        let l = levels(&[&["oncall"], &["tech1"]]);
        let o = [cover(
            2,
            "oncall",
            "tech2",
            "2026-01-07T00:00:00Z",
            "2026-01-09T00:00:00Z",
        )];
        assert!(new_ladder_gaps(
            &l,
            (&r, &o),
            (&r, &[]),
            utc("2026-01-08T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        )
        .is_empty());
    }

    #[test]
    fn a_later_cover_that_wins_over_the_change_hides_its_gap() {
        let r = two_rotations();
        let l = levels(&[&["oncall"], &["director"]]);
        // Already there: claire covers the director's rotation over the same days (a later
        // start wins over the change's).
        let kept = cover(
            1,
            "director",
            "claire",
            "2026-01-07T06:00:00Z",
            "2026-01-09T00:00:00Z",
        );
        let change = cover(
            9,
            "director",
            "tech1",
            "2026-01-07T00:00:00Z",
            "2026-01-09T00:00:00Z",
        );
        let gaps = new_ladder_gaps(
            &l,
            (&r, std::slice::from_ref(&kept)),
            (&r, &[kept.clone(), change]),
            utc("2026-01-07T00:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        );
        // Only the six hours before claire's cover starts.
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, utc("2026-01-07T00:00:00Z"));
        let gaps = new_ladder_gaps(
            &l,
            (&r, std::slice::from_ref(&kept)),
            (
                &r,
                &[
                    kept.clone(),
                    cover(
                        9,
                        "director",
                        "tech1",
                        "2026-01-07T06:00:00Z",
                        "2026-01-09T00:00:00Z",
                    ),
                ],
            ),
            utc("2026-01-07T06:00:00Z"),
            utc("2026-01-09T00:00:00Z"),
        );
        // Same start: the higher id (the change) wins.
        assert_eq!(gaps.len(), 1, "{gaps:?}");
    }

    #[test]
    fn a_change_ending_before_it_starts_or_in_the_past_brings_nothing() {
        let r = two_rotations();
        let l = levels(&[&["oncall"], &["director"]]);
        let o = [cover(
            1,
            "director",
            "tech1",
            "2026-01-07T00:00:00Z",
            "2026-01-08T00:00:00Z",
        )];
        assert!(new_ladder_gaps(
            &l,
            (&r, &[]),
            (&r, &o),
            utc("2026-01-08T00:00:00Z"),
            utc("2026-01-08T00:00:00Z"),
        )
        .is_empty());
    }

    #[test]
    fn a_daily_rotation_over_a_century_is_checked_for_a_year_only() {
        let r = roster(
            &["tech1", "tech2", "claire"],
            &[
                rotation("oncall", &["tech1", "tech2"], "1d", "08:00"),
                rotation("director", &["claire"], "1d", "08:00"),
            ],
        );
        let l = levels(&[&["oncall"], &["director"]]);
        let from = utc("2026-01-05T12:00:00Z");
        let points = r.change_points(from, from + Duration::days(GAP_CHECK_DAYS), &[]);
        assert!(
            points.len() <= 2 * GAP_CHECK_DAYS as usize + 1,
            "{}",
            points.len()
        );
        let o = [cover(
            1,
            "director",
            "tech2",
            "2026-01-05T00:00:00Z",
            "2126-01-05T00:00:00Z",
        )];
        let gaps = new_ladder_gaps(&l, (&r, &[]), (&r, &o), from, utc("2126-01-05T00:00:00Z"));
        // tech2 is on call every other day (before 08:00 on the 5th, the day before's turn,
        // theirs): one gap, from the start.
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, from);
        let from = utc("2026-01-05T14:00:00Z");
        let gaps = new_ladder_gaps(&l, (&r, &[]), (&r, &o), from, utc("2126-01-05T00:00:00Z"));
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, utc("2026-01-06T13:00:00Z"));
    }
}
