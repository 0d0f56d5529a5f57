//! Connections: which backend a URL names, the multi-backend connection type, the pool's
//! connection manager, SQLite's per-connection pragmas, and the embedded migrations.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{self, CustomizeConnection, ManageConnection, R2D2Connection};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;

pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub(crate) const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../migrations/postgres");

/// Key of the PostgreSQL advisory lock that serialises migrations when several regions start
/// against one database at once ("osmesh" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x6f73_6d65_7368;

/// One connection to either backend. Diesel's derive implements `Connection` for the enum;
/// its own `establish` would try PostgreSQL and then treat any string as a SQLite path, so
/// the store never calls it: [`DbTarget::establish`] picks the variant from the URL.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Which database engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A parsed database URL: the backend and what to hand its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DbTarget {
    /// A libpq URI, passed through unchanged.
    Postgres(String),
    /// A SQLite filename: a path, a `file:` URI or `:memory:`.
    Sqlite(String),
}

impl DbTarget {
    /// `postgres://`/`postgresql://` name PostgreSQL; `sqlite://PATH`, `sqlite:PATH`,
    /// `file:…`, `:memory:` and plain paths name SQLite; any other `scheme://` is refused
    /// rather than silently opened as a file of that name.
    pub(crate) fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbTarget::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() {
            return Err(DbError::InvalidUrl("empty SQLite path".into()));
        }
        if path.contains("://") {
            return Err(DbError::InvalidUrl(format!("unknown scheme in {url:?}")));
        }
        Ok(DbTarget::Sqlite(path.to_owned()))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            DbTarget::Postgres(_) => Backend::Postgres,
            DbTarget::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// True for an in-memory SQLite database, which exists once per connection.
    pub(crate) fn is_sqlite_memory(&self) -> bool {
        matches!(self, DbTarget::Sqlite(p) if p == ":memory:" || p.contains("mode=memory"))
    }

    fn establish(&self) -> ConnectionResult<AnyConnection> {
        match self {
            DbTarget::Postgres(url) => PgConnection::establish(url).map(AnyConnection::Postgresql),
            DbTarget::Sqlite(path) => SqliteConnection::establish(path).map(AnyConnection::Sqlite),
        }
    }
}

/// The r2d2 manager: opens the backend the URL named, never guesses.
pub(crate) struct AnyConnectionManager {
    pub(crate) target: DbTarget,
}

impl ManageConnection for AnyConnectionManager {
    type Connection = AnyConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, r2d2::Error> {
        self.target
            .establish()
            .map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Applied to every pooled SQLite connection: wait for locks instead of failing at once,
/// WAL so readers do not block the writer, and foreign keys enforced (off by default).
#[derive(Debug)]
pub(crate) struct SqlitePragmas {
    pub(crate) busy_timeout_ms: u32,
    /// For an in-memory database, which is born empty with each connection.
    pub(crate) migrate_on_acquire: bool,
}

impl SqlitePragmas {
    fn apply(&self, conn: &mut AnyConnection) -> QueryResult<()> {
        let AnyConnection::Sqlite(conn) = conn else {
            return Ok(());
        };
        // busy_timeout first: switching to WAL itself may wait for a lock.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            self.busy_timeout_ms
        ))
    }
}

impl CustomizeConnection<AnyConnection, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), r2d2::Error> {
        self.apply(conn).map_err(r2d2::Error::QueryError)?;
        if self.migrate_on_acquire {
            run_migrations(conn).map_err(|e| {
                r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(e.to_string()))
            })?;
        }
        Ok(())
    }
}

/// Opens one connection outside the pool (so a failure carries the driver's own message),
/// applies the pragmas and runs the pending migrations of its backend.
pub(crate) fn open_and_migrate(
    target: &DbTarget,
    pragmas: &SqlitePragmas,
) -> Result<AnyConnection, DbError> {
    // Switching a fresh SQLite file to WAL can answer "database is locked" at once, without
    // waiting for busy_timeout, while another store opening the same file holds its lock:
    // try again for a second before giving up (only when stores start together).
    let mut attempts = 0;
    loop {
        match open_and_migrate_once(target, pragmas) {
            Err(err) if attempts < 50 && err.to_string().contains("database is locked") => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn open_and_migrate_once(
    target: &DbTarget,
    pragmas: &SqlitePragmas,
) -> Result<AnyConnection, DbError> {
    let mut conn = target
        .establish()
        .map_err(|e| DbError::Connection(e.to_string()))?;
    pragmas.apply(&mut conn)?;
    run_migrations(&mut conn)?;
    Ok(conn)
}

fn run_migrations(conn: &mut AnyConnection) -> Result<(), DbError> {
    let applied = match conn {
        // Under the write lock (waiting up to busy_timeout), as PostgreSQL's advisory lock
        // below: stores opening one fresh file at once would otherwise both create its tables
        // ("table clusters already exists", found by the concurrent-migration test).
        AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
            c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len())
        }),
        AnyConnection::Postgresql(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            result
        }
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    if applied > 0 {
        tracing::info!(applied, "store migrations applied");
    }
    Ok(())
}

/// How many embedded migrations the database has not applied (readiness: 0 once started).
pub(crate) fn pending_migrations(conn: &mut AnyConnection) -> Result<usize, DbError> {
    match conn {
        AnyConnection::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        AnyConnection::Postgresql(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
    }
    .map_err(|e| DbError::Migration(e.to_string()))
}

/// Runs `body` in a transaction that writes. On SQLite it begins `IMMEDIATE`, taking the
/// write lock up front (waiting up to `busy_timeout`): a deferred transaction that reads and
/// then writes can fail with `SQLITE_BUSY` instead of waiting. On PostgreSQL it is a plain
/// `BEGIN`; bodies that read-then-write lock what they read (see `lock_key`).
pub(crate) fn write_transaction<T>(
    conn: &mut AnyConnection,
    body: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match body(conn) {
        Ok(value) => {
            AnyConnection::commit_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = AnyConnection::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "store rollback failed");
            }
            Err(e)
        }
    }
}

/// What a [`lock_key`] key names, so equal keys of different kinds do not collide.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LockSpace {
    Setting = 1,
    Preseed = 2,
}

/// Inside a [`write_transaction`], serialises every transaction that locks the same
/// `(space, key)` until commit, even when no row exists yet. SQLite's `IMMEDIATE`
/// transaction already holds the database's only write lock, so this is a no-op there.
pub(crate) fn lock_key(
    conn: &mut AnyConnection,
    space: LockSpace,
    key: &str,
) -> Result<(), DbError> {
    let AnyConnection::Postgresql(c) = conn else {
        return Ok(());
    };
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<diesel::sql_types::Integer, _>(space as i32)
        .bind::<diesel::sql_types::Text, _>(key)
        .execute(c)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Option<DbTarget>) {
        assert_eq!(DbTarget::parse(url).ok(), expected, "{url}");
    }

    #[test]
    fn url_scheme_chooses_the_backend() {
        let pg = |s: &str| Some(DbTarget::Postgres(s.into()));
        let lite = |s: &str| Some(DbTarget::Sqlite(s.into()));
        check("postgres://u@h/db", pg("postgres://u@h/db"));
        check(
            "postgresql://h/db?options=-csearch_path%3Dx",
            pg("postgresql://h/db?options=-csearch_path%3Dx"),
        );
        check("sqlite:///var/lib/osmesh.db", lite("/var/lib/osmesh.db"));
        check("sqlite://rel.db", lite("rel.db"));
        check("sqlite:rel.db", lite("rel.db"));
        check("file:x.db?mode=rwc", lite("file:x.db?mode=rwc"));
        check(":memory:", lite(":memory:"));
        check("/tmp/a.db", lite("/tmp/a.db"));
        check("mysql://h/db", None);
        check("sqlite://", None);
        check("", None);
    }
}
