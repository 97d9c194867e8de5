//! SLA clocks: callback and resolution deadlines per severity, and the SLA report.
//!
//! Guide section 5.1.2: after hours S1 is called back within 30 min and S2 within 60 (section
//! 2.2 says 30 for every emergency; both are configuration). In business hours S1/S2 are taken in
//! charge immediately and S3 within 24 business hours. Resolution: S1 2 h and S2 6 h of real
//! time (24/7 support), S3 5 business days.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Schedule;
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::triage::Severity;

/// The guide's targets. A key left out takes its value from [`SlaConfig::default`], which reads
/// them from the embedded reference configuration (`config/astreinte.toml`, `[schedule.sla]`):
/// the product's targets are written in that one place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// After-hours callback target for S1, in real minutes.
    pub s1_callback_minutes: u32,
    /// After-hours callback target for S2, in real minutes.
    pub s2_callback_minutes: u32,
    /// "Immediately" for S1/S2 voicemails left in business hours, in real minutes.
    pub in_hours_callback_minutes: u32,
    /// S3 is taken in charge within this many business hours.
    pub s3_callback_business_hours: u32,
    pub s1_resolution_hours: u32,
    pub s2_resolution_hours: u32,
    pub s3_resolution_business_days: u32,
    /// A drill deployment's compression of real time (`[drill] time_scale`, set by the engine
    /// from its configuration): the callback and resolution targets of S1/S2 last this many
    /// times less. S3's business-time targets are not compressed (no ladder climbs for S3).
    #[serde(skip)]
    pub time_scale: TimeScale,
}

/// How much a drill deployment compresses time (`[drill] time_scale`): at 60, the guide's 30
/// minutes last 30 s of real time, so a six-hour night runs in six minutes. 1 in production.
/// The clock itself is never faked: targets, ladder offsets and repeats are divided instead,
/// and every ticket records its scale so a drill ticket is never taken for a real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TimeScale(u32);

impl TimeScale {
    /// Production: no compression.
    pub const REAL: TimeScale = TimeScale(1);
    /// The largest compression allowed: an hour in a second.
    pub const MAX: u32 = 3600;

    /// `None` for 0 or above [`TimeScale::MAX`].
    pub fn new(factor: u32) -> Option<TimeScale> {
        (1..=Self::MAX)
            .contains(&factor)
            .then_some(TimeScale(factor))
    }

    /// A stored scale (a ticket's column): anything out of range reads as a drill at the
    /// nearest bound, never as real time unless it is 1 (or less).
    pub fn from_stored(factor: i64) -> TimeScale {
        TimeScale(factor.clamp(1, i64::from(Self::MAX)) as u32)
    }

    pub fn factor(self) -> u32 {
        self.0
    }

    /// Whether this is a drill (anything but real time).
    pub fn is_drill(self) -> bool {
        self.0 > 1
    }

    /// The real duration that `night` (a duration of the drilled night) lasts.
    pub fn compress(self, night: Duration) -> Duration {
        if self.0 <= 1 {
            return night;
        }
        Duration::milliseconds(night.num_milliseconds() / i64::from(self.0))
    }

    /// The night's duration that `real` stands for.
    pub fn expand(self, real: Duration) -> Duration {
        Duration::milliseconds(real.num_milliseconds().saturating_mul(i64::from(self.0)))
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl std::fmt::Display for TimeScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "×{}", self.0)
    }
}

/// The reference configuration the engine embeds; its `[schedule.sla]` holds the product's
/// targets.
const REFERENCE_CONFIG: &str = include_str!("../../../../config/astreinte.toml");

/// `[schedule.sla]` of [`REFERENCE_CONFIG`], every key required (no default: this is where the
/// defaults come from).
#[derive(Deserialize)]
struct Reference {
    schedule: ReferenceSchedule,
}

#[derive(Deserialize)]
struct ReferenceSchedule {
    sla: ReferenceSla,
}

#[derive(Deserialize)]
struct ReferenceSla {
    s1_callback_minutes: u32,
    s2_callback_minutes: u32,
    in_hours_callback_minutes: u32,
    s3_callback_business_hours: u32,
    s1_resolution_hours: u32,
    s2_resolution_hours: u32,
    s3_resolution_business_days: u32,
}

impl Default for SlaConfig {
    fn default() -> Self {
        static DEFAULT: std::sync::OnceLock<SlaConfig> = std::sync::OnceLock::new();
        DEFAULT
            .get_or_init(|| match toml::from_str::<Reference>(REFERENCE_CONFIG) {
                Ok(r) => {
                    let s = r.schedule.sla;
                    SlaConfig {
                        s1_callback_minutes: s.s1_callback_minutes,
                        s2_callback_minutes: s.s2_callback_minutes,
                        in_hours_callback_minutes: s.in_hours_callback_minutes,
                        s3_callback_business_hours: s.s3_callback_business_hours,
                        s1_resolution_hours: s.s1_resolution_hours,
                        s2_resolution_hours: s.s2_resolution_hours,
                        s3_resolution_business_days: s.s3_resolution_business_days,
                        time_scale: TimeScale::REAL,
                    }
                }
                // Compiled in and tested (`the_defaults_are_the_guides_targets`): a build whose
                // reference lost its targets must not run with made-up ones.
                Err(e) => panic!("config/astreinte.toml has no complete [schedule.sla]: {e}"),
            })
            .clone()
    }
}

impl SlaConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let zero = [
            ("s1_callback_minutes", self.s1_callback_minutes),
            ("s2_callback_minutes", self.s2_callback_minutes),
            ("s1_resolution_hours", self.s1_resolution_hours),
            ("s2_resolution_hours", self.s2_resolution_hours),
            (
                "s3_resolution_business_days",
                self.s3_resolution_business_days,
            ),
        ];
        for (key, v) in zero {
            if v == 0 {
                issues.push(ConfigIssue::new(
                    vec![KeySeg::Key("schedule"), KeySeg::Key("sla"), KeySeg::Key(key)],
                    "a target of 0 is always missed",
                    "give a positive number (defaults: 30/60 min callback, 2 h/6 h/5 days resolution)",
                ));
            }
        }
    }
}

/// The deadlines stored on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Due {
    pub callback_due_at: DateTime<Utc>,
    pub resolution_due_at: DateTime<Utc>,
}

/// Deadlines for a ticket of `severity` created at `created`.
pub fn due(s: &Schedule, severity: Severity, created: DateTime<Utc>) -> Due {
    let c = &s.sla;
    let open = s.is_open(created).open;
    // Real time, compressed in a drill: S1/S2 targets run around the clock.
    let real = |minutes: u32| created + c.time_scale.compress(Duration::minutes(minutes as i64));
    match severity {
        Severity::S1 | Severity::S2 => {
            let callback = if open {
                c.in_hours_callback_minutes
            } else if severity == Severity::S1 {
                c.s1_callback_minutes
            } else {
                c.s2_callback_minutes
            };
            let resolution = if severity == Severity::S1 {
                c.s1_resolution_hours
            } else {
                c.s2_resolution_hours
            };
            Due {
                callback_due_at: real(callback),
                resolution_due_at: real(resolution * 60),
            }
        }
        Severity::S3 => {
            let hours = Duration::hours(c.s3_callback_business_hours as i64);
            // An always-closed schedule has no business time: fall back to real time.
            let callback = s
                .add_business_time(created, hours)
                .unwrap_or(created + hours);
            let resolution = s
                .add_business_days(created, c.s3_resolution_business_days)
                .unwrap_or(created + Duration::days(c.s3_resolution_business_days as i64));
            Due {
                callback_due_at: callback,
                resolution_due_at: resolution,
            }
        }
    }
}

/// One ticket as the SLA report sees it.
#[derive(Debug, Clone)]
pub struct SlaTicket {
    pub number: String,
    pub severity: Severity,
    pub created_at: DateTime<Utc>,
    pub callback_due_at: DateTime<Utc>,
    pub called_back_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaMiss {
    pub number: String,
    pub callback_due_at: DateTime<Utc>,
    /// None: still not called back at report time.
    pub called_back_at: Option<DateTime<Utc>>,
    pub late_minutes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityReport {
    pub severity: Severity,
    pub tickets: usize,
    pub called_back: usize,
    pub within_target: usize,
    pub median_minutes_to_callback: Option<f64>,
    pub p90_minutes_to_callback: Option<f64>,
    pub misses: Vec<SlaMiss>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Per severity: tickets, callbacks within target, median and p90 time to callback, and the
/// misses (late callbacks, and tickets past due with no callback at `now`).
pub fn report(tickets: &[SlaTicket], now: DateTime<Utc>) -> Vec<SeverityReport> {
    [Severity::S1, Severity::S2, Severity::S3]
        .into_iter()
        .map(|sev| {
            let mine: Vec<&SlaTicket> = tickets.iter().filter(|t| t.severity == sev).collect();
            let mut minutes: Vec<f64> = mine
                .iter()
                .filter_map(|t| {
                    t.called_back_at
                        .map(|c| (c - t.created_at).num_seconds() as f64 / 60.0)
                })
                .collect();
            minutes.sort_by(|a, b| a.total_cmp(b));
            let mut misses = Vec::new();
            let mut within = 0;
            for t in &mine {
                let end = t.called_back_at.unwrap_or(now);
                if end > t.callback_due_at {
                    misses.push(SlaMiss {
                        number: t.number.clone(),
                        callback_due_at: t.callback_due_at,
                        called_back_at: t.called_back_at,
                        late_minutes: (end - t.callback_due_at).num_minutes(),
                    });
                } else if t.called_back_at.is_some() {
                    within += 1;
                }
            }
            SeverityReport {
                severity: sev,
                tickets: mine.len(),
                called_back: minutes.len(),
                within_target: within,
                median_minutes_to_callback: percentile(&minutes, 50.0),
                p90_minutes_to_callback: percentile(&minutes, 90.0),
                misses,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guide's promise (DOMAIN.md): S1 called back within 30 minutes, S2 within 60, in
    /// business hours within 5; S3 taken in charge within 24 business hours; resolution
    /// targets of 2 h, 6 h and 5 business days. They come from the reference configuration.
    #[test]
    fn the_defaults_are_the_guides_targets() {
        let d = SlaConfig::default();
        assert_eq!(
            (
                d.s1_callback_minutes,
                d.s2_callback_minutes,
                d.in_hours_callback_minutes,
                d.s3_callback_business_hours
            ),
            (30, 60, 5, 24)
        );
        assert_eq!(
            (
                d.s1_resolution_hours,
                d.s2_resolution_hours,
                d.s3_resolution_business_days
            ),
            (2, 6, 5)
        );
        let mut issues = Vec::new();
        d.validate(&mut issues);
        assert!(issues.is_empty(), "{issues:?}");
    }

    #[test]
    fn a_key_left_out_takes_the_reference_value() {
        let c: SlaConfig = toml::from_str("s1_callback_minutes = 20").unwrap();
        assert_eq!(c.s1_callback_minutes, 20);
        assert_eq!(
            c.s2_callback_minutes,
            SlaConfig::default().s2_callback_minutes
        );
    }
}
