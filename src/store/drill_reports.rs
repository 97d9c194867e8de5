//! The night drill's reports, as `astreinte drill` posts them: the console shows the last.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

/// A report as stored: the drill's JSON, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDrillReport {
    pub id: i64,
    pub name: String,
    pub promise_held: bool,
    pub report: String,
    pub posted_by: String,
    pub posted_at: DateTime<Utc>,
}

impl Store {
    /// Keeps a night's report; returns its id.
    pub async fn save_drill_report(
        &self,
        name: &str,
        promise_held: bool,
        report: &str,
        posted_by: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        on_write!(&self.db, pool => {
            let id: i64 = sqlx::query(
                "INSERT INTO drill_reports (name, promise_held, report, posted_by, posted_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(promise_held)
            .bind(report)
            .bind(posted_by)
            .bind(micros(at))
            .fetch_one(pool)
            .await?
            .try_get("id")?;
            Ok(id)
        })
    }

    /// The report posted last, if any.
    pub async fn last_drill_report(&self) -> Result<Option<StoredDrillReport>, StoreError> {
        on_read!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT id, name, promise_held, report, posted_by, posted_at FROM drill_reports \
                 ORDER BY id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(StoredDrillReport {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    promise_held: r.try_get("promise_held")?,
                    report: r.try_get("report")?,
                    posted_by: r.try_get("posted_by")?,
                    posted_at: r.try_get("posted_at")?,
                })),
                None => Ok(None),
            }
        })
    }
}
