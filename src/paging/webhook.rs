//! Webhook pages: signed JSON, or PagerDuty Events API v2 (which Opsgenie also accepts), so an
//! incident tool or an SMS gateway hears about a ticket the moment a person is paged, when it is
//! acknowledged and when it is resolved.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::facts::PageFacts;
use super::wording::{self, display_number, headline_with_company, local_time, one_line};
use super::ChannelError;
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::triage::Severity;

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// astreinte's own JSON, signed with `secret`.
    #[default]
    Json,
    /// PagerDuty Events API v2 (`trigger` / `acknowledge` / `resolve`).
    Pagerduty,
}

/// One `[[paging.webhooks]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `[a-z0-9_-]`, unique: how logs, metrics and people name this receiver.
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// HMAC-SHA256 key (format json).
    #[serde(default)]
    pub secret: Option<String>,
    /// PagerDuty integration key (format pagerduty).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Limit of one delivery, connection and answer included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    10
}

/// A secret shorter than this can be guessed offline from one signed request.
const MIN_SECRET_CHARS: usize = 16;

// Keys must not reach a log through `{:?}`.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("WebhookConfig")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("format", &self.format)
            .field("secret", &hidden(&self.secret))
            .field("routing_key", &hidden(&self.routing_key))
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl WebhookConfig {
    pub fn validate(&self, index: usize, issues: &mut Vec<ConfigIssue>) {
        let key = |k: &'static str| {
            vec![
                KeySeg::Key("paging"),
                KeySeg::Key("webhooks"),
                KeySeg::Index(index),
                KeySeg::Key(k),
            ]
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !id_ok {
            issues.push(ConfigIssue::new(
                key("id"),
                format!("\"{}\" is not a usable id", one_line(&self.id, 80)),
                "use 1 to 64 lower-case letters, digits, '_' or '-', e.g. \"ops\"",
            ));
        }
        match reqwest::Url::parse(&self.url) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => issues.push(ConfigIssue::new(
                key("url"),
                format!("the scheme \"{}\" is not HTTP", u.scheme()),
                "write an https:// (or http://) address",
            )),
            Ok(u) if u.host_str().is_none_or(str::is_empty) => issues.push(ConfigIssue::new(
                key("url"),
                format!("\"{}\" names no host", self.url),
                "write the receiver's full address, e.g. https://hooks.example.net/astreinte",
            )),
            Ok(_) => {}
            Err(e) => issues.push(ConfigIssue::new(
                key("url"),
                format!("\"{}\" is not a URL ({e})", self.url),
                "write the receiver's full address, e.g. https://hooks.example.net/astreinte",
            )),
        }
        let filled = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match self.format {
            WebhookFormat::Json => match self.secret.as_deref() {
                None => issues.push(ConfigIssue::new(
                    key("secret"),
                    "a json webhook needs a secret: receivers check the signature with it",
                    "set secret to a long random string (e.g. `openssl rand -hex 32`) shared \
                     with the receiver",
                )),
                Some(s) if s.chars().count() < MIN_SECRET_CHARS => issues.push(ConfigIssue::new(
                    key("secret"),
                    format!(
                        "a secret of {} characters is too easy to guess",
                        s.chars().count()
                    ),
                    format!(
                        "use at least {MIN_SECRET_CHARS} random characters (e.g. `openssl \
                             rand -hex 32`)"
                    ),
                )),
                Some(_) => {}
            },
            WebhookFormat::Pagerduty => {
                if !filled(&self.routing_key) {
                    issues.push(ConfigIssue::new(
                        key("routing_key"),
                        "a pagerduty webhook needs the integration's routing key",
                        "copy the Integration Key of the service's Events API v2 integration \
                         into routing_key",
                    ));
                }
            }
        }
        if !(1..=60).contains(&self.timeout_secs) {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("{} s is out of range", self.timeout_secs),
                "use between 1 and 60 seconds (10 is usual)",
            ));
        }
    }
}

/// What a webhook reports.
#[derive(Debug, Clone, Copy)]
pub enum WebhookEvent<'a> {
    /// A person is paged about a ticket.
    Page(&'a PageFacts),
    /// Someone took the ticket in charge; `by` names them (person id, or "cli").
    Acknowledged { facts: &'a PageFacts, by: &'a str },
    /// The ticket needs no more paging (the customer was called back, or it was closed).
    Resolved { facts: &'a PageFacts },
}

impl WebhookEvent<'_> {
    pub fn facts(&self) -> &PageFacts {
        match self {
            WebhookEvent::Page(f) => f,
            WebhookEvent::Acknowledged { facts, .. } | WebhookEvent::Resolved { facts } => facts,
        }
    }

    /// "page", "acknowledged" or "resolved".
    pub fn name(&self) -> &'static str {
        match self {
            WebhookEvent::Page(_) => "page",
            WebhookEvent::Acknowledged { .. } => "acknowledged",
            WebhookEvent::Resolved { .. } => "resolved",
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One short line, in the person's language, that an SMS gateway can send as is.
pub fn text(event: &WebhookEvent) -> String {
    match event {
        WebhookEvent::Page(facts) => wording::short_page(facts),
        WebhookEvent::Acknowledged { facts, by } => wording::short_acknowledged(facts, by),
        WebhookEvent::Resolved { facts } => wording::short_resolved(facts),
    }
}

fn ticket_json(facts: &PageFacts) -> Value {
    json!({
        "number": facts.ticket,
        "severity": facts.severity.as_str(),
        "status": facts.status,
        "company": facts.company,
        "account_code": facts.account_code,
        "caller": facts.caller,
        "callback_number": facts.callback_number,
        "created_at": rfc3339(facts.created_at),
        "callback_due_at": rfc3339(facts.callback_due_at),
        "answers": facts.answers,
        "classification_reasons": facts.classification_reasons,
        "voicemail_seconds": facts.voicemail_seconds,
        // 1 for a real ticket; a receiver must not wake anyone for a drill's unless it means to.
        "time_scale": facts.time_scale.factor(),
        "drill": facts.time_scale.is_drill(),
    })
}

fn person_json(facts: &PageFacts) -> Value {
    match &facts.person {
        Some(p) => json!({
            "id": p.id,
            "name": p.name,
            "phone": p.phone,
            "email": p.email,
            "language": p.language,
        }),
        None => Value::Null,
    }
}

fn pagerduty_severity(sev: Severity) -> &'static str {
    match sev {
        Severity::S1 => "critical",
        Severity::S2 => "error",
        Severity::S3 => "warning",
    }
}

/// The body `cfg` receives for `event` at `now`.
pub fn body(cfg: &WebhookConfig, event: &WebhookEvent, now: DateTime<Utc>) -> Value {
    let facts = event.facts();
    match cfg.format {
        WebhookFormat::Json => {
            let mut v = json!({
                "event": event.name(),
                "sent_at": rfc3339(now),
                "ticket": ticket_json(facts),
                "page": {
                    "level": facts.level,
                    "reason": facts.reason,
                    "person": person_json(facts),
                    "key": facts.page_key,
                    // Other tickets waiting for the same person that this page carries.
                    "carried": facts.also.iter().map(|w| json!({
                        "number": w.ticket,
                        "severity": w.severity.as_str(),
                        "callback_due_at": rfc3339(w.callback_due_at),
                        "ack_url": w.ack_url,
                        "key": w.page_key,
                    })).collect::<Vec<_>>(),
                },
                "ack_url": facts.ack_url,
                "console_url": facts.console_url,
                "text": text(event),
            });
            if let (WebhookEvent::Acknowledged { by, .. }, Some(obj)) = (event, v.as_object_mut()) {
                obj.insert("acknowledged_by".into(), json!(by));
            }
            v
        }
        WebhookFormat::Pagerduty => {
            let action = match event {
                WebhookEvent::Page(_) => "trigger",
                WebhookEvent::Acknowledged { .. } => "acknowledge",
                WebhookEvent::Resolved { .. } => "resolve",
            };
            let mut v = json!({
                "routing_key": cfg.routing_key.as_deref().unwrap_or_default(),
                "event_action": action,
                "dedup_key": facts.ticket,
            });
            // The API takes a payload (and links) only with a trigger.
            if let (WebhookEvent::Page(_), Some(obj)) = (event, v.as_object_mut()) {
                let lang = wording::lang_of(facts);
                let mut payload = json!({
                    // PagerDuty cuts summaries at 1024 characters; do it ourselves, cleanly.
                    "summary": one_line(&headline_with_company(facts, lang), 1024),
                    "source": "astreinte",
                    "severity": pagerduty_severity(facts.severity),
                    "timestamp": rfc3339(facts.created_at),
                    "custom_details": {
                        "ticket": facts.ticket,
                        "severity": facts.severity.as_str(),
                        "status": facts.status,
                        "company": facts.company,
                        "account_code": facts.account_code,
                        "caller": facts.caller,
                        "callback_number": display_number(&facts.callback_number),
                        "created_at": rfc3339(facts.created_at),
                        "callback_due_at": rfc3339(facts.callback_due_at),
                        "callback_due_local": local_time(facts.callback_due_at, facts.timezone, lang),
                        "level": facts.level,
                        "reason": facts.reason,
                        "person": person_json(facts),
                        "answers": facts.answers,
                        "classification_reasons": facts.classification_reasons,
                        "voicemail_seconds": facts.voicemail_seconds,
                    },
                });
                if let (Some(company), Some(p)) = (&facts.company, payload.as_object_mut()) {
                    p.insert("component".into(), json!(company));
                }
                obj.insert("payload".into(), payload);
                obj.insert("client".into(), json!("astreinte"));
                let mut links = Vec::new();
                if let Some(url) = &facts.ack_url {
                    links.push(json!({ "href": url, "text": "Acknowledge" }));
                }
                if let Some(url) = &facts.console_url {
                    links.push(json!({ "href": url, "text": "Open in the console" }));
                }
                if !links.is_empty() {
                    obj.insert("links".into(), json!(links));
                }
            }
            v
        }
    }
}

/// Hex HMAC-SHA256, keyed by `secret`, of `"{timestamp}.{body}"`.
///
/// Sent as `X-Astreinte-Timestamp: <timestamp>` (Unix seconds) and
/// `X-Astreinte-Signature: v1=<hex>`. A receiver verifies a delivery by computing the same HMAC
/// over the timestamp header, a '.', and the raw body bytes exactly as received (before any JSON
/// parsing), then comparing it with the header's hex in constant time (e.g. `hmac.compare_digest`
/// in Python, `crypto.timingSafeEqual` in Node). It rejects a timestamp more than about five
/// minutes from its own clock, so a captured request cannot be replayed later; the timestamp is
/// inside the signed text, so it cannot be changed either.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Longest part of a receiver's answer quoted in an error.
const ANSWER_BYTES: usize = 200;

/// Delivers webhook events: one HTTP client (connection reuse) for every receiver.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new() -> Result<Self, ChannelError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A receiver that moved must be reconfigured; following it would send a signed page
            // (and a PagerDuty key) wherever the redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("astreinte/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::Permanent(format!("HTTP client: {e}")))?;
        Ok(WebhookSender { client })
    }

    /// Posts `event` to `cfg`. 2xx is delivered; 408, 429, 5xx, a timeout or a connection that
    /// fails are Transient; any other answer (4xx, 3xx) is Permanent.
    pub async fn send(
        &self,
        cfg: &WebhookConfig,
        event: &WebhookEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), ChannelError> {
        let ticket = &event.facts().ticket;
        let result = self.post(cfg, event, now).await;
        match &result {
            Ok(()) => tracing::info!(ticket = %ticket, webhook = %cfg.id, event = event.name(),
                "webhook delivered"),
            Err(e) => tracing::warn!(ticket = %ticket, webhook = %cfg.id, event = event.name(),
                error = %e, "webhook not delivered"),
        }
        result
    }

    async fn post(
        &self,
        cfg: &WebhookConfig,
        event: &WebhookEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), ChannelError> {
        let id = &cfg.id;
        let bytes = serde_json::to_vec(&body(cfg, event, now))
            .map_err(|e| ChannelError::Permanent(format!("webhook {id}: body: {e}")))?;
        let timeout = Duration::from_secs(cfg.timeout_secs.clamp(1, 60));
        let mut request = self
            .client
            .post(&cfg.url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = cfg.secret.as_deref().filter(|s| !s.is_empty()) {
            let ts = now.timestamp();
            request = request
                .header("X-Astreinte-Timestamp", ts.to_string())
                .header(
                    "X-Astreinte-Signature",
                    format!("v1={}", signature(secret.as_bytes(), ts, &bytes)),
                );
        }
        // The URL may hold a token (many hooks put one in the path): errors never quote it.
        let response = request.body(bytes).send().await.map_err(|e| {
            if e.is_timeout() {
                ChannelError::Transient(format!(
                    "webhook {id}: no answer within {} s",
                    timeout.as_secs()
                ))
            } else if e.is_builder() {
                ChannelError::Permanent(format!("webhook {id}: bad request: {}", e.without_url()))
            } else {
                ChannelError::Transient(format!("webhook {id}: {}", e.without_url()))
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| one_line(&String::from_utf8_lossy(l.as_bytes()), ANSWER_BYTES))
                .unwrap_or_else(|| "nowhere".into());
            return Err(ChannelError::Permanent(format!(
                "webhook {id}: answered {status}, redirecting to {location}; redirects are not \
                 followed: set url to the final address"
            )));
        }
        let answer = first_bytes(response, ANSWER_BYTES).await;
        let message = format!("webhook {id}: answered {status}: {answer}");
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            Err(ChannelError::Transient(message))
        } else {
            Err(ChannelError::Permanent(message))
        }
    }
}

/// The start of an answer's body as one printable line (reading stops early: a big or endless
/// answer must not hold the worker).
async fn first_bytes(mut response: reqwest::Response, limit: usize) -> String {
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < limit {
            match response.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    buf.truncate(limit);
    one_line(&String::from_utf8_lossy(&buf), limit)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::paging::facts::{PageReason, PagedPerson};

    fn facts(lang: &str) -> PageFacts {
        let created = Utc
            .with_ymd_and_hms(2024, 7, 16, 6, 17, 0)
            .single()
            .unwrap_or_default();
        PageFacts {
            ticket_id: 0,
            ticket: "4821337".into(),
            severity: Severity::S2,
            status: "paged".into(),
            company: Some("Plomberie Tremblay".into()),
            account_code: Some("PT-042".into()),
            caller: "5145550100".into(),
            callback_number: "15145550100".into(),
            created_at: created,
            callback_due_at: created + chrono::Duration::minutes(60),
            timezone: chrono_tz::America::Toronto,
            level: 2,
            reason: PageReason::Repeat,
            person: Some(PagedPerson {
                id: "dir".into(),
                name: "Claire Roy".into(),
                language: lang.into(),
                phone: Some("+15145001004".into()),
                email: None,
            }),
            answers: BTreeMap::from([("service".to_string(), "fax".to_string())]),
            classification_reasons: vec!["menu: 2".into()],
            voicemail_path: None,
            voicemail_seconds: Some(12.5),
            ack_url: Some("https://a.example.net/ack/x".into()),
            console_url: Some("https://a.example.net/tickets/x".into()),
            time_scale: crate::schedule::TimeScale::REAL,
            page_key: None,
            also: Vec::new(),
        }
    }

    fn hook(format: WebhookFormat) -> WebhookConfig {
        WebhookConfig {
            id: "ops".into(),
            url: "https://hooks.example.net/astreinte".into(),
            format,
            secret: Some("0123456789abcdef0123".into()),
            routing_key: Some("R0UT1NGKEY".into()),
            timeout_secs: 10,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 7, 16, 6, 20, 5)
            .single()
            .unwrap_or_default()
    }

    fn issues_of(cfg: &WebhookConfig) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        cfg.validate(3, &mut issues);
        issues
            .into_iter()
            .map(|i| (i.key_path(), i.message))
            .collect()
    }

    #[test]
    fn signature_matches_a_vector_computed_with_openssl() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        assert_ne!(
            signature(b"secret", 1_700_000_001, br#"{"a":1}"#),
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn json_page_body_has_the_documented_shape() {
        let f = facts("fr");
        let v = body(&hook(WebhookFormat::Json), &WebhookEvent::Page(&f), now());
        assert_eq!(v["event"], "page");
        assert_eq!(v["sent_at"], "2024-07-16T06:20:05Z");
        let t = &v["ticket"];
        assert_eq!(t["number"], "4821337");
        assert_eq!(t["severity"], "S2");
        assert_eq!(t["status"], "paged");
        assert_eq!(t["company"], "Plomberie Tremblay");
        assert_eq!(t["account_code"], "PT-042");
        assert_eq!(t["caller"], "5145550100");
        assert_eq!(t["callback_number"], "15145550100");
        assert_eq!(t["created_at"], "2024-07-16T06:17:00Z");
        assert_eq!(t["callback_due_at"], "2024-07-16T07:17:00Z");
        assert_eq!(t["answers"]["service"], "fax");
        assert_eq!(t["classification_reasons"][0], "menu: 2");
        assert_eq!(t["voicemail_seconds"], 12.5);
        assert_eq!(
            (t["time_scale"].clone(), t["drill"].clone()),
            (json!(1), json!(false))
        );
        assert_eq!(v["page"]["key"], Value::Null);
        assert_eq!(v["page"]["level"], 2);
        assert_eq!(v["page"]["reason"], "repeat");
        assert_eq!(v["page"]["person"]["id"], "dir");
        assert_eq!(v["page"]["person"]["phone"], "+15145001004");
        assert_eq!(v["page"]["person"]["email"], Value::Null);
        assert_eq!(v["page"]["person"]["language"], "fr");
        assert_eq!(v["ack_url"], "https://a.example.net/ack/x");
        // 07:17 UTC in July is 03:17 EDT.
        assert_eq!(
            v["text"],
            "[S2] Billet 4821337, Plomberie Tremblay : rappeler le +1 514-555-0100 avant 03:17 (HAE)"
        );
        assert!(v.get("acknowledged_by").is_none());
    }

    #[test]
    fn json_ack_and_resolve_bodies_name_the_event() {
        let f = facts("en");
        let cfg = hook(WebhookFormat::Json);
        let ack = body(
            &cfg,
            &WebhookEvent::Acknowledged {
                facts: &f,
                by: "tech1",
            },
            now(),
        );
        assert_eq!(ack["event"], "acknowledged");
        assert_eq!(ack["acknowledged_by"], "tech1");
        assert_eq!(ack["text"], "[S2] Ticket 4821337 acknowledged by tech1");
        assert_eq!(ack["ticket"]["number"], "4821337");
        let res = body(&cfg, &WebhookEvent::Resolved { facts: &f }, now());
        assert_eq!(res["event"], "resolved");
        assert_eq!(res["text"], "[S2] Ticket 4821337 resolved");
    }

    #[test]
    fn sms_text_is_one_line_in_english_too_and_survives_hostile_values() {
        let mut f = facts("en");
        assert_eq!(
            text(&WebhookEvent::Page(&f)),
            "[S2] Ticket 4821337, Plomberie Tremblay: call +1 514-555-0100 back before 03:17 (EDT)"
        );
        f.company = Some("A\r\nB\u{202E}".into());
        f.callback_number = String::new();
        assert_eq!(
            text(&WebhookEvent::Page(&f)),
            "[S2] Ticket 4821337, A B: no callback number (the caller ID 5145550100 may not be \
             called back), before 03:17 (EDT)"
        );
        // What the caller keyed and their caller ID are information, never a number to call.
        f.caller = "+19005551234".into();
        f.answers
            .insert("callback_refused".into(), "19005551234".into());
        let line = text(&WebhookEvent::Page(&f));
        assert!(
            line.contains("caller ID +19005551234 may not be called back"),
            "{line}"
        );
        assert!(!line.contains("call +1"), "{line}");
        f.company = None;
        let by = "x\ny";
        let line = text(&WebhookEvent::Acknowledged { facts: &f, by });
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn pagerduty_trigger_follows_events_api_v2() {
        let f = facts("en");
        let v = body(
            &hook(WebhookFormat::Pagerduty),
            &WebhookEvent::Page(&f),
            now(),
        );
        assert_eq!(v["routing_key"], "R0UT1NGKEY");
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "4821337");
        let p = &v["payload"];
        assert_eq!(
            p["summary"],
            "[S2] Ticket 4821337 — call back before 03:17 (EDT) — Plomberie Tremblay"
        );
        assert_eq!(p["source"], "astreinte");
        assert_eq!(p["severity"], "error");
        assert_eq!(p["timestamp"], "2024-07-16T06:17:00Z");
        assert_eq!(p["component"], "Plomberie Tremblay");
        assert_eq!(p["custom_details"]["callback_number"], "+1 514-555-0100");
        assert_eq!(p["custom_details"]["level"], 2);
        assert_eq!(
            v["links"],
            json!([
                {"href": "https://a.example.net/ack/x", "text": "Acknowledge"},
                {"href": "https://a.example.net/tickets/x", "text": "Open in the console"}
            ])
        );
    }

    #[test]
    fn pagerduty_severities_map_from_s1_s2_s3() {
        let mut f = facts("en");
        let cfg = hook(WebhookFormat::Pagerduty);
        for (sev, pd) in [
            (Severity::S1, "critical"),
            (Severity::S2, "error"),
            (Severity::S3, "warning"),
        ] {
            f.severity = sev;
            let v = body(&cfg, &WebhookEvent::Page(&f), now());
            assert_eq!(v["payload"]["severity"], pd);
        }
    }

    #[test]
    fn pagerduty_acknowledge_and_resolve_carry_no_payload() {
        let f = facts("en");
        let cfg = hook(WebhookFormat::Pagerduty);
        let ack = body(
            &cfg,
            &WebhookEvent::Acknowledged {
                facts: &f,
                by: "tech1",
            },
            now(),
        );
        assert_eq!(
            ack,
            json!({"routing_key": "R0UT1NGKEY", "event_action": "acknowledge", "dedup_key": "4821337"})
        );
        let res = body(&cfg, &WebhookEvent::Resolved { facts: &f }, now());
        assert_eq!(
            res,
            json!({"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": "4821337"})
        );
    }

    #[test]
    fn pagerduty_trigger_without_link_or_company_omits_them() {
        let mut f = facts("en");
        f.ack_url = None;
        f.console_url = None;
        f.company = None;
        let v = body(
            &hook(WebhookFormat::Pagerduty),
            &WebhookEvent::Page(&f),
            now(),
        );
        assert!(v.get("links").is_none(), "{v}");
        assert!(v["payload"].get("component").is_none(), "{v}");
    }

    #[test]
    fn good_entries_have_no_issue() {
        assert_eq!(issues_of(&hook(WebhookFormat::Json)), vec![]);
        let pd = WebhookConfig {
            secret: None,
            url: "https://events.pagerduty.com/v2/enqueue".into(),
            ..hook(WebhookFormat::Pagerduty)
        };
        assert_eq!(issues_of(&pd), vec![]);
    }

    #[test]
    fn bad_entries_are_reported_at_their_key() {
        let json = || hook(WebhookFormat::Json);
        let cases: Vec<(WebhookConfig, &str, &str)> = vec![
            (
                WebhookConfig {
                    id: "Ops!".into(),
                    ..json()
                },
                "paging.webhooks[3].id",
                "\"Ops!\" is not a usable id",
            ),
            (
                WebhookConfig {
                    id: String::new(),
                    ..json()
                },
                "paging.webhooks[3].id",
                "not a usable id",
            ),
            (
                WebhookConfig {
                    url: "ftp://x.example.net/".into(),
                    ..json()
                },
                "paging.webhooks[3].url",
                "scheme \"ftp\"",
            ),
            (
                WebhookConfig {
                    url: "hooks.example.net/a".into(),
                    ..json()
                },
                "paging.webhooks[3].url",
                "not a URL",
            ),
            (
                WebhookConfig {
                    secret: None,
                    ..json()
                },
                "paging.webhooks[3].secret",
                "needs a secret",
            ),
            (
                WebhookConfig {
                    secret: Some("short".into()),
                    ..json()
                },
                "paging.webhooks[3].secret",
                "5 characters",
            ),
            (
                WebhookConfig {
                    routing_key: Some(" ".into()),
                    ..hook(WebhookFormat::Pagerduty)
                },
                "paging.webhooks[3].routing_key",
                "routing key",
            ),
            (
                WebhookConfig {
                    timeout_secs: 0,
                    ..json()
                },
                "paging.webhooks[3].timeout_secs",
                "0 s",
            ),
            (
                WebhookConfig {
                    timeout_secs: 61,
                    ..json()
                },
                "paging.webhooks[3].timeout_secs",
                "61 s",
            ),
        ];
        for (cfg, path, words) in cases {
            let issues = issues_of(&cfg);
            assert_eq!(issues.len(), 1, "{cfg:?}: {issues:?}");
            assert_eq!(issues[0].0, path, "{cfg:?}");
            assert!(issues[0].1.contains(words), "{cfg:?}: {}", issues[0].1);
        }
    }

    #[test]
    fn format_parses_from_toml_words_and_defaults_to_json() {
        #[derive(Deserialize)]
        struct W {
            webhooks: Vec<WebhookConfig>,
        }
        let parsed: Result<W, _> = toml::from_str(
            "[[webhooks]]\nid = \"a\"\nurl = \"https://x\"\nsecret = \"s\"\n\
             [[webhooks]]\nid = \"b\"\nurl = \"https://y\"\nformat = \"pagerduty\"\nrouting_key = \"k\"\n",
        );
        let w = parsed.map_err(|e| e.to_string());
        let formats: Result<Vec<_>, _> = w.map(|w| {
            w.webhooks
                .iter()
                .map(|h| (h.format, h.timeout_secs))
                .collect()
        });
        assert_eq!(
            formats,
            Ok(vec![
                (WebhookFormat::Json, 10),
                (WebhookFormat::Pagerduty, 10)
            ])
        );
    }

    #[test]
    fn debug_output_hides_keys() {
        let d = format!("{:?}", hook(WebhookFormat::Json));
        assert!(
            !d.contains("0123456789abcdef") && !d.contains("R0UT1NGKEY"),
            "{d}"
        );
    }
}
