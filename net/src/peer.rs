//! The RPC peer: many calls in flight over one authenticated connection, matched by id.
//!
//! `spawn_peer` starts one driver task per connection. The driver runs three loops in that
//! one task: *reading* (frames in: replies complete calls, calls and notifies go to
//! `IncomingCalls`, pings are answered, silence past the heartbeat timeout ends it),
//! *writing* (frames out, draining the queue before each flush), and *pinging*. The first
//! loop to end ends the connection; then every call in flight fails with `Unavailable`.
//! Both directions are bounded: frames queued for writing (a peer that stops reading is cut
//! off and counted), and calls delivered but not yet answered (at the bound the driver stops
//! reading the socket, so TCP pushes back on the peer). See `limits`.
//! Time is tokio time (virtual under a paused runtime); `select!`s are `biased`; pending calls
//! sit in a `BTreeMap`, so the order in which waiters wake is deterministic.

use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::envelope::{decode_body, encode_body, encode_frame, Envelope, Kind};
use crate::handshake::Authenticated;
use crate::limits::{
    AbuseCounters, MAX_INBOUND_IN_FLIGHT, MAX_OUTBOUND_BYTES, MAX_OUTBOUND_FRAMES,
    MAX_PINGS_PER_HEARTBEAT, YIELD_AFTER_FRAME_BYTES,
};
use crate::memo::Memos;
use crate::messages::{ErrorKind, Request};
use crate::tcp::DEFAULT_MAX_FRAME;
use crate::{FrameSink, FrameStream, RpcError};

/// How often each side pings.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long without any frame before the peer is declared dead: three missed pings.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(15);
/// Calls one handle set may have in flight; beyond it a call fails at once (`Unavailable`)
/// instead of queueing without bound.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;
/// Frames written between two flushes at most, so one flush never waits on an endless queue.
const MAX_WRITE_BATCH: usize = 256;

/// Tuning of one peer connection.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub max_in_flight: usize,
    /// Largest frame we send; must not exceed what the transport enforces.
    pub max_frame: usize,
    /// Calls and notifies from the peer delivered and not yet answered; at the bound the
    /// driver stops reading (`limits::MAX_INBOUND_IN_FLIGHT`).
    pub max_inbound_in_flight: usize,
    /// Frames and bytes queued for writing; past either the peer is not reading and the
    /// connection is closed (`limits::MAX_OUTBOUND_FRAMES`, `limits::MAX_OUTBOUND_BYTES`).
    pub max_outbound_frames: usize,
    pub max_outbound_bytes: usize,
    /// Where closed-for-not-reading links are counted.
    pub counters: AbuseCounters,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_frame: DEFAULT_MAX_FRAME,
            max_inbound_in_flight: MAX_INBOUND_IN_FLIGHT,
            max_outbound_frames: MAX_OUTBOUND_FRAMES,
            max_outbound_bytes: MAX_OUTBOUND_BYTES,
            counters: AbuseCounters::default(),
        }
    }
}

/// Starts the driver task of an authenticated connection. Needs a tokio runtime (current-
/// thread with paused time, or multi-thread). The connection lives until `Peer::close`, the
/// peer hangs up, a frame is malformed, or heartbeats fail; dropping the handles does not
/// close it (call `close`).
pub fn spawn_peer(auth: Authenticated, cfg: PeerConfig) -> (Peer, IncomingCalls) {
    let (out_tx, out_rx) = mpsc::channel(cfg.max_outbound_frames.max(1));
    let (in_tx, in_rx) = mpsc::channel(cfg.max_inbound_in_flight.max(1));
    let (closed_tx, closed_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        out: out_tx,
        queued_bytes: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
        abort: Notify::new(),
        closed: closed_rx,
        peer_identity: auth.peer_identity,
        credential: auth.credential,
        peer_addr: auth.conn.peer_addr,
        version: auth.version,
        max_in_flight: cfg.max_in_flight,
        memos: Memos::default(),
        max_frame: cfg.max_frame,
        max_outbound_bytes: cfg.max_outbound_bytes,
        counters: cfg.counters.clone(),
    });
    let driver = Driver {
        shared: shared.clone(),
        incoming: in_tx,
        inbound_slots: Arc::new(Semaphore::new(cfg.max_inbound_in_flight.max(1))),
        cfg,
    };
    tokio::spawn(driver.run(auth.conn.sink, auth.conn.stream, out_rx, closed_tx));
    (Peer { shared }, IncomingCalls { rx: in_rx })
}

/// A cheap, cloneable handle on one connection.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl Peer {
    /// Calls `method` and waits for its reply at most `timeout` (tokio time). Dropping the
    /// returned future abandons the call; a late reply is then ignored.
    pub async fn call(
        &self,
        method: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, RpcError> {
        let started = Instant::now();
        let (id, reply) = self.shared.register()?;
        let pending = PendingCall {
            shared: &self.shared,
            id,
        };
        let frame = encode_frame(id, Kind::Call, method, &body);
        self.shared.send(frame, method)?;
        let result = match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.shared.gone()),
            Err(_) => Err(RpcError::timeout(format!(
                "no reply to {method} from {} within {timeout:?}",
                self.shared.peer_identity
            ))),
        };
        drop(pending);
        crate::metrics::call_done(method, &result, started.elapsed());
        result
    }

    /// Calls with a typed request and decodes the typed reply.
    pub async fn call_typed<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Reply, RpcError> {
        let reply = self.call(R::METHOD, encode_body(req), timeout).await?;
        decode_body(&reply)
    }

    /// Calls with a typed request; decodes the reply only if its bytes differ from the last
    /// reply to `R::METHOD` on this connection, else returns the value decoded then (`memo`).
    pub async fn call_memo<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<Arc<R::Reply>, RpcError>
    where
        R::Reply: Send + Sync + 'static,
    {
        let reply = self.call(R::METHOD, encode_body(req), timeout).await?;
        self.shared.memos.decode(R::METHOD, &reply)
    }

    /// How many replies to `R::METHOD` `call_memo` did not decode again on this connection.
    pub fn memo_hits<R: Request>(&self) -> u64
    where
        R::Reply: 'static,
    {
        self.shared.memos.hits::<R::Reply>(R::METHOD)
    }

    /// Sends a one-way message; `Ok` means queued, not delivered.
    pub fn notify(&self, method: &str, body: Bytes) -> Result<(), RpcError> {
        if self.is_closed() {
            return Err(self.shared.gone());
        }
        self.shared
            .send(encode_frame(0, Kind::Notify, method, &body), method)
    }

    /// Closes the connection after the frames already queued are written (at once, if the
    /// queue is full).
    pub fn close(&self) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.shared.out.try_send(Outgoing::Close) {
            self.shared
                .abort("closed locally with a full outbound queue");
        }
    }

    /// Resolves once the connection is gone (closed by either side, failed, or timed out).
    pub async fn closed(&self) {
        let mut closed = self.shared.closed.clone();
        // An error means the driver was dropped with its runtime: gone as well.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.shared.lock().closed.clone()
    }

    /// The identity the peer proved during the handshake.
    pub fn peer_identity(&self) -> &str {
        &self.shared.peer_identity
    }

    /// The credential the peer authenticated with during the handshake: its certificate, or
    /// `None` when it proved the shared secret (compatibility mode).
    pub fn credential(&self) -> Option<&crate::transport::Credential> {
        self.shared.credential.as_ref()
    }

    /// The protocol version agreed during the handshake.
    pub fn version(&self) -> u16 {
        self.shared.version
    }

    /// Calls waiting for a reply now.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().pending.len()
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("peer_identity", &self.shared.peer_identity)
            .field("peer_addr", &self.shared.peer_addr)
            .finish()
    }
}

/// A call or notify from the peer. Answer a call through its `responder`.
pub struct Incoming {
    pub method: String,
    pub body: Bytes,
    /// `Some` for a call, `None` for a notify.
    pub responder: Option<Responder>,
    /// One of the link's inbound slots, held until this is dropped (a call's responder
    /// holds its own): while every slot is held, the driver reads no more frames.
    pub slot: InboundSlot,
}

/// One of a link's `max_inbound_in_flight` slots; dropping it frees the slot.
pub struct InboundSlot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Incoming {
    /// Decodes the body as `T` (`BadRequest` on failure).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, RpcError> {
        decode_body(&self.body)
    }

    /// Answers `UnknownMethod`: what a receiver does with a method it does not serve, so a
    /// newer peer can talk to an older one. A notify is just logged.
    pub fn reply_unknown_method(self) {
        match self.responder {
            Some(responder) => responder.reply(Err(RpcError::unknown_method(&self.method))),
            None => tracing::debug!("ignoring notify of unknown method {:?}", self.method),
        }
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .field("is_call", &self.responder.is_some())
            .finish()
    }
}

/// The right and duty to answer one call. Dropping it unanswered answers `Internal`.
pub struct Responder {
    shared: Arc<Shared>,
    id: u64,
    answered: bool,
    /// The call's inbound slot, freed when the reply is queued (or the responder dropped).
    _slot: InboundSlot,
}

impl Responder {
    /// Sends the reply (`Ok`: the encoded reply body) or the typed error.
    pub fn reply(mut self, result: Result<Bytes, RpcError>) {
        self.answered = true;
        self.send(result);
    }

    /// Sends an already-encoded reply body as it is (a cached reply: no re-encoding).
    pub fn reply_encoded(self, body: Bytes) {
        self.reply(Ok(body));
    }

    /// Encodes and sends a typed reply or error.
    pub fn reply_typed<T: Serialize>(self, result: Result<&T, RpcError>) {
        self.reply(result.map(encode_body));
    }

    fn send(&self, result: Result<Bytes, RpcError>) {
        let frame = match result {
            Ok(body) => encode_frame(self.id, Kind::Reply, "", &body),
            Err(e) => encode_frame(self.id, Kind::Error, "", &encode_body(&e)),
        };
        let frame = if frame.len() > self.shared.max_frame {
            let e = RpcError::internal(format!(
                "reply of {} bytes exceeds the maximum frame of {}",
                frame.len(),
                self.shared.max_frame
            ));
            encode_frame(self.id, Kind::Error, "", &encode_body(&e))
        } else {
            frame
        };
        if self.shared.enqueue(frame).is_err() {
            tracing::debug!("reply to call {} dropped: connection gone", self.id);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.send(Err(RpcError::internal(
                "the call was dropped without a reply",
            )));
        }
    }
}

/// The calls and notifies the peer sends us, in arrival order; ends when the connection does.
pub struct IncomingCalls {
    /// Boxed: a channel allocates its first block of 32 slots when it is made, and an
    /// `Incoming` is ~110 bytes, so unboxed every link kept 3.5 KiB for calls that are rare
    /// towards a region.
    rx: mpsc::Receiver<Box<Incoming>>,
}

impl IncomingCalls {
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await.map(|incoming| *incoming)
    }
}

impl Stream for IncomingCalls {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.rx.poll_recv(cx).map(|incoming| incoming.map(|i| *i))
    }
}

impl RpcError {
    /// The answer to a method the receiver does not serve.
    pub fn unknown_method(method: &str) -> Self {
        RpcError::new(
            ErrorKind::UnknownMethod,
            format!("unknown method {method:?}"),
        )
    }
}

/// What the writing loop is asked to do.
enum Outgoing {
    Frame(Bytes),
    Close,
}

type ReplySlot = oneshot::Sender<Result<Bytes, RpcError>>;

#[derive(Default)]
struct State {
    /// The next call id; ids start at 1 (0 is for notify, ping and handshake frames).
    next_id: u64,
    /// Calls waiting for a reply, by id. Invariant: empty once `closed` is `Some`.
    pending: BTreeMap<u64, ReplySlot>,
    /// Why the connection ended; `None` while it is up.
    closed: Option<String>,
    /// Why the connection is being ended at once, before the driver has noticed.
    abort_reason: Option<String>,
}

/// What the handles and the driver share.
struct Shared {
    state: Mutex<State>,
    /// Frames for the writing loop; bounded by `max_outbound_frames`.
    out: mpsc::Sender<Outgoing>,
    /// Bytes of the frames in `out`: added when queued, subtracted when written.
    queued_bytes: AtomicUsize,
    /// Set once the outbound queue overflowed, so the link is counted once.
    overflowed: AtomicBool,
    /// Wakes the driver to end the connection at once (the outbound queue overflowed).
    abort: Notify,
    closed: watch::Receiver<bool>,
    peer_identity: String,
    /// The certificate the peer authenticated with (`None` in compatibility mode).
    credential: Option<crate::transport::Credential>,
    peer_addr: String,
    version: u16,
    max_in_flight: usize,
    /// The last reply of each memoized method and its decoded value (`Peer::call_memo`).
    memos: Memos,
    max_frame: usize,
    max_outbound_bytes: usize,
    counters: AbuseCounters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding this lock; if one did, the state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self) -> Result<(u64, oneshot::Receiver<Result<Bytes, RpcError>>), RpcError> {
        let mut state = self.lock();
        if let Some(reason) = &state.closed {
            return Err(RpcError::unavailable(format!("peer gone: {reason}")));
        }
        if state.pending.len() >= self.max_in_flight {
            return Err(RpcError::unavailable(format!(
                "{} calls in flight to {} already (the limit)",
                state.pending.len(),
                self.peer_identity
            )));
        }
        state.next_id += 1;
        let id = state.next_id;
        let (tx, rx) = oneshot::channel();
        state.pending.insert(id, tx);
        Ok((id, rx))
    }

    fn send(&self, frame: Bytes, method: &str) -> Result<(), RpcError> {
        if frame.len() > self.max_frame {
            return Err(RpcError::bad_request(format!(
                "{method} frame of {} bytes exceeds the maximum of {}",
                frame.len(),
                self.max_frame
            )));
        }
        self.enqueue(frame).map_err(|()| self.gone())
    }

    /// Queues a frame for the writing loop without waiting. A full queue (by frames or by
    /// bytes) means the peer stopped reading: the connection is ended and counted.
    fn enqueue(&self, frame: Bytes) -> Result<(), ()> {
        let len = frame.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        if queued > self.max_outbound_bytes {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.overflow(&format!(
                "outbound queue over {} bytes: the peer is not reading",
                self.max_outbound_bytes
            ));
            return Err(());
        }
        match self.out.try_send(Outgoing::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.overflow(&format!(
                    "outbound queue of {} frames full: the peer is not reading",
                    self.out.max_capacity()
                ));
                Err(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                Err(())
            }
        }
    }

    /// Ends the connection because the peer does not read; counted once per link.
    fn overflow(&self, reason: &str) {
        if !self.overflowed.swap(true, Ordering::Relaxed) {
            self.counters.link_closed_not_reading();
            self.abort(reason);
        }
    }

    /// Ends the connection at once with `reason`, whatever is queued.
    fn abort(&self, reason: &str) {
        {
            let mut state = self.lock();
            if state.closed.is_none() && state.abort_reason.is_none() {
                state.abort_reason = Some(reason.to_owned());
            }
        }
        self.abort.notify_one();
    }

    /// Hands a reply to its waiting call; a reply nobody waits for is logged and dropped.
    fn complete(&self, id: u64, result: Result<Bytes, RpcError>) {
        let slot = self.lock().pending.remove(&id);
        match slot {
            Some(slot) => {
                let _ = slot.send(result);
            }
            None => tracing::debug!(
                peer = %self.peer_identity,
                "ignoring reply to call {id}: not in flight (abandoned, timed out or never sent)"
            ),
        }
    }

    fn forget(&self, id: u64) {
        self.lock().pending.remove(&id);
    }

    fn gone(&self) -> RpcError {
        let reason = self.lock().closed.clone();
        let reason = reason.unwrap_or_else(|| "connection closed".into());
        RpcError::unavailable(format!("peer gone: {reason}"))
    }

    /// Marks the connection closed and fails every call in flight, in id order.
    fn shut_down(&self, reason: &str) {
        let pending = {
            let mut state = self.lock();
            state.closed = Some(reason.to_owned());
            std::mem::take(&mut state.pending)
        };
        for (_, slot) in pending {
            let _ = slot.send(Err(RpcError::unavailable(format!("peer gone: {reason}"))));
        }
    }
}

/// Removes its call from the pending map when the call ends or is abandoned.
struct PendingCall<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        self.shared.forget(self.id);
    }
}

/// The task behind one connection.
struct Driver {
    shared: Arc<Shared>,
    /// Calls and notifies for the owner; bounded, and `inbound_slots` bounds what is held.
    incoming: mpsc::Sender<Box<Incoming>>,
    inbound_slots: Arc<Semaphore>,
    cfg: PeerConfig,
}

impl Driver {
    async fn run(
        self,
        sink: FrameSink,
        stream: FrameStream,
        out: mpsc::Receiver<Outgoing>,
        closed: watch::Sender<bool>,
    ) {
        let reason = tokio::select! {
            biased;
            () = self.shared.abort.notified() => self.shared.lock().abort_reason.clone()
                .unwrap_or_else(|| "aborted".into()),
            reason = self.read_loop(stream) => reason,
            reason = write_loop(sink, out, &self.shared) => reason,
            reason = self.ping_loop() => reason,
        };
        tracing::info!(
            peer = %self.shared.peer_identity,
            addr = %self.shared.peer_addr,
            "connection closed: {reason}"
        );
        self.shared.shut_down(&reason);
        let _ = closed.send(true);
    }

    /// Reads frames until the stream ends, fails, goes silent, or sends something invalid.
    async fn read_loop(&self, mut stream: FrameStream) -> String {
        let silence = self.cfg.heartbeat_timeout;
        let mut last_frame = Instant::now();
        let mut pings = PingWindow::new(last_frame, self.cfg.heartbeat_interval);
        let deadline = tokio::time::sleep(silence);
        tokio::pin!(deadline);
        loop {
            let frame = tokio::select! {
                biased;
                frame = stream.next() => frame,
                () = &mut deadline => {
                    // Frames reset only `last_frame`; the timer is moved here, lazily.
                    let due = last_frame + silence;
                    if Instant::now() >= due {
                        return format!("heartbeat timeout: nothing received for {silence:?}");
                    }
                    deadline.as_mut().reset(due);
                    continue;
                }
            };
            last_frame = Instant::now();
            let frame = match frame {
                None => return "connection closed by peer".into(),
                Some(Err(e)) => return format!("read failed: {e}"),
                Some(Ok(frame)) => frame,
            };
            let large = frame.len() >= YIELD_AFTER_FRAME_BYTES;
            let handled = match Envelope::decode_bytes(frame) {
                Err(e) => Err(format!("undecodable frame: {e}")),
                Ok(envelope) if envelope.kind == Kind::Ping => match pings.count(last_frame) {
                    Ok(()) => self.handle_envelope(envelope).await,
                    Err(reason) => Err(reason),
                },
                Ok(envelope) => self.handle_envelope(envelope).await,
            };
            if let Err(reason) = handled {
                tracing::warn!(peer = %self.shared.peer_identity, "closing connection: {reason}");
                return reason;
            }
            if large {
                // Let the owner (and everyone else on this thread) run between large frames.
                tokio::task::yield_now().await;
            }
        }
    }

    async fn handle_envelope(&self, envelope: Envelope) -> Result<(), String> {
        let Envelope {
            id,
            kind,
            method,
            body,
        } = envelope;
        match kind {
            Kind::Call => {
                let responder = Responder {
                    shared: self.shared.clone(),
                    id,
                    answered: false,
                    _slot: self.inbound_slot().await,
                };
                self.deliver(Incoming {
                    method,
                    body,
                    responder: Some(responder),
                    slot: InboundSlot { _permit: None },
                })
                .await;
            }
            Kind::Notify => {
                let slot = self.inbound_slot().await;
                self.deliver(Incoming {
                    method,
                    body,
                    responder: None,
                    slot,
                })
                .await
            }
            Kind::Reply => self.shared.complete(id, Ok(body)),
            Kind::Error => {
                let error = decode_body::<RpcError>(&body).unwrap_or_else(|e| {
                    RpcError::internal(format!("peer sent an undecodable error: {}", e.message))
                });
                self.shared.complete(id, Err(error));
            }
            Kind::Ping => {
                let _ = self.shared.enqueue(encode_frame(id, Kind::Pong, "", &[]));
            }
            Kind::Pong => {}
            Kind::Handshake => {
                return Err(format!("handshake step {method:?} after authentication"))
            }
        }
        Ok(())
    }

    /// Waits for a free inbound slot: while every slot is held the socket is not read, so
    /// the peer meets TCP backpressure instead of the region buffering its calls.
    async fn inbound_slot(&self) -> InboundSlot {
        // The semaphore is never closed; `None` would only mean an unbounded slot.
        InboundSlot {
            _permit: self.inbound_slots.clone().acquire_owned().await.ok(),
        }
    }

    async fn deliver(&self, incoming: Incoming) {
        if let Err(mpsc::error::SendError(incoming)) = self.incoming.send(Box::new(incoming)).await
        {
            if let Some(responder) = incoming.responder {
                responder.reply(Err(RpcError::unavailable("the peer serves no calls")));
            }
        }
    }

    /// Sends a ping every interval, so a silent-but-alive peer still produces frames.
    async fn ping_loop(&self) -> String {
        let every = self.cfg.heartbeat_interval;
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            ticks.tick().await;
            n += 1;
            let ping = encode_frame(n, Kind::Ping, "", &[]);
            if self.shared.enqueue(ping).is_err() {
                // An overflow has asked the driver to stop; wait for it.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Counts the peer's pings per heartbeat interval; more than `MAX_PINGS_PER_HEARTBEAT` in one
/// is a flood.
struct PingWindow {
    started: Instant,
    interval: Duration,
    count: u32,
}

impl PingWindow {
    fn new(now: Instant, interval: Duration) -> Self {
        PingWindow {
            started: now,
            interval,
            count: 0,
        }
    }

    /// Counts one ping received at `now`; past the bound within one interval, a flood.
    fn count(&mut self, now: Instant) -> Result<(), String> {
        if now >= self.started + self.interval {
            self.started = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count > MAX_PINGS_PER_HEARTBEAT {
            return Err(format!(
                "ping flood: more than {MAX_PINGS_PER_HEARTBEAT} pings within {:?}",
                self.interval
            ));
        }
        Ok(())
    }
}

/// Writes queued frames, flushing once per drained batch rather than once per frame.
async fn write_loop(
    mut sink: FrameSink,
    mut out: mpsc::Receiver<Outgoing>,
    shared: &Shared,
) -> String {
    while let Some(first) = out.recv().await {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(outgoing) = next {
            match outgoing {
                Outgoing::Frame(frame) => {
                    shared
                        .queued_bytes
                        .fetch_sub(frame.len(), Ordering::Relaxed);
                    if let Err(e) = sink.feed(frame).await {
                        return format!("write failed: {e}");
                    }
                }
                Outgoing::Close => {
                    let _ = sink.flush().await;
                    let _ = sink.close().await;
                    return "closed locally".into();
                }
            }
            written += 1;
            next = if written < MAX_WRITE_BATCH {
                out.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = sink.flush().await {
            return format!("write failed: {e}");
        }
    }
    "every handle dropped".into()
}
