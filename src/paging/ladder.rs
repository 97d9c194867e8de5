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
