//! The message catalogue: every method's request and reply body, and the typed RPC error.
//!
//! Bodies are plain serde structs encoded as CBOR inside the envelope. Field names are the
//! wire names; enums are externally tagged. Method names are stable once chosen.

use osmesh_core::{BootImage, ClusterId, OsystemInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Method names, as they appear in the envelope.
pub mod method {
    // Region → cluster.
    pub const LIST_OPERATING_SYSTEMS: &str = "ListOperatingSystems";
    pub const GET_OS_RELEASE_TITLE: &str = "GetOSReleaseTitle";
    pub const VALIDATE_LICENSE_KEY: &str = "ValidateLicenseKey";
    pub const LIST_BOOT_IMAGES: &str = "ListBootImages";
    pub const GET_PRESEED_DATA: &str = "GetPreseedData";
    // Cluster → region.
    pub const REGISTER: &str = "Register";
    pub const REPORT_BOOT_IMAGES: &str = "ReportBootImages";
    pub const REPORT_PRESEED_TEMPLATES: &str = "ReportPreseedTemplates";
    // Region → cluster, a notification (no reply): every live region's endpoints.
    pub const REGION_LIST: &str = "RegionList";
}

/// A request body and the method it is sent with; ties a request type to its reply type.
pub trait Request: Serialize + for<'de> Deserialize<'de> {
    const METHOD: &'static str;
    type Reply: Serialize + for<'de> Deserialize<'de>;
}

/// `ListOperatingSystems`: what the cluster's registry supports now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOperatingSystems {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatingSystemList {
    /// Shared with the region's snapshot and answers (`ClusterReport`); the wire form is
    /// the plain list.
    pub osystems: Arc<Vec<OsystemInfo>>,
}

impl Request for ListOperatingSystems {
    const METHOD: &'static str = method::LIST_OPERATING_SYSTEMS;
    type Reply = OperatingSystemList;
}

/// `GetOSReleaseTitle`: the title the cluster's registry gives one release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetOsReleaseTitle {
    pub osystem: String,
    pub release: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseTitle {
    pub title: String,
}

impl Request for GetOsReleaseTitle {
    const METHOD: &'static str = method::GET_OS_RELEASE_TITLE;
    type Reply = ReleaseTitle;
}

/// `ValidateLicenseKey`: does the cluster's registry accept this key for this release?
///
/// An unknown OS or release is an error (`NoSuchOperatingSystem`/`NoSuchRelease`); a key of
/// the wrong form is a successful call with `valid: false` and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateLicenseKey {
    pub osystem: String,
    pub release: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseKeyVerdict {
    pub valid: bool,
    pub reason: Option<String>,
}

impl Request for ValidateLicenseKey {
    const METHOD: &'static str = method::VALIDATE_LICENSE_KEY;
    type Reply = LicenseKeyVerdict;
}

/// `ListBootImages`: the images the cluster holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBootImages {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootImageList {
    /// Shared like `OperatingSystemList::osystems`.
    pub images: Arc<Vec<BootImage>>,
}

impl Request for ListBootImages {
    const METHOD: &'static str = method::LIST_BOOT_IMAGES;
    type Reply = BootImageList;
}

/// The node a preseed is being rendered for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeContext {
    pub hostname: String,
    pub arch: String,
    pub subarch: String,
}

/// `GetPreseedData`: the OS-specific data a preseed for this node needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPreseedData {
    pub preseed_type: String,
    pub osystem: String,
    pub release: String,
    pub node: NodeContext,
    /// The license key the region holds for this release, if any.
    pub license_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreseedData {
    pub data: BTreeMap<String, String>,
}

impl Request for GetPreseedData {
    const METHOD: &'static str = method::GET_PRESEED_DATA;
    type Reply = PreseedData;
}

/// `Register`: the cluster introduces itself after the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    pub cluster: ClusterId,
    pub name: String,
    pub capabilities: Vec<String>,
}

/// The reply to `Register`. `region_id` and `regions` came with several regions (issue 15):
/// both are optional on the wire (absent from an older region, ignored by an older cluster),
/// so either side may be older than the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The region's name.
    pub region: String,
    /// This region process's registry id, which the cluster keys its link by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    /// Every live region sharing this region's database (itself included); the cluster keeps
    /// one link to each. `None` from a region that does not know its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<RegionEndpoint>>,
}

impl Registered {
    /// The reply of a region that knows no peers (as every region before issue 15).
    pub fn named(region: impl Into<String>) -> Self {
        Registered {
            region: region.into(),
            region_id: None,
            regions: None,
        }
    }
}

/// One region as clusters dial it: its registry id, name, and RPC addresses (tried in turn).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RegionEndpoint {
    pub id: String,
    pub name: String,
    pub rpc: Vec<String>,
}

/// `RegionList` (a notification from a region): the live regions changed; here is the whole
/// set, as `Registered.regions` carries it. Bounded by `limits::MAX_REGIONS` and friends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionList {
    pub regions: Vec<RegionEndpoint>,
}

impl Request for Register {
    const METHOD: &'static str = method::REGISTER;
    type Reply = Registered;
}

/// `ReportBootImages`: pushed on connect and whenever the image set changes. Carries the
/// registry's OS list too, since (for Ubuntu) the releases follow the images.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBootImages {
    pub images: Vec<BootImage>,
    pub osystems: Vec<OsystemInfo>,
}

/// The empty acknowledgement of a push.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {}

impl Request for ReportBootImages {
    const METHOD: &'static str = method::REPORT_BOOT_IMAGES;
    type Reply = Ack;
}

/// One preseed template as a cluster ships it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PreseedTemplate {
    /// e.g. `generic`, `curtin_userdata_windows`, or a more specific
    /// `<type>_<os>_<arch>_<subarch>_<release>_<hostname>` name.
    pub name: String,
    pub osystem: Option<String>,
    pub content: String,
}

/// `ReportPreseedTemplates`: the cluster's templates, pushed on connect and on change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPreseedTemplates {
    pub templates: Vec<PreseedTemplate>,
}

impl Request for ReportPreseedTemplates {
    const METHOD: &'static str = method::REPORT_PRESEED_TEMPLATES;
    type Reply = Ack;
}

/// The kind of a typed RPC error. Stable on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    NoSuchOperatingSystem,
    NoSuchRelease,
    UnknownMethod,
    BadRequest,
    /// The peer is gone, not connected, or refused to serve; also the local error for every
    /// call in flight when a connection drops.
    Unavailable,
    /// The call's deadline passed before a reply arrived.
    Timeout,
    Internal,
}

/// A typed RPC error with a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct RpcError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RpcError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RpcError {
            kind,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
