//! The page-job outbox. Jobs are enqueued with their ticket (`Store::create_ticket`) or later
//! (`enqueue_page`), leased by a worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several nodes
//! never take the same job), and finished with an outcome. An expired lease is taken again, so
//! a node that dies mid-page loses nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Db, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPage {
    /// "sip", "email", "webhook"... (the paging issue defines them).
    pub channel: String,
    /// Who or where: a roster slot, an address; a placeholder until paging resolves it.
    pub target: String,
    pub run_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    Pending,
    Leased,
    Done,
    Failed,
    Cancelled,
}

impl PageState {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => PageState::Pending,
            "leased" => PageState::Leased,
            "done" => PageState::Done,
            "failed" => PageState::Failed,
            "cancelled" => PageState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("page job state \"{other}\""))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageJob {
    pub id: i64,
    pub ticket_id: i64,
    pub ticket_number: String,
    pub channel: String,
    pub target: String,
    pub state: PageState,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// How a leased job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    Done,
    Retry {
        run_at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
}

const JOB_COLUMNS: &str = "j.id, j.ticket_id, t.number AS ticket_number, j.channel, j.target, \
    j.state, j.run_at, j.attempts, j.lease_owner, j.lease_until, j.last_error";

macro_rules! job_from_row {
    ($r:expr) => {{
        let r = $r;
        let state: String = r.try_get("state")?;
        PageJob {
            id: r.try_get("id")?,
            ticket_id: r.try_get("ticket_id")?,
            ticket_number: r.try_get("ticket_number")?,
            channel: r.try_get("channel")?,
            target: r.try_get("target")?,
            state: PageState::parse(&state)?,
            run_at: r.try_get("run_at")?,
            attempts: r.try_get("attempts")?,
            lease_owner: r.try_get("lease_owner")?,
            lease_until: r.try_get("lease_until")?,
            last_error: r.try_get("last_error")?,
        }
    }};
}

impl Store {
    /// Adds a page job for an existing ticket.
    pub async fn enqueue_page(
        &self,
        ticket_number: &str,
        page: &NewPage,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO page_jobs (ticket_id, channel, target, state, run_at, attempts, created_at, updated_at) \
                 SELECT id, $2, $3, 'pending', $4, 0, $5, $5 FROM tickets WHERE number = $1 RETURNING id",
            )
            .bind(ticket_number).bind(&page.channel).bind(&page.target)
            .bind(micros(page.run_at)).bind(now)
            .fetch_optional(pool).await?;
            id.ok_or_else(|| StoreError::NoSuchTicket(ticket_number.to_string()))
        })
    }

    /// Takes up to `max` runnable jobs (due and pending, or whose lease expired) for `owner`
    /// until `now + lease`.
    pub async fn lease_page_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: i64,
    ) -> Result<Vec<PageJob>, StoreError> {
        let now = micros(now);
        let pick = "SELECT id FROM page_jobs WHERE run_at <= $3 AND \
                    (state = 'pending' OR (state = 'leased' AND lease_until < $3)) \
                    ORDER BY run_at, id LIMIT $4";
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            // One writer at a time already: nothing to skip.
            Db::Sqlite { .. } => "",
        };
        let sql = format!(
            "UPDATE page_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id IN ({pick}{lock}) RETURNING id"
        );
        let ids: Vec<i64> = on_write!(&self.db, pool => {
            sqlx::query_scalar(&sql)
                .bind(owner).bind(micros(now + lease)).bind(now).bind(max)
                .fetch_all(pool).await?
        });
        self.page_jobs_by_id(&ids).await
    }

    async fn page_jobs_by_id(&self, ids: &[i64]) -> Result<Vec<PageJob>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM page_jobs j JOIN tickets t ON t.id = j.ticket_id WHERE j.id = $1"
        );
        for id in ids {
            on_read!(&self.db, pool => {
                if let Some(r) = sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                    out.push(job_from_row!(&r));
                }
            });
        }
        Ok(out)
    }

    /// Page jobs of a ticket, oldest first.
    pub async fn page_jobs(&self, ticket_number: &str) -> Result<Vec<PageJob>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM page_jobs j JOIN tickets t ON t.id = j.ticket_id \
             WHERE t.number = $1 ORDER BY j.id"
        );
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&sql).bind(ticket_number).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(job_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Ends `owner`'s lease on job `id`. Returns false when the lease was lost (expired and taken
    /// by another worker): that worker now owns the job.
    pub async fn finish_page_job(
        &self,
        id: i64,
        owner: &str,
        outcome: &PageOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        let (state, run_at, error): (&str, Option<DateTime<Utc>>, Option<&str>) = match outcome {
            PageOutcome::Done => ("done", None, None),
            PageOutcome::Retry { run_at, error } => ("pending", Some(micros(*run_at)), Some(error)),
            PageOutcome::Failed { error } => ("failed", None, Some(error)),
        };
        on_write!(&self.db, pool => {
            let r = sqlx::query(
                "UPDATE page_jobs SET state = $1, run_at = COALESCE($2, run_at), \
                 last_error = COALESCE($3, last_error), lease_owner = NULL, lease_until = NULL, \
                 updated_at = $4 WHERE id = $5 AND state = 'leased' AND lease_owner = $6",
            )
            .bind(state).bind(run_at).bind(error).bind(now).bind(id).bind(owner)
            .execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}
