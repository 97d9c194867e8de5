//! Read-only views of the tickets for the console: the ticket list (open first, then the most
//! recent closed ones) read through the indexes, never the whole table.
//!
//! `tickets_open` is a partial index on `callback_due_at` for the unfinished statuses: the open
//! part reads only it. The closed part walks `tickets_created` backwards and stops at its LIMIT.
//! The row decoding mirrors `tickets.rs` (same columns, same types); the console tests compare
//! a listed ticket with `Store::ticket` so the two cannot drift apart unnoticed.

use sqlx::Row;

use super::{on_read, Status, Store, StoreError, Ticket};

const COLUMNS: &str = "t.id, t.number, t.severity, t.status, t.caller, t.callback_number, \
    t.account_id, a.code AS account_code, a.company, t.language, t.created_at, t.paged_at, \
    t.acknowledged_at, t.called_back_at, t.resolved_at, t.cancelled_at, t.callback_due_at, \
    t.resolution_due_at, t.voicemail_path, t.voicemail_seconds, t.speech_detected, t.answers, \
    t.classification_reasons, t.suspected_incident";

/// Must stay the WHERE clause of the `tickets_open` partial index, word for word, or the
/// planners stop using it.
const OPEN_WHERE: &str = "t.status IN ('open', 'paged', 'acknowledged', 'called_back')";
const CLOSED_WHERE: &str = "t.status IN ('resolved', 'cancelled')";

macro_rules! decode {
    ($r:expr) => {{
        let r = $r;
        let severity: String = r.try_get("severity")?;
        let status: String = r.try_get("status")?;
        let answers: String = r.try_get("answers")?;
        let reasons: String = r.try_get("classification_reasons")?;
        Ticket {
            id: r.try_get("id")?,
            number: r.try_get("number")?,
            severity: severity
                .parse()
                .map_err(|e: crate::triage::BadSeverity| StoreError::Corrupt(e.to_string()))?,
            status: status.parse::<Status>()?,
            caller: r.try_get("caller")?,
            callback_number: r.try_get("callback_number")?,
            account_id: r.try_get("account_id")?,
            account_code: r.try_get("account_code")?,
            company: r.try_get("company")?,
            language: r.try_get("language")?,
            created_at: r.try_get("created_at")?,
            paged_at: r.try_get("paged_at")?,
            acknowledged_at: r.try_get("acknowledged_at")?,
            called_back_at: r.try_get("called_back_at")?,
            resolved_at: r.try_get("resolved_at")?,
            cancelled_at: r.try_get("cancelled_at")?,
            callback_due_at: r.try_get("callback_due_at")?,
            resolution_due_at: r.try_get("resolution_due_at")?,
            voicemail_path: r.try_get("voicemail_path")?,
            voicemail_seconds: r.try_get("voicemail_seconds")?,
            speech_detected: r.try_get("speech_detected")?,
            answers: serde_json::from_str(&answers)
                .map_err(|e| StoreError::Corrupt(format!("answers: {e}")))?,
            classification_reasons: serde_json::from_str(&reasons)
                .map_err(|e| StoreError::Corrupt(format!("classification_reasons: {e}")))?,
            suspected_incident: r.try_get("suspected_incident")?,
        }
    }};
}

/// Which tickets the console's list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListScope {
    /// The unfinished tickets (most urgent callback first), then the most recent closed ones.
    OpenFirst,
    /// Only the unfinished tickets, most urgent callback first.
    Open,
    /// Only the resolved and cancelled tickets, newest first.
    Closed,
}

impl Store {
    /// At most `limit` tickets of `scope`, in two indexed queries at most (no per-row query).
    pub async fn ticket_view(
        &self,
        scope: ListScope,
        limit: i64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let limit = limit.max(0);
        let mut out = Vec::new();
        if matches!(scope, ListScope::OpenFirst | ListScope::Open) {
            out = self.open_tickets(limit).await?;
        }
        let left = limit - out.len() as i64;
        if matches!(scope, ListScope::OpenFirst | ListScope::Closed) && left > 0 {
            let closed = self.recent_closed_tickets(left).await?;
            out.extend(closed);
        }
        Ok(out)
    }

    /// Unfinished tickets, most urgent callback first (reads the `tickets_open` partial index).
    pub async fn open_tickets(&self, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {OPEN_WHERE} ORDER BY t.callback_due_at, t.id LIMIT $1"
        );
        self.ticket_rows(&sql, limit.max(0)).await
    }

    /// Resolved and cancelled tickets, newest first (walks `tickets_created` backwards).
    pub async fn recent_closed_tickets(&self, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {CLOSED_WHERE} ORDER BY t.created_at DESC, t.id DESC LIMIT $1"
        );
        self.ticket_rows(&sql, limit.max(0)).await
    }

    /// How many tickets are unfinished (counted on the `tickets_open` partial index).
    pub async fn open_ticket_count(&self) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM tickets t WHERE {OPEN_WHERE}");
        on_read!(&self.db, pool => {
            let n: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await?;
            Ok(n)
        })
    }

    async fn ticket_rows(&self, sql: &str, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(sql).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode!(r));
            }
            Ok(out)
        })
    }

    /// The query plan of the open and the closed list (SQLite: `EXPLAIN QUERY PLAN`;
    /// PostgreSQL: `EXPLAIN`), for tests that check the indexes are used.
    pub async fn ticket_view_plans(&self) -> Result<(String, String), StoreError> {
        let open = format!(
            "SELECT {COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {OPEN_WHERE} ORDER BY t.callback_due_at, t.id LIMIT 200"
        );
        let closed = format!(
            "SELECT {COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {CLOSED_WHERE} ORDER BY t.created_at DESC, t.id DESC LIMIT 200"
        );
        match &self.db {
            super::Db::Sqlite { read, .. } => {
                let mut plans = Vec::new();
                for q in [open, closed] {
                    let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {q}"))
                        .fetch_all(read)
                        .await?;
                    let mut lines = Vec::new();
                    for r in &rows {
                        lines.push(r.try_get::<String, _>("detail")?);
                    }
                    plans.push(lines.join("\n"));
                }
                let closed = plans.pop().unwrap_or_default();
                let open = plans.pop().unwrap_or_default();
                Ok((open, closed))
            }
            super::Db::Postgres(pool) => {
                let mut plans = Vec::new();
                for q in [open, closed] {
                    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {q}"))
                        .fetch_all(pool)
                        .await?;
                    plans.push(lines.join("\n"));
                }
                let closed = plans.pop().unwrap_or_default();
                let open = plans.pop().unwrap_or_default();
                Ok((open, closed))
            }
        }
    }
}
