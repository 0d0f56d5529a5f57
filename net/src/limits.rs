//! Every bound of the RPC layer, in one place: each says why that value and what breaks if it
//! changes. A slow or hostile peer meets one of these walls, never the allocator.
//!
//! Also here: the adjustable read limit a connection carries through its handshake
//! (`ReadLimit`), the counters of refusals (`AbuseCounters`), and a rate-limited warning
//! (`RateLimitedWarn`) so a flood of refusals costs one log line a second, not one per refusal.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Largest frame accepted or sent once a connection is authenticated (4 MiB). A cluster's
/// boot-image report of ~10,000 images is about 2 MiB of CBOR; raising it raises what one
/// peer can make the region buffer per frame, lowering it refuses large honest reports.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// Largest frame accepted before the handshake completes (4 KiB). A `hello` is an identity
/// (at most `MAX_IDENTITY_LEN` bytes), two versions and a 32-byte nonce; a `proof` is a
/// 32-byte MAC; both fit in a few hundred bytes. Anything bigger from an unauthenticated peer
/// is hostile: without this bound 300 strangers announcing 4 MiB frames held 1.2 GB.
pub const MAX_FRAME_BEFORE_AUTH: usize = 4 * 1024;

/// Longest identity a peer may announce in its `hello` (bytes): `fields::CLUSTER_ID`'s bound
/// (64, lowercase `[a-z0-9._-]`), checked before the identity is logged, stored or echoed.
pub const MAX_IDENTITY_LEN: usize = osmesh_core::fields::CLUSTER_ID.max_len;

/// Longest enrollment secret accepted in an `enroll` step (bytes). The region's tokens carry
/// 64 hex digits; 512 leaves room for another format without letting an unauthenticated
/// peer make the region hash kilobytes per attempt.
pub const MAX_TOKEN_LEN: usize = 512;

/// Longest CSR accepted in an `enroll` step (DER bytes). An ECDSA P-256 CSR is about 250
/// bytes, an RSA-4096 one about 1,200; it must also fit `MAX_FRAME_BEFORE_AUTH` with the
/// token and the envelope.
pub const MAX_CSR_LEN: usize = 2048;

/// Handshakes under way at once, from everyone. Each costs a socket, a task and at most
/// `MAX_FRAME_BEFORE_AUTH` of buffer, so 1,024 cost a few MiB; beyond it a new connection is
/// closed at once. Lowering it lets fewer clusters reconnect at once after a region restart.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// Handshakes under way at once from one source address. One cluster holds at most one; a
/// site with many clusters behind one NAT address reconnecting together after a region restart
/// needs more, hence 32. What it buys: one hostile address cannot hold the global slots, so a
/// cluster elsewhere still gets in (before: 1,100 silent connections from one client kept a
/// restarted cluster out for 17 s).
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 32;

/// Authenticated links a region keeps at once (one per cluster). The 10,000-cluster fan-out
/// (issue 17) is the largest deployment measured; 12,288 leaves room while keeping the RPC side's whole
/// descriptor budget (this + `MAX_PENDING_HANDSHAKES`) far under a raised `RLIMIT_NOFILE`,
/// so a holder of the secret inventing identities cannot take the HTTP side's descriptors.
/// A new cluster past it is disconnected at once (an existing cluster's reconnect replaces
/// its own link and always gets in).
pub const MAX_LINKS: usize = 12_288;

/// Frames queued for writing on one link. A healthy peer reads as fast as we write; a queue
/// this deep means it stopped reading, and the link is closed instead of growing (before:
/// a peer flooding pings without reading grew the region by 1.7 GB in 10 s).
pub const MAX_OUTBOUND_FRAMES: usize = 4096;

/// Bytes queued for writing on one link (64 MiB): sixteen maximum frames. Past it the peer is
/// not reading and the link is closed. Lowering it cuts off peers that read slowly but
/// honestly during a burst of large replies.
pub const MAX_OUTBOUND_BYTES: usize = 64 * 1024 * 1024;

/// Calls and notifies from one peer delivered and not yet answered (or dropped). When the
/// bound is reached the driver stops reading the socket, so TCP pushes back on the peer
/// instead of the region buffering its calls (before: an unbounded channel and mailbox). The
/// region answers a call in microseconds, so 64 only bites on a flood; the worst case held in
/// memory per link is 64 × `MAX_FRAME`.
pub const MAX_INBOUND_IN_FLIGHT: usize = 64;

/// A frame at least this large (64 KiB) makes the peer's driver yield to other tasks after
/// handling it. Without it one peer streaming 1 MiB calls kept the region's event loop for
/// ~100 ms at a time (tokio lets a task run 128 operations before it must yield), and the
/// cached read waited; small frames, the common case, are not affected.
pub const YIELD_AFTER_FRAME_BYTES: usize = 64 * 1024;

/// Pings one peer may send per heartbeat interval. A genuine peer sends one; the simulator's
/// network may duplicate a few. A peer sending more is flooding, and the link is closed at
/// once rather than after the pongs have filled the socket buffers and `MAX_OUTBOUND_FRAMES`
/// (which took ~0.5 s of the region's event loop on a loaded machine).
pub const MAX_PINGS_PER_HEARTBEAT: u32 = 16;

/// Templates one `ReportPreseedTemplates` may carry. A cluster ships a few dozen; the bound
/// keeps one report's transaction short (before: pipelined reports of 110,000 templates grew
/// the database to 470 MB). A report over it is refused whole, nothing stored.
pub const MAX_TEMPLATES_PER_REPORT: usize = 1000;

/// Distinct template names one cluster may be the origin of, over all its reports. The
/// per-report bound alone lets a cluster add 1,000 new names a report forever.
pub const MAX_TEMPLATE_NAMES_PER_CLUSTER: usize = 2000;

/// Boot images one `ReportBootImages` may carry. A large mirror holds a few thousand
/// (release × arch × subarch × kernel flavour); the report is held in memory and merged into
/// every cached read, so its size is every reader's cost.
pub const MAX_IMAGES_PER_REPORT: usize = 10_000;

/// Operating systems one `ReportBootImages` may carry (their releases counted within).
pub const MAX_OSYSTEMS_PER_REPORT: usize = 256;

/// Minimum time between two warnings of the same kind of refusal; the ones in between are
/// counted and the next warning says how many (before: 577,584 lines for one attack).
pub const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// How many bytes a connection's reader may take as one frame now: small before the
/// handshake completes, the full limit after. The transport's decoder reads it before every
/// frame; the acceptor's handshake raises it once the peer has proved the secret.
#[derive(Clone, Debug)]
pub struct ReadLimit {
    current: Arc<AtomicUsize>,
    after_auth: usize,
}

impl ReadLimit {
    /// A limit of `before_auth` bytes per frame until [`ReadLimit::authenticated`], then
    /// `after_auth`.
    pub fn staged(before_auth: usize, after_auth: usize) -> Self {
        ReadLimit {
            current: Arc::new(AtomicUsize::new(before_auth.min(after_auth))),
            after_auth,
        }
    }

    /// The same limit before and after the handshake (in-memory and simulated links, whose
    /// frames are whole messages already in memory).
    pub fn fixed(max: usize) -> Self {
        Self::staged(max, max)
    }

    /// The limit for the next frame.
    pub fn get(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The peer proved the secret: from now on frames up to the full limit are read.
    pub fn authenticated(&self) {
        self.current.store(self.after_auth, Ordering::Relaxed);
    }
}

/// Refusals counted since start, by kind; cheap to clone and to bump from any task.
#[derive(Clone, Debug, Default)]
pub struct AbuseCounters(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    handshakes_refused_global: AtomicU64,
    handshakes_refused_per_source: AtomicU64,
    handshakes_failed: AtomicU64,
    links_closed_not_reading: AtomicU64,
    registers_refused_duplicate: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AbuseCounts {
    /// Connections closed at once: every handshake slot was taken.
    pub handshakes_refused_global: u64,
    /// Connections closed at once: their source address held all its handshake slots.
    pub handshakes_refused_per_source: u64,
    /// Handshakes that ended without authentication (timeout, bad frame, wrong secret).
    pub handshakes_failed: u64,
    /// Authenticated links closed because the peer stopped reading.
    pub links_closed_not_reading: u64,
    /// `Register`s refused: another live link holds the identity already.
    pub registers_refused_duplicate: u64,
}

impl AbuseCounters {
    pub fn handshake_refused_global(&self) {
        self.0
            .handshakes_refused_global
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_refused_per_source(&self) {
        self.0
            .handshakes_refused_per_source
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.0.handshakes_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn link_closed_not_reading(&self) {
        self.0
            .links_closed_not_reading
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn register_refused_duplicate(&self) {
        self.0
            .registers_refused_duplicate
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> AbuseCounts {
        let c = &self.0;
        AbuseCounts {
            handshakes_refused_global: c.handshakes_refused_global.load(Ordering::Relaxed),
            handshakes_refused_per_source: c.handshakes_refused_per_source.load(Ordering::Relaxed),
            handshakes_failed: c.handshakes_failed.load(Ordering::Relaxed),
            links_closed_not_reading: c.links_closed_not_reading.load(Ordering::Relaxed),
            registers_refused_duplicate: c.registers_refused_duplicate.load(Ordering::Relaxed),
        }
    }
}

/// A warning logged at most once per `WARN_INTERVAL` (tokio time, so virtual under the
/// simulator); the next one logged says how many were suppressed in between.
#[derive(Debug, Default)]
pub struct RateLimitedWarn {
    state: Mutex<WarnState>,
}

#[derive(Debug, Default)]
struct WarnState {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarn {
    /// Logs `message` (with `source`) unless one was logged less than `WARN_INTERVAL` ago.
    pub fn warn(&self, source: &str, message: &str) {
        let now = Instant::now();
        let suppressed = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.last.is_some_and(|last| now < last + WARN_INTERVAL) {
                state.suppressed += 1;
                return;
            }
            state.last = Some(now);
            std::mem::take(&mut state.suppressed)
        };
        tracing::warn!(peer = %source, suppressed, "{message}");
    }
}

/// The source address of a transport's `peer_addr` (`ip:port` → `ip`), the key of the
/// per-source handshake slots. Anything not an `ip:port` is its own source.
pub fn source_of(peer_addr: &str) -> String {
    match peer_addr.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr.ip().to_string(),
        Err(_) => peer_addr.to_owned(),
    }
}

/// The most regions a cluster accepts in one region list (`Registered.regions`,
/// `RegionList`): it keeps a link to each, so a bad list must not make it dial thousands.
/// Real meshes run a handful of regions.
pub const MAX_REGIONS: usize = 64;

/// The most RPC addresses one region may advertise (one per network it listens on).
pub const MAX_ENDPOINTS_PER_REGION: usize = 8;

/// The longest region id, name or RPC address in a region list, in bytes (a DNS name is at
/// most 253 bytes; a port adds 6).
pub const MAX_REGION_FIELD_LEN: usize = 260;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_limit_rises_once_authenticated() {
        let limit = ReadLimit::staged(MAX_FRAME_BEFORE_AUTH, MAX_FRAME);
        assert_eq!(limit.get(), MAX_FRAME_BEFORE_AUTH);
        limit.clone().authenticated();
        assert_eq!(limit.get(), MAX_FRAME);
    }

    #[test]
    fn source_drops_the_port() {
        assert_eq!(source_of("127.0.0.2:4711"), "127.0.0.2");
        assert_eq!(source_of("[::1]:80"), "::1");
        assert_eq!(source_of("sim:cluster-a"), "sim:cluster-a");
    }
}
