//! Each cluster's own templates: one row per (cluster, name) the cluster ever shipped, with an
//! admin's word on it (`pending` until approved or refused), the newest version holding what
//! the cluster ships that passed the arrival check, and why its newest report did not.
//!
//! The rows decide which cluster templates may serve a node (`templates_for_cluster` in
//! `osmesh_actors::store`): only the node's own cluster's, and only approved ones. The version
//! history itself stays in `preseeds.rs`; this module is called inside its transactions.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::connection::{lock_key, write_transaction, AnyConnection, LockSpace};
use super::schema::cluster_templates;
use super::{DbError, Store};
use osmesh_actors::store::{ClusterTemplateRecord, TemplateState};

#[derive(Queryable, Selectable)]
#[diesel(table_name = cluster_templates)]
pub(crate) struct LaneRow {
    cluster_id: String,
    name: String,
    state: String,
    version: Option<i32>,
    content_hash: String,
    error: Option<String>,
    first_seen_ms: i64,
    updated_at_ms: i64,
}

impl LaneRow {
    fn into_record(self) -> Result<ClusterTemplateRecord, DbError> {
        let state = TemplateState::parse(&self.state).ok_or_else(|| DbError::Corrupt {
            what: "cluster template",
            key: format!("{}/{}", self.cluster_id, self.name),
            detail: format!("bad state {:?}", self.state),
        })?;
        Ok(ClusterTemplateRecord {
            cluster: ClusterId(self.cluster_id),
            name: self.name,
            state,
            version: self.version,
            content_hash: self.content_hash,
            error: self.error,
            first_seen_ms: self.first_seen_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// What a cluster's report of one name leaves in its row: its hash, and either the version
/// holding it (it passed the arrival check) or why it failed.
pub(crate) struct LaneUpdate<'a> {
    pub hash: &'a str,
    pub outcome: Result<i32, &'a str>,
}

pub(crate) fn load_lane(
    conn: &mut AnyConnection,
    cluster: &ClusterId,
    name: &str,
) -> Result<Option<LaneRow>, DbError> {
    Ok(cluster_templates::table
        .find((cluster.as_str(), name))
        .select(LaneRow::as_select())
        .first(conn)
        .optional()?)
}

/// How many names `cluster` has a row for.
pub(crate) fn lane_names(
    conn: &mut AnyConnection,
    cluster: &ClusterId,
) -> Result<std::collections::BTreeSet<String>, DbError> {
    Ok(cluster_templates::table
        .filter(cluster_templates::cluster_id.eq(cluster.as_str()))
        .select(cluster_templates::name)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

/// Records a report of `name` by `cluster` in its row: a new row is `pending`; an existing
/// one keeps the admin's word. Writes nothing when the row already says so.
pub(crate) fn save_lane(
    conn: &mut AnyConnection,
    lane: Option<&LaneRow>,
    cluster: &ClusterId,
    name: &str,
    update: &LaneUpdate<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    let (version, error) = match update.outcome {
        Ok(version) => (Some(version), None),
        // A failing report leaves the last passing version in place.
        Err(error) => (lane.and_then(|l| l.version), Some(error)),
    };
    let Some(lane) = lane else {
        diesel::insert_into(cluster_templates::table)
            .values((
                cluster_templates::cluster_id.eq(cluster.as_str()),
                cluster_templates::name.eq(name),
                cluster_templates::state.eq(TemplateState::Pending.as_str()),
                cluster_templates::version.eq(version),
                cluster_templates::content_hash.eq(update.hash),
                cluster_templates::error.eq(error),
                cluster_templates::first_seen_ms.eq(now_ms),
                cluster_templates::updated_at_ms.eq(now_ms),
            ))
            .execute(conn)?;
        return Ok(());
    };
    if lane.version == version && lane.content_hash == update.hash && lane.error.as_deref() == error
    {
        return Ok(());
    }
    diesel::update(cluster_templates::table.find((cluster.as_str(), name)))
        .set((
            cluster_templates::version.eq(version),
            cluster_templates::content_hash.eq(update.hash),
            cluster_templates::error.eq(error),
            cluster_templates::updated_at_ms.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

impl Store {
    /// Every (cluster, name) row, sorted by cluster then name.
    pub fn list_cluster_templates(&self) -> Result<Vec<ClusterTemplateRecord>, DbError> {
        let conn = &mut *self.conn()?;
        cluster_templates::table
            .order((cluster_templates::cluster_id, cluster_templates::name))
            .select(LaneRow::as_select())
            .load(conn)?
            .into_iter()
            .map(LaneRow::into_record)
            .collect()
    }

    /// An admin's word on what `cluster` ships as `name`: `Approved` lets it serve the
    /// cluster's own nodes, `Refused` stops it. `NotFound` if the cluster never shipped the
    /// name; `Invalid` for `Pending` (a name is pending only until decided).
    pub fn decide_cluster_template(
        &self,
        cluster: &ClusterId,
        name: &str,
        state: TemplateState,
        now_ms: i64,
    ) -> Result<ClusterTemplateRecord, DbError> {
        if state == TemplateState::Pending {
            return Err(DbError::Invalid(
                "a cluster template can be approved or refused, not made pending".to_owned(),
            ));
        }
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            lock_key(conn, LockSpace::Preseed, name)?;
            let changed = diesel::update(cluster_templates::table.find((cluster.as_str(), name)))
                .set((
                    cluster_templates::state.eq(state.as_str()),
                    cluster_templates::updated_at_ms.eq(now_ms),
                ))
                .execute(conn)?;
            if changed == 0 {
                return Err(DbError::NotFound {
                    what: "cluster template",
                    key: format!("{cluster}/{name}"),
                });
            }
            load_lane(conn, cluster, name)?
                .ok_or_else(|| DbError::NotFound {
                    what: "cluster template",
                    key: format!("{cluster}/{name}"),
                })?
                .into_record()
        })
    }
}

/// Deletes `cluster`'s rows (the cluster is being removed): its approvals do not outlive it.
pub(crate) fn delete_lanes(
    conn: &mut AnyConnection,
    cluster: &ClusterId,
) -> Result<usize, DbError> {
    Ok(diesel::delete(
        cluster_templates::table.filter(cluster_templates::cluster_id.eq(cluster.as_str())),
    )
    .execute(conn)?)
}
