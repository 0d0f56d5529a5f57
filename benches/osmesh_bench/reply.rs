//! The one request/reply every RPC peer exchanges: `ListOperatingSystems`, answered with 5
//! operating systems of 4 releases each (about 2,000 bytes of CBOR), the same in every peer.

use osmesh_core::{OsystemInfo, ReleaseInfo};
use osmesh_net::envelope::{encode_body, encode_frame, Kind};
use osmesh_net::messages::{ListOperatingSystems, OperatingSystemList, Request};

/// How many operating systems and releases per OS the reply carries (5 × 4 = 20 releases).
pub const OSYSTEMS: usize = 5;
pub const RELEASES_PER_OS: usize = 4;

/// The reply; `benches/amp/amp_bench.py` builds the same one.
pub fn os_list() -> OperatingSystemList {
    let osystems = (0..OSYSTEMS)
        .map(|o| OsystemInfo {
            name: format!("os{o}"),
            title: format!("Operating System {o}"),
            releases: (0..RELEASES_PER_OS)
                .map(|r| ReleaseInfo {
                    name: format!("release{r}"),
                    title: format!("OS {o} release {r} \"Some Codename\""),
                    requires_license_key: r == 0,
                    can_commission: r % 2 == 0,
                })
                .collect(),
            default_release: Some("release1".into()),
            default_commissioning_release: Some("release0".into()),
        })
        .collect();
    OperatingSystemList { osystems }
}

/// Sizes of osmesh's request and reply frames (envelope included, length prefix excluded):
/// what the raw TCP floor sends and answers.
pub fn osmesh_frame_sizes() -> (usize, usize) {
    let request = encode_frame(
        1,
        Kind::Call,
        ListOperatingSystems::METHOD,
        &encode_body(&ListOperatingSystems {}),
    );
    let reply = encode_frame(1, Kind::Reply, "", &encode_body(&os_list()));
    (request.len(), reply.len())
}
