//! Preseed templates as an immutable version history per name, with the rule that decides
//! what a cluster's report or an operator's edit does to it.
//!
//! Every change appends a version (1, 2, 3… per name); none is ever updated or deleted
//! (triggers in the migrations refuse it). `preseeds` points at the current version and,
//! while a cluster changed a template the operator had edited, names both sides of the
//! conflict. The rules:
//!
//! - a cluster reports a new name: version 1, from that cluster, current;
//! - a cluster reports content equal to the newest cluster-originated version, or to the
//!   newest version from that same cluster: nothing changes (re-reports are idempotent, and
//!   two clusters shipping different templates do not flip-flop the history);
//! - a cluster reports changed content and the current version came from a cluster: a new
//!   version, current;
//! - a cluster reports changed content and the current version is an operator's: a new
//!   version is stored, the operator's stays current, and the preseed is in conflict
//!   (operator version, cluster version); a further change moves the cluster side;
//!   content equal to the operator's current version is stored and ends the conflict
//!   instead (the cluster caught up), the operator's version staying current;
//! - an operator edit must be based on the current version (else `Stale`); it adds an
//!   operator version, parent = that base, current. Made during a conflict it resolves
//!   the conflict: the operator saw both sides and saved the merge;
//! - `resolve_conflict` picks one side as current without adding a version.
//!
//! Which version serves a node is not the current version alone: each cluster's templates
//! are its own (`cluster_templates.rs`). A current version from the operator serves every
//! cluster's nodes; otherwise a node is served only by its own cluster's approved template
//! of the name. A template that failed its arrival check (parse and trial render, done by
//! the caller) never enters the history: only the cluster's row records it, with the error.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::cluster_templates::{lane_names, load_lane, save_lane, LaneUpdate};
use super::connection::{lock_key, write_transaction, AnyConnection, LockSpace};
use super::schema::{preseed_versions, preseeds};
use super::{DbError, Store};
use osmesh_actors::store::{
    decide_cluster_report, decide_operator_edit, ClusterReportAction, ClusterTemplate,
    PreseedConflict, PreseedHead, PreseedOrigin, PreseedOutcome, PreseedRecord, PreseedVersion,
};

diesel::allow_tables_to_appear_in_same_query!(preseeds, preseed_versions);

const ORIGIN_CLUSTER: &str = "cluster";
const ORIGIN_OPERATOR: &str = "operator";

#[derive(Queryable, Selectable)]
#[diesel(table_name = preseeds)]
struct HeadRow {
    current_version: i32,
    conflict_operator_version: Option<i32>,
    conflict_cluster_version: Option<i32>,
    updated_at_ms: i64,
}

impl HeadRow {
    fn conflict(&self) -> Option<PreseedConflict> {
        Some(PreseedConflict {
            operator_version: self.conflict_operator_version?,
            cluster_version: self.conflict_cluster_version?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = preseed_versions)]
struct VersionRow {
    name: String,
    version: i32,
    osystem: Option<String>,
    origin: String,
    origin_cluster: Option<String>,
    parent_version: Option<i32>,
    content: String,
    content_hash: String,
    created_at_ms: i64,
}

impl VersionRow {
    fn into_version(self) -> Result<PreseedVersion, DbError> {
        let origin = match (self.origin.as_str(), self.origin_cluster) {
            (ORIGIN_CLUSTER, Some(cluster)) => PreseedOrigin::Cluster(ClusterId(cluster)),
            (ORIGIN_OPERATOR, None) => PreseedOrigin::Operator,
            (origin, _) => {
                return Err(DbError::Corrupt {
                    what: "preseed version",
                    key: format!("{}@{}", self.name, self.version),
                    detail: format!("bad origin {origin:?}"),
                })
            }
        };
        Ok(PreseedVersion {
            name: self.name,
            version: self.version,
            osystem: self.osystem,
            origin,
            parent_version: self.parent_version,
            content: self.content,
            content_hash: self.content_hash,
            created_at_ms: self.created_at_ms,
        })
    }
}

/// Lower-case hex SHA-256 of a template.
fn content_hash(content: &str) -> String {
    osmesh_actors::store::content_hash(content)
}

/// A version about to be appended.
struct Append<'a> {
    name: &'a str,
    version: i32,
    osystem: Option<&'a str>,
    origin_cluster: Option<&'a ClusterId>,
    parent_version: Option<i32>,
    content: &'a str,
    content_hash: &'a str,
    now_ms: i64,
}

impl Store {
    /// Applies a cluster's report of template `name` (see the module's rules).
    pub fn record_cluster_template(
        &self,
        name: &str,
        osystem: Option<&str>,
        content: &str,
        cluster_id: &ClusterId,
        now_ms: i64,
    ) -> Result<PreseedOutcome, DbError> {
        let template = ClusterTemplate {
            name,
            osystem,
            content,
            refusal: None,
        };
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            apply_cluster_template(conn, &template, cluster_id, now_ms)
        })
    }

    /// Applies a whole cluster report in one transaction: all of it or, if it would make the
    /// cluster the origin of more than `max_names_per_cluster` template names, none of it
    /// (`Invalid`). Names are locked in sorted order, so two reports cannot deadlock.
    pub fn record_cluster_templates(
        &self,
        templates: &[ClusterTemplate<'_>],
        cluster_id: &ClusterId,
        now_ms: i64,
        max_names_per_cluster: usize,
    ) -> Result<Vec<PreseedOutcome>, DbError> {
        // A stable sort: a name reported twice is applied in report order, as one by one.
        let mut sorted: Vec<&ClusterTemplate<'_>> = templates.iter().collect();
        sorted.sort_by_key(|t| t.name);
        let reported: std::collections::BTreeSet<&str> = sorted.iter().map(|t| t.name).collect();
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            let known = lane_names(conn, cluster_id)?;
            let names = known.len() + reported.iter().filter(|n| !known.contains(**n)).count();
            if names > max_names_per_cluster {
                return Err(DbError::Invalid(format!(
                    "cluster {cluster_id} would be the origin of {names} template names; at most {max_names_per_cluster} are allowed per cluster"
                )));
            }
            sorted
                .iter()
                .map(|t| apply_cluster_template(conn, t, cluster_id, now_ms))
                .collect()
        })
    }

    /// Stores an operator's edit of `name` as a new current version. `Stale` unless
    /// `based_on_version` is the current version; `NotFound` for an unknown name. An edit
    /// during a conflict resolves it.
    pub fn operator_edit(
        &self,
        name: &str,
        content: &str,
        based_on_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, DbError> {
        let hash = content_hash(content);
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            lock_key(conn, LockSpace::Preseed, name)?;
            let head = load_head(conn, name)?.ok_or_else(|| preseed_not_found(name))?;
            decide_operator_edit(head.current_version, based_on_version).map_err(|current| {
                DbError::Stale {
                    name: name.to_owned(),
                    based_on: based_on_version,
                    current,
                }
            })?;
            let base = load_version(conn, name, based_on_version)?;
            let version = next_version(conn, name)?;
            insert_version(
                conn,
                &Append {
                    name,
                    version,
                    osystem: base.osystem.as_deref(),
                    origin_cluster: None,
                    parent_version: Some(based_on_version),
                    content,
                    content_hash: &hash,
                    now_ms,
                },
            )?;
            set_head(conn, name, version, None, now_ms)?;
            load_record(conn, name)
        })
    }

    /// Ends a conflict by making `pick_version` (either side of it) current; adds no
    /// version. `Invalid` if the preseed is not in conflict or the pick is neither side.
    pub fn resolve_conflict(
        &self,
        name: &str,
        pick_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, DbError> {
        let conn = &mut *self.conn()?;
        write_transaction(conn, |conn| {
            lock_key(conn, LockSpace::Preseed, name)?;
            let head = load_head(conn, name)?.ok_or_else(|| preseed_not_found(name))?;
            let conflict = head
                .conflict()
                .ok_or_else(|| DbError::Invalid(format!("preseed {name:?} is not in conflict")))?;
            if pick_version != conflict.operator_version && pick_version != conflict.cluster_version
            {
                return Err(DbError::Invalid(format!(
                    "version {pick_version} is neither side of the conflict on {name:?} ({} or {})",
                    conflict.operator_version, conflict.cluster_version
                )));
            }
            set_head(conn, name, pick_version, None, now_ms)?;
            load_record(conn, name)
        })
    }

    /// One preseed, or `None`.
    pub fn get_preseed(&self, name: &str) -> Result<Option<PreseedRecord>, DbError> {
        let conn = &mut *self.conn()?;
        match load_record(conn, name) {
            Ok(record) => Ok(Some(record)),
            Err(DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every preseed with its current version and conflict, sorted by name.
    pub fn list_preseeds(&self) -> Result<Vec<PreseedRecord>, DbError> {
        let conn = &mut *self.conn()?;
        let rows: Vec<(HeadRow, VersionRow)> = preseeds::table
            .inner_join(
                preseed_versions::table.on(preseed_versions::name
                    .eq(preseeds::name)
                    .and(preseed_versions::version.eq(preseeds::current_version))),
            )
            .order(preseeds::name)
            .select((HeadRow::as_select(), VersionRow::as_select()))
            .load(conn)?;
        rows.into_iter()
            .map(|(head, version)| to_record(head, version))
            .collect()
    }

    /// At most `limit` versions of `name` newer than `after_version` (all when `None`),
    /// oldest first; `NotFound` for an unknown name. A page, so reading a long history costs
    /// what the reader asks for, not what the history has grown to.
    pub fn history_page(
        &self,
        name: &str,
        after_version: Option<i32>,
        limit: usize,
    ) -> Result<Vec<PreseedVersion>, DbError> {
        let conn = &mut *self.conn()?;
        if load_head(conn, name)?.is_none() {
            return Err(preseed_not_found(name));
        }
        let rows: Vec<VersionRow> = preseed_versions::table
            .filter(preseed_versions::name.eq(name))
            .filter(preseed_versions::version.gt(after_version.unwrap_or(0)))
            .order(preseed_versions::version)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(VersionRow::as_select())
            .load(conn)?;
        rows.into_iter().map(VersionRow::into_version).collect()
    }

    /// Every version of `name`, oldest first. `NotFound` for an unknown name.
    pub fn history(&self, name: &str) -> Result<Vec<PreseedVersion>, DbError> {
        let conn = &mut *self.conn()?;
        let rows: Vec<VersionRow> = preseed_versions::table
            .filter(preseed_versions::name.eq(name))
            .order(preseed_versions::version)
            .select(VersionRow::as_select())
            .load(conn)?;
        if rows.is_empty() {
            return Err(preseed_not_found(name));
        }
        rows.into_iter().map(VersionRow::into_version).collect()
    }
}

/// A cluster's report of one template, inside the caller's transaction: one that failed
/// its arrival check is recorded in the cluster's row only (the history never holds it); one
/// that passed goes through the version rule, and its row names the version holding it.
fn apply_cluster_template(
    conn: &mut AnyConnection,
    t: &ClusterTemplate<'_>,
    cluster_id: &ClusterId,
    now_ms: i64,
) -> Result<PreseedOutcome, DbError> {
    let hash = content_hash(t.content);
    lock_key(conn, LockSpace::Preseed, t.name)?;
    let lane = load_lane(conn, cluster_id, t.name)?;
    if let Some(error) = t.refusal {
        let update = LaneUpdate {
            hash: &hash,
            outcome: Err(error),
        };
        save_lane(conn, lane.as_ref(), cluster_id, t.name, &update, now_ms)?;
        return Ok(PreseedOutcome::Refused);
    }
    let (outcome, version) = apply_to_history(conn, t, &hash, cluster_id, now_ms)?;
    let update = LaneUpdate {
        hash: &hash,
        outcome: Ok(version),
    };
    save_lane(conn, lane.as_ref(), cluster_id, t.name, &update, now_ms)?;
    Ok(outcome)
}

/// The version rule (see the module's rules) for a report that passed its arrival check:
/// what it did, and the version that holds the reported content.
fn apply_to_history(
    conn: &mut AnyConnection,
    t: &ClusterTemplate<'_>,
    hash: &str,
    cluster_id: &ClusterId,
    now_ms: i64,
) -> Result<(PreseedOutcome, i32), DbError> {
    let name = t.name;
    let mut append = Append {
        name,
        version: 1,
        osystem: t.osystem,
        origin_cluster: Some(cluster_id),
        parent_version: None,
        content: t.content,
        content_hash: hash,
        now_ms,
    };
    let Some(head) = load_head(conn, name)? else {
        diesel::insert_into(preseeds::table)
            .values((
                preseeds::name.eq(name),
                preseeds::current_version.eq(1),
                preseeds::updated_at_ms.eq(now_ms),
            ))
            .execute(conn)?;
        insert_version(conn, &append)?;
        return Ok((PreseedOutcome::Created { version: 1 }, 1));
    };
    let current = load_version(conn, name, head.current_version)?;
    let latest_cluster = latest_cluster_version(conn, name, None)?;
    let reporter_latest = latest_cluster_version(conn, name, Some(cluster_id))?;
    let facts = PreseedHead {
        current_is_operator: current.origin == PreseedOrigin::Operator,
        current_hash: &current.content_hash,
        latest_cluster_hash: latest_cluster.as_ref().map(|(_, h)| h.as_str()),
        reporter_latest_hash: reporter_latest.as_ref().map(|(_, h)| h.as_str()),
    };
    append.version = next_version(conn, name)?;
    let action = decide_cluster_report(Some(&facts), hash);
    if action == ClusterReportAction::Unchanged {
        // The version already holding the text: the reporter's newest, or any cluster's.
        let holder = [reporter_latest, latest_cluster]
            .into_iter()
            .flatten()
            .find(|(_, h)| h == hash)
            .map_or(head.current_version, |(v, _)| v);
        let current_version = head.current_version;
        return Ok((PreseedOutcome::Unchanged { current_version }, holder));
    }
    let (current_version, conflict) = match action {
        ClusterReportAction::KeepOperator => {
            append.parent_version = latest_cluster.map(|(v, _)| v);
            let conflict = PreseedConflict {
                operator_version: head.current_version,
                cluster_version: append.version,
            };
            (head.current_version, Some(conflict))
        }
        ClusterReportAction::CaughtUp => {
            append.parent_version = latest_cluster.map(|(v, _)| v);
            (head.current_version, None)
        }
        _ => {
            append.parent_version = Some(head.current_version);
            (append.version, None)
        }
    };
    insert_version(conn, &append)?;
    set_head(conn, name, current_version, conflict, now_ms)?;
    let version = append.version;
    let outcome = match (action, conflict) {
        (_, Some(conflict)) => PreseedOutcome::Conflict(conflict),
        (ClusterReportAction::CaughtUp, None) => PreseedOutcome::CaughtUp { version },
        _ => PreseedOutcome::Updated { version },
    };
    Ok((outcome, version))
}

fn preseed_not_found(name: &str) -> DbError {
    DbError::NotFound {
        what: "preseed",
        key: name.to_owned(),
    }
}

fn to_record(head: HeadRow, version: VersionRow) -> Result<PreseedRecord, DbError> {
    Ok(PreseedRecord {
        conflict: head.conflict(),
        updated_at_ms: head.updated_at_ms,
        current: version.into_version()?,
    })
}

fn load_head(conn: &mut AnyConnection, name: &str) -> Result<Option<HeadRow>, DbError> {
    Ok(preseeds::table
        .find(name)
        .select(HeadRow::as_select())
        .first(conn)
        .optional()?)
}

fn load_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i32,
) -> Result<PreseedVersion, DbError> {
    preseed_versions::table
        .filter(preseed_versions::name.eq(name))
        .filter(preseed_versions::version.eq(version))
        .select(VersionRow::as_select())
        .first(conn)
        .map_err(DbError::not_found(
            "preseed version",
            format!("{name}@{version}"),
        ))?
        .into_version()
}

fn load_record(conn: &mut AnyConnection, name: &str) -> Result<PreseedRecord, DbError> {
    let head = load_head(conn, name)?.ok_or_else(|| preseed_not_found(name))?;
    let version = preseed_versions::table
        .filter(preseed_versions::name.eq(name))
        .filter(preseed_versions::version.eq(head.current_version))
        .select(VersionRow::as_select())
        .first(conn)
        .map_err(DbError::not_found(
            "preseed version",
            format!("{name}@{}", head.current_version),
        ))?;
    to_record(head, version)
}

/// The newest cluster-originated version (number, hash), from `cluster` or from any.
fn latest_cluster_version(
    conn: &mut AnyConnection,
    name: &str,
    cluster: Option<&ClusterId>,
) -> Result<Option<(i32, String)>, DbError> {
    let mut query = preseed_versions::table
        .filter(preseed_versions::name.eq(name))
        .filter(preseed_versions::origin.eq(ORIGIN_CLUSTER))
        .order(preseed_versions::version.desc())
        .select((preseed_versions::version, preseed_versions::content_hash))
        .into_boxed();
    if let Some(cluster) = cluster {
        query = query.filter(preseed_versions::origin_cluster.eq(cluster.as_str()));
    }
    Ok(query.first(conn).optional()?)
}

fn next_version(conn: &mut AnyConnection, name: &str) -> Result<i32, DbError> {
    let latest: Option<i32> = preseed_versions::table
        .filter(preseed_versions::name.eq(name))
        .select(diesel::dsl::max(preseed_versions::version))
        .first(conn)?;
    Ok(latest.unwrap_or(0) + 1)
}

fn insert_version(conn: &mut AnyConnection, v: &Append<'_>) -> Result<(), DbError> {
    let origin = if v.origin_cluster.is_some() {
        ORIGIN_CLUSTER
    } else {
        ORIGIN_OPERATOR
    };
    diesel::insert_into(preseed_versions::table)
        .values((
            preseed_versions::name.eq(v.name),
            preseed_versions::version.eq(v.version),
            preseed_versions::osystem.eq(v.osystem),
            preseed_versions::origin.eq(origin),
            preseed_versions::origin_cluster.eq(v.origin_cluster.map(ClusterId::as_str)),
            preseed_versions::parent_version.eq(v.parent_version),
            preseed_versions::content.eq(v.content),
            preseed_versions::content_hash.eq(v.content_hash),
            preseed_versions::created_at_ms.eq(v.now_ms),
        ))
        .execute(conn)
        .map_err(DbError::on_write(
            "preseed version",
            format!("{}@{}", v.name, v.version),
            (
                "cluster",
                v.origin_cluster.map(|c| c.0.clone()).unwrap_or_default(),
            ),
        ))?;
    Ok(())
}

fn set_head(
    conn: &mut AnyConnection,
    name: &str,
    current_version: i32,
    conflict: Option<PreseedConflict>,
    now_ms: i64,
) -> Result<(), DbError> {
    diesel::update(preseeds::table.find(name))
        .set((
            preseeds::current_version.eq(current_version),
            preseeds::conflict_operator_version.eq(conflict.map(|c| c.operator_version)),
            preseeds::conflict_cluster_version.eq(conflict.map(|c| c.cluster_version)),
            preseeds::updated_at_ms.eq(now_ms),
        ))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_sha256_hex() {
        assert_eq!(
            content_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
