//! The page worker: leases due jobs from the outbox and sends each over its channel. A job
//! leased here and not finished (the node died) is taken again by any node once its lease
//! expires; `finish` only succeeds while the lease is ours, so a page is recorded once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{error, info, info_span, warn, Instrument};

use super::channel::{self, Channel, Outbound, Sent};
use super::config::{PagingConfig, WorkerConfig};
use super::email::Mailer;
use super::facts::{PageFacts, PagedPerson, WaitingTicket};
use super::phone::PhonePager;
use super::planner::reason_from_str;
use super::webhook::WebhookSender;
use super::ChannelError;
use crate::store::{
    GroupTurn, LeaseFilter, NewEvent, PageJob, PageOutcome, Status, Store, StoreError, Ticket,
};

/// Jobs leased per pass.
const LEASE_BATCH: i64 = 32;
/// E-mails and webhooks in flight at once on one node.
const MAX_SENDS_IN_FLIGHT: usize = 64;
/// Phone pages in flight at once on one node: they last minutes (ringing, the menu, a bridge),
/// so they have their own budget and never hold up an e-mail.
const MAX_CALLS_IN_FLIGHT: usize = 256;
/// Final failures in a row after which a channel is reported as failing (an alert).
const FAILING_AFTER: u32 = 3;

/// Makes the signed acknowledgement link of (ticket, person).
pub type AckLinkMaker = Arc<dyn Fn(&str, &str, DateTime<Utc>) -> String + Send + Sync>;

/// Per-channel counts for /metrics.
#[derive(Debug, Default)]
pub struct PageCounters {
    by_channel: Mutex<BTreeMap<String, ChannelCount>>,
    /// Page calls up now (ringing, talking, or bridged to the customer): a draining node
    /// waits for them as for its inbound calls.
    phone_calls: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelCount {
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    /// Final failures since the last success.
    pub failures_in_a_row: u32,
}

impl ChannelCount {
    pub fn failing(&self) -> bool {
        self.failures_in_a_row >= FAILING_AFTER
    }
}

impl PageCounters {
    fn update(&self, channel: &str, f: impl FnOnce(&mut ChannelCount)) -> ChannelCount {
        let mut map = match self.by_channel.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let c = map.entry(channel.to_string()).or_default();
        f(c);
        c.clone()
    }

    /// Page calls in progress on this node.
    pub fn phone_calls_in_progress(&self) -> u64 {
        self.phone_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every channel's counts (channel names without the webhook id: "webhook:ops" stays as is).
    pub fn snapshot(&self) -> Vec<(String, ChannelCount)> {
        let map = match self.by_channel.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Everything a worker sends with (each channel takes what it needs: [`channel::Outbound`]).
pub struct Worker {
    pub store: Store,
    /// This node's lease owner name.
    pub owner: String,
    pub config: WorkerConfig,
    pub timezone: Tz,
    pub mailer: Option<Mailer>,
    /// The channels' settings (`[paging]`): each channel reads its own.
    pub channels: PagingConfig,
    pub webhook_sender: WebhookSender,
    pub phone: Option<PhonePager>,
    pub ack_links: Option<AckLinkMaker>,
    /// `[http] public_url`: pages link to the ticket in the console.
    pub console_base: Option<String>,
    pub counters: Arc<PageCounters>,
    /// Woken when the planner enqueued something.
    pub wake: Arc<Notify>,
    /// `[paging] group_window` on the wall clock (a drill's compressed); zero: no grouping.
    pub group_window: Duration,
}

impl Worker {
    /// Leases and sends until `stop` turns true. Jobs in flight when it stops keep their lease
    /// until it expires, then another node (or the next start) sends them.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let sends = Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT));
        let calls = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
        let lease = Duration::seconds(i64::from(self.config.lease_secs));
        loop {
            let (free_sends, free_calls) = (sends.available_permits(), calls.available_permits());
            let filter = match (free_sends > 0, free_calls > 0) {
                (true, true) => Some(LeaseFilter::Any),
                (true, false) => Some(LeaseFilter::Except(channel::call_channel())),
                (false, true) => Some(LeaseFilter::Only(channel::call_channel())),
                (false, false) => None,
            };
            let max = match filter {
                Some(LeaseFilter::Only(_)) => free_calls,
                Some(LeaseFilter::Except(_)) => free_sends,
                _ => free_sends.min(free_calls),
            }
            .min(LEASE_BATCH as usize) as i64;
            let jobs = match filter {
                Some(filter) => match self
                    .store
                    .lease_page_jobs_where(
                        &self.owner,
                        Utc::now(),
                        lease,
                        max,
                        filter,
                        self.group_window,
                    )
                    .await
                {
                    Ok(jobs) => jobs,
                    Err(e) => {
                        warn!(error = %e, "cannot lease page jobs; retrying");
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            let full = jobs.len() as i64 == max && max > 0;
            for (job, companions) in self.batch_groups(jobs) {
                let budget = if is_call(&job.channel) {
                    &calls
                } else {
                    &sends
                };
                let Ok(permit) = budget.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                let span = info_span!("page", ticket = %job.ticket_number, job = job.id, channel = %job.channel, person = job.person.as_deref().unwrap_or(""));
                tokio::spawn(
                    async move {
                        me.handle(job, companions).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            if full {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(StdDuration::from_millis(500)) => {}
                _ = crate::shell::stop_requested(&mut stop) => return,
            }
        }
    }

    /// A leased batch as groups: jobs of one person on one channel ride with the first of
    /// them (when pages are grouped).
    fn batch_groups(&self, jobs: Vec<PageJob>) -> Vec<(PageJob, Vec<PageJob>)> {
        let mut groups: Vec<(PageJob, Vec<PageJob>)> = Vec::new();
        for job in jobs {
            let grouped = self.group_window > Duration::zero() && job.person.is_some();
            if let Some((_, companions)) = groups.iter_mut().find(|(lead, _)| {
                grouped && lead.person == job.person && lead.channel == job.channel
            }) {
                companions.push(job);
            } else {
                groups.push((job, Vec::new()));
            }
        }
        groups
    }

    async fn handle(&self, job: PageJob, companions: Vec<PageJob>) {
        if let Err(e) = self.try_handle(job, companions).await {
            // The lease expires and the job is tried again (here or on another node).
            warn!(error = %e, "page job not recorded: the store failed; it will be retried");
        }
    }

    async fn try_handle(&self, job: PageJob, companions: Vec<PageJob>) -> Result<(), StoreError> {
        let now = Utc::now();
        let ours: Vec<i64> = companions.iter().map(|j| j.id).collect();
        let members = match self
            .store
            .take_group_turn(&job, &self.owner, now, self.group_window, &ours)
            .await?
        {
            GroupTurn::Held { until } => {
                info!(%until, jobs = 1 + ours.len(), "page held: grouped with the next page to this person on this channel");
                return Ok(());
            }
            GroupTurn::Send { members } => members,
        };
        // Every job of the group whose ticket still needs it, most urgent first.
        let mut live: Vec<(PageJob, Ticket)> = Vec::new();
        // A group may hold several rounds of one ticket: each ticket is read once.
        let mut tickets: std::collections::HashMap<String, Ticket> = Default::default();
        for j in std::iter::once(job).chain(members) {
            let t = match tickets.get(&j.ticket_number) {
                Some(t) => t.clone(),
                None => {
                    let t = self.store.ticket(&j.ticket_number).await?;
                    tickets.insert(j.ticket_number.clone(), t.clone());
                    t
                }
            };
            match no_longer_needed(&j, &t) {
                Some(why) => {
                    info!(ticket = %j.ticket_number, job = j.id, %why, "page not sent");
                    self.store
                        .finish_page_job(
                            j.id,
                            &self.owner,
                            &PageOutcome::Cancelled { why: why.into() },
                            now,
                        )
                        .await?;
                }
                None => live.push((j, t)),
            }
        }
        live.sort_by_key(|(j, t)| (t.callback_due_at, j.id));
        let mut live = live.into_iter();
        let Some((lead, ticket)) = live.next() else {
            return Ok(());
        };
        let carried: Vec<(PageJob, Ticket)> = live.collect();
        let person = match &lead.person {
            Some(id) => self
                .store
                .people()
                .await?
                .into_iter()
                .find(|p| &p.id == id)
                .map(PagedPerson::from),
            None => None,
        };
        let mut facts = self.facts(&lead, &ticket, person.clone(), now);
        facts.also = carried
            .iter()
            .map(|(j, t)| WaitingTicket {
                ticket: t.number.clone(),
                severity: t.severity,
                callback_due_at: t.callback_due_at,
                ack_url: match (&self.ack_links, &person) {
                    (Some(make), Some(p)) => Some(make(&t.number, &p.id, now)),
                    _ => None,
                },
                page_key: j.dedup_key.clone(),
            })
            .collect();
        if !carried.is_empty() {
            let ids: Vec<i64> = carried.iter().map(|(j, _)| j.id).collect();
            self.store.mark_carried(lead.id, &ids).await?;
            info!(ticket = %lead.ticket_number, carried = ids.len(), "one page for several tickets waiting for this person");
        }
        let who = person
            .as_ref()
            .map_or_else(|| lead.target.clone(), |p| format!("{} ({})", p.name, p.id));
        let result = match lead.channel.parse::<Channel>() {
            Ok(channel) => self.send(&channel, &lead, &facts, &who, now).await?,
            Err(unknown) => Sending {
                delivered: false,
                result: Err(ChannelError::Permanent(unknown.to_string())),
            },
        };
        let now = Utc::now();
        // The carried tickets' jobs end as the page that carried them did (a call answered
        // mid-way counts as delivered for them too); follow-ups are the lead ticket's own.
        for (j, _) in &carried {
            let theirs = Sending {
                delivered: false,
                result: match &result.result {
                    _ if result.delivered => Ok(Sent::default()),
                    Ok(_) => Ok(Sent::default()),
                    Err(e) => Err(e.same()),
                },
            };
            let note = format!("with ticket {}'s page", lead.ticket_number);
            self.record(j, theirs, &who, Some(&note), false, now)
                .await?;
        }
        self.record(&lead, result, &who, None, true, now).await
    }

    /// Records how a page went for `job` (`counted`: in the channel's metrics; a carried job
    /// is not a page of its own). `carried`: "with ticket N's page".
    async fn record(
        &self,
        job: &PageJob,
        result: Sending,
        who: &str,
        carried: Option<&str>,
        counted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let level = level_words(job);
        let with = carried.map(|c| format!(" ({c})")).unwrap_or_default();
        match result.result {
            Ok(sent) => {
                if !result.delivered {
                    self.delivered(
                        job,
                        who,
                        sent.note.or(carried.map(String::from)),
                        counted,
                        now,
                    )
                    .await?;
                }
                if let Some((kind, what)) = sent.followup {
                    self.store
                        .add_event(
                            &job.ticket_number,
                            kind,
                            "paging",
                            Some(&format!("{} to {who}{level}: {what}", job.channel)),
                            now,
                        )
                        .await?;
                }
            }
            // Delivered while it was sending (a call, answered): how it ended is no failure.
            Err(_) if result.delivered => {}
            Err(ChannelError::Transient(e))
                if job.attempts < self.config.max_attempts as i32 && !is_call(&job.channel) =>
            {
                let wait = retry_delay(self.config.retry_secs, job.attempts);
                if counted {
                    self.counters.update(&job.channel, |c| c.retried += 1);
                    warn!(error = %e, attempt = job.attempts, retry_in_secs = wait.num_seconds(), "page not sent; retrying");
                }
                self.store
                    .finish_page_job(
                        job.id,
                        &self.owner,
                        &PageOutcome::Retry {
                            run_at: now + wait,
                            error: e,
                        },
                        now,
                    )
                    .await?;
            }
            Err(e) => {
                let reason = format!("{} to {who}{level}: {e}{with}", job.channel);
                if !counted || matches!(e, ChannelError::Unavailable(_)) {
                    warn!(%reason, "page failed");
                } else {
                    let c = self.counters.update(&job.channel, |c| {
                        c.failed += 1;
                        c.failures_in_a_row += 1;
                    });
                    if c.failing() {
                        error!(alert = true, channel = %job.channel, failures_in_a_row = c.failures_in_a_row, error = %e, "ALERT: a paging channel keeps failing");
                    } else {
                        warn!(%reason, "page failed");
                    }
                }
                let event = NewEvent {
                    kind: "page_failed".into(),
                    actor: "paging".into(),
                    reason: Some(reason),
                };
                self.store
                    .page_failed(job.id, &self.owner, &e.to_string(), &event, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends `job` on `channel`. A channel that delivers before it is done (a call, the moment
    /// the person answers) has the page recorded as delivered then.
    async fn send(
        &self,
        channel: &Channel,
        job: &PageJob,
        facts: &PageFacts,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<Sending, StoreError> {
        let _call = channel
            .kind()
            .is_call()
            .then(|| CallInProgress::new(&self.counters));
        let (answered_tx, mut answered_rx) = tokio::sync::oneshot::channel();
        let send = channel.kind().send(Outbound {
            job,
            instance: channel.instance(),
            facts,
            worker: self,
            now,
            answered: Some(answered_tx),
        });
        tokio::pin!(send);
        let mut delivered = false;
        let mut waiting = true;
        let result = loop {
            tokio::select! {
                r = &mut answered_rx, if waiting => {
                    waiting = false;
                    if let Ok(note) = r {
                        delivered = true;
                        self.delivered(job, who, Some(note.to_string()), true, Utc::now()).await?;
                    }
                }
                result = &mut send => break result,
            }
        };
        if waiting {
            if let Ok(note) = answered_rx.try_recv() {
                delivered = true;
                self.delivered(job, who, Some(note.to_string()), true, Utc::now())
                    .await?;
            }
        }
        Ok(Sending { delivered, result })
    }

    /// Records `job` as delivered: "email to Martin Roy (tech1), level 2 (escalation)".
    async fn delivered(
        &self,
        job: &PageJob,
        who: &str,
        note: Option<String>,
        counted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if counted {
            self.counters.update(&job.channel, |c| {
                c.sent += 1;
                c.failures_in_a_row = 0;
            });
        }
        let reason = format!(
            "{} to {who}{} ({}){}",
            job.channel,
            level_words(job),
            job.reason,
            note.map(|n| format!(": {n}")).unwrap_or_default()
        );
        info!(%reason, "page sent");
        let event = NewEvent {
            kind: "paged".into(),
            actor: "paging".into(),
            reason: Some(reason),
        };
        self.store
            .page_delivered(job.id, &self.owner, &event, now)
            .await?;
        Ok(())
    }

    /// Who acknowledged the ticket, from its history.
    pub(crate) async fn acknowledger(&self, number: &str) -> String {
        match self.store.events(number).await {
            Ok(events) => events
                .iter()
                .rev()
                .find(|e| e.kind == "acknowledged")
                .map_or_else(|| "on-call".to_string(), |e| e.actor.clone()),
            Err(_) => "on-call".to_string(),
        }
    }

    fn facts(
        &self,
        job: &PageJob,
        t: &Ticket,
        person: Option<PagedPerson>,
        now: DateTime<Utc>,
    ) -> PageFacts {
        let ack_url = match (&self.ack_links, &person) {
            (Some(make), Some(p)) => Some(make(&t.number, &p.id, now)),
            _ => None,
        };
        PageFacts {
            ticket: t.number.clone(),
            ticket_id: t.id,
            severity: t.severity,
            status: t.status.as_str().to_string(),
            company: t.company.clone(),
            account_code: t.account_code.clone(),
            caller: t.caller.clone(),
            // A ticket written before refused numbers were kept out still offers none.
            callback_number: crate::callback::CallbackNumber::from_record(&t.callback_number)
                .map(|c| c.e164())
                .unwrap_or_default(),
            created_at: t.created_at,
            callback_due_at: t.callback_due_at,
            timezone: self.timezone,
            level: job.level.max(0) as u32,
            reason: reason_from_str(&job.reason),
            person,
            answers: t.answers.clone(),
            classification_reasons: t.classification_reasons.clone(),
            voicemail_path: t.voicemail_path.as_ref().map(std::path::PathBuf::from),
            voicemail_seconds: t.voicemail_seconds,
            ack_url,
            console_url: self
                .console_base
                .as_ref()
                .map(|b| format!("{}/tickets/{}", b.trim_end_matches('/'), t.number)),
            time_scale: t.time_scale,
            page_key: job.dedup_key.clone(),
            also: Vec::new(),
        }
    }
}

/// What became of a send.
struct Sending {
    /// Recorded as delivered while it was sending.
    delivered: bool,
    result: Result<Sent, ChannelError>,
}

/// Counts a page call among the calls in progress while it lives.
struct CallInProgress<'a>(&'a PageCounters);

impl<'a> CallInProgress<'a> {
    fn new(counters: &'a PageCounters) -> Self {
        counters
            .phone_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        CallInProgress(counters)
    }
}

impl Drop for CallInProgress<'_> {
    fn drop(&mut self) {
        self.0
            .phone_calls
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a stored channel is a call (its own budget, never retried).
fn is_call(stored: &str) -> bool {
    stored.parse::<Channel>().is_ok_and(|c| c.kind().is_call())
}

/// ", level 2" (nothing outside the ladder).
fn level_words(job: &PageJob) -> String {
    if job.level > 0 {
        format!(", level {}", job.level)
    } else {
        String::new()
    }
}

/// Why a leased job should not go out any more, if so.
fn no_longer_needed(job: &PageJob, t: &Ticket) -> Option<&'static str> {
    let webhook_update = matches!(job.reason.as_str(), "acknowledge" | "resolve");
    if webhook_update {
        return None;
    }
    if t.status.is_final() {
        return Some("the ticket is closed");
    }
    if t.status == Status::CalledBack {
        return Some("the customer has been called back");
    }
    let phase = job.dedup_key.as_deref().and_then(|k| k.split(':').nth(1));
    if t.acknowledged_at.is_some() && phase != Some("lapsed") && job.reason != "trigger" {
        return Some("the ticket was acknowledged");
    }
    None
}

/// retry_secs, doubled per attempt, at most 5 minutes.
fn retry_delay(retry_secs: u32, attempts: i32) -> Duration {
    let base = i64::from(retry_secs.max(1));
    let factor = 1i64 << attempts.clamp(1, 10).saturating_sub(1);
    Duration::seconds((base * factor).min(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_are_capped() {
        assert_eq!(retry_delay(15, 1), Duration::seconds(15));
        assert_eq!(retry_delay(15, 2), Duration::seconds(30));
        assert_eq!(retry_delay(15, 3), Duration::seconds(60));
        assert_eq!(retry_delay(15, 9), Duration::seconds(300));
        assert_eq!(retry_delay(15, 99), Duration::seconds(300));
    }

    #[test]
    fn only_the_call_channel_has_the_call_budget() {
        assert!(is_call("phone"));
        for stored in ["email", "webhook:ops", "sms", "phone:x", ""] {
            assert!(!is_call(stored), "{stored}");
        }
        assert_eq!(channel::call_channel(), "phone");
    }

    #[test]
    fn a_channel_is_failing_after_three_final_failures_in_a_row() {
        let c = PageCounters::default();
        for _ in 0..2 {
            c.update("email", |c| c.failures_in_a_row += 1);
        }
        assert!(!c.snapshot()[0].1.failing());
        c.update("email", |c| c.failures_in_a_row += 1);
        assert!(c.snapshot()[0].1.failing());
        c.update("email", |c| c.failures_in_a_row = 0);
        assert!(!c.snapshot()[0].1.failing());
    }
}
