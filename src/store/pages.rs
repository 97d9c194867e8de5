//! The page-job outbox. Jobs are enqueued with their ticket (`Store::create_ticket`) or later
//! (`enqueue_page`), leased by a worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several nodes
//! never take the same job), and finished with an outcome. An expired lease is taken again, so
//! a node that dies mid-page loses nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Db, Store, StoreError};

/// Ids bound in one `IN (...)` (well under SQLite's and PostgreSQL's parameter limits).
const IDS_PER_QUERY: usize = 500;

/// "$first, $first+1, ..." (`n` of them).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a repeat was written cancelled (see [`Store::enqueue_planned`]).
pub const SUPERSEDED: &str =
    "not sent: the page before it to this person on this channel had not gone out yet";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPage {
    /// "phone", "email", "webhook:<id>".
    pub channel: String,
    /// Where: a SIP URI or E.164 number, an e-mail address, a webhook id.
    pub target: String,
    pub run_at: DateTime<Utc>,
    /// The person paged (roster id), if the page is for someone.
    pub person: Option<String>,
    /// Ladder level, 1-based; 0 outside the ladder.
    pub level: i32,
    /// "escalation", "repeat", "callback_overdue", "notice", or a webhook action
    /// ("acknowledge", "resolve").
    pub reason: String,
    /// Unique per page: a second enqueue under the same key is ignored.
    pub dedup_key: Option<String>,
}

impl NewPage {
    /// A page with no person, level or dedup key (tests, manual pages).
    pub fn simple(channel: &str, target: &str, run_at: DateTime<Utc>) -> NewPage {
        NewPage {
            channel: channel.to_string(),
            target: target.to_string(),
            run_at,
            person: None,
            level: 0,
            reason: "escalation".into(),
            dedup_key: None,
        }
    }
}

/// A line added to a ticket's history with the pages that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: String,
    pub actor: String,
    pub reason: Option<String>,
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
    pub person: Option<String>,
    pub level: i32,
    pub reason: String,
    pub dedup_key: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The job whose page carried this one (pages to one person grouped), if any.
    pub group_of: Option<i64>,
}

/// Which jobs a lease may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseFilter<'a> {
    Any,
    Only(&'a str),
    Except(&'a str),
}

/// A leased job's turn, when pages to one person on one channel are grouped
/// ([`Store::take_group_turn`]).
#[derive(Debug, Clone, PartialEq)]
pub enum GroupTurn {
    /// Send it now, carrying these jobs too (same person and channel, now leased to us).
    Send { members: Vec<PageJob> },
    /// A page to the same person on the same channel is under way, or went out less than the
    /// window ago: the job waits until then (released, its attempt not counted).
    Held { until: DateTime<Utc> },
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
    /// Not sent, and never to be: the ticket no longer needs it (acknowledged, resolved).
    Cancelled {
        why: String,
    },
}

const JOB_COLUMNS: &str = "j.id, j.ticket_id, t.number AS ticket_number, j.channel, j.target, \
    j.state, j.run_at, j.attempts, j.lease_owner, j.lease_until, j.last_error, j.person, j.level, \
    j.reason, j.dedup_key, j.sent_at, j.group_of";

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
            person: r.try_get("person")?,
            level: r.try_get("level")?,
            reason: r.try_get("reason")?,
            dedup_key: r.try_get("dedup_key")?,
            sent_at: r.try_get("sent_at")?,
            group_of: r.try_get("group_of")?,
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
                "INSERT INTO page_jobs (ticket_id, channel, target, state, run_at, attempts, created_at, \
                 updated_at, person, level, reason, dedup_key) \
                 SELECT id, $2, $3, 'pending', $4, 0, $5, $5, $6, $7, $8, $9 FROM tickets WHERE number = $1 RETURNING id",
            )
            .bind(ticket_number).bind(&page.channel).bind(&page.target)
            .bind(micros(page.run_at)).bind(now)
            .bind(page.person.as_deref()).bind(page.level).bind(&page.reason).bind(page.dedup_key.as_deref())
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
        self.lease_page_jobs_where(owner, now, lease, max, LeaseFilter::Any, Duration::zero())
            .await
    }

    /// [`Store::lease_page_jobs`], for some channels only (a worker whose phone lines are all
    /// busy still sends e-mail). With a `group_window` (pages grouped), a job whose person is
    /// not to be paged on its channel yet is left where it is: another page to them is under
    /// way, or one went out less than the window ago. It is carried by the next page to them
    /// (`take_group_turn`), rather than leased, found held and put back again and again.
    pub async fn lease_page_jobs_where(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        max: i64,
        filter: LeaseFilter<'_>,
        group_window: Duration,
    ) -> Result<Vec<PageJob>, StoreError> {
        let now = micros(now);
        let (channel_clause, channel) = match filter {
            LeaseFilter::Any => ("", None),
            LeaseFilter::Only(c) => (" AND j.channel = $6", Some(c)),
            LeaseFilter::Except(c) => (" AND j.channel <> $6", Some(c)),
        };
        let grouped = group_window > Duration::zero();
        let turn_clause = if grouped {
            // Two probes, each answered by its own partial index (migration 0015).
            " AND (j.person IS NULL OR (\
             NOT EXISTS (SELECT 1 FROM page_jobs b WHERE b.state = 'leased' \
             AND b.person = j.person AND b.channel = j.channel AND b.lease_until >= $3 \
             AND b.id <> j.id) \
             AND NOT EXISTS (SELECT 1 FROM page_jobs s WHERE s.state IN ('done', 'failed') \
             AND s.group_of IS NULL AND s.person = j.person AND s.channel = j.channel \
             AND s.updated_at > $5)))"
        } else {
            // $5 is bound either way: keep it in the statement.
            " AND $5 = $5"
        };
        let pick = format!(
            "SELECT j.id FROM page_jobs j WHERE j.run_at <= $3 AND \
             (j.state = 'pending' OR (j.state = 'leased' AND j.lease_until < $3)){channel_clause}{turn_clause} \
             ORDER BY j.run_at, j.id LIMIT $4"
        );
        let lock = match self.db {
            Db::Postgres(_) => " FOR UPDATE OF j SKIP LOCKED",
            // One writer at a time already: nothing to skip.
            Db::Sqlite { .. } => "",
        };
        let sql = format!(
            "UPDATE page_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id IN ({pick}{lock}) RETURNING id"
        );
        let ids: Vec<i64> = on_write!(&self.db, pool => {
            let mut q = sqlx::query_scalar(&sql)
                .bind(owner).bind(micros(now + lease)).bind(now).bind(max)
                .bind(micros(now - group_window.max(Duration::zero())));
            if let Some(c) = channel {
                q = q.bind(c);
            }
            q.fetch_all(pool).await?
        });
        self.page_jobs_by_id(&ids).await
    }

    /// Whether leased job `job` goes now, and with which other pages to its person on its
    /// channel. `ours`: jobs of the same person and channel this worker leased in the same
    /// batch (they ride with `job`, and are not "under way"). Held while another such page is
    /// under way (a call ringing; of two racing nodes the lower job id goes first) or one went
    /// out (sent or failed) less than `window` ago; otherwise every pending job of the person
    /// on the channel is leased to `owner` and returned to be carried. A job without a person
    /// (PagerDuty), or a zero window, is never grouped.
    pub async fn take_group_turn(
        &self,
        job: &PageJob,
        owner: &str,
        now: DateTime<Utc>,
        window: Duration,
        ours: &[i64],
    ) -> Result<GroupTurn, StoreError> {
        let Some(person) = job.person.as_deref() else {
            return Ok(GroupTurn::Send {
                members: Vec::new(),
            });
        };
        if window <= Duration::zero() {
            return Ok(GroupTurn::Send {
                members: Vec::new(),
            });
        }
        let now = micros(now);
        // A call under way is looked at again this often (it may last minutes).
        let recheck = window.min(Duration::seconds(5));
        let lease_until = job.lease_until.unwrap_or(now);
        let carried: Vec<i64> = on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let busy: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM page_jobs WHERE person = $1 AND channel = $2 AND state = 'leased' \
                 AND lease_until >= $3 AND id <> $4",
            )
            .bind(person).bind(&job.channel).bind(now).bind(job.id)
            .fetch_all(&mut *tx).await?;
            let under_way = busy.iter().any(|id| !ours.contains(id) && *id < job.id);
            let last: Option<DateTime<Utc>> = if under_way {
                None
            } else {
                sqlx::query_scalar(
                    "SELECT MAX(updated_at) FROM page_jobs WHERE person = $1 AND channel = $2 \
                     AND state IN ('done', 'failed') AND group_of IS NULL AND updated_at > $3",
                )
                .bind(person).bind(&job.channel).bind(now - window)
                .fetch_one(&mut *tx).await?
            };
            let until = match (under_way, last) {
                (true, _) => Some(now + recheck),
                (false, Some(last)) => Some(micros(last + window)),
                (false, None) => None,
            };
            if let Some(until) = until {
                for id in std::iter::once(&job.id).chain(ours) {
                    sqlx::query(
                        "UPDATE page_jobs SET state = 'pending', run_at = $1, lease_owner = NULL, \
                         lease_until = NULL, attempts = attempts - 1, updated_at = $2 \
                         WHERE id = $3 AND state = 'leased' AND lease_owner = $4",
                    )
                    .bind(until).bind(now).bind(id).bind(owner)
                    .execute(&mut *tx).await?;
                }
                tx.commit().await?;
                return Ok(GroupTurn::Held { until });
            }
            let gathered: Vec<i64> = sqlx::query_scalar(
                "UPDATE page_jobs SET state = 'leased', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE person = $4 AND channel = $5 AND state = 'pending' AND id <> $6 RETURNING id",
            )
            .bind(owner).bind(lease_until).bind(now).bind(person).bind(&job.channel).bind(job.id)
            .fetch_all(&mut *tx).await?;
            tx.commit().await?;
            ours.iter().copied().chain(gathered).collect::<Vec<i64>>()
        });
        let mut members = self.page_jobs_by_id(&carried).await?;
        members.retain(|m| m.lease_owner.as_deref() == Some(owner));
        Ok(GroupTurn::Send { members })
    }

    /// Marks `members` as carried by `lead`'s page (before it is sent: a reader sees the group).
    pub async fn mark_carried(&self, lead: i64, members: &[i64]) -> Result<(), StoreError> {
        for chunk in members.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "UPDATE page_jobs SET group_of = $1 WHERE id IN ({})",
                placeholders(2, chunk.len())
            );
            on_write!(&self.db, pool => {
                let mut q = sqlx::query(&sql).bind(lead);
                for id in chunk {
                    q = q.bind(id);
                }
                q.execute(pool).await?;
            });
        }
        Ok(())
    }

    /// The jobs `ids`, in that order (ids that no longer exist are left out); a few queries
    /// however many there are.
    async fn page_jobs_by_id(&self, ids: &[i64]) -> Result<Vec<PageJob>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM page_jobs j JOIN tickets t ON t.id = j.ticket_id \
                 WHERE j.id IN ({})",
                placeholders(1, chunk.len())
            );
            on_read!(&self.db, pool => {
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                for r in q.fetch_all(pool).await? {
                    out.push(job_from_row!(&r));
                }
            });
        }
        let position: std::collections::HashMap<i64, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        out.sort_by_key(|j| position.get(&j.id).copied().unwrap_or(usize::MAX));
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

    /// The page jobs of several tickets at once, oldest first (the console's list: who was
    /// paged on each ticket, in one query however long the list).
    pub async fn page_jobs_of(&self, ticket_ids: &[i64]) -> Result<Vec<PageJob>, StoreError> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Integers from the store itself: written into the query, not bound one by one.
        let ids = ticket_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM page_jobs j JOIN tickets t ON t.id = j.ticket_id \
             WHERE j.ticket_id IN ({ids}) ORDER BY j.id"
        );
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
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
            PageOutcome::Cancelled { why } => ("cancelled", None, Some(why)),
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

    /// Enqueues the pages a planner decided, ignoring any whose dedup key exists already (another
    /// node, or this one before a restart, enqueued it); a repeat whose page before it still
    /// waits is written cancelled ([`SUPERSEDED`]). When at least one is new and to be sent,
    /// `event` is added to the ticket's history in the same transaction. Returns how many are
    /// to be sent.
    pub async fn enqueue_planned(
        &self,
        ticket_id: i64,
        pages: &[NewPage],
        event: Option<&NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let mut added = 0;
            for page in pages {
                // A repeat while the page before it (same ticket, person and channel) has not
                // gone out yet would tell them nothing new: it is written already cancelled,
                // keeping its dedup key so that no node writes it again.
                let r = sqlx::query(
                    "INSERT INTO page_jobs (ticket_id, channel, target, state, run_at, attempts, \
                     created_at, updated_at, person, level, reason, dedup_key, last_error) \
                     SELECT $1, $2, $3, CASE WHEN w.n > 0 THEN 'cancelled' ELSE 'pending' END, \
                     $4, 0, $5, $5, $6, $7, $8, $9, CASE WHEN w.n > 0 THEN $10 END \
                     FROM (SELECT COUNT(*) AS n FROM page_jobs WHERE $8 = 'repeat' \
                     AND ticket_id = $1 AND person = $6 AND channel = $2 \
                     AND state IN ('pending', 'leased')) w WHERE true \
                     ON CONFLICT (dedup_key) DO NOTHING RETURNING state",
                )
                .bind(ticket_id).bind(&page.channel).bind(&page.target).bind(micros(page.run_at))
                .bind(now).bind(page.person.as_deref()).bind(page.level).bind(&page.reason)
                .bind(page.dedup_key.as_deref()).bind(SUPERSEDED)
                .fetch_optional(&mut *tx).await?;
                if r.is_some_and(|r| r.get::<String, _>(0) == "pending") {
                    added += 1;
                }
            }
            if added > 0 {
                if let Some(e) = event {
                    sqlx::query(
                        "INSERT INTO ticket_events (ticket_id, at, kind, actor, reason) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(ticket_id).bind(now).bind(&e.kind).bind(&e.actor).bind(e.reason.as_deref())
                    .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(added)
        })
    }

    /// Records that leased job `id` reached its person: the job is done, the ticket's history
    /// says so (`paged`), and a ticket still open becomes paged, all at once. False when the
    /// lease was lost (another worker owns the job now; it records its own outcome).
    pub async fn page_delivered(
        &self,
        id: i64,
        owner: &str,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.end_page(id, owner, "done", None, event, now).await
    }

    /// Records that leased job `id` failed for good (`page_failed` in the ticket's history).
    pub async fn page_failed(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.end_page(id, owner, "failed", Some(error), event, now)
            .await
    }

    async fn end_page(
        &self,
        id: i64,
        owner: &str,
        state: &str,
        error: Option<&str>,
        event: &NewEvent,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        let sent_at = (state == "done").then_some(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let r = sqlx::query(
                "UPDATE page_jobs SET state = $1, sent_at = $2, last_error = COALESCE($3, last_error), \
                 lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                 WHERE id = $5 AND state = 'leased' AND lease_owner = $6",
            )
            .bind(state).bind(sent_at).bind(error).bind(now).bind(id).bind(owner)
            .execute(&mut *tx).await?;
            if r.rows_affected() != 1 {
                return Ok(false);
            }
            let ticket_id: i64 = sqlx::query_scalar("SELECT ticket_id FROM page_jobs WHERE id = $1")
                .bind(id).fetch_one(&mut *tx).await?;
            // The first page delivered moves an open ticket to paged; later ones only log.
            let moved = if state == "done" {
                sqlx::query(
                    "UPDATE tickets SET status = 'paged', paged_at = COALESCE(paged_at, $1) \
                     WHERE id = $2 AND status = 'open'",
                )
                .bind(now).bind(ticket_id).execute(&mut *tx).await?.rows_affected() == 1
            } else {
                false
            };
            let (from, to) = if moved { (Some("open"), Some("paged")) } else { (None, None) };
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at, kind, actor, from_status, to_status, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(ticket_id).bind(now).bind(&event.kind).bind(&event.actor).bind(from).bind(to)
            .bind(event.reason.as_deref())
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
