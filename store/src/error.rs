//! The one error type the store returns; no store call panics on bad data.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no backend the store serves.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// No connection could be made or taken from the pool.
    #[error("cannot connect to the database: {0}")]
    Connection(String),
    /// The embedded migrations did not apply.
    #[error("database migrations failed: {0}")]
    Migration(String),
    /// The database refused or failed a statement.
    #[error("database query failed: {0}")]
    Query(#[source] DieselError),
    /// The record asked for does not exist.
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    /// The record would collide with one that exists (a unique key).
    #[error("{what} {key:?} already exists")]
    Conflict { what: &'static str, key: String },
    /// An optimistic-concurrency check failed: the caller edited an old version.
    #[error("preseed {name:?} changed meanwhile: edit was based on version {based_on}, current is {current}")]
    Stale {
        name: String,
        based_on: i32,
        current: i32,
    },
    /// The request does not fit the stored state (for example resolving a conflict that is not there).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A stored value does not decode (bad JSON, an unknown status): the row is reported, not trusted.
    #[error("stored {what} {key:?} is corrupt: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        DbError::Query(e)
    }
}

impl DbError {
    /// Turns Diesel's "no row" into `NotFound` for `what`/`key`, and the rest into `Query`.
    pub(crate) fn not_found(
        what: &'static str,
        key: impl Into<String>,
    ) -> impl FnOnce(DieselError) -> DbError {
        let key = key.into();
        move |e| match e {
            DieselError::NotFound => DbError::NotFound { what, key },
            other => DbError::Query(other),
        }
    }

    /// Turns a unique violation into `Conflict`, a foreign-key violation into `NotFound` of
    /// the referenced record, and the rest into `Query`.
    pub(crate) fn on_write(
        what: &'static str,
        key: impl Into<String>,
        referenced: (&'static str, String),
    ) -> impl FnOnce(DieselError) -> DbError {
        let key = key.into();
        move |e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                DbError::Conflict { what, key }
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                DbError::NotFound {
                    what: referenced.0,
                    key: referenced.1,
                }
            }
            other => DbError::Query(other),
        }
    }
}
