//! Who is on call: people, rotations (weekly by default, hand-over Monday 08:00 in the
//! schedule's zone) and overrides (a person covers a rotation from/to). Sans-I/O: the time is
//! an argument. (Helper-owned: see the brief.)

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

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

pub fn validate(
    _people: &[PersonConfig],
    _rotations: &[RotationConfig],
    _issues: &mut Vec<ConfigIssue>,
) {
}

pub fn slot_names(people: &[PersonConfig], rotations: &[RotationConfig]) -> BTreeSet<String> {
    people
        .iter()
        .map(|p| p.id.clone())
        .chain(rotations.iter().map(|r| r.id.clone()))
        .collect()
}

// ---- temporary compile stub (replaced by the roster helper's work) ----
use crate::paging::facts::PagedPerson;
use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
#[error("roster")]
pub struct RosterError;

#[derive(Debug, Clone)]
pub struct Override {
    pub id: i64,
    pub rotation: String,
    pub person: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Shift {
    pub person: PagedPerson,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by_override: bool,
    pub override_id: Option<i64>,
}

pub struct Roster {
    people: Vec<PagedPerson>,
}

impl Roster {
    pub fn new(
        people: Vec<PagedPerson>,
        _r: &[RotationConfig],
        _tz: chrono_tz::Tz,
    ) -> Result<Roster, RosterError> {
        Ok(Roster { people })
    }
    pub fn resolve(&self, slot: &str, _at: DateTime<Utc>, _o: &[Override]) -> Vec<PagedPerson> {
        self.people
            .iter()
            .filter(|p| p.id == slot)
            .cloned()
            .collect()
    }
    pub fn on_call(&self, _r: &str, _at: DateTime<Utc>, _o: &[Override]) -> Option<Shift> {
        None
    }
    pub fn next_on_call(&self, _r: &str, _at: DateTime<Utc>, _o: &[Override]) -> Option<Shift> {
        None
    }
}
