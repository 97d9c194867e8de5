//! E-mail pages over SMTP (lettre): a subject a person reads on a lock screen (severity, tracking
//! number, due time), a plain-text body with the ticket's facts, the acknowledgement link and the
//! voicemail WAV attached.
//!
//! Everything a caller could have influenced (company, caller ID, IVR answers) is folded to one
//! line before it is written, so it can neither add a header nor fake a line of the body (a
//! second "acknowledge" link, say).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::facts::PageFacts;
use super::wording;
pub use super::wording::{
    display_number, headline, local_date_time, local_time, one_line, safe_ticket, Lang,
};
use super::wording::{reason_words, severity_words};
use super::ChannelError;
use crate::config_issue::{ConfigIssue, KeySeg};
use crate::store::{Store, VoicemailWav};

/// `[paging.smtp]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host[:25]` (plain), `smtps://host[:465]` (implicit TLS) or
    /// `submission://host[:587]` (STARTTLS required).
    pub url: String,
    /// `astreinte@example.net` or `Astreinte <astreinte@example.net>`.
    pub from: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Limit of each SMTP step (connect, each command).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// A voicemail bigger than this many MiB is not attached; the body says so.
    #[serde(default = "default_max_attachment_mb")]
    pub max_attachment_mb: u32,
}

fn default_timeout_secs() -> u64 {
    20
}
fn default_max_attachment_mb() -> u32 {
    10
}

// The password must not reach a log through `{:?}`.
impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &self.url)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout_secs", &self.timeout_secs)
            .field("max_attachment_mb", &self.max_attachment_mb)
            .finish()
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: clear text.
    Plain,
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `submission://`: STARTTLS, refused if the server does not offer it.
    StartTls,
}

/// Where the SMTP server is, from `paging.smtp.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    pub security: SmtpSecurity,
    /// Host name or IP address (without brackets).
    pub host: String,
    pub port: u16,
}

impl SmtpEndpoint {
    /// Parses `scheme://host[:port]`; the error says what is wrong, for a person.
    pub fn parse(url: &str) -> Result<SmtpEndpoint, String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
        let (security, default_port) = match parsed.scheme() {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtps" => (SmtpSecurity::Implicit, 465),
            "submission" => (SmtpSecurity::StartTls, 587),
            other => {
                return Err(format!(
                    "the scheme \"{other}\" is not one astreinte speaks"
                ))
            }
        };
        // IPv6 hosts come bracketed ("[::1]"); lettre wants the bare address.
        let host = parsed
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("\"{url}\" names no host"))?
            .to_string();
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("the URL carries credentials, which would end up in logs".into());
        }
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(format!(
                "\"{url}\" has a path or query; only scheme://host:port is read"
            ));
        }
        let port = parsed.port().unwrap_or(default_port);
        if port == 0 {
            return Err("port 0 is not a port a server listens on".into());
        }
        Ok(SmtpEndpoint {
            security,
            host,
            port,
        })
    }

    /// A server on this machine: the one place clear-text AUTH is acceptable.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl SmtpConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        let key =
            |k: &'static str| vec![KeySeg::Key("paging"), KeySeg::Key("smtp"), KeySeg::Key(k)];
        let endpoint = match SmtpEndpoint::parse(&self.url) {
            Ok(e) => Some(e),
            Err(why) => {
                issues.push(ConfigIssue::new(
                    key("url"),
                    why,
                    "write smtp://host:25 (plain), smtps://host:465 (TLS) or \
                     submission://host:587 (STARTTLS)",
                ));
                None
            }
        };
        if let Err(e) = self.from.parse::<Mailbox>() {
            issues.push(ConfigIssue::new(
                key("from"),
                format!("\"{}\" is not an e-mail address ({e})", self.from),
                "write an address such as astreinte@example.net or \
                 \"Astreinte <astreinte@example.net>\"",
            ));
        }
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match (has(&self.username), has(&self.password)) {
            (true, false) => issues.push(ConfigIssue::new(
                key("password"),
                "a username is set without a password",
                "set password too, or remove username to send without AUTH",
            )),
            (false, true) => issues.push(ConfigIssue::new(
                key("username"),
                "a password is set without a username",
                "set username too, or remove password to send without AUTH",
            )),
            (true, true) => {
                if let Some(ep) = &endpoint {
                    if ep.security == SmtpSecurity::Plain && !ep.is_loopback() {
                        issues.push(ConfigIssue::new(
                            key("url"),
                            format!(
                                "AUTH over smtp:// to {} would send the password in clear text",
                                ep.host
                            ),
                            "use submission://host:587 (STARTTLS) or smtps://host:465 (TLS), \
                             or remove username and password",
                        ));
                    }
                }
            }
            (false, false) => {
                if self.username.is_some() || self.password.is_some() {
                    issues.push(ConfigIssue::new(
                        key("username"),
                        "username and password are empty",
                        "fill both in, or remove both to send without AUTH",
                    ));
                }
            }
        }
        if !(1..=120).contains(&self.timeout_secs) {
            issues.push(ConfigIssue::new(
                key("timeout_secs"),
                format!("{} s is out of range", self.timeout_secs),
                "use between 1 and 120 seconds (20 is usual)",
            ));
        }
        if self.max_attachment_mb > MAX_ATTACHMENT_MB {
            issues.push(ConfigIssue::new(
                key("max_attachment_mb"),
                format!(
                    "{} MB is more than most mail servers accept (attachments grow by a third \
                     in transit)",
                    self.max_attachment_mb
                ),
                format!("use at most {MAX_ATTACHMENT_MB} (10 is the default; 0 never attaches)"),
            ));
        }
    }
}

/// Larger attachments (a third more once base64-encoded) are refused by most servers.
const MAX_ATTACHMENT_MB: u32 = 25;

// ---------------------------------------------------------------------------------------------
// Rendering.

/// Longest value from outside written in a body line.
const VALUE_CHARS: usize = 300;

/// What happened to the voicemail recording, which the body reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recording {
    /// The ticket has no voicemail.
    None,
    /// Attached under this file name.
    Attached { filename: String },
    /// Neither in the store nor readable from this node's disk.
    Unavailable,
    /// Larger than `[paging.smtp] max_attachment_mb`.
    TooLarge { bytes: u64, limit_mb: u32 },
}

/// Subject and plain-text body of an e-mail page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    pub subject: String,
    pub body: String,
}

/// The file name of a ticket's recording: `ticket-<number>.wav`.
pub fn attachment_name(ticket: &str) -> String {
    format!("ticket-{}.wav", safe_ticket(ticket))
}

/// The e-mail for `facts`, in the person's language; `recording` says what became of the
/// voicemail (see [`Mailer::send_page`]).
pub fn render(facts: &PageFacts, recording: &Recording) -> RenderedMail {
    let lang = wording::lang_of(facts);
    // The headline holds only our own values, but fold it anyway: a subject is a header.
    let subject = one_line(&headline(facts, lang), 200);
    let tz = facts.timezone;
    let ext = |v: &str| one_line(v, VALUE_CHARS);
    let fr = lang == Lang::Fr;
    let t = |fr_text: &'static str, en_text: &'static str| if fr { fr_text } else { en_text };
    let mut b = String::new();
    let mut line = |s: String| {
        b.push_str(&s);
        b.push('\n');
    };

    line(format!(
        "{} {} — {} {}",
        t("Incident", "Incident"),
        severity_words(facts.severity, lang),
        t("billet", "ticket"),
        safe_ticket(&facts.ticket)
    ));
    line(format!(
        "{} {}",
        t(
            "Rappeler le client avant :",
            "Call the customer back before:"
        ),
        local_date_time(facts.callback_due_at, tz, lang)
    ));
    line(String::new());

    let company = match (&facts.company, &facts.account_code) {
        (Some(c), Some(a)) => format!("{} ({} {})", ext(c), t("compte", "account"), ext(a)),
        (Some(c), None) => ext(c),
        (None, Some(a)) => format!("{} {}", t("compte", "account"), ext(a)),
        (None, None) => t("inconnue", "unknown").to_string(),
    };
    line(format!("{} {company}", t("Entreprise :", "Company:")));
    let caller = if facts.caller.trim().is_empty() {
        t("inconnu", "unknown").to_string()
    } else {
        ext(&facts.caller)
    };
    line(format!("{} {caller}", t("Appelant :", "Caller:")));
    let callback = match facts.no_callback() {
        Some(none) => format!(
            "{} ({})",
            t("aucun", "none"),
            ext(&if fr { none.fr() } else { none.en() })
        ),
        None => display_number(&facts.callback_number),
    };
    line(format!(
        "{} {callback}",
        t("Numéro de rappel :", "Callback number:")
    ));
    line(format!(
        "{} {}",
        t("Créé :", "Created:"),
        local_date_time(facts.created_at, tz, lang)
    ));
    line(format!(
        "{} {} ({})",
        t("Échéance :", "Due:"),
        local_date_time(facts.callback_due_at, tz, lang),
        tz.name()
    ));
    line(format!(
        "{} {}",
        t("Statut :", "Status:"),
        ext(&facts.status)
    ));
    line(format!(
        "{} {} — {}",
        t("Niveau :", "Level:"),
        facts.level,
        reason_words(facts.reason, lang)
    ));

    if !facts.answers.is_empty() {
        line(String::new());
        line(t("Réponses au serveur vocal :", "IVR answers:").to_string());
        for (question, answer) in &facts.answers {
            line(format!("- {} : {}", ext(question), ext(answer)));
        }
    }
    if !facts.classification_reasons.is_empty() {
        line(String::new());
        line(t("Raisons du classement :", "Why this severity:").to_string());
        for reason in &facts.classification_reasons {
            line(format!("- {}", ext(reason)));
        }
    }

    line(String::new());
    let length = facts
        .voicemail_seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| format!("{s:.0} s"));
    let voicemail = match (recording, length) {
        (Recording::None, _) => t("aucun", "none").to_string(),
        (Recording::Attached { filename }, Some(len)) => {
            format!("{len}, {} {filename}", t("joint :", "attached:"))
        }
        (Recording::Attached { filename }, None) => {
            format!("{} {filename}", t("joint :", "attached:"))
        }
        (Recording::Unavailable, len) => format!(
            "{}{}",
            len.map(|l| format!("{l}, ")).unwrap_or_default(),
            t(
                "enregistrement non disponible (ni dans la base ni lisible sur ce serveur)",
                "recording unavailable (neither in the store nor readable on this server)"
            )
        ),
        (Recording::TooLarge { bytes, limit_mb }, len) => format!(
            "{}{} ({:.1} MB > {limit_mb} MB)",
            len.map(|l| format!("{l}, ")).unwrap_or_default(),
            t(
                "enregistrement trop volumineux pour être joint",
                "recording too large to attach"
            ),
            *bytes as f64 / MIB as f64
        ),
    };
    line(format!(
        "{} {voicemail}",
        t("Message vocal :", "Voicemail:")
    ));

    if let Some(url) = &facts.console_url {
        line(format!(
            "{}\n{}",
            t("Le billet dans la console :", "The ticket in the console:"),
            one_line(url, 2000)
        ));
    }
    line(String::new());
    match &facts.ack_url {
        Some(url) => line(format!(
            "{}\n{}",
            t(
                "Prendre le billet en charge (arrête l'escalade) :",
                "Acknowledge the ticket (stops the escalation):"
            ),
            one_line(url, 2000)
        )),
        None => line(format!(
            "{} astreinte tickets ack {}",
            t(
                "Prendre le billet en charge (arrête l'escalade) :",
                "Acknowledge the ticket (stops the escalation):"
            ),
            safe_ticket(&facts.ticket)
        )),
    }
    if !facts.also.is_empty() {
        line(String::new());
        line(format!(
            "{} : {}",
            t(
                "Autres billets qui vous attendent",
                "Other tickets waiting for you"
            ),
            facts.also.len()
        ));
        for w in facts.also.iter().take(MAX_LISTED) {
            line(format!(
                "- {} {} {} — {} {}",
                severity_words(w.severity, lang),
                t("billet", "ticket"),
                safe_ticket(&w.ticket),
                t("rappeler avant", "call back before"),
                local_date_time(w.callback_due_at, tz, lang)
            ));
            if let Some(url) = &w.ack_url {
                line(format!("  {}", one_line(url, 2000)));
            }
        }
        if facts.also.len() > MAX_LISTED {
            line(format!(
                "… {} {}",
                facts.also.len() - MAX_LISTED,
                t("de plus, dans la console", "more, in the console")
            ));
        }
    }
    let subject = if facts.also.is_empty() {
        subject
    } else {
        one_line(
            &format!(
                "{subject} (+{} {})",
                facts.also.len(),
                if fr { "autres" } else { "more" }
            ),
            200,
        )
    };
    RenderedMail { subject, body: b }
}

/// Tickets a grouped page lists one by one (the rest are counted).
const MAX_LISTED: usize = 50;

const MIB: u64 = 1024 * 1024;

/// Reads the voicemail for attachment, from the store (so any node attaches it), else from the
/// file it was recorded to; a missing or oversized recording is reported, not an error.
async fn load_recording(
    store: &Store,
    facts: &PageFacts,
    limit_mb: u32,
) -> (Recording, Option<Vec<u8>>) {
    let path = facts
        .voicemail_path
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let limit = u64::from(limit_mb) * MIB;
    match store
        .voicemail_wav(&facts.ticket, facts.ticket_id, path.as_deref(), limit)
        .await
    {
        VoicemailWav::NoVoicemail => (Recording::None, None),
        VoicemailWav::Found { wav, .. } => (
            Recording::Attached {
                filename: attachment_name(&facts.ticket),
            },
            Some(wav),
        ),
        VoicemailWav::TooLarge { bytes } => (Recording::TooLarge { bytes, limit_mb }, None),
        VoicemailWav::Gone => {
            tracing::warn!(ticket = %facts.ticket, path = path.as_deref().unwrap_or_default(),
                "voicemail not attached: neither in the store nor on this node's disk");
            (Recording::Unavailable, None)
        }
        VoicemailWav::Unreadable { why } => {
            tracing::warn!(ticket = %facts.ticket, error = %why, "voicemail not attached: unreadable");
            (Recording::Unavailable, None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// Sends e-mail pages through one SMTP server (a connection per page: pages are rare).
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_attachment_mb: u32,
    /// Bound on a whole send, in case a step escapes lettre's per-command timeout.
    overall: Duration,
    server: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `[paging.smtp]`. Fails (Permanent) on what `validate` reports.
    pub fn new(cfg: &SmtpConfig) -> Result<Mailer, ChannelError> {
        let ep = SmtpEndpoint::parse(&cfg.url)
            .map_err(|why| ChannelError::Permanent(format!("paging.smtp.url: {why}")))?;
        let from: Mailbox = cfg.from.parse().map_err(|e| {
            ChannelError::Permanent(format!("paging.smtp.from \"{}\": {e}", cfg.from))
        })?;
        let step = Duration::from_secs(cfg.timeout_secs.clamp(1, 120));
        let tls = |host: &str| {
            TlsParameters::new(host.to_string())
                .map_err(|e| ChannelError::Permanent(format!("TLS settings for {host}: {e}")))
        };
        let security = match ep.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::Implicit => Tls::Wrapper(tls(&ep.host)?),
            SmtpSecurity::StartTls => Tls::Required(tls(&ep.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&ep.host)
            .port(ep.port)
            .timeout(Some(step))
            .tls(security);
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(pass)) if !user.is_empty() => {
                if ep.security == SmtpSecurity::Plain && !ep.is_loopback() {
                    return Err(ChannelError::Permanent(format!(
                        "refusing to send the SMTP password in clear text to {}: use \
                         submission:// or smtps://",
                        ep.host
                    )));
                }
                builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
            }
            _ => {}
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            max_attachment_mb: cfg.max_attachment_mb,
            overall: step * 6,
            server: format!("{}:{}", ep.host, ep.port),
        })
    }

    /// Sends the page for `facts` to `to`, with the voicemail from `store` (else from the
    /// recording's file on this node) attached. A refused address (5xx, or one that does not
    /// parse) is Permanent; a server down, slow or answering 4xx is Transient.
    pub async fn send_page(
        &self,
        to: &str,
        facts: &PageFacts,
        store: &Store,
    ) -> Result<(), ChannelError> {
        let to_box: Mailbox = to.parse().map_err(|e| {
            ChannelError::Permanent(format!(
                "\"{}\" is not an e-mail address ({e})",
                one_line(to, 100)
            ))
        })?;
        let (recording, bytes) = load_recording(store, facts, self.max_attachment_mb).await;
        let mail = render(facts, &recording);
        let text = SinglePart::plain(mail.body);
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(mail.subject)
            // lettre adds Date but not Message-ID, whose absence spam filters punish.
            .message_id(None);
        let builder = match facts.page_key.as_deref() {
            Some(key) => builder.header(PageKeyHeader(header_safe(key))),
            None => builder,
        };
        let carried: Vec<String> = facts
            .also
            .iter()
            .take(MAX_LISTED)
            .filter_map(|w| w.page_key.as_deref().map(header_safe))
            .collect();
        let builder = if carried.is_empty() {
            builder
        } else {
            builder.header(CarriedKeysHeader(carried.join(" ")))
        };
        let built = match (bytes, &recording) {
            (Some(wav), Recording::Attached { filename }) => {
                let wav_type = ContentType::parse("audio/wav")
                    .map_err(|e| ChannelError::Permanent(format!("content type audio/wav: {e}")))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(text)
                        .singlepart(Attachment::new(filename.clone()).body(wav, wav_type)),
                )
            }
            _ => builder.singlepart(text),
        };
        let message = built
            .map_err(|e| ChannelError::Permanent(format!("the e-mail could not be built: {e}")))?;

        let sent = tokio::time::timeout(self.overall, self.transport.send(message)).await;
        match sent {
            Ok(Ok(_)) => {
                tracing::info!(ticket = %facts.ticket, server = %self.server, "e-mail page sent");
                Ok(())
            }
            Ok(Err(e)) => {
                let err = classify(&e, &self.server);
                tracing::warn!(ticket = %facts.ticket, server = %self.server, error = %err,
                    "e-mail page not sent");
                Err(err)
            }
            Err(_) => {
                let err = ChannelError::Transient(format!(
                    "SMTP server {} did not finish within {} s",
                    self.server,
                    self.overall.as_secs()
                ));
                tracing::warn!(ticket = %facts.ticket, error = %err, "e-mail page not sent");
                Err(err)
            }
        }
    }
}

/// 5xx replies are Permanent; everything else (4xx, refused connection, timeout, TLS, a garbled
/// reply) may pass and is Transient.
fn classify(e: &lettre::transport::smtp::Error, server: &str) -> ChannelError {
    // The server's reply text is outside data: keep it to one line.
    let detail = one_line(&e.to_string(), 300);
    if e.is_permanent() {
        ChannelError::Permanent(format!("SMTP server {server} refused the page: {detail}"))
    } else if e.is_timeout() {
        ChannelError::Transient(format!("SMTP server {server} timed out: {detail}"))
    } else if e.is_client() {
        ChannelError::Permanent(format!("SMTP client error with {server}: {detail}"))
    } else {
        ChannelError::Transient(format!("SMTP server {server}: {detail}"))
    }
}

/// `X-Astreinte-Page`: the page's key (see `PageFacts::page_key`), so a mailbox rule or the
/// night drill can tell one page sent twice from two pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKeyHeader(pub String);

impl lettre::message::header::Header for PageKeyHeader {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Astreinte-Page")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(PageKeyHeader(s.trim().to_string()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `X-Astreinte-Carried`: the keys of the other tickets' pages this e-mail carries (pages to one
/// person grouped), space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedKeysHeader(pub String);

impl lettre::message::header::Header for CarriedKeysHeader {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Astreinte-Carried")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(CarriedKeysHeader(s.trim().to_string()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A header value from our own key, kept to printable ASCII without spaces (a person id comes
/// from the roster, which an admin writes).
fn header_safe(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::paging::facts::{PageReason, PagedPerson};
    use crate::triage::Severity;

    fn facts(lang: &str) -> PageFacts {
        let created = Utc
            .with_ymd_and_hms(2024, 1, 16, 7, 17, 0)
            .single()
            .unwrap_or_default();
        PageFacts {
            ticket: "4821337".into(),
            ticket_id: 0,
            severity: Severity::S1,
            status: "paged".into(),
            company: Some("Plomberie Tremblay".into()),
            account_code: Some("PT-042".into()),
            caller: "\"Tremblay\" <sip:5145550100@trunk>".into(),
            callback_number: "15145550100".into(),
            created_at: created,
            callback_due_at: created + chrono::Duration::minutes(30),
            timezone: chrono_tz::America::Toronto,
            level: 1,
            reason: PageReason::Escalation,
            person: Some(PagedPerson {
                id: "tech1".into(),
                name: "Martin Roy".into(),
                language: lang.into(),
                phone: None,
                email: Some("tech1@example.net".into()),
            }),
            answers: BTreeMap::from([("service".to_string(), "téléphones muets".to_string())]),
            classification_reasons: vec!["menu: 1 (no service)".into()],
            voicemail_path: None,
            voicemail_seconds: Some(41.6),
            ack_url: Some("https://astreinte.example.net/ack/4821337?sig=ab12".into()),
            console_url: Some("https://astreinte.example.net/tickets/4821337".into()),
            time_scale: crate::schedule::TimeScale::REAL,
            page_key: None,
            also: Vec::new(),
        }
    }

    fn smtp(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            from: "Astreinte <astreinte@example.net>".into(),
            username: None,
            password: None,
            timeout_secs: 20,
            max_attachment_mb: 10,
        }
    }

    fn issues_of(cfg: &SmtpConfig) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        cfg.validate(&mut issues);
        issues
            .into_iter()
            .map(|i| (i.key_path(), i.message))
            .collect()
    }

    #[test]
    fn french_subject_has_severity_ticket_and_due_time_in_eastern_standard_time() {
        let mail = render(&facts("fr"), &Recording::None);
        // 07:47 UTC in January is 02:47 EST.
        assert_eq!(
            mail.subject,
            "[S1] Billet 4821337 — rappeler avant 02:47 (HNE)"
        );
    }

    #[test]
    fn english_subject_uses_english_words_and_zone() {
        let mail = render(&facts("en"), &Recording::None);
        assert_eq!(
            mail.subject,
            "[S1] Ticket 4821337 — call back before 02:47 (EST)"
        );
    }

    #[test]
    fn due_time_follows_the_zone_across_the_autumn_change() {
        // Created 01:30 EDT on 2024-11-03; due 30 minutes later, after clocks fell back: 01:00 EST.
        let mut f = facts("fr");
        f.created_at = Utc
            .with_ymd_and_hms(2024, 11, 3, 5, 30, 0)
            .single()
            .unwrap_or_default();
        f.callback_due_at = f.created_at + chrono::Duration::minutes(30);
        let mail = render(&f, &Recording::None);
        assert!(
            mail.subject.ends_with("avant 01:00 (HNE)"),
            "{}",
            mail.subject
        );
        assert!(
            mail.body.contains("Créé : 2024-11-03 01:30 (HAE)"),
            "{}",
            mail.body
        );
        f.person = f.person.map(|p| PagedPerson {
            language: "en".into(),
            ..p
        });
        let mail = render(&f, &Recording::None);
        assert!(
            mail.body.contains("Created: 2024-11-03 01:30 (EDT)"),
            "{}",
            mail.body
        );
        assert!(
            mail.subject.ends_with("before 01:00 (EST)"),
            "{}",
            mail.subject
        );
    }

    #[test]
    fn due_time_follows_the_zone_across_the_spring_change() {
        // 01:50 EST on 2024-03-10; 30 minutes later the clocks have jumped: 03:20 EDT.
        let mut f = facts("en");
        f.created_at = Utc
            .with_ymd_and_hms(2024, 3, 10, 6, 50, 0)
            .single()
            .unwrap_or_default();
        f.callback_due_at = f.created_at + chrono::Duration::minutes(30);
        let mail = render(&f, &Recording::None);
        assert!(
            mail.subject.ends_with("before 03:20 (EDT)"),
            "{}",
            mail.subject
        );
        assert!(
            mail.body.contains("Created: 2024-03-10 01:50 (EST)"),
            "{}",
            mail.body
        );
    }

    #[test]
    fn body_carries_the_ticket_facts_and_the_ack_link() {
        let mail = render(
            &facts("fr"),
            &Recording::Attached {
                filename: "ticket-4821337.wav".into(),
            },
        );
        for expected in [
            "Incident critique — billet 4821337",
            "Entreprise : Plomberie Tremblay (compte PT-042)",
            "Appelant : \"Tremblay\" <sip:5145550100@trunk>",
            "Numéro de rappel : +1 514-555-0100",
            "Échéance : 2024-01-16 02:47 (HNE) (America/Toronto)",
            "Niveau : 1 — premier appel à ce niveau",
            "- service : téléphones muets",
            "- menu: 1 (no service)",
            "Message vocal : 42 s, joint : ticket-4821337.wav",
            "https://astreinte.example.net/ack/4821337?sig=ab12",
        ] {
            assert!(
                mail.body.contains(expected),
                "missing {expected:?} in\n{}",
                mail.body
            );
        }
    }

    #[test]
    fn body_says_when_the_recording_is_missing_or_too_large() {
        let en = facts("en");
        let missing = render(&en, &Recording::Unavailable).body;
        assert!(
            missing.contains("Voicemail: 42 s, recording unavailable"),
            "{missing}"
        );
        let big = render(
            &en,
            &Recording::TooLarge {
                bytes: 12 * MIB + MIB / 2,
                limit_mb: 10,
            },
        )
        .body;
        assert!(
            big.contains("recording too large to attach (12.5 MB > 10 MB)"),
            "{big}"
        );
        let fr = render(&facts("fr"), &Recording::Unavailable).body;
        assert!(fr.contains("enregistrement non disponible"), "{fr}");
    }

    #[test]
    fn without_a_link_the_body_says_how_to_acknowledge() {
        let mut f = facts("en");
        f.ack_url = None;
        let body = render(&f, &Recording::None).body;
        assert!(body.contains("astreinte tickets ack 4821337"), "{body}");
        assert!(body.contains("Voicemail: none"), "{body}");
    }

    #[test]
    fn caller_values_cannot_add_headers_or_fake_body_lines() {
        let mut f = facts("en");
        f.company = Some("Evil\r\nBcc: victim@example.org\r\n\r\nAcknowledge: http://evil".into());
        f.caller = "x\nSubject: pwned\u{7}\u{202E}".into();
        f.ticket = "48\r\nBcc: a@b.c".into();
        f.answers.insert(
            "q\n".into(),
            "line1\n\nAcknowledge the ticket: http://evil".into(),
        );
        let mail = render(&f, &Recording::None);
        assert!(
            !mail.subject.chars().any(|c| c.is_control()),
            "{:?}",
            mail.subject
        );
        assert!(
            mail.subject.starts_with("[S1] Ticket 48Bccabc —"),
            "{}",
            mail.subject
        );
        for l in mail.body.lines() {
            assert!(
                !l.starts_with("Bcc:") && !l.starts_with("Subject:"),
                "{l:?}"
            );
            assert!(!l.starts_with("Acknowledge: http://evil"), "{l:?}");
            assert!(!l.contains('\u{202E}') && !l.contains('\u{7}'), "{l:?}");
        }
        assert!(mail
            .body
            .contains("Company: Evil Bcc: victim@example.org Acknowledge: http://evil"));
        assert!(
            mail.body.contains("Caller: x Subject: pwned\n"),
            "{}",
            mail.body
        );
        // The only link lines are ours: the ticket in the console, and the acknowledgement.
        let links: Vec<_> = mail
            .body
            .lines()
            .filter(|l| l.starts_with("https://"))
            .collect();
        assert_eq!(
            links,
            [
                "https://astreinte.example.net/tickets/4821337",
                "https://astreinte.example.net/ack/4821337?sig=ab12"
            ]
        );
    }

    #[test]
    fn one_line_folds_and_truncates() {
        assert_eq!(one_line("  a\r\n\tb  c ", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab\ncd", 4), "ab c…");
        assert_eq!(one_line("\u{202E}\u{0}", 10), "");
    }

    #[test]
    fn numbers_are_written_for_people() {
        assert_eq!(display_number("15145550100"), "+1 514-555-0100");
        assert_eq!(display_number("5145550100"), "5145550100");
        assert_eq!(display_number("33142685300"), "33142685300");
        assert_eq!(display_number("1514555010x"), "1514555010x");
    }

    #[test]
    fn english_is_chosen_by_prefix_and_french_otherwise() {
        assert_eq!(wording::lang_of(&facts("en-CA")), Lang::En);
        assert_eq!(wording::lang_of(&facts("fr")), Lang::Fr);
        let mut f = facts("en");
        f.person = None;
        assert_eq!(wording::lang_of(&f), Lang::Fr);
    }

    #[test]
    fn a_good_config_has_no_issue() {
        for url in [
            "smtp://127.0.0.1:25",
            "smtps://mail.example.net",
            "submission://[::1]:2587",
        ] {
            assert_eq!(issues_of(&smtp(url)), vec![], "{url}");
        }
        let mut auth = smtp("submission://mail.example.net");
        auth.username = Some("u".into());
        auth.password = Some("p".into());
        assert_eq!(issues_of(&auth), vec![]);
        auth.url = "smtp://localhost:2525".into();
        assert_eq!(issues_of(&auth), vec![]);
    }

    #[test]
    fn endpoints_parse_with_default_ports() {
        let ep = SmtpEndpoint::parse("submission://[::1]").map_err(|e| e.to_string());
        assert_eq!(
            ep,
            Ok(SmtpEndpoint {
                security: SmtpSecurity::StartTls,
                host: "::1".into(),
                port: 587
            })
        );
        assert_eq!(
            SmtpEndpoint::parse("smtps://m.example.net").map(|e| e.port),
            Ok(465)
        );
        assert_eq!(
            SmtpEndpoint::parse("smtp://m.example.net").map(|e| e.port),
            Ok(25)
        );
    }

    #[test]
    fn bad_settings_are_reported_at_their_key() {
        let cases: Vec<(SmtpConfig, &str, &str)> = vec![
            (
                smtp("http://mail.example.net"),
                "paging.smtp.url",
                "scheme \"http\"",
            ),
            (
                smtp("mail.example.net:25"),
                "paging.smtp.url",
                "not one astreinte speaks",
            ),
            (smtp("smtp://"), "paging.smtp.url", "names no host"),
            (
                smtp("smtp://u:p@mail.example.net"),
                "paging.smtp.url",
                "credentials",
            ),
            (
                smtp("smtp://mail.example.net:0"),
                "paging.smtp.url",
                "port 0",
            ),
            (
                smtp("smtp://mail.example.net:99999"),
                "paging.smtp.url",
                "not a URL",
            ),
            (
                SmtpConfig {
                    from: "astreinte at example".into(),
                    ..smtp("smtp://127.0.0.1")
                },
                "paging.smtp.from",
                "not an e-mail address",
            ),
            (
                SmtpConfig {
                    username: Some("u".into()),
                    ..smtp("smtps://m.example.net")
                },
                "paging.smtp.password",
                "without a password",
            ),
            (
                SmtpConfig {
                    password: Some("p".into()),
                    ..smtp("smtps://m.example.net")
                },
                "paging.smtp.username",
                "without a username",
            ),
            (
                SmtpConfig {
                    username: Some("u".into()),
                    password: Some("p".into()),
                    ..smtp("smtp://mail.example.net")
                },
                "paging.smtp.url",
                "clear text",
            ),
            (
                SmtpConfig {
                    timeout_secs: 0,
                    ..smtp("smtp://127.0.0.1")
                },
                "paging.smtp.timeout_secs",
                "0 s is out of range",
            ),
            (
                SmtpConfig {
                    timeout_secs: 121,
                    ..smtp("smtp://127.0.0.1")
                },
                "paging.smtp.timeout_secs",
                "121 s",
            ),
            (
                SmtpConfig {
                    max_attachment_mb: 26,
                    ..smtp("smtp://127.0.0.1")
                },
                "paging.smtp.max_attachment_mb",
                "26 MB",
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
    fn debug_output_hides_the_password() {
        let cfg = SmtpConfig {
            password: Some("hunter2".into()),
            ..smtp("smtps://m.example.net")
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn mailer_refuses_clear_text_auth_and_bad_addresses() {
        let cfg = SmtpConfig {
            username: Some("u".into()),
            password: Some("p".into()),
            ..smtp("smtp://mail.example.net")
        };
        assert!(matches!(Mailer::new(&cfg), Err(ChannelError::Permanent(_))));
        assert!(Mailer::new(&smtp("smtp://127.0.0.1:2525")).is_ok());
    }

    #[tokio::test]
    async fn a_bad_recipient_is_permanent_without_touching_the_network() {
        // Port 9 (discard) on loopback: if it tried to connect, the error would be Transient.
        let mailer = Mailer::new(&smtp("smtp://127.0.0.1:9")).map_err(|e| e.to_string());
        let Ok(mailer) = mailer else {
            panic!("{mailer:?}")
        };
        let store = memory_store().await;
        let res = mailer
            .send_page("not an address", &facts("fr"), &store)
            .await;
        assert!(matches!(res, Err(ChannelError::Permanent(_))), "{res:?}");
    }

    async fn memory_store() -> Store {
        let store = Store::connect(&crate::store::StoreConfig::with_url("sqlite::memory:")).await;
        store.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A ticket in `store` whose voicemail was recorded at `path`; its facts.
    async fn ticket_with_voicemail(store: &Store, path: &std::path::Path) -> PageFacts {
        let at = Utc::now();
        let t = crate::store::NewTicket {
            severity: Severity::S1,
            caller: "15145550100".into(),
            callback_number: crate::callback::CallbackNumber::from_record("15145550100"),
            account_id: None,
            language: "fr".into(),
            voicemail: Some(crate::store::Voicemail {
                path: path.to_string_lossy().into_owned(),
                seconds: 41.6,
                speech_detected: true,
            }),
            answers: BTreeMap::new(),
            classification_reasons: vec!["menu: 1".into()],
            suspected_incident: false,
            time_scale: crate::schedule::TimeScale::REAL,
            created_at: at,
            due: crate::schedule::Due {
                callback_due_at: at,
                resolution_due_at: at,
            },
            pages: Vec::new(),
            actor: "ivr".into(),
        };
        let t = store
            .create_ticket(&t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut f = facts("fr");
        f.ticket = t.number;
        f.ticket_id = t.id;
        f.voicemail_path = t.voicemail_path.map(std::path::PathBuf::from);
        f
    }

    #[tokio::test]
    async fn the_recording_is_attached_only_when_readable_and_small_enough() {
        // A ticket with no audio in the store (older than stored audio): its file is read.
        let store = memory_store().await;
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("{dir:?}") };
        let path = dir.path().join("vm.wav");
        std::fs::write(&path, vec![7u8; 2 * MIB as usize]).unwrap_or_else(|e| panic!("{e}"));
        let mut f = facts("fr");
        f.voicemail_path = Some(path);
        let (rec, bytes) = load_recording(&store, &f, 10).await;
        assert_eq!(
            rec,
            Recording::Attached {
                filename: "ticket-4821337.wav".into()
            }
        );
        assert_eq!(bytes.map(|b| b.len()), Some(2 * MIB as usize));
        let (rec, bytes) = load_recording(&store, &f, 1).await;
        assert_eq!(
            rec,
            Recording::TooLarge {
                bytes: 2 * MIB,
                limit_mb: 1
            }
        );
        assert!(bytes.is_none());
        f.voicemail_path = Some(dir.path().join("gone.wav"));
        assert_eq!(
            load_recording(&store, &f, 10).await.0,
            Recording::Unavailable
        );
        f.voicemail_path = None;
        assert_eq!(load_recording(&store, &f, 10).await.0, Recording::None);
    }

    #[tokio::test]
    async fn the_recording_is_attached_from_the_store_when_its_file_is_gone() {
        let store = memory_store().await;
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("{dir:?}") };
        let path = dir.path().join("vm.wav");
        let wav: Vec<u8> = (0..3 * MIB as usize / 2)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &wav).unwrap_or_else(|e| panic!("{e}"));
        let f = ticket_with_voicemail(&store, &path).await;
        // Another node pages, or this node's disk lost the file: the store has the audio.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let (rec, bytes) = load_recording(&store, &f, 10).await;
        assert_eq!(
            rec,
            Recording::Attached {
                filename: attachment_name(&f.ticket)
            }
        );
        assert!(
            bytes.as_deref() == Some(wav.as_slice()),
            "not the recording"
        );
        // The attachment limit still holds for audio from the store.
        let (rec, bytes) = load_recording(&store, &f, 1).await;
        assert_eq!(
            rec,
            Recording::TooLarge {
                bytes: wav.len() as u64,
                limit_mb: 1
            }
        );
        assert!(bytes.is_none());
    }
}
