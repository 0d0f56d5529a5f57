//! Every bound of regiond's HTTP side and process, in one place: each says why that value and
//! what breaks if it changes. (The RPC side's are in `osmesh_net::limits`; template renders'
//! in `osmesh_actors::region::{template, render}`; stored fields' in `osmesh_core::fields`.)
//! The operator-facing ones are listed in docs/OPERATIONS.md.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use std::time::Duration;

/// HTTP connections open at once per HTTP worker (regiond runs `HTTP_WORKERS`), so 1,024 in
/// all. Past it a worker stops accepting and new connections wait in the kernel's backlog; the
/// connections already open (a poller's keep-alive) keep being served. Together with the RPC
/// side's bounds (`MAX_PENDING_HANDSHAKES` + one link per cluster) this is regiond's whole
/// file-descriptor budget, far under the raised `RLIMIT_NOFILE`, so HTTP cannot starve the RPC
/// accept loop of descriptors or the other way round (before: 20,000 slow HTTP clients took
/// every descriptor and a restarting cluster could not get in for 35 s).
pub const HTTP_MAX_CONNECTIONS_PER_WORKER: usize = 512;

/// HTTP worker threads. Handlers are short (template renders run on their own pool), so two
/// keep the API answering on a two-core machine.
pub const HTTP_WORKERS: usize = 2;

/// How long a client has to send a request's head (actix's client request timeout; 408 after).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole-request deadline (10 s), which is also the body read timeout: reading the body,
/// the handler and its response. A client that sends its headers and one body byte, then
/// nothing, gets a JSON 408 and its connection closed when it passes (before: none closed
/// after 50 s). Every handler but a live read answers in well under a second; a live read
/// may ask for up to `MAX_LIVE_TIMEOUT`, so it gets that on top.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Longest request target (path and query) answered (8 KiB). Every route's path and query fit
/// in a few hundred bytes; longer ones get a JSON 414. Targets over actix's own 128 KiB head
/// buffer are refused by actix before any handler runs, with an empty 400 or 431.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so the connection budgets above, not
/// the default soft limit of 1,024, decide when regiond refuses connections. Returns the
/// (soft, hard) figures now in force.
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

#[derive(serde::Serialize)]
struct Refusal<'a> {
    code: &'a str,
    message: &'a str,
}

/// A JSON refusal that also closes the connection (the client misbehaved or is too slow).
fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONNECTION, "close"))
        .json(Refusal { code, message })
}

/// Middleware: a JSON 414 for an over-long target, and the whole-request deadline with a JSON
/// 408 (and the connection closed) past it. Live reads may ask for up to a minute, so a
/// request with `live=true` gets the live read's own bound plus `REQUEST_DEADLINE`.
pub async fn bound_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let target_len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    if target_len > MAX_URI_LEN {
        let message =
            format!("the request target is {target_len} bytes; at most {MAX_URI_LEN} allowed");
        let response = refusal(StatusCode::URI_TOO_LONG, "uri_too_long", &message);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let deadline = if req.query_string().contains("live=true") {
        REQUEST_DEADLINE + osmesh_actors::region::service::MAX_LIVE_TIMEOUT
    } else {
        REQUEST_DEADLINE
    };
    // The request moves into the handler; past the deadline the refusal goes back as an
    // error whose response actix writes (holding a clone of the request would break it).
    match tokio::time::timeout(deadline, next.call(req)).await {
        Ok(response) => response.map(ServiceResponse::map_into_left_body),
        Err(_) => {
            let message = format!(
                "the request was not read and answered within {} s",
                deadline.as_secs()
            );
            let response = refusal(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message);
            Err(actix_web::error::InternalError::from_response(message, response).into())
        }
    }
}

/// The JSON body for a body over the size limit: 413, not 400.
pub fn body_too_large(limit: usize) -> HttpResponse {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        &format!("the request body is over the limit of {limit} bytes"),
    )
}
