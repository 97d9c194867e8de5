//! E-mail pages over SMTP (lettre). (Helper-owned: see the brief.)

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub url: String,
    pub from: String,
}

impl SmtpConfig {
    pub fn validate(&self, _issues: &mut Vec<ConfigIssue>) {}
}

// ---- temporary compile stub ----
use super::{ChannelError, PageFacts};
pub struct Mailer;
impl Mailer {
    pub fn new(_c: &SmtpConfig) -> Result<Mailer, ChannelError> {
        Ok(Mailer)
    }
    pub async fn send_page(&self, _to: &str, _f: &PageFacts) -> Result<(), ChannelError> {
        Ok(())
    }
}
