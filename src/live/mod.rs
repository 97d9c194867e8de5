//! Live settings: what the console changes while the engine runs (business hours and holidays,
//! prompts, the incident announcement), kept in step with the store by one service per node.
//!
//! The service looks at the store on one tick ([`POLL`]): for each setting one cheap read (a
//! marker, a change counter, an id) and the full read only when it moved, so changes made on
//! another node (two nodes share one PostgreSQL) reach this one within a tick. A write on this
//! node is seen at once: the store tells its in-process listeners that a setting was written
//! (`Store::settings_written`), which nudges the service; [`LiveSettings::changed`] nudges it
//! by hand and [`LiveSettings::refresh`] looks now and returns once the result is in force.
//!
//! What each consumer sees:
//! - hours: the engine's [`LiveSchedule`] (read by the IVR, the voicemail desk and paging) is
//!   swapped, and [`LiveSettings::hours`] publishes the schedule in force;
//! - prompts: the media engine plays the active versions to new calls, and
//!   [`LiveSettings::prompts`] publishes the store's change counter applied in full;
//! - the announcement: the media engine's `*/announcement` prompts, and
//!   [`LiveSettings::announcement`] publishes its phase (the IVR's `IvrDeps::announcement`).

pub mod announcement;
pub mod hours;
pub mod prompts;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex, Notify};
use tokio::task::JoinHandle;

use crate::call::flow::AnnouncementPhase;
use crate::media::MediaEngine;
use crate::schedule::{LiveSchedule, Schedule, ScheduleConfig};
use crate::store::Store;

use announcement::AnnouncementFeed;
use hours::HoursFeed;
use prompts::PromptsFeed;

/// How often a node looks for settings changed elsewhere: a few indexed rows.
pub const POLL: Duration = Duration::from_secs(2);

/// The handle to this node's live-settings service: cheap to clone.
#[derive(Clone)]
pub struct LiveSettings {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    schedule: LiveSchedule,
    /// One look at a time (the poll, a nudge, a `refresh`).
    feeds: Mutex<Feeds>,
    nudge: Notify,
    hours: watch::Sender<Arc<Schedule>>,
    prompts: watch::Sender<Option<i64>>,
    announcement: watch::Sender<Option<AnnouncementPhase>>,
}

struct Feeds {
    hours: HoursFeed,
    /// The media engine the prompts and the announcement play on.
    media: Option<MediaEngine>,
    prompts: PromptsFeed,
    announcement: AnnouncementFeed,
}

/// What a service follows: the hours always, the prompts and the announcement when given a
/// media engine.
pub struct LiveSettingsBuilder {
    store: Store,
    hours: HoursFeed,
    media: Option<MediaEngine>,
}

impl LiveSettings {
    /// A service that keeps `schedule` at `base` (the config's `[schedule]`) with the stored
    /// changes on top.
    pub fn builder(
        store: Store,
        base: ScheduleConfig,
        schedule: LiveSchedule,
    ) -> LiveSettingsBuilder {
        LiveSettingsBuilder {
            store,
            hours: HoursFeed::new(base, schedule),
            media: None,
        }
    }

    /// The schedule in force, kept in step (read it with `get` when a call or ticket needs it).
    pub fn schedule(&self) -> LiveSchedule {
        self.shared.schedule.clone()
    }

    /// The schedule in force, published on every change.
    pub fn hours(&self) -> watch::Receiver<Arc<Schedule>> {
        self.shared.hours.subscribe()
    }

    /// The store's prompt change counter applied in full on this node (None: not yet).
    pub fn prompts(&self) -> watch::Receiver<Option<i64>> {
        self.shared.prompts.subscribe()
    }

    /// The incident announcement new calls hear, published on every change.
    pub fn announcement(&self) -> watch::Receiver<Option<AnnouncementPhase>> {
        self.shared.announcement.subscribe()
    }

    /// Asks for a look now, without waiting for it (a write on this node).
    pub fn changed(&self) {
        self.shared.nudge.notify_one();
    }

    /// Looks at the store now; what changed is in force when this returns.
    pub async fn refresh(&self) {
        self.shared.look().await;
    }
}

impl LiveSettingsBuilder {
    /// Follow the prompts and the announcement, played on `media`.
    pub fn media(mut self, media: MediaEngine) -> Self {
        self.media = Some(media);
        self
    }

    /// Looks once (so the first call already hears and sees current settings), then starts
    /// the polling task, whose handle comes back beside the service's.
    pub async fn start(self) -> (LiveSettings, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            schedule: self.hours.live().clone(),
            hours: watch::Sender::new(self.hours.current()),
            prompts: watch::Sender::new(None),
            announcement: watch::Sender::new(None),
            nudge: Notify::new(),
            feeds: Mutex::new(Feeds {
                hours: self.hours,
                media: self.media,
                prompts: PromptsFeed::default(),
                announcement: AnnouncementFeed::default(),
            }),
            store: self.store,
        });
        // Subscribed before the first look: a write during it still nudges the next one.
        let written = shared.store.settings_written();
        shared.look().await;
        let poller = tokio::spawn(poll(shared.clone(), written));
        (LiveSettings { shared }, poller)
    }
}

/// Looks on every tick, and at once when this node writes a setting or someone nudges.
async fn poll(shared: Arc<Shared>, mut written: watch::Receiver<u64>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut store_open = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = written.changed(), if store_open => store_open = r.is_ok(),
            _ = shared.nudge.notified() => {}
        }
        shared.look().await;
    }
}

impl Shared {
    /// One look at every setting followed; publishes what changed.
    async fn look(&self) {
        let mut guard = self.feeds.lock().await;
        let feeds = &mut *guard;
        if feeds.hours.look(&self.store).await {
            self.hours.send_replace(feeds.hours.current());
        }
        if let Some(media) = &feeds.media {
            feeds.prompts.look(&self.store, media).await;
            let generation = feeds.prompts.generation();
            self.prompts.send_if_modified(|g| replace(g, generation));
            if feeds.announcement.look(&self.store, media).await {
                let phase = feeds.announcement.phase();
                self.announcement.send_if_modified(|p| replace(p, phase));
            }
        }
    }
}

/// Sets `slot` to `value`; true when that changed it.
fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}

#[cfg(test)]
mod tests;
