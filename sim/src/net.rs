//! The simulated network: `osmesh-net`'s transport seam over in-memory links whose latency,
//! loss, duplication, reordering, partitions and cuts are decided by one seeded RNG.
//!
//! Frames are the same CBOR bytes TCP would carry. Each direction of a link has a carrier
//! task holding the frames in flight, keyed by (delivery time, sequence), so delivery order
//! is a function of the seed alone. Without reordering, a frame never overtakes an earlier
//! one on its direction (TCP's order); with it, a frame may.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use osmesh_net::envelope::{Envelope, Kind};
use osmesh_net::{Credential, Dialer, FrameConn, Listener, NetError, Secured, Security};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::scenario::Direction;
use crate::trace::{Fate, SharedTrace, Source};

/// The address the region listens on (in a world of one region; several are `r1`, `r2`, …).
pub const REGION_ADDR: &str = "region";

/// Where a cluster's credential lives: the world replaces it (an enrollment), the cluster's
/// dialer presents what it holds at each dial. `None` inside: a plain link (the shared secret).
pub type CredentialSlot = Arc<Mutex<Option<Credential>>>;

/// How the network names an attacker's links (`impostor(c1)`): never a cluster id (the
/// parentheses are outside the identity charset), so nothing it carries is taken for the
/// cluster's, and what the region acknowledged to it is recorded apart.
pub fn impostor_link(cluster: &str) -> String {
    format!("impostor({cluster})")
}

/// Largest frame the simulated links carry, as TCP's default.
pub const MAX_FRAME: usize = osmesh_net::DEFAULT_MAX_FRAME;

/// Which way a frame travels on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Up = 0,
    Down = 1,
}

/// Per-link fault settings; `None` falls back to the network-wide value.
#[derive(Clone, Debug, Default)]
struct LinkFaults {
    latency: Option<(u64, u64)>,
    drop_rate: Option<f64>,
    duplicate_rate: Option<f64>,
    reorder_rate: Option<f64>,
}

/// One connection between a cluster and a region.
struct LinkEntry {
    cluster: Arc<str>,
    /// The address of the region it was dialed to.
    region: Arc<str>,
    /// How the trace names each direction (`L3 c1>region`, `L3 region>c1`), made once.
    labels: [Arc<str>; 2],
    /// Ends each direction's carrier (by `Dir`): sent to, or dropped with the entry.
    cut: [oneshot::Sender<()>; 2],
    /// The latest delivery time handed out per direction (FIFO unless reordered).
    last_at: [Instant; 2],
    /// Calls in flight per sending direction, by id, so replies can be labelled. Methods
    /// are interned (see [`Labels::method`]): recording a call copies no string.
    calls: [BTreeMap<u64, Arc<str>>; 2],
    /// Calls already replied to, so the oracle can name the method of a second reply (to a
    /// duplicated call) that the trace labels `?`.
    replied: [BTreeMap<u64, Arc<str>>; 2],
}

struct NetState {
    rng: StdRng,
    trace: SharedTrace,
    start: Instant,
    /// Each region's listener, by address; a region down has none.
    listeners: BTreeMap<String, mpsc::UnboundedSender<FrameConn>>,
    /// Every address a region ever listened on (a dial elsewhere is "no host").
    hosts: std::collections::BTreeSet<String>,
    links: BTreeMap<u64, LinkEntry>,
    next_link: u64,
    default_latency: (u64, u64),
    global: LinkFaults,
    per_cluster: BTreeMap<String, LinkFaults>,
    partitions: BTreeMap<String, Direction>,
    /// Partitions between one cluster and one region only: `(cluster, region address)`.
    region_partitions: BTreeMap<(String, String), Direction>,
    slow: BTreeMap<String, u64>,
    connect_timeout: Duration,
    /// What the network itself saw since the oracle last took it (never read by the nodes).
    seen: Observed,
    /// Whether the trace keeps a line per frame (else frames are only counted).
    keep_frames: bool,
    labels: Labels,
    counts: Counts,
}

/// Frames counted by link, direction and label until the run ends, by link id (ids count
/// from 1, so a link's counts are found by index). A frame kind's label is a shared string
/// made once (see [`Labels`]), so a count is found by the label's address among the few a
/// direction carries: no string is hashed, compared or copied per frame.
#[derive(Default)]
struct Counts(Vec<LinkCounts>);

/// One link's labels (`L3 c1>region`, `L3 region>c1`) and, per direction, each frame kind's
/// label with its frames delivered, dropped and duplicated.
struct LinkCounts {
    labels: [Arc<str>; 2],
    frames: [Vec<(Arc<str>, [u64; 3])>; 2],
}

impl Counts {
    /// Starts counting the frames of link `id`.
    fn open(&mut self, id: u64, labels: [Arc<str>; 2]) {
        let Ok(index) = usize::try_from(id) else {
            return;
        };
        while self.0.len() < index {
            self.0.push(LinkCounts {
                labels: labels.clone(),
                frames: [Vec::new(), Vec::new()],
            });
        }
        if let Some(link) = index.checked_sub(1).and_then(|i| self.0.get_mut(i)) {
            *link = LinkCounts {
                labels,
                frames: [Vec::new(), Vec::new()],
            };
        }
    }

    fn count(&mut self, link: u64, dir: Dir, frame: &Arc<str>, fate: Fate) {
        let index = usize::try_from(link).ok().and_then(|i| i.checked_sub(1));
        let Some(counts) = index.and_then(|i| self.0.get_mut(i)) else {
            return;
        };
        let frames = &mut counts.frames[dir as usize];
        let at = match frames
            .iter()
            .position(|(label, _)| Arc::ptr_eq(label, frame))
        {
            Some(at) => at,
            None => {
                frames.push((frame.clone(), [0; 3]));
                frames.len() - 1
            }
        };
        frames[at].1[fate as usize] += 1;
    }
}

/// A reply a cluster sent a region: `(delivery ms, method, region address)`; the method is
/// the network's shared copy of its name.
pub type Reply = (u64, Arc<str>, Arc<str>);

/// What the network saw travel, recorded when a frame is handed a delivery time: the
/// oracle's evidence of registrations and answers, independent of the region's state.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Clusters a region replied `Registered` to, with the first time one did.
    pub registered: BTreeMap<String, u64>,
    /// Per cluster, the address of every region that replied `Registered` to it.
    pub registered_with: BTreeMap<String, BTreeMap<Arc<str>, u64>>,
    /// Per cluster, `(delivery ms, method, region address)` of every reply it sent a region.
    pub replies: BTreeMap<String, Vec<Reply>>,
    /// Per cluster, the delivery ms of every frame that carried its images to the region (its
    /// `ReportBootImages` calls and its `ListBootImages` replies).
    pub reports: BTreeMap<String, Vec<u64>>,
    /// Clusters the region replied `Registered` to, with the last time it did (a removed
    /// cluster that registers again is named again).
    pub last_registered: BTreeMap<String, u64>,
    /// Impersonated clusters the region replied `Registered` to on an attacker's link, with
    /// the first time it did: never, while identity comes from the credential.
    pub impostors_registered: BTreeMap<String, u64>,
}

impl Observed {
    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.registered.is_empty()
            && self.registered_with.is_empty()
            && self.replies.is_empty()
            && self.reports.is_empty()
            && self.last_registered.is_empty()
            && self.impostors_registered.is_empty()
    }

    /// Adds `later`, seen after everything here: first registrations are kept, replies and
    /// reports appended in order.
    pub fn merge(&mut self, later: Observed) {
        for (cluster, at) in later.registered {
            self.registered.entry(cluster).or_insert(at);
        }
        for (cluster, regions) in later.registered_with {
            let known = self.registered_with.entry(cluster).or_default();
            for (region, at) in regions {
                known.entry(region).or_insert(at);
            }
        }
        for (cluster, replies) in later.replies {
            self.replies.entry(cluster).or_default().extend(replies);
        }
        for (cluster, reports) in later.reports {
            self.reports.entry(cluster).or_default().extend(reports);
        }
        self.last_registered.extend(later.last_registered);
        for (cluster, at) in later.impostors_registered {
            self.impostors_registered.entry(cluster).or_insert(at);
        }
    }

    /// Whether `cluster` sent a reply to `method` that reaches the region at `region` within
    /// `from_ms..=to_ms`.
    pub fn replied_within(
        &self,
        cluster: &str,
        region: &str,
        method: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> bool {
        self.replies.get(cluster).is_some_and(|replies| {
            replies.iter().any(|(at, m, r)| {
                &**m == method && &**r == region && (from_ms..=to_ms).contains(at)
            })
        })
    }

    /// Whether the region at `region` replied `Registered` to `cluster` before `before_ms`
    /// (an answer asked for at that virtual millisecond may have been built just before).
    pub fn registered_with(&self, cluster: &str, region: &str, before_ms: u64) -> bool {
        self.registered_with
            .get(cluster)
            .and_then(|regions| regions.get(region))
            .is_some_and(|at| *at < before_ms)
    }
}

/// The network every simulated node is on. Cheap to clone.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<NetState>>,
}

type Queued = (Instant, Bytes);

impl SimNetwork {
    pub fn new(
        rng: StdRng,
        trace: SharedTrace,
        latency: (u64, u64),
        connect_timeout: Duration,
    ) -> Self {
        let state = NetState {
            rng,
            trace: trace.clone(),
            start: Instant::now(),
            listeners: BTreeMap::new(),
            hosts: Default::default(),
            links: BTreeMap::new(),
            next_link: 0,
            default_latency: latency,
            global: LinkFaults::default(),
            per_cluster: BTreeMap::new(),
            partitions: BTreeMap::new(),
            region_partitions: BTreeMap::new(),
            slow: BTreeMap::new(),
            connect_timeout,
            seen: Observed::default(),
            keep_frames: trace.lock().keep_frames,
            labels: Labels::default(),
            counts: Counts::default(),
        };
        SimNetwork {
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        // One thread only; a poisoned lock means a panic is already ending the run.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the network has seen since the last call (see [`Observed`]): the oracle merges
    /// these with [`Observed::merge`], so nothing is copied twice.
    pub fn take_observed(&self) -> Observed {
        std::mem::take(&mut self.lock().seen)
    }

    /// The listener of the region at `addr`; replaces any earlier one (a restarted region).
    pub fn listen(&self, addr: &str) -> SimListener {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.lock();
        state.listeners.insert(addr.to_owned(), tx);
        state.hosts.insert(addr.to_owned());
        SimListener {
            incoming: rx,
            addr: addr.to_owned(),
        }
    }

    /// Nothing listens on `addr` any more: dials to it are refused.
    pub fn unlisten(&self, addr: &str) {
        self.lock().listeners.remove(addr);
    }

    pub fn dialer(&self, cluster: &str) -> SimDialer {
        SimDialer {
            net: self.clone(),
            cluster: cluster.to_owned(),
            credential: None,
        }
    }

    /// A dialer whose links are secured as TLS would secure them: the region's end is handed
    /// the credential in `credential` at each dial (see `world/identity.rs`).
    pub fn secured_dialer(&self, link: &str, credential: CredentialSlot) -> SimDialer {
        SimDialer {
            credential: Some(credential),
            ..self.dialer(link)
        }
    }

    /// Cuts every link of `cluster` at once (`None`: every link): in-flight frames are lost
    /// and both ends see the connection end.
    pub fn cut(&self, cluster: Option<&str>) {
        self.cut_where(|link| cluster.is_none_or(|c| c == &*link.cluster));
    }

    /// Cuts every link to the region at `addr` (a crashed region).
    pub fn cut_region(&self, addr: &str) {
        self.cut_where(|link| &*link.region == addr);
    }

    fn cut_where(&self, doomed: impl Fn(&LinkEntry) -> bool) {
        let mut state = self.lock();
        let doomed: Vec<u64> = state
            .links
            .iter()
            .filter(|(_, link)| doomed(link))
            .map(|(id, _)| *id)
            .collect();
        let now = state.now_ms();
        for id in doomed {
            if let Some(link) = state.links.remove(&id) {
                for carrier in link.cut {
                    let _ = carrier.send(());
                }
                let text = format!("L{id} {}<>{}  cut", link.cluster, link.region);
                state.trace.push(now, Source::Net, text);
            }
        }
    }

    /// Partitions `cluster` from every region, or from the region at `region` only.
    pub fn partition(&self, cluster: &str, region: Option<&str>, direction: Direction) {
        let mut state = self.lock();
        match region {
            None => {
                state.partitions.insert(cluster.to_owned(), direction);
            }
            Some(r) => {
                let key = (cluster.to_owned(), r.to_owned());
                state.region_partitions.insert(key, direction);
            }
        }
    }

    /// Ends the partitions of `cluster` (`None`: every cluster's); with `region`, only the
    /// one between that cluster and that region.
    pub fn heal(&self, cluster: Option<&str>, region: Option<&str>) {
        let mut state = self.lock();
        match (cluster, region) {
            (Some(c), Some(r)) => {
                state
                    .region_partitions
                    .remove(&(c.to_owned(), r.to_owned()));
            }
            (Some(c), None) => {
                state.partitions.remove(c);
                state.region_partitions.retain(|(pc, _), _| pc != c);
            }
            (None, _) => {
                state.partitions.clear();
                state.region_partitions.clear();
            }
        }
    }

    pub fn set_latency(&self, cluster: Option<&str>, min_ms: u64, max_ms: u64) {
        self.with_faults(cluster, |f| f.latency = Some((min_ms, max_ms)));
    }

    pub fn set_drop_rate(&self, cluster: Option<&str>, rate: f64) {
        self.with_faults(cluster, |f| f.drop_rate = Some(rate));
    }

    pub fn set_duplicate_rate(&self, cluster: Option<&str>, rate: f64) {
        self.with_faults(cluster, |f| f.duplicate_rate = Some(rate));
    }

    pub fn set_reorder_rate(&self, cluster: Option<&str>, rate: f64) {
        self.with_faults(cluster, |f| f.reorder_rate = Some(rate));
    }

    pub fn set_slow(&self, cluster: &str, extra_ms: u64) {
        let mut state = self.lock();
        if extra_ms == 0 {
            state.slow.remove(cluster);
        } else {
            state.slow.insert(cluster.to_owned(), extra_ms);
        }
    }

    /// Ends every network fault; links and listeners are untouched.
    pub fn heal_all(&self) {
        let mut state = self.lock();
        state.global = LinkFaults::default();
        state.per_cluster.clear();
        state.partitions.clear();
        state.region_partitions.clear();
        state.slow.clear();
    }

    fn with_faults(&self, cluster: Option<&str>, change: impl FnOnce(&mut LinkFaults)) {
        let mut state = self.lock();
        match cluster {
            Some(c) => change(state.per_cluster.entry(c.to_owned()).or_default()),
            None => change(&mut state.global),
        }
    }

    fn connect(
        &self,
        cluster: &str,
        addr: &str,
        credential: Option<Credential>,
    ) -> Result<FrameConn, DialFailure> {
        let mut state = self.lock();
        let now = state.now_ms();
        if !state.hosts.contains(addr) {
            return Err(DialFailure::Refused(format!("no host {addr}")));
        }
        if state.partition_of(cluster, addr).is_some() {
            state.trace.push(
                now,
                Source::Net,
                format!("dial {cluster}>{addr}  timed out (partition)"),
            );
            return Err(DialFailure::TimedOut(state.connect_timeout));
        }
        let listener = state
            .listeners
            .get(addr)
            .filter(|l| !l.is_closed())
            .cloned();
        let Some(listener) = listener else {
            state.trace.push(
                now,
                Source::Net,
                format!("dial {cluster}>{addr}  refused (region down)"),
            );
            return Err(DialFailure::Refused(format!("nothing listens on {addr}")));
        };
        state.next_link += 1;
        let id = state.next_link;
        let (cut_up, cut_up_rx) = oneshot::channel();
        let (cut_down, cut_down_rx) = oneshot::channel();
        let start = Instant::now();
        let labels: [Arc<str>; 2] = [
            format!("L{id} {cluster}>{addr}").into(),
            format!("L{id} {addr}>{cluster}").into(),
        ];
        state.counts.open(id, labels.clone());
        state.links.insert(
            id,
            LinkEntry {
                cluster: cluster.into(),
                region: addr.into(),
                labels,
                cut: [cut_up, cut_down],
                last_at: [start; 2],
                calls: [BTreeMap::new(), BTreeMap::new()],
                replied: [BTreeMap::new(), BTreeMap::new()],
            },
        );
        let text = format!("L{id} {cluster}>{addr}  connected");
        state.trace.push(now, Source::Net, text);
        drop(state);
        let cluster_end = self.half(id, Dir::Up, cut_up_rx, addr);
        let region_end = self.half(id, Dir::Down, cut_down_rx, cluster);
        // The two ends are crossed: each end's stream carries the other direction.
        let (cluster_sink, region_stream) = cluster_end;
        let (region_sink, cluster_stream) = region_end;
        let (region_security, cluster_security) = secure(id, credential);
        let region_conn = FrameConn {
            sink: region_sink,
            stream: region_stream,
            peer_addr: format!("sim:{cluster}"),
            read_limit: osmesh_net::limits::ReadLimit::fixed(osmesh_net::limits::MAX_FRAME),
            security: region_security,
        };
        if listener.send(region_conn).is_err() {
            return Err(DialFailure::Refused("the region stopped listening".into()));
        }
        Ok(FrameConn {
            sink: cluster_sink,
            stream: cluster_stream,
            peer_addr: format!("sim:{addr}"),
            read_limit: osmesh_net::limits::ReadLimit::fixed(osmesh_net::limits::MAX_FRAME),
            security: cluster_security,
        })
    }

    /// One direction of a link: the sink its sender writes to and the stream its receiver
    /// reads from, with the carrier task between them.
    fn half(
        &self,
        link: u64,
        dir: Dir,
        cut: oneshot::Receiver<()>,
        _to: &str,
    ) -> (osmesh_net::FrameSink, osmesh_net::FrameStream) {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        tokio::spawn(carry(queue_rx, out_tx, cut));
        let sink = SimSink {
            net: self.clone(),
            link,
            dir,
            queue: Some(queue_tx),
        };
        (Box::pin(sink), Box::pin(SimStream { frames: out_rx }))
    }

    /// Moves the frame counts into the trace (at the end of a run).
    pub fn flush_counts(&self) {
        let mut state = self.lock();
        let counts = std::mem::take(&mut state.counts);
        let mut trace = state.trace.lock();
        for link in counts.0 {
            for (label, frames) in link.labels.iter().zip(link.frames) {
                for (frame, fates) in frames {
                    for (fate, n) in [Fate::Delivered, Fate::Dropped, Fate::Duplicated]
                        .into_iter()
                        .zip(fates)
                    {
                        trace.add_frames(label, &frame, fate, n);
                    }
                }
            }
        }
    }

    /// Decides a frame's fate and queues its deliveries.
    fn send(
        &self,
        link: u64,
        dir: Dir,
        mut frame: Bytes,
        queue: &mpsc::UnboundedSender<Queued>,
    ) -> Result<(), NetError> {
        if frame.len() > MAX_FRAME {
            return Err(NetError::FrameTooLarge {
                len: frame.len(),
                max: MAX_FRAME,
            });
        }
        let mut guard = self.lock();
        let state = &mut *guard;
        let keep = state.keep_frames;
        let Some(entry) = state.links.get_mut(&link) else {
            return Err(NetError::Closed);
        };
        let cluster = entry.cluster.clone();
        let region = entry.region.clone();
        let link_label = entry.labels[dir as usize].clone();
        let seen = read_frame(&frame, dir, entry, &mut state.labels, keep);
        // The clock stands still while a frame is sent: read once.
        let now = Instant::now();
        let sent = Sent {
            now_ms: state.ms_at(now),
            link,
            dir,
            label: &link_label,
            seen: &seen,
        };
        let faults = state.effective(&cluster);
        let partitioned = state
            .partition_of(&cluster, &region)
            .is_some_and(|d| match d {
                Direction::Both => true,
                Direction::ToRegion => dir == Dir::Up,
                Direction::FromRegion => dir == Dir::Down,
            });
        let lost = !partitioned && chance(&mut state.rng, faults.drop_rate);
        if partitioned || lost {
            let why = if partitioned { "partition" } else { "loss" };
            state.record(&sent, Fate::Dropped, || format!("DROP({why})"));
            return Ok(());
        }
        let mut delay = state.draw_latency(faults.latency);
        if dir == Dir::Up && seen.kind == Some(Kind::Reply) {
            delay += state.slow.get(&*cluster).copied().unwrap_or(0);
        }
        let reordered = chance(&mut state.rng, faults.reorder_rate);
        let at = state.delivery_time(now, link, dir, delay, reordered);
        state.observe(
            &cluster,
            &region,
            dir,
            seen.replied_to.as_ref(),
            sent.now_ms,
            at,
        );
        // Drawn after the delivery's draws, as always; a frame sent once is not copied.
        let duplicated = chance(&mut state.rng, faults.duplicate_rate);
        let first = if duplicated {
            frame.clone()
        } else {
            std::mem::take(&mut frame)
        };
        let _ = queue.send((at, first));
        state.record(&sent, Fate::Delivered, || {
            let reorderable = if reordered { " reorderable" } else { "" };
            format!("+{delay}ms{reorderable}")
        });
        if duplicated {
            let again = delay + state.draw_latency(faults.latency);
            let at = state.delivery_time(now, link, dir, again, true);
            state.observe(
                &cluster,
                &region,
                dir,
                seen.replied_to.as_ref(),
                sent.now_ms,
                at,
            );
            let _ = queue.send((at, frame));
            state.record(&sent, Fate::Duplicated, || format!("DUP +{again}ms"));
        }
        Ok(())
    }
}

/// The two ends' security of link `id`: plain without a credential; else what TLS would
/// establish: the region's end holds the client's credential (the simulated TLS checks no
/// signature, so whatever the dialer presents reaches the region's own identity rules),
/// both ends the same channel binding.
fn secure(id: u64, credential: Option<Credential>) -> (Security, Security) {
    let Some(credential) = credential else {
        return (Security::plain(), Security::plain());
    };
    let channel_binding = format!("sim-tls L{id}").into_bytes();
    let region = Security::secured(Secured {
        credential: Some(credential),
        channel_binding: channel_binding.clone(),
    });
    let cluster = Security::secured(Secured {
        credential: None,
        channel_binding,
    });
    (region, cluster)
}

/// A frame handed to the network, as the trace records it.
struct Sent<'a> {
    now_ms: u64,
    link: u64,
    dir: Dir,
    /// The link and direction as the trace names them, `L3 c1>region`.
    label: &'a Arc<str>,
    seen: &'a SeenFrame,
}

impl NetState {
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// Virtual milliseconds since the network began at `at`.
    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// The partition between `cluster` and the region at `region`, if any: the cluster's own
    /// (from every region) first.
    fn partition_of(&self, cluster: &str, region: &str) -> Option<&Direction> {
        self.partitions.get(cluster).or_else(|| {
            if self.region_partitions.is_empty() {
                return None;
            }
            self.region_partitions
                .get(&(cluster.to_owned(), region.to_owned()))
        })
    }

    /// Records a reply frame sent at `now_ms` and about to be delivered at `at` (see
    /// [`Observed`]).
    fn observe(
        &mut self,
        cluster: &str,
        region: &Arc<str>,
        dir: Dir,
        replied_to: Option<&Arc<str>>,
        now: u64,
        at: Instant,
    ) {
        let Some(method) = replied_to else {
            return;
        };
        let at_ms = self.ms_at(at);
        match dir {
            Dir::Down if &**method == osmesh_net::messages::method::REGISTER => {
                if let Some(claimed) = impostor_of(cluster) {
                    let first = self.seen.impostors_registered.entry(claimed.to_owned());
                    first.or_insert(now);
                    return;
                }
                self.seen
                    .registered
                    .entry(cluster.to_owned())
                    .or_insert(now);
                let with = self.seen.registered_with.entry(cluster.to_owned());
                with.or_default().entry(region.clone()).or_insert(now);
                self.seen.last_registered.insert(cluster.to_owned(), now);
            }
            Dir::Up if impostor_of(cluster).is_some() => {}
            Dir::Down => {}
            Dir::Up => {
                let images = osmesh_net::messages::method::LIST_BOOT_IMAGES;
                if &**method == images || &**method == "call ReportBootImages" {
                    self.seen
                        .reports
                        .entry(cluster.to_owned())
                        .or_default()
                        .push(at_ms);
                }
                if &**method != "call ReportBootImages" {
                    self.seen
                        .replies
                        .entry(cluster.to_owned())
                        .or_default()
                        .push((at_ms, method.clone(), region.clone()));
                }
            }
        }
    }

    fn effective(&self, cluster: &str) -> LinkFaults {
        let own = self.per_cluster.get(cluster).cloned().unwrap_or_default();
        LinkFaults {
            latency: own.latency.or(self.global.latency),
            drop_rate: own.drop_rate.or(self.global.drop_rate),
            duplicate_rate: own.duplicate_rate.or(self.global.duplicate_rate),
            reorder_rate: own.reorder_rate.or(self.global.reorder_rate),
        }
    }

    fn draw_latency(&mut self, latency: Option<(u64, u64)>) -> u64 {
        let (min, max) = latency.unwrap_or(self.default_latency);
        self.rng.gen_range(min..=max.max(min))
    }

    /// When a frame sent `now` on `link` is delivered, `delay_ms` later or, unless
    /// `reordered`, after the last frame handed out on its direction.
    fn delivery_time(
        &mut self,
        now: Instant,
        link: u64,
        dir: Dir,
        delay_ms: u64,
        reordered: bool,
    ) -> Instant {
        let at = now + Duration::from_millis(delay_ms);
        let Some(entry) = self.links.get_mut(&link) else {
            return at;
        };
        let last = &mut entry.last_at[dir as usize];
        let at = if reordered { at } else { at.max(*last) };
        *last = (*last).max(at);
        at
    }

    /// Counts a frame's fate and, when the trace keeps frames, writes its line
    /// (`fate_text` is only formatted then).
    fn record(&mut self, sent: &Sent<'_>, fate: Fate, fate_text: impl FnOnce() -> String) {
        self.counts
            .count(sent.link, sent.dir, &sent.seen.label, fate);
        if let Some(detail) = &sent.seen.detail {
            let text = format!("{:<16} {detail:<44} {}", sent.label, fate_text());
            self.trace.lock().events.push(crate::trace::Event {
                at_ms: sent.now_ms,
                source: Source::Net,
                text,
            });
        }
    }
}

/// Draws a Bernoulli trial; a rate of zero (or none) draws nothing, so turning a fault kind
/// off does not shift the rest of the random stream more than it must.
fn chance(rng: &mut StdRng, rate: Option<f64>) -> bool {
    match rate {
        Some(p) if p > 0.0 => rng.gen_bool(p.min(1.0)),
        _ => false,
    }
}

/// What the network reads of a frame.
struct SeenFrame {
    /// How frames of its kind are counted: `call ListOperatingSystems`, `reply ?`, `ping`, …
    label: Arc<str>,
    /// Its trace line, when the trace keeps frames: `call#3 Register 120B`.
    detail: Option<String>,
    kind: Option<Kind>,
    /// For a successful reply to a call this link carried (or for a `ReportBootImages`
    /// call): the method, for the oracle.
    replied_to: Option<Arc<str>>,
}

/// Count labels by kind and method, and method names, made once each: a frame's label and
/// method cost a short scan, and nothing is allocated on a hit.
#[derive(Default)]
struct Labels {
    /// `(kind, method, label)`, the method one of `methods`: a few dozen.
    labels: Vec<(u8, Arc<str>, Arc<str>)>,
    /// Every method a frame carried: a handful.
    methods: Vec<Arc<str>>,
}

impl Labels {
    fn get(&mut self, word: &'static str, kind: u8, method: &str) -> Arc<str> {
        // Pings, pongs and undecodable frames carry no method: their kind is their label.
        let bare = [Kind::Ping as u8, Kind::Pong as u8, u8::MAX].contains(&kind);
        let known = (self.labels.iter()).find(|(k, m, _)| *k == kind && (bare || same(m, method)));
        if let Some((_, _, label)) = known {
            return label.clone();
        }
        let label: Arc<str> = if bare {
            word.into()
        } else {
            format!("{word} {method}").into()
        };
        let method = self.method(method);
        self.labels.push((kind, method, label.clone()));
        label
    }

    /// The one shared copy of the method name `name`.
    fn method(&mut self, name: &str) -> Arc<str> {
        if let Some(method) = self.methods.iter().find(|m| same(m, name)) {
            return method.clone();
        }
        let method: Arc<str> = name.into();
        self.methods.push(method.clone());
        method
    }
}

/// Whether the shared name `shared` is `name`: found by its address when `name` was read
/// from it (a call's or a reply's method), without comparing bytes.
fn same(shared: &Arc<str>, name: &str) -> bool {
    std::ptr::eq(&**shared, name) || &**shared == name
}

/// Reads a frame's envelope: its kind and method, the call it answers. `keep` asks for its
/// trace line too.
fn read_frame(
    frame: &[u8],
    dir: Dir,
    link: &mut LinkEntry,
    labels: &mut Labels,
    keep: bool,
) -> SeenFrame {
    let size = frame.len();
    let decoded = match peek_header(frame) {
        Some((id, kind, method)) => Some((id, kind, std::borrow::Cow::Borrowed(method))),
        None => Envelope::decode(frame)
            .ok()
            .map(|e| (e.id, e.kind, std::borrow::Cow::Owned(e.method))),
    };
    let Some((id, kind, method)) = decoded else {
        return SeenFrame {
            label: labels.get("undecodable", u8::MAX, ""),
            detail: keep.then(|| format!("undecodable {size}B")),
            kind: None,
            replied_to: None,
        };
    };
    let interned;
    let (word, named): (&'static str, &str) = match kind {
        Kind::Call => {
            interned = labels.method(&method);
            link.calls[dir as usize].insert(id, interned.clone());
            ("call", &interned)
        }
        Kind::Reply | Kind::Error => {
            let other = 1 - dir as usize;
            let called = link.calls[other].remove(&id);
            let word = if kind == Kind::Reply {
                "reply"
            } else {
                "error"
            };
            let name = called.as_deref().unwrap_or("?");
            let label = labels.get(word, kind as u8, name);
            let detail = keep.then(|| format!("{word}#{id} {name} {size}B"));
            if let Some(m) = &called {
                link.replied[other].insert(id, m.clone());
            }
            let replied_to = match (kind, called) {
                (Kind::Reply, Some(m)) => Some(m),
                (Kind::Reply, None) => link.replied[other].get(&id).cloned(),
                _ => None,
            };
            return SeenFrame {
                label,
                detail,
                kind: Some(kind),
                replied_to,
            };
        }
        Kind::Notify => ("notify", &method),
        Kind::Ping => ("ping", ""),
        Kind::Pong => ("pong", ""),
        Kind::Handshake => ("handshake", &method),
    };
    let detail = keep.then(|| match kind {
        Kind::Call => format!("call#{id} {named} {size}B"),
        Kind::Ping | Kind::Pong => format!("{word}#{id}"),
        _ => format!("{word} {named} {size}B"),
    });
    let label = labels.get(word, kind as u8, named);
    // The oracle names a `ReportBootImages` call as the trace counts it.
    let report = kind == Kind::Call && dir == Dir::Up && named == "ReportBootImages";
    SeenFrame {
        replied_to: report.then(|| label.clone()),
        label,
        detail,
        kind: Some(kind),
    }
}

/// The id, kind and method of an envelope frame (`[id, kind, method, body]`, CBOR), read
/// from its head without copying the body; `None` when it is not in that plain form (the
/// caller then decodes it in full).
fn peek_header(frame: &[u8]) -> Option<(u64, Kind, &str)> {
    let (&first, mut rest) = frame.split_first()?;
    if first != 0x84 {
        return None;
    }
    let id = take_head(&mut rest, 0)?;
    let kind = Kind::from_wire(take_head(&mut rest, 0)?)?;
    let len = usize::try_from(take_head(&mut rest, 3)?).ok()?;
    let method = rest.get(..len)?;
    let mut body = &rest[len..];
    let method = std::str::from_utf8(method).ok()?;
    let body_len = take_head(&mut body, 2)?;
    (u64::try_from(body.len()).ok()? == body_len).then_some((id, kind, method))
}

/// One CBOR item head of major type `major`: its argument.
fn take_head(input: &mut &[u8], major: u8) -> Option<u64> {
    let (&byte, rest) = input.split_first()?;
    if byte >> 5 != major {
        return None;
    }
    let width = match byte & 0x1f {
        n @ 0..=23 => {
            *input = rest;
            return Some(u64::from(n));
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    *input = &rest[width..];
    Some(bytes.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
}

/// Moves one direction's frames from its sink to its stream at their delivery times.
async fn carry(
    mut queued: mpsc::UnboundedReceiver<Queued>,
    out: mpsc::UnboundedSender<Bytes>,
    mut cut: oneshot::Receiver<()>,
) {
    let mut in_flight: BTreeMap<(Instant, u64), Bytes> = BTreeMap::new();
    let mut seq = 0u64;
    let mut open = true;
    // The timer below is made anew each turn on purpose: where a timer sits among those due
    // at the same millisecond decides which task wakes first, so keeping one and resetting it
    // would change the traces.
    let idle_wake = Instant::now();
    loop {
        if !open && in_flight.is_empty() {
            return;
        }
        let next = in_flight.keys().next().map(|(at, _)| *at);
        // Without a frame in flight the timer branch is off: any instant will do, and reading
        // the clock would cost a lock.
        let wake = next.unwrap_or(idle_wake);
        tokio::select! {
            biased;
            _ = &mut cut => return,
            item = queued.recv(), if open => match item {
                Some((at, frame)) => {
                    in_flight.insert((at, seq), frame);
                    seq += 1;
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(wake), if next.is_some() => {
                let now = Instant::now();
                while let Some(entry) = in_flight.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let _ = out.send(entry.remove());
                }
            }
        }
    }
}

struct SimSink {
    net: SimNetwork,
    link: u64,
    dir: Dir,
    queue: Option<mpsc::UnboundedSender<Queued>>,
}

impl Sink<Bytes> for SimSink {
    type Error = NetError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(match &self.queue {
            Some(q) if !q.is_closed() => Ok(()),
            _ => Err(NetError::Closed),
        })
    }

    fn start_send(self: Pin<&mut Self>, frame: Bytes) -> Result<(), NetError> {
        let Some(queue) = &self.queue else {
            return Err(NetError::Closed);
        };
        self.net.send(self.link, self.dir, frame, queue)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), NetError>> {
        self.queue = None;
        Poll::Ready(Ok(()))
    }
}

struct SimStream {
    frames: mpsc::UnboundedReceiver<Bytes>,
}

impl Stream for SimStream {
    type Item = Result<Bytes, NetError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.frames.poll_recv(cx).map(|f| f.map(Ok))
    }
}

enum DialFailure {
    Refused(String),
    TimedOut(Duration),
}

/// The cluster an attacker's link name impersonates.
fn impostor_of(link: &str) -> Option<&str> {
    link.strip_prefix("impostor(")?.strip_suffix(')')
}

/// Dials the region from one cluster (or an attacker).
pub struct SimDialer {
    net: SimNetwork,
    cluster: String,
    /// What the dialer presents as TLS would: `None` for a plain link.
    credential: Option<CredentialSlot>,
}

impl Dialer for SimDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, Result<FrameConn, NetError>> {
        let credential = self
            .credential
            .as_ref()
            .and_then(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).clone());
        let result = self.net.connect(&self.cluster, addr, credential);
        Box::pin(async move {
            match result {
                Ok(conn) => Ok(conn),
                Err(DialFailure::Refused(why)) => {
                    Err(io_error(std::io::ErrorKind::ConnectionRefused, why))
                }
                Err(DialFailure::TimedOut(after)) => {
                    tokio::time::sleep(after).await;
                    Err(io_error(std::io::ErrorKind::TimedOut, "connect timed out"))
                }
            }
        })
    }
}

fn io_error(kind: std::io::ErrorKind, why: impl Into<String>) -> NetError {
    NetError::Io(std::io::Error::new(kind, why.into()))
}

/// A region's accepting end.
pub struct SimListener {
    incoming: mpsc::UnboundedReceiver<FrameConn>,
    addr: String,
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<FrameConn, NetError>> {
        Box::pin(async move { self.incoming.recv().await.ok_or(NetError::Closed) })
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}
