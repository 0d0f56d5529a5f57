//! osmesh-core: the pure domain of osmesh.
//!
//! What lives here: the cluster's operating-system registry and its drivers, boot images and
//! the rules that turn a boot-resource tree into them, and the region's merged mesh view.
//!
//! What it must not know: sockets, async, clocks, randomness, databases or actors. The one
//! piece of I/O allowed is the thin directory walk over a boot-resource tree; every rule it
//! applies is a pure function tested without a filesystem.

pub mod cluster;
pub mod fields;
pub mod hooks;
pub mod image;
pub mod mesh;
pub mod os;
pub mod osinfo;

pub use cluster::ClusterId;
pub use image::{scan_boot_resources, BootImage, Purpose, ScanReport, SkipReason, Skipped};
pub use mesh::{
    Availability, ClusterAnswer, ClusterReport, Conflict, ConflictField, ConflictValue, MergeError,
    MeshOsystem, MeshRelease, MeshView, NoAnswerReason,
};
pub use os::{
    parse_declared, DeclaredError, DeclaredOs, LicenseKeyError, OperatingSystem, Registry,
    RegistryConfig, RegistryError, UbuntuReleaseTable,
};
pub use osinfo::{OsystemInfo, ReleaseInfo};
