//! The one request/reply every RPC peer exchanges: `ListOperatingSystems`, answered with 5
//! operating systems of 4 releases each (about 2,000 bytes of CBOR), the same in every peer.

use osmesh_core::{OsystemInfo, ReleaseInfo};
use osmesh_net::envelope::{decode_body, encode_body, encode_frame, Kind};
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
                    end_of_life: false,
                })
                .collect(),
            default_release: Some("release1".into()),
            default_commissioning_release: Some("release0".into()),
        })
        .collect::<Vec<_>>();
    OperatingSystemList {
        osystems: osystems.into(),
    }
}

/// The reply with one title changed, of the same encoded size: a reply that is not the last.
pub fn os_list_variant() -> OperatingSystemList {
    let mut list = os_list();
    std::sync::Arc::make_mut(&mut list.osystems)[0].title = "Operating System X".into();
    list
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

/// The cost of osmesh's codec alone on the reply body, in microseconds per call.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CodecFigures {
    pub body_bytes: usize,
    pub encode_us: f64,
    pub decode_us: f64,
    /// tarpc's bincode on the same reply, for comparison.
    pub bincode_encode_us: f64,
    pub bincode_decode_us: f64,
}

/// Times `encode_body` and `decode_body` of the reply, `iterations` times each.
pub fn codec_alone(iterations: u32) -> CodecFigures {
    let list = os_list();
    let started = std::time::Instant::now();
    let mut body = encode_body(&list);
    for _ in 1..iterations {
        body = encode_body(std::hint::black_box(&list));
    }
    let encode = started.elapsed() / iterations;
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        let back: Result<OperatingSystemList, _> = decode_body(std::hint::black_box(&body));
        assert!(back.is_ok_and(|b| b.osystems.len() == OSYSTEMS));
    }
    let decode = started.elapsed() / iterations;
    CodecFigures {
        body_bytes: body.len(),
        encode_us: encode.as_secs_f64() * 1e6,
        decode_us: decode.as_secs_f64() * 1e6,
        bincode_encode_us: 0.0,
        bincode_decode_us: 0.0,
    }
}
