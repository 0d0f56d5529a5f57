//! Test databases for the store's tests and the region's: each test gets a fresh SQLite file,
//! and a fresh PostgreSQL schema when `OSMESH_TEST_POSTGRES_URL` is set. With the variable
//! set, an unreachable server fails the test: a configured backend never skips.
//!
//! Compiled for this crate's tests and with the `testing` feature; never in a daemon.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Store, StoreOptions};

/// The variable naming the PostgreSQL server the tests may use.
pub const PG_ENV: &str = "OSMESH_TEST_POSTGRES_URL";

static NEXT_SCHEMA: AtomicUsize = AtomicUsize::new(0);

/// A database for one test; removes itself (temp dir, or PostgreSQL schema) on drop.
pub struct TestDb {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, schema) to drop at the end.
    pg_schema: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("region.db").display());
        TestDb {
            label: "sqlite",
            url,
            _dir: Some(dir),
            pg_schema: None,
        }
    }

    /// A fresh schema on the server `admin_url` names; panics if it is unreachable.
    pub fn postgres(admin_url: &str) -> TestDb {
        let mut admin = PgConnection::establish(admin_url).unwrap_or_else(|e| {
            panic!("{PG_ENV}={admin_url} is set but the server is unreachable: {e}")
        });
        let schema = format!(
            "osmesh_t_{}_{}",
            std::process::id(),
            NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .unwrap_or_else(|e| panic!("cannot create test schema {schema}: {e}"));
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        TestDb {
            label: "postgres",
            url: format!("{admin_url}{sep}options=-csearch_path%3D{schema}"),
            _dir: None,
            pg_schema: Some((admin_url.to_owned(), schema)),
        }
    }

    /// SQLite always, PostgreSQL too when configured; when it is not, says so once per test
    /// binary on the real stderr (not the captured one), so a skipped leg is never silent.
    pub fn each() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        match std::env::var(PG_ENV) {
            Ok(url) => dbs.push(TestDb::postgres(&url)),
            Err(_) => note_postgres_skipped(),
        }
        dbs
    }

    pub fn open(&self) -> Store {
        self.open_with(&StoreOptions::default())
    }

    pub fn open_with(&self, options: &StoreOptions) -> Store {
        Store::open_with(&self.url, options)
            .unwrap_or_else(|e| panic!("[{}] open {}: {e}", self.label, self.url))
    }
}

/// Prints, once per process, that the PostgreSQL leg is skipped.
pub fn note_postgres_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "note: {PG_ENV} is unset: the PostgreSQL leg of the store tests is skipped (SQLite only)"
        );
    });
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, schema)) = &self.pg_schema {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}
