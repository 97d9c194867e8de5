//! Admin changes to the hours (console): closed days added, computed holidays worked anyway,
//! closures. The schedule every node uses is `[schedule]` with these on top.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

/// One stored change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoursChange {
    pub id: i64,
    /// "holiday_added", "holiday_removed" or "closure".
    pub kind: String,
    /// Local date of a holiday change.
    pub day: Option<String>,
    /// Local start and end of a closure ("YYYY-MM-DDTHH:MM").
    pub starts: Option<String>,
    pub ends: Option<String>,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Every change, oldest first.
    pub async fn hours_changes(&self) -> Result<Vec<HoursChange>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT id, kind, day, starts, ends, name, created_by, created_at FROM hours_changes ORDER BY id",
            )
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(HoursChange {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    day: r.try_get("day")?,
                    starts: r.try_get("starts")?,
                    ends: r.try_get("ends")?,
                    name: r.try_get("name")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    /// Adds a change (the caller has validated the dates). A second change of the same kind on
    /// the same day replaces the first.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_hours_change(
        &self,
        kind: &str,
        day: Option<&str>,
        starts: Option<&str>,
        ends: Option<&str>,
        name: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let written: Result<_, StoreError> = on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            if let Some(d) = day {
                sqlx::query("DELETE FROM hours_changes WHERE kind = $1 AND day = $2")
                    .bind(kind).bind(d).execute(&mut *tx).await?;
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO hours_changes (kind, day, starts, ends, name, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(kind).bind(day).bind(starts).bind(ends).bind(name).bind(by).bind(micros(now))
            .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(id)
        });
        if written.is_ok() {
            self.note_settings_written();
        }
        written
    }

    /// Removes a change by id; false if there was none.
    pub async fn remove_hours_change(&self, id: i64) -> Result<Option<HoursChange>, StoreError> {
        let existing = self.hours_changes().await?.into_iter().find(|c| c.id == id);
        if existing.is_none() {
            return Ok(None);
        }
        on_write!(&self.db, pool => {
            sqlx::query("DELETE FROM hours_changes WHERE id = $1").bind(id).execute(pool).await?;
        });
        self.note_settings_written();
        Ok(existing)
    }

    /// A value that changes whenever the changes do (pollers compare it).
    pub async fn hours_marker(&self) -> Result<(i64, i64), StoreError> {
        on_read!(&self.db, pool => {
            let r = sqlx::query("SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS m FROM hours_changes")
                .fetch_one(pool).await?;
            Ok((r.try_get("n")?, r.try_get("m")?))
        })
    }
}
