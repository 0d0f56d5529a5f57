//! The records the region keeps, as plain values: what the store trait takes and returns.
//! No database type appears here; `osmesh-store` maps them to and from its rows.

use osmesh_core::{BootImage, ClusterId, OsystemInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a cluster last reported: its OS registry and the boot images it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Shared with the region's held snapshot (see `osmesh_core::ClusterReport`).
    pub osystems: std::sync::Arc<Vec<OsystemInfo>>,
    pub images: std::sync::Arc<Vec<BootImage>>,
}

/// A cluster as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRecord {
    pub id: ClusterId,
    pub name: String,
    /// When the region first saw this cluster; never moves.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The last pushed snapshot and when it was saved; `None` until the first push.
    pub snapshot: Option<(ClusterSnapshot, i64)>,
}

/// How many trailing key characters [`LicenseKeyRecord::masked`] reveals.
const VISIBLE_KEY_CHARS: usize = 5;

/// A key to store, with the cluster that said yes to it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewLicenseKey<'a> {
    pub osystem: &'a str,
    pub distro_series: &'a str,
    pub license_key: &'a str,
    pub validated_by: &'a ClusterId,
    pub validated_at_ms: i64,
}

/// A stored license key.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenseKeyRecord {
    pub osystem: String,
    pub distro_series: String,
    /// The key in full: show [`LicenseKeyRecord::masked`] instead, never log this.
    pub license_key: String,
    pub validated_by: ClusterId,
    pub validated_at_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl LicenseKeyRecord {
    /// The key with every letter and digit but the last five replaced by `*`, separators
    /// kept: `ABCDE-FGHIJ-KLMNO-PQRST-VWXYZ` shows as `*****-*****-*****-*****-VWXYZ`. A key
    /// of five alphanumerics or fewer is masked entirely (showing it would show all of it).
    pub fn masked(&self) -> String {
        mask_key(&self.license_key)
    }
}

impl std::fmt::Debug for LicenseKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LicenseKeyRecord")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &self.masked())
            .field("validated_by", &self.validated_by)
            .field("validated_at_ms", &self.validated_at_ms)
            .field("created_at_ms", &self.created_at_ms)
            .field("updated_at_ms", &self.updated_at_ms)
            .finish()
    }
}

impl std::fmt::Debug for NewLicenseKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLicenseKey")
            .field("osystem", &self.osystem)
            .field("distro_series", &self.distro_series)
            .field("license_key", &mask_key(self.license_key))
            .field("validated_by", &self.validated_by)
            .finish_non_exhaustive()
    }
}

/// A key as it may be shown or logged (see [`LicenseKeyRecord::masked`]).
pub fn mask_key(key: &str) -> String {
    let total = key.chars().filter(char::is_ascii_alphanumeric).count();
    let hidden = if total <= VISIBLE_KEY_CHARS {
        total
    } else {
        total - VISIBLE_KEY_CHARS
    };
    let mut seen = 0;
    key.chars()
        .map(|c| {
            if !c.is_ascii_alphanumeric() {
                return if c.is_ascii_punctuation() || c == ' ' {
                    c
                } else {
                    '*'
                };
            }
            seen += 1;
            if seen <= hidden {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// Whether a node can be handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeStatus {
    Ready,
    Allocated,
}

impl NodeStatus {
    /// The status as stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "ready",
            NodeStatus::Allocated => "allocated",
        }
    }

    /// Parses a stored status; `None` for one this region does not know.
    pub fn parse(s: &str) -> Option<NodeStatus> {
        match s {
            "ready" => Some(NodeStatus::Ready),
            "allocated" => Some(NodeStatus::Allocated),
            _ => None,
        }
    }
}

/// A node to enlist. It starts `Ready`. `Debug` masks the power parameters (`masked.rs`).
#[derive(Clone, PartialEq, Eq)]
pub struct NewNode {
    pub system_id: Option<String>,
    pub hostname: String,
    pub arch: String,
    pub subarch: String,
    pub cluster_id: ClusterId,
    pub power_type: Option<String>,
    pub power_parameters: Option<serde_json::Value>,
}

/// A stored node. `Debug` masks the power parameters (`masked.rs`).
#[derive(Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub id: i64,
    pub system_id: Option<String>,
    pub hostname: String,
    pub arch: String,
    pub subarch: String,
    pub cluster_id: ClusterId,
    pub power_type: Option<String>,
    pub power_parameters: Option<serde_json::Value>,
    pub status: NodeStatus,
    /// Set while allocated: the OS it was allocated to run.
    pub osystem: Option<String>,
    pub distro_series: Option<String>,
    pub created_at_ms: i64,
    /// Set while allocated.
    pub allocated_at_ms: Option<i64>,
}

/// What an allocation asks for. The caller has already worked out which clusters hold a
/// boot image for the OS, release and arch (and that a license key exists if one is needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocationRequest<'a> {
    pub arch: &'a str,
    /// `None` accepts any subarchitecture.
    pub subarch: Option<&'a str>,
    /// Clusters that have the image; nodes elsewhere are never picked.
    pub cluster_ids: &'a [ClusterId],
    /// `None` takes any matching node.
    pub hostname: Option<&'a str>,
    pub osystem: &'a str,
    pub distro_series: &'a str,
}

/// Who wrote a preseed version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreseedOrigin {
    Cluster(ClusterId),
    Operator,
}

/// One immutable version of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreseedVersion {
    pub name: String,
    /// 1, 2, 3… per name.
    pub version: i32,
    pub osystem: Option<String>,
    pub origin: PreseedOrigin,
    /// The version this one was derived from; `None` for version 1.
    pub parent_version: Option<i32>,
    pub content: String,
    /// Lower-case hex SHA-256 of `content`.
    pub content_hash: String,
    pub created_at_ms: i64,
}

/// An operator's edit and a later cluster change that disagree; both versions are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreseedConflict {
    /// The operator's version, current while the conflict lasts.
    pub operator_version: i32,
    /// The cluster's newest version.
    pub cluster_version: i32,
}

/// A preseed: its current version and any unresolved conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreseedRecord {
    pub current: PreseedVersion,
    pub conflict: Option<PreseedConflict>,
    pub updated_at_ms: i64,
}

/// What a cluster template report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreseedOutcome {
    /// A new name: version 1.
    Created { version: i32 },
    /// Same content as before: no version added.
    Unchanged { current_version: i32 },
    /// A new cluster version, now current.
    Updated { version: i32 },
    /// A new cluster version stored beside the operator's current one.
    Conflict(PreseedConflict),
    /// The cluster now ships the operator's current text: a cluster version is stored, the
    /// operator's stays current, and any conflict ends.
    CaughtUp { version: i32 },
    /// The template failed its arrival check: recorded with the error, no version added.
    Refused,
}

/// The stored facts the cluster-report rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreseedHead<'a> {
    pub current_is_operator: bool,
    pub current_hash: &'a str,
    /// Hash of the newest cluster-originated version, from any cluster.
    pub latest_cluster_hash: Option<&'a str>,
    /// Hash of the newest version from the reporting cluster.
    pub reporter_latest_hash: Option<&'a str>,
}

/// What a cluster's report does (see the module's rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterReportAction {
    Create,
    Unchanged,
    /// Store a version and make it current, ending any conflict.
    Advance,
    /// Store a version; the operator's stays current; the preseed is in conflict.
    KeepOperator,
    /// The cluster now ships the operator's current text: the conflict ends, the operator's
    /// version stays current (a cluster never takes a name over from the operator, whose
    /// version serves every cluster's nodes).
    CaughtUp,
}

/// The cluster-report rule, without a database.
pub fn decide_cluster_report(
    head: Option<&PreseedHead<'_>>,
    incoming_hash: &str,
) -> ClusterReportAction {
    let Some(head) = head else {
        return ClusterReportAction::Create;
    };
    let seen = |h: Option<&str>| h == Some(incoming_hash);
    if seen(head.latest_cluster_hash) || seen(head.reporter_latest_hash) {
        return ClusterReportAction::Unchanged;
    }
    if !head.current_is_operator {
        return ClusterReportAction::Advance;
    }
    if head.current_hash == incoming_hash {
        return ClusterReportAction::CaughtUp;
    }
    ClusterReportAction::KeepOperator
}

/// The operator-edit rule: `Err(current)` when the edit was based on an older version.
pub fn decide_operator_edit(current_version: i32, based_on_version: i32) -> Result<(), i32> {
    if current_version == based_on_version {
        Ok(())
    } else {
        Err(current_version)
    }
}

/// One template of a cluster's report, borrowed from the message.
#[derive(Clone, Copy, Debug)]
pub struct ClusterTemplate<'a> {
    pub name: &'a str,
    pub osystem: Option<&'a str>,
    pub content: &'a str,
    /// Why the template failed its arrival check (parse and trial render), bounded and
    /// free of secrets; `None` when it passed. A failed one is recorded, never used.
    pub refusal: Option<&'a str>,
}

/// Lower-case hex SHA-256 of a template's text: how versions and reports are compared.
pub fn content_hash(content: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An admin's word on a template name a cluster ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplateState {
    /// Shipped for the first time: serves no node until an admin approves it.
    Pending,
    /// Serves the cluster's own nodes.
    Approved,
    /// An admin said no: serves no node.
    Refused,
}

impl TemplateState {
    /// The state as stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateState::Pending => "pending",
            TemplateState::Approved => "approved",
            TemplateState::Refused => "refused",
        }
    }

    /// Parses a stored or requested state; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<TemplateState> {
        [
            TemplateState::Pending,
            TemplateState::Approved,
            TemplateState::Refused,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A template name as one cluster ships it: keyed by (cluster, name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTemplateRecord {
    pub cluster: ClusterId,
    pub name: String,
    pub state: TemplateState,
    /// The newest version holding what the cluster ships that passed the arrival check.
    pub version: Option<i32>,
    /// [`content_hash`] of the cluster's newest report of the name.
    pub content_hash: String,
    /// Why the cluster's newest report of the name failed the arrival check.
    pub error: Option<String>,
    pub first_seen_ms: i64,
    pub updated_at_ms: i64,
}

/// Where the template a node may use under one name comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsableTemplate<'a> {
    /// The operator's version, current for the name: it serves every cluster's nodes.
    Operator(&'a PreseedVersion),
    /// The node's own cluster's approved version (a version number of the name).
    Cluster(i32),
}

/// The templates that may serve a node of `cluster`, by name: a name whose current version
/// is the operator's serves every node with it; otherwise only the node's own cluster's
/// approved template of that name does (a pending, refused or never-passing one does not,
/// nor any other cluster's). `lanes` may hold every cluster's; only `cluster`'s count.
pub fn templates_for_cluster<'a>(
    heads: &'a [PreseedRecord],
    lanes: &[ClusterTemplateRecord],
    cluster: &ClusterId,
) -> BTreeMap<String, UsableTemplate<'a>> {
    let mut usable: BTreeMap<String, UsableTemplate<'a>> = lanes
        .iter()
        .filter(|l| &l.cluster == cluster && l.state == TemplateState::Approved)
        .filter_map(|l| Some((l.name.clone(), UsableTemplate::Cluster(l.version?))))
        .collect();
    for head in heads {
        if head.current.origin == PreseedOrigin::Operator {
            usable.insert(
                head.current.name.clone(),
                UsableTemplate::Operator(&head.current),
            );
        }
    }
    usable
}

/// The settings the region knows. Rows with other keys (written by a newer region) are
/// left alone and not returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SettingKey {
    DefaultOsystem,
    DefaultDistroSeries,
    CommissioningDistroSeries,
}

impl SettingKey {
    pub const ALL: [SettingKey; 3] = [
        SettingKey::DefaultOsystem,
        SettingKey::DefaultDistroSeries,
        SettingKey::CommissioningDistroSeries,
    ];

    /// The key as stored and as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingKey::DefaultOsystem => "default_osystem",
            SettingKey::DefaultDistroSeries => "default_distro_series",
            SettingKey::CommissioningDistroSeries => "commissioning_distro_series",
        }
    }

    /// Parses a stored or requested key; `None` for keys this region does not know.
    pub fn parse(key: &str) -> Option<SettingKey> {
        SettingKey::ALL.into_iter().find(|k| k.as_str() == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(
        current_is_operator: bool,
        current: &'static str,
        latest: Option<&'static str>,
        reporter: Option<&'static str>,
    ) -> PreseedHead<'static> {
        PreseedHead {
            current_is_operator,
            current_hash: current,
            latest_cluster_hash: latest,
            reporter_latest_hash: reporter,
        }
    }

    fn check(state: Option<PreseedHead<'_>>, incoming: &str, expected: ClusterReportAction) {
        assert_eq!(
            decide_cluster_report(state.as_ref(), incoming),
            expected,
            "{state:?} <- {incoming}"
        );
    }

    #[test]
    fn cluster_report_rule() {
        use ClusterReportAction::*;
        check(None, "a", Create);
        // Re-report of what the cluster last sent.
        check(Some(head(false, "a", Some("a"), Some("a"))), "a", Unchanged);
        // Another cluster shipping what is already the latest cluster version.
        check(Some(head(false, "a", Some("a"), None)), "a", Unchanged);
        // A cluster re-sending its own older template does not flip the current one.
        check(Some(head(false, "b", Some("b"), Some("a"))), "a", Unchanged);
        check(Some(head(false, "a", Some("a"), Some("a"))), "b", Advance);
        // Operator edited; the cluster ships a change: both kept, conflict.
        check(
            Some(head(true, "op", Some("a"), Some("a"))),
            "b",
            KeepOperator,
        );
        // Operator edited; the cluster re-reports its old template: nothing to do.
        check(Some(head(true, "op", Some("a"), Some("a"))), "a", Unchanged);
        // Operator edited; the cluster now ships exactly the operator's text: it caught up,
        // and the operator's version stays current.
        check(Some(head(true, "op", Some("a"), Some("a"))), "op", CaughtUp);
    }

    fn record(name: &str, version: i32, origin: PreseedOrigin) -> PreseedRecord {
        PreseedRecord {
            current: PreseedVersion {
                name: name.into(),
                version,
                osystem: None,
                origin,
                parent_version: None,
                content: String::new(),
                content_hash: String::new(),
                created_at_ms: 0,
            },
            conflict: None,
            updated_at_ms: 0,
        }
    }

    fn lane(
        cluster: &str,
        name: &str,
        state: TemplateState,
        version: Option<i32>,
    ) -> ClusterTemplateRecord {
        ClusterTemplateRecord {
            cluster: ClusterId::new(cluster),
            name: name.into(),
            state,
            version,
            content_hash: String::new(),
            error: None,
            first_seen_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_node_is_served_by_the_operator_and_its_own_clusters_approved_templates() {
        use TemplateState::*;
        let evil = PreseedOrigin::Cluster(ClusterId::new("evil"));
        let heads = [
            record("generic", 2, PreseedOrigin::Operator),
            record("curtin", 1, PreseedOrigin::Cluster(ClusterId::new("a"))),
            // Current from another cluster: says nothing about who it serves.
            record("zzz_ubuntu", 1, evil.clone()),
            record("curtin_ubuntu", 3, evil),
        ];
        let lanes = [
            lane("a", "curtin", Approved, Some(1)),
            lane("a", "generic", Approved, Some(1)),
            lane("a", "pending_one", Pending, Some(1)),
            lane("a", "never_passed", Approved, None),
            lane("evil", "curtin_ubuntu", Approved, Some(3)),
            lane("evil", "zzz_ubuntu", Pending, Some(1)),
            lane("evil", "refused_one", Refused, Some(1)),
        ];
        let for_cluster = |c: &str| -> Vec<(String, UsableTemplate<'_>)> {
            templates_for_cluster(&heads, &lanes, &ClusterId::new(c))
                .into_iter()
                .collect()
        };
        let operator = UsableTemplate::Operator(&heads[0].current);
        assert_eq!(
            for_cluster("a"),
            [
                ("curtin".into(), UsableTemplate::Cluster(1)),
                ("generic".into(), operator.clone()),
            ],
            "the operator's generic wins over a's own"
        );
        assert_eq!(
            for_cluster("evil"),
            [
                ("curtin_ubuntu".into(), UsableTemplate::Cluster(3)),
                ("generic".into(), operator.clone()),
            ]
        );
        assert_eq!(for_cluster("b"), [("generic".into(), operator)]);
    }

    #[test]
    fn operator_edit_rule_refuses_stale_bases() {
        assert_eq!(decide_operator_edit(3, 3), Ok(()));
        assert_eq!(decide_operator_edit(3, 2), Err(3));
        assert_eq!(decide_operator_edit(3, 4), Err(3));
    }

    #[test]
    fn masking_reveals_only_the_last_five_alphanumerics() {
        assert_eq!(
            mask_key("ABCDE-FGHIJ-KLMNO-PQRST-VWXYZ"),
            "*****-*****-*****-*****-VWXYZ"
        );
        assert_eq!(mask_key("abcdefgh12"), "*****fgh12");
        assert_eq!(mask_key("ABCDE"), "*****");
        assert_eq!(mask_key("AB-C"), "**-*");
        assert_eq!(mask_key(""), "");
    }
}

/// A region as the registry holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRecord {
    pub id: String,
    pub name: String,
    pub rpc_endpoints: Vec<String>,
    pub http_url: String,
    pub started_at_ms: i64,
    /// When it last wrote its heartbeat, by its own clock (unix ms).
    pub heartbeat_ms: i64,
    /// The clusters linked to it at that heartbeat, sorted.
    pub linked_clusters: Vec<ClusterId>,
}

/// The clusters no region may keep a link to (see `RegionStore::cluster_exclusions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterExclusions {
    /// Revoked: refused until enrolled again.
    pub revoked: Vec<ClusterId>,
    /// Removed by an operator: no enrollment, hidden from every list.
    pub removed: Vec<ClusterId>,
}

/// A cluster's enrollment as stored, without the token's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollmentRecord {
    pub cluster_id: String,
    pub token_expires_ms: Option<i64>,
    /// Fingerprint (SHA-256 hex of the DER) of the certificate issued at redemption.
    pub cert_sha256: Option<String>,
    pub created_at_ms: i64,
    pub enrolled_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

#[cfg(test)]
#[path = "records_rules_tests.rs"]
mod rules_tests;
