//! The console's view of the night drill: the last report `astreinte drill` posted, as a
//! table and as its picture.
//!
//! - `POST /api/drill/report` (admin): a report as the drill writes it (`--json`). It is read
//!   as a report (anything else is refused with why), kept, and audited.
//! - `GET /api/drill/report`: the last one, JSON (404 before the first drill).
//! - `GET /api/drill/report.svg`: its picture, drawn here from the stored report, never taken
//!   from the client, and served with a CSP that forbids scripts.
//! - `GET /drill`: the page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;

use super::auth::{CurrentUser, Role};
use super::error::ApiError;
use super::pages::{self, escape};
use super::AdminState;
use crate::store::audit::NewAudit;
use astreinte_core::drill::NightReport;

/// The largest report taken: a 10,000-call storm's report is a few MB.
pub const MAX_REPORT_BYTES: usize = 16 << 20;

async fn post_report(
    State(state): State<AdminState>,
    user: CurrentUser,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    user.require(Role::Admin)?;
    if body.len() > MAX_REPORT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a drill report is at most {} MiB", MAX_REPORT_BYTES >> 20),
        ));
    }
    let report: NightReport = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a drill report (the JSON `astreinte drill --json` writes): {e}"
        ))
    })?;
    report
        .check()
        .map_err(|why| ApiError::bad_request(format!("not a drill report: {why}")))?;
    let text = serde_json::to_string(&report)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let now = Utc::now();
    let id = state
        .store
        .save_drill_report(
            &report.night.name,
            report.promise_held,
            &text,
            &user.name,
            now,
        )
        .await
        .map_err(ApiError::store)?;
    let summary = json!({
        "id": id,
        "name": report.night.name,
        "time_scale": report.night.time_scale,
        "promise_held": report.promise_held,
        "tickets": report.tickets.len(),
    });
    state
        .store
        .audit(&NewAudit {
            actor: &user.name,
            action: "drill.report",
            target: &report.night.name,
            before: None,
            after: Some(summary.clone()),
            at: now,
        })
        .await
        .map_err(ApiError::store)?;
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

/// The last report, read back as a report (so what is shown is what a report can hold).
async fn last(state: &AdminState) -> Result<(NightReport, serde_json::Value), ApiError> {
    let stored = state
        .store
        .last_drill_report()
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::not_found("no drill report yet: `astreinte drill … --console URL` posts one")
        })?;
    let report: NightReport = serde_json::from_str(&stored.report).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored drill report cannot be read: {e}"),
        )
    })?;
    let meta = json!({
        "id": stored.id,
        "posted_by": stored.posted_by,
        "posted_at": stored.posted_at,
    });
    Ok((report, meta))
}

async fn get_report(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Response, ApiError> {
    let (report, meta) = last(&state).await?;
    let mut v = serde_json::to_value(&report)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["posted"] = meta;
    // Each missed ticket's explanation in French too, for a French reader.
    if let Some(tickets) = v["tickets"].as_array_mut() {
        for t in tickets {
            let fr = t["verdict"]["explanation"].as_str().map(super::fr::drill);
            if let Some(fr) = fr {
                t["verdict"]["explanation_fr"] = json!(fr);
            }
        }
    }
    Ok(Json(v).into_response())
}

async fn get_svg(
    State(state): State<AdminState>,
    _user: CurrentUser,
) -> Result<Response, ApiError> {
    let (report, _) = last(&state).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        report.svg(),
    )
        .into_response())
}

async fn page(_user: CurrentUser) -> Html<String> {
    pages::page("Drill", "/drill", &body(), SCRIPT)
}

fn body() -> String {
    format!(
        "<p class=\"muted\">The last night drill's report (<code>astreinte drill</code>, README \
         \"Drilling a deployment\"). Drill tickets are marked {} and stay out of the SLA report.</p>\
         <p id=\"state\" class=\"muted\" role=\"status\">Loading…</p>\
         <div id=\"summary\"></div>\
         <p><img id=\"night\" alt=\"the night drawn: one line per ticket\" style=\"max-width:100%\"></p>\
         <table id=\"tickets\"><thead><tr><th>Ticket</th><th>Severity</th><th>Verdict</th>\
         <th>Why</th></tr></thead><tbody></tbody></table>",
        escape("DRILL ×N")
    )
}

const SCRIPT: &str = r##"
const MET_BY = { callback_on_time: ["called back on time", "rappelé à temps"],
  top_paged_in_time: ["the top of the ladder was paged in time", "le sommet de l'échelle a été avisé à temps"] };
(async () => {
  const state = document.getElementById("state");
  let r;
  try { r = await api("GET", "/api/drill/report"); }
  catch (e) { state.textContent = String(e.message || e); return; }
  state.textContent = "";
  const held = r.promise_held ? "PROMISE HELD" : "PROMISE BROKEN";
  const per = (m) => Object.entries(m || {}).map(([k, v]) => esc(k) + " " + esc(String(v))).join(", ");
  document.getElementById("summary").innerHTML =
    "<h2>" + esc(r.name) + " · " + esc(L("DRILL", "EXERCICE")) + " ×" + esc(String(r.time_scale)) + " · " + held + "</h2>" +
    "<p>Met: " + per(r.met) + ". Missed: " + per(r.missed) + ". Duplicate pages: " +
    esc(String(r.duplicate_pages)) + ". Calls without a ticket: " + esc(String(r.calls_without_ticket)) +
    ". Posted by " + esc(r.posted.posted_by) + esc(L(", ", ", le ")) + esc(fmtWhen(r.posted.posted_at)) + ".</p>";
  document.getElementById("night").src = "/api/drill/report.svg?id=" + encodeURIComponent(r.posted.id);
  const rows = (r.tickets || []).map((t) => {
    const v = t.verdict || {};
    const verdict = v.kind === "met" ? L("met", "respecté") : v.kind === "missed" ? L("MISSED", "MANQUÉ") : L("no target", "sans échéance");
    const by = MET_BY[v.by];
    const why = v.kind === "missed" ? L(v.explanation, v.explanation_fr || v.explanation)
      : v.kind === "met" ? (by ? L(by[0], by[1]) : String(v.by).replace(/_/g, " "))
      : L("no callback is promised at night for S3", "aucun rappel n'est promis la nuit pour un S3");
    return "<tr><td>" + esc(t.number) + "</td><td>" + esc(t.severity) + "</td><td>" + esc(verdict) +
      "</td><td>" + esc(why) + "</td></tr>";
  });
  document.querySelector("#tickets tbody").innerHTML = rows.join("");
})();
"##;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/drill/report", get(get_report).post(post_report))
        .route("/api/drill/report.svg", get(get_svg))
        .route("/drill", get(page))
}
