//! The audit log in the console (admins only): `GET /audit` (the page) and
//! `GET /api/audit?limit=&before=` (newest first; `before` is an event id, for the next page).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::auth::{CurrentUser, Role};
use super::{pages, AdminState, ApiError};
use crate::store::audit::AuditEvent;

/// Events per page when `limit` is not given, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, serde::Deserialize)]
struct AuditQuery {
    limit: Option<String>,
    before: Option<String>,
}

fn number(name: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name}={v:?} is not a whole number"))),
    }
}

async fn api_audit(
    State(state): State<AdminState>,
    user: CurrentUser,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    user.require(Role::Admin)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(format!("the query string: {e}")))?;
    let limit = number("limit", q.limit.as_deref())?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: ask for 1 to {MAX_LIMIT} events"
        )));
    }
    let before = number("before", q.before.as_deref())?;
    let events = state
        .store
        .audit_events(limit, before)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(events))
}

const BODY: &str = r#"<p id="status"></p>
<table id="audit"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Target</th>
<th>Before → after</th></tr></thead><tbody></tbody></table>
<p><button id="more" type="button" hidden>Older events</button></p>"#;

const SCRIPT: &str = r##"
"use strict";
let oldest = null;
// A change as words, "status: open → acknowledged", not raw JSON.
function val(v) {
  if (v === null || v === undefined) return "—";
  if (Array.isArray(v)) return v.map(val).join(", ");
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => k.replace(/_/g, " ") + " " + val(x)).join(", ");
  return String(v);
}
function change(before, after) {
  const b = before && typeof before === "object" && !Array.isArray(before) ? before : {};
  const a = after && typeof after === "object" && !Array.isArray(after) ? after : {};
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  if (!keys.length) return esc(val(before)) + " → " + esc(val(after));
  return keys.map(k => "<div><strong>" + esc(k.replace(/_/g, " ")) + "</strong>: " +
    (k in b ? esc(val(b[k])) + " → " : "") + esc(val(a[k])) + "</div>").join("");
}
async function load() {
  const status = document.getElementById("status");
  try {
    const q = "/api/audit?limit=100" + (oldest === null ? "" : "&before=" + oldest);
    const events = await api("GET", q);
    const body = document.querySelector("#audit tbody");
    for (const e of events) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td>" + esc(fmtWhen(e.at)) + "</td><td>" + esc(e.actor) +
        "</td><td>" + esc(e.action.replace(/[._]/g, " ")) + "</td><td>" + esc(e.target) + "</td><td>" +
        change(e.before, e.after) + "</td>";
      body.appendChild(tr);
      oldest = e.id;
    }
    document.getElementById("more").hidden = events.length < 100;
    if (oldest === null) status.textContent = "No change recorded yet.";
    else status.textContent = "";
  } catch (e) {
    status.textContent = e.message;
  }
}
document.getElementById("more").addEventListener("click", load);
me().then((u) => { if (u) load(); });
"##;

async fn audit_page(user: CurrentUser) -> Response {
    match user.require(Role::Admin) {
        Ok(()) => pages::page("Audit log", "/audit", BODY, SCRIPT).into_response(),
        Err(e) => (
            StatusCode::FORBIDDEN,
            pages::page(
                "Audit log",
                "/audit",
                &format!("<p>{}</p>", pages::escape(&e.message)),
                "me();",
            ),
        )
            .into_response(),
    }
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/audit", get(audit_page))
        .route("/api/audit", get(api_audit))
}
