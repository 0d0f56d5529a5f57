//! The wire format: every message and envelope kind round-trips; bad bytes are errors, never
//! panics; the worked examples in docs/PROTOCOL.md are what the encoder produces.

mod common;

use bytes::Bytes;
use osmesh_core::{BootImage, ClusterId, Purpose};
use osmesh_net::envelope::{encode_frame, ByteString};
use osmesh_net::handshake::{proof_mac, step, Hello, Proof, Role, Transcript};
use osmesh_net::messages::*;
use osmesh_net::{decode_body, encode_body, Envelope, ErrorKind, Kind, RpcError, Secret};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// What ciborium, the reference encoder the wire format was first written with, makes of it.
fn ciborium_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    ciborium::into_writer(value, &mut bytes).unwrap();
    bytes
}

/// Encodes `value` as a body inside a call envelope, decodes both, and compares. The body is
/// byte for byte what ciborium encodes, and ciborium reads it back as the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(method: &str, value: T) {
    let body = encode_body(&value);
    assert_eq!(
        hex(&body),
        hex(&ciborium_bytes(&value)),
        "{method}: {value:?}"
    );
    assert_eq!(ciborium::from_reader::<T, _>(&body[..]).unwrap(), value);
    let frame = encode_frame(42, Kind::Call, method, &body);
    let envelope = Envelope::decode(&frame).unwrap();
    assert_eq!(
        (envelope.id, envelope.kind, envelope.method.as_str()),
        (42, Kind::Call, method)
    );
    assert_eq!(decode_body::<T>(&envelope.body).unwrap(), value);
}

fn image() -> BootImage {
    BootImage {
        osystem: "ubuntu".into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        release: "jammy".into(),
        label: "stable".into(),
        purposes: BTreeSet::from([Purpose::Commissioning, Purpose::Install, Purpose::Xinstall]),
    }
}

#[test]
fn every_message_round_trips() {
    let os = common::sample_osystems(2, 4);
    round_trip(method::LIST_OPERATING_SYSTEMS, ListOperatingSystems {});
    round_trip(method::LIST_OPERATING_SYSTEMS, os.clone());
    round_trip(
        method::GET_OS_RELEASE_TITLE,
        GetOsReleaseTitle {
            osystem: "ubuntu".into(),
            release: "jammy".into(),
        },
    );
    round_trip(
        method::GET_OS_RELEASE_TITLE,
        ReleaseTitle {
            title: "Ubuntu 22.04 LTS \"Jammy Jellyfish\"".into(),
        },
    );
    round_trip(
        method::VALIDATE_LICENSE_KEY,
        ValidateLicenseKey {
            osystem: "windows".into(),
            release: "win2012r2".into(),
            key: "ABCDE-ABCDE-ABCDE-ABCDE-ABCDE".into(),
        },
    );
    round_trip(
        method::VALIDATE_LICENSE_KEY,
        LicenseKeyVerdict {
            valid: true,
            reason: None,
        },
    );
    round_trip(
        method::VALIDATE_LICENSE_KEY,
        LicenseKeyVerdict {
            valid: false,
            reason: Some("five groups of five".into()),
        },
    );
    round_trip(method::LIST_BOOT_IMAGES, ListBootImages {});
    round_trip(
        method::LIST_BOOT_IMAGES,
        BootImageList {
            images: vec![image()].into(),
        },
    );
    round_trip(
        method::GET_PRESEED_DATA,
        GetPreseedData {
            preseed_type: "curtin".into(),
            osystem: "windows".into(),
            release: "win2012r2".into(),
            node: NodeContext {
                hostname: "node-1".into(),
                arch: "amd64".into(),
                subarch: "generic".into(),
            },
            license_key: Some("ABCDE-ABCDE-ABCDE-ABCDE-ABCDE".into()),
        },
    );
    round_trip(
        method::GET_PRESEED_DATA,
        PreseedData {
            data: BTreeMap::from([("license_key".into(), "XXXXX".into())]),
        },
    );
    round_trip(
        method::REGISTER,
        Register {
            cluster: ClusterId::new("cluster-1"),
            name: "Rack 1".into(),
            capabilities: vec!["preseeds".into()],
        },
    );
    round_trip(method::REGISTER, Registered::named("region"));
    round_trip(
        method::REGISTER,
        Registered {
            region: "region".into(),
            region_id: Some("7f3a".into()),
            regions: Some(vec![RegionEndpoint {
                id: "7f3a".into(),
                name: "region".into(),
                rpc: vec!["10.0.0.1:5250".into()],
            }]),
        },
    );
    round_trip(
        method::REGION_LIST,
        RegionList {
            regions: vec![RegionEndpoint {
                id: "7f3a".into(),
                name: "region".into(),
                rpc: vec!["10.0.0.1:5250".into(), "[fd00::1]:5250".into()],
            }],
        },
    );
    round_trip(
        method::REPORT_BOOT_IMAGES,
        ReportBootImages {
            images: vec![image()],
            osystems: os.osystems.as_ref().clone(),
        },
    );
    round_trip(method::REPORT_BOOT_IMAGES, Ack {});
    round_trip(
        method::REPORT_PRESEED_TEMPLATES,
        ReportPreseedTemplates {
            templates: vec![PreseedTemplate {
                name: "generic".into(),
                osystem: None,
                content: "d-i foo".into(),
            }],
        },
    );
}

#[test]
fn every_error_kind_round_trips() {
    for kind in [
        ErrorKind::NoSuchOperatingSystem,
        ErrorKind::NoSuchRelease,
        ErrorKind::UnknownMethod,
        ErrorKind::BadRequest,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::Internal,
    ] {
        let error = RpcError::new(kind, format!("{kind} happened"));
        let frame = encode_frame(9, Kind::Error, "", &encode_body(&error));
        let envelope = Envelope::decode(&frame).unwrap();
        assert_eq!(envelope.kind, Kind::Error);
        assert_eq!(decode_body::<RpcError>(&envelope.body).unwrap(), error);
    }
}

#[test]
fn every_envelope_kind_round_trips_with_ids_of_every_width() {
    for kind in Kind::ALL {
        for id in [
            0,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let envelope = Envelope {
                id,
                kind,
                method: "x".repeat((id % 300) as usize),
                body: Bytes::from(vec![0xa0; (id % 70_000) as usize]),
            };
            assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
        }
    }
}

fn assert_rejected(bytes: &[u8], why: &str) {
    let err = Envelope::decode(bytes).expect_err(why);
    assert!(
        matches!(err, osmesh_net::NetError::Malformed(_)),
        "{why}: {err}"
    );
}

#[test]
fn malformed_envelopes_are_errors() {
    assert_rejected(&[], "empty");
    assert_rejected(&[0xff, 0x00, 0x13], "non-CBOR garbage");
    assert_rejected(&[0x84, 0x00, 0x07, 0x60, 0x40], "unknown kind 7");
    assert_rejected(&[0x84, 0x00, 0x18, 0xff, 0x60, 0x40], "kind 255");
    assert_rejected(&[0x83, 0x00, 0x00, 0x60], "three items");
    assert_rejected(&[0x85, 0x00, 0x00, 0x60, 0x40, 0x00], "five items");
    assert_rejected(&[0x84, 0x00, 0x00, 0x60, 0x40, 0x00], "trailing byte");
    assert_rejected(&[0x84, 0x00, 0x00, 0x60, 0x60], "body as text, not bytes");
    assert_rejected(
        &[0x84, 0x00, 0x00, 0x60, 0x5a, 0xff, 0xff, 0xff, 0xff],
        "truncated body",
    );
    assert_rejected(&[0xa0], "a map, not an array");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let nested = vec![0x81u8; 100_000];
    assert_rejected(&nested, "nested arrays");
    let mut in_method = vec![0x84, 0x00, 0x00];
    in_method.extend_from_slice(&nested);
    assert_rejected(&in_method, "nested in method position");
    let indefinite = vec![0x9fu8; 100_000];
    assert_rejected(&indefinite, "nested indefinite arrays");
    assert!(decode_body::<OperatingSystemList>(&nested).is_err());
    let mut maps = vec![0xa1u8, 0x68];
    maps.extend_from_slice(b"osystems");
    maps.extend(std::iter::repeat_n(0x81u8, 100_000));
    let err = decode_body::<OperatingSystemList>(&maps).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
}

#[test]
fn unknown_fields_are_skipped_up_to_the_nesting_limit() {
    // {"osystems": [], "later": [[[...0...]]]}: a field a newer peer might send.
    let body = |depth: usize| {
        let mut body = vec![0xa2, 0x68];
        body.extend_from_slice(b"osystems");
        body.extend_from_slice(&[0x80, 0x65]);
        body.extend_from_slice(b"later");
        body.extend(std::iter::repeat_n(0x81u8, depth));
        body.push(0x00);
        body
    };
    assert_eq!(
        decode_body::<OperatingSystemList>(&body(40)).unwrap(),
        OperatingSystemList {
            osystems: vec![].into()
        }
    );
    let err = decode_body::<OperatingSystemList>(&body(80)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest);
    assert!(
        err.message.contains("nested deeper than 64"),
        "{}",
        err.message
    );
    let truncated = &body(3)[..20];
    let err = decode_body::<OperatingSystemList>(truncated).unwrap_err();
    assert!(err.message.contains("truncated"), "{}", err.message);
}

#[test]
fn body_decoding_rejects_trailing_bytes_as_bad_request() {
    let mut body = encode_body(&Ack {}).to_vec();
    body.push(0);
    assert_eq!(
        decode_body::<Ack>(&body).unwrap_err().kind,
        ErrorKind::BadRequest
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000)
    ))]

    /// Bodies of any content encode as ciborium encodes them and decode back, both ways.
    #[test]
    fn bodies_encode_as_ciborium_does(
        names in proptest::collection::vec(".{0,30}", 0..6),
        flags in proptest::collection::vec(any::<(bool, bool, bool)>(), 0..6),
        default in proptest::option::of(".{0,30}"),
        counts in proptest::collection::btree_map(".{0,12}", any::<u64>(), 0..5),
        reason in proptest::option::of(".{0,40}"),
    ) {
        let osystems = names.iter().map(|name| osmesh_core::OsystemInfo {
            name: name.clone(),
            title: name.repeat(3),
            releases: flags.iter().enumerate().map(|(i, (key, commission, eol))| osmesh_core::ReleaseInfo {
                name: format!("{name}{i}"),
                title: format!("{i} \"{name}\""),
                requires_license_key: *key,
                can_commission: *commission,
                end_of_life: *eol,
            }).collect(),
            default_release: default.clone(),
            default_commissioning_release: None,
        }).collect();
        let list = OperatingSystemList { osystems: std::sync::Arc::new(osystems) };
        let body = encode_body(&list);
        prop_assert_eq!(&body[..], &ciborium_bytes(&list)[..]);
        prop_assert_eq!(decode_body::<OperatingSystemList>(&body).unwrap(), list.clone());
        prop_assert_eq!(ciborium::from_reader::<OperatingSystemList, _>(&body[..]).unwrap(), list);
        let verdict = LicenseKeyVerdict { valid: reason.is_none(), reason };
        prop_assert_eq!(&encode_body(&verdict)[..], &ciborium_bytes(&verdict)[..]);
        prop_assert_eq!(&encode_body(&counts)[..], &ciborium_bytes(&counts)[..]);
        prop_assert_eq!(decode_body::<BTreeMap<String, u64>>(&encode_body(&counts)).unwrap(), counts);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_envelope_like_bytes(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = vec![0x84];
        bytes.extend(tail);
        let _ = Envelope::decode(&bytes);
        let _ = decode_body::<OperatingSystemList>(&bytes[1..]);
    }

    #[test]
    fn any_envelope_round_trips(id in any::<u64>(), k in 0usize..7, method in ".{0,40}", body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let envelope = Envelope { id, kind: Kind::ALL[k], method, body: Bytes::from(body) };
        prop_assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The worked examples of docs/PROTOCOL.md, byte for byte (length prefix included).
fn framed_hex(payload: &[u8]) -> String {
    let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    hex(&framed)
}

fn doc_examples() -> Vec<(&'static str, String)> {
    let call = encode_frame(
        1,
        Kind::Call,
        method::GET_OS_RELEASE_TITLE,
        &encode_body(&GetOsReleaseTitle {
            osystem: "ubuntu".into(),
            release: "jammy".into(),
        }),
    );
    let reply = encode_frame(
        1,
        Kind::Reply,
        "",
        &encode_body(&ReleaseTitle {
            title: "Ubuntu 22.04 LTS".into(),
        }),
    );
    let error = encode_frame(
        2,
        Kind::Error,
        "",
        &encode_body(&RpcError::new(ErrorKind::NoSuchRelease, "no release warty")),
    );
    let ping = encode_frame(1, Kind::Ping, "", &[]);
    let pong = encode_frame(1, Kind::Pong, "", &[]);
    let dialer = Hello {
        identity: "cluster-1".into(),
        min_version: 2,
        max_version: 2,
        nonce: ByteString(vec![0x11; 32]),
    };
    let acceptor = Hello {
        identity: "region".into(),
        min_version: 2,
        max_version: 2,
        nonce: ByteString(vec![0x22; 32]),
    };
    let t = Transcript {
        dialer: &dialer,
        acceptor: &acceptor,
        channel_binding: &[],
    };
    let secret = Secret::new(*b"example-secret");
    let proof = |role| Proof {
        mac: ByteString(proof_mac(&secret, role, &t).to_vec()),
    };
    let hs = |s: &str, body: Bytes| encode_frame(0, Kind::Handshake, s, &body);
    vec![
        ("call", framed_hex(&call)),
        ("reply", framed_hex(&reply)),
        ("error", framed_hex(&error)),
        ("ping", framed_hex(&ping)),
        ("pong", framed_hex(&pong)),
        (
            "dialer hello",
            framed_hex(&hs(step::HELLO, encode_body(&dialer))),
        ),
        (
            "acceptor hello",
            framed_hex(&hs(step::HELLO, encode_body(&acceptor))),
        ),
        ("dialer mac", hex(&proof_mac(&secret, Role::Dialer, &t))),
        (
            "dialer proof",
            framed_hex(&hs(step::PROOF, encode_body(&proof(Role::Dialer)))),
        ),
        ("acceptor mac", hex(&proof_mac(&secret, Role::Acceptor, &t))),
        (
            "acceptor proof",
            framed_hex(&hs(step::PROOF, encode_body(&proof(Role::Acceptor)))),
        ),
        (
            "done",
            framed_hex(&hs(
                step::DONE,
                encode_body(&osmesh_net::handshake::Done {}),
            )),
        ),
    ]
}

#[test]
fn protocol_document_shows_the_bytes_the_encoder_produces() {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let missing: Vec<String> = doc_examples()
        .into_iter()
        .filter(|(_, hex)| !doc.contains(hex.as_str()))
        .map(|(name, hex)| format!("{name}: {hex}"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md lacks:\n{}",
        missing.join("\n")
    );
}

/// `Registered` as regions before issue 15 sent and read it.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RegisteredV0 {
    region: String,
}

#[test]
fn registered_with_regions_is_readable_by_old_and_new_peers() {
    // An older region's reply: the new fields are simply absent.
    let old = decode_body::<Registered>(&encode_body(&RegisteredV0 {
        region: "r1".into(),
    }))
    .unwrap();
    assert_eq!(old, Registered::named("r1"));
    // A newer region's reply read by an older cluster: the new fields are ignored.
    let new = Registered {
        region: "r1".into(),
        region_id: Some("id1".into()),
        regions: Some(vec![RegionEndpoint {
            id: "id1".into(),
            name: "r1".into(),
            rpc: vec!["127.0.0.1:5250".into()],
        }]),
    };
    let read_by_old = decode_body::<RegisteredV0>(&encode_body(&new)).unwrap();
    assert_eq!(read_by_old.region, "r1");
    // A region that knows no peers sends exactly what an older one did.
    assert_eq!(
        encode_body(&Registered::named("r1")),
        encode_body(&RegisteredV0 {
            region: "r1".into()
        })
    );
}
