//! Hours in the console: opening hours, the year's holidays (Québec's computed ones, admin days
//! added or worked anyway), closures, maintenance windows, and an "are we open at…" preview.
//! Admin changes are stored (`store::hours`) on top of `[schedule]`; every node's live-settings
//! service (`crate::live`) swaps its `LiveSchedule`: at once on the node that took the change,
//! within `live::POLL` on the others.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::auth::{CurrentUser, Role};
use super::pages::page;
use super::{AdminState, ApiError};
use crate::schedule::Schedule;
use crate::store::audit::NewAudit;
use crate::store::hours::HoursChange;

use crate::live::hours::build;
pub use crate::live::hours::{apply_stored_changes, effective_config};

async fn current(state: &AdminState) -> Result<(Schedule, Vec<HoursChange>), ApiError> {
    let changes = state.store.hours_changes().await.map_err(ApiError::store)?;
    let s = build(&effective_config(&state.config.schedule, &changes))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((s, changes))
}

#[derive(Debug, Deserialize)]
struct YearQuery {
    year: Option<i32>,
}

fn week_json(w: &crate::schedule::WeekHours) -> Value {
    json!({"mon": w.mon, "tue": w.tue, "wed": w.wed, "thu": w.thu, "fri": w.fri, "sat": w.sat, "sun": w.sun})
}

async fn hours(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Query(q): Query<YearQuery>,
) -> Result<Json<Value>, ApiError> {
    let (schedule, changes) = current(&state).await?;
    let tz = schedule.timezone();
    let year = q
        .year
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).year());
    if !(2000..=2100).contains(&year) {
        return Err(ApiError::bad_request("year must be between 2000 and 2100"));
    }
    // Every computed holiday, worked or not, to show what an admin removed.
    let mut without_removals = effective_config(&state.config.schedule, &changes);
    without_removals.holidays.removed.clear();
    let all = build(&without_removals)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let in_force = schedule.holidays_in(year);
    let mut holidays = Vec::new();
    for (date, name, observed) in all.holidays_in(year) {
        let day = date.format("%Y-%m-%d").to_string();
        let added = changes
            .iter()
            .find(|c| c.kind == "holiday_added" && c.day.as_deref() == Some(day.as_str()));
        let removed = changes
            .iter()
            .find(|c| c.kind == "holiday_removed" && c.day.as_deref() == Some(day.as_str()));
        let source = if added.is_some() {
            "admin"
        } else if state
            .config
            .schedule
            .holidays
            .extra
            .iter()
            .any(|e| e.date == day)
        {
            "config"
        } else {
            "calendar"
        };
        holidays.push(json!({
            "date": day, "name": name, "observed": observed, "source": source,
            "closed": in_force.iter().any(|(d, _, _)| *d == date),
            "change_id": added.or(removed).map(|c| c.id),
        }));
    }
    let closures: Vec<Value> = state
        .config
        .schedule
        .holidays
        .closures
        .iter()
        .map(|c| json!({"from": c.from, "to": c.to, "name": c.name, "source": "config", "change_id": null}))
        .chain(changes.iter().filter(|c| c.kind == "closure").map(|c| {
            json!({"from": c.starts, "to": c.ends, "name": c.name, "source": "admin", "change_id": c.id})
        }))
        .collect();
    Ok(Json(json!({
        "timezone": tz.name(),
        "year": year,
        "open": week_json(&state.config.schedule.open),
        "maintenance": week_json(&state.config.schedule.maintenance),
        "holidays": holidays,
        "closures": closures,
        "changes": changes,
    })))
}

#[derive(Debug, Deserialize)]
struct AtQuery {
    time: Option<String>,
}

async fn open_at(
    State(state): State<AdminState>,
    _user: CurrentUser,
    Query(q): Query<AtQuery>,
) -> Result<Json<Value>, ApiError> {
    let (schedule, _) = current(&state).await?;
    let tz = schedule.timezone();
    let t = match q.time.as_deref() {
        None | Some("") | Some("now") => Utc::now(),
        Some(s) => parse_when(s, tz)?,
    };
    let o = schedule.is_open(t);
    Ok(Json(json!({
        "time": t,
        "local": t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        "open": o.open,
        "reason": o.reason.to_string(),
        "next_change": o.next_change,
        "next_change_local": o.next_change.map(|c| c.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()),
        "maintenance": o.maintenance,
    })))
}

/// RFC 3339, or a local "YYYY-MM-DDTHH:MM" in the schedule's zone.
fn parse_when(s: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").map_err(|_| {
        ApiError::bad_request(format!(
            "\"{}\" is not a time: write 2026-12-24T17:30 (local) or RFC 3339",
            clip(s)
        ))
    })?;
    local
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{} does not exist in {} (a daylight-saving gap)",
                clip(s),
                tz.name()
            ))
        })
}

fn clip(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "give a name of 1 to 100 characters, on one line",
        ));
    }
    Ok(name.to_string())
}

fn check_day(day: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .filter(|d| (2000..=2100).contains(&d.year()))
        .ok_or_else(|| {
            ApiError::bad_request(format!("\"{}\" is not a date: write 2026-12-26", clip(day)))
        })
}

/// Stores `change` if the schedule with it still builds; audits it.
#[allow(clippy::too_many_arguments)]
async fn store_change(
    state: &AdminState,
    user: &CurrentUser,
    kind: &str,
    day: Option<&str>,
    starts: Option<&str>,
    ends: Option<&str>,
    name: &str,
    action: &str,
    target: &str,
) -> Result<i64, ApiError> {
    let mut changes = state.store.hours_changes().await.map_err(ApiError::store)?;
    let now = Utc::now();
    changes.push(HoursChange {
        id: i64::MAX,
        kind: kind.into(),
        day: day.map(str::to_string),
        starts: starts.map(str::to_string),
        ends: ends.map(str::to_string),
        name: name.into(),
        created_by: user.name.clone(),
        created_at: now,
    });
    build(&effective_config(&state.config.schedule, &changes)).map_err(ApiError::bad_request)?;
    let id = state
        .store
        .add_hours_change(kind, day, starts, ends, name, &user.name, now)
        .await
        .map_err(ApiError::store)?;
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action,
            target,
            before: None,
            after: Some(
                json!({"kind": kind, "day": day, "from": starts, "to": ends, "name": name}),
            ),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    info!(by = %user.name, %action, %target, "hours changed");
    Ok(id)
}

#[derive(Debug, Deserialize)]
struct NewHoliday {
    date: String,
    name: String,
}

async fn add_holiday(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(h): Json<NewHoliday>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Admin)?;
    let day = check_day(&h.date)?.format("%Y-%m-%d").to_string();
    let name = check_name(&h.name)?;
    let id = store_change(
        &state,
        &user,
        "holiday_added",
        Some(&day),
        None,
        None,
        &name,
        "hours.holiday_add",
        &day,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"change_id": id, "date": day, "name": name})),
    ))
}

async fn work_holiday(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(date): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Admin)?;
    let d = check_day(&date)?;
    let (schedule, _) = current(&state).await?;
    let Some((name, _)) = schedule.holiday(d) else {
        return Err(ApiError::not_found(format!("{date} is not a holiday")));
    };
    let day = d.format("%Y-%m-%d").to_string();
    let id = store_change(
        &state,
        &user,
        "holiday_removed",
        Some(&day),
        None,
        None,
        &name,
        "hours.holiday_work",
        &day,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"change_id": id, "date": day, "name": name})),
    ))
}

#[derive(Debug, Deserialize)]
struct NewClosure {
    from: String,
    to: String,
    name: String,
}

async fn add_closure(
    State(state): State<AdminState>,
    user: CurrentUser,
    Json(c): Json<NewClosure>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    user.require(Role::Admin)?;
    let name = check_name(&c.name)?;
    let fmt = "%Y-%m-%dT%H:%M";
    let bad = |s: &str| {
        ApiError::bad_request(format!(
            "\"{}\" is not a local time: write 2026-12-24T12:00",
            clip(s)
        ))
    };
    let from = NaiveDateTime::parse_from_str(&c.from, fmt).map_err(|_| bad(&c.from))?;
    let to = NaiveDateTime::parse_from_str(&c.to, fmt).map_err(|_| bad(&c.to))?;
    if to <= from {
        return Err(ApiError::bad_request("a closure must end after it starts"));
    }
    let (f, t) = (from.format(fmt).to_string(), to.format(fmt).to_string());
    let id = store_change(
        &state,
        &user,
        "closure",
        None,
        Some(&f),
        Some(&t),
        &name,
        "hours.closure_add",
        &name,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"change_id": id, "from": f, "to": t, "name": name})),
    ))
}

async fn undo_change(
    State(state): State<AdminState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    user.require(Role::Admin)?;
    let Some(removed) = state
        .store
        .remove_hours_change(id)
        .await
        .map_err(ApiError::store)?
    else {
        return Err(ApiError::not_found(format!("no hours change {id}")));
    };
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "hours.undo",
            target: removed.day.as_deref().unwrap_or(&removed.name),
            before: serde_json::to_value(&removed).ok(),
            after: None,
            at: Utc::now(),
        })
        .await
        .map_err(ApiError::store)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn hours_page(_user: CurrentUser) -> axum::response::Html<String> {
    page("Hours", "/hours", HOURS_BODY, HOURS_SCRIPT)
}

const HOURS_BODY: &str = r##"
<section><h2>Are we open at…</h2>
<form id="at-form" class="tools"><label>Date and time <input id="at" type="datetime-local"></label> <button>Check</button></form>
<p id="at-result" class="status" role="status"></p></section>
<section><h2>Opening hours <span class="muted" id="tz"></span></h2><table id="open"></table>
<h3>Planned maintenance</h3><table id="maintenance"></table></section>
<section><h2><label>Holidays of <input id="year" type="number" min="2000" max="2100" style="width:6em"></label></h2>
<table id="holidays"><thead><tr><th>Date</th><th>Name</th><th>Source</th><th>Closed</th><th><span class="sr-only">Change</span></th></tr></thead><tbody></tbody></table>
<form id="add-holiday" class="tools need-admin"><label>Date <input id="h-date" type="date" required></label> <label>Name <input id="h-name" required></label>
<button>Add a closed day</button></form></section>
<section><h2>Closures</h2><table id="closures"><thead><tr><th>From</th><th>To</th><th>Name</th><th>Source</th><th><span class="sr-only">Change</span></th></tr></thead><tbody></tbody></table>
<form id="add-closure" class="tools need-admin"><label>From <input id="c-from" type="datetime-local" required></label> <label>To <input id="c-to" type="datetime-local" required></label>
<label>Name <input id="c-name" required></label> <button>Add a closure</button></form></section>
<p id="message" class="error" role="status"></p>
"##;

const HOURS_SCRIPT: &str = r##"
const days = ["mon","tue","wed","thu","fri","sat","sun"];
const DAY_NAMES = { mon: ["Mon", "lun"], tue: ["Tue", "mar"], wed: ["Wed", "mer"], thu: ["Thu", "jeu"], fri: ["Fri", "ven"], sat: ["Sat", "sam"], sun: ["Sun", "dim"] };
function week(el, w) {
  el.innerHTML = "<tr>" + days.map(d => "<th>" + L(DAY_NAMES[d][0], DAY_NAMES[d][1]) + "</th>").join("") + "</tr><tr>" +
    days.map(d => "<td>" + esc((w[d] || []).join(", ") || L("closed", "fermé")) + "</td>").join("") + "</tr>";
}
async function load() {
  const y = document.getElementById("year").value;
  const h = await api("GET", "/api/hours" + (y ? "?year=" + encodeURIComponent(y) : ""));
  document.getElementById("year").value = h.year;
  document.getElementById("tz").textContent = "(" + h.timezone + ")";
  week(document.getElementById("open"), h.open);
  week(document.getElementById("maintenance"), h.maintenance);
  document.querySelector("#holidays tbody").innerHTML = h.holidays.map(d =>
    "<tr data-date='" + esc(d.date) + "'><td>" + esc(d.date) + "</td><td>" + esc(d.name) + (d.observed ? " (observed)" : "") +
    "</td><td>" + esc(d.source) + "</td><td>" + (d.closed ? L("closed", "fermé") : L("worked", "travaillé")) + "</td><td>" +
    (d.change_id ? "<button class='need-admin' data-undo='" + d.change_id + "'>Undo</button>" :
      (d.closed ? "<button class='need-admin' data-work='" + esc(d.date) + "'>Work this day</button>" : "")) + "</td></tr>").join("");
  document.querySelector("#closures tbody").innerHTML = h.closures.map(c =>
    "<tr><td>" + esc(c.from) + "</td><td>" + esc(c.to) + "</td><td>" + esc(c.name) + "</td><td>" + esc(c.source) +
    "</td><td>" + (c.change_id ? "<button class='need-admin' data-undo='" + c.change_id + "'>Remove</button>" : "") + "</td></tr>").join("");
}
async function act(f) {
  const m = document.getElementById("message");
  m.textContent = "";
  try { await f(); await load(); } catch (e) { m.textContent = e.message; }
}
document.addEventListener("click", e => {
  const t = e.target;
  if (t.dataset.undo) act(() => api("DELETE", "/api/hours/changes/" + t.dataset.undo));
  if (t.dataset.work) act(() => api("POST", "/api/hours/holidays/" + t.dataset.work + "/work"));
});
document.getElementById("add-holiday").addEventListener("submit", e => { e.preventDefault();
  act(() => api("POST", "/api/hours/holidays", {date: document.getElementById("h-date").value, name: document.getElementById("h-name").value})); });
document.getElementById("add-closure").addEventListener("submit", e => { e.preventDefault();
  act(() => api("POST", "/api/hours/closures", {from: document.getElementById("c-from").value, to: document.getElementById("c-to").value, name: document.getElementById("c-name").value})); });
document.getElementById("year").addEventListener("change", () => act(async () => {}));
document.getElementById("at-form").addEventListener("submit", async e => { e.preventDefault();
  const v = document.getElementById("at").value;
  try { const r = await api("GET", "/api/hours/at?time=" + encodeURIComponent(v || "now"));
    document.getElementById("at-result").textContent = r.local + ": " + (r.open ? "OPEN" : "CLOSED") + " (" + r.reason + ")" +
      (r.next_change_local ? "; " + (r.open ? "closes " : "opens ") + r.next_change_local : "");
  } catch (err) { document.getElementById("at-result").textContent = err.message; } });
me().then(load);
"##;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/hours", get(hours_page))
        .route("/api/hours", get(hours))
        .route("/api/hours/at", get(open_at))
        .route("/api/hours/holidays", post(add_holiday))
        .route("/api/hours/holidays/{date}/work", post(work_holiday))
        .route("/api/hours/closures", post(add_closure))
        .route("/api/hours/changes/{id}", delete(undo_change))
}
