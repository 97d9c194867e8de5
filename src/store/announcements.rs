//! Incident announcements: at most one current, shared by every node through the store.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

/// An announcement as stored. The audio is a WAV file's bytes per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announcement {
    pub id: i64,
    /// "investigating", "identified" or "monitoring".
    pub phase: String,
    pub text_fr: String,
    pub text_en: String,
    #[serde(skip)]
    pub audio_fr: Vec<u8>,
    #[serde(skip)]
    pub audio_en: Vec<u8>,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

/// What `announce set` stores.
#[derive(Debug, Clone)]
pub struct NewAnnouncement {
    pub phase: String,
    pub text_fr: String,
    pub text_en: String,
    pub audio_fr: Vec<u8>,
    pub audio_en: Vec<u8>,
    pub set_by: String,
    pub at: DateTime<Utc>,
}

pub const PHASES: [&str; 3] = ["investigating", "identified", "monitoring"];

impl Store {
    /// Makes `a` the current announcement (the previous one, if any, is cleared).
    pub async fn set_announcement(&self, a: &NewAnnouncement) -> Result<i64, StoreError> {
        let at = micros(a.at);
        let written: Result<_, StoreError> = on_write!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE announcements SET cleared_at = $1 WHERE cleared_at IS NULL")
                .bind(at)
                .execute(&mut *tx)
                .await?;
            let id: i64 = sqlx::query(
                "INSERT INTO announcements (phase, text_fr, text_en, audio_fr, audio_en, set_by, set_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&a.phase)
            .bind(&a.text_fr)
            .bind(&a.text_en)
            .bind(&a.audio_fr)
            .bind(&a.audio_en)
            .bind(&a.set_by)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            tx.commit().await?;
            Ok(id)
        });
        if written.is_ok() {
            self.note_settings_written();
        }
        written
    }

    /// Clears the current announcement; false when there was none.
    pub async fn clear_announcement(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let written: Result<_, StoreError> = on_write!(&self.db, pool => {
            let done = sqlx::query("UPDATE announcements SET cleared_at = $1 WHERE cleared_at IS NULL")
                .bind(micros(at))
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        });
        if written.is_ok() {
            self.note_settings_written();
        }
        written
    }

    /// The id of the announcement callers hear now, if any: what a poller compares before
    /// reading the announcement and its audio.
    pub async fn current_announcement_id(&self) -> Result<Option<i64>, StoreError> {
        on_read!(&self.db, pool => {
            Ok(sqlx::query_scalar(
                "SELECT id FROM announcements WHERE cleared_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?)
        })
    }

    /// The announcement callers hear now, if any.
    pub async fn current_announcement(&self) -> Result<Option<Announcement>, StoreError> {
        on_read!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT id, phase, text_fr, text_en, audio_fr, audio_en, set_by, set_at FROM announcements \
                 WHERE cleared_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(Announcement {
                    id: r.try_get("id")?,
                    phase: r.try_get("phase")?,
                    text_fr: r.try_get("text_fr")?,
                    text_en: r.try_get("text_en")?,
                    audio_fr: r.try_get("audio_fr")?,
                    audio_en: r.try_get("audio_en")?,
                    set_by: r.try_get("set_by")?,
                    set_at: r.try_get("set_at")?,
                })),
                None => Ok(None),
            }
        })
    }
}
