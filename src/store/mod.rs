//! Tickets, voicemails, accounts and the page-job outbox, on SQLite (embedded default) or
//! PostgreSQL (`[store] url = "postgres://..."`).
//!
//! Two code paths share the same SQL text (`$1` placeholders work on both) through the
//! `on_read!`/`on_write!` macros, rather than `sqlx::Any`, so timestamps stay `TIMESTAMPTZ` on
//! PostgreSQL and rows decode to chrono types on both. SQLite writes go through a one-connection
//! pool: writers queue in the pool instead of sleeping in SQLite's busy handler.
//!
//! Durable order for a voicemail ticket (the call flow's duty, in this order):
//! 1. write the WAV, then [`durable::fsync_file`] it (file and directory);
//! 2. [`Store::create_ticket`]: ticket row, its voicemail audio (read back from the file), its
//!    first events and its page jobs in one transaction;
//! 3. only then read the tracking number to the caller.
//!
//! From then on the audio is read from the store ([`Store::voicemail_wav`]) on any node; the
//! file and `tickets.voicemail_path` stay as provenance and as the fallback for older tickets.

pub mod accounts;
pub mod announcements;
pub mod audit;
pub mod drill_reports;
pub mod durable;
pub mod hours;
pub mod number;
pub mod pages;
pub mod people;
pub mod prompts;
pub mod ticket_views;
pub mod tickets;
pub mod users;
pub mod voicemail_audio;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config_issue::{ConfigIssue, KeySeg};

pub use accounts::{Account, AccountRef, Contact, ContactRole};
pub use announcements::{Announcement, NewAnnouncement};
pub use pages::{GroupTurn, LeaseFilter, NewEvent, NewPage, PageJob, PageOutcome, PageState};
pub use people::{OverrideRow, PersonRow};
pub use tickets::{
    Action, Event, ListFilter, NewTicket, Status, Ticket, Voicemail, TEST_PAGE_CALLER,
};
pub use voicemail_audio::{
    BackfillReport, VoicemailAudioInfo, VoicemailFileError, VoicemailWav, WavSource,
    MAX_VOICEMAIL_BYTES,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// "sqlite://PATH" (the default) or "postgres://...".
    #[serde(default = "default_url")]
    pub url: String,
    /// Connections in the pool (PostgreSQL, and SQLite readers).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// SQLite only: "full" (default: every commit is on disk, survives power loss) or "normal"
    /// (WAL commits survive a crash of the process but may lose the last ones on power loss).
    #[serde(default = "default_sync")]
    pub sqlite_synchronous: String,
}

fn default_url() -> String {
    "sqlite://data/astreinte.db".into()
}
fn default_max_connections() -> u32 {
    8
}
fn default_sync() -> String {
    "full".into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_url(),
            max_connections: default_max_connections(),
            sqlite_synchronous: default_sync(),
        }
    }
}

impl StoreConfig {
    /// A store at `url` with the other settings at their defaults.
    pub fn with_url(url: impl Into<String>) -> Self {
        StoreConfig {
            url: url.into(),
            ..StoreConfig::default()
        }
    }

    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("store"), KeySeg::Key("url")],
                format!("\"{}\" is neither a SQLite nor a PostgreSQL URL", self.url),
                "write \"sqlite://data/astreinte.db\" or \"postgres://user:pass@host/db\"",
            ));
        }
        if self.max_connections == 0 {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("store"), KeySeg::Key("max_connections")],
                "a pool of 0 connections cannot serve anything",
                "write a positive number such as 8",
            ));
        }
        if !matches!(self.sqlite_synchronous.as_str(), "full" | "normal") {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("store"), KeySeg::Key("sqlite_synchronous")],
                format!("\"{}\" is not a synchronous mode", self.sqlite_synchronous),
                "write \"full\" or \"normal\"",
            ));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("no ticket numbered {0}")]
    NoSuchTicket(String),
    #[error("ticket {number} is {from}: it cannot be {action}")]
    BadTransition {
        number: String,
        from: Status,
        action: &'static str,
    },
    #[error("ticket {0} changed while being updated; try again")]
    Conflict(String),
    #[error("no free tracking number after several tries")]
    NumbersExhausted,
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the store's writer has stopped (the runtime is shutting down)")]
    WriterStopped,
}

/// The database behind a [`Store`].
#[derive(Debug, Clone)]
enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    /// How a writing transaction starts. SQLite: take the write lock up front, so a
    /// read-then-write transaction waits for another process's writer (busy_timeout) instead of
    /// failing on a stale snapshot.
    fn begin_write(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }
}

/// Runs `$body` with `$p` bound to the pool for reads, typed per backend.
macro_rules! on_read {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            crate::store::Db::Sqlite { read: $p, .. } => $body,
            crate::store::Db::Postgres($p) => $body,
        }
    };
}
/// Runs `$body` with `$p` bound to the pool for writes (SQLite: the single writer).
macro_rules! on_write {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            crate::store::Db::Sqlite { write: $p, .. } => $body,
            crate::store::Db::Postgres($p) => $body,
        }
    };
}
pub(crate) use {on_read, on_write};

/// The store: cheap to clone (pools inside).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    writer: writer::Writer,
    /// Counts this process's writes of live settings (hours, prompts, the announcement), for
    /// the live-settings service to look at once (`crate::live`).
    settings: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Store {
    /// Opens the database (SQLite: creates the file and its directory, WAL mode) and applies
    /// the migrations.
    pub async fn connect(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let store = Store::open(cfg).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens without migrating (used by `migrate` itself and by tests of migrations).
    pub async fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let db = if cfg.url.starts_with("sqlite:") {
            let sync = if cfg.sqlite_synchronous == "normal" {
                SqliteSynchronous::Normal
            } else {
                SqliteSynchronous::Full
            };
            let opts = SqliteConnectOptions::from_str(&cfg.url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sync)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let file = opts.get_filename().to_path_buf();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await?;
            // An in-memory database exists once per connection: read through the writer.
            let read = if cfg.url.contains(":memory:") || file.as_os_str() == ":memory:" {
                write.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(cfg.max_connections.max(1))
                    .connect_with(opts)
                    .await?
            };
            Db::Sqlite { read, write }
        } else {
            let opts = PgConnectOptions::from_str(&cfg.url)?;
            let pool = PgPoolOptions::new()
                .max_connections(cfg.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Db::Postgres(pool)
        };
        let writer = writer::Writer::spawn(db.clone());
        Ok(Store {
            db,
            writer,
            settings: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Marks every change of a live setting written through this store (or a clone of it);
    /// other processes' writes are not seen here (the service polls for those).
    pub fn settings_written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settings.subscribe()
    }

    /// Tells the listeners of [`Store::settings_written`] that a live setting was written.
    fn note_settings_written(&self) {
        self.settings.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies the pending migrations of this backend; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        match &self.db {
            Db::Sqlite { write, .. } => {
                let before = applied(write, true).await;
                let mut migrator = sqlx::migrate!("migrations/sqlite");
                migrator.set_ignore_missing(true);
                migrator.run(write).await?;
                let after = applied(write, true).await;
                newer_schema(after, migrator.iter().count());
                Ok(after.saturating_sub(before))
            }
            Db::Postgres(pool) => {
                let before = applied_pg(pool).await;
                // During a rolling upgrade a node of the previous release may (re)start after
                // a newer node has migrated the shared database: it starts, and says so. The
                // newer release's migrations only add (README "Upgrading the nodes one at a
                // time"), so the old node's queries still work.
                let mut migrator = sqlx::migrate!("migrations/postgres");
                migrator.set_ignore_missing(true);
                migrator.run(pool).await?;
                let after = applied_pg(pool).await;
                newer_schema(after, migrator.iter().count());
                Ok(after.saturating_sub(before))
            }
        }
    }

    /// Whether the database answers (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_read!(&self.db, pool => {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await?;
        });
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

/// Says when the database holds migrations this binary does not know (a newer release made
/// them): the node runs on, as one release older than its schema.
fn newer_schema(applied: usize, known: usize) {
    if applied > known {
        tracing::warn!(
            applied,
            known,
            "the database has migrations newer than this binary (a newer node made them): \
             running on them; upgrade this node"
        );
    }
}

async fn applied(pool: &SqlitePool, _sqlite: bool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

async fn applied_pg(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// Timestamps are kept to the microsecond, what PostgreSQL stores, so both backends return
/// exactly what was written.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
