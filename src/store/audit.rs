//! The audit log: who changed what, when, before and after. Append-only: the database itself
//! refuses to update or delete an event (triggers in migration 0006).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{on_read, on_write, Store, StoreError};

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

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The state before the change (JSON), if there was one.
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, actor, action, target, before, after) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Appends `$e` (a `&NewAudit`) with the executor `$ex` (a pool or `&mut *tx`): lets a change
/// and its audit event commit in one transaction on either backend.
macro_rules! insert_audit {
    ($ex:expr, $e:expr) => {{
        let e: &crate::store::audit::NewAudit<'_> = $e;
        sqlx::query(crate::store::audit::INSERT_AUDIT)
            .bind(crate::store::micros(e.at))
            .bind(e.actor)
            .bind(e.action)
            .bind(e.target)
            .bind(e.before.as_ref().map(|v| v.to_string()))
            .bind(e.after.as_ref().map(|v| v.to_string()))
            .execute($ex)
            .await
    }};
}
pub(crate) use insert_audit;

/// JSON text back to a value; text that is not JSON (never written by us) comes back as a string.
fn json_of(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

impl Store {
    /// Appends an audit event.
    pub async fn audit(&self, e: &NewAudit<'_>) -> Result<(), StoreError> {
        on_write!(&self.db, pool => {
            insert_audit!(pool, e)?;
            Ok(())
        })
    }

    /// The newest `limit` events (at most 1000), newest first; with `before_id`, those older
    /// than that event (the next page).
    pub async fn audit_events(
        &self,
        limit: i64,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = limit.clamp(0, 1000);
        let before_id = before_id.unwrap_or(i64::MAX);
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT id, at, actor, action, target, before, after FROM audit_events \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    before: json_of(r.try_get("before")?),
                    after: json_of(r.try_get("after")?),
                });
            }
            Ok(out)
        })
    }
}
