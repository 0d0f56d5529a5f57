//! License keys: each (osystem, distro_series) key is checked by a connected cluster that
//! holds an image of that release, stored with which cluster said yes and when, and shown
//! masked. Nothing here logs a key.
//!
//! The rule ([`key_validators`], [`key_verdict`]), the same whatever order answers come in:
//!
//! - A key is taken only for a release that needs one (any cluster listing it says so).
//! - The validators are the connected clusters holding an image of the release; only when
//!   none is connected do the connected clusters that merely know the release count.
//! - They are asked one at a time, in cluster-id order, each with [`VALIDATE_TIMEOUT`]; the
//!   key goes to no other cluster, and to no further one once a cluster said yes. So a key
//!   is never broadcast: each cluster sees only the keys of releases it holds.
//! - The key is valid at the first yes; the clusters that said no before it are named in
//!   the answer (and the log). With no yes, it is refused when every validator said no, and
//!   left undecided (503, nothing stored) when some could not answer.

use osmesh_core::mesh::MeshRelease;
use osmesh_core::ClusterId;
use osmesh_net::messages::{ErrorKind, LicenseKeyVerdict, ValidateLicenseKey};
use osmesh_net::peer::Peer;
use osmesh_net::RpcError;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub use osmesh_api::license::{LicenseKeyRequest, LicenseKeyUpdate, LicenseKeyView};

use super::service::{RegionService, ServiceError};
use crate::store::{LicenseKeyRecord, NewLicenseKey, StoreError};

/// How long each cluster has to answer a `ValidateLicenseKey`.
pub const VALIDATE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest key accepted, so a request cannot make the region store (or a cluster parse)
/// an arbitrarily large string.
pub const MAX_KEY_LEN: usize = 256;

/// A stored key as every answer shows it: masked.
pub fn license_key_view(record: LicenseKeyRecord) -> LicenseKeyView {
    LicenseKeyView {
        license_key: record.masked(),
        osystem: record.osystem,
        distro_series: record.distro_series,
        validated_by: record.validated_by,
        validated_at_ms: record.validated_at_ms,
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
        refused_by: BTreeMap::new(),
    }
}

impl RegionService {
    /// Every stored key, masked, sorted by osystem then distro_series.
    pub async fn license_keys(&self) -> Result<Vec<LicenseKeyView>, ServiceError> {
        let keys = self
            .store()
            .list_license_keys()
            .map_err(ServiceError::from_store)?;
        Ok(keys.into_iter().map(license_key_view).collect())
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
            .map(license_key_view)
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
        let (validated_by, refused_by) = self.validate_with_clusters(&request).await?;
        let now = self.now_ms().await?;
        let record = self
            .store()
            .insert_license_key(&new_key(&request, &validated_by, now), now)
            .map_err(|e| match e {
                StoreError::Conflict { .. } => key_exists(&request),
                other => ServiceError::from_store(other),
            })?;
        tracing::info!(osystem = %record.osystem, release = %record.distro_series, key = %record.masked(), cluster = %validated_by, refused_by = ?refused_by, "license key stored");
        Ok(LicenseKeyView {
            refused_by,
            ..license_key_view(record)
        })
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
        let (validated_by, refused_by) = self.validate_with_clusters(&request).await?;
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
        tracing::info!(osystem = %record.osystem, release = %record.distro_series, key = %record.masked(), cluster = %validated_by, refused_by = ?refused_by, "license key replaced");
        Ok(LicenseKeyView {
            refused_by,
            ..license_key_view(record)
        })
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

    /// Asks the validators of the release one at a time (see the module's rule); the cluster
    /// that said yes and those that said no before it, or the refusal.
    async fn validate_with_clusters(
        &self,
        request: &LicenseKeyRequest,
    ) -> Result<(ClusterId, BTreeMap<ClusterId, String>), ServiceError> {
        let (osystem, release) = (&request.osystem, &request.distro_series);
        let answer = self.osystems_cached().await?;
        let detail = super::service::known_release(&answer.view, osystem, release)?;
        if !detail.requires_license_key && !detail.supported_by.is_empty() {
            return Err(ServiceError::bad_request(
                "license_key_not_needed",
                format!("{osystem}/{release} takes no license key; nothing was stored"),
            ));
        }
        let peers = self.connected_peers().await?;
        let validators = key_validators(detail, &peers.keys().cloned().collect());
        let mut answers = BTreeMap::new();
        for cluster in &validators {
            let Some(peer) = peers.get(cluster) else {
                continue;
            };
            let got = ask(peer.clone(), request.clone()).await;
            let said_yes = matches!(got, ValidatorAnswer::Yes);
            answers.insert(cluster.clone(), got);
            if said_yes {
                break;
            }
        }
        match key_verdict(&validators, &answers) {
            KeyVerdict::Valid { by, refused_by } => Ok((by, refused_by)),
            KeyVerdict::Invalid { refused_by } => Err(ServiceError::bad_request(
                "invalid_license_key",
                format!(
                    "every cluster asked refused the key for {osystem}/{release}: {}; nothing was stored",
                    reasons(&refused_by)
                ),
            )),
            KeyVerdict::Undecided {
                refused_by,
                unanswered,
            } => {
                let last_known: Vec<&str> = detail.last_known_by.iter().map(ClusterId::as_str).collect();
                Err(ServiceError::unavailable(
                    "no_cluster_can_validate",
                    format!(
                        "no connected cluster holding or knowing {osystem}/{release} could validate the key; refused by: {}; could not answer: {}; known to disconnected clusters: {}; nothing was stored",
                        reasons(&refused_by),
                        reasons(&unanswered),
                        list_or_none(&last_known)
                    ),
                ))
            }
        }
    }
}

/// What one validator said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidatorAnswer {
    Yes,
    /// Refused, with the cluster's reason (which never contains the key).
    No(String),
    /// Did not answer: timed out, failed, no longer knows the release.
    Failed(String),
}

/// The decision on a key, from the validators' answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// `by` said yes; `refused_by` said no before it was asked.
    Valid {
        by: ClusterId,
        refused_by: BTreeMap<ClusterId, String>,
    },
    /// Every validator said no.
    Invalid {
        refused_by: BTreeMap<ClusterId, String>,
    },
    /// No yes, and some validators (or all, or none existed) did not answer.
    Undecided {
        refused_by: BTreeMap<ClusterId, String>,
        unanswered: BTreeMap<ClusterId, String>,
    },
}

/// The clusters that validate a key for `release`, in asking order (by id): the connected
/// ones holding an image of it; if none is connected, the connected ones that list it.
pub fn key_validators(release: &MeshRelease, connected: &BTreeSet<ClusterId>) -> Vec<ClusterId> {
    let holders: BTreeSet<&ClusterId> = release
        .available
        .values()
        .flat_map(|clusters| clusters.keys())
        .filter(|c| release.supported_by.contains(*c) && connected.contains(*c))
        .collect();
    if !holders.is_empty() {
        return holders.into_iter().cloned().collect();
    }
    release
        .supported_by
        .iter()
        .filter(|c| connected.contains(*c))
        .cloned()
        .collect()
}

/// The verdict for `validators` (asked in id order) given their `answers`; a validator with
/// no answer was not asked (an earlier one said yes) or could not be reached. The verdict
/// depends only on which cluster said what, never on the order answers arrived in.
pub fn key_verdict(
    validators: &[ClusterId],
    answers: &BTreeMap<ClusterId, ValidatorAnswer>,
) -> KeyVerdict {
    let ordered: BTreeSet<&ClusterId> = validators.iter().collect();
    let mut refused_by = BTreeMap::new();
    let mut unanswered = BTreeMap::new();
    for cluster in ordered {
        match answers.get(cluster) {
            Some(ValidatorAnswer::Yes) => {
                return KeyVerdict::Valid {
                    by: cluster.clone(),
                    refused_by,
                }
            }
            Some(ValidatorAnswer::No(why)) => {
                refused_by.insert(cluster.clone(), why.clone());
            }
            Some(ValidatorAnswer::Failed(why)) => {
                unanswered.insert(cluster.clone(), why.clone());
            }
            None => {
                unanswered.insert(cluster.clone(), "not connected".into());
            }
        }
    }
    if unanswered.is_empty() && !refused_by.is_empty() {
        KeyVerdict::Invalid { refused_by }
    } else {
        KeyVerdict::Undecided {
            refused_by,
            unanswered,
        }
    }
}

fn reasons(by: &BTreeMap<ClusterId, String>) -> String {
    let items: Vec<String> = by.iter().map(|(c, why)| format!("{c} ({why})")).collect();
    list_or_none(&items)
}

async fn ask(peer: Peer, request: LicenseKeyRequest) -> ValidatorAnswer {
    let call = ValidateLicenseKey {
        osystem: request.osystem,
        release: request.distro_series,
        key: request.license_key,
    };
    let verdict: Result<LicenseKeyVerdict, RpcError> =
        peer.call_typed(&call, VALIDATE_TIMEOUT).await;
    match verdict {
        Ok(LicenseKeyVerdict { valid: true, .. }) => ValidatorAnswer::Yes,
        Ok(LicenseKeyVerdict { reason, .. }) => {
            ValidatorAnswer::No(reason.unwrap_or_else(|| "no reason given".into()))
        }
        Err(err) => ValidatorAnswer::Failed(failure_reason(&err)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_core::Purpose;
    use proptest::prelude::*;

    fn id(name: &str) -> ClusterId {
        ClusterId::new(name)
    }

    fn ids(names: &[&str]) -> BTreeSet<ClusterId> {
        names.iter().map(|n| id(n)).collect()
    }

    fn release(supported: &[&str], holders: &[(&str, &str)]) -> MeshRelease {
        let mut available = osmesh_core::mesh::Availability::new();
        for (arch, cluster) in holders {
            available
                .entry(arch.to_string())
                .or_default()
                .insert(id(cluster), BTreeSet::from([Purpose::Install]));
        }
        MeshRelease {
            name: "win2019".into(),
            title: "Windows Server 2019".into(),
            requires_license_key: true,
            can_commission: false,
            end_of_life: false,
            supported_by: ids(supported),
            available,
            last_known_by: BTreeSet::new(),
            last_known: Default::default(),
        }
    }

    fn names(clusters: &[ClusterId]) -> Vec<&str> {
        clusters.iter().map(ClusterId::as_str).collect()
    }

    #[test]
    fn holders_validate_and_knowers_count_only_when_no_holder_is_connected() {
        let win = release(
            &["a", "b", "c", "d"],
            &[("arm64", "c"), ("amd64", "b"), ("amd64", "c")],
        );
        let all = ids(&["a", "b", "c", "d"]);
        assert_eq!(names(&key_validators(&win, &all)), ["b", "c"]);
        assert_eq!(names(&key_validators(&win, &ids(&["a", "c"]))), ["c"]);
        assert_eq!(names(&key_validators(&win, &ids(&["a", "d"]))), ["a", "d"]);
        assert_eq!(names(&key_validators(&win, &ids(&[]))), Vec::<&str>::new());
    }

    #[test]
    fn the_verdict_takes_the_first_yes_and_names_who_said_no() {
        use ValidatorAnswer::*;
        let validators: Vec<ClusterId> = ["a", "b", "c"].iter().map(|n| id(n)).collect();
        let no = |why: &str| No(why.into());
        let table: Vec<(Vec<(&str, ValidatorAnswer)>, KeyVerdict)> = vec![
            (
                vec![("a", no("bad")), ("b", Yes)],
                KeyVerdict::Valid {
                    by: id("b"),
                    refused_by: [(id("a"), "bad".to_owned())].into(),
                },
            ),
            (
                vec![("a", Yes)],
                KeyVerdict::Valid {
                    by: id("a"),
                    refused_by: BTreeMap::new(),
                },
            ),
            (
                vec![("a", no("x")), ("b", no("y")), ("c", no("z"))],
                KeyVerdict::Invalid {
                    refused_by: [
                        (id("a"), "x".to_owned()),
                        (id("b"), "y".to_owned()),
                        (id("c"), "z".to_owned()),
                    ]
                    .into(),
                },
            ),
            (
                vec![
                    ("a", no("x")),
                    ("b", Failed("timed out".into())),
                    ("c", no("z")),
                ],
                KeyVerdict::Undecided {
                    refused_by: [(id("a"), "x".to_owned()), (id("c"), "z".to_owned())].into(),
                    unanswered: [(id("b"), "timed out".to_owned())].into(),
                },
            ),
        ];
        for (answers, expected) in table {
            let answers: BTreeMap<ClusterId, ValidatorAnswer> =
                answers.into_iter().map(|(c, a)| (id(c), a)).collect();
            assert_eq!(key_verdict(&validators, &answers), expected, "{answers:?}");
        }
        assert!(matches!(
            key_verdict(&[], &BTreeMap::new()),
            KeyVerdict::Undecided { .. }
        ));
    }

    type Answers = Vec<(ClusterId, ValidatorAnswer)>;

    fn validator_answer() -> impl Strategy<Value = ValidatorAnswer> {
        prop_oneof![
            Just(ValidatorAnswer::Yes),
            "[a-c]".prop_map(ValidatorAnswer::No),
            "[a-c]".prop_map(ValidatorAnswer::Failed),
        ]
    }

    /// Answers of up to six clusters, and the same (clusters and answers) in another order.
    fn answers_and_shuffle() -> impl Strategy<Value = (Answers, Answers)> {
        prop::collection::btree_map("[a-f]", validator_answer(), 0..6).prop_flat_map(|answers| {
            let answers: Answers = answers.into_iter().map(|(c, a)| (id(&c), a)).collect();
            (Just(answers.clone()), Just(answers).prop_shuffle())
        })
    }

    /// Plays the service's loop over answers arriving in `order`: asks in id order, stops at
    /// the first yes, then decides.
    fn play(order: &[(ClusterId, ValidatorAnswer)]) -> KeyVerdict {
        let validators: Vec<ClusterId> = order.iter().map(|(c, _)| c.clone()).collect();
        let mut received = BTreeMap::new();
        let mut asking: Vec<&ClusterId> = validators.iter().collect();
        asking.sort();
        for cluster in asking {
            let answer = order
                .iter()
                .find(|(c, _)| c == cluster)
                .map(|(_, a)| a.clone())
                .unwrap_or(ValidatorAnswer::Failed("lost".into()));
            let yes = answer == ValidatorAnswer::Yes;
            received.insert(cluster.clone(), answer);
            if yes {
                break;
            }
        }
        key_verdict(&validators, &received)
    }

    proptest! {
        #[test]
        fn the_key_rule_gives_one_verdict_for_every_answer_order(
            (answers, shuffled) in answers_and_shuffle()
        ) {
            let verdict = play(&answers);
            prop_assert_eq!(&verdict, &play(&shuffled));
            let all: BTreeMap<ClusterId, ValidatorAnswer> = shuffled.iter().cloned().collect();
            let validators: Vec<ClusterId> = shuffled.iter().map(|(c, _)| c.clone()).collect();
            prop_assert_eq!(&verdict, &key_verdict(&validators, &all));
            let any_yes = answers.iter().any(|(_, a)| *a == ValidatorAnswer::Yes);
            prop_assert_eq!(matches!(verdict, KeyVerdict::Valid { .. }), any_yes);
        }
    }
}

#[cfg(test)]
#[path = "license_rules_tests.rs"]
mod rules_tests;
