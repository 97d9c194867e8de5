//! Webhook pages: signed JSON, or PagerDuty Events API v2. (Helper-owned: see the brief.)

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
}

impl WebhookConfig {
    pub fn validate(&self, _index: usize, _issues: &mut Vec<ConfigIssue>) {}
}

// ---- temporary compile stub ----
use super::{ChannelError, PageFacts};
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum WebhookFormat {
    #[default]
    Json,
    PagerDuty,
}
pub enum WebhookEvent<'a> {
    Page(&'a PageFacts),
    Acknowledged { facts: &'a PageFacts, by: &'a str },
    Resolved { facts: &'a PageFacts },
}
pub struct WebhookSender;
impl WebhookSender {
    pub fn new() -> Result<Self, ChannelError> {
        Ok(WebhookSender)
    }
    pub async fn send(
        &self,
        _c: &WebhookConfig,
        _e: &WebhookEvent<'_>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ChannelError> {
        Ok(())
    }
}
