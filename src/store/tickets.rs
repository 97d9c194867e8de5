//! Tickets: creation with their first events and page jobs in one transaction, status
//! transitions, reclassification, listing, and the append-only event log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use tracing::{info, info_span, Instrument};

use super::{micros, on_read, on_write, NewPage, Store, StoreError};
use crate::callback::CallbackNumber;
use crate::schedule::sla::SlaTicket;
use crate::schedule::{Due, TimeScale};
use crate::triage::Severity;

pub use crate::ticket::{Status, UnknownStatus};

impl From<UnknownStatus> for StoreError {
    fn from(e: UnknownStatus) -> StoreError {
        StoreError::Corrupt(e.to_string())
    }
}

/// What an operator or the paging work does to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A page went out (paging work).
    Page,
    Acknowledge,
    CalledBack,
    Resolve,
    Cancel,
}

impl Action {
    fn to(self) -> Status {
        match self {
            Action::Page => Status::Paged,
            Action::Acknowledge => Status::Acknowledged,
            Action::CalledBack => Status::CalledBack,
            Action::Resolve => Status::Resolved,
            Action::Cancel => Status::Cancelled,
        }
    }

    fn allowed_from(self, s: Status) -> bool {
        use Status::*;
        match self {
            Action::Page => s == Open,
            Action::Acknowledge => matches!(s, Open | Paged),
            Action::CalledBack => matches!(s, Open | Paged | Acknowledged),
            Action::Resolve | Action::Cancel => !s.is_final(),
        }
    }

    fn column(self) -> &'static str {
        match self {
            Action::Page => "paged_at",
            Action::Acknowledge => "acknowledged_at",
            Action::CalledBack => "called_back_at",
            Action::Resolve => "resolved_at",
            Action::Cancel => "cancelled_at",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Action::Page => "paged",
            Action::Acknowledge => "acknowledged",
            Action::CalledBack => "marked called back",
            Action::Resolve => "resolved",
            Action::Cancel => "cancelled",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Action::Page => "paged",
            Action::Acknowledge => "acknowledged",
            Action::CalledBack => "called_back",
            Action::Resolve => "resolved",
            Action::Cancel => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Voicemail {
    /// The WAV file, already fsynced (see `store::durable`).
    pub path: String,
    pub seconds: f64,
    pub speech_detected: bool,
}

/// A ticket to create after a voicemail (or by hand).
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub severity: Severity,
    pub caller: String,
    /// Only a number the callback policy took (`[ivr] callback_allow`): None when the caller
    /// left none we may call (stored as an empty column; pages then say so).
    pub callback_number: Option<CallbackNumber>,
    /// From `Store::find_account_by_number`.
    pub account_id: Option<i64>,
    /// "fr" or "en".
    pub language: String,
    pub voicemail: Option<Voicemail>,
    /// What the IVR collected (question → answer).
    pub answers: BTreeMap<String, String>,
    pub classification_reasons: Vec<String>,
    pub suspected_incident: bool,
    /// The drill compression it is opened under (`[drill] time_scale`; REAL in production).
    pub time_scale: TimeScale,
    pub created_at: DateTime<Utc>,
    pub due: Due,
    /// Page jobs enqueued in the same transaction.
    pub pages: Vec<NewPage>,
    /// Who creates it: "ivr", an operator's name...
    pub actor: String,
}

impl NewTicket {
    /// The `callback_number` column: E.164, or empty when there is none.
    pub(crate) fn stored_callback_number(&self) -> String {
        self.callback_number
            .as_ref()
            .map(CallbackNumber::e164)
            .unwrap_or_default()
    }
}

/// The caller of a test page's ticket (the console's "send a test page"): a word no phone
/// number can be. Such a ticket carries the test's page jobs and nothing else: it is never in
/// the console's queue nor in the SLA report.
pub const TEST_PAGE_CALLER: &str = "test";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    pub id: i64,
    /// Tracking number, digits only (see `store::number`).
    pub number: String,
    pub severity: Severity,
    pub status: Status,
    pub caller: String,
    pub callback_number: String,
    pub account_id: Option<i64>,
    pub account_code: Option<String>,
    pub company: Option<String>,
    pub language: String,
    /// When the call began: the SLA counts from here.
    pub created_at: DateTime<Utc>,
    /// When the ticket was written (None: by a node of before; `created_at` stands in). The
    /// ladder pages nobody before it.
    pub opened_at: Option<DateTime<Utc>>,
    pub paged_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub called_back_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub callback_due_at: DateTime<Utc>,
    pub resolution_due_at: DateTime<Utc>,
    pub voicemail_path: Option<String>,
    pub voicemail_seconds: Option<f64>,
    pub speech_detected: Option<bool>,
    pub answers: BTreeMap<String, String>,
    pub classification_reasons: Vec<String>,
    pub suspected_incident: bool,
    /// 1 for a real ticket; a drill's compression otherwise (see `TimeScale`).
    pub time_scale: TimeScale,
}

/// One line of a ticket's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub from_severity: Option<String>,
    pub to_severity: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only tickets not resolved or cancelled (most urgent callback first).
    pub open_only: bool,
    pub limit: Option<i64>,
}

pub(crate) const TICKET_COLUMNS: &str =
    "t.id, t.number, t.severity, t.status, t.caller, t.callback_number, \
    t.account_id, a.code AS account_code, a.company, t.language, t.created_at, t.paged_at, \
    t.acknowledged_at, t.called_back_at, t.resolved_at, t.cancelled_at, t.callback_due_at, \
    t.resolution_due_at, t.voicemail_path, t.voicemail_seconds, t.speech_detected, t.answers, \
    t.classification_reasons, t.suspected_incident, t.time_scale, t.opened_at";

const OPEN_STATUSES: &str = "('open', 'paged', 'acknowledged', 'called_back')";

/// Decodes a ticket row (the same code for both backends' row types).
macro_rules! ticket_from_row {
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
            status: status.parse()?,
            caller: r.try_get("caller")?,
            callback_number: r.try_get("callback_number")?,
            account_id: r.try_get("account_id")?,
            account_code: r.try_get("account_code")?,
            company: r.try_get("company")?,
            language: r.try_get("language")?,
            created_at: r.try_get("created_at")?,
            opened_at: r.try_get("opened_at")?,
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
            time_scale: crate::schedule::TimeScale::from_stored(r.try_get("time_scale")?),
        }
    }};
}
pub(crate) use ticket_from_row;

impl Store {
    /// Creates a ticket with a fresh tracking number, its `created` and `classified` events and
    /// its page jobs, all in one transaction: no page job can exist without its ticket.
    /// The voicemail file must already be fsynced (`store::durable::fsync_file`).
    ///
    /// Concurrent calls are group-committed by the store's writer task (one transaction and one
    /// disk flush for many tickets); each call returns only once its own ticket is committed.
    pub async fn create_ticket(&self, t: &NewTicket) -> Result<Ticket, StoreError> {
        let span =
            info_span!("create_ticket", ticket = tracing::field::Empty, severity = %t.severity);
        let (_, number) = self
            .writer
            .create(t.clone())
            .instrument(span.clone())
            .await?;
        span.record("ticket", number.as_str());
        info!(parent: &span, ticket = %number, severity = %t.severity, "ticket created");
        // Read back: the account's code and company come from the accounts table, and the
        // moment it was written (opened_at) from the writer's clock.
        self.ticket(&number).await
    }

    /// The ticket opened for the voicemail recorded at `path`, if there is one (the intake
    /// asks before creating, so a voicemail re-submitted after a crash is not ticketed twice).
    pub async fn ticket_for_voicemail(&self, path: &str) -> Result<Option<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE t.voicemail_path = $1 ORDER BY t.id LIMIT 1"
        );
        on_read!(&self.db, pool => {
            let row = sqlx::query(&sql).bind(path).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(Some(ticket_from_row!(&r))),
                None => Ok(None),
            }
        })
    }

    /// The ticket with tracking number `number`.
    pub async fn ticket(&self, number: &str) -> Result<Ticket, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE t.number = $1"
        );
        on_read!(&self.db, pool => {
            let row = sqlx::query(&sql).bind(number).fetch_optional(pool).await?;
            match row {
                Some(r) => Ok(ticket_from_row!(&r)),
                None => Err(StoreError::NoSuchTicket(number.to_string())),
            }
        })
    }

    /// Tickets, newest first; with `open_only`, the unfinished ones, most urgent callback first.
    pub async fn list_tickets(&self, f: &ListFilter) -> Result<Vec<Ticket>, StoreError> {
        let limit = f.limit.unwrap_or(i64::MAX).max(0);
        let sql = if f.open_only {
            format!(
                "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
                 WHERE t.status IN {OPEN_STATUSES} ORDER BY t.callback_due_at, t.id LIMIT $1"
            )
        } else {
            format!(
                "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $1"
            )
        };
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&sql).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(ticket_from_row!(r));
            }
            Ok(out)
        })
    }

    /// A ticket's history, oldest first.
    pub async fn events(&self, number: &str) -> Result<Vec<Event>, StoreError> {
        let sql = "SELECT e.at, e.kind, e.actor, e.from_status, e.to_status, e.from_severity, \
                   e.to_severity, e.reason FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
                   WHERE t.number = $1 ORDER BY e.id";
        on_read!(&self.db, pool => {
            let rows = sqlx::query(sql).bind(number).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(Event {
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    from_status: r.try_get("from_status")?,
                    to_status: r.try_get("to_status")?,
                    from_severity: r.try_get("from_severity")?,
                    to_severity: r.try_get("to_severity")?,
                    reason: r.try_get("reason")?,
                });
            }
            Ok(out)
        })
    }

    /// Who acknowledged each of several tickets (ticket id, actor), in the order they did.
    pub async fn acknowledgers(
        &self,
        ticket_ids: &[i64],
    ) -> Result<Vec<(i64, String)>, StoreError> {
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
            "SELECT ticket_id, actor FROM ticket_events WHERE kind = 'acknowledged' \
             AND ticket_id IN ({ids}) ORDER BY id"
        );
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((r.try_get("ticket_id")?, r.try_get("actor")?));
            }
            Ok(out)
        })
    }

    /// Moves a ticket along its life (ack, callback, resolve, cancel, paged) and logs who and
    /// why. Acknowledging, calling back, resolving or cancelling stops pending pages.
    pub async fn transition(
        &self,
        number: &str,
        action: Action,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ticket, StoreError> {
        self.transition_as(number, action, action.kind(), by, reason, now)
            .await
    }

    /// [`Store::transition`], logged under another event kind (e.g. `callback_connected` for a
    /// callback the engine placed and saw answered).
    pub async fn transition_as(
        &self,
        number: &str,
        action: Action,
        kind: &str,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ticket, StoreError> {
        let span = info_span!("ticket_transition", ticket = %number, action = kind);
        self.transition_inner(number, action, kind, by, reason, micros(now))
            .instrument(span)
            .await?;
        info!(ticket = %number, by, action = kind, "ticket updated");
        self.ticket(number).await
    }

    async fn transition_inner(
        &self,
        number: &str,
        action: Action,
        kind: &str,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let to = action.to();
        let update = format!(
            "UPDATE tickets SET status = $1, {col} = COALESCE({col}, $2) WHERE id = $3 AND status = $4",
            col = action.column()
        );
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let row = sqlx::query("SELECT id, status FROM tickets WHERE number = $1")
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NoSuchTicket(number.to_string()));
            };
            let id: i64 = row.try_get("id")?;
            let from: Status = row.try_get::<String, _>("status")?.parse()?;
            if !action.allowed_from(from) {
                return Err(StoreError::BadTransition {
                    number: number.to_string(),
                    from,
                    action: action.verb(),
                });
            }
            let done = sqlx::query(&update)
                .bind(to.as_str()).bind(now).bind(id).bind(from.as_str())
                .execute(&mut *tx).await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(number.to_string()));
            }
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at, kind, actor, from_status, to_status, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id).bind(now).bind(kind).bind(by)
            .bind(from.as_str()).bind(to.as_str()).bind(reason)
            .execute(&mut *tx).await?;
            if action != Action::Page {
                sqlx::query(
                    "UPDATE page_jobs SET state = 'cancelled', updated_at = $1 \
                     WHERE ticket_id = $2 AND state = 'pending'",
                )
                .bind(now).bind(id)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Changes a ticket's severity (up or down) with its new deadlines; the reason is required
    /// and kept in the event log.
    pub async fn reclassify(
        &self,
        number: &str,
        severity: Severity,
        due: Due,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, StoreError> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a reclassification needs a reason (--reason TEXT)".into(),
            ));
        }
        let now = micros(now);
        let span = info_span!("ticket_reclassify", ticket = %number, to = %severity);
        let work = async {
            on_write!(&self.db, pool => {
                let mut tx = pool.begin_with(self.db.begin_write()).await?;
                let row = sqlx::query("SELECT id, status, severity FROM tickets WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Err(StoreError::NoSuchTicket(number.to_string()));
                };
                let id: i64 = row.try_get("id")?;
                let status: Status = row.try_get::<String, _>("status")?.parse()?;
                let from: String = row.try_get("severity")?;
                if status.is_final() {
                    return Err(StoreError::BadTransition {
                        number: number.to_string(),
                        from: status,
                        action: "reclassified",
                    });
                }
                sqlx::query(
                    "UPDATE tickets SET severity = $1, callback_due_at = $2, resolution_due_at = $3 \
                     WHERE id = $4",
                )
                .bind(severity.as_str())
                .bind(micros(due.callback_due_at))
                .bind(micros(due.resolution_due_at))
                .bind(id)
                .execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO ticket_events (ticket_id, at, kind, actor, from_severity, to_severity, reason) \
                     VALUES ($1, $2, 'reclassified', $3, $4, $5, $6)",
                )
                .bind(id).bind(now).bind(by).bind(&from).bind(severity.as_str()).bind(reason)
                .execute(&mut *tx).await?;
                tx.commit().await?;
                Ok::<(), StoreError>(())
            })
        };
        work.instrument(span).await?;
        info!(ticket = %number, by, to = %severity, "ticket reclassified");
        self.ticket(number).await
    }

    /// Distinct customers (account code, else the caller's number) with tickets created since
    /// `since`: the correlation input of triage.
    pub async fn recent_customers(&self, since: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT DISTINCT COALESCE(a.code, t.caller) AS customer FROM tickets t \
                   LEFT JOIN accounts a ON a.id = t.account_id WHERE t.created_at >= $1";
        on_read!(&self.db, pool => {
            let rows: Vec<String> = sqlx::query_scalar(sql).bind(micros(since)).fetch_all(pool).await?;
            Ok(rows)
        })
    }

    /// Tickets the paging planner looks at: not yet acknowledged or called back, and those called
    /// back within `recent` (a webhook may still have to say so).
    pub async fn tickets_in_paging(
        &self,
        now: DateTime<Utc>,
        recent: chrono::Duration,
    ) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id \
             WHERE t.status IN ('open', 'paged', 'acknowledged') \
             OR (t.status = 'called_back' AND t.called_back_at > $1) ORDER BY t.callback_due_at, t.id"
        );
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&sql).bind(micros(now - recent)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(ticket_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Adds a line to a ticket's history that changes nothing else (a page that could not be
    /// placed, an escalation).
    pub async fn add_event(
        &self,
        number: &str,
        kind: &str,
        actor: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_write!(&self.db, pool => {
            let r = sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at, kind, actor, reason) \
                 SELECT id, $2, $3, $4, $5 FROM tickets WHERE number = $1",
            )
            .bind(number).bind(micros(now)).bind(kind).bind(actor).bind(reason)
            .execute(pool).await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::NoSuchTicket(number.to_string()));
            }
            Ok(())
        })
    }

    /// How many tickets there are per (severity, status): the metrics' gauge.
    pub async fn ticket_counts(&self) -> Result<Vec<(Severity, Status, i64)>, StoreError> {
        let sql = "SELECT severity, status, COUNT(*) AS n FROM tickets GROUP BY severity, status \
                   ORDER BY severity, status";
        on_read!(&self.db, pool => {
            let rows = sqlx::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let sev: String = r.try_get("severity")?;
                let status: String = r.try_get("status")?;
                out.push((
                    sev.parse().map_err(|e: crate::triage::BadSeverity| StoreError::Corrupt(e.to_string()))?,
                    status.parse()?,
                    r.try_get("n")?,
                ));
            }
            Ok(out)
        })
    }

    /// Real tickets created in `[from, to)`, as the SLA report needs them: a drill's tickets
    /// (`time_scale` above 1) never count in the provider's SLA (the drill reports them), nor
    /// do test pages (their caller is [`TEST_PAGE_CALLER`]).
    pub async fn sla_tickets(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SlaTicket>, StoreError> {
        let sql = "SELECT number, severity, created_at, callback_due_at, called_back_at FROM tickets \
                   WHERE created_at >= $1 AND created_at < $2 AND status <> 'cancelled' AND time_scale = 1 AND caller <> 'test' \
                   ORDER BY created_at";
        on_read!(&self.db, pool => {
            let rows = sqlx::query(sql).bind(micros(from)).bind(micros(to)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let sev: String = r.try_get("severity")?;
                out.push(SlaTicket {
                    number: r.try_get("number")?,
                    severity: sev.parse().map_err(|e: crate::triage::BadSeverity| StoreError::Corrupt(e.to_string()))?,
                    created_at: r.try_get("created_at")?,
                    callback_due_at: r.try_get("callback_due_at")?,
                    called_back_at: r.try_get("called_back_at")?,
                });
            }
            Ok(out)
        })
    }
}
