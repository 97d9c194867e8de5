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
use crate::store::{number, Action, Ticket, VoicemailWav};
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
}

impl Prepared {
    fn new(t: &Ticket, tz: Tz) -> Result<Prepared, ApiError> {
        #[derive(Serialize)]
        struct Fixed<'a> {
            #[serde(flatten)]
            ticket: &'a Ticket,
            target: Option<&'static str>,
            callback_due_local: String,
        }
        let clock = target(t);
        let mut open_json = serde_json::to_string(&Fixed {
            ticket: t,
            target: clock.map(|(k, _)| k),
            callback_due_local: local(t.callback_due_at, tz),
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        open_json.pop(); // the closing '}'
        Ok(Prepared {
            open_json,
            due: clock.map(|(_, due)| due),
        })
    }
}

/// The list as JSON at `now`: the prepared tickets with their clocks (`seconds_to_target`).
pub fn list_json(tickets: &[Prepared], now: DateTime<Utc>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(tickets.iter().map(|t| t.open_json.len() + 40).sum());
    out.push('[');
    for (i, t) in tickets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&t.open_json);
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
        let prepared = rows
            .iter()
            .map(|t| Prepared::new(t, tz))
            .collect::<Result<Vec<_>, _>>()?;
        let tickets = Arc::new(prepared);
        *last = Some((started, tickets.clone()));
        Ok(tickets)
    }
}

async fn list(
    State(state): State<AdminState>,
    Extension(coalescer): Extension<Arc<ListCoalescer>>,
    _user: CurrentUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (scope, limit) = list_scope(&q)?;
    let tickets = coalescer
        .tickets(&state.store, scope, limit, zone(&state))
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        list_json(&tickets, Utc::now()),
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
    v["events"] = json!(events);
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

/// Countdown code shared by both pages: `clock(el)` renders the element's seconds-to-target as
/// of now, from `data-seconds` (the API's `seconds_to_target`) and `data-fetched` (when the
/// browser got it). Green; amber in the last 10 minutes before the target; red past it.
const CLOCK_JS: &str = r##"
const AMBER_SECONDS = 600;
function fmtClock(s) {
  const late = s < 0;
  let a = Math.abs(s);
  const h = Math.floor(a / 3600); a -= h * 3600;
  const m = Math.floor(a / 60); const sec = a - m * 60;
  const mm = String(m).padStart(2, "0") + ":" + String(sec).padStart(2, "0");
  const text = h > 0 ? h + ":" + mm : mm;
  return late ? "late " + text : text;
}
function clock(el) {
  const base = el.dataset.seconds;
  if (base === undefined || base === "") { el.textContent = "—"; el.className = "countdown"; return; }
  const left = Math.round(Number(base) - (Date.now() - Number(el.dataset.fetched)) / 1000);
  el.textContent = fmtClock(left);
  el.className = "countdown " + (left < 0 ? "red" : left <= AMBER_SECONDS ? "amber" : "ok");
  el.title = (el.dataset.target || "target") + (left < 0 ? " missed" : " ahead");
}
function tickAll() { document.querySelectorAll(".countdown").forEach(clock); }
function clockCell(t, fetched) {
  const s = t.seconds_to_target === null || t.seconds_to_target === undefined ? "" : t.seconds_to_target;
  return '<span class="countdown" data-seconds="' + esc(s) + '" data-fetched="' + esc(fetched) +
    '" data-target="' + esc(t.target) + '"></span>';
}
"##;

const LIST_BODY: &str = r##"<style>
#tickets td.num a { font-variant-numeric: tabular-nums; text-decoration: none; }
#tickets tr.closed { color: var(--muted); }
#tickets .incident { color: var(--red); font-size: .85em; }
.drill { background: #ffd54f; color: #000; font-weight: bold; padding: 0 .3em; border-radius: 3px; font-size: .85em; }
#list-state { margin: .5rem 0; }
</style>
<p class="muted">Open tickets first (most urgent callback first), then the most recent closed ones.
The countdown runs to the callback target (to the resolution target once called back): amber in
the last 10 minutes, red when missed. Times are in {{TZ}}. The list refreshes every 10 seconds.</p>
<p id="list-state" class="muted">Loading…</p>
<table id="tickets"><thead><tr><th>Number</th><th>Severity</th><th>Status</th><th>Company / caller</th>
<th>Call back</th><th>Callback due</th><th>Clock</th></tr></thead><tbody></tbody></table>"##;

const LIST_JS: &str = r##"
function groupNumber(n) { return n.length === 8 ? n.slice(0, 4) + " " + n.slice(4) : n; }
function row(t, fetched) {
  const closed = t.status === "resolved" || t.status === "cancelled";
  const who = t.company ? esc(t.company) + ' <span class="muted">' + esc(t.caller) + "</span>" : esc(t.caller);
  return '<tr data-ticket="' + esc(t.number) + '"' + (closed ? ' class="closed"' : "") + ">" +
    '<td class="num"><a href="/tickets/' + encodeURIComponent(t.number) + '">' + esc(groupNumber(t.number)) + "</a></td>" +
    '<td class="sev-' + esc(t.severity) + '">' + esc(t.severity) +
      (t.suspected_incident ? ' <span class="incident" title="suspected incident">incident?</span>' : "") +
      (t.time_scale > 1 ? ' <span class="drill" title="a drill ticket (time ×' + esc(String(t.time_scale)) + '): not a customer">DRILL ×' + esc(String(t.time_scale)) + "</span>" : "") + "</td>" +
    '<td class="status">' + esc(t.status.replace("_", " ")) + "</td>" +
    "<td>" + who + "</td>" +
    "<td>" + esc(t.callback_number) + "</td>" +
    "<td>" + esc(t.callback_due_local) + "</td>" +
    "<td>" + clockCell(t, fetched) + "</td></tr>";
}
async function load() {
  const state = document.getElementById("list-state");
  try {
    const tickets = await api("GET", "/api/tickets");
    const fetched = Date.now();
    document.querySelector("#tickets tbody").innerHTML = tickets.map(t => row(t, fetched)).join("");
    const open = tickets.filter(t => t.status !== "resolved" && t.status !== "cancelled").length;
    state.className = "muted";
    state.textContent = open + " open ticket(s); updated " + new Date(fetched).toLocaleTimeString();
    tickAll();
  } catch (e) {
    state.className = "error";
    state.textContent = "Cannot load the tickets: " + e.message;
  }
}
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
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: #fff; padding: .8rem; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.actions { margin: 1rem 0; display: flex; gap: .6rem; flex-wrap: wrap; align-items: center; }
.actions input[type=text] { min-width: 18rem; }
section { margin-top: 1.4rem; }
#big-clock { font-size: 1.6rem; }
</style>
<p><a href="/tickets">← All tickets</a></p>
<p id="state" class="muted">Loading…</p>
<p>Clock: <span id="big-clock" class="countdown"></span> <span id="clock-what" class="muted"></span></p>
<div class="actions">
 <input id="reason" type="text" placeholder="Reason or note (optional)" maxlength="500">
 <button id="ack" type="button">Acknowledge</button>
 <button id="callback" type="button">Called back</button>
 <button id="resolve" type="button">Resolve</button>
</div>
<form id="reclassify" class="actions">
 <label>Reclassify as <select name="severity" id="severity">
  <option value="S1">S1 critical</option><option value="S2">S2 major</option><option value="S3">S3 minor</option>
 </select></label>
 <input name="reason" id="reclassify-reason" type="text" required placeholder="Why (required)" maxlength="500">
 <button type="submit">Reclassify</button>
</form>
<p id="message" role="status"></p>
<dl id="facts" class="facts"></dl>
<section><h2>Voicemail</h2><div id="voicemail"></div></section>
<section><h2>Account</h2><div id="account"></div></section>
<section><h2>IVR answers</h2><table id="answers"><tbody></tbody></table></section>
<section><h2>Why this severity</h2><ul id="reasons"></ul></section>
<section><h2>History</h2><table id="events"><thead><tr><th>When</th><th>What</th><th>Change</th><th>By</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
<section><h2>Pages</h2><table id="page-jobs"><thead><tr><th>#</th><th>Channel</th><th>To</th><th>Level</th><th>State</th><th>Run at</th><th>Attempts</th><th>Last error</th></tr></thead><tbody></tbody></table></section>"##;

const SHOW_JS: &str = r##"
const fmtTime = new Intl.DateTimeFormat("sv-SE", { timeZone: ZONE, year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
function when(iso) { if (!iso) return ""; try { return fmtTime.format(new Date(iso)); } catch (e) { return iso; } }
function fact(label, value) { return "<dt>" + esc(label) + "</dt><dd>" + value + "</dd>"; }
let voicemailShown = false;
function render(t) {
  const fetched = Date.now();
  const big = document.getElementById("big-clock");
  big.dataset.seconds = t.seconds_to_target === null ? "" : t.seconds_to_target;
  big.dataset.fetched = fetched;
  big.dataset.target = t.target || "";
  document.getElementById("clock-what").textContent = t.target ? "to the " + t.target + " target" : "closed";
  const closed = t.status === "resolved" || t.status === "cancelled";
  document.getElementById("ack").disabled = readOnly || !(t.status === "open" || t.status === "paged");
  document.getElementById("callback").disabled = readOnly || !(t.status === "open" || t.status === "paged" || t.status === "acknowledged");
  document.getElementById("resolve").disabled = readOnly || closed;
  document.querySelector("#reclassify button").disabled = readOnly || closed;
  document.getElementById("severity").value = t.severity;
  document.getElementById("facts").innerHTML =
    (t.time_scale > 1 ? fact("Drill", '<span class="drill">DRILL ×' + esc(String(t.time_scale)) +
      "</span> a drill ticket: its targets and its ladder ran " + esc(String(t.time_scale)) + " times faster. Not a customer.") : "") +
    fact("Number", esc(t.number)) +
    fact("Severity", '<span class="sev-' + esc(t.severity) + '">' + esc(t.severity) + "</span>" +
      (t.suspected_incident ? " (suspected incident)" : "")) +
    fact("Status", '<span class="status">' + esc(t.status.replace("_", " ")) + "</span>") +
    fact("Caller", esc(t.caller)) +
    fact("Call back", esc(t.callback_number)) +
    fact("Language", esc(t.language)) +
    fact("Created", esc(t.created_local)) +
    fact("Callback due", esc(t.callback_due_local) +
      (t.callback_target_met === true ? " (met)" : t.callback_target_met === false ? ' <span class="error">(missed)</span>' : "")) +
    fact("Resolution due", esc(t.resolution_due_local)) +
    fact("Paged", esc(when(t.paged_at))) +
    fact("Acknowledged", esc(when(t.acknowledged_at))) +
    fact("Called back", esc(when(t.called_back_at))) +
    fact("Resolved", esc(when(t.resolved_at))) +
    (t.cancelled_at ? fact("Cancelled", esc(when(t.cancelled_at))) : "");
  if (!voicemailShown) {
    voicemailShown = true;
    document.getElementById("voicemail").innerHTML = t.voicemail_path
      ? '<audio controls preload="none" src="/api/tickets/' + encodeURIComponent(t.number) + '/voicemail"></audio> ' +
        '<span class="muted">' + esc((t.voicemail_seconds || 0).toFixed(1)) + " s, " +
        (t.speech_detected ? "speech detected" : "no speech detected") + "</span>"
      : '<p class="muted">No voicemail.</p>';
  }
  const a = t.account;
  document.getElementById("account").innerHTML = a
    ? "<p><strong>" + esc(a.code) + "</strong> — " + esc(a.company) + "<br>" + esc(a.address) +
      '<br><span class="muted">numbers: ' + esc(a.numbers.join(", ")) + "</span></p>" +
      (a.contacts.length ? "<table><thead><tr><th>Role</th><th>Name</th><th>Phone</th><th>E-mail</th></tr></thead><tbody>" +
        a.contacts.map(c => "<tr><td>" + esc(c.role) + "</td><td>" + esc(c.name) + "</td><td>" + esc(c.phone) +
          "</td><td>" + esc(c.email) + "</td></tr>").join("") + "</tbody></table>" : "")
    : '<p class="muted">No account matched the caller\'s number.</p>';
  const answers = Object.entries(t.answers || {});
  document.querySelector("#answers tbody").innerHTML = answers.length
    ? answers.map(([q, v]) => "<tr><th>" + esc(q) + "</th><td>" + esc(v) + "</td></tr>").join("")
    : '<tr><td class="muted">No answers.</td></tr>';
  document.getElementById("reasons").innerHTML =
    (t.classification_reasons || []).map(r => "<li>" + esc(r) + "</li>").join("") || '<li class="muted">None given.</li>';
  document.querySelector("#events tbody").innerHTML = (t.events || []).map(e => {
    const change = e.from_severity || e.to_severity
      ? esc(e.from_severity) + " → " + esc(e.to_severity)
      : e.from_status || e.to_status ? esc(e.from_status) + " → " + esc(e.to_status) : "";
    return "<tr><td>" + esc(when(e.at)) + "</td><td>" + esc(e.kind) + "</td><td>" + change + "</td><td>" +
      esc(e.actor) + "</td><td>" + esc(e.reason) + "</td></tr>";
  }).join("");
  document.querySelector("#page-jobs tbody").innerHTML = (t.page_jobs || []).map(j =>
    "<tr><td>" + esc(j.id) + "</td><td>" + esc(j.channel) + "</td><td>" + esc(j.person || j.target) +
    "</td><td>" + esc(j.level) + "</td><td>" + esc(j.state) + "</td><td>" + esc(when(j.run_at)) + "</td><td>" +
    esc(j.attempts) + "</td><td>" + esc(j.last_error) + "</td></tr>").join("") ||
    '<tr><td colspan="8" class="muted">No pages.</td></tr>';
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
    st.textContent = "Times in " + ZONE + ".";
  } catch (e) {
    st.className = "error";
    st.textContent = e.message;
  }
}
async function act(path, body, done) {
  try {
    await api("POST", "/api/tickets/" + NUMBER + "/" + path, body);
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
document.getElementById("ack").addEventListener("click", () => act("acknowledge", reasonBody(), "Acknowledged."));
document.getElementById("callback").addEventListener("click", () => act("callback", reasonBody(), "Marked called back."));
document.getElementById("resolve").addEventListener("click", () => act("resolve", reasonBody(), "Resolved."));
document.getElementById("reclassify").addEventListener("submit", ev => {
  ev.preventDefault();
  const severity = document.getElementById("severity").value;
  const reason = document.getElementById("reclassify-reason").value.trim();
  if (!reason) { say("A reclassification needs a reason.", false); return; }
  act("reclassify", { severity, reason }, "Reclassified as " + severity + ".");
});
let readOnly = false;
async function whoAmI() {
  try {
    const u = await me();
    if (u && u.role === "viewer") {
      readOnly = true;
      document.querySelectorAll(".actions button, .actions input, .actions select").forEach(el => { el.disabled = true; });
      say("You can read this ticket; changing it needs the technician role.", true);
    }
  } catch (e) { /* the API still says 403 on a change */ }
}
whoAmI();
load();
setInterval(tickAll, 1000);
setInterval(load, 10000);
"##;

async fn show_page(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Path(n): Path<String>,
) -> Response {
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
    let tz = zone(&state);
    // The number is 8 validated digits and the zone a chrono-tz name: both are safe in a JS
    // string literal; JSON-encode them anyway.
    let script = format!(
        "const NUMBER = {num};\nconst ZONE = {zone};\n{CLOCK_JS}{SHOW_JS}",
        num = json!(n),
        zone = json!(tz.name()),
    );
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
