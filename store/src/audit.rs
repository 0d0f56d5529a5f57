//! The audit log: one row per write the API received, accepted or refused. Append-only: the
//! store offers no update or delete, and database triggers refuse both (and PostgreSQL's
//! TRUNCATE), so not even a hand-typed SQL statement through the region's account rewrites it.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::audit_log;
use super::{DbError, Store};

/// The most rows one [`Store::audit`] call returns, whatever the caller asks.
pub const MAX_AUDIT_PAGE: i64 = 500;

/// A write to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry<'a> {
    pub at_ms: i64,
    /// The token's name and role; `None` when the request carried no valid token.
    pub token_name: Option<&'a str>,
    pub role: Option<&'a str>,
    pub method: &'a str,
    /// The route pattern, or the raw path when no route matched.
    pub route: &'a str,
    /// The path written.
    pub object: &'a str,
    /// The HTTP status answered; 2xx and 3xx count as accepted.
    pub status: u16,
    pub client: &'a str,
}

/// A recorded write, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, Queryable, Selectable)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub token_name: Option<String>,
    pub role: Option<String>,
    pub method: String,
    pub route: String,
    pub object: String,
    pub status: i32,
    /// `accepted` or `refused`.
    pub outcome: String,
    pub client: String,
}

/// Which rows to read: newest first, optionally only those of one object or one token, only
/// older than `before_id` (the previous page's last id), at most `limit` (capped at
/// [`MAX_AUDIT_PAGE`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub object: Option<String>,
    pub token_name: Option<String>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Appends one row.
    pub fn append_audit(&self, entry: &NewAuditEntry) -> Result<(), DbError> {
        let outcome = if entry.status < 400 {
            "accepted"
        } else {
            "refused"
        };
        let conn = &mut *self.conn()?;
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::at_ms.eq(entry.at_ms),
                audit_log::token_name.eq(entry.token_name),
                audit_log::role.eq(entry.role),
                audit_log::method.eq(entry.method),
                audit_log::route.eq(entry.route),
                audit_log::object.eq(entry.object),
                audit_log::status.eq(i32::from(entry.status)),
                audit_log::outcome.eq(outcome),
                audit_log::client.eq(entry.client),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// One page of the log, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, DbError> {
        let conn = &mut *self.conn()?;
        let mut select = audit_log::table
            .select(AuditEntry::as_select())
            .order(audit_log::id.desc())
            .limit(query.limit.clamp(1, MAX_AUDIT_PAGE))
            .into_boxed();
        if let Some(object) = &query.object {
            select = select.filter(audit_log::object.eq(object.clone()));
        }
        if let Some(token) = &query.token_name {
            select = select.filter(audit_log::token_name.eq(token.clone()));
        }
        if let Some(before) = query.before_id {
            select = select.filter(audit_log::id.lt(before));
        }
        Ok(select.load(conn)?)
    }
}
