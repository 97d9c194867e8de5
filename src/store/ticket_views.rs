//! Read-only views of the tickets for the console: the ticket list (open first, then the most
//! recent closed ones) read through the indexes, never the whole table.
//!
//! `tickets_open` is a partial index on `callback_due_at` for the unfinished statuses: the open
//! part reads only it. The closed part walks `tickets_created` backwards and stops at its LIMIT.
//! Rows are read with `tickets.rs`'s columns and decoder.

use sqlx::Row;

use super::tickets::{ticket_from_row, TICKET_COLUMNS};
use super::{on_read, Store, StoreError, Ticket};

/// Must stay the WHERE clause of the `tickets_open` partial index, word for word, or the
/// planners stop using it.
const OPEN_WHERE: &str = "t.status IN ('open', 'paged', 'acknowledged', 'called_back')";
const CLOSED_WHERE: &str = "t.status IN ('resolved', 'cancelled')";
/// A test page's ticket (see [`super::TEST_PAGE_CALLER`]) is never in the console's queue.
const NOT_TEST_PAGE: &str = "t.caller <> 'test'";

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
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {OPEN_WHERE} AND {NOT_TEST_PAGE} ORDER BY t.callback_due_at, t.id LIMIT $1"
        );
        self.ticket_rows(&sql, limit.max(0)).await
    }

    /// Resolved and cancelled tickets, newest first (walks `tickets_created` backwards).
    pub async fn recent_closed_tickets(&self, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {CLOSED_WHERE} AND {NOT_TEST_PAGE} ORDER BY t.created_at DESC, t.id DESC LIMIT $1"
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
                out.push(ticket_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The query plan of the open and the closed list (SQLite: `EXPLAIN QUERY PLAN`;
    /// PostgreSQL: `EXPLAIN`), for tests that check the indexes are used.
    pub async fn ticket_view_plans(&self) -> Result<(String, String), StoreError> {
        let open = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {OPEN_WHERE} AND {NOT_TEST_PAGE} ORDER BY t.callback_due_at, t.id LIMIT 200"
        );
        let closed = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE {CLOSED_WHERE} AND {NOT_TEST_PAGE} ORDER BY t.created_at DESC, t.id DESC LIMIT 200"
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
