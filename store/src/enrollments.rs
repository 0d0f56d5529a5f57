//! Cluster enrollment (issue 13): one-time enrollment tokens (only their hash is stored), the
//! fingerprint of the certificate each cluster was issued, and revocation. The region admits a
//! cluster's certificate only while it is the one on record and the cluster is not revoked.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::connection::write_transaction;
use super::schema::clusters;
use super::{DbError, Store};
pub use osmesh_actors::store::{ClusterExclusions, EnrollmentRecord};

diesel::table! {
    cluster_enrollments (cluster_id) {
        cluster_id -> Text,
        token_hash -> Nullable<Text>,
        token_expires_ms -> Nullable<BigInt>,
        cert_sha256 -> Nullable<Text>,
        created_at_ms -> BigInt,
        enrolled_at_ms -> Nullable<BigInt>,
        revoked_at_ms -> Nullable<BigInt>,
    }
}

/// A row of `cluster_enrollments`, without the token's hash.
#[derive(Queryable, Selectable)]
#[diesel(table_name = cluster_enrollments)]
struct EnrollmentRow {
    cluster_id: String,
    token_expires_ms: Option<i64>,
    /// Fingerprint (SHA-256 hex of the DER) of the certificate issued at redemption.
    cert_sha256: Option<String>,
    created_at_ms: i64,
    enrolled_at_ms: Option<i64>,
    revoked_at_ms: Option<i64>,
}

impl From<EnrollmentRow> for EnrollmentRecord {
    fn from(row: EnrollmentRow) -> Self {
        EnrollmentRecord {
            cluster_id: row.cluster_id,
            token_expires_ms: row.token_expires_ms,
            cert_sha256: row.cert_sha256,
            created_at_ms: row.created_at_ms,
            enrolled_at_ms: row.enrolled_at_ms,
            revoked_at_ms: row.revoked_at_ms,
        }
    }
}

impl Store {
    /// Enrolls `id` afresh: a new one-time token (its hash), valid until `expires_ms`. Any
    /// earlier token, certificate and revocation of `id` is replaced, so only what the new
    /// token yields admits it.
    pub fn create_enrollment(
        &self,
        id: &ClusterId,
        token_hash: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            diesel::delete(cluster_enrollments::table.find(id.as_str())).execute(conn)?;
            diesel::insert_into(cluster_enrollments::table)
                .values((
                    cluster_enrollments::cluster_id.eq(id.as_str()),
                    cluster_enrollments::token_hash.eq(token_hash),
                    cluster_enrollments::token_expires_ms.eq(expires_ms),
                    cluster_enrollments::created_at_ms.eq(now_ms),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// Redeems `id`'s token once: `true` when `token_hash` is its live, unexpired token (which
    /// is then cleared, in the same statement, so a second use finds nothing).
    pub fn redeem_enrollment(
        &self,
        id: &ClusterId,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let conn = &mut *self.conn()?;
        let redeemed = diesel::update(
            cluster_enrollments::table
                .find(id.as_str())
                .filter(cluster_enrollments::token_hash.eq(token_hash))
                .filter(cluster_enrollments::token_expires_ms.gt(now_ms))
                .filter(cluster_enrollments::revoked_at_ms.is_null()),
        )
        .set((
            cluster_enrollments::token_hash.eq(None::<String>),
            cluster_enrollments::enrolled_at_ms.eq(now_ms),
        ))
        .execute(conn)?;
        Ok(redeemed == 1)
    }

    /// Records the certificate issued to `id` (its fingerprint): from now on only it admits
    /// the cluster.
    pub fn set_enrolled_certificate(
        &self,
        id: &ClusterId,
        cert_sha256: &str,
    ) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        diesel::update(cluster_enrollments::table.find(id.as_str()))
            .set(cluster_enrollments::cert_sha256.eq(cert_sha256))
            .execute(conn)?;
        Ok(())
    }

    /// `id`'s enrollment, if it has one.
    pub fn enrollment(&self, id: &ClusterId) -> Result<Option<EnrollmentRecord>, DbError> {
        let conn = &mut *self.conn()?;
        Ok(cluster_enrollments::table
            .find(id.as_str())
            .select(EnrollmentRow::as_select())
            .first(conn)
            .optional()?
            .map(EnrollmentRecord::from))
    }

    /// Revokes `id`: its certificate and any unredeemed token stop admitting it (a cluster
    /// never enrolled, e.g. one in compatibility mode, is recorded as revoked too). Returns
    /// whether the region knew it (enrolled, or seen).
    pub fn revoke_cluster(&self, id: &ClusterId, now_ms: i64) -> Result<bool, DbError> {
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            let seen = clusters::table
                .find(id.as_str())
                .filter(clusters::removed.eq(false))
                .count()
                .get_result::<i64>(conn)?
                > 0;
            let updated = diesel::update(cluster_enrollments::table.find(id.as_str()))
                .set((
                    cluster_enrollments::revoked_at_ms.eq(now_ms),
                    cluster_enrollments::token_hash.eq(None::<String>),
                ))
                .execute(conn)?;
            if updated == 0 {
                if !seen {
                    return Ok(false);
                }
                diesel::insert_into(cluster_enrollments::table)
                    .values((
                        cluster_enrollments::cluster_id.eq(id.as_str()),
                        cluster_enrollments::created_at_ms.eq(now_ms),
                        cluster_enrollments::revoked_at_ms.eq(now_ms),
                    ))
                    .execute(conn)?;
            }
            Ok(true)
        })
    }

    /// The clusters no region may keep a link to: those revoked, and those removed (their
    /// enrollment is gone). Each region applies it at its heartbeat, so a revocation or a
    /// removal made through one region reaches the links other regions hold.
    pub fn cluster_exclusions(&self) -> Result<ClusterExclusions, DbError> {
        let conn = &mut *self.conn()?;
        let revoked = cluster_enrollments::table
            .filter(cluster_enrollments::revoked_at_ms.is_not_null())
            .select(cluster_enrollments::cluster_id)
            .order(cluster_enrollments::cluster_id)
            .load::<String>(conn)?;
        let removed = clusters::table
            .filter(clusters::removed)
            .select(clusters::id)
            .order(clusters::id)
            .load::<String>(conn)?;
        Ok(ClusterExclusions {
            revoked: revoked.into_iter().map(ClusterId).collect(),
            removed: removed.into_iter().map(ClusterId).collect(),
        })
    }

    /// Removes `id`: hides it from every list, drops its snapshot, and deletes its enrollment
    /// (so its certificate admits nothing). The row itself stays, marked removed, because
    /// history refers to it (license keys it validated, preseed versions it shipped, nodes
    /// enlisted on it). Returns whether there was anything to remove. The caller checks it is
    /// disconnected.
    pub fn remove_cluster(&self, id: &ClusterId) -> Result<bool, DbError> {
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            let clusters = diesel::update(
                clusters::table
                    .find(id.as_str())
                    .filter(clusters::removed.eq(false)),
            )
            .set((
                clusters::removed.eq(true),
                clusters::last_snapshot.eq(None::<String>),
                clusters::snapshot_at_ms.eq(None::<i64>),
            ))
            .execute(conn)?;
            let enrollments =
                diesel::delete(cluster_enrollments::table.find(id.as_str())).execute(conn)?;
            let templates = super::cluster_templates::delete_lanes(conn, id)?;
            Ok(clusters + enrollments + templates > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("e.db").display());
        (dir, Store::open(&url).unwrap())
    }

    #[test]
    fn a_token_is_redeemed_once_and_only_before_it_expires() {
        let (_dir, store) = store();
        let a = ClusterId::new("cluster-a");
        store.create_enrollment(&a, "h1", 1_000, 0).unwrap();
        assert!(!store.redeem_enrollment(&a, "wrong", 10).unwrap());
        assert!(
            !store.redeem_enrollment(&a, "h1", 1_000).unwrap(),
            "expired"
        );
        store.create_enrollment(&a, "h2", 1_000, 0).unwrap();
        assert!(!store.redeem_enrollment(&a, "h1", 10).unwrap(), "replaced");
        assert!(store.redeem_enrollment(&a, "h2", 10).unwrap());
        assert!(!store.redeem_enrollment(&a, "h2", 11).unwrap(), "one-time");
        store.set_enrolled_certificate(&a, "fp").unwrap();
        let record = store.enrollment(&a).unwrap().unwrap();
        assert_eq!(record.cert_sha256.as_deref(), Some("fp"));
        assert_eq!(record.enrolled_at_ms, Some(10));
    }

    #[test]
    fn revoke_and_remove() {
        let (_dir, store) = store();
        let a = ClusterId::new("cluster-a");
        assert!(!store.revoke_cluster(&a, 5).unwrap(), "unknown");
        store.create_enrollment(&a, "h", 1_000, 0).unwrap();
        assert!(store.revoke_cluster(&a, 5).unwrap());
        assert!(!store.redeem_enrollment(&a, "h", 6).unwrap(), "revoked");
        assert_eq!(
            store.enrollment(&a).unwrap().unwrap().revoked_at_ms,
            Some(5)
        );
        store.upsert_cluster_seen(&a, "A", 7).unwrap();
        assert!(store.remove_cluster(&a).unwrap());
        assert!(store.get_cluster(&a).unwrap().is_none());
        assert!(store.enrollment(&a).unwrap().is_none());
        assert!(!store.remove_cluster(&a).unwrap());
    }
}
