//! Tickets, voicemails, accounts and the page-job outbox (see the store issue).

use serde::Deserialize;

use crate::config::{ConfigIssue, KeySeg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// "sqlite://PATH" (the default) or "postgres://...".
    #[serde(default = "default_url")]
    pub url: String,
}

fn default_url() -> String {
    "sqlite://data/astreinte.db".into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: default_url() }
    }
}

impl StoreConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("store"), KeySeg::Key("url")],
                format!("\"{}\" is neither a SQLite nor a PostgreSQL URL", self.url),
                "write \"sqlite://data/astreinte.db\" or \"postgres://user:pass@host/db\"",
            ));
        }
    }
}
