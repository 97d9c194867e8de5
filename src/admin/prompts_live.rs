//! The console's former name for prompt following, now the live-settings service's
//! (`crate::live`): what tools and tests outside the engine still call.

use tokio::task::JoinHandle;

pub use crate::live::prompts::{apply, default_pcm};
use crate::live::LiveSettings;
pub use crate::live::POLL;
use crate::media::MediaEngine;
use crate::schedule::{LiveSchedule, Schedule, ScheduleConfig};
use crate::store::Store;

/// Applies every active prompt version now, then keeps `media` in step with the store through
/// a live-settings service (hours kept on a schedule of its own, read by no call). The first
/// pass is done when this returns; the handle is the service's polling task.
pub async fn watch_prompts(store: Store, media: MediaEngine) -> JoinHandle<()> {
    let base = ScheduleConfig::default();
    let schedule =
        LiveSchedule::new(Schedule::from_config(&base).expect("the default [schedule] builds"));
    let (_live, poller) = LiveSettings::builder(store, base, schedule)
        .media(media)
        .start()
        .await;
    poller
}
