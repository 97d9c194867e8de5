//! The paging roster's stored half: people (seeded from `[[paging.people]]` at start, changed
//! by the CLI after), on-call overrides, and installation-wide settings every node shares.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

/// A person who can be paged, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonRow {
    pub id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// "fr" or "en".
    pub language: String,
}

/// Someone covering a rotation for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideRow {
    pub id: i64,
    pub rotation: String,
    pub person: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Adds or updates people (by id).
    pub async fn upsert_people(
        &self,
        people: &[PersonRow],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            for p in people {
                sqlx::query(
                    "INSERT INTO paging_people (id, name, phone, email, language, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET \
                     name = excluded.name, phone = excluded.phone, email = excluded.email, \
                     language = excluded.language, updated_at = excluded.updated_at, \
                     updated_by = excluded.updated_by",
                )
                .bind(&p.id).bind(&p.name).bind(p.phone.as_deref()).bind(p.email.as_deref())
                .bind(&p.language).bind(now).bind(by)
                .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Everyone who can be paged, by id.
    pub async fn people(&self) -> Result<Vec<PersonRow>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query("SELECT id, name, phone, email, language FROM paging_people ORDER BY id")
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(PersonRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    phone: r.try_get("phone")?,
                    email: r.try_get("email")?,
                    language: r.try_get("language")?,
                });
            }
            Ok(out)
        })
    }

    /// Records that `person` covers `rotation` in `[starts_at, ends_at)`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_override(
        &self,
        rotation: &str,
        person: &str,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        if ends_at <= starts_at {
            return Err(StoreError::Invalid(
                "an override must end after it starts".into(),
            ));
        }
        on_write!(&self.db, pool => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO oncall_overrides (rotation, person, starts_at, ends_at, reason, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(rotation).bind(person).bind(micros(starts_at)).bind(micros(ends_at))
            .bind(reason).bind(by).bind(micros(now))
            .fetch_one(pool).await?;
            Ok(id)
        })
    }

    /// Overrides that have not ended by `since`, oldest start first.
    pub async fn overrides(&self, since: DateTime<Utc>) -> Result<Vec<OverrideRow>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT id, rotation, person, starts_at, ends_at, reason, created_by, created_at \
                 FROM oncall_overrides WHERE ends_at > $1 ORDER BY starts_at, id",
            )
            .bind(micros(since))
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(OverrideRow {
                    id: r.try_get("id")?,
                    rotation: r.try_get("rotation")?,
                    person: r.try_get("person")?,
                    starts_at: r.try_get("starts_at")?,
                    ends_at: r.try_get("ends_at")?,
                    reason: r.try_get("reason")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            Ok(out)
        })
    }

    /// Removes an override; false if there was none with that id.
    pub async fn remove_override(&self, id: i64) -> Result<bool, StoreError> {
        on_write!(&self.db, pool => {
            let r = sqlx::query("DELETE FROM oncall_overrides WHERE id = $1").bind(id).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// The setting `key`; when absent, `init` is stored and returned. Two nodes starting at once
    /// agree: the first insert wins and both read it back.
    pub async fn setting_or_init(&self, key: &str, init: &str) -> Result<String, StoreError> {
        on_write!(&self.db, pool => {
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key).bind(init).execute(pool).await?;
            let v: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key).fetch_one(pool).await?;
            Ok(v)
        })
    }
}

impl From<PersonRow> for crate::paging::facts::PagedPerson {
    fn from(p: PersonRow) -> crate::paging::facts::PagedPerson {
        crate::paging::facts::PagedPerson {
            id: p.id,
            name: p.name,
            language: p.language,
            phone: p.phone,
            email: p.email,
        }
    }
}

impl From<OverrideRow> for crate::paging::roster::Override {
    fn from(o: OverrideRow) -> crate::paging::roster::Override {
        crate::paging::roster::Override {
            id: o.id,
            rotation: o.rotation,
            person: o.person,
            from: o.starts_at,
            to: o.ends_at,
            reason: o.reason,
        }
    }
}
