//! The handshake: who may talk, in which version, and what a refused peer is told.

mod common;

use common::{config, raw_pair, Transport};
use futures::{SinkExt, StreamExt};
use osmesh_net::envelope::{encode_frame, Kind};
use osmesh_net::handshake::{step, Refuse};
use osmesh_net::{
    accept_handshake, decode_body, dial_handshake, Envelope, HandshakeConfig, HandshakeError,
    Secret,
};
use std::time::Duration;

async fn handshake(
    transport: Transport,
    dialer: HandshakeConfig,
    acceptor: HandshakeConfig,
) -> (
    Result<osmesh_net::Authenticated, HandshakeError>,
    Result<osmesh_net::Authenticated, HandshakeError>,
) {
    let (d, a) = raw_pair(transport).await;
    tokio::join!(
        dial_handshake(d, &dialer, [1; 32]),
        accept_handshake(a, &acceptor, [2; 32])
    )
}

async fn right_secret_authenticates_both_sides(transport: Transport) {
    let (d, a) = handshake(transport, config("cluster-1"), config("region")).await;
    let (d, a) = (d.unwrap(), a.unwrap());
    assert_eq!((d.peer_identity.as_str(), d.version), ("region", 2));
    assert_eq!((a.peer_identity.as_str(), a.version), ("cluster-1", 2));
}

#[tokio::test]
async fn right_secret_authenticates_both_sides_over_tcp() {
    right_secret_authenticates_both_sides(Transport::Tcp).await;
}

#[tokio::test(start_paused = true)]
async fn right_secret_authenticates_both_sides_in_memory() {
    right_secret_authenticates_both_sides(Transport::Mem).await;
}

async fn wrong_secret_refuses_the_dialer(transport: Transport) {
    let mut intruder = config("cluster-x");
    intruder.secret = Some(Secret::new(*b"guessed"));
    let (d, a) = handshake(transport, intruder, config("region")).await;
    match d.unwrap_err() {
        HandshakeError::Refused(reason) => {
            assert!(reason.contains("wrong secret"), "{reason}");
            assert!(
                !reason.contains("correct horse"),
                "the secret leaked: {reason}"
            );
        }
        other => panic!("dialer should be refused, got {other}"),
    }
    match a.unwrap_err() {
        HandshakeError::BadCredentials { peer } => assert_eq!(peer, "cluster-x"),
        other => panic!("acceptor should report bad credentials, got {other}"),
    }
}

#[tokio::test]
async fn wrong_secret_refuses_the_dialer_over_tcp() {
    wrong_secret_refuses_the_dialer(Transport::Tcp).await;
}

#[tokio::test(start_paused = true)]
async fn wrong_secret_refuses_the_dialer_in_memory() {
    wrong_secret_refuses_the_dialer(Transport::Mem).await;
}

#[tokio::test(start_paused = true)]
async fn no_common_version_fails_on_both_sides_with_a_clear_message() {
    let mut newer = config("cluster-new");
    newer.versions = 3..=4;
    let (d, a) = handshake(Transport::Mem, newer, config("region")).await;
    let message = a.unwrap_err().to_string();
    assert_eq!(
        message,
        "no common protocol version: ours 2..=2, theirs 3..=4"
    );
    // The acceptor refuses instead of sending its hello: the dialer reads why.
    match d {
        Err(HandshakeError::Refused(reason)) => assert_eq!(reason, message),
        other => panic!("expected the acceptor's refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn highest_common_version_is_chosen() {
    let mut dialer = config("cluster-1");
    dialer.versions = 1..=3;
    let mut acceptor = config("region");
    acceptor.versions = 2..=5;
    let (d, a) = handshake(Transport::Mem, dialer, acceptor).await;
    assert_eq!((d.unwrap().version, a.unwrap().version), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_call_before_authentication_is_refused_with_a_reason() {
    let (mut raw, a) = raw_pair(Transport::Mem).await;
    raw.sink
        .send(encode_frame(1, Kind::Call, "ListOperatingSystems", &[0xa0]))
        .await
        .unwrap();
    let err = accept_handshake(a, &config("region"), [2; 32])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HandshakeError::Protocol(r) if r.contains("before authentication")),
        "{err}"
    );
    let refusal = Envelope::decode(&raw.stream.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (refusal.kind, refusal.method.as_str()),
        (Kind::Handshake, step::REFUSE)
    );
    let reason: Refuse = decode_body(&refusal.body).unwrap();
    assert!(reason
        .reason
        .contains("Call \"ListOperatingSystems\" before authentication"));
    assert!(
        raw.stream.next().await.is_none(),
        "connection should be dropped"
    );
}

/// The acceptor gives a silent peer exactly its deadline. (That the region's handshake slots
/// fill and are freed is `actors/tests/handshake_slots.rs`.)
#[tokio::test(start_paused = true)]
async fn a_silent_peer_times_out_at_its_deadline() {
    let (_silent, a) = raw_pair(Transport::Mem).await;
    let mut cfg = config("region");
    cfg.timeout = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let err = accept_handshake(a, &cfg, [2; 32]).await.unwrap_err();
    assert!(matches!(err, HandshakeError::Timeout(_)), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_hangs_up_is_a_transport_error() {
    let (raw, a) = raw_pair(Transport::Mem).await;
    drop(raw);
    let err = accept_handshake(a, &config("region"), [2; 32])
        .await
        .unwrap_err();
    assert!(matches!(err, HandshakeError::Net(_)), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let cfg = config("region");
    assert_eq!(format!("{:?}", cfg.secret), "Some(Secret(***))");
    assert!(!format!("{cfg:?}").contains("horse"));
}
