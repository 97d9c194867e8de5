//! The audit log: who changed what, when, before and after. (Helper-owned: see the brief.)

use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// One change to record.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// The user's name ("cli" for the operator CLI without a user).
    pub actor: &'a str,
    /// e.g. "prompt.upload", "ticket.acknowledge", "override.add".
    pub action: &'a str,
    /// What was changed, e.g. "fr/welcome", "48210937".
    pub target: &'a str,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Appends an audit event.
    pub async fn audit(&self, _e: &NewAudit<'_>) -> Result<(), StoreError> {
        Ok(())
    }
}
