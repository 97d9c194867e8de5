//! `[paging]`: people, rotations, the escalation ladder, and the channels' settings. Each part
//! is defined and validated beside the code that uses it; this module assembles them.

use serde::Deserialize;

use super::email::SmtpConfig;
use super::ladder::{LadderConfig, NoticeConfig};
use super::roster::{PersonConfig, RotationConfig};
use super::webhook::WebhookConfig;
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::schedule::sla::SlaConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagingConfig {
    /// `[[paging.people]]`: who can be paged, with their channels and language.
    #[serde(default)]
    pub people: Vec<PersonConfig>,
    /// `[[paging.rotations]]`: who is on call when (e.g. id "oncall", weekly).
    #[serde(default)]
    pub rotations: Vec<RotationConfig>,
    /// The longest cover (on-call override) a technician may post, in days, counted from its
    /// start to its end; an admin's are not bounded.
    #[serde(default = "default_max_cover_days")]
    pub max_cover_days: u32,
    /// `[paging.ladder]`: levels and when each is paged, per severity.
    #[serde(default)]
    pub ladder: LadderConfig,
    /// `[paging.in_hours]`: S3 tickets, and S1/S2 left in business hours.
    #[serde(default)]
    pub in_hours: NoticeConfig,
    /// `[paging.smtp]`: e-mail pages; none without it.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// `[[paging.webhooks]]`: JSON or PagerDuty Events v2 receivers (SMS gateways too).
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// `[paging.phone]`: calling people.
    #[serde(default)]
    pub phone: PhoneConfig,
    /// `[paging.worker]`: leases and retries of page jobs.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Pages to one person on one channel are grouped: while one is under way (a call
    /// ringing) or went out less than this ago, the next ones wait, then go as one page that
    /// names every ticket. "0s": every page goes alone. Compressed on a drill.
    #[serde(default = "default_group_window")]
    pub group_window: String,
}

fn default_group_window() -> String {
    "1m".into()
}

/// Longest `group_window`: a person must hear of a new emergency within minutes.
const MAX_GROUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl PagingConfig {
    /// `group_window` on the wall clock (`scale`: a drill's compression); zero when unreadable
    /// (`validate` says so before anything runs).
    pub fn group_window(&self, scale: crate::schedule::TimeScale) -> chrono::Duration {
        humantime::parse_duration(self.group_window.trim())
            .ok()
            .filter(|d| *d <= MAX_GROUP_WINDOW)
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| scale.compress(d))
            .unwrap_or_else(chrono::Duration::zero)
    }
}

fn default_max_cover_days() -> u32 {
    7
}
/// Longest `max_cover_days` accepted: a technician's cover longer than a year is a rotation.
const MAX_COVER_DAYS: u32 = 366;

impl Default for PagingConfig {
    fn default() -> Self {
        PagingConfig {
            people: Vec::new(),
            rotations: Vec::new(),
            max_cover_days: default_max_cover_days(),
            ladder: LadderConfig::default(),
            in_hours: NoticeConfig::default(),
            smtp: None,
            webhooks: Vec::new(),
            phone: PhoneConfig::default(),
            worker: WorkerConfig::default(),
            group_window: default_group_window(),
        }
    }
}

/// How a person is called.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    /// A phone rung longer than this counts as not answered.
    #[serde(default = "default_ring_secs")]
    pub ring_secs: u32,
    /// The page (severity, number, company, callback number, menu) is said this many times
    /// before an answered call without a key counts as not acknowledged.
    #[serde(default = "default_menu_repeats")]
    pub menu_repeats: u32,
    /// How long the customer's phone rings when a technician presses 3.
    #[serde(default = "default_callback_ring_secs")]
    pub callback_ring_secs: u32,
}

fn default_ring_secs() -> u32 {
    45
}
fn default_menu_repeats() -> u32 {
    3
}
fn default_callback_ring_secs() -> u32 {
    60
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            ring_secs: default_ring_secs(),
            menu_repeats: default_menu_repeats(),
            callback_ring_secs: default_callback_ring_secs(),
        }
    }
}

/// Leases and retries of page jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// A job leased by a node that dies is taken by another after this.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
    /// Tries of one job (e-mail, webhook) before it is given up as failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry after this; each next one waits twice as long (at most 5 minutes).
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u32,
    /// How often the planner looks for tickets to page when nothing wakes it.
    #[serde(default = "default_plan_ms")]
    pub plan_every_ms: u64,
}

fn default_lease_secs() -> u32 {
    300
}
fn default_max_attempts() -> u32 {
    5
}
fn default_retry_secs() -> u32 {
    15
}
fn default_plan_ms() -> u64 {
    1000
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            lease_secs: default_lease_secs(),
            max_attempts: default_max_attempts(),
            retry_secs: default_retry_secs(),
            plan_every_ms: default_plan_ms(),
        }
    }
}

impl PagingConfig {
    pub fn validate(&self, sla: &SlaConfig, issues: &mut Vec<ConfigIssue>) {
        super::roster::validate(&self.people, &self.rotations, issues);
        let slots = super::roster::slot_names(&self.people, &self.rotations);
        self.ladder.validate(
            &slots,
            sla,
            super::channel::known(),
            self.group_window(crate::schedule::TimeScale::REAL),
            issues,
        );
        self.in_hours
            .validate(&slots, super::channel::known(), issues);
        if let Some(smtp) = &self.smtp {
            smtp.validate(issues);
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            w.validate(i, issues);
            if self.webhooks[..i].iter().any(|other| other.id == w.id) {
                issues.push(ConfigIssue::new(
                    vec![
                        KeySeg::Key("paging"),
                        KeySeg::Key("webhooks"),
                        KeySeg::Index(i),
                        KeySeg::Key("id"),
                    ],
                    format!("a second webhook is named \"{}\"", w.id),
                    "give each [[paging.webhooks]] its own id",
                ));
            }
        }
        match humantime::parse_duration(self.group_window.trim()) {
            Ok(d) if d <= MAX_GROUP_WINDOW => {}
            Ok(_) => issues.push(ConfigIssue::new(
                vec![KeySeg::Key("paging"), KeySeg::Key("group_window")],
                format!(
                    "pages held {} would tell a person of an emergency too late",
                    self.group_window.escape_debug()
                ),
                "write at most \"10m\" (\"1m\" is usual; \"0s\" sends every page alone)",
            )),
            Err(e) => issues.push(ConfigIssue::new(
                vec![KeySeg::Key("paging"), KeySeg::Key("group_window")],
                format!(
                    "\"{}\" is not a duration ({e})",
                    self.group_window.escape_debug()
                ),
                "write a duration such as \"1m\" or \"0s\"",
            )),
        }
        if !(1..=MAX_COVER_DAYS).contains(&self.max_cover_days) {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("paging"), KeySeg::Key("max_cover_days")],
                format!(
                    "a technician's cover of at most {} days is out of range",
                    self.max_cover_days
                ),
                format!("use between 1 and {MAX_COVER_DAYS} days (7 is usual)"),
            ));
        }
        let key =
            |k: &'static str| vec![KeySeg::Key("paging"), KeySeg::Key("phone"), KeySeg::Key(k)];
        if !(5..=300).contains(&self.phone.ring_secs) {
            issues.push(ConfigIssue::new(
                key("ring_secs"),
                format!("{} s of ringing is out of range", self.phone.ring_secs),
                "use between 5 and 300 seconds (45 is usual)",
            ));
        }
        if !(1..=10).contains(&self.phone.menu_repeats) {
            issues.push(ConfigIssue::new(
                key("menu_repeats"),
                format!("{} repeats is out of range", self.phone.menu_repeats),
                "use between 1 and 10",
            ));
        }
        if !(5..=300).contains(&self.phone.callback_ring_secs) {
            issues.push(ConfigIssue::new(
                key("callback_ring_secs"),
                format!(
                    "{} s of ringing is out of range",
                    self.phone.callback_ring_secs
                ),
                "use between 5 and 300 seconds (60 is usual)",
            ));
        }
        let wkey =
            |k: &'static str| vec![KeySeg::Key("paging"), KeySeg::Key("worker"), KeySeg::Key(k)];
        if self.worker.lease_secs < 30 {
            issues.push(ConfigIssue::new(
                wkey("lease_secs"),
                "a lease shorter than 30 s can expire under a phone page still ringing",
                "use 300 (5 minutes)",
            ));
        }
        if self.worker.max_attempts == 0 {
            issues.push(ConfigIssue::new(
                wkey("max_attempts"),
                "0 attempts would never send anything",
                "use a positive number such as 5",
            ));
        }
        if self.worker.retry_secs == 0 {
            issues.push(ConfigIssue::new(
                wkey("retry_secs"),
                "retrying at once hammers a server that is down",
                "use a positive number of seconds such as 15",
            ));
        }
        if !(50..=60_000).contains(&self.worker.plan_every_ms) {
            issues.push(ConfigIssue::new(
                wkey("plan_every_ms"),
                format!("{} ms is out of range", self.worker.plan_every_ms),
                "use between 50 and 60000 (1000 is usual)",
            ));
        }
    }

    /// Whether anyone can be paged at all.
    pub fn is_enabled(&self) -> bool {
        !self.people.is_empty()
    }
}
