//! The console's users, their sessions and API tokens. Secrets never reach the database: a
//! session id and an API token are stored as the hex SHA-256 of the value the client holds,
//! passwords as argon2 PHC strings (hashed by `admin::auth`). User and token changes commit
//! together with their audit event.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::audit::{insert_audit, NewAudit};
use super::{micros, on_read, on_write, Store, StoreError};

/// The roles the database accepts (its CHECK constraint).
pub const ROLES: &[&str] = &["admin", "technician", "viewer"];

/// A console user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub name: String,
    /// "admin", "technician" or "viewer".
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    /// The roster's person this login acts as (covers, "only mine"); None: the person whose id
    /// is the login name.
    pub person_id: Option<String>,
    /// The console language the user chose ("fr" or "en"); None: not chosen yet.
    pub lang: Option<String>,
}

/// What a login checks.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub name: String,
    pub role: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub person_id: Option<String>,
    pub lang: Option<String>,
}

/// A live session (not expired, its user not disabled).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_name: String,
    pub role: String,
    pub person_id: Option<String>,
    pub lang: Option<String>,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The user behind a valid API token.
#[derive(Debug, Clone)]
pub struct TokenUser {
    pub token_id: i64,
    pub user_name: String,
    pub role: String,
    pub person_id: Option<String>,
    pub lang: Option<String>,
    pub last_used: Option<DateTime<Utc>>,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user_name: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub revoked: bool,
}

fn user_row<R>(r: &R) -> Result<UserRow, sqlx::Error>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'d> String: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> DateTime<Utc>: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> bool: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> Option<String>: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    Ok(UserRow {
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
        disabled: r.try_get("disabled")?,
        person_id: r.try_get("person_id")?,
        lang: r.try_get("lang")?,
    })
}

/// The languages a user may choose (the column's CHECK constraint).
pub const LANGS: &[&str] = &["fr", "en"];

fn no_person(p: &str) -> String {
    format!("there is no person \"{p}\" in the paging roster (see `astreinte people list`; add one with `astreinte people set ID --name …` or in [[paging.people]])")
}

impl Store {
    /// Creates a user; `Invalid` if the name is taken or the role unknown.
    pub async fn create_user(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.create_user_as(name, role, password_hash, None, actor, now)
            .await
    }

    /// Creates a user linked to the roster's `person` (if any); `Invalid` if the name is taken,
    /// the role unknown or there is no such person.
    pub async fn create_user_as(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        person: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !ROLES.contains(&role) {
            return Err(StoreError::Invalid(format!(
                "\"{role}\" is not a role (admin, technician or viewer)"
            )));
        }
        let now = micros(now);
        let audit = NewAudit {
            actor,
            action: "user.add",
            target: name,
            before: None,
            after: Some(
                json!({ "name": name, "role": role, "disabled": false, "person_id": person }),
            ),
            at: now,
        };
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            if let Some(p) = person {
                let known: Option<String> = sqlx::query_scalar("SELECT id FROM paging_people WHERE id = $1")
                    .bind(p).fetch_optional(&mut *tx).await?;
                if known.is_none() {
                    return Err(StoreError::Invalid(no_person(p)));
                }
            }
            let r = sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at, disabled, person_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name).bind(role).bind(password_hash).bind(now).bind(false).bind(person)
            .execute(&mut *tx).await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Invalid(format!("a user named \"{name}\" already exists")));
            }
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// One user, if there is one by that name.
    pub async fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        on_read!(&self.db, pool => {
            let r = sqlx::query("SELECT name, role, created_at, disabled, person_id, lang FROM users WHERE name = $1")
                .bind(name).fetch_optional(pool).await?;
            Ok(match r { Some(r) => Some(user_row(&r)?), None => None })
        })
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query("SELECT name, role, created_at, disabled, person_id, lang FROM users ORDER BY name")
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(user_row(r)?);
            }
            Ok(out)
        })
    }

    /// What a login needs to check a password.
    pub async fn user_credentials(
        &self,
        name: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        on_read!(&self.db, pool => {
            let r = sqlx::query("SELECT name, role, password_hash, disabled, person_id, lang FROM users WHERE name = $1")
                .bind(name).fetch_optional(pool).await?;
            Ok(match r {
                Some(r) => Some(UserCredentials {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    password_hash: r.try_get("password_hash")?,
                    disabled: r.try_get("disabled")?,
                    person_id: r.try_get("person_id")?,
                    lang: r.try_get("lang")?,
                }),
                None => None,
            })
        })
    }

    /// Disables (or enables again) a user; disabling ends their sessions at once (their API
    /// tokens stop working while disabled). Ok(false) if there is no such user.
    pub async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let audit = NewAudit {
            actor,
            action: if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            target: name,
            before: None,
            after: None,
            at: micros(now),
        };
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let before: Option<bool> = sqlx::query_scalar("SELECT disabled FROM users WHERE name = $1")
                .bind(name).fetch_optional(&mut *tx).await?;
            let Some(before) = before else { return Ok(false) };
            sqlx::query("UPDATE users SET disabled = $1 WHERE name = $2")
                .bind(disabled).bind(name).execute(&mut *tx).await?;
            if disabled {
                sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                    .bind(name).execute(&mut *tx).await?;
            }
            let audit = NewAudit {
                before: Some(json!({ "disabled": before })),
                after: Some(json!({ "disabled": disabled })),
                ..audit
            };
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Links a user to the roster's person `person` (None: unlinks, so the login name stands for
    /// the person id again). Ok(false) if there is no such user; `Invalid` if there is no such
    /// person. Audited as `user.link`.
    pub async fn set_user_person(
        &self,
        name: &str,
        person: Option<&str>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let before: Option<Option<String>> = sqlx::query_scalar("SELECT person_id FROM users WHERE name = $1")
                .bind(name).fetch_optional(&mut *tx).await?;
            let Some(before) = before else { return Ok(false) };
            if let Some(p) = person {
                let known: Option<String> = sqlx::query_scalar("SELECT id FROM paging_people WHERE id = $1")
                    .bind(p).fetch_optional(&mut *tx).await?;
                if known.is_none() {
                    return Err(StoreError::Invalid(no_person(p)));
                }
            }
            sqlx::query("UPDATE users SET person_id = $1 WHERE name = $2")
                .bind(person).bind(name).execute(&mut *tx).await?;
            let audit = NewAudit {
                actor,
                action: "user.link",
                target: name,
                before: Some(json!({ "person_id": before })),
                after: Some(json!({ "person_id": person })),
                at: now,
            };
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Keeps the console language a user chose ("fr" or "en"; None forgets it). A preference,
    /// not a change to the installation: not audited. Ok(false) if there is no such user.
    pub async fn set_user_lang(&self, name: &str, lang: Option<&str>) -> Result<bool, StoreError> {
        if let Some(l) = lang {
            if !LANGS.contains(&l) {
                return Err(StoreError::Invalid(format!(
                    "\"{l}\" is not a console language (fr or en)"
                )));
            }
        }
        on_write!(&self.db, pool => {
            let r = sqlx::query("UPDATE users SET lang = $1 WHERE name = $2")
                .bind(lang).bind(name).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Sets a new password hash and ends the user's sessions. Ok(false) if there is no such user.
    pub async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let audit = NewAudit {
            actor,
            action: "user.password",
            target: name,
            before: None,
            after: None,
            at: micros(now),
        };
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(password_hash).bind(name).execute(&mut *tx).await?;
            if r.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Records a new session (and forgets the expired ones).
    pub async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf_token: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $4)",
            )
            .bind(id_hash).bind(user).bind(csrf_token).bind(now).bind(micros(expires_at))
            .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The session with this id hash, unless it has expired or its user is disabled.
    pub async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, StoreError> {
        on_read!(&self.db, pool => {
            let r = sqlx::query(
                "SELECT s.user_name, u.role, u.person_id, u.lang, s.csrf_token, s.expires_at, s.last_seen \
                 FROM sessions s JOIN users u ON u.name = s.user_name \
                 WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.disabled = $3",
            )
            .bind(id_hash).bind(micros(now)).bind(false)
            .fetch_optional(pool).await?;
            Ok(match r {
                Some(r) => Some(SessionRow {
                    user_name: r.try_get("user_name")?,
                    role: r.try_get("role")?,
                    person_id: r.try_get("person_id")?,
                    lang: r.try_get("lang")?,
                    csrf_token: r.try_get("csrf_token")?,
                    expires_at: r.try_get("expires_at")?,
                    last_seen: r.try_get("last_seen")?,
                }),
                None => None,
            })
        })
    }

    /// Slides a session's expiry.
    pub async fn touch_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_write!(&self.db, pool => {
            sqlx::query("UPDATE sessions SET last_seen = $1, expires_at = $2 WHERE id_hash = $3")
                .bind(micros(now)).bind(micros(expires_at)).bind(id_hash)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// Ends a session (logout); Ok(false) if there was none.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        on_write!(&self.db, pool => {
            let r = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                .bind(id_hash).execute(pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    /// Records a new API token of `user` (by the hash of its value); returns its id.
    /// `Invalid` if there is no such user.
    pub async fn create_api_token(
        &self,
        user: &str,
        token_hash: &str,
        label: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let exists: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
                .bind(user).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Err(StoreError::Invalid(format!("there is no user named \"{user}\"")));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (user_name, token_hash, label, created_at, revoked) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(user).bind(token_hash).bind(label).bind(now).bind(false)
            .fetch_one(&mut *tx).await?;
            let audit = NewAudit {
                actor,
                action: "token.create",
                target: user,
                before: None,
                after: Some(json!({ "id": id, "label": label })),
                at: now,
            };
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// The user behind a token hash, unless the token is revoked or the user disabled.
    pub async fn api_token_user(&self, token_hash: &str) -> Result<Option<TokenUser>, StoreError> {
        on_read!(&self.db, pool => {
            let r = sqlx::query(
                "SELECT t.id, t.user_name, u.role, u.person_id, u.lang, t.last_used \
                 FROM api_tokens t JOIN users u ON u.name = t.user_name \
                 WHERE t.token_hash = $1 AND t.revoked = $2 AND u.disabled = $2",
            )
            .bind(token_hash).bind(false)
            .fetch_optional(pool).await?;
            Ok(match r {
                Some(r) => Some(TokenUser {
                    token_id: r.try_get("id")?,
                    user_name: r.try_get("user_name")?,
                    role: r.try_get("role")?,
                    person_id: r.try_get("person_id")?,
                    lang: r.try_get("lang")?,
                    last_used: r.try_get("last_used")?,
                }),
                None => None,
            })
        })
    }

    /// Notes when a token was last used.
    pub async fn touch_api_token(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_write!(&self.db, pool => {
            sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE id = $2")
                .bind(micros(now)).bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// Revokes a token for good; Ok(false) if there is no such token or it was revoked already.
    pub async fn revoke_api_token(
        &self,
        id: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let user: Option<String> = sqlx::query_scalar(
                "UPDATE api_tokens SET revoked = $1 WHERE id = $2 AND revoked = $3 RETURNING user_name",
            )
            .bind(true).bind(id).bind(false)
            .fetch_optional(&mut *tx).await?;
            let Some(user) = user else { return Ok(false) };
            let audit = NewAudit {
                actor,
                action: "token.revoke",
                target: &user,
                before: Some(json!({ "id": id, "revoked": false })),
                after: Some(json!({ "id": id, "revoked": true })),
                at: now,
            };
            insert_audit!(&mut *tx, &audit)?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// API tokens (of one user, or everyone's), oldest first.
    pub async fn api_tokens(&self, user: Option<&str>) -> Result<Vec<ApiTokenRow>, StoreError> {
        on_read!(&self.db, pool => {
            let rows = sqlx::query(
                "SELECT id, user_name, label, created_at, last_used, revoked FROM api_tokens \
                 WHERE $1 IS NULL OR user_name = $1 ORDER BY id",
            )
            .bind(user)
            .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(ApiTokenRow {
                    id: r.try_get("id")?,
                    user_name: r.try_get("user_name")?,
                    label: r.try_get("label")?,
                    created_at: r.try_get("created_at")?,
                    last_used: r.try_get("last_used")?,
                    revoked: r.try_get("revoked")?,
                });
            }
            Ok(out)
        })
    }
}
