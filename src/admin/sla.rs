//! The SLA report in the console: `GET /api/sla/report?from=YYYY-MM-DD&to=YYYY-MM-DD` and the
//! `/sla` page (a bar chart of callback targets met and missed per week and severity, drawn as
//! inline SVG, and the tables below it).
//!
//! The same figures as `astreinte sla report` (the `severities` array is its JSON), plus a
//! breakdown per week (weeks start on Monday, in the schedule's zone). Both dates are local
//! days and both are included: `from=2025-03-01&to=2025-03-31` is the whole of March.
//! Default: the last 12 weeks (this week and the 11 before it) up to today.
//!
//! How a ticket counts (at the server's now, cancelled tickets left out, as the CLI):
//! - `met`: called back on or before its callback target;
//! - `missed`: called back after it;
//! - `open_past_target`: no callback yet and the target has passed (the CLI lists it as a miss
//!   "not called back");
//! - `pending`: no callback yet and the target is still ahead.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::auth::CurrentUser;
use super::pages::{self, escape};
use super::tickets::zone;
use super::{AdminState, ApiError};
use crate::schedule::sla::{self, SeverityReport, SlaTicket};
use crate::triage::Severity;

/// The longest range a report covers (the chart stays readable, the query bounded).
pub const MAX_DAYS: i64 = 732;
/// Weeks in the default report.
pub const DEFAULT_WEEKS: i64 = 12;

const SEVERITIES: [Severity; 3] = [Severity::S1, Severity::S2, Severity::S3];

/// Counts of one severity in one week (or over the whole range).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tickets: usize,
    pub met: usize,
    pub missed: usize,
    pub open_past_target: usize,
    pub pending: usize,
}

impl Counts {
    fn add(&mut self, t: &SlaTicket, now: DateTime<Utc>) {
        self.tickets += 1;
        match t.called_back_at {
            Some(c) if c <= t.callback_due_at => self.met += 1,
            Some(_) => self.missed += 1,
            None if now > t.callback_due_at => self.open_past_target += 1,
            None => self.pending += 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityCounts {
    pub severity: Severity,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// The Monday the week starts on (local).
    pub week_start: NaiveDate,
    pub severities: Vec<SeverityCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub counts: Counts,
    pub called_back: usize,
    pub median_minutes_to_callback: Option<f64>,
    pub p90_minutes_to_callback: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day (local, included).
    pub from: NaiveDate,
    /// Last day (local, included).
    pub to: NaiveDate,
    pub timezone: String,
    /// The instants the days span: `[period_start, period_end)`.
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    /// Every week of the range, empty ones included, oldest first.
    pub weeks: Vec<Week>,
    /// Per severity over the range: the figures `sla report` prints (with its misses).
    pub severities: Vec<SeverityReport>,
    /// Per severity over the range, in the weekly counts' terms.
    pub severity_counts: Vec<SeverityCounts>,
    /// All severities together.
    pub totals: Totals,
}

/// Local midnight of `d` in `tz` (the first instant of the day, even on a DST change).
fn start_of(d: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = d.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // Midnight skipped by a DST change: the day starts an hour later.
        None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

fn monday_of(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// Nearest-rank percentile (as `sla report`).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::S1 => 0,
        Severity::S2 => 1,
        Severity::S3 => 2,
    }
}

/// The report of `tickets` (created in `[from, to]`, local days in `tz`) at `now`.
pub fn build(
    tickets: &[SlaTicket],
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    now: DateTime<Utc>,
) -> Report {
    let mut weeks: BTreeMap<NaiveDate, [Counts; 3]> = BTreeMap::new();
    let mut w = monday_of(from);
    while w <= to {
        weeks.insert(w, Default::default());
        w += Duration::days(7);
    }
    let mut overall: [Counts; 3] = Default::default();
    let mut totals = Counts::default();
    let mut minutes: Vec<f64> = Vec::new();
    for t in tickets {
        let day = t.created_at.with_timezone(&tz).date_naive();
        let i = severity_index(t.severity);
        if let Some(row) = weeks.get_mut(&monday_of(day)) {
            if let Some(c) = row.get_mut(i) {
                c.add(t, now);
            }
        }
        if let Some(c) = overall.get_mut(i) {
            c.add(t, now);
        }
        totals.add(t, now);
        if let Some(c) = t.called_back_at {
            minutes.push((c - t.created_at).num_seconds() as f64 / 60.0);
        }
    }
    minutes.sort_by(|a, b| a.total_cmp(b));
    let per_sev = |counts: [Counts; 3]| -> Vec<SeverityCounts> {
        SEVERITIES
            .into_iter()
            .zip(counts)
            .map(|(severity, counts)| SeverityCounts { severity, counts })
            .collect()
    };
    Report {
        from,
        to,
        timezone: tz.name().to_string(),
        period_start: start_of(from, tz),
        period_end: start_of(to + Duration::days(1), tz),
        generated_at: now,
        weeks: weeks
            .into_iter()
            .map(|(week_start, c)| Week {
                week_start,
                severities: per_sev(c),
            })
            .collect(),
        severities: sla::report(tickets, now),
        severity_counts: per_sev(overall),
        totals: Totals {
            counts: totals,
            called_back: minutes.len(),
            median_minutes_to_callback: percentile(&minutes, 50.0),
            p90_minutes_to_callback: percentile(&minutes, 90.0),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

fn date(name: &str, s: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{name}=\"{s}\" is not a date: write it as YYYY-MM-DD, e.g. 2025-03-01"
        ))
    })
}

/// The report's days: both given, or the default (the last 12 weeks up to `today`).
pub fn range(q: &RangeQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let given = |v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let to = match given(&q.to) {
        Some(s) => date("to", &s)?,
        None => today,
    };
    let from = match given(&q.from) {
        Some(s) => date("from", &s)?,
        None => monday_of(to) - Duration::weeks(DEFAULT_WEEKS - 1),
    };
    if from > to {
        return Err(ApiError::bad_request(format!(
            "from ({from}) is after to ({to}): the report needs from ≤ to"
        )));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(format!(
            "{from} to {to} is longer than {MAX_DAYS} days: ask for a shorter range"
        )));
    }
    Ok((from, to))
}

async fn report(
    State(state): State<AdminState>,
    _user: CurrentUser,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let tz = zone(&state);
    let now = Utc::now();
    let (from, to) = range(&q, now.with_timezone(&tz).date_naive())?;
    let start = start_of(from, tz);
    let end = start_of(to + Duration::days(1), tz);
    let rows = state
        .store
        .sla_tickets(start, end)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(build(&rows, from, to, tz, now)).into_response())
}

const BODY: &str = r##"<style>
#range { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; margin-bottom: 1rem; }
#range label { display: flex; flex-direction: column; font-size: .9em; }
#chart { background: #fff; border: 1px solid var(--line); padding: .5rem; overflow-x: auto; }
#chart svg text { font: 11px system-ui, sans-serif; fill: #4a5568; }
.legend { display: flex; gap: 1.2rem; margin: .4rem 0; font-size: .9em; }
.legend span::before { content: ""; display: inline-block; width: .9em; height: .9em; margin-right: .3em; vertical-align: -.1em; background: var(--c); }
section { margin-top: 1.4rem; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
</style>
<form id="range">
 <label>From <input type="date" name="from" id="from" required></label>
 <label>To (included) <input type="date" name="to" id="to" required></label>
 <button type="submit">Show</button>
 <span id="state" class="muted">Loading…</span>
</form>
<div class="legend"><span style="--c:#1b6e35">met</span><span style="--c:#b42318">missed (late callback)</span><span style="--c:#8a4b00">no callback, past target</span><span style="--c:#a0aec0">no callback yet, within target</span></div>
<div id="chart"></div>
<section><h2>Per severity</h2>
<table id="totals"><thead><tr><th>Severity</th><th class="n">Tickets</th><th class="n">Called back</th><th class="n">Within target</th><th class="n">Missed</th><th class="n">Past target, no callback</th><th class="n">Median to callback</th><th class="n">p90 to callback</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Per week</h2>
<table id="weeks"><thead><tr><th>Week of</th><th>Severity</th><th class="n">Tickets</th><th class="n">Met</th><th class="n">Missed</th><th class="n">Past target, no callback</th><th class="n">Pending</th></tr></thead><tbody></tbody></table>
</section>
<section><h2>Misses</h2>
<table id="misses"><thead><tr><th>Ticket</th><th>Severity</th><th>Callback due</th><th>Called back</th><th class="n">Minutes late</th></tr></thead><tbody></tbody></table>
</section>"##;

const SCRIPT: &str = r##"
const COLORS = { met: "#1b6e35", missed: "#b42318", open_past_target: "#8a4b00", pending: "#a0aec0" };
const PARTS = ["met", "missed", "open_past_target", "pending"];
const PART_WORDS = { met: ["met", "respectés"], missed: ["missed", "manqués"],
  open_past_target: ["open past target", "ouverts après l'échéance"], pending: ["pending", "en attente"] };
function partWord(p) { const w = PART_WORDS[p]; return w ? L(w[0], w[1]) : p.replace(/_/g, " "); }
function minutes(v) { return v === null || v === undefined ? "—" : v.toFixed(1) + " min"; }
function chart(r) {
  const weeks = r.weeks;
  let max = 1;
  weeks.forEach(w => w.severities.forEach(s => { if (s.tickets > max) max = s.tickets; }));
  const bar = 14, gap = 3, groupGap = 16, top = 10, plot = 200, left = 34, bottom = 40;
  const groupW = 3 * bar + 2 * gap;
  const width = left + weeks.length * (groupW + groupGap) + 10;
  const height = top + plot + bottom;
  const y = v => top + plot - (v / max) * plot;
  let out = '<svg xmlns="http://www.w3.org/2000/svg" width="' + width + '" height="' + height +
    '" viewBox="0 0 ' + width + " " + height + '" role="img" aria-label="Callback targets met and missed per week and severity">';
  const ticks = [0, Math.ceil(max / 2), max];
  ticks.forEach(v => {
    out += '<line x1="' + left + '" x2="' + (width - 5) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#e2e8f0"/>' +
      '<text x="' + (left - 4) + '" y="' + (y(v) + 4) + '" text-anchor="end">' + esc(v) + "</text>";
  });
  weeks.forEach((w, i) => {
    const gx = left + 6 + i * (groupW + groupGap);
    w.severities.forEach((s, j) => {
      const x = gx + j * (bar + gap);
      let base = 0;
      PARTS.forEach(p => {
        const n = s[p];
        if (!n) return;
        const y1 = y(base + n), h = y(base) - y1;
        out += '<rect class="bar ' + p + '" data-week="' + esc(w.week_start) + '" data-severity="' + esc(s.severity) +
          '" x="' + x + '" y="' + y1 + '" width="' + bar + '" height="' + h + '" fill="' + COLORS[p] + '">' +
          "<title>" + esc(w.week_start + " " + s.severity + " : " + n + " " + partWord(p)) + "</title></rect>";
        base += n;
      });
      out += '<text x="' + (x + bar / 2) + '" y="' + (top + plot + 12) + '" text-anchor="middle">' + esc(s.severity.slice(1)) + "</text>";
    });
    out += '<text x="' + (gx + groupW / 2) + '" y="' + (top + plot + 28) + '" text-anchor="middle">' + esc(w.week_start.slice(5)) + "</text>";
  });
  out += '<text x="' + left + '" y="' + (height - 2) + '">bars: S1, S2, S3 per week (week of Monday, MM-DD)</text>';
  return out + "</svg>";
}
function render(r) {
  document.getElementById("chart").innerHTML = chart(r);
  const counts = {};
  r.severity_counts.forEach(c => { counts[c.severity] = c; });
  const rows = r.severities.map(s => {
    const c = counts[s.severity] || {};
    return '<tr data-severity="' + esc(s.severity) + '"><td class="sev-' + esc(s.severity) + '">' + esc(s.severity) +
      '</td><td class="n">' + esc(s.tickets) + '</td><td class="n">' + esc(s.called_back) + '</td><td class="n">' +
      esc(s.within_target) + '</td><td class="n">' + esc(c.missed) + '</td><td class="n">' + esc(c.open_past_target) +
      '</td><td class="n">' + esc(minutes(s.median_minutes_to_callback)) + '</td><td class="n">' +
      esc(minutes(s.p90_minutes_to_callback)) + "</td></tr>";
  });
  const t = r.totals;
  rows.push('<tr><th>All</th><th class="n">' + esc(t.tickets) + '</th><th class="n">' + esc(t.called_back) +
    '</th><th class="n">' + esc(t.met) + '</th><th class="n">' + esc(t.missed) + '</th><th class="n">' +
    esc(t.open_past_target) + '</th><th class="n">' + esc(minutes(t.median_minutes_to_callback)) +
    '</th><th class="n">' + esc(minutes(t.p90_minutes_to_callback)) + "</th></tr>");
  document.querySelector("#totals tbody").innerHTML = rows.join("");
  document.querySelector("#weeks tbody").innerHTML = r.weeks.flatMap(w => w.severities.filter(s => s.tickets > 0).map(s =>
    "<tr><td>" + esc(w.week_start) + '</td><td class="sev-' + esc(s.severity) + '">' + esc(s.severity) + '</td><td class="n">' +
    esc(s.tickets) + '</td><td class="n">' + esc(s.met) + '</td><td class="n">' + esc(s.missed) + '</td><td class="n">' +
    esc(s.open_past_target) + '</td><td class="n">' + esc(s.pending) + "</td></tr>")).join("") ||
    '<tr><td colspan="7" class="muted">No tickets in this range.</td></tr>';
  const when = iso => iso ? fmtWhen(iso) : "not called back";
  document.querySelector("#misses tbody").innerHTML = r.severities.flatMap(s => s.misses.map(m =>
    '<tr><td><a href="/tickets/' + encodeURIComponent(m.number) + '">' + esc(m.number) + "</a></td><td>" + esc(s.severity) +
    "</td><td>" + esc(when(m.callback_due_at)) + "</td><td>" + esc(when(m.called_back_at)) + '</td><td class="n">' +
    esc(m.late_minutes) + "</td></tr>")).join("") || '<tr><td colspan="5" class="muted">No misses.</td></tr>';
}
async function load(from, to) {
  const st = document.getElementById("state");
  st.className = "muted";
  st.textContent = "Loading…";
  const q = from && to ? "?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to) : "";
  try {
    const r = await api("GET", "/api/sla/report" + q);
    document.getElementById("from").value = r.from;
    document.getElementById("to").value = r.to;
    render(r);
    st.textContent = r.from + " to " + r.to + " (" + r.timezone + "), as of " + fmtWhen(r.generated_at);
    history.replaceState(null, "", "/sla?from=" + encodeURIComponent(r.from) + "&to=" + encodeURIComponent(r.to));
  } catch (e) {
    st.className = "error";
    st.textContent = e.message;
  }
}
document.getElementById("range").addEventListener("submit", ev => {
  ev.preventDefault();
  load(document.getElementById("from").value, document.getElementById("to").value);
});
const params = new URLSearchParams(location.search);
load(params.get("from"), params.get("to"));
"##;

async fn page(State(state): State<AdminState>, _user: CurrentUser) -> Html<String> {
    let tz = zone(&state);
    let body = format!(
        "<p class=\"muted\">Callback targets per week (weeks start on Monday, days in {}); \
         cancelled tickets are left out, as in <code>astreinte sla report</code>.</p>{BODY}",
        escape(tz.name())
    );
    pages::page("SLA report", "/sla", &body, SCRIPT)
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/sla/report", get(report))
        .route("/sla", get(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn default_range_is_twelve_weeks_from_a_monday() {
        let q = RangeQuery {
            from: None,
            to: None,
        };
        let (from, to) = range(&q, d("2025-03-13")).unwrap_or_default();
        assert_eq!(to, d("2025-03-13"));
        assert_eq!(from.weekday(), chrono::Weekday::Mon);
        assert_eq!(from, d("2024-12-23"));
        let bad = RangeQuery {
            from: Some("2025-13-01".into()),
            to: None,
        };
        let e = range(&bad, d("2025-03-13")).err().map(|e| e.status);
        assert_eq!(e, Some(StatusCode::BAD_REQUEST));
        let reversed = RangeQuery {
            from: Some("2025-03-10".into()),
            to: Some("2025-03-01".into()),
        };
        assert!(range(&reversed, d("2025-03-13")).is_err());
    }

    #[test]
    fn start_of_day_is_local_midnight() {
        let tz: Tz = "America/Toronto".parse().unwrap_or(Tz::UTC);
        assert_eq!(
            start_of(d("2025-03-13"), tz).to_rfc3339(),
            "2025-03-13T04:00:00+00:00"
        );
    }
}
