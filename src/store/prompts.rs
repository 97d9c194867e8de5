//! Prompt versions uploaded from the console: every upload is a numbered version (1, 2, …) of
//! one `(lang, name)` prompt, kept so it can be rolled back to. At most one version is active;
//! none means the bundled default plays (version 0 in the console). A counter bumped by every
//! change lets each node's poller see a change with one cheap query.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

/// One uploaded version, without its audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptVersion {
    pub lang: String,
    pub name: String,
    pub version: i64,
    pub seconds: f64,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    pub active: bool,
}

/// An active version with its audio (an 8 kHz mono 16-bit WAV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePrompt {
    pub lang: String,
    pub name: String,
    pub version: i64,
    pub wav: Vec<u8>,
}

/// An upload to store.
#[derive(Debug, Clone)]
pub struct NewPromptVersion<'a> {
    pub lang: &'a str,
    pub name: &'a str,
    /// 8 kHz mono 16-bit WAV.
    pub wav: &'a [u8],
    pub seconds: f64,
    pub uploaded_by: &'a str,
    pub at: DateTime<Utc>,
}

const COLUMNS: &str = "lang, name, version, seconds, uploaded_by, uploaded_at, active";

fn version_of<R>(r: &R) -> Result<PromptVersion, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> f64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PromptVersion {
        lang: r.try_get("lang")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        seconds: r.try_get("seconds")?,
        uploaded_by: r.try_get("uploaded_by")?,
        uploaded_at: r.try_get("uploaded_at")?,
        active: r.try_get("active")?,
    })
}

impl Store {
    /// Stores an upload as the prompt's next version and makes it the active one, in one
    /// transaction (which also bumps the change counter).
    pub async fn add_prompt_version(
        &self,
        p: &NewPromptVersion<'_>,
    ) -> Result<PromptVersion, StoreError> {
        let at = micros(p.at);
        let written: Result<_, StoreError> = on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            // First, so that on PostgreSQL its row lock orders concurrent uploads.
            sqlx::query("UPDATE prompt_changes SET generation = generation + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let version: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_versions WHERE lang = $1 AND name = $2",
            )
            .bind(p.lang)
            .bind(p.name)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE prompt_versions SET active = FALSE WHERE lang = $1 AND name = $2 AND active",
            )
            .bind(p.lang)
            .bind(p.name)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "INSERT INTO prompt_versions (lang, name, version, audio, seconds, uploaded_by, uploaded_at, active) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE) RETURNING {COLUMNS}"
            ))
            .bind(p.lang)
            .bind(p.name)
            .bind(version)
            .bind(p.wav)
            .bind(p.seconds)
            .bind(p.uploaded_by)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            let v = version_of(&row)?;
            tx.commit().await?;
            Ok(v)
        });
        if written.is_ok() {
            self.note_settings_written();
        }
        written
    }

    /// Every uploaded version of a prompt, newest first.
    pub async fn prompt_versions(
        &self,
        lang: &str,
        name: &str,
    ) -> Result<Vec<PromptVersion>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM prompt_versions WHERE lang = $1 AND name = $2 ORDER BY version DESC"
            ))
            .bind(lang)
            .bind(name)
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(version_of).collect::<Result<_, _>>()?)
        })
    }

    /// Which version of each prompt is active, without the audio: `(lang, name, version)`,
    /// sorted. Prompts playing their default are absent.
    pub async fn active_prompt_versions(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT lang, name, version FROM prompt_versions WHERE active ORDER BY lang, name",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push((r.try_get("lang")?, r.try_get("name")?, r.try_get("version")?));
            }
            Ok(out)
        })
    }

    /// Every active version with its audio, sorted by language and name.
    pub async fn active_prompts(&self) -> Result<Vec<ActivePrompt>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT lang, name, version, audio FROM prompt_versions WHERE active ORDER BY lang, name",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(ActivePrompt {
                    lang: r.try_get("lang")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    wav: r.try_get("audio")?,
                });
            }
            Ok(out)
        })
    }

    /// Makes `version` the active one (`None`: the bundled default plays again). Returns the
    /// version that was active before (None for the default). An unknown version is
    /// `StoreError::Invalid` and changes nothing.
    pub async fn activate_prompt_version(
        &self,
        lang: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let written: Result<_, StoreError> = on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            sqlx::query("UPDATE prompt_changes SET generation = generation + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let before: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM prompt_versions WHERE lang = $1 AND name = $2 AND active",
            )
            .bind(lang)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(v) = version {
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM prompt_versions WHERE lang = $1 AND name = $2 AND version = $3",
                )
                .bind(lang)
                .bind(name)
                .bind(v)
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    // Dropping the transaction rolls the counter back too.
                    return Err(StoreError::Invalid(format!("{lang}/{name} has no version {v}")));
                }
            }
            sqlx::query(
                "UPDATE prompt_versions SET active = FALSE WHERE lang = $1 AND name = $2 AND active",
            )
            .bind(lang)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if let Some(v) = version {
                sqlx::query(
                    "UPDATE prompt_versions SET active = TRUE WHERE lang = $1 AND name = $2 AND version = $3",
                )
                .bind(lang)
                .bind(name)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(before)
        });
        if written.is_ok() {
            self.note_settings_written();
        }
        written
    }

    /// The WAV of one version, None when there is no such version.
    pub async fn prompt_audio(
        &self,
        lang: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        on_read!(&self.db, pool => {
            Ok(sqlx::query_scalar(
                "SELECT audio FROM prompt_versions WHERE lang = $1 AND name = $2 AND version = $3",
            )
            .bind(lang)
            .bind(name)
            .bind(version)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// A number that changes with every upload and rollback (on every node's view of the
    /// store): pollers compare it with the one they last applied.
    pub async fn prompts_generation(&self) -> Result<i64, StoreError> {
        on_read!(&self.db, pool => {
            Ok(sqlx::query_scalar("SELECT generation FROM prompt_changes WHERE id = 1")
                .fetch_optional(pool)
                .await?
                .unwrap_or(0))
        })
    }
}
