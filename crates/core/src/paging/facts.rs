//! What every channel says about a ticket when it pages someone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::triage::Severity;

/// The person paged (from the roster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PagedPerson {
    pub id: String,
    pub name: String,
    /// "fr" or "en": the language of the page.
    pub language: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// Why this page goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageReason {
    /// The first page of a ladder level.
    Escalation,
    /// The same level again, still unacknowledged.
    Repeat,
    /// Acknowledged, but nobody has called the customer back and the target is near.
    CallbackOverdue,
    /// A ticket outside the ladder (S3, business hours): the support group is told once.
    Notice,
}

/// The facts of one page: ticket, person, level and the link that acknowledges it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageFacts {
    /// Tracking number (digits).
    pub ticket: String,
    /// The ticket's row id: what its voicemail audio is stored under (`Store::voicemail_wav`),
    /// loaded only by the channels that use it (e-mail, phone).
    #[serde(skip)]
    pub ticket_id: i64,
    pub severity: Severity,
    /// Ticket status when the page was prepared ("open", "paged", "acknowledged"...).
    pub status: String,
    pub company: Option<String>,
    pub account_code: Option<String>,
    /// Caller ID as received.
    pub caller: String,
    /// The validated number to call back (digits, e.g. "15145550100"), may be empty: then the
    /// caller left none we may call, and pages say so (see [`PageFacts::no_callback`]) rather
    /// than offer the caller ID.
    pub callback_number: String,
    pub created_at: DateTime<Utc>,
    pub callback_due_at: DateTime<Utc>,
    /// The schedule's zone, in which times are written for people.
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    /// Ladder level, 1-based (0 for a notice).
    pub level: u32,
    pub reason: PageReason,
    pub person: Option<PagedPerson>,
    /// What the IVR collected (question → answer).
    pub answers: BTreeMap<String, String>,
    pub classification_reasons: Vec<String>,
    /// Where the voicemail was recorded (on the node that took the call): provenance, and where
    /// its audio is read from when the store has none (tickets older than stored audio).
    pub voicemail_path: Option<PathBuf>,
    pub voicemail_seconds: Option<f64>,
    /// Signed acknowledgement link, when `[http] public_url` is set.
    pub ack_url: Option<String>,
    /// The ticket's page in the console (`<public_url>/tickets/<number>`), when `[http]
    /// public_url` is set.
    pub console_url: Option<String>,
    /// The ticket's drill compression (1: a real ticket); every page of a drill says so.
    pub time_scale: crate::schedule::TimeScale,
    /// This page's key, the same on every node and every retry
    /// (`ticket:phase:level:round:person:channel`): written in the e-mail's `X-Astreinte-Page`
    /// header and the webhook's `page.key`, so a receiver (and the night drill) can tell a
    /// page sent twice from two pages.
    pub page_key: Option<String>,
    /// Other tickets waiting for the same person, carried by this page: pages to one person on
    /// one channel are grouped while one is under way or recent (`[paging] group_window`).
    /// Most urgent first; empty for a page of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<WaitingTicket>,
}

/// A ticket carried by another ticket's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaitingTicket {
    pub ticket: String,
    pub severity: Severity,
    pub callback_due_at: DateTime<Utc>,
    /// Its own acknowledgement link for the person, when links are made.
    pub ack_url: Option<String>,
    /// Its own page's key (see [`PageFacts::page_key`]).
    pub page_key: Option<String>,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl PageFacts {
    /// When there is no number to call: what the caller's ID and keys were, as information.
    pub fn no_callback(&self) -> Option<crate::callback::NoCallbackNumber<'_>> {
        self.callback_number
            .trim()
            .is_empty()
            .then(|| crate::callback::NoCallbackNumber::of(&self.caller, &self.answers))
    }

    /// The language pages to `person` are written in ("fr" when nobody is named).
    pub fn language(&self) -> &str {
        self.person.as_ref().map_or("fr", |p| p.language.as_str())
    }
}
