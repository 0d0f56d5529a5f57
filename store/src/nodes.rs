//! Nodes (machines) enlisted through a cluster, and their atomic allocation.

use diesel::prelude::*;
use osmesh_core::ClusterId;

use super::schema::nodes;
use super::{DbError, Store};
use osmesh_actors::store::{AllocationRequest, NewNode, NodeRecord, NodeStatus};

/// How many times [`Store::allocate`] re-reads candidates after losing every race for them.
/// Each lost race means another request took a node, so this bounds work, not correctness.
const ALLOCATION_ROUNDS: usize = 64;

/// How many candidates one allocation round reads.
const CANDIDATES_PER_ROUND: i64 = 8;

#[derive(Queryable, Selectable)]
#[diesel(table_name = nodes)]
struct NodeRow {
    id: i64,
    system_id: Option<String>,
    hostname: String,
    arch: String,
    subarch: String,
    cluster_id: String,
    power_type: Option<String>,
    power_parameters: Option<String>,
    status: String,
    osystem: Option<String>,
    distro_series: Option<String>,
    created_at_ms: i64,
    allocated_at_ms: Option<i64>,
}

impl NodeRow {
    fn into_record(self) -> Result<NodeRecord, DbError> {
        let corrupt = |detail: String| DbError::Corrupt {
            what: "node",
            key: self.id.to_string(),
            detail,
        };
        let status = NodeStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?;
        let power_parameters = match &self.power_parameters {
            Some(json) => Some(
                serde_json::from_str(json)
                    .map_err(|e| corrupt(format!("power_parameters: {e}")))?,
            ),
            None => None,
        };
        Ok(NodeRecord {
            id: self.id,
            system_id: self.system_id,
            hostname: self.hostname,
            arch: self.arch,
            subarch: self.subarch,
            cluster_id: ClusterId(self.cluster_id),
            power_type: self.power_type,
            power_parameters,
            status,
            osystem: self.osystem,
            distro_series: self.distro_series,
            created_at_ms: self.created_at_ms,
            allocated_at_ms: self.allocated_at_ms,
        })
    }
}

fn cluster_strs(ids: &[ClusterId]) -> Vec<&str> {
    ids.iter().map(ClusterId::as_str).collect()
}

impl Store {
    /// Enlists a node, `Ready`. `Conflict` on a taken hostname or system_id, `NotFound` if
    /// the cluster is unknown.
    pub fn create_node(&self, node: &NewNode, now_ms: i64) -> Result<NodeRecord, DbError> {
        let power_parameters = node
            .power_parameters
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Invalid(e.to_string()))?;
        let conn = &mut *self.conn()?;
        let row: NodeRow = diesel::insert_into(nodes::table)
            .values((
                nodes::system_id.eq(&node.system_id),
                nodes::hostname.eq(&node.hostname),
                nodes::arch.eq(&node.arch),
                nodes::subarch.eq(&node.subarch),
                nodes::cluster_id.eq(node.cluster_id.as_str()),
                nodes::power_type.eq(&node.power_type),
                nodes::power_parameters.eq(power_parameters),
                nodes::status.eq(NodeStatus::Ready.as_str()),
                nodes::created_at_ms.eq(now_ms),
            ))
            .returning(nodes::all_columns)
            .get_result(conn)
            .map_err(DbError::on_write(
                "node",
                node.hostname.clone(),
                ("cluster", node.cluster_id.0.clone()),
            ))?;
        row.into_record()
    }

    /// All nodes, sorted by id.
    pub fn list_nodes(&self) -> Result<Vec<NodeRecord>, DbError> {
        let conn = &mut *self.conn()?;
        nodes::table
            .order(nodes::id)
            .select(NodeRow::as_select())
            .load(conn)?
            .into_iter()
            .map(NodeRow::into_record)
            .collect()
    }

    /// One node, or `None`.
    pub fn get_node(&self, id: i64) -> Result<Option<NodeRecord>, DbError> {
        let conn = &mut *self.conn()?;
        nodes::table
            .find(id)
            .select(NodeRow::as_select())
            .first(conn)
            .optional()?
            .map(NodeRow::into_record)
            .transpose()
    }

    /// Removes a node. `NotFound` if there is none.
    pub fn delete_node(&self, id: i64) -> Result<(), DbError> {
        let conn = &mut *self.conn()?;
        if diesel::delete(nodes::table.find(id)).execute(conn)? == 0 {
            return Err(DbError::NotFound {
                what: "node",
                key: id.to_string(),
            });
        }
        Ok(())
    }

    /// Returns a node to `Ready` and clears its OS. Releasing a ready node changes nothing.
    pub fn release_node(&self, id: i64) -> Result<NodeRecord, DbError> {
        let conn = &mut *self.conn()?;
        diesel::update(nodes::table.find(id))
            .set((
                nodes::status.eq(NodeStatus::Ready.as_str()),
                nodes::osystem.eq(None::<String>),
                nodes::distro_series.eq(None::<String>),
                nodes::allocated_at_ms.eq(None::<i64>),
            ))
            .returning(nodes::all_columns)
            .get_result::<NodeRow>(conn)
            .map_err(DbError::not_found("node", id.to_string()))?
            .into_record()
    }

    /// Hands out one ready node matching `request` (lowest id first), marked allocated to
    /// its OS, or `None` if no ready node matches.
    ///
    /// Atomic without a lock: each candidate is claimed by `UPDATE … WHERE id = ? AND
    /// status = 'ready'`, a single statement that only one caller can make change a row
    /// (SQLite serialises writers; PostgreSQL re-checks the condition after a concurrent
    /// update commits). A caller that loses a candidate tries the next one.
    pub fn allocate(
        &self,
        request: &AllocationRequest<'_>,
        now_ms: i64,
    ) -> Result<Option<NodeRecord>, DbError> {
        if request.cluster_ids.is_empty() {
            return Ok(None);
        }
        let conn = &mut *self.conn()?;
        for _ in 0..ALLOCATION_ROUNDS {
            let candidates = ready_candidates(conn, request)?;
            if candidates.is_empty() {
                return Ok(None);
            }
            for id in candidates {
                if let Some(row) = claim(conn, id, request, now_ms)? {
                    return row.into_record().map(Some);
                }
            }
        }
        Err(DbError::Invalid(format!(
            "allocation gave up after losing {ALLOCATION_ROUNDS} rounds of races"
        )))
    }

    /// How many ready nodes of `arch` sit on `cluster_ids`, for explaining an empty
    /// allocation.
    pub fn count_ready_nodes(&self, arch: &str, cluster_ids: &[ClusterId]) -> Result<i64, DbError> {
        let conn = &mut *self.conn()?;
        Ok(nodes::table
            .filter(nodes::status.eq(NodeStatus::Ready.as_str()))
            .filter(nodes::arch.eq(arch))
            .filter(nodes::cluster_id.eq_any(cluster_strs(cluster_ids)))
            .count()
            .get_result(conn)?)
    }
}

fn ready_candidates(
    conn: &mut super::AnyConnection,
    request: &AllocationRequest<'_>,
) -> Result<Vec<i64>, DbError> {
    let mut query = nodes::table
        .select(nodes::id)
        .filter(nodes::status.eq(NodeStatus::Ready.as_str()))
        .filter(nodes::cluster_id.eq_any(cluster_strs(request.cluster_ids)))
        .order(nodes::id)
        .limit(CANDIDATES_PER_ROUND)
        .into_boxed();
    if !osmesh_core::hooks::allocate_any_arch() {
        query = query.filter(nodes::arch.eq(request.arch));
    }
    if let Some(subarch) = request.subarch {
        query = query.filter(nodes::subarch.eq(subarch));
    }
    if let Some(hostname) = request.hostname {
        query = query.filter(nodes::hostname.eq(hostname));
    }
    Ok(query.load(conn)?)
}

fn claim(
    conn: &mut super::AnyConnection,
    id: i64,
    request: &AllocationRequest<'_>,
    now_ms: i64,
) -> Result<Option<NodeRow>, DbError> {
    Ok(diesel::update(
        nodes::table
            .filter(nodes::id.eq(id))
            .filter(nodes::status.eq(NodeStatus::Ready.as_str())),
    )
    .set((
        nodes::status.eq(NodeStatus::Allocated.as_str()),
        nodes::osystem.eq(request.osystem),
        nodes::distro_series.eq(request.distro_series),
        nodes::allocated_at_ms.eq(now_ms),
    ))
    .returning(nodes::all_columns)
    .get_result(conn)
    .optional()?)
}
