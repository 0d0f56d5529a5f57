//! What an operator watches of the store: the pool's state, readiness (the database answers
//! and every embedded migration is applied) and per-statement latency for `/metrics`.

use diesel::connection::{Instrumentation, InstrumentationEvent, SimpleConnection};
use tokio::time::Instant;

use super::{connection, DbError, Store};

/// Connections of the pool now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
}

/// Why the store is not ready; `check` names which of its two checks failed.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreReadiness {
    Ready,
    /// No connection could be had, or `SELECT 1` failed.
    DatabaseUnreachable(String),
    /// The schema lags this binary: migrations are pending (or cannot be read).
    MigrationsPending(String),
}

impl Store {
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
        }
    }

    /// Asks the database: is it reachable, and is every migration applied?
    pub fn readiness(&self) -> StoreReadiness {
        let mut conn = match self.conn() {
            Ok(conn) => conn,
            Err(e) => return StoreReadiness::DatabaseUnreachable(e.to_string()),
        };
        if let Err(e) = conn.batch_execute("SELECT 1") {
            return StoreReadiness::DatabaseUnreachable(DbError::Query(e).to_string());
        }
        match connection::pending_migrations(&mut conn) {
            Ok(0) => StoreReadiness::Ready,
            Ok(n) => StoreReadiness::MigrationsPending(format!("{n} migrations not applied")),
            Err(e) => StoreReadiness::MigrationsPending(e.to_string()),
        }
    }
}

/// Times every statement of every connection opened after this call (Diesel's default
/// instrumentation): `osmesh_db_query_duration_seconds`, `osmesh_db_query_errors_total`.
/// For the daemons; process-wide.
pub fn install_query_metrics() {
    // Diesel keeps one process-wide default; setting it twice keeps the second (the same).
    let _ = diesel::connection::set_default_instrumentation(|| {
        Some(Box::new(QueryTimer { started: None }))
    });
}

/// One connection's statement timer.
struct QueryTimer {
    started: Option<Instant>,
}

impl Instrumentation for QueryTimer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(started) = self.started.take() {
                    metrics::histogram!("osmesh_db_query_duration_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                if error.is_some() {
                    metrics::counter!("osmesh_db_query_errors_total").increment(1);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn a_migrated_store_is_ready_and_its_pool_is_counted() {
        for db in TestDb::each() {
            let store = db.open();
            assert_eq!(store.readiness(), StoreReadiness::Ready, "{}", db.url);
            let state = store.pool_state();
            assert!(state.in_use == 0 && state.idle >= 1, "{state:?}");
        }
    }

    #[test]
    fn a_schema_behind_the_binary_is_not_ready_and_says_so() {
        for db in TestDb::each() {
            let store = db.open();
            store
                .conn()
                .expect("a connection")
                .batch_execute("DELETE FROM __diesel_schema_migrations")
                .expect("forget the applied migrations");
            match store.readiness() {
                StoreReadiness::MigrationsPending(why) => {
                    assert!(why.contains("migrations not applied"), "{why}")
                }
                other => panic!("{}: {other:?}", db.url),
            }
        }
    }
}
