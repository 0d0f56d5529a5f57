//! osmesh-store: the region's Diesel store. Clusters and their last snapshots, license keys,
//! settings, nodes, the preseed history, API tokens and the audit log, in SQLite (the embedded
//! default) or PostgreSQL (production, several regions sharing one database), behind one
//! [`Store`] type that implements `osmesh_actors::store::RegionStore`. Only `regiond`, the
//! simulator and tests link this crate (and with it libsqlite3 and libpq); `clusterd` and the
//! CLI do not.
//!
//! What it must not know: actors, the network or HTTP. Its records are the plain types of
//! `osmesh_actors::store`; its own rows stay private.
//!
//! The store is synchronous: every call runs its statements on the calling thread and
//! returns. It must not read a clock (callers pass unix milliseconds; the simulator runs it
//! on virtual time), spawn threads or tasks, or use `spawn_blocking`. The r2d2 pool it
//! holds opens connections on r2d2's own helper threads (regiond runs the calls themselves on
//! [`StoreThreads`], sized to the pool, so none runs on the region actor's thread); with SQLite the store turns off
//! r2d2's wall-clock reaping (idle timeout, max lifetime), so those threads only ever open
//! connections. Nothing it returns depends on hash order: every list is sorted.
//!
//! Atomicity: node allocation is a conditional `UPDATE … WHERE status = 'ready'` whose
//! row count decides the winner, so no node is handed out twice; preseed changes run in a
//! write transaction (`BEGIN IMMEDIATE` on SQLite, a per-name advisory lock on PostgreSQL)
//! so two concurrent edits cannot both win. License keys are never logged.
//!
//! Construct with [`Store::open`]: `postgres://…`/`postgresql://…` open PostgreSQL;
//! `sqlite://PATH`, `sqlite:PATH`, `file:…`, a plain path or `:memory:` open SQLite.
//! Migrations (`migrations/{sqlite,postgres}` at the workspace root, embedded) run there.

mod audit;
#[cfg(test)]
mod auth_tests;
mod cluster_templates;
mod clusters;
mod connection;
mod enrollments;
mod error;
mod license_keys;
mod nodes;
mod observe;
mod preseeds;
mod region;
mod regions;
mod schema;
mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod threads;
mod tokens;

use std::time::Duration;

use diesel::r2d2::{Pool, PooledConnection};

pub use audit::{AuditEntry, AuditQuery, NewAuditEntry, MAX_AUDIT_PAGE};
pub use connection::Backend;
pub use enrollments::{ClusterExclusions, EnrollmentRecord};
pub use error::DbError;
pub use observe::{install_query_metrics, PoolState, StoreReadiness};
pub use osmesh_actors::store::{
    decide_cluster_report, decide_operator_edit, mask_key, AllocationRequest, ClusterRecord,
    ClusterReportAction, ClusterSnapshot, ClusterTemplate, ClusterTemplateRecord, LicenseKeyRecord,
    NewLicenseKey, NewNode, NodeRecord, NodeStatus, PreseedConflict, PreseedHead, PreseedOrigin,
    PreseedOutcome, PreseedRecord, PreseedVersion, RegionStore, SettingKey, StoreError,
    StoreHandle, TemplateState,
};
pub use regions::{sqlite_file, NewRegion, RegionRecord};
pub use threads::StoreThreads;
pub use tokens::{NewToken, Role, TokenRecord};

use connection::{AnyConnection, AnyConnectionManager, DbTarget, SqlitePragmas};

/// How a [`Store`] sizes and tunes its pool.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most connections open at once. An in-memory SQLite database forces 1 (each
    /// connection would otherwise see its own empty database).
    pub pool_size: u32,
    /// How long a call waits for a free pooled connection before failing.
    pub connection_timeout: Duration,
    /// SQLite only: how long a statement waits for another connection's lock.
    pub sqlite_busy_timeout_ms: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 8,
            connection_timeout: Duration::from_secs(10),
            sqlite_busy_timeout_ms: 5_000,
        }
    }
}

/// The region's persistent state. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool<AnyConnectionManager>,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database `url` names with default options and applies pending migrations.
    pub fn open(url: &str) -> Result<Store, DbError> {
        Store::open_with(url, &StoreOptions::default())
    }

    /// Opens the database `url` names and applies pending migrations.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<Store, DbError> {
        let target = DbTarget::parse(url)?;
        let backend = target.backend();
        let memory = target.is_sqlite_memory();
        let pragmas = SqlitePragmas {
            busy_timeout_ms: options.sqlite_busy_timeout_ms,
            migrate_on_acquire: memory,
        };
        if !memory {
            // One connection outside the pool, so a failure carries the driver's own message.
            drop(connection::open_and_migrate(&target, &pragmas)?);
        }
        let mut builder = Pool::builder()
            .max_size(if memory { 1 } else { options.pool_size.max(1) })
            .min_idle(Some(0))
            .connection_timeout(options.connection_timeout)
            .connection_customizer(Box::new(pragmas));
        if backend == Backend::Sqlite {
            builder = builder.idle_timeout(None).max_lifetime(None);
        }
        let store = Store {
            pool: builder.build_unchecked(AnyConnectionManager { target }),
            backend,
        };
        if memory {
            // The pool's only connection is the database; opening it migrates it.
            drop(store.conn()?);
        }
        Ok(store)
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn conn(&self) -> Result<PooledConnection<AnyConnectionManager>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::Connection(e.to_string()))
    }
}

impl Store {
    /// A handle whose calls run on the caller's thread: the simulator's and tests' way.
    pub fn inline(&self) -> StoreHandle {
        StoreHandle::inline(std::sync::Arc::new(self.clone()))
    }

    /// A handle whose calls run on store threads of their own, one per pooled connection
    /// (more would only wait for one): regiond's way, so no database call runs on the region
    /// actor's thread.
    pub fn on_threads(&self) -> std::io::Result<StoreHandle> {
        let threads = usize::try_from(self.pool.max_size()).unwrap_or(1);
        let lanes = std::sync::Arc::new(StoreThreads::start(threads)?);
        Ok(StoreHandle::on_lanes(
            std::sync::Arc::new(self.clone()),
            lanes,
        ))
    }
}
