//! What the drill learns from the engine after (or during) a night: each ticket's history from
//! the console's API (`GET /api/tickets`, `GET /api/tickets/{number}`, with an API token from
//! `astreinte users token NAME`), joined with what the drill's own sinks received, into the
//! report's [`TicketTrace`]s.
//!
//! Written pages (e-mail, webhook) are counted where they arrived, one [`PageTrace`] per copy
//! received, so a page sent twice shows as a duplicate; the engine's page jobs add the ones
//! that never arrived (failed) and every phone page (answered, not answered, busy).

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::sinks::Receipt;
use astreinte_core::drill::report::{Ack, PageResult, PageTrace, TicketTrace};
use astreinte_core::triage::Severity;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("the console at {url} did not answer: {why}")]
    Unreachable { url: String, why: String },
    #[error("the console at {url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the console at {url} sent what the drill cannot read: {why}")]
    Unreadable { url: String, why: String },
}

/// The console's API, as the drill reads it.
#[derive(Debug, Clone)]
pub struct Console {
    base: String,
    token: String,
    client: reqwest::Client,
}

/// A ticket as `GET /api/tickets/{number}` gives it (only what the report needs).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiTicket {
    pub number: String,
    pub severity: String,
    pub caller: String,
    pub created_at: DateTime<Utc>,
    pub callback_due_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub called_back_at: Option<DateTime<Utc>>,
    #[serde(default = "one")]
    pub time_scale: u32,
    #[serde(default)]
    pub events: Vec<ApiEvent>,
    #[serde(default)]
    pub page_jobs: Vec<ApiPageJob>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiPageJob {
    pub channel: String,
    pub target: String,
    /// "pending", "leased", "done", "failed", "cancelled".
    pub state: String,
    pub person: Option<String>,
    pub level: i64,
    pub dedup_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// The job whose page carried this one (pages to one person grouped).
    #[serde(default)]
    pub group_of: Option<i64>,
}

impl Console {
    /// `base` is the console's root URL (e.g. "http://127.0.0.1:8080").
    pub fn new(base: &str, token: &str) -> Result<Console, ObserveError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ObserveError::Unreachable {
                url: base.to_string(),
                why: e.to_string(),
            })?;
        Ok(Console {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client,
        })
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value, ObserveError> {
        let url = format!("{}{path}", self.base);
        let r = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ObserveError::Unreachable {
                url: url.clone(),
                why: e.to_string(),
            })?;
        let status = r.status();
        let body = r.text().await.map_err(|e| ObserveError::Unreachable {
            url: url.clone(),
            why: e.to_string(),
        })?;
        if !status.is_success() {
            return Err(ObserveError::Refused {
                url,
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|e| ObserveError::Unreadable {
            url,
            why: e.to_string(),
        })
    }

    /// Checks, before a night is played, that the console answers and takes the token;
    /// returns the token's role ("admin" may post the report).
    pub async fn preflight(&self) -> Result<String, ObserveError> {
        let me = self.get("/api/me").await?;
        Ok(me
            .get("role")
            .and_then(|r| r.as_str())
            .unwrap_or("")
            .to_string())
    }

    /// Posts `report` for the console's Drill page (the token's user must be an admin).
    pub async fn post_report(
        &self,
        report: &astreinte_core::drill::NightReport,
    ) -> Result<(), ObserveError> {
        let url = format!("{}/api/drill/report", self.base);
        let r = self
            .client
            .post(&url)
            .bearer_auth(&self.token)
            .json(report)
            .send()
            .await
            .map_err(|e| ObserveError::Unreachable {
                url: url.clone(),
                why: e.to_string(),
            })?;
        let status = r.status();
        if status.is_success() {
            return Ok(());
        }
        let body = r.text().await.unwrap_or_default();
        Err(ObserveError::Refused {
            url,
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
        })
    }

    /// Every ticket opened at or after `since` (up to the API's 1,000), with its history.
    pub async fn tickets_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ApiTicket>, ObserveError> {
        let list = self.get("/api/tickets?limit=1000").await?;
        let numbers: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t.get("created_at")
                    .and_then(|c| c.as_str())
                    .and_then(|c| c.parse::<DateTime<Utc>>().ok())
                    .is_some_and(|c| c >= since)
            })
            .filter_map(|t| t.get("number")?.as_str().map(str::to_string))
            .collect();
        let mut out = Vec::with_capacity(numbers.len());
        for n in numbers {
            let path = format!("/api/tickets/{n}");
            let v = self.get(&path).await?;
            let t = serde_json::from_value(v).map_err(|e| ObserveError::Unreadable {
                url: format!("{}{path}", self.base),
                why: e.to_string(),
            })?;
            out.push(t);
        }
        Ok(out)
    }
}

/// The report's view of `t`: written pages from what the sinks received (each copy), the
/// rest from the engine's page jobs. `None` for a ticket whose severity is not S1/S2/S3.
pub fn trace_of(t: &ApiTicket, receipts: &[Receipt]) -> Option<TicketTrace> {
    let severity: Severity = t.severity.parse().ok()?;
    let received = |channel: &str| receipts.iter().any(|r| r.channel == channel);
    let mut pages: Vec<PageTrace> = receipts
        .iter()
        .filter(|r| r.ticket.as_deref() == Some(t.number.as_str()))
        .filter_map(|r| {
            let key = KeyParts::of(r.page_key.as_deref()?)?;
            Some(PageTrace {
                at: r.at,
                channel: r.channel.to_string(),
                level: key.level,
                round: key.round,
                person: key.person.to_string(),
                result: PageResult::Delivered,
                phase: key.phase.to_string(),
                carried: r.carried,
            })
        })
        .collect();
    for job in &t.page_jobs {
        let kind = job.channel.split(':').next().unwrap_or("");
        let key = job.dedup_key.as_deref().and_then(KeyParts::of);
        let result = match (job.state.as_str(), kind) {
            ("done", "phone") => PageResult::Answered,
            // Arrived where the drill listens: counted from the receipts above.
            ("done", "email" | "webhook") if received(kind) => continue,
            ("done", _) => PageResult::Delivered,
            ("failed", "phone") => phone_failure(job.last_error.as_deref().unwrap_or("")),
            ("failed", _) => PageResult::Failed(job.last_error.clone().unwrap_or_default()),
            // Not sent (yet, or ever: the ticket no longer needed it).
            _ => continue,
        };
        pages.push(PageTrace {
            at: job.sent_at.unwrap_or(job.run_at),
            channel: kind.to_string(),
            level: u32::try_from(job.level).unwrap_or(0),
            round: key.as_ref().map_or(0, |k| k.round),
            person: job.person.clone().unwrap_or_else(|| job.target.clone()),
            result,
            phase: key.map_or_else(|| "climb".to_string(), |k| k.phase.to_string()),
            carried: job.group_of.is_some(),
        });
    }
    pages.sort_by_key(|p| p.at);
    let acknowledged = t.acknowledged_at.map(|at| Ack {
        at,
        by: t
            .events
            .iter()
            .rev()
            .find(|e| e.kind == "acknowledged")
            .map_or_else(|| "?".to_string(), |e| e.actor.clone()),
    });
    let voicemail_end = t
        .events
        .iter()
        .find(|e| e.kind == "created")
        .map_or(t.created_at, |e| e.at);
    Some(TicketTrace {
        number: t.number.clone(),
        severity,
        caller: t.caller.clone(),
        voicemail_end,
        callback_due: t.callback_due_at,
        pages,
        acknowledged,
        callback_connected: t.called_back_at,
    })
}

/// A failed phone page's result from the worker's error text.
fn phone_failure(error: &str) -> PageResult {
    let e = error.to_ascii_lowercase();
    if e.contains("busy") || e.contains("486") {
        PageResult::Busy
    } else if e.contains("not answered") || e.contains("no answer") || e.contains("487") {
        PageResult::NotAnswered
    } else {
        PageResult::Failed(error.to_string())
    }
}

/// A page key's parts: `ticket:phase:level:round:person:channel[:instance]`.
struct KeyParts<'a> {
    phase: &'a str,
    level: u32,
    round: u32,
    person: &'a str,
}

impl<'a> KeyParts<'a> {
    fn of(key: &'a str) -> Option<KeyParts<'a>> {
        let mut p = key.split(':');
        let _ticket = p.next()?;
        Some(KeyParts {
            phase: p.next()?,
            level: p.next()?.parse().ok()?,
            round: p.next()?.parse().ok()?,
            person: p.next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 12, 8, 3, 0, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::seconds(i64::from(s))
    }

    fn ticket() -> ApiTicket {
        serde_json::from_value(serde_json::json!({
            "number": "48213370", "severity": "S1", "caller": "15145550100",
            "created_at": at(0), "callback_due_at": at(30),
            "acknowledged_at": at(12), "called_back_at": null, "time_scale": 60,
            "events": [
                {"at": at(2), "kind": "created", "actor": "ivr"},
                {"at": at(12), "kind": "acknowledged", "actor": "tech1 (phone)"}
            ],
            "page_jobs": [
                {"channel": "phone", "target": "sip:t1@x", "state": "done", "person": "tech1",
                 "level": 1, "dedup_key": "48213370:climb:1:0:tech1:phone", "run_at": at(2),
                 "sent_at": at(10), "last_error": null},
                {"channel": "phone", "target": "sip:t2@x", "state": "failed", "person": "tech2",
                 "level": 2, "dedup_key": "48213370:climb:2:0:tech2:phone", "run_at": at(12),
                 "sent_at": null, "last_error": "the call ended: 486 Busy Here"},
                {"channel": "email", "target": "t1@x", "state": "done", "person": "tech1",
                 "level": 1, "dedup_key": "48213370:climb:1:0:tech1:email", "run_at": at(2),
                 "sent_at": at(3), "last_error": null},
                {"channel": "email", "target": "t2@x", "state": "failed", "person": "tech2",
                 "level": 2, "dedup_key": "48213370:climb:2:0:tech2:email", "run_at": at(12),
                 "sent_at": null, "last_error": "connection refused"},
                {"channel": "webhook:ops", "target": "ops", "state": "cancelled", "person": null,
                 "level": 2, "dedup_key": null, "run_at": at(12), "sent_at": null, "last_error": null}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn receipt(key: &str, s: u32) -> Receipt {
        let mut parts = key.split(':');
        Receipt {
            at: at(s),
            channel: "email",
            page_key: Some(key.into()),
            ticket: parts.next().map(str::to_string),
            person: parts.nth(3).map(str::to_string),
            headline: String::new(),
            carried: false,
        }
    }

    #[test]
    fn written_pages_come_from_the_sink_each_copy_once_and_the_rest_from_the_jobs() {
        let key = "48213370:climb:1:0:tech1:email";
        let tr = trace_of(&ticket(), &[receipt(key, 3), receipt(key, 4)])
            .unwrap_or_else(|| panic!("a trace"));
        let summary: Vec<(String, String, String)> = tr
            .pages
            .iter()
            .map(|p| {
                (
                    p.channel.clone(),
                    p.person.clone(),
                    format!("{:?}", p.result),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("email".into(), "tech1".into(), "Delivered".into()),
                ("email".into(), "tech1".into(), "Delivered".into()),
                ("phone".into(), "tech1".into(), "Answered".into()),
                ("phone".into(), "tech2".into(), "Busy".into()),
                (
                    "email".into(),
                    "tech2".into(),
                    "Failed(\"connection refused\")".into()
                ),
            ]
        );
        assert_eq!(tr.voicemail_end, at(2));
        assert_eq!(
            tr.acknowledged.map(|a| a.by),
            Some("tech1 (phone)".to_string())
        );
        assert_eq!(tr.callback_connected, None);
    }

    #[test]
    fn without_a_mail_sink_the_engines_delivered_jobs_count() {
        let tr = trace_of(&ticket(), &[]).unwrap_or_else(|| panic!("a trace"));
        assert_eq!(
            tr.pages
                .iter()
                .filter(|p| p.channel == "email" && p.result == PageResult::Delivered)
                .count(),
            1
        );
    }

    #[test]
    fn phone_failures_read_as_busy_not_answered_or_failed() {
        assert_eq!(phone_failure("486 Busy Here"), PageResult::Busy);
        assert_eq!(
            phone_failure("not answered within 30 s"),
            PageResult::NotAnswered
        );
        assert!(matches!(phone_failure("no route"), PageResult::Failed(_)));
    }
}
