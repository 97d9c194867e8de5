//! The HTTP server on `[http] listen`: acknowledgement links, health, metrics; the admin
//! console (a later issue) builds on it. (Helper-owned: see the brief.)

use serde::Deserialize;

use crate::config_issue::ConfigIssue;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub listen: Option<String>,
}

impl HttpConfig {
    pub fn validate(&self, _issues: &mut Vec<ConfigIssue>) {}
}
