//! The incident announcement new calls hear: [`AnnouncementFeed`] keeps the media engine's
//! `fr/announcement` and `en/announcement` prompts and the phase the IVR reads in step with
//! the store's current announcement (at most one, shared by every node).

use tracing::{debug, info, warn};

use crate::call::flow::AnnouncementPhase;
use crate::media::MediaEngine;
use crate::store::announcements::Announcement;
use crate::store::Store;

/// What this node plays of the stored announcement.
#[derive(Default)]
pub(super) struct AnnouncementFeed {
    /// The stored announcement last looked at (played, or found unusable); None: none.
    shown: Option<i64>,
    /// What new calls hear now.
    phase: Option<AnnouncementPhase>,
}

impl AnnouncementFeed {
    pub(super) fn phase(&self) -> Option<AnnouncementPhase> {
        self.phase
    }

    /// Looks at the current announcement's id (one indexed row) and, when it changed, reads it
    /// and puts it in force. True when the phase new calls see may have changed. The store
    /// being down keeps what plays.
    pub(super) async fn look(&mut self, store: &Store, media: &MediaEngine) -> bool {
        match store.current_announcement_id().await {
            Ok(id) if id == self.shown => return false,
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "announcement not refreshed");
                return false;
            }
        }
        let current = match store.current_announcement().await {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "announcement not refreshed");
                return false;
            }
        };
        match current {
            None => {
                info!("incident announcement cleared");
                self.shown = None;
                self.phase = None;
            }
            Some(a) => self.put_in_force(&a, media),
        }
        true
    }

    /// Plays `a` to new calls, if its phase and both recordings are usable.
    fn put_in_force(&mut self, a: &Announcement, media: &MediaEngine) {
        self.shown = Some(a.id);
        let phase = AnnouncementPhase::from_name(&a.phase);
        match (phase, decode(&a.audio_fr), decode(&a.audio_en)) {
            (Some(phase), Some(fr), Some(en)) => {
                media.set_prompt("fr/announcement", &fr);
                media.set_prompt("en/announcement", &en);
                info!(
                    id = a.id,
                    phase = a.phase,
                    "incident announcement playing to new calls"
                );
                self.phase = Some(phase);
            }
            _ => warn!(
                id = a.id,
                "stored announcement unusable (phase or audio): not played"
            ),
        }
    }
}

/// The samples of an 8 kHz mono WAV file; None for anything else.
fn decode(wav: &[u8]) -> Option<Vec<i16>> {
    hound::WavReader::new(std::io::Cursor::new(wav))
        .ok()
        .filter(|r| r.spec().sample_rate == 8000 && r.spec().channels == 1)
        .map(|r| r.into_samples::<i16>().map_while(Result::ok).collect())
}
