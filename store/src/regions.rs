//! The region registry: every `regiond` sharing this database records itself (id, name, the
//! RPC endpoints clusters dial, its HTTP URL, when it started) and refreshes a heartbeat with
//! the clusters linked to it. Others read the rows to tell clusters every region's endpoints
//! and to show which regions are up; rows whose heartbeat lapsed long ago are removed.
//!
//! Also here: the SQLite file a URL names, which `regiond` locks so that a second region on
//! the same file refuses to start (SQLite is single-region).

use std::path::PathBuf;

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::connection::DbTarget;
use super::schema::{clusters, regions};
use super::{DbError, Store};
pub use osmesh_actors::store::RegionRecord;

/// The file of the SQLite database `url` names; `None` for PostgreSQL and in-memory SQLite
/// (nothing on disk to share). A `file:` URI loses its scheme and query.
pub fn sqlite_file(url: &str) -> Result<Option<PathBuf>, DbError> {
    let target = DbTarget::parse(url)?;
    if target.is_sqlite_memory() {
        return Ok(None);
    }
    let DbTarget::Sqlite(path) = target else {
        return Ok(None);
    };
    let path = match path.strip_prefix("file:") {
        Some(uri) => uri.split('?').next().unwrap_or(uri).to_owned(),
        None => path,
    };
    Ok(Some(PathBuf::from(path)))
}

/// A region as it records itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRegion<'a> {
    /// Unique per process start (a random id): a restarted region is a new row.
    pub id: &'a str,
    pub name: &'a str,
    /// The addresses clusters dial, as `host:port`.
    pub rpc_endpoints: &'a [String],
    /// Where its HTTP API answers (`http://host:port`).
    pub http_url: &'a str,
    pub started_at_ms: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = regions)]
struct RegionRow {
    id: String,
    name: String,
    rpc_endpoints: String,
    http_url: String,
    started_at_ms: i64,
    heartbeat_ms: i64,
    linked_clusters: String,
}

impl RegionRow {
    fn into_record(self) -> Result<RegionRecord, DbError> {
        let corrupt = |detail: String| DbError::Corrupt {
            what: "region",
            key: self.id.clone(),
            detail,
        };
        let rpc_endpoints: Vec<String> =
            serde_json::from_str(&self.rpc_endpoints).map_err(|e| corrupt(e.to_string()))?;
        let mut linked_clusters: Vec<ClusterId> =
            serde_json::from_str(&self.linked_clusters).map_err(|e| corrupt(e.to_string()))?;
        linked_clusters.sort();
        Ok(RegionRecord {
            id: self.id,
            name: self.name,
            rpc_endpoints,
            http_url: self.http_url,
            started_at_ms: self.started_at_ms,
            heartbeat_ms: self.heartbeat_ms,
            linked_clusters,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, DbError> {
    serde_json::to_string(value).map_err(|e| DbError::Invalid(e.to_string()))
}

impl Store {
    /// Records a starting region. A row of an earlier process on the same RPC endpoints (a
    /// region restarted on its address) is replaced: it cannot be alive any more.
    pub fn register_region(&self, region: &NewRegion<'_>) -> Result<(), DbError> {
        let endpoints = to_json(&region.rpc_endpoints)?;
        let conn = &mut *self.conn()?;
        diesel::delete(regions::table.filter(regions::rpc_endpoints.eq(&endpoints)))
            .execute(conn)?;
        diesel::insert_into(regions::table)
            .values((
                regions::id.eq(region.id),
                regions::name.eq(region.name),
                regions::rpc_endpoints.eq(&endpoints),
                regions::http_url.eq(region.http_url),
                regions::started_at_ms.eq(region.started_at_ms),
                regions::heartbeat_ms.eq(region.started_at_ms),
                regions::linked_clusters.eq("[]"),
            ))
            .execute(conn)
            .map_err(DbError::on_write(
                "region",
                region.id,
                ("region", String::new()),
            ))?;
        Ok(())
    }

    /// Refreshes region `id`'s heartbeat and linked clusters. `false` when its row is gone
    /// (another region removed it after a long silence): the caller registers again.
    pub fn region_heartbeat(
        &self,
        id: &str,
        now_ms: i64,
        linked: &[ClusterId],
    ) -> Result<bool, DbError> {
        let linked = to_json(&linked)?;
        let conn = &mut *self.conn()?;
        let updated = diesel::update(regions::table.find(id))
            .set((
                regions::heartbeat_ms.eq(now_ms),
                regions::linked_clusters.eq(linked),
            ))
            .execute(conn)?;
        Ok(updated == 1)
    }

    /// Every recorded region, sorted by name then id.
    pub fn list_regions(&self) -> Result<Vec<RegionRecord>, DbError> {
        let conn = &mut *self.conn()?;
        regions::table
            .order((regions::name, regions::id))
            .select(RegionRow::as_select())
            .load(conn)?
            .into_iter()
            .map(RegionRow::into_record)
            .collect()
    }

    /// Removes the regions whose last heartbeat is older than `cutoff_ms`; how many.
    pub fn forget_regions_silent_since(&self, cutoff_ms: i64) -> Result<usize, DbError> {
        let conn = &mut *self.conn()?;
        Ok(
            diesel::delete(regions::table.filter(regions::heartbeat_ms.lt(cutoff_ms)))
                .execute(conn)?,
        )
    }

    /// The id of every cluster any region has seen, sorted (cheap: no snapshots), so a
    /// region learns of clusters that linked only to others.
    pub fn list_cluster_ids(&self) -> Result<Vec<ClusterId>, DbError> {
        let conn = &mut *self.conn()?;
        Ok(clusters::table
            .filter(clusters::removed.eq(false))
            .select(clusters::id)
            .order(clusters::id)
            .load::<String>(conn)?
            .into_iter()
            .map(ClusterId)
            .collect())
    }

    /// Removes region `id`'s row (a clean stop: the others see it gone at once).
    pub fn deregister_region(&self, id: &str) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        diesel::delete(regions::table.find(id)).execute(conn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

    #[test]
    fn sqlite_file_names_the_file_behind_a_url() {
        let check = |url: &str, expected: Option<&str>| {
            assert_eq!(
                sqlite_file(url).ok().flatten(),
                expected.map(PathBuf::from),
                "{url}"
            );
        };
        check("sqlite:///var/lib/osmesh.db", Some("/var/lib/osmesh.db"));
        check("sqlite://rel.db", Some("rel.db"));
        check("file:x.db?mode=rwc", Some("x.db"));
        check("/tmp/a.db", Some("/tmp/a.db"));
        check(":memory:", None);
        check("file:m?mode=memory&cache=shared", None);
        check("postgres://u@h/db", None);
        assert!(sqlite_file("mysql://h/db").is_err());
    }

    fn region<'a>(id: &'a str, endpoints: &'a [String], started: i64) -> NewRegion<'a> {
        NewRegion {
            id,
            name: "r",
            rpc_endpoints: endpoints,
            http_url: "http://127.0.0.1:5240",
            started_at_ms: started,
        }
    }

    #[test]
    fn regions_register_beat_and_are_forgotten_after_silence() {
        for db in TestDb::each() {
            let store = db.open();
            let a = vec!["10.0.0.1:5250".to_owned()];
            let b = vec!["10.0.0.2:5250".to_owned()];
            store.register_region(&region("a", &a, 1_000)).unwrap();
            store.register_region(&region("b", &b, 1_000)).unwrap();
            let linked = [ClusterId::new("c2"), ClusterId::new("c1")];
            assert!(store.region_heartbeat("a", 5_000, &linked).unwrap());
            let regions = store.list_regions().unwrap();
            assert_eq!(
                regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                ["a", "b"],
                "[{}]",
                db.label
            );
            assert_eq!(regions[0].heartbeat_ms, 5_000);
            assert_eq!(
                regions[0].linked_clusters,
                [ClusterId::new("c1"), ClusterId::new("c2")]
            );
            assert_eq!(regions[0].rpc_endpoints, a);

            assert_eq!(store.forget_regions_silent_since(2_000).unwrap(), 1);
            assert!(!store.region_heartbeat("b", 6_000, &[]).unwrap());
            assert_eq!(store.list_regions().unwrap().len(), 1);
            store.deregister_region("a").unwrap();
            assert!(store.list_regions().unwrap().is_empty(), "[{}]", db.label);
        }
    }

    #[test]
    fn a_region_restarted_on_its_endpoints_replaces_its_old_row() {
        for db in TestDb::each() {
            let store = db.open();
            let a = vec!["10.0.0.1:5250".to_owned()];
            store.register_region(&region("old", &a, 1_000)).unwrap();
            store.register_region(&region("new", &a, 9_000)).unwrap();
            let ids: Vec<_> = store
                .list_regions()
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, ["new"], "[{}]", db.label);
        }
    }
}
