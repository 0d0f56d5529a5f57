//! RPC metrics through the `metrics` facade: no-ops unless the process installed a recorder
//! (the daemons do; the simulator does not). Names and help texts are listed in
//! `osmesh_telemetry::metrics::name`. Labels are bounded: a method label is one of the
//! catalogue's names or `other` (a peer may send any string), error kinds are an enum.

use std::time::Duration;

use crate::handshake::HandshakeError;
use crate::messages::{method, ErrorKind, RpcError};

/// The method label: the catalogue's name, or `other` for anything a peer made up.
pub fn method_label(name: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        method::LIST_OPERATING_SYSTEMS,
        method::GET_OS_RELEASE_TITLE,
        method::VALIDATE_LICENSE_KEY,
        method::LIST_BOOT_IMAGES,
        method::GET_PRESEED_DATA,
        method::REGISTER,
        method::REPORT_BOOT_IMAGES,
        method::REPORT_PRESEED_TEMPLATES,
    ];
    KNOWN.into_iter().find(|m| *m == name).unwrap_or("other")
}

/// The error-kind label.
pub fn error_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NoSuchOperatingSystem => "no_such_operating_system",
        ErrorKind::NoSuchRelease => "no_such_release",
        ErrorKind::UnknownMethod => "unknown_method",
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Internal => "internal",
    }
}

/// The reason label of a failed handshake.
pub fn handshake_label(err: &HandshakeError) -> &'static str {
    match err {
        HandshakeError::NoCommonVersion { .. } => "no_common_version",
        HandshakeError::BadCredentials { .. } => "bad_credentials",
        HandshakeError::NotAuthorised(_) => "not_authorised",
        HandshakeError::Enrolled { .. } => "enrolled",
        HandshakeError::Refused(_) => "refused",
        HandshakeError::Timeout(_) => "timeout",
        HandshakeError::Protocol(_) => "protocol",
        HandshakeError::Net(_) => "transport",
    }
}

/// Records one call this process made: `osmesh_rpc_client_*`.
pub fn call_done<T>(method: &str, result: &Result<T, RpcError>, elapsed: Duration) {
    let method = method_label(method);
    metrics::counter!("osmesh_rpc_client_calls_total", "method" => method).increment(1);
    metrics::histogram!("osmesh_rpc_client_duration_seconds", "method" => method)
        .record(elapsed.as_secs_f64());
    if let Err(e) = result {
        metrics::counter!("osmesh_rpc_client_errors_total", "method" => method, "kind" => error_label(e.kind))
            .increment(1);
    }
}

/// Answers one call through `answer`, recording it: `osmesh_rpc_server_*`.
pub fn served<T>(
    method: &str,
    answer: impl FnOnce() -> Result<T, RpcError>,
) -> Result<T, RpcError> {
    let started = tokio::time::Instant::now();
    let result = answer();
    record_served(method, started, &result);
    result
}

/// Records one answered call that started at `started` (`osmesh_rpc_server_*`), for answers
/// that finish later than the call arrived (after a store call, say).
pub fn record_served<T>(method: &str, started: tokio::time::Instant, result: &Result<T, RpcError>) {
    let method = method_label(method);
    metrics::counter!("osmesh_rpc_server_calls_total", "method" => method).increment(1);
    metrics::histogram!("osmesh_rpc_server_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        metrics::counter!("osmesh_rpc_server_errors_total", "method" => method, "kind" => error_label(e.kind))
            .increment(1);
    }
}

/// Records a failed handshake: `osmesh_handshake_failures_total{reason}`.
pub fn handshake_failed(err: &HandshakeError) {
    handshake_refused(handshake_label(err));
}

/// Records a connection refused before or during the handshake, by a fixed reason word.
pub fn handshake_refused(reason: &'static str) {
    metrics::counter!("osmesh_handshake_failures_total", "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_label_is_a_catalogue_name_or_other() {
        assert_eq!(method_label("Register"), "Register");
        assert_eq!(method_label("Register\0with junk"), "other");
        assert_eq!(method_label(&"x".repeat(10_000)), "other");
    }
}
