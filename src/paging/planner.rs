//! The planner: asks the ladder what is due for every ticket in paging and enqueues the page
//! jobs (one per person and channel) under their dedup keys. It keeps no state that matters:
//! after a restart, or on a second node, it decides the same pages and the database ignores the
//! ones it already has.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use tracing::{debug, info, warn};

use super::channel::{self, Channel};
use super::config::PagingConfig;
use super::facts::{PageReason, PagedPerson};
use super::ladder::{LadderPolicy, PageIntent, Phase, TicketClock};
use super::roster::{Override, Roster, RotationConfig};
use super::webhook::{WebhookConfig, WebhookFormat};
use crate::store::{NewEvent, NewPage, Store, StoreError, Ticket};

/// How long a called-back ticket stays in view (a webhook may still have to say "resolved").
const CALLED_BACK_WINDOW_MINUTES: i64 = 60;
/// Dedup keys remembered per node; past this the set is cleared (the database still dedups).
const KNOWN_KEYS_MAX: usize = 200_000;

/// What the planner needs, fixed at start.
pub struct Planner {
    pub store: Store,
    pub policy: LadderPolicy,
    pub rotations: Vec<RotationConfig>,
    pub timezone: Tz,
    /// The channels' settings: who each reaches ([`channel::channels_for`]), and the PagerDuty
    /// receivers paged per ticket.
    pub channels: PagingConfig,
    /// Whether a ticket created at this time was in business hours (for tickets without the
    /// IVR's own answer, e.g. made by hand).
    pub is_open_at: Arc<dyn Fn(DateTime<Utc>) -> bool + Send + Sync>,
    /// Dedup keys this node has enqueued or seen enqueued: spares the database a no-op insert
    /// for every due intent on every pass.
    known: HashSet<String>,
}

impl Planner {
    pub fn new(
        store: Store,
        policy: LadderPolicy,
        rotations: Vec<RotationConfig>,
        timezone: Tz,
        channels: PagingConfig,
        is_open_at: Arc<dyn Fn(DateTime<Utc>) -> bool + Send + Sync>,
    ) -> Planner {
        Planner {
            store,
            policy,
            rotations,
            timezone,
            channels,
            is_open_at,
            known: HashSet::new(),
        }
    }

    /// One pass over the tickets in paging. Returns how many jobs were enqueued and the earliest
    /// time something new becomes due.
    pub async fn plan(&mut self, now: DateTime<Utc>) -> Result<PlanPass, StoreError> {
        let (roster, overrides) = match super::view::roster_now(
            &self.store,
            &self.rotations,
            self.timezone,
            now - Duration::days(1),
        )
        .await
        {
            Ok(r) => r,
            Err(super::view::ViewError::Store(e)) => return Err(e),
            Err(super::view::ViewError::Config(e)) => {
                warn!(error = %e, "the roster cannot be built: nobody can be paged");
                return Ok(PlanPass::default());
            }
        };
        if !roster.has_people() {
            // Paging is not set up (no [[paging.people]], nobody added since): nothing to page,
            // and no "nobody to page" line in every ticket's history.
            return Ok(PlanPass::default());
        }
        let tickets = self
            .store
            .tickets_in_paging(now, Duration::minutes(CALLED_BACK_WINDOW_MINUTES))
            .await?;
        if self.known.len() > KNOWN_KEYS_MAX {
            self.known.clear();
        }
        let mut pass = PlanPass::default();
        for t in &tickets {
            let clock = self.clock(t);
            let due = self.policy.due(&clock, now);
            pass.next_wake = earliest(pass.next_wake, due.next_wake);
            for intent in &due.intents {
                pass.enqueued += self
                    .enqueue_intent(t, intent, &roster, &overrides, now)
                    .await?;
            }
            pass.enqueued += self.webhook_updates(t, now).await?;
        }
        Ok(pass)
    }

    fn clock(&self, t: &Ticket) -> TicketClock {
        let after_hours = match t.answers.get("business_hours").map(String::as_str) {
            Some("no") => true,
            Some("yes") => false,
            _ => !(self.is_open_at)(t.created_at),
        };
        TicketClock {
            severity: t.severity,
            after_hours,
            created_at: t.created_at,
            opened_at: t.opened_at.unwrap_or(t.created_at),
            callback_due_at: t.callback_due_at,
            acknowledged_at: t.acknowledged_at,
            called_back_at: t.called_back_at,
            closed: t.status.is_final(),
        }
    }

    async fn enqueue_intent(
        &mut self,
        t: &Ticket,
        intent: &PageIntent,
        roster: &Roster,
        overrides: &[Override],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let key = intent.dedup_key(&t.number);
        if self.known.contains(&key) {
            return Ok(0);
        }
        // Who is on call when the page is due, not when a late planner runs.
        let mut people: Vec<PagedPerson> = Vec::new();
        for slot in &intent.slots {
            for p in roster.resolve(slot, intent.at, overrides) {
                if !people.iter().any(|q| q.id == p.id) {
                    people.push(p);
                }
            }
        }
        let reason = reason_str(intent.reason);
        let mut pages = Vec::new();
        for p in &people {
            for to in channel::channels_for(p, &self.channels) {
                if !intent.channels.allows(to.channel.name()) {
                    continue;
                }
                pages.push(NewPage {
                    dedup_key: Some(format!("{key}:{}:{}", p.id, to.channel)),
                    channel: to.channel.to_string(),
                    target: to.target,
                    run_at: now,
                    person: Some(p.id.clone()),
                    level: intent.level as i32,
                    reason: reason.to_string(),
                });
            }
        }
        // PagerDuty holds one incident per ticket: triggered by the first page of the ticket.
        if intent.round == 0
            && matches!(intent.phase, Phase::Climb | Phase::Notice)
            && intent.level <= 1
        {
            for w in self.channels.webhooks.iter().filter(|w| is_pagerduty(w)) {
                pages.push(NewPage {
                    channel: webhook_channel(w),
                    target: w.id.clone(),
                    run_at: now,
                    person: None,
                    level: intent.level as i32,
                    reason: "trigger".into(),
                    dedup_key: Some(format!("{}:pd:{}:trigger", t.number, w.id)),
                });
            }
        }
        let names = people
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let event = match (intent.phase, intent.round) {
            (Phase::Climb, 0) if intent.level > 1 => Some(NewEvent {
                kind: "escalated".into(),
                actor: "paging".into(),
                reason: Some(format!("level {}: {names}", intent.level)),
            }),
            (Phase::Lapsed, 0) => Some(NewEvent {
                kind: "escalated".into(),
                actor: "paging".into(),
                reason: Some(format!(
                    "acknowledged but not called back {} min before the target: level {}: {names}",
                    (t.callback_due_at - intent.at).num_minutes().max(0),
                    intent.level
                )),
            }),
            _ => None,
        };
        if pages.is_empty() {
            if intent.round == 0 {
                warn!(ticket = %t.number, level = intent.level, slots = ?intent.slots, "nobody to page at this level (no one on call, or no channel)");
                self.store
                    .add_event(
                        &t.number,
                        "page_failed",
                        "paging",
                        Some(&format!(
                            "level {}: nobody to page ({})",
                            intent.level,
                            intent.slots.join(", ")
                        )),
                        now,
                    )
                    .await?;
            }
            self.known.insert(key);
            return Ok(0);
        }
        let added = self
            .store
            .enqueue_planned(t.id, &pages, event.as_ref(), now)
            .await?;
        if added > 0 {
            info!(ticket = %t.number, level = intent.level, phase = intent.phase.as_str(), round = intent.round, jobs = added, to = %names, "pages enqueued");
        } else {
            debug!(ticket = %t.number, %key, "pages already enqueued (another pass or node)");
        }
        self.known.insert(key);
        Ok(added)
    }

    /// PagerDuty incidents follow the ticket: acknowledged, then resolved once called back.
    async fn webhook_updates(
        &mut self,
        t: &Ticket,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        if t.paged_at.is_none() {
            return Ok(0);
        }
        let mut added = 0;
        for w in self.channels.webhooks.iter().filter(|w| is_pagerduty(w)) {
            for (action, happened) in [
                ("acknowledge", t.acknowledged_at.is_some()),
                ("resolve", t.called_back_at.is_some()),
            ] {
                if !happened {
                    continue;
                }
                let key = format!("{}:pd:{}:{action}", t.number, w.id);
                if self.known.contains(&key) {
                    continue;
                }
                let page = NewPage {
                    channel: webhook_channel(w),
                    target: w.id.clone(),
                    run_at: now,
                    person: None,
                    level: 0,
                    reason: action.into(),
                    dedup_key: Some(key.clone()),
                };
                added += self.store.enqueue_planned(t.id, &[page], None, now).await?;
                self.known.insert(key);
            }
        }
        Ok(added)
    }
}

/// A PagerDuty receiver: one incident per ticket, not a page per person.
fn is_pagerduty(w: &WebhookConfig) -> bool {
    w.format == WebhookFormat::Pagerduty
}

/// "webhook:<id>".
fn webhook_channel(w: &WebhookConfig) -> String {
    Channel::new(&channel::Webhook, Some(&w.id)).to_string()
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanPass {
    pub enqueued: usize,
    pub next_wake: Option<DateTime<Utc>>,
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

pub(crate) fn reason_str(r: PageReason) -> &'static str {
    match r {
        PageReason::Escalation => "escalation",
        PageReason::Repeat => "repeat",
        PageReason::CallbackOverdue => "callback_overdue",
        PageReason::Notice => "notice",
    }
}

pub(crate) fn reason_from_str(s: &str) -> PageReason {
    match s {
        "repeat" => PageReason::Repeat,
        "callback_overdue" => PageReason::CallbackOverdue,
        "notice" => PageReason::Notice,
        _ => PageReason::Escalation,
    }
}
