//! A PostgreSQL schema of its own for one test, on the server `ASTREINTE_TEST_PG_URL` names
//! (`scripts/test.sh` starts one), dropped when the test ends.

use std::process::Command;

pub struct PgSchema {
    admin_url: String,
    pub schema: String,
    /// The URL a node's `[store] url` takes: the server, with this schema first in its path.
    pub url: String,
}

impl PgSchema {
    /// `None` (with a SKIP line) when no server is configured, except under `CI`, where a
    /// missing server fails the test.
    pub fn create(test: &str) -> Option<PgSchema> {
        let Ok(admin_url) = std::env::var("ASTREINTE_TEST_PG_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ASTREINTE_TEST_PG_URL is not: {test} cannot be skipped in CI"
            );
            super::skip(
                test,
                "ASTREINTE_TEST_PG_URL is not set (scripts/test.sh sets it)",
            );
            return None;
        };
        let schema = format!("{test}_{}", std::process::id());
        psql(&admin_url, &format!("CREATE SCHEMA {schema}"));
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        Some(PgSchema {
            admin_url,
            schema,
            url,
        })
    }

    /// Runs one SQL statement in this schema; its rows, one per line, columns split by '|'.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("run psql (install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .output();
    }
}
