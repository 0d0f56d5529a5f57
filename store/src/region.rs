//! `Store` as the region's [`RegionStore`]: each trait call is the inherent call of the same
//! name, its `DbError` turned into the actors' `StoreError`.

use std::collections::BTreeMap;

use osmesh_actors::store::{
    AllocationRequest, ClusterExclusions, ClusterRecord, ClusterSnapshot, ClusterTemplate,
    ClusterTemplateRecord, EnrollmentRecord, LicenseKeyRecord, NewLicenseKey, NewNode, NodeRecord,
    PreseedOutcome, PreseedRecord, PreseedVersion, RegionRecord, RegionStore, SettingKey,
    StoreError, TemplateState,
};
use osmesh_core::ClusterId;

use super::{DbError, Store};

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::InvalidUrl(s) => StoreError::InvalidUrl(s),
            DbError::Connection(s) => StoreError::Connection(s),
            DbError::Migration(s) => StoreError::Migration(s),
            DbError::Query(e) => StoreError::Query(Box::new(e)),
            DbError::NotFound { what, key } => StoreError::NotFound { what, key },
            DbError::Conflict { what, key } => StoreError::Conflict { what, key },
            DbError::Stale {
                name,
                based_on,
                current,
            } => StoreError::Stale {
                name,
                based_on,
                current,
            },
            DbError::Invalid(s) => StoreError::Invalid(s),
            DbError::Corrupt { what, key, detail } => StoreError::Corrupt { what, key, detail },
        }
    }
}

impl RegionStore for Store {
    fn upsert_cluster_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(Store::upsert_cluster_seen(self, id, name, now_ms)?)
    }

    fn save_snapshot(
        &self,
        id: &ClusterId,
        snapshot: &ClusterSnapshot,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(Store::save_snapshot(self, id, snapshot, now_ms)?)
    }

    fn list_clusters(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        Ok(Store::list_clusters(self)?)
    }

    fn list_regions(&self) -> Result<Vec<RegionRecord>, StoreError> {
        Ok(Store::list_regions(self)?)
    }

    fn enrollment(&self, id: &ClusterId) -> Result<Option<EnrollmentRecord>, StoreError> {
        Ok(Store::enrollment(self, id)?)
    }

    fn revoke_cluster(&self, id: &ClusterId, now_ms: i64) -> Result<bool, StoreError> {
        Ok(Store::revoke_cluster(self, id, now_ms)?)
    }

    fn remove_cluster(&self, id: &ClusterId) -> Result<bool, StoreError> {
        Ok(Store::remove_cluster(self, id)?)
    }

    fn cluster_exclusions(&self) -> Result<ClusterExclusions, StoreError> {
        Ok(Store::cluster_exclusions(self)?)
    }

    fn record_cluster_last_seen(
        &self,
        id: &ClusterId,
        name: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        Ok(Store::record_cluster_last_seen(self, id, name, now_ms)?)
    }

    fn get_cluster(&self, id: &ClusterId) -> Result<Option<ClusterRecord>, StoreError> {
        Ok(Store::get_cluster(self, id)?)
    }

    fn insert_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, StoreError> {
        Ok(Store::insert_license_key(self, key, now_ms)?)
    }

    fn update_license_key(
        &self,
        key: &NewLicenseKey<'_>,
        now_ms: i64,
    ) -> Result<LicenseKeyRecord, StoreError> {
        Ok(Store::update_license_key(self, key, now_ms)?)
    }

    fn get_license_key(
        &self,
        osystem: &str,
        distro_series: &str,
    ) -> Result<Option<LicenseKeyRecord>, StoreError> {
        Ok(Store::get_license_key(self, osystem, distro_series)?)
    }

    fn delete_license_key(&self, osystem: &str, distro_series: &str) -> Result<(), StoreError> {
        Ok(Store::delete_license_key(self, osystem, distro_series)?)
    }

    fn list_license_keys(&self) -> Result<Vec<LicenseKeyRecord>, StoreError> {
        Ok(Store::list_license_keys(self)?)
    }

    fn create_node(&self, node: &NewNode, now_ms: i64) -> Result<NodeRecord, StoreError> {
        Ok(Store::create_node(self, node, now_ms)?)
    }

    fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        Ok(Store::list_nodes(self)?)
    }

    fn get_node(&self, id: i64) -> Result<Option<NodeRecord>, StoreError> {
        Ok(Store::get_node(self, id)?)
    }

    fn delete_node(&self, id: i64) -> Result<(), StoreError> {
        Ok(Store::delete_node(self, id)?)
    }

    fn release_node(&self, id: i64) -> Result<NodeRecord, StoreError> {
        Ok(Store::release_node(self, id)?)
    }

    fn allocate(
        &self,
        request: &AllocationRequest<'_>,
        now_ms: i64,
    ) -> Result<Option<NodeRecord>, StoreError> {
        Ok(Store::allocate(self, request, now_ms)?)
    }

    fn get_settings(&self) -> Result<BTreeMap<SettingKey, String>, StoreError> {
        Ok(Store::get_settings(self)?)
    }

    fn get_setting(&self, key: SettingKey) -> Result<Option<String>, StoreError> {
        Ok(Store::get_setting(self, key)?)
    }

    fn set_setting(&self, key: SettingKey, value: &str) -> Result<(), StoreError> {
        Ok(Store::set_setting(self, key, value)?)
    }

    fn record_cluster_templates(
        &self,
        templates: &[ClusterTemplate<'_>],
        cluster_id: &ClusterId,
        now_ms: i64,
        max_names_per_cluster: usize,
    ) -> Result<Vec<PreseedOutcome>, StoreError> {
        Ok(Store::record_cluster_templates(
            self,
            templates,
            cluster_id,
            now_ms,
            max_names_per_cluster,
        )?)
    }

    fn operator_edit(
        &self,
        name: &str,
        content: &str,
        based_on_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, StoreError> {
        Ok(Store::operator_edit(
            self,
            name,
            content,
            based_on_version,
            now_ms,
        )?)
    }

    fn resolve_conflict(
        &self,
        name: &str,
        pick_version: i32,
        now_ms: i64,
    ) -> Result<PreseedRecord, StoreError> {
        Ok(Store::resolve_conflict(self, name, pick_version, now_ms)?)
    }

    fn get_preseed(&self, name: &str) -> Result<Option<PreseedRecord>, StoreError> {
        Ok(Store::get_preseed(self, name)?)
    }

    fn list_preseeds(&self) -> Result<Vec<PreseedRecord>, StoreError> {
        Ok(Store::list_preseeds(self)?)
    }

    fn history_page(
        &self,
        name: &str,
        after_version: Option<i32>,
        limit: usize,
    ) -> Result<Vec<PreseedVersion>, StoreError> {
        Ok(Store::history_page(self, name, after_version, limit)?)
    }

    fn history(&self, name: &str) -> Result<Vec<PreseedVersion>, StoreError> {
        Ok(Store::history(self, name)?)
    }

    fn list_cluster_templates(&self) -> Result<Vec<ClusterTemplateRecord>, StoreError> {
        Ok(Store::list_cluster_templates(self)?)
    }

    fn decide_cluster_template(
        &self,
        cluster: &ClusterId,
        name: &str,
        state: TemplateState,
        now_ms: i64,
    ) -> Result<ClusterTemplateRecord, StoreError> {
        Ok(Store::decide_cluster_template(
            self, cluster, name, state, now_ms,
        )?)
    }
}
