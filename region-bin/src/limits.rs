//! Every bound of regiond's HTTP side and process, in one place: each says why that value and
//! what breaks if it changes. (The RPC side's are in `osmesh_net::limits`; template renders'
//! in `osmesh_actors::region::{template, render}`; stored fields' in `osmesh_core::fields`.)
//! The operator-facing ones are listed in docs/OPERATIONS.md.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// HTTP connections open at once per HTTP worker (regiond runs `HTTP_WORKERS`), so 1,024 in
/// all. Past it a worker stops accepting and new connections wait in the kernel's backlog; the
/// connections already open (a poller's keep-alive) keep being served. Together with the RPC
/// side's bounds (`MAX_PENDING_HANDSHAKES` + one link per cluster) this is regiond's whole
/// file-descriptor budget, far under the raised `RLIMIT_NOFILE`, so HTTP cannot starve the RPC
/// accept loop of descriptors or the other way round (before: 20,000 slow HTTP clients took
/// every descriptor and a restarting cluster could not get in for 35 s).
pub const HTTP_MAX_CONNECTIONS_PER_WORKER: usize = 512;

/// HTTP connections open at once from one source address. An operator's client, the CLI or
/// a dashboard holds a few; 64 leaves room for a NAT in front of several. A connection over it
/// is answered with a JSON 503 at its first request and closed, so one address cannot hold
/// the whole `HTTP_MAX_CONNECTIONS_PER_WORKER` budget for the length of the request deadline.
pub const HTTP_MAX_CONNECTIONS_PER_SOURCE: usize = 64;

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

/// Open HTTP connections by source address (`HTTP_MAX_CONNECTIONS_PER_SOURCE`), counted
/// from actix's `on_connect` hook; each connection carries a `SourceSlot` that gives its
/// place back when the connection ends.
#[derive(Default)]
pub struct ConnectionsBySource {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its source's count; `over` when the source had no room.
pub struct SourceSlot {
    budget: Arc<ConnectionsBySource>,
    source: IpAddr,
    over: bool,
}

impl ConnectionsBySource {
    /// Counts a new connection from `source`.
    pub fn open(self: &Arc<Self>, source: IpAddr) -> SourceSlot {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(source).or_default();
        *count += 1;
        SourceSlot {
            budget: self.clone(),
            source,
            over: *count > HTTP_MAX_CONNECTIONS_PER_SOURCE,
        }
    }

    /// The `on_connect` hook: counts the TCP connection and leaves its slot in the
    /// connection's data, where `bound_request` finds it.
    pub fn on_connect(
        self: &Arc<Self>,
        io: &dyn std::any::Any,
        data: &mut actix_web::dev::Extensions,
    ) {
        let peer = io
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|s| s.peer_addr().ok());
        if let Some(peer) = peer {
            data.insert(self.open(peer.ip()));
        }
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.budget.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// Preseed writes (edits, resolutions) one client may make in a burst. Every write is a new
/// immutable version of up to 256 KiB kept forever, so writes are what grow the database
/// (before: 50 edits of 1 MB added 50 MB in 0.7 s). An operator's edits come a few a minute.
pub const PRESEED_WRITE_BURST: u32 = 20;

/// After the burst, one preseed write per this interval per client (30 a minute): at most
/// 7.5 MiB of versions a minute from one client.
pub const PRESEED_WRITE_INTERVAL: Duration = Duration::from_secs(2);

/// Clients whose write budgets are remembered; past it the budgets that are full again are
/// forgotten (they would be recreated full), so the map cannot grow without bound.
pub const MAX_TRACKED_WRITERS: usize = 10_000;

/// A token bucket per client for preseed writes. The key is the client address today; once
/// requests carry an authenticated token, `writer_key` returns the token's id instead.
pub struct WriteLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for WriteLimiter {
    fn default() -> Self {
        WriteLimiter {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl WriteLimiter {
    /// Takes one write from `key`'s budget; `Err(wait)` when it is empty.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(PRESEED_WRITE_BURST);
        let per_token = PRESEED_WRITE_INTERVAL.as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_WRITERS && !buckets.contains_key(key) {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() / per_token < burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() / per_token;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) * per_token))
        }
    }
}

/// Whose write budget a request spends: its client address (see `WriteLimiter`).
fn writer_key(req: &ServiceRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

/// Whether a request writes a preseed version (`PUT /preseeds/{name}`, `POST …/resolve`).
fn writes_preseed(req: &ServiceRequest) -> bool {
    req.method() != actix_web::http::Method::GET && req.path().starts_with("/api/v1/preseeds/")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_over_a_sources_budget_are_marked_and_give_their_place_back() {
        let budget = Arc::new(ConnectionsBySource::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let slots: Vec<_> = (0..HTTP_MAX_CONNECTIONS_PER_SOURCE)
            .map(|_| budget.open(a))
            .collect();
        assert!(slots.iter().all(|s| !s.over));
        assert!(budget.open(a).over, "one over the budget");
        assert!(!budget.open(b).over, "another source has its own");
        drop(slots);
        assert!(
            !budget.open(a).over,
            "closed connections gave their places back"
        );
    }

    #[test]
    fn a_writer_gets_its_burst_then_one_per_interval() {
        let limiter = WriteLimiter::default();
        let t0 = Instant::now();
        for _ in 0..PRESEED_WRITE_BURST {
            assert_eq!(limiter.take("a", t0), Ok(()));
        }
        assert!(limiter.take("a", t0).is_err());
        assert_eq!(
            limiter.take("b", t0),
            Ok(()),
            "another client has its own budget"
        );
        assert_eq!(limiter.take("a", t0 + PRESEED_WRITE_INTERVAL), Ok(()));
        assert!(limiter.take("a", t0 + PRESEED_WRITE_INTERVAL).is_err());
    }
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

/// Middleware: a JSON 503 (connection closed) on a connection over its source's budget, a
/// JSON 414 for an over-long target, a JSON 429 for a preseed write over the
/// client's budget (`WriteLimiter`, when the app has one), and the whole-request deadline
/// with a JSON 408 (and the connection closed) past it. Live reads may ask for up to a minute, so a
/// request with `live=true` gets the live read's own bound plus `REQUEST_DEADLINE`.
pub async fn bound_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    if req.conn_data::<SourceSlot>().is_some_and(|slot| slot.over) {
        let message = format!(
            "more than {HTTP_MAX_CONNECTIONS_PER_SOURCE} connections from this address are open"
        );
        let response = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            &message,
        );
        return Ok(req.into_response(response).map_into_right_body());
    }
    let target_len = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    if target_len > MAX_URI_LEN {
        let message =
            format!("the request target is {target_len} bytes; at most {MAX_URI_LEN} allowed");
        let response = refusal(StatusCode::URI_TOO_LONG, "uri_too_long", &message);
        return Ok(req.into_response(response).map_into_right_body());
    }
    if writes_preseed(&req) {
        if let Some(limiter) = req.app_data::<web::Data<WriteLimiter>>() {
            if let Err(wait) = limiter.take(&writer_key(&req), Instant::now()) {
                let message = format!(
                    "at most {PRESEED_WRITE_BURST} preseed writes at once, then one every {} s; retry in {} s",
                    PRESEED_WRITE_INTERVAL.as_secs(),
                    wait.as_secs().max(1)
                );
                let response = HttpResponse::TooManyRequests()
                    .insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()))
                    .json(Refusal {
                        code: "too_many_writes",
                        message: &message,
                    });
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
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
