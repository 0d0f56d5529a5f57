//! The region's store as the actors see it: the [`RegionStore`] trait, the plain records it
//! takes and returns (`records.rs`), and the one error it answers with. The Diesel
//! implementation lives in `osmesh-store`, which only `regiond`, the simulator and tests link,
//! so `clusterd` and the CLI carry no database driver.
//!
//! The trait is synchronous: an implementation runs its statements on the calling thread and
//! returns. It must not read a clock (callers pass unix milliseconds; the simulator runs it on
//! virtual time), and every list it returns is sorted. Where a call runs is the caller's
//! choice, through a [`StoreHandle`] (`handle.rs`): inline on the calling thread (the
//! simulator, so replay stays exact), or on a store's own threads (regiond, so a slow
//! database call never stalls the region actor's thread).

mod handle;
mod records;

use osmesh_core::ClusterId;
use std::collections::BTreeMap;

pub use handle::{BlockingLanes, LaneJob, StoreCall, StoreHandle};
pub use records::{content_hash, templates_for_cluster};
pub use records::{
    decide_cluster_report, decide_operator_edit, mask_key, AllocationRequest, ClusterExclusions,
    ClusterRecord, ClusterReportAction, ClusterSnapshot, ClusterTemplate, ClusterTemplateRecord,
    EnrollmentRecord, LicenseKeyRecord, NewLicenseKey, NewNode, NodeRecord, NodeStatus,
    PreseedConflict, PreseedHead, PreseedOrigin, PreseedOutcome, PreseedRecord, PreseedVersion,
    RegionRecord, SettingKey, TemplateState, UsableTemplate,
};

/// What went wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    Query(#[source] Box<dyn std::error::Error + Send + Sync>),
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
    /// The store's threads are gone (the region is shutting down): the call never ran.
    #[error("the store's threads have stopped")]
    Stopped,
}

/// Everything the region's actors and service functions ask of the database. Each call is
/// one transaction (or one statement); see `osmesh-store` for how each stays atomic.
pub trait RegionStore: Send + Sync + 'static {
    // Clusters and their snapshots.

    /// Records that cluster `id` (named `name`) was heard from at `now_ms`; creates it on
    /// first sight.
    fn upsert_cluster_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Records when `id` was last heard from (its link closed); never re-creates a cluster
    /// removed meanwhile, never moves last-seen back.
    fn record_cluster_last_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Replaces the cluster's last snapshot.
    fn save_snapshot(
        &self,
        id: &ClusterId,
        snapshot: &ClusterSnapshot,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every known cluster, by id.
    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError>;
    fn get_cluster(&self, id: &ClusterId) -> Result<Option<ClusterRecord>, StoreError>;
    /// Every region in the registry (regions sharing this database), by id.
    fn list_regions(&self) -> Result<Vec<RegionRecord>, StoreError>;

    // Cluster identity (enrollment, revocation, removal).

    /// `id`'s enrollment, if it has one.
    fn enrollment(&self, id: &ClusterId) -> Result<Option<EnrollmentRecord>, StoreError>;
    /// Revokes `id`; whether the region knew it (enrolled, or seen).
    fn revoke_cluster(&self, id: &ClusterId, now_ms: i64) -> Result<bool, StoreError>;
    /// Deletes `id`, its snapshot and its enrollment; whether there was anything to delete.
    fn remove_cluster(&self, id: &ClusterId) -> Result<bool, StoreError>;
    /// The clusters revoked or removed, for a region to drop the links it holds to them.
    fn cluster_exclusions(&self) -> Result<ClusterExclusions, StoreError>;

    // License keys.

    /// A new key; `Conflict` if one is stored for the pair.
    fn insert_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, StoreError>;
    /// Replaces a stored key; `NotFound` if there is none.
    fn update_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, StoreError>;
    fn get_license_key(
        &self,
        osystem: &str,
        distro_series: &str,
    ) -> Result<Option<LicenseKeyRecord>, StoreError>;
    fn delete_license_key(&self, osystem: &str, distro_series: &str) -> Result<(), StoreError>;
    fn list_license_keys(&self) -> Result<Vec<LicenseKeyRecord>, StoreError>;

    // Nodes.

    fn create_node(&self, node: &NewNode, now_ms: i64) -> Result<NodeRecord, StoreError>;
    fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    fn get_node(&self, id: i64) -> Result<Option<NodeRecord>, StoreError>;
    fn delete_node(&self, id: i64) -> Result<(), StoreError>;
    fn release_node(&self, id: i64) -> Result<NodeRecord, StoreError>;
    /// Hands out one ready node matching `request`, atomically: never one node twice.
    fn allocate(
        &self,
        request: &AllocationRequest<'_>,
        now_ms: i64,
    ) -> Result<Option<NodeRecord>, StoreError>;

    // Settings.

    fn get_settings(&self) -> Result<BTreeMap<SettingKey, String>, StoreError>;
    fn get_setting(&self, key: SettingKey) -> Result<Option<String>, StoreError>;
    fn set_setting(&self, key: SettingKey, value: &str) -> Result<(), StoreError>;

    // Preseeds.

    /// A cluster's whole template report, in one transaction, or nothing (`Invalid` past
    /// `max_names_per_cluster`).
    fn record_cluster_templates(
        &self,
        templates: &[ClusterTemplate<'_>],
        cluster_id: &ClusterId,
        now_ms: i64,
        max_names_per_cluster: usize,
    ) -> Result<Vec<PreseedOutcome>, StoreError>;
    /// An operator's edit based on `based_on_version` (`Stale` if that is not current).
    fn operator_edit(
        &self,
        name: &str,
        content: &str,
        based_on_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, StoreError>;
    fn resolve_conflict(
        &self,
        name: &str,
        pick_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, StoreError>;
    fn get_preseed(&self, name: &str) -> Result<Option<PreseedRecord>, StoreError>;
    fn list_preseeds(&self) -> Result<Vec<PreseedRecord>, StoreError>;
    fn history_page(
        &self,
        name: &str,
        after_version: Option<i32>,
        limit: usize,
    ) -> Result<Vec<PreseedVersion>, StoreError>;
    fn history(&self, name: &str) -> Result<Vec<PreseedVersion>, StoreError>;
    /// Every (cluster, name) a cluster shipped, with its state, sorted by cluster then name.
    fn list_cluster_templates(&self) -> Result<Vec<ClusterTemplateRecord>, StoreError>;
    /// An admin approves or refuses (`state`) what `cluster` ships as `name`; `NotFound` if
    /// it never shipped that name, `Invalid` for `Pending`.
    fn decide_cluster_template(
        &self,
        cluster: &ClusterId,
        name: &str,
        state: TemplateState,
        now_ms: i64,
    ) -> Result<ClusterTemplateRecord, StoreError>;
}
