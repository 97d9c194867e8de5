//! The two store backends for tests that run one scenario on each: a temp SQLite file, and a
//! fresh schema on the PostgreSQL of ASTREINTE_TEST_PG_URL (so tests run in parallel). Without
//! the URL the PostgreSQL half fails when CI is set, and says it skipped otherwise.

use astreinte::store::{Store, StoreConfig};

/// A store on a new SQLite file, in directories that do not exist yet (the store makes them).
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/dir/astreinte.db", dir.path().display());
    let store = Store::connect(&StoreConfig::with_url(url)).await.unwrap();
    (store, dir)
}

pub struct Pg {
    pub store: Store,
    pub admin: sqlx::PgPool,
    pub schema: String,
}

impl Pg {
    pub async fn drop(self) {
        self.store.close().await;
        let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await;
        self.admin.close().await;
    }
}

pub async fn pg(test: &str) -> Option<Pg> {
    let Ok(url) = std::env::var("ASTREINTE_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but ASTREINTE_TEST_PG_URL is not: the PostgreSQL tests cannot be skipped in CI");
        }
        super::skip(
            &format!("{test} on PostgreSQL"),
            "ASTREINTE_TEST_PG_URL is not set (scripts/test.sh sets it)",
        );
        return None;
    };
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to ASTREINTE_TEST_PG_URL");
    // PostgreSQL cuts names at 63 bytes: the test's part is shortened so the random suffix
    // survives (else a long test name reuses the schema a failed run left behind).
    let short: String = test.chars().take(40).collect();
    let schema = format!("t_{}_{}", short, rand_suffix());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect(&StoreConfig::with_url(store_url))
        .await
        .unwrap();
    Some(Pg {
        store,
        admin,
        schema,
    })
}

/// Unique within the test run: process, counter, and the clock's nanoseconds.
pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}
