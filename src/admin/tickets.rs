//! Tickets in the console: the API (`/api/tickets…`: list, show, voicemail, acknowledge, called
//! back, resolve, reclassify) and the two pages built on it (`/tickets`, `/tickets/{number}`).
//!
//! Reading needs any login; changing needs the technician role. Every change is an audit event
//! (`ticket.acknowledge`, `ticket.callback`, `ticket.resolve`, `ticket.reclassify`). Nothing is
//! told after a change: the paging planner polls the store and stops the pages by itself.
//!
//! The SLA clock of a ticket (`seconds_to_target`, signed, negative when late) counts to its
//! callback target until it is called back, then to its resolution target; a resolved or
//! cancelled ticket has no clock (null).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{CurrentUser, Role};
use super::pages::{self, escape};
use super::{AdminState, ApiError};
use crate::schedule::Schedule;
use crate::store::audit::NewAudit;
use crate::store::ticket_views::ListScope;
use crate::store::{number, Action, PageJob, PageState, Ticket, VoicemailWav};
use crate::triage::Severity;

/// Tickets in a list when the request names no limit.
pub const DEFAULT_LIMIT: i64 = 200;
/// The most a list request may ask for.
pub const MAX_LIMIT: i64 = 1000;

/// The schedule's zone (what "local time" means on the pages); UTC if the configuration names
/// a zone chrono-tz does not know (the configuration check refuses that before `serve`).
pub fn zone(state: &AdminState) -> Tz {
    state.config.schedule.timezone.parse().unwrap_or(Tz::UTC)
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Which deadline a ticket's clock counts to, if any.
pub fn target(t: &Ticket) -> Option<(&'static str, DateTime<Utc>)> {
    if t.status.is_final() {
        None
    } else if t.called_back_at.is_none() {
        Some(("callback", t.callback_due_at))
    } else {
        Some(("resolution", t.resolution_due_at))
    }
}

/// Who is on a ticket, for the list and the ticket's page: the people paged (names, in the order
/// first paged), the highest escalation level reached, who acknowledged it, and the channels
/// whose last page failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OnTicket {
    pub paged_to: Vec<String>,
    /// The person ids of those paged (the list's `mine` compares them with the reader's person).
    pub paged_ids: Vec<String>,
    /// 0 when nobody was paged yet.
    pub level: i32,
    pub acknowledged_by: Option<String>,
    /// "email to ada@example.net" and the like, for each page that failed or is retrying.
    pub failing: Vec<String>,
}

impl OnTicket {
    /// From a ticket's page jobs (oldest first), its acknowledgers and the people's names.
    pub fn new<'a>(
        jobs: impl IntoIterator<Item = &'a PageJob>,
        acknowledged_by: Option<String>,
        names: &HashMap<String, String>,
    ) -> OnTicket {
        let mut on = OnTicket {
            acknowledged_by,
            ..OnTicket::default()
        };
        for j in jobs {
            let who = j
                .person
                .as_ref()
                .map(|p| names.get(p).cloned().unwrap_or_else(|| p.clone()))
                .unwrap_or_else(|| j.target.clone());
            if !on.paged_to.contains(&who) {
                on.paged_to.push(who);
            }
            if let Some(p) = &j.person {
                if !on.paged_ids.contains(p) {
                    on.paged_ids.push(p.clone());
                }
            }
            on.level = on.level.max(j.level);
            let failing = matches!(j.state, PageState::Failed)
                || (matches!(j.state, PageState::Pending | PageState::Leased)
                    && j.last_error.is_some());
            if failing {
                let what = format!("{} → {}", j.channel, j.target);
                if !on.failing.contains(&what) {
                    on.failing.push(what);
                }
            }
        }
        on
    }
}

/// Who is on each of `tickets` (by ticket id), in three queries whatever their number.
pub async fn on_tickets(
    store: &crate::store::Store,
    tickets: &[Ticket],
) -> Result<HashMap<i64, OnTicket>, ApiError> {
    let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
    let (jobs, acks, people) = tokio::try_join!(
        store.page_jobs_of(&ids),
        store.acknowledgers(&ids),
        store.people()
    )
    .map_err(ApiError::store)?;
    let names: HashMap<String, String> = people.into_iter().map(|p| (p.id, p.name)).collect();
    let mut by_ticket: HashMap<i64, Vec<&PageJob>> = HashMap::new();
    for j in &jobs {
        by_ticket.entry(j.ticket_id).or_default().push(j);
    }
    let mut acked: HashMap<i64, String> = HashMap::new();
    for (id, actor) in acks {
        acked.entry(id).or_insert(actor);
    }
    Ok(ids
        .iter()
        .map(|id| {
            let jobs = by_ticket.remove(id).unwrap_or_default();
            (*id, OnTicket::new(jobs, acked.remove(id), &names))
        })
        .collect())
}

/// A ticket as the list gives it: the fields of `tickets list --json` and its clock.
#[derive(Debug, Serialize)]
pub struct ListedTicket<'a> {
    #[serde(flatten)]
    pub ticket: &'a Ticket,
    /// Seconds from the server's now to the target (negative: late); null when closed.
    pub seconds_to_target: Option<i64>,
    /// "callback" or "resolution"; null when closed.
    pub target: Option<&'static str>,
    /// The callback due time in the schedule's zone, e.g. "2025-03-12 23:30 EDT".
    pub callback_due_local: String,
}

impl<'a> ListedTicket<'a> {
    pub fn new(ticket: &'a Ticket, now: DateTime<Utc>, tz: Tz) -> ListedTicket<'a> {
        let clock = target(ticket);
        ListedTicket {
            ticket,
            seconds_to_target: clock.map(|(_, due)| (due - now).num_seconds()),
            target: clock.map(|(k, _)| k),
            callback_due_local: local(ticket.callback_due_at, tz),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    open: Option<String>,
    limit: Option<String>,
}

/// Parses the list's query: `open` (true, false, absent) and `limit` (1..=1000).
pub fn list_scope(q: &ListQuery) -> Result<(ListScope, i64), ApiError> {
    let scope = match q.open.as_deref().map(str::trim) {
        None | Some("") => ListScope::OpenFirst,
        Some("true") | Some("1") => ListScope::Open,
        Some("false") | Some("0") => ListScope::Closed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "open=\"{other}\" is not understood: write open=true (only open tickets), \
                 open=false (only resolved and cancelled ones) or leave it out (open first)"
            )))
        }
    };
    let limit = match q.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit=\"{s}\" is not a number from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    Ok((scope, limit))
}

/// A listed ticket serialized once per store read: its JSON object without the closing brace
/// (every field but the clock), and the deadline its clock counts to.
#[derive(Debug)]
pub struct Prepared {
    open_json: String,
    due: Option<DateTime<Utc>>,
    /// Who was paged (person ids) and who acknowledged: what "mine" is computed from.
    paged_ids: Vec<String>,
    acknowledged_by: Option<String>,
}

impl Prepared {
    fn new(t: &Ticket, on: Option<&OnTicket>, tz: Tz) -> Result<Prepared, ApiError> {
        #[derive(Serialize)]
        struct Fixed<'a> {
            #[serde(flatten)]
            ticket: &'a Ticket,
            target: Option<&'static str>,
            callback_due_local: String,
            on_ticket: Option<&'a OnTicket>,
        }
        let clock = target(t);
        let mut open_json = serde_json::to_string(&Fixed {
            ticket: t,
            target: clock.map(|(k, _)| k),
            callback_due_local: local(t.callback_due_at, tz),
            on_ticket: on,
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        open_json.pop(); // the closing '}'
        Ok(Prepared {
            open_json,
            due: clock.map(|(_, due)| due),
            paged_ids: on.map(|o| o.paged_ids.clone()).unwrap_or_default(),
            acknowledged_by: on.and_then(|o| o.acknowledged_by.clone()),
        })
    }

    /// Whether `user` is on this ticket: their person was paged, or they acknowledged it.
    fn is_mine(&self, user: &CurrentUser) -> bool {
        self.paged_ids.iter().any(|p| p == user.person_id())
            || self
                .acknowledged_by
                .as_deref()
                .is_some_and(|a| user.acknowledged(a))
    }
}

/// The list as JSON at `now`: the prepared tickets with their clocks (`seconds_to_target`) and
/// whether each is `user`'s (`mine`: their person was paged, or they acknowledged it).
pub fn list_json(tickets: &[Prepared], now: DateTime<Utc>, user: &CurrentUser) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(tickets.iter().map(|t| t.open_json.len() + 40).sum());
    out.push('[');
    for (i, t) in tickets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&t.open_json);
        out.push_str(if t.is_mine(user) {
            ",\"mine\":true"
        } else {
            ",\"mine\":false"
        });
        match t.due {
            Some(due) => {
                let _ = write!(
                    out,
                    ",\"seconds_to_target\":{}}}",
                    (due - now).num_seconds()
                );
            }
            None => out.push_str(",\"seconds_to_target\":null}"),
        }
    }
    out.push(']');
    out
}

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<Vec<Prepared>>)>>>;

/// Coalesces the list reads of concurrent requests: a request reuses the tickets of a read
/// that *started after it arrived* (so it sees everything committed before it was sent, its
/// own changes included), and otherwise reads them itself while the others wait. Twenty
/// clients polling the list cost about one store read (and one serialization) per round
/// instead of twenty; only the clocks are computed per request.
#[derive(Debug, Default)]
pub struct ListCoalescer {
    slots: std::sync::Mutex<HashMap<(ListScope, i64), Slot>>,
}

impl ListCoalescer {
    pub async fn tickets(
        &self,
        store: &crate::store::Store,
        scope: ListScope,
        limit: i64,
        tz: Tz,
    ) -> Result<Arc<Vec<Prepared>>, ApiError> {
        let arrived = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.entry((scope, limit)).or_default().clone()
        };
        let mut last = slot.lock().await;
        if let Some((started, tickets)) = last.as_ref() {
            if *started >= arrived {
                return Ok(tickets.clone());
            }
        }
        let started = Instant::now();
        let rows = store
            .ticket_view(scope, limit)
            .await
            .map_err(ApiError::store)?;
        let on = on_tickets(store, &rows).await?;
        let prepared = rows
            .iter()
            .map(|t| Prepared::new(t, on.get(&t.id), tz))
            .collect::<Result<Vec<_>, _>>()?;
        let tickets = Arc::new(prepared);
        *last = Some((started, tickets.clone()));
        Ok(tickets)
    }
}

async fn list(
    State(state): State<AdminState>,
    Extension(coalescer): Extension<Arc<ListCoalescer>>,
    user: CurrentUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (scope, limit) = list_scope(&q)?;
    let tickets = coalescer
        .tickets(&state.store, scope, limit, zone(&state))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        list_json(&tickets, Utc::now(), &user),
    )
        .into_response())
}

/// 400 unless `n` is a well-formed tracking number (spaces between the groups are accepted).
pub fn tracking_number(n: &str) -> Result<String, ApiError> {
    let digits: String = n.chars().filter(|c| !c.is_whitespace()).collect();
    if number::is_valid(&digits) {
        Ok(digits)
    } else {
        Err(ApiError::bad_request(format!(
            "\"{n}\" is not a tracking number (8 digits, the last one a check digit)"
        )))
    }
}

async fn show(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path(n): Path<String>,
) -> Result<Response, ApiError> {
    let n = tracking_number(&n)?;
    let store = &state.store;
    let t = store.ticket(&n).await.map_err(ApiError::store)?;
    let (events, jobs, account) = tokio::try_join!(store.events(&n), store.page_jobs(&n), async {
        match &t.account_code {
            Some(code) => store.account(code).await,
            None => Ok(None),
        }
    })
    .map_err(ApiError::store)?;
    let tz = zone(&state);
    let mut v = serde_json::to_value(ListedTicket::new(&t, Utc::now(), tz))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let acknowledged_by = events
        .iter()
        .find(|e| e.kind == "acknowledged")
        .map(|e| e.actor.clone());
    let names: HashMap<String, String> = store
        .people()
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    v["on_ticket"] = json!(OnTicket::new(&jobs, acknowledged_by, &names));
    v["test_page"] = json!(t.caller == crate::store::TEST_PAGE_CALLER);
    v["events"] = json!(events);
    // For a French reader: why this severity and the history's reasons, in French where the
    // wording is the engine's own (an admin's rules and a technician's notes stay as written).
    v["classification_reasons_fr"] = json!(t
        .classification_reasons
        .iter()
        .map(|r| super::fr::message(r).unwrap_or_else(|| r.clone()))
        .collect::<Vec<_>>());
    if let Some(list) = v["events"].as_array_mut() {
        for e in list {
            let fr = e["reason"].as_str().and_then(super::fr::message);
            if let Some(fr) = fr {
                e["reason_fr"] = json!(fr);
            }
        }
    }
    v["page_jobs"] = json!(jobs);
    v["callback_target_met"] = json!(t.called_back_at.map(|c| c <= t.callback_due_at));
    v["account"] = json!(account);
    v["timezone"] = json!(tz.name());
    v["created_local"] = json!(local(t.created_at, tz));
    v["resolution_due_local"] = json!(local(t.resolution_due_at, tz));
    Ok(Json(v).into_response())
}

async fn voicemail(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path(n): Path<String>,
) -> Result<Response, ApiError> {
    let n = tracking_number(&n)?;
    let t = state.store.ticket(&n).await.map_err(ApiError::store)?;
    // From the store, so any node serves it; else only the path the ticket names is read.
    let wav = state
        .store
        .voicemail_wav(
            &n,
            t.id,
            t.voicemail_path.as_deref(),
            crate::store::MAX_VOICEMAIL_BYTES,
        )
        .await;
    match wav {
        VoicemailWav::Found { wav, .. } => Ok((
            [
                (header::CONTENT_TYPE, "audio/wav"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            wav,
        )
            .into_response()),
        VoicemailWav::NoVoicemail => {
            Err(ApiError::not_found(format!("ticket {n} has no voicemail")))
        }
        VoicemailWav::Gone => Err(ApiError::not_found(format!(
            "the voicemail of ticket {n} is neither in the store nor on this node's disk"
        ))),
        VoicemailWav::TooLarge { bytes } => {
            tracing::warn!(ticket = %n, bytes, "console: a voicemail is too large to serve");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the voicemail of ticket {n} is too large ({bytes} bytes)"),
            ))
        }
        VoicemailWav::Unreadable { why } => {
            tracing::warn!(ticket = %n, error = %why, "console: cannot read a voicemail");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the voicemail of ticket {n} cannot be read now; try again"),
            ))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReclassifyBody {
    severity: Option<String>,
    reason: Option<String>,
}

/// A JSON body, or the default when the request has none.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not the expected JSON: {e}")))
}

/// Records a change; a failure is logged, not returned: the change itself is committed.
async fn audit(
    state: &AdminState,
    user: &CurrentUser,
    action: &str,
    target: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    at: DateTime<Utc>,
) {
    let e = NewAudit {
        actor: &user.name,
        action,
        target,
        before: Some(before),
        after: Some(after),
        at,
    };
    if let Err(err) = state.store.audit(&e).await {
        tracing::error!(ticket = target, action, error = %err, "console: audit event not recorded");
    }
}

async fn change(
    state: AdminState,
    user: CurrentUser,
    n: String,
    bytes: Bytes,
    action: Action,
    audit_action: &'static str,
) -> Result<Response, ApiError> {
    user.require(Role::Technician)?;
    let n = tracking_number(&n)?;
    let b: ChangeBody = body(&bytes)?;
    let reason = b.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let before = state.store.ticket(&n).await.map_err(ApiError::store)?;
    let now = Utc::now();
    let t = state
        .store
        .transition(&n, action, &user.name, reason, now)
        .await
        .map_err(ApiError::store)?;
    audit(
        &state,
        &user,
        audit_action,
        &n,
        json!({ "status": before.status }),
        json!({ "status": t.status, "reason": reason }),
        now,
    )
    .await;
    Ok(Json(ListedTicket::new(&t, now, zone(&state))).into_response())
}

async fn acknowledge(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(n): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    change(
        state,
        user,
        n,
        bytes,
        Action::Acknowledge,
        "ticket.acknowledge",
    )
    .await
}

async fn called_back(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(n): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    change(state, user, n, bytes, Action::CalledBack, "ticket.callback").await
}

async fn resolve(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(n): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    change(state, user, n, bytes, Action::Resolve, "ticket.resolve").await
}

async fn reclassify(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(n): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    user.require(Role::Technician)?;
    let n = tracking_number(&n)?;
    let b: ReclassifyBody = body(&bytes)?;
    let Some(sev) = b.severity.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "a reclassification needs a severity: \"S1\", \"S2\" or \"S3\"",
        ));
    };
    let severity: Severity = sev
        .parse()
        .map_err(|e: crate::triage::BadSeverity| ApiError::bad_request(e.to_string()))?;
    let Some(reason) = b.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
        return Err(ApiError::bad_request(
            "a reclassification needs a reason: every change of severity keeps its why",
        ));
    };
    let schedule = Schedule::from_config(&state.config.schedule).map_err(|errs| {
        tracing::error!(?errs, "console: the schedule configuration does not load");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the schedule configuration is invalid: new deadlines cannot be computed",
        )
    })?;
    let before = state.store.ticket(&n).await.map_err(ApiError::store)?;
    // Deadlines follow the new severity, counted from when the customer called (as the CLI).
    let due = schedule.due(severity, before.created_at);
    let now = Utc::now();
    let t = state
        .store
        .reclassify(&n, severity, due, &user.name, reason, now)
        .await
        .map_err(ApiError::store)?;
    audit(
        &state,
        &user,
        "ticket.reclassify",
        &n,
        json!({
            "severity": before.severity,
            "callback_due_at": before.callback_due_at,
            "resolution_due_at": before.resolution_due_at,
        }),
        json!({
            "severity": t.severity,
            "callback_due_at": t.callback_due_at,
            "resolution_due_at": t.resolution_due_at,
            "reason": reason,
        }),
        now,
    )
    .await;
    Ok(Json(ListedTicket::new(&t, now, zone(&state))).into_response())
}

// ---------------------------------------------------------------------------------------------
// Pages

/// Code shared by both pages: the countdown (`clock(el)` renders the element's seconds to
/// target as of now, from `data-seconds`, the API's `seconds_to_target`, and `data-fetched`,
/// when the browser got it: green, amber in the last 10 minutes, red past it, and always said in
/// words too), statuses in words, and phone numbers as `tel:` links, all written alike.
const CLOCK_JS: &str = r##"
const AMBER_SECONDS = 600;
function clock(el) {
  const base = el.dataset.seconds;
  if (base === undefined || base === "") { el.textContent = "—"; el.className = "countdown"; return; }
  const left = Math.round(Number(base) - (Date.now() - Number(el.dataset.fetched)) / 1000);
  el.textContent = fmtClock(left);
  el.className = "countdown " + (left < 0 ? "red" : left <= AMBER_SECONDS ? "amber" : "ok");
  const callback = el.dataset.target === "callback";
  el.title = left < 0
    ? (callback ? L("callback target missed", "échéance de rappel dépassée") : L("resolution target missed", "échéance de résolution dépassée"))
    : (callback ? L("time left to call back", "temps restant pour rappeler") : L("time left to resolve", "temps restant pour résoudre"));
}
function tickAll() { document.querySelectorAll(".countdown").forEach(clock); }
function clockCell(t, fetched) {
  const s = t.seconds_to_target === null || t.seconds_to_target === undefined ? "" : t.seconds_to_target;
  return '<span class="countdown" data-seconds="' + esc(s) + '" data-fetched="' + esc(fetched) +
    '" data-target="' + esc(t.target) + '"></span>';
}
const STATUS_WORDS = { open: ["open", "ouvert"], paged: ["paged", "avisé"], acknowledged: ["acknowledged", "pris en charge"],
  called_back: ["called back", "rappelé"], resolved: ["resolved", "résolu"], cancelled: ["cancelled", "annulé"] };
function statusWord(s) { const w = STATUS_WORDS[s]; return w ? L(w[0], w[1]) : String(s).replace(/_/g, " "); }
const SEVERITY_WORDS = { S1: ["critical", "critique"], S2: ["major", "majeur"], S3: ["minor", "mineur"] };
function severityText(s) { const w = SEVERITY_WORDS[s]; return s + (w ? " " + L(w[0], w[1]) : ""); }
// North American numbers as "+1 514 907 3400" whatever the store kept; others as they are.
function phoneDigits(n) {
  const d = String(n || "").replace(/[^0-9]/g, "");
  if (d.length === 10) return "1" + d;
  return d;
}
function fmtPhone(n) {
  const d = phoneDigits(n);
  if (d.length === 11 && d[0] === "1") return "+1 " + d.slice(1, 4) + " " + d.slice(4, 7) + " " + d.slice(7);
  return String(n || "");
}
function telLink(n, cls) {
  const d = phoneDigits(n);
  if (d.length < 3) return esc(n || "—");
  return '<a class="tel' + (cls ? " " + cls : "") + '" href="tel:+' + esc(d) + '">' + esc(fmtPhone(n)) + "</a>";
}
function groupNumber(n) { return n.length === 8 ? n.slice(0, 4) + " " + n.slice(4) : n; }
function onTicketText(o) {
  if (!o) return "";
  const parts = [];
  if (o.acknowledged_by) parts.push(L("acknowledged by ", "pris en charge par ") + o.acknowledged_by);
  if (o.paged_to && o.paged_to.length) parts.push(L("paged: ", "avisé : ") + o.paged_to.join(", ") + " (" + L("level ", "niveau ") + o.level + ")");
  else parts.push(L("nobody paged yet", "personne d'avisé pour l'instant"));
  return parts.join(" · ");
}
"##;

const LIST_BODY: &str = r##"<style>
#tickets td.num a { font-variant-numeric: tabular-nums; font-weight: 600; display: inline-flex; align-items: center; min-height: 44px; }
#tickets tr.closed { color: var(--muted); }
#tickets .incident { color: var(--red); font-size: .85em; }
#tickets .failing { color: var(--red); font-weight: 600; }
#tickets a.tel { display: inline-flex; align-items: center; min-height: 44px; }
.drill { background: #ffd54f; color: #000; font-weight: bold; padding: 0 .3em; border-radius: 3px; font-size: .85em; }
#list-state { margin: .5rem 0; }
.tools { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: .6rem 0; }
.tools label { flex-direction: column; align-items: flex-start; gap: .1rem; font-size: .9em; }
#find-number { width: 11em; font-variant-numeric: tabular-nums; }
@media (max-width: 760px) { .tools label { flex: 1 1 40%; } .tools select, #find-number { width: 100%; } #find button { width: 100%; } }
</style>
<p class="muted">Open tickets first (most urgent callback first), then the most recent closed ones.
The countdown runs to the callback target (to the resolution target once called back): amber in
the last 10 minutes, red when missed. Times are in {{TZ}}. The list refreshes every 10 seconds.</p>
<form id="find" class="tools" role="search">
 <label for="find-number">Tracking number</label>
 <input id="find-number" type="search" inputmode="numeric" autocomplete="off" placeholder="1234 5678" aria-describedby="find-state">
 <button type="submit">Find</button>
 <span id="find-state" role="status"></span>
</form>
<div class="tools">
 <label>Severity <select id="f-severity"><option value="">All</option><option>S1</option><option>S2</option><option>S3</option></select></label>
 <label>Status <select id="f-status"><option value="open">Open</option><option value="">All</option><option value="open,paged">Not acknowledged</option><option value="acknowledged">Acknowledged</option><option value="called_back">Called back</option><option value="resolved,cancelled">Closed</option></select></label>
 <label>Sort <select id="f-sort"><option value="due">Most urgent first</option><option value="new">Newest first</option><option value="severity">Severity</option></select></label>
 <label class="mine"><span>Only mine</span> <input id="f-mine" type="checkbox"></label>
 <button id="notify" type="button" hidden>Notify me of new S1 tickets</button>
</div>
<p id="list-state" class="muted">Loading…</p>
<p id="list-news" class="sr-only" aria-live="polite"></p>
<table id="tickets" class="cards"><thead><tr><th>Number</th><th>Clock</th><th>Severity</th><th>Status</th><th>Who</th><th>Company / caller</th>
<th>Call back</th><th>Callback due</th></tr></thead><tbody></tbody></table>"##;

const LIST_JS: &str = r##"
let all = [];
let fetchedAt = 0;
let seenS1 = null;
// The server says which tickets are the reader's (their linked person paged, or their ack).
function mine(t) { return t.mine === true; }
function row(t, fetched) {
  const closed = t.status === "resolved" || t.status === "cancelled";
  const who = t.company ? esc(t.company) + ' <span class="muted">' + telLink(t.caller) + "</span>" : telLink(t.caller);
  const o = t.on_ticket || {};
  const failing = (o.failing || []).length
    ? ' <span class="failing">⚠ ' + esc(L("failing: ", "en échec : ") + o.failing.join(", ")) + "</span>" : "";
  return '<tr data-ticket="' + esc(t.number) + '"' + (closed ? ' class="closed"' : "") + ">" +
    '<td class="num" data-label="' + esc(L("Number", "Numéro")) + '"><a href="/tickets/' + encodeURIComponent(t.number) + '">' + esc(groupNumber(t.number)) + "</a></td>" +
    '<td data-label="' + esc(L("Clock", "Échéance")) + '">' + clockCell(t, fetched) + "</td>" +
    '<td data-label="' + esc(L("Severity", "Gravité")) + '" class="sev-' + esc(t.severity) + '">' + esc(severityText(t.severity)) +
      (t.suspected_incident ? ' <span class="incident">' + esc(L("suspected incident", "incident soupçonné")) + "</span>" : "") +
      (t.time_scale > 1 ? ' <span class="drill">' + esc(L("DRILL", "EXERCICE")) + " ×" + esc(String(t.time_scale)) + "</span>" : "") + "</td>" +
    '<td class="status" data-label="' + esc(L("Status", "État")) + '">' + esc(statusWord(t.status)) + "</td>" +
    '<td class="who" data-label="' + esc(L("Who", "Qui")) + '">' + esc(onTicketText(o)) + failing + "</td>" +
    '<td data-label="' + esc(L("Caller", "Appelant")) + '">' + who + "</td>" +
    '<td data-label="' + esc(L("Call back", "Rappeler au")) + '">' + telLink(t.callback_number, "callback") + "</td>" +
    '<td data-label="' + esc(L("Callback due", "Rappel dû")) + '">' + esc(fmtWhen(t.callback_due_at)) + "</td></tr>";
}
const SEV_ORDER = { S1: 0, S2: 1, S3: 2 };
function shown() {
  const sev = document.getElementById("f-severity").value;
  const st = document.getElementById("f-status").value;
  const sort = document.getElementById("f-sort").value;
  const onlyMine = document.getElementById("f-mine").checked;
  const digits = document.getElementById("find-number").value.replace(/[^0-9]/g, "");
  const open = s => s !== "resolved" && s !== "cancelled";
  let list = all.filter(t => (!sev || t.severity === sev) &&
    (st === "" || (st === "open" ? open(t.status) : st.split(",").includes(t.status))) &&
    (!onlyMine || mine(t)) && (!digits || t.number.includes(digits)));
  if (sort === "new") list = list.slice().sort((a, b) => b.created_at.localeCompare(a.created_at));
  if (sort === "severity") list = list.slice().sort((a, b) => SEV_ORDER[a.severity] - SEV_ORDER[b.severity]);
  return list;
}
function draw() {
  const list = shown();
  document.querySelector("#tickets tbody").innerHTML = list.length
    ? list.map(t => row(t, fetchedAt)).join("")
    : '<tr><td class="muted">' + esc(L("No ticket matches.", "Aucun billet ne correspond.")) + "</td></tr>";
  tickAll();
}
// A new S1 shows from another tab: the title counts the S1 tickets nobody acknowledged yet,
// and a notification says so when the user allowed them.
function watchS1(tickets) {
  const waiting = tickets.filter(t => t.severity === "S1" && (t.status === "open" || t.status === "paged"));
  document.title = (waiting.length ? "(" + waiting.length + ") S1 · " : "") + BASE_TITLE;
  const numbers = new Set(waiting.map(t => t.number));
  if (seenS1 !== null) {
    const fresh = waiting.filter(t => !seenS1.has(t.number));
    if (fresh.length) {
      document.getElementById("list-news").textContent =
        L("New S1 ticket: ", "Nouveau billet S1 : ") + fresh.map(t => groupNumber(t.number)).join(", ");
      if ("Notification" in window && Notification.permission === "granted") {
        for (const t of fresh) {
          try { new Notification(L("New S1 ticket ", "Nouveau billet S1 ") + groupNumber(t.number), { body: t.company || fmtPhone(t.caller), tag: t.number }); } catch (e) { /* not allowed here */ }
        }
      }
    }
  }
  seenS1 = numbers;
}
let lastOpen = null;
async function load() {
  const state = document.getElementById("list-state");
  try {
    all = await api("GET", "/api/tickets");
    fetchedAt = Date.now();
    draw();
    watchS1(all);
    const open = all.filter(t => t.status !== "resolved" && t.status !== "cancelled").length;
    state.className = "muted";
    state.textContent = L(open + " open ticket(s); updated at ", open + " billet(s) ouvert(s); mis à jour à ") +
      fmtTimeOfDay(new Date(fetchedAt).toISOString());
    if (lastOpen !== null && lastOpen !== open) {
      document.getElementById("list-news").textContent = L(open + " open ticket(s)", open + " billet(s) ouvert(s)");
    }
    lastOpen = open;
  } catch (e) {
    state.className = "error";
    state.textContent = L("Cannot load the tickets: ", "Impossible de charger les billets : ") + e.message;
  }
}
const BASE_TITLE = document.title;
["f-severity", "f-status", "f-sort", "f-mine"].forEach(id => document.getElementById(id).addEventListener("change", draw));
document.getElementById("find-number").addEventListener("input", draw);
// A tracking number read out by a caller: straight to its ticket, listed or not.
document.getElementById("find").addEventListener("submit", async ev => {
  ev.preventDefault();
  const out = document.getElementById("find-state");
  const digits = document.getElementById("find-number").value.replace(/[^0-9]/g, "");
  if (digits.length !== 8) {
    out.className = "error";
    out.textContent = L("A tracking number has 8 digits.", "Un numéro de suivi a 8 chiffres.");
    return;
  }
  try {
    const t = await api("GET", "/api/tickets/" + digits);
    location.href = "/tickets/" + encodeURIComponent(t.number);
  } catch (e) {
    out.className = "error";
    out.textContent = L("No ticket ", "Aucun billet ") + groupNumber(digits) + " : " + e.message;
  }
});
const notify = document.getElementById("notify");
if ("Notification" in window && Notification.permission === "default") {
  notify.hidden = false;
  notify.addEventListener("click", async () => {
    try { await Notification.requestPermission(); } catch (e) { /* refused */ }
    notify.hidden = true;
  });
}
me();
load();
setInterval(load, 10000);
setInterval(tickAll, 1000);
"##;

async fn list_page(State(state): State<AdminState>, _user: CurrentUser) -> Html<String> {
    let tz = zone(&state);
    let body = LIST_BODY.replace("{{TZ}}", &escape(tz.name()));
    pages::page(
        "Tickets",
        "/tickets",
        &body,
        &format!("{CLOCK_JS}{LIST_JS}"),
    )
}

const SHOW_BODY: &str = r##"<style>
.drill { background: #ffd54f; color: #000; font-weight: bold; padding: 0 .3em; border-radius: 3px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: #fff; padding: .8rem; margin: .4rem 0; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.facts a.tel { display: inline-flex; align-items: center; min-height: 44px; font-size: 1.1em; font-weight: 600; }
.actions { margin: 1rem 0; display: flex; gap: .6rem; flex-wrap: wrap; align-items: end; }
.actions label { flex-direction: column; align-items: flex-start; gap: .1rem; }
.actions input[type=text] { min-width: 18rem; }
section { margin-top: 1.4rem; }
#big-clock { font-size: 1.6rem; }
#voicemail audio { width: 100%; max-width: 32rem; }
@media (max-width: 760px) {
  .facts { padding: .5rem; gap: 0 .6rem; }
  #voicemail-section { margin-top: .4rem; }
  #voicemail-section h2 { font-size: 1rem; margin: 0; }
  .actions input[type=text] { min-width: 0; width: 100%; }
  .actions label, .actions button { flex: 1 1 100%; }
}
</style>
<p><a href="/tickets">← All tickets</a></p>
<p id="state" class="muted">Loading…</p>
<p>Clock: <span id="big-clock" class="countdown"></span> <span id="clock-what" class="muted"></span></p>
<div id="failing" class="banner" role="alert" hidden></div>
<section id="voicemail-section"><h2>Voicemail</h2><div id="voicemail"></div></section>
<dl id="top-facts" class="facts"></dl>
<div class="actions need-technician">
 <label for="reason">Note (optional)</label>
 <input id="reason" type="text" maxlength="500" autocomplete="off">
 <button id="ack" type="button" class="primary">Acknowledge</button>
 <button id="callback" type="button">Called back</button>
 <button id="resolve" type="button" class="danger">Resolve</button>
</div>
<form id="reclassify" class="actions need-technician">
 <label>Reclassify as <select name="severity" id="severity">
  <option value="S1">S1 critical</option><option value="S2">S2 major</option><option value="S3">S3 minor</option>
 </select></label>
 <label for="reclassify-reason">Why (required)</label>
 <input name="reason" id="reclassify-reason" type="text" required maxlength="500" autocomplete="off">
 <button type="submit">Reclassify</button>
</form>
<p id="message" role="status" aria-live="polite"></p>
<dl id="facts" class="facts"></dl>
<section><h2>Account</h2><div id="account"></div></section>
<section><h2>IVR answers</h2><table id="answers"><tbody></tbody></table></section>
<section><h2>Why this severity</h2><ul id="reasons"></ul></section>
<section><h2>History</h2><table id="events" class="cards"><thead><tr><th>When</th><th>What</th><th>Change</th><th>By</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
<section><h2>Pages</h2><table id="page-jobs" class="cards"><thead><tr><th>Channel</th><th>Address</th><th>Level</th><th>State</th><th>Run at</th><th>Attempts</th><th>Last error</th></tr></thead><tbody></tbody></table></section>"##;

const SHOW_JS: &str = r##"
function fact(label, value) { return "<dt>" + esc(label) + "</dt><dd>" + value + "</dd>"; }
const ANSWER_LABELS = {
  language: ["Language chosen", "Langue choisie"], main_menu: ["Main menu key", "Touche du menu principal"],
  after_hours_menu: ["After-hours menu key", "Touche du menu hors heures"], after_hours_other: ["Chose “something else” after hours", "A choisi « autre chose » hors heures"],
  emergency_key: ["Emergency key pressed", "Touche d'urgence"], business_hours: ["Called during business hours", "Appel pendant les heures d'ouverture"],
  callback: ["Callback number given", "Numéro de rappel donné"], callback_refused: ["Callback number refused", "Numéro de rappel refusé"],
  recovered: ["Recovered after a restart", "Récupéré après un redémarrage"], test_page: ["Test page", "Avis d'essai"],
  entry: ["Called in through", "Entré par"],
};
const ANSWER_VALUES = { yes: ["yes", "oui"], no: ["no", "non"], fr: ["French", "français"], en: ["English", "anglais"],
  main: ["the main menu", "le menu principal"], "caller id confirmed": ["the caller's number, confirmed", "le numéro de l'appelant, confirmé"] };
// What the console shows never names a file on a server (a recording's path, say).
function scrub(text) { return String(text === null || text === undefined ? "" : text).replace(/(^|[\s(])\/[^\s)]+/g, "$1…").trim(); }
function answerLabel(k) { const w = ANSWER_LABELS[k]; return w ? L(w[0], w[1]) : k.replace(/_/g, " "); }
function answerValue(v) { const w = ANSWER_VALUES[v]; return w ? L(w[0], w[1]) : v; }
const EVENT_WORDS = { created: ["created", "créé"], paged: ["paged", "avisé"], acknowledged: ["acknowledged", "pris en charge"],
  called_back: ["called back", "rappelé"], resolved: ["resolved", "résolu"], cancelled: ["cancelled", "annulé"], reclassified: ["reclassified", "reclassé"],
  classified: ["classified", "classé"] };
function eventWord(k) { const w = EVENT_WORDS[k]; return w ? L(w[0], w[1]) : String(k).replace(/_/g, " "); }
const JOB_STATES = { pending: ["waiting", "en attente"], leased: ["sending", "envoi en cours"], done: ["delivered", "livré"], failed: ["FAILED", "ÉCHEC"], cancelled: ["stopped", "arrêté"] };
function jobState(s) { const w = JOB_STATES[s]; return w ? L(w[0], w[1]) : s; }
let voicemailShown = false;
let current = null;
function render(t) {
  current = t;
  const fetched = Date.now();
  const big = document.getElementById("big-clock");
  big.dataset.seconds = t.seconds_to_target === null ? "" : t.seconds_to_target;
  big.dataset.fetched = fetched;
  big.dataset.target = t.target || "";
  document.getElementById("clock-what").textContent = t.target === "callback" ? L("to the callback target", "avant l'échéance de rappel")
    : t.target === "resolution" ? L("to the resolution target", "avant l'échéance de résolution") : L("closed", "fermé");
  const closed = t.status === "resolved" || t.status === "cancelled";
  document.getElementById("ack").disabled = !(t.status === "open" || t.status === "paged");
  document.getElementById("callback").disabled = !(t.status === "open" || t.status === "paged" || t.status === "acknowledged");
  document.getElementById("resolve").disabled = closed;
  document.querySelector("#reclassify button").disabled = closed;
  document.getElementById("severity").value = t.severity;
  const o = t.on_ticket || {};
  const banner = document.getElementById("failing");
  banner.hidden = !(o.failing || []).length;
  banner.textContent = (o.failing || []).length ? "⚠ " + L("These pages fail: ", "Ces avis échouent : ") + o.failing.join(", ") : "";
  document.getElementById("top-facts").innerHTML =
    (t.time_scale > 1 ? fact(L("Drill", "Exercice"), '<span class="drill">' + esc(L("DRILL", "EXERCICE")) + " ×" + esc(String(t.time_scale)) +
      "</span> " + esc(L("a drill ticket, not a customer", "un billet d'exercice, pas un client"))) : "") +
    (t.test_page ? fact(L("Test page", "Avis d'essai"), esc(L("not a customer: kept out of the queue and the SLA report", "pas un client : hors de la file et du rapport"))) : "") +
    fact(L("Severity", "Gravité"), '<span class="sev-' + esc(t.severity) + '">' + esc(severityText(t.severity)) + "</span>" +
      (t.suspected_incident ? esc(L(" (suspected incident)", " (incident soupçonné)")) : "")) +
    fact(L("Status", "État"), '<span class="status">' + esc(statusWord(t.status)) + "</span>") +
    fact(L("Acknowledged by", "Pris en charge par"), esc(o.acknowledged_by || L("nobody yet", "personne pour l'instant"))) +
    fact(L("Paged", "Avisé"), (o.paged_to || []).length
      ? esc(o.paged_to.join(", ")) + " · " + esc(L("level ", "niveau ") + o.level) : esc(L("nobody yet", "personne pour l'instant"))) +
    fact(L("Call back", "Rappeler au"), telLink(t.callback_number, "callback")) +
    fact(L("Caller", "Appelant"), telLink(t.caller, "caller")) +
    fact(L("Callback due", "Rappel dû"), esc(fmtWhen(t.callback_due_at)) +
      (t.callback_target_met === true ? esc(L(" (met)", " (respecté)")) : t.callback_target_met === false ? ' <span class="error">' + esc(L("(missed)", "(manqué)")) + "</span>" : ""));
  document.getElementById("facts").innerHTML =
    fact(L("Number", "Numéro"), esc(groupNumber(t.number))) +
    fact(L("Language", "Langue"), esc(answerValue(t.language))) +
    fact(L("Created", "Créé"), esc(fmtWhen(t.created_at))) +
    fact(L("Resolution due", "Résolution due"), esc(fmtWhen(t.resolution_due_at))) +
    fact(L("Paged at", "Avisé à"), esc(fmtWhen(t.paged_at) || "—")) +
    fact(L("Acknowledged at", "Pris en charge à"), esc(fmtWhen(t.acknowledged_at) || "—")) +
    fact(L("Called back at", "Rappelé à"), esc(fmtWhen(t.called_back_at) || "—")) +
    fact(L("Resolved at", "Résolu à"), esc(fmtWhen(t.resolved_at) || "—")) +
    (t.cancelled_at ? fact(L("Cancelled at", "Annulé à"), esc(fmtWhen(t.cancelled_at))) : "");
  if (!voicemailShown) {
    voicemailShown = true;
    document.getElementById("voicemail").innerHTML = t.voicemail_path
      ? '<audio controls preload="none" aria-label="' + esc(L("The caller's voicemail", "Le message de l'appelant")) + '" src="/api/tickets/' + encodeURIComponent(t.number) + '/voicemail"></audio> ' +
        '<span class="muted">' + esc((t.voicemail_seconds || 0).toFixed(1)) + " s, " +
        esc(t.speech_detected ? L("speech detected", "parole détectée") : L("no speech detected", "aucune parole détectée")) + "</span>"
      : '<p class="muted">' + esc(L("No voicemail.", "Aucun message vocal.")) + "</p>";
  }
  const a = t.account;
  document.getElementById("account").innerHTML = a
    ? "<p><strong>" + esc(a.code) + "</strong> — " + esc(a.company) + "<br>" + esc(a.address) +
      '<br><span class="muted">' + esc(L("numbers: ", "numéros : ")) + a.numbers.map(n => telLink(n)).join(", ") + "</span></p>" +
      (a.contacts.length ? "<table><thead><tr><th>" + esc(L("Role", "Rôle")) + "</th><th>" + esc(L("Name", "Nom")) + "</th><th>" +
        esc(L("Phone", "Téléphone")) + "</th><th>" + esc(L("E-mail", "Courriel")) + "</th></tr></thead><tbody>" +
        a.contacts.map(c => "<tr><td>" + esc(c.role) + "</td><td>" + esc(c.name) + "</td><td>" + telLink(c.phone) +
          "</td><td>" + esc(c.email) + "</td></tr>").join("") + "</tbody></table>" : "")
    : '<p class="muted">' + esc(L("No account matched the caller's number.", "Aucun compte ne correspond au numéro de l'appelant.")) + "</p>";
  const answers = Object.entries(t.answers || {});
  document.querySelector("#answers tbody").innerHTML = answers.length
    ? answers.map(([q, v]) => "<tr><th>" + esc(answerLabel(q)) + "</th><td>" + esc(answerValue(v)) + "</td></tr>").join("")
    : '<tr><td class="muted">' + esc(L("No answers.", "Aucune réponse.")) + "</td></tr>";
  document.getElementById("reasons").innerHTML =
    (L(t.classification_reasons, t.classification_reasons_fr || t.classification_reasons) || []).map(r => "<li>" + esc(r) + "</li>").join("") || '<li class="muted">' + esc(L("None given.", "Aucune.")) + "</li>";
  document.querySelector("#events tbody").innerHTML = (t.events || []).map(e => {
    const change = e.from_severity || e.to_severity
      ? esc(e.from_severity) + " → " + esc(e.to_severity)
      : e.from_status || e.to_status ? esc(e.from_status ? statusWord(e.from_status) : "") + " → " + esc(e.to_status ? statusWord(e.to_status) : "") : "";
    return "<tr><td><strong>" + esc(fmtWhen(e.at)) + "</strong></td><td>" + esc(eventWord(e.kind)) + "</td><td>" + change +
      '</td><td data-label="' + esc(L("By", "Par")) + '">' + esc(e.actor) + "</td><td>" + esc(scrub(L(e.reason, e.reason_fr || e.reason))) + "</td></tr>";
  }).join("");
  document.querySelector("#page-jobs tbody").innerHTML = (t.page_jobs || []).map(j =>
    "<tr><td><strong>" + esc(j.channel) + " → " + esc(j.person || j.target) + "</strong></td><td data-label=\"" + esc(L("To", "À")) + "\">" + esc(j.target) +
    "</td><td data-label=\"" + esc(L("Level", "Niveau")) + "\">" + esc(j.level) + "</td><td data-label=\"" + esc(L("State", "État")) + "\">" + esc(jobState(j.state)) +
    "</td><td data-label=\"" + esc(L("Run at", "Prévu à")) + "\">" + esc(fmtWhen(j.run_at)) + "</td><td data-label=\"" + esc(L("Attempts", "Essais")) + "\">" +
    esc(j.attempts) + "</td><td data-label=\"" + esc(L("Last error", "Dernière erreur")) + "\">" + esc(j.last_error || "—") + "</td></tr>").join("") ||
    '<tr><td colspan="7" class="muted">' + esc(L("No pages.", "Aucun avis.")) + "</td></tr>";
  tickAll();
}
function say(text, ok) {
  const m = document.getElementById("message");
  m.className = ok ? "notice" : "error";
  m.textContent = text;
}
async function load() {
  const st = document.getElementById("state");
  try {
    render(await api("GET", "/api/tickets/" + NUMBER));
    st.className = "muted";
    st.textContent = L("Times in ", "Heures du fuseau ") + UI_ZONE + ".";
  } catch (e) {
    st.className = "error";
    st.textContent = e.message;
  }
}
// Every action is confirmed once; the note goes with that action only, then the field empties.
async function act(path, body, question, done, fields) {
  if (!window.confirm(question)) return;
  try {
    await api("POST", "/api/tickets/" + NUMBER + "/" + path, body);
    (fields || []).forEach(id => { document.getElementById(id).value = ""; });
    say(done, true);
  } catch (e) {
    say(e.message, false);
  }
  await load();
}
function reasonBody() {
  const r = document.getElementById("reason").value.trim();
  return r ? { reason: r } : {};
}
const G = groupNumber(NUMBER);
document.getElementById("ack").addEventListener("click", () => act("acknowledge", reasonBody(),
  L("Acknowledge ticket " + G + "? The pages stop; you take it in charge.", "Prendre en charge le billet " + G + "? Les avis s'arrêtent; vous en êtes responsable."),
  L("Acknowledged.", "Pris en charge."), ["reason"]));
document.getElementById("callback").addEventListener("click", () => act("callback", reasonBody(),
  L("Mark ticket " + G + " called back? This stops its callback clock.", "Marquer le billet " + G + " comme rappelé? Cela arrête l'échéance de rappel."),
  L("Marked called back.", "Marqué rappelé."), ["reason"]));
document.getElementById("resolve").addEventListener("click", () => act("resolve", reasonBody(),
  L("Resolve ticket " + G + "? This closes it and stops every clock.", "Résoudre le billet " + G + "? Cela le ferme et arrête toutes les échéances."),
  L("Resolved.", "Résolu."), ["reason"]));
document.getElementById("reclassify").addEventListener("submit", ev => {
  ev.preventDefault();
  const severity = document.getElementById("severity").value;
  const reason = document.getElementById("reclassify-reason").value.trim();
  if (!reason) { say(L("A reclassification needs a reason.", "Un reclassement demande une raison."), false); return; }
  act("reclassify", { severity, reason }, L("Reclassify ticket " + G + " as " + severity + "?", "Reclasser le billet " + G + " en " + severity + "?"),
    L("Reclassified as ", "Reclassé en ") + severity + ".", ["reclassify-reason"]);
});
me();
load();
setInterval(tickAll, 1000);
setInterval(load, 10000);
"##;

async fn show_page(_user: CurrentUser, Path(n): Path<String>) -> Response {
    let n = match tracking_number(&n) {
        Ok(n) => n,
        Err(e) => {
            let body = format!(
                "<p class=\"error\">{}</p><p><a href=\"/tickets\">All tickets</a></p>",
                escape(&e.message)
            );
            return (
                StatusCode::BAD_REQUEST,
                pages::page("Ticket", "/tickets", &body, ""),
            )
                .into_response();
        }
    };
    // The number is 8 validated digits: safe in a JS string literal; JSON-encode it anyway.
    let script = format!("const NUMBER = {num};\n{CLOCK_JS}{SHOW_JS}", num = json!(n),);
    let title = format!("Ticket {}", number::grouped(&n));
    let body = format!("<div data-ticket=\"{}\">{SHOW_BODY}</div>", escape(&n));
    pages::page(&title, "/tickets", &body, &script).into_response()
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/tickets", get(list))
        .route("/api/tickets/{number}", get(show))
        .route("/api/tickets/{number}/voicemail", get(voicemail))
        .route("/api/tickets/{number}/acknowledge", post(acknowledge))
        .route("/api/tickets/{number}/callback", post(called_back))
        .route("/api/tickets/{number}/resolve", post(resolve))
        .route("/api/tickets/{number}/reclassify", post(reclassify))
        .route("/tickets", get(list_page))
        .route("/tickets/{number}", get(show_page))
        .layer(Extension(Arc::new(ListCoalescer::default())))
}
