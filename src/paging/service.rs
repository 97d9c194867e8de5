//! Starts paging inside `serve`: seeds the people from the config, then runs the planner (what
//! is due) and the worker (sending it) until the engine stops.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Utc;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

use super::config::PagingConfig;
use super::email::Mailer;
use super::ladder::LadderPolicy;
use super::phone::PhonePager;
use super::planner::Planner;
use super::webhook::WebhookSender;
use super::worker::{AckLinkMaker, PageCounters, Worker};
use super::ChannelError;
use crate::schedule::LiveSchedule;
use crate::store::{PersonRow, Store, StoreError};

/// Why paging could not start.
#[derive(Debug, thiserror::Error)]
pub enum PagingStartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("[paging.ladder]: {0}")]
    Ladder(String),
    #[error("[paging] channel: {0}")]
    Channel(#[from] ChannelError),
}

/// The running paging work.
pub struct Paging {
    /// Wakes the planner (a ticket was opened or acknowledged).
    pub wake: Arc<Notify>,
    pub counters: Arc<PageCounters>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Writes `[[paging.people]]` into the store (the config is the seed; the CLI changes people
/// after, until the config names them again at the next start).
pub async fn seed_people(store: &Store, config: &PagingConfig) -> Result<usize, StoreError> {
    let rows: Vec<PersonRow> = config
        .people
        .iter()
        .map(|p| PersonRow {
            id: p.id.clone(),
            name: p.name.clone(),
            phone: p.phone.clone(),
            email: p.email.clone(),
            language: p.language.clone(),
        })
        .collect();
    store.upsert_people(&rows, "config", Utc::now()).await?;
    Ok(rows.len())
}

/// What paging works with.
pub struct PagingDeps {
    pub store: Store,
    /// The hours in force (an admin may change them while paging runs).
    pub schedule: LiveSchedule,
    /// None: phone pages fail (no SIP in this process).
    pub phone: Option<PhonePager>,
    /// None: pages carry no acknowledgement link (no `[http]`).
    pub ack_links: Option<AckLinkMaker>,
    /// `[http] public_url`, when set: pages link to the ticket in the console.
    pub console_base: Option<String>,
    /// This node's name on its leases.
    pub node: String,
    /// Notified when a ticket is opened or acknowledged: the planner runs at once.
    pub wake: Arc<Notify>,
}

/// Starts the planner and the worker.
pub async fn start(
    config: &PagingConfig,
    deps: PagingDeps,
    stop: watch::Receiver<bool>,
) -> Result<Paging, PagingStartError> {
    let PagingDeps {
        store,
        schedule,
        phone,
        ack_links,
        console_base,
        node,
        wake,
    } = deps;
    let seeded = seed_people(&store, config).await?;
    let now_schedule = schedule.get();
    let policy = LadderPolicy::from_config(
        &config.ladder,
        &config.in_hours,
        now_schedule.sla(),
        config.group_window(crate::schedule::TimeScale::REAL),
    )
    .map_err(PagingStartError::Ladder)?;
    let mailer = match &config.smtp {
        Some(smtp) => Some(Mailer::new(smtp)?),
        None => None,
    };
    if seeded == 0 {
        warn!("paging: no [[paging.people]] configured; tickets will page nobody");
    }
    let work = Arc::new(Notify::new());
    let counters = Arc::new(PageCounters::default());
    let sched = schedule.clone();
    let mut planner = Planner::new(
        store.clone(),
        policy,
        config.rotations.clone(),
        now_schedule.timezone(),
        config.clone(),
        Arc::new(move |t| sched.get().is_open(t).open),
    );
    let worker = Arc::new(Worker {
        store,
        owner: node,
        config: config.worker.clone(),
        timezone: now_schedule.timezone(),
        mailer,
        channels: config.clone(),
        webhook_sender: WebhookSender::new()?,
        phone,
        ack_links,
        console_base,
        counters: counters.clone(),
        wake: work.clone(),
        group_window: config.group_window(now_schedule.sla().time_scale),
    });
    let every = StdDuration::from_millis(config.worker.plan_every_ms);
    let plan_wake = wake.clone();
    let mut plan_stop = stop.clone();
    let planner_task = tokio::spawn(async move {
        loop {
            let mut sleep = every;
            match planner.plan(Utc::now()).await {
                Ok(pass) => {
                    if pass.enqueued > 0 {
                        work.notify_one();
                    }
                    // Wake for the next due page, if it comes before the next regular pass.
                    if let Some(next) = pass.next_wake {
                        let until = (next - Utc::now()).to_std().unwrap_or_default();
                        sleep = sleep.min(until + StdDuration::from_millis(5));
                    }
                }
                Err(e) => warn!(error = %e, "paging planner: the store failed; retrying"),
            }
            tokio::select! {
                _ = plan_wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = crate::shell::stop_requested(&mut plan_stop) => return,
            }
        }
    });
    let worker_task = tokio::spawn(worker.run(stop));
    info!(people = seeded, "paging running");
    Ok(Paging {
        wake,
        counters,
        tasks: vec![planner_task, worker_task],
    })
}
