//! Clusters the region has seen, and the capability snapshot each last pushed.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::schema::clusters;
use super::{DbError, Store};
use osmesh_actors::store::{ClusterRecord, ClusterSnapshot};

#[derive(Queryable, Selectable)]
#[diesel(table_name = clusters)]
struct ClusterRow {
    id: String,
    name: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_snapshot: Option<String>,
    snapshot_at_ms: Option<i64>,
}

impl ClusterRow {
    fn into_record(self) -> Result<ClusterRecord, DbError> {
        let snapshot = match (self.last_snapshot, self.snapshot_at_ms) {
            (Some(json), Some(at)) => Some((decode_snapshot(&self.id, &json)?, at)),
            _ => None,
        };
        Ok(ClusterRecord {
            id: ClusterId(self.id),
            name: self.name,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            snapshot,
        })
    }
}

fn decode_snapshot(id: &str, json: &str) -> Result<ClusterSnapshot, DbError> {
    serde_json::from_str(json).map_err(|e| DbError::Corrupt {
        what: "cluster snapshot",
        key: id.to_owned(),
        detail: e.to_string(),
    })
}

impl Store {
    /// Records that cluster `id` (called `name`) is connected now: creates it, or updates
    /// its name and last-seen time, keeping its first-seen time. Last-seen only moves
    /// forward: regions sharing a database write it from their own queues, so an older
    /// time may arrive after a newer one.
    pub fn upsert_cluster_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        let touch = |conn: &mut _| -> Result<usize, diesel::result::Error> {
            // A removed cluster registering again is seen for the first time again.
            diesel::update(clusters::table.find(&id.0).filter(clusters::removed))
                .set((
                    clusters::removed.eq(false),
                    clusters::first_seen_ms.eq(now_ms),
                    clusters::last_seen_ms.eq(now_ms),
                ))
                .execute(conn)?;
            let found = diesel::update(clusters::table.find(&id.0))
                .set(clusters::name.eq(name))
                .execute(conn)?;
            diesel::update(clusters::table.find(&id.0))
                .filter(clusters::last_seen_ms.lt(now_ms))
                .set(clusters::last_seen_ms.eq(now_ms))
                .execute(conn)?;
            Ok(found)
        };
        if touch(conn)? == 1 {
            return Ok(());
        }
        let inserted = diesel::insert_into(clusters::table)
            .values((
                clusters::id.eq(&id.0),
                clusters::name.eq(name),
                clusters::first_seen_ms.eq(now_ms),
                clusters::last_seen_ms.eq(now_ms),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => Ok(()),
            // Another region inserted it between our update and insert: update it instead.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                touch(conn)?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records the last time cluster `id` was heard from, when its link closes: moves its
    /// name and last-seen time (forward only) on a cluster on record, and does nothing to one
    /// removed meanwhile (another region's late write must not bring it back) or never seen.
    pub fn record_cluster_last_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        let live = clusters::table
            .find(&id.0)
            .filter(clusters::removed.eq(false));
        diesel::update(live)
            .set(clusters::name.eq(name))
            .execute(conn)?;
        diesel::update(live.filter(clusters::last_seen_ms.lt(now_ms)))
            .set(clusters::last_seen_ms.eq(now_ms))
            .execute(conn)?;
        Ok(())
    }

    /// Replaces the snapshot of a known cluster. `NotFound` if it was never seen.
    pub fn save_snapshot(
        &self,
        id: &ClusterId,
        snapshot: &ClusterSnapshot,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let json = serde_json::to_string(snapshot).map_err(|e| DbError::Invalid(e.to_string()))?;
        let conn = &mut *self.conn()?;
        let updated = diesel::update(
            clusters::table
                .find(&id.0)
                .filter(clusters::removed.eq(false)),
        )
        .set((
            clusters::last_snapshot.eq(json),
            clusters::snapshot_at_ms.eq(now_ms),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(DbError::NotFound {
                what: "cluster",
                key: id.0.clone(),
            });
        }
        Ok(())
    }

    /// Every cluster ever seen and not removed, sorted by id.
    pub fn list_clusters(&self) -> Result<Vec<ClusterRecord>, DbError> {
        let conn = &mut *self.conn()?;
        clusters::table
            .filter(clusters::removed.eq(false))
            .order(clusters::id)
            .select(ClusterRow::as_select())
            .load(conn)?
            .into_iter()
            .map(ClusterRow::into_record)
            .collect()
    }

    /// One cluster, or `None` if never seen (or removed).
    pub fn get_cluster(&self, id: &ClusterId) -> Result<Option<ClusterRecord>, DbError> {
        let conn = &mut *self.conn()?;
        clusters::table
            .find(&id.0)
            .filter(clusters::removed.eq(false))
            .select(ClusterRow::as_select())
            .first(conn)
            .optional()?
            .map(ClusterRow::into_record)
            .transpose()
    }
}
