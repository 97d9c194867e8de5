//! The escalation ladder, sans-I/O. (Helper-owned: see the brief.)

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::config_issue::ConfigIssue;
use crate::schedule::sla::SlaConfig;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderConfig {}

impl LadderConfig {
    pub fn validate(
        &self,
        _slots: &BTreeSet<String>,
        _sla: &SlaConfig,
        _issues: &mut Vec<ConfigIssue>,
    ) {
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeConfig {}

impl NoticeConfig {
    pub fn validate(&self, _slots: &BTreeSet<String>, _issues: &mut Vec<ConfigIssue>) {}
}

// ---- temporary compile stub (replaced by the ladder helper's work) ----
use crate::paging::facts::PageReason;
use crate::triage::Severity;
use chrono::{DateTime, Duration, Utc};

pub struct LadderPolicy {
    levels: Vec<Vec<String>>,
    offsets: Vec<Duration>,
}
impl LadderPolicy {
    pub fn from_config(
        _l: &LadderConfig,
        _n: &NoticeConfig,
        _s: &SlaConfig,
    ) -> Result<Self, String> {
        Ok(LadderPolicy {
            levels: vec![],
            offsets: vec![],
        })
    }
    pub fn due(&self, _t: &TicketClock, _now: DateTime<Utc>) -> LadderDue {
        LadderDue {
            intents: vec![],
            next_wake: None,
        }
    }
    pub fn offsets(&self, _s: Severity) -> &[Duration] {
        &self.offsets
    }
    pub fn levels(&self) -> &[Vec<String>] {
        &self.levels
    }
}
pub struct TicketClock {
    pub severity: Severity,
    pub after_hours: bool,
    pub created_at: DateTime<Utc>,
    pub callback_due_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub called_back_at: Option<DateTime<Utc>>,
    pub closed: bool,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Climb,
    Lapsed,
    Notice,
}
impl Phase {
    pub fn as_str(self) -> &'static str {
        "climb"
    }
}
pub enum Channels {
    All,
    Only(Vec<String>),
}
impl Channels {
    pub fn allows(&self, c: &str) -> bool {
        match self {
            Channels::All => true,
            Channels::Only(v) => v.iter().any(|x| x == c),
        }
    }
}
pub struct PageIntent {
    pub phase: Phase,
    pub level: u32,
    pub round: u32,
    pub slots: Vec<String>,
    pub at: DateTime<Utc>,
    pub reason: PageReason,
    pub channels: Channels,
}
impl PageIntent {
    pub fn dedup_key(&self, t: &str) -> String {
        t.to_string()
    }
}
pub struct LadderDue {
    pub intents: Vec<PageIntent>,
    pub next_wake: Option<DateTime<Utc>>,
}
