//! License keys: each (osystem, distro_series) key is checked by a connected cluster whose
//! registry knows that release, stored with which cluster said yes and when, and shown
//! masked. Nothing here logs a key.
//!
//! The rule: the clusters whose cached snapshot lists the release are asked concurrently,
//! each with [`VALIDATE_TIMEOUT`]; the first definitive answer in cluster-id order decides
//! (a yes is stored, a no is refused with the cluster's reason). Clusters that are not
//! connected, time out or fail are skipped and named. When no cluster gives a definitive
//! answer nothing is stored and the refusal names every cluster tried and why.

use futures::future::join_all;
use osmesh_core::mesh::MeshRelease;
use osmesh_core::ClusterId;
use osmesh_net::messages::{ErrorKind, LicenseKeyVerdict, ValidateLicenseKey};
use osmesh_net::peer::Peer;
use osmesh_net::RpcError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::service::{RegionService, ServiceError};
use crate::store::{LicenseKeyRecord, NewLicenseKey, StoreError};

/// How long each cluster has to answer a `ValidateLicenseKey`.
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest key accepted, so a request cannot make the region store (or a cluster parse)
/// an arbitrarily large string.
pub const MAX_KEY_LEN: usize = 256;

/// A key as an operator submits it. `Debug` masks the key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LicenseKeyRequest {
    pub osystem: String,
    pub distro_series: String,
    pub license_key: String,
}

impl std::fmt::Debug for LicenseKeyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKeyRequest")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &"***")
            .finish()
    }
}

/// A stored key as every answer shows it: masked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseKeyView {
    pub osystem: String,
    pub distro_series: String,
    /// Only the last five characters are shown.
    pub license_key: String,
    pub validated_by: ClusterId,
    pub validated_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<LicenseKeyRecord> for LicenseKeyView {
    fn from(record: LicenseKeyRecord) -> Self {
        LicenseKeyView {
            license_key: record.masked(),
            osystem: record.osystem,
            distro_series: record.distro_series,
            validated_by: record.validated_by,
            validated_at_ms: record.validated_at_ms,
            created_at_ms: record.created_at_ms,
            updated_at_ms: record.updated_at_ms,
        }
    }
}

impl RegionService {
    /// Every stored key, masked, sorted by osystem then distro_series.
    pub async fn license_keys(&self) -> Result<Vec<LicenseKeyView>, ServiceError> {
        let keys = self
            .store()
            .list_license_keys()
            .map_err(ServiceError::from_store)?;
        Ok(keys.into_iter().map(LicenseKeyView::from).collect())
    }

    /// The key of one release, masked.
    pub async fn license_key(
        &self,
        osystem: &str,
        distro_series: &str,
    ) -> Result<LicenseKeyView, ServiceError> {
        self.store()
            .get_license_key(osystem, distro_series)
            .map_err(ServiceError::from_store)?
            .map(LicenseKeyView::from)
            .ok_or_else(|| key_not_found(osystem, distro_series))
    }

    /// Validates a new key with a cluster that knows the release, then stores it. One key
    /// per release: a second is a conflict (use [`RegionService::update_license_key`]).
    pub async fn add_license_key(
        &self,
        request: &LicenseKeyRequest,
    ) -> Result<LicenseKeyView, ServiceError> {
        let request = checked(request)?;
        let existing = self
            .store()
            .get_license_key(&request.osystem, &request.distro_series)
            .map_err(ServiceError::from_store)?;
        if existing.is_some() {
            return Err(key_exists(&request));
        }
        let validated_by = self.validate_with_clusters(&request).await?;
        let now = self.now_ms().await?;
        let record = self
            .store()
            .insert_license_key(&new_key(&request, &validated_by, now), now)
            .map_err(|e| match e {
                StoreError::Conflict { .. } => key_exists(&request),
                other => ServiceError::from_store(other),
            })?;
        tracing::info!(osystem = %record.osystem, release = %record.distro_series, key = %record.masked(), cluster = %validated_by, "license key stored");
        Ok(record.into())
    }

    /// Replaces the key of a release that has one, after a cluster validated the new key.
    pub async fn update_license_key(
        &self,
        request: &LicenseKeyRequest,
    ) -> Result<LicenseKeyView, ServiceError> {
        let request = checked(request)?;
        let existing = self
            .store()
            .get_license_key(&request.osystem, &request.distro_series)
            .map_err(ServiceError::from_store)?;
        if existing.is_none() {
            return Err(key_not_found(&request.osystem, &request.distro_series));
        }
        let validated_by = self.validate_with_clusters(&request).await?;
        let now = self.now_ms().await?;
        let record = self
            .store()
            .update_license_key(&new_key(&request, &validated_by, now), now)
            .map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    key_not_found(&request.osystem, &request.distro_series)
                }
                other => ServiceError::from_store(other),
            })?;
        tracing::info!(osystem = %record.osystem, release = %record.distro_series, key = %record.masked(), cluster = %validated_by, "license key replaced");
        Ok(record.into())
    }

    /// Deletes the key of one release.
    pub async fn delete_license_key(
        &self,
        osystem: &str,
        distro_series: &str,
    ) -> Result<(), ServiceError> {
        self.store()
            .delete_license_key(osystem, distro_series)
            .map_err(|e| match e {
                StoreError::NotFound { .. } => key_not_found(osystem, distro_series),
                other => ServiceError::from_store(other),
            })
    }

    /// Asks the clusters that know the release (see the module's rule); the cluster that
    /// said yes, or the refusal.
    async fn validate_with_clusters(
        &self,
        request: &LicenseKeyRequest,
    ) -> Result<ClusterId, ServiceError> {
        let (osystem, release) = (&request.osystem, &request.distro_series);
        let answer = self.osystems_cached().await?;
        let Some(os) = answer.view.osystem(osystem) else {
            let known: Vec<_> = answer
                .view
                .osystems
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            return Err(ServiceError::bad_request(
                "no_such_osystem",
                format!(
                    "no cluster knows an operating system named {osystem:?}; known: {}",
                    list_or_none(&known)
                ),
            ));
        };
        let Some(detail) = answer.view.release(osystem, release) else {
            let known: Vec<_> = os.releases.iter().map(|r| r.name.as_str()).collect();
            return Err(ServiceError::bad_request(
                "no_such_release",
                format!(
                    "no cluster knows release {release:?} of {osystem}; known: {}",
                    list_or_none(&known)
                ),
            ));
        };
        let peers = self.connected_peers().await?;
        let mut skipped: BTreeMap<ClusterId, String> = BTreeMap::new();
        let mut asks = Vec::new();
        for cluster in validators_in_order(detail) {
            match peers.get(&cluster) {
                Some(peer) => asks.push(ask(cluster, peer.clone(), request.clone())),
                None => {
                    skipped.insert(cluster, "not connected".into());
                }
            }
        }
        // The answers come back in the order asked: holders of the release first.
        for (cluster, result) in join_all(asks).await {
            match result {
                Ok(LicenseKeyVerdict { valid: true, .. }) => return Ok(cluster),
                Ok(LicenseKeyVerdict {
                    valid: false,
                    reason,
                }) => {
                    return Err(ServiceError::bad_request(
                        "invalid_license_key",
                        format!(
                            "cluster {cluster} refused the key for {osystem}/{release}: {}",
                            reason.as_deref().unwrap_or("no reason given")
                        ),
                    ))
                }
                Err(err) => {
                    skipped.insert(cluster, failure_reason(&err));
                }
            }
        }
        let tried: Vec<_> = skipped
            .iter()
            .map(|(cluster, why)| format!("{cluster} ({why})"))
            .collect();
        Err(ServiceError::unavailable(
            "no_cluster_can_validate",
            format!(
                "no cluster that knows {osystem}/{release} could validate the key; tried: {}; nothing was stored",
                list_or_none(&tried)
            ),
        ))
    }
}

async fn ask(
    cluster: ClusterId,
    peer: Peer,
    request: LicenseKeyRequest,
) -> (ClusterId, Result<LicenseKeyVerdict, RpcError>) {
    let call = ValidateLicenseKey {
        osystem: request.osystem,
        release: request.distro_series,
        key: request.license_key,
    };
    (cluster, peer.call_typed(&call, VALIDATE_TIMEOUT).await)
}

fn failure_reason(err: &RpcError) -> String {
    match err.kind {
        ErrorKind::Timeout => format!("timed out after {} ms", VALIDATE_TIMEOUT.as_millis()),
        ErrorKind::Unavailable => format!("unavailable: {}", err.message),
        ErrorKind::NoSuchOperatingSystem | ErrorKind::NoSuchRelease => {
            format!("no longer knows it: {}", err.message)
        }
        _ => format!("error: {err}"),
    }
}

/// Trims the fields and refuses empty or oversized ones.
fn checked(request: &LicenseKeyRequest) -> Result<LicenseKeyRequest, ServiceError> {
    let trimmed = LicenseKeyRequest {
        osystem: request.osystem.trim().to_owned(),
        distro_series: request.distro_series.trim().to_owned(),
        license_key: request.license_key.trim().to_owned(),
    };
    for (field, value) in [
        ("osystem", &trimmed.osystem),
        ("distro_series", &trimmed.distro_series),
        ("license_key", &trimmed.license_key),
    ] {
        if value.is_empty() {
            return Err(ServiceError::bad_request(
                "bad_body",
                format!("{field} must not be empty"),
            ));
        }
    }
    if trimmed.license_key.len() > MAX_KEY_LEN {
        return Err(ServiceError::bad_request(
            "bad_body",
            format!("license_key is longer than {MAX_KEY_LEN} bytes"),
        ));
    }
    Ok(trimmed)
}

fn new_key<'a>(
    request: &'a LicenseKeyRequest,
    validated_by: &'a ClusterId,
    now: i64,
) -> NewLicenseKey<'a> {
    NewLicenseKey {
        osystem: &request.osystem,
        distro_series: &request.distro_series,
        license_key: &request.license_key,
        validated_by,
        validated_at_ms: now,
    }
}

fn key_exists(request: &LicenseKeyRequest) -> ServiceError {
    ServiceError::conflict(
        "license_key_exists",
        format!(
            "{}/{} already has a license key; update it instead",
            request.osystem, request.distro_series
        ),
    )
}

fn key_not_found(osystem: &str, distro_series: &str) -> ServiceError {
    ServiceError::not_found(
        "no_such_license_key",
        format!("no license key for {osystem}/{distro_series}"),
    )
}

/// `a, b, c`, or `none`.
pub(crate) fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The clusters that may validate a key for `release`, in the order their answers count: first
/// those holding a boot image of the release (they are where it is installed from), then the
/// rest of those whose registry knows it; each group sorted by id.
fn validators_in_order(release: &MeshRelease) -> Vec<ClusterId> {
    let holders: BTreeSet<&ClusterId> = release
        .available
        .values()
        .flat_map(|clusters| clusters.keys())
        .filter(|c| release.supported_by.contains(*c))
        .collect();
    let others = release.supported_by.iter().filter(|c| !holders.contains(c));
    holders.iter().copied().chain(others).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::Purpose;

    fn ids(names: &[&str]) -> BTreeSet<ClusterId> {
        names.iter().map(|n| ClusterId::new(*n)).collect()
    }

    #[test]
    fn clusters_holding_the_release_validate_before_those_that_only_know_it() {
        let holders = [("arm64", "c"), ("amd64", "b"), ("amd64", "c")];
        let mut available = osmesh_core::mesh::Availability::new();
        for (arch, cluster) in holders {
            available
                .entry(arch.to_string())
                .or_default()
                .insert(ClusterId::new(cluster), BTreeSet::from([Purpose::Install]));
        }
        let release = MeshRelease {
            name: "win2019".into(),
            title: "Windows Server 2019".into(),
            requires_license_key: true,
            can_commission: false,
            supported_by: ids(&["a", "b", "c", "d"]),
            available,
        };
        let order: Vec<_> = validators_in_order(&release)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(order, ["b", "c", "a", "d"]);
    }
}
