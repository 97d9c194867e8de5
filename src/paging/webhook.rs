//! Webhook pages: signed JSON, or PagerDuty Events API v2. (Helper-owned: see the brief.)

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub id: String,
    pub url: String,
}

impl WebhookConfig {
    pub fn validate(&self, _index: usize, _issues: &mut Vec<ConfigIssue>) {}
}
