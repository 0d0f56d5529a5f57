//! The region actor: the driver of the region's state machine (`state::RegionState`). It moves
//! messages, timers and store calls, and keeps each link's `Peer`; every rule about clusters,
//! links and answers is in `state`. It accepts links (handshake slots in `slots`), serves what
//! clusters send (checked by `reports`), runs the fan-outs (the periodic refresh and the live
//! read) and persists what the state machine says changed.
//!
//! Layout: settings and the actor; its helpers (accept, register, serve, persist, fan out);
//! then one `impl Handler<Msg>` per message, internal ones first, then those the service sends
//! (`CachedOsystems`, `LiveOsystems`, `ListClusters`, `ListHeldImages`, `ConnectedPeers`, `Now`).

pub mod answer;
pub mod deadline;
pub mod edge;
pub mod identity;
pub mod images;
pub mod license;
pub mod nodes;
pub mod preseed;
pub mod regions;
pub mod render;
mod reports;
pub mod service;
pub mod settings;
mod settling;
mod slots;
pub mod state;
pub mod template;

use actix::prelude::*;
use futures::future::{FutureExt, LocalBoxFuture};
use futures::stream::{FuturesUnordered, StreamExt};
use osmesh_core::mesh::{ClusterAnswer, ClusterReport, MeshView, NoAnswerReason};
use osmesh_core::ClusterId;
use osmesh_net::envelope::{decode_body, encode_body};
use osmesh_net::handshake::{accept_handshake, Authenticated, HandshakeConfig, HandshakeError};
use osmesh_net::limits::{source_of, RateLimitedWarn, MAX_LINKS, MAX_TEMPLATE_NAMES_PER_CLUSTER};
use osmesh_net::messages::{
    method, Ack, ListBootImages, ListOperatingSystems, Register, ReportBootImages,
    ReportPreseedTemplates,
};
use osmesh_net::peer::{spawn_peer, Incoming, Peer, PeerConfig};
use osmesh_net::{FrameConn, Listener, RpcError};
use rand::rngs::StdRng;
use rand::RngCore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::connection::{Connection, InboundCall, LinkClosed, LinkId};
use crate::store::{
    ClusterSnapshot, ClusterTemplate, PreseedOutcome, RegionStore, StoreCall, StoreError,
    StoreHandle,
};
use slots::{HandshakeSlots, SlotRefusal};
use state::{
    FanoutTiming, KnownCluster, LinkClosedOutcome, LinkRole, RegionEvent, RegionState,
    RegisterRefusal,
};

pub use answer::{ClusterPart, ClusterStatus, OsystemsAnswer, ReadPath};
pub use osmesh_net::limits::{MAX_HANDSHAKES_PER_SOURCE, MAX_PENDING_HANDSHAKES};
pub use state::{no_answer_reason, HeldSnapshot};

/// The deadline for the periodic refresh of each connected cluster's snapshot.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an authenticated link may take to send its `Register` before it is closed. A
/// cluster registers at once after the handshake (it gives the call 30 s itself); a link that
/// never registers would otherwise hold one of `MAX_LINKS` for ever.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct RegionSettings {
    pub name: String,
    pub handshake: HandshakeConfig,
    pub peer: PeerConfig,
    /// How often the region re-reads every connected cluster, besides their pushes.
    pub refresh_interval: Duration,
}

/// A result ready now, or one that comes once a store call has run on the store's threads.
/// The simulator's store runs inline, so there it is always `Now`.
enum Deferred<R> {
    Now(R),
    /// Resolves, once the store call has run, to what applies its result to the actor.
    Later(LocalBoxFuture<'static, Continuation<R>>),
}

/// The rest of an operation once its store call has run: applied to the actor.
type Continuation<R> = Box<dyn FnOnce(&mut RegionActor) -> R>;

impl<R: 'static> Deferred<R> {
    fn map<S: 'static>(self, f: impl FnOnce(R) -> S + 'static) -> Deferred<S> {
        match self {
            Deferred::Now(r) => Deferred::Now(f(r)),
            Deferred::Later(fut) => Deferred::Later(Box::pin(fut.map(move |then| {
                Box::new(move |act: &mut RegionActor| f(then(act))) as Continuation<S>
            }))),
        }
    }
}

pub struct RegionActor {
    settings: RegionSettings,
    store: StoreHandle,
    clock: Clock,
    rng: StdRng,
    /// The clusters, links and answers; every domain rule.
    state: RegionState,
    /// The peer of every link the state machine counts (unregistered or current). A peer is
    /// removed when the state machine drops its link (timeout, refusal, replacement) or the
    /// link closes.
    peers: BTreeMap<LinkId, Peer>,
    slots: HandshakeSlots,
    /// Drawn at start: with the state's epoch, it names a cached answer (`CachedValidator`).
    /// Not from `rng`, which the simulator seeds: nothing simulated reads it.
    instance: u64,
    /// Store calls in flight, whose results come back through one stream (`settling`).
    settling: settling::Settling<Continuation<()>>,
    /// One warning a second for refused and failed handshakes, however many there are.
    refusal_warn: RateLimitedWarn,
    failure_warn: RateLimitedWarn,
    /// One warning a second for `Register`s refused (duplicate or mismatched identity).
    register_warn: RateLimitedWarn,
    listener: Option<Box<dyn Listener>>,
    /// This region's registry id and every live region's endpoints, for clusters (issue 15).
    mesh: regions::RegionMesh,
    /// The live reads' recent merge times, reserved inside their deadlines.
    live_reserve: deadline::LiveReserve,
}

impl RegionActor {
    /// A region over `store`, remembering every cluster the store knows (as disconnected).
    pub fn new(
        settings: RegionSettings,
        store: StoreHandle,
        clock: Clock,
        rng: StdRng,
        listener: Box<dyn Listener>,
    ) -> Self {
        // At start-up, before any link exists: read on this thread.
        let known = match store.direct().list_clusters() {
            Ok(records) => records.into_iter().map(known_cluster).collect(),
            Err(err) => {
                tracing::error!(%err, "cannot read known clusters from the store");
                Vec::new()
            }
        };
        RegionActor {
            settings,
            store,
            clock,
            rng,
            state: RegionState::restore(known),
            peers: BTreeMap::new(),
            slots: HandshakeSlots::default(),
            instance: rand::random(),
            settling: settling::Settling::new(),
            refusal_warn: RateLimitedWarn::default(),
            failure_warn: RateLimitedWarn::default(),
            register_warn: RateLimitedWarn::default(),
            listener: Some(listener),
            mesh: regions::RegionMesh::default(),
            live_reserve: deadline::LiveReserve::default(),
        }
    }

    fn accept_loop(&mut self, ctx: &mut Context<Self>) {
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        let me = ctx.address();
        ctx.spawn(
            async move {
                loop {
                    match listener.accept().await {
                        Ok(conn) => me.do_send(Dialed { conn }),
                        Err(err) => {
                            tracing::warn!(%err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }

    /// Counts and warns of a handshake not started for want of a slot.
    fn handshake_refused(&mut self, refusal: SlotRefusal, source: &str, peer_addr: &str) {
        let counters = &self.settings.peer.counters;
        let message = match refusal {
            SlotRefusal::AllTaken => {
                osmesh_net::metrics::handshake_refused("too_many_pending");
                counters.handshake_refused_global();
                format!("all {MAX_PENDING_HANDSHAKES} handshake slots taken; closing")
            }
            SlotRefusal::SourceFull => {
                osmesh_net::metrics::handshake_refused("too_many_from_source");
                counters.handshake_refused_per_source();
                format!(
                    "{MAX_HANDSHAKES_PER_SOURCE} handshakes from {source} under way already; closing"
                )
            }
        };
        self.refusal_warn.warn(peer_addr, &message);
    }

    /// Starts the connection actor of a link that completed the handshake. The link is only
    /// "unregistered" until its `Register` succeeds (`register`); it is closed if none arrives
    /// within `REGISTER_TIMEOUT`.
    fn on_authenticated(&mut self, auth: Authenticated, ctx: &mut Context<Self>) {
        let identity = ClusterId::new(auth.peer_identity.clone());
        let Ok(link) = self.state.handle_authenticated(identity) else {
            let message = format!("all {MAX_LINKS} cluster links are taken; closing");
            self.refusal_warn.warn(&auth.conn.peer_addr, &message);
            return;
        };
        let (peer, incoming) = spawn_peer(auth, self.settings.peer.clone());
        let me = ctx.address();
        Connection::start(
            link,
            peer.clone(),
            incoming,
            me.clone().recipient(),
            me.recipient(),
        );
        self.peers.insert(link, peer);
        // A task of its own, not `ctx.run_later`: actix polls every future spawned in an
        // actor's context at each of its wake-ups, so one timer per link made every message
        // cost O(links) while links were new (10,000 clusters connecting: a third of the
        // region's time polling sleeps, and registrations timed out on the cluster side).
        let me = ctx.address();
        actix::spawn(async move {
            tokio::time::sleep(REGISTER_TIMEOUT).await;
            me.do_send(RegisterDeadline(link));
        });
    }

    /// Closes `link` and forgets its peer.
    fn close_link(&mut self, link: LinkId) {
        if let Some(peer) = self.peers.remove(&link) {
            peer.close();
        }
    }

    /// A call on an unregistered link: only `Register` is served, and a refused one closes
    /// the link (after the refusal is written, so the peer reads why).
    fn serve_unregistered(&mut self, link: LinkId, call: Incoming, ctx: &mut Context<Self>) {
        let started = tokio::time::Instant::now();
        let Incoming {
            method,
            body,
            responder,
            ..
        } = call;
        let result = self.register(link, &method, &body);
        self.settle(ctx, result, move |act, result| {
            osmesh_net::metrics::record_served(&method, started, &result);
            let refused = result.is_err();
            if let Some(responder) = responder {
                responder.reply(result);
            }
            if refused {
                act.state.handle_register_refused(link);
                act.close_link(link);
            }
        });
    }

    /// The `Register` of an unregistered link (rules: `RegionState::check_register`; the
    /// credential: `identity::admit`). Once stored, the link becomes its cluster's link.
    fn register(
        &mut self,
        link: LinkId,
        method_name: &str,
        body: &[u8],
    ) -> Deferred<Result<bytes::Bytes, RpcError>> {
        if method_name != method::REGISTER {
            return Deferred::Now(Err(RpcError::bad_request(format!(
                "{method_name:?} before Register: a link must register first"
            ))));
        }
        let req: Register = match decode_body(body) {
            Ok(req) => req,
            Err(err) => return Deferred::Now(Err(err)),
        };
        if let Err(err) = self.check_register(link, &req) {
            return Deferred::Now(Err(err));
        }
        // Identity comes from the credential: a read of the enrollment on record (small, and
        // bounded by the handshake slots), on this thread before the write is queued.
        let credential = self.peers.get(&link).and_then(|p| p.credential());
        if let Err(err) = identity::admit(self.store.direct(), &req.cluster, credential) {
            return Deferred::Now(Err(err));
        }
        let now = self.clock.now_ms();
        let (id, name) = (req.cluster.clone(), req.name.clone());
        self.after_store(
            &req.cluster.clone(),
            move |store| store.upsert_cluster_seen(&id, &name, now),
            move |act, stored| {
                stored.map_err(|e| RpcError::internal(format!("store: {e}")))?;
                act.complete_register(link, req, now)
            },
        )
    }

    /// The state machine's `check_register`, with the driver's view of which links are alive.
    fn check_register(&mut self, link: LinkId, req: &Register) -> Result<(), RpcError> {
        let peers = &self.peers;
        let alive = |live: LinkId| peers.get(&live).is_some_and(|p| !p.is_closed());
        match self.state.check_register(link, req, alive) {
            Ok(()) => Ok(()),
            Err(refusal) => Err(self.register_refused(refusal)),
        }
    }

    /// Makes `link` its cluster's link once its registration is stored. Checked again here:
    /// with the store on its own threads, the link may have closed, or another link of the
    /// same identity registered, while the write ran.
    fn complete_register(
        &mut self,
        link: LinkId,
        req: Register,
        now: i64,
    ) -> Result<bytes::Bytes, RpcError> {
        self.check_register(link, &req)?;
        if let Some(registration) = self.state.handle_register(link, req.name, now) {
            // Closed already (its `LinkClosed` is on its way): the new link takes over.
            if let Some(old_link) = registration.replaced {
                self.close_link(old_link);
            }
            let cluster = registration.cluster;
            tracing::info!(cluster = ?cluster.as_str(), "cluster registered");
        }
        Ok(self.registered())
    }

    /// The cached answer; a merge it had to redo teaches the live reserve its cost.
    fn cached_answer(&mut self) -> OsystemsAnswer {
        let started = tokio::time::Instant::now();
        let answer = self.state.cached_answer(self.clock.now_ms());
        self.report_events(started.elapsed());
        answer
    }

    fn validator(&self, epoch: u64) -> CachedValidator {
        CachedValidator {
            instance: self.instance,
            epoch,
        }
    }

    fn registered(&self) -> bytes::Bytes {
        encode_body(&self.mesh.registered(&self.settings.name))
    }

    /// Counts and warns of a refused duplicate; the refusal as the peer reads it.
    fn register_refused(&mut self, refusal: RegisterRefusal) -> RpcError {
        if let RegisterRefusal::Duplicate { cluster, live_link } = &refusal {
            osmesh_net::metrics::handshake_refused("duplicate_identity");
            self.settings.peer.counters.register_refused_duplicate();
            let message = format!(
                "refused a second link for cluster {:?}: link {live_link} is alive",
                cluster.as_str()
            );
            self.register_warn
                .warn(&format!("{:?}", cluster.as_str()), &message);
        }
        refusal.into()
    }

    /// A call or notification from a registered cluster. Calls that write wait for their
    /// store call before they are answered (inline in the simulator; on the store's threads
    /// in regiond).
    fn serve_registered(&mut self, cluster: ClusterId, call: Incoming, ctx: &mut Context<Self>) {
        let started = tokio::time::Instant::now();
        let Incoming {
            method,
            body,
            responder,
            ..
        } = call;
        let result = match self.answer(&cluster, &method, &body) {
            Ok(answer) => answer,
            Err(err) => Deferred::Now(Err(err)),
        };
        self.settle(ctx, result, move |_, result| {
            osmesh_net::metrics::record_served(&method, started, &result);
            match responder {
                Some(responder) => responder.reply(result),
                None => {
                    if let Err(err) = result {
                        tracing::debug!(cluster = ?cluster.as_str(), ?method, ?err, "notification failed");
                    }
                }
            }
        });
    }

    fn answer(
        &mut self,
        cluster: &ClusterId,
        method_name: &str,
        body: &[u8],
    ) -> Result<Deferred<Result<bytes::Bytes, RpcError>>, RpcError> {
        let now = self.clock.now_ms();
        if !self.state.handle_heard(cluster, now) {
            return Err(RpcError::internal("link without a cluster"));
        }
        let ack = || encode_body(&Ack {});
        match method_name {
            method::REGISTER => self.reregister(cluster, body, now),
            method::REPORT_BOOT_IMAGES => {
                let held = self.take_image_report(cluster, body, now)?;
                Ok(held.map(move |()| Ok(ack())))
            }
            method::REPORT_PRESEED_TEMPLATES => {
                let req: ReportPreseedTemplates = decode_body(body)?;
                let recorded = self.record_templates(cluster, req, now)?;
                Ok(recorded.map(move |stored| stored.map(|()| ack())))
            }
            other => Err(RpcError::unknown_method(other)),
        }
    }

    /// `Register` on a registered link: only the name may change.
    fn reregister(
        &mut self,
        cluster: &ClusterId,
        body: &[u8],
        now: i64,
    ) -> Result<Deferred<Result<bytes::Bytes, RpcError>>, RpcError> {
        let req: Register = decode_body(body)?;
        reports::check_register(cluster, &req)?;
        self.state.handle_rename(cluster, req.name.clone());
        let registered = self.registered();
        let id = cluster.clone();
        Ok(self.after_store(
            cluster,
            move |store| store.upsert_cluster_seen(&id, &req.name, now),
            move |_, stored| {
                stored.map_err(|e| RpcError::internal(format!("store: {e}")))?;
                Ok(registered)
            },
        ))
    }

    /// A pushed `ReportBootImages`: held as the cluster's snapshot at once, and stored (done
    /// when the result is). Names are checked at the edge; an image whose purposes are all
    /// unknown is skipped, not the report.
    fn take_image_report(
        &mut self,
        cluster: &ClusterId,
        body: &[u8],
        now: i64,
    ) -> Result<Deferred<()>, RpcError> {
        let mut req: ReportBootImages = decode_body(body)?;
        reports::check_image_report(&req)?;
        edge::check_image_report_names(&req)?;
        let skipped = edge::drop_images_without_known_purposes(&mut req);
        if skipped > 0 {
            tracing::debug!(cluster = ?cluster.as_str(), skipped, "images with no known purpose skipped");
        }
        let stored = ClusterSnapshot {
            osystems: req.osystems.into(),
            images: req.images.into(),
        };
        let persisted = self.save_snapshot(cluster, stored.clone(), now);
        let report = ClusterReport {
            osystems: stored.osystems,
            images: stored.images,
        };
        self.state.handle_report(cluster, report, now);
        Ok(persisted)
    }

    /// Stores `snapshot` as `cluster`'s, received at `at_ms`; a failure is logged.
    fn save_snapshot(
        &mut self,
        cluster: &ClusterId,
        snapshot: ClusterSnapshot,
        at_ms: i64,
    ) -> Deferred<()> {
        let id = cluster.clone();
        self.after_store(
            cluster,
            move |store| store.save_snapshot(&id, &snapshot, at_ms),
            |_, result| {
                if let Err(err) = result {
                    tracing::error!(%err, "cannot persist a cluster's snapshot");
                }
            },
        )
    }

    /// Stores a template report whole, in one transaction, or refuses it whole: over the
    /// per-report or per-cluster bound, or with a name or content that breaks its field rule.
    fn record_templates(
        &mut self,
        cluster: &ClusterId,
        report: ReportPreseedTemplates,
        now: i64,
    ) -> Result<Deferred<Result<(), RpcError>>, RpcError> {
        reports::check_template_report(&report)?;
        edge::check_template_report_names(&report)?;
        let id = cluster.clone();
        // The arrival check runs with the store call (on the store's threads in regiond, so
        // the renders never hold this actor's thread), fuel-bounded like any render.
        let job = move |store: &dyn RegionStore| {
            let mut rows = store.list_cluster_templates()?;
            rows.retain(|r| r.cluster == id);
            let refusals = reports::arrival_refusals(&report, &rows);
            let templates: Vec<_> = report
                .templates
                .iter()
                .zip(&refusals)
                .map(|(t, refusal)| ClusterTemplate {
                    name: &t.name,
                    osystem: t.osystem.as_deref(),
                    content: &t.content,
                    refusal: refusal.as_deref(),
                })
                .collect();
            store.record_cluster_templates(&templates, &id, now, MAX_TEMPLATE_NAMES_PER_CLUSTER)
        };
        let id = cluster.clone();
        Ok(self.after_store(cluster, job, move |_, stored| match stored {
            Ok(outcomes) => {
                let refused = outcomes
                    .iter()
                    .filter(|o| **o == PreseedOutcome::Refused)
                    .count();
                if refused > 0 {
                    tracing::warn!(cluster = ?id.as_str(), refused, "templates failed their arrival check; see /api/v1/cluster-templates");
                }
                Ok(())
            }
            Err(StoreError::Invalid(message)) => Err(RpcError::bad_request(message)),
            Err(err) => {
                tracing::error!(cluster = ?id.as_str(), %err, "cannot record preseed templates");
                Err(RpcError::internal(format!("store: {err}")))
            }
        }))
    }

    /// Runs `job` on the store in `cluster`'s lane and hands its result to `then`: in this
    /// same step when the store runs inline (the simulator: no thread, no jump of virtual
    /// time), else once the store's thread has done it, this thread serving links meanwhile.
    fn after_store<T: Send + 'static, R: 'static>(
        &mut self,
        cluster: &ClusterId,
        job: impl FnOnce(&dyn RegionStore) -> Result<T, StoreError> + Send + 'static,
        then: impl FnOnce(&mut Self, Result<T, StoreError>) -> R + 'static,
    ) -> Deferred<R> {
        match self.store.call(cluster.as_str(), job) {
            StoreCall::Done(result) => Deferred::Now(then(self, result)),
            StoreCall::Pending(rx) => Deferred::Later(Box::pin(async move {
                let received = rx.await.unwrap_or(Err(StoreError::Stopped));
                Box::new(move |act: &mut RegionActor| then(act, received)) as Continuation<R>
            })),
        }
    }

    /// Hands a deferred result to `finish`: now, or when it arrives (through `settling`).
    fn settle<R: 'static>(
        &mut self,
        _ctx: &mut Context<Self>,
        result: Deferred<R>,
        finish: impl FnOnce(&mut Self, R) + 'static,
    ) {
        match result {
            Deferred::Now(result) => finish(self, result),
            Deferred::Later(fut) => self.settling.push(Box::pin(fut.map(move |then| {
                Box::new(move |act: &mut RegionActor| {
                    let result = then(act);
                    finish(act, result);
                }) as Continuation<()>
            }))),
        }
    }

    /// Asks every known cluster now and resolves by `timeout` however many hang: answers
    /// are taken as they arrive, and at the deadline every cluster that has not answered is
    /// `Timeout` at once. (Waiting for every call's own timeout, as `join_all` did, let a
    /// saturated region answer seconds late: 10,000 clusters' timers firing and their calls
    /// unwinding before the answer could leave.) In id order, as `fanout_targets`.
    fn ask_all(
        &self,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Vec<(ClusterId, ClusterAnswer)>> {
        let targets = self.state.fanout_targets();
        let ids: Vec<ClusterId> = targets.iter().map(|(id, _)| id.clone()).collect();
        let mut asks: FuturesUnordered<_> = targets
            .into_iter()
            .map(|(id, link)| {
                let peer = link.and_then(|link| self.peers.get(&link).cloned());
                ask_cluster(id, peer, timeout)
            })
            .collect();
        async move {
            let mut answers = BTreeMap::new();
            let collect = async {
                while let Some((id, answer)) = asks.next().await {
                    answers.insert(id, answer);
                }
            };
            // Err: the deadline came first; the calls still out are dropped (cancelled).
            let _ = tokio::time::timeout(timeout, collect).await;
            ids.into_iter()
                .map(|id| {
                    let answer = answers
                        .remove(&id)
                        .unwrap_or(ClusterAnswer::NoAnswer(NoAnswerReason::Timeout));
                    (id, answer)
                })
                .collect()
        }
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let asks = self.ask_all(REFRESH_TIMEOUT);
        ctx.spawn(asks.into_actor(self).map(|answers, act, ctx| {
            act.hold_answers(&answers, ctx);
        }));
    }

    /// Hands a fan-out's answers to the state machine and persists the snapshots it changed.
    fn hold_answers(&mut self, answers: &[(ClusterId, ClusterAnswer)], ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        for cluster in self.state.handle_answers(answers, now) {
            let Some(held) = self.state.snapshot(&cluster) else {
                continue;
            };
            let stored = ClusterSnapshot {
                osystems: held.osystems.clone(),
                images: held.images.clone(),
            };
            let saved = self.save_snapshot(&cluster, stored, held.received_at_ms);
            self.settle(ctx, saved, |_, ()| {});
        }
    }

    /// Reports what the state machine says happened.
    /// `took` is how long the state machine's call that made them ran: a merge from scratch
    /// in it teaches the live reads' reserve what a merge costs (`deadline`).
    fn report_events(&mut self, took: Duration) {
        while let Some(event) = self.state.poll_event() {
            match event {
                RegionEvent::ViewRebuilt => {
                    crate::metrics::view_rebuilt();
                    self.live_reserve.merged(took);
                }
                RegionEvent::LiveMerged => self.live_reserve.merged(took),
            }
        }
    }
}

/// A cluster as the store remembers it, for `RegionState::restore`.
pub(crate) fn known_cluster(record: crate::store::ClusterRecord) -> KnownCluster {
    KnownCluster {
        id: record.id,
        name: record.name,
        last_seen_ms: record.last_seen_ms,
        snapshot: record.snapshot.map(|(s, at)| HeldSnapshot {
            osystems: s.osystems,
            images: s.images,
            received_at_ms: at,
        }),
    }
}

/// One cluster's live answer: its OS list and images, asked concurrently under one deadline.
async fn ask_cluster(
    id: ClusterId,
    peer: Option<Peer>,
    timeout: Duration,
) -> (ClusterId, ClusterAnswer) {
    let Some(peer) = peer else {
        return (id, ClusterAnswer::NoAnswer(NoAnswerReason::NotConnected));
    };
    // Memoized: a reply with the same bytes as this link's last one is not decoded again.
    let (osystems, images) = futures::join!(
        peer.call_memo(&ListOperatingSystems {}, timeout),
        peer.call_memo(&ListBootImages {}, timeout)
    );
    let answer = match (osystems, images) {
        (Ok(os), Ok(im)) => ClusterAnswer::Answered(ClusterReport {
            osystems: os.osystems.clone(),
            images: im.images.clone(),
        }),
        (Err(err), _) | (_, Err(err)) => ClusterAnswer::NoAnswer(no_answer_reason(err)),
    };
    (id, answer)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Actor for RegionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.add_stream(self.settling.stream());
        self.accept_loop(ctx);
        ctx.run_interval(self.settings.refresh_interval, |act, ctx| act.refresh(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        for (_, link) in self.state.connected_links() {
            if let Some(peer) = self.peers.get(&link) {
                peer.close();
            }
        }
        Running::Stop
    }
}

impl Handler<crate::Shutdown> for RegionActor {
    type Result = ();

    fn handle(&mut self, _msg: crate::Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A transport connection arrived; the handshake has not started.
#[derive(Message)]
#[rtype(result = "()")]
struct Dialed {
    conn: FrameConn,
}

impl Handler<Dialed> for RegionActor {
    type Result = ();

    /// Starts the handshake if a slot is free, globally and for the peer's source address;
    /// otherwise the connection is closed at once (dropped), counted, and warned of at most
    /// once a second.
    fn handle(&mut self, msg: Dialed, ctx: &mut Self::Context) {
        let source = source_of(&msg.conn.peer_addr);
        if let Err(refusal) = self.slots.take(&source) {
            self.handshake_refused(refusal, &source, &msg.conn.peer_addr);
            return;
        }
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let handshake = self.settings.handshake.clone();
        let peer_addr = msg.conn.peer_addr.clone();
        // A task of its own whose outcome comes back as a message, not a future spawned in
        // the context: actix polls every such future at each of the actor's wake-ups, and up
        // to `MAX_PENDING_HANDSHAKES` handshakes under way made every message cost that many
        // polls of TLS handshakes.
        let me = ctx.address();
        actix::spawn(async move {
            let result = accept_handshake(msg.conn, &handshake, nonce).await;
            me.do_send(HandshakeDone {
                source,
                peer_addr,
                result,
            });
        });
    }
}

/// A handshake started by `Dialed` ended; its slot is free again.
#[derive(Message)]
#[rtype(result = "()")]
struct HandshakeDone {
    source: String,
    peer_addr: String,
    result: Result<Authenticated, HandshakeError>,
}

impl Handler<HandshakeDone> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: HandshakeDone, ctx: &mut Self::Context) {
        self.slots.release(&msg.source);
        match msg.result {
            Ok(auth) => self.on_authenticated(auth, ctx),
            Err(HandshakeError::Enrolled { identity }) => {
                tracing::info!(cluster = ?identity, "cluster enrolled: certificate issued");
            }
            Err(err) => {
                osmesh_net::metrics::handshake_failed(&err);
                self.settings.peer.counters.handshake_failed();
                let message = format!("handshake refused: {err}");
                self.failure_warn.warn(&msg.peer_addr, &message);
            }
        }
    }
}

impl Handler<InboundCall> for RegionActor {
    type Result = ();

    fn handle(&mut self, call: InboundCall, ctx: &mut Self::Context) {
        match self.state.link(call.link).cloned() {
            Some(LinkRole::Unregistered(_)) => {
                self.serve_unregistered(call.link, call.incoming, ctx)
            }
            Some(LinkRole::Registered(cluster)) => {
                self.serve_registered(cluster, call.incoming, ctx)
            }
            None => {}
        }
    }
}

impl Handler<LinkClosed> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: LinkClosed, ctx: &mut Self::Context) {
        self.peers.remove(&msg.link);
        let now = self.clock.now_ms();
        let LinkClosedOutcome::Disconnected {
            cluster,
            name,
            last_seen_ms,
        } = self.state.handle_link_closed(msg.link, now)
        else {
            return;
        };
        // `last_seen_ms` moves in memory with every frame; it is written here.
        let id = cluster.clone();
        let written = self.after_store(
            &cluster,
            move |store| store.record_cluster_last_seen(&id, &name, last_seen_ms),
            |_, result| {
                if let Err(err) = result {
                    tracing::error!(%err, "cannot persist a cluster's last seen");
                }
            },
        );
        self.settle(ctx, written, |_, ()| {});
        tracing::warn!(cluster = ?cluster.as_str(), "cluster disconnected");
    }
}

/// The cached OS view: every cluster's last snapshot, at once.
#[derive(Message)]
#[rtype(result = "OsystemsAnswer")]
pub struct CachedOsystems;

impl Handler<CachedOsystems> for RegionActor {
    type Result = MessageResult<CachedOsystems>;

    fn handle(&mut self, _msg: CachedOsystems, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.cached_answer())
    }
}

/// Names one cached answer, ages aside: a region instance and its state's epoch. Equal
/// validators mean equal cached answers; the instance is drawn at random when the actor
/// starts, so a restarted region never reuses an earlier one's epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedValidator {
    pub instance: u64,
    pub epoch: u64,
}

/// What a cached read's `ETag` and summary need, without every cluster's part.
#[derive(Clone, Debug)]
pub struct CachedHead {
    pub validator: CachedValidator,
    pub view: Arc<MeshView>,
    /// How many clusters the region knows.
    pub clusters: usize,
}

/// The cached view's validator, kept merge and cluster count: cheap at any size.
#[derive(Message)]
#[rtype(result = "CachedHead")]
pub struct CachedOsystemsHead;

impl Handler<CachedOsystemsHead> for RegionActor {
    type Result = MessageResult<CachedOsystemsHead>;

    fn handle(&mut self, _msg: CachedOsystemsHead, _ctx: &mut Self::Context) -> Self::Result {
        let started = tokio::time::Instant::now();
        let (epoch, view, clusters) = self.state.cached_head();
        self.report_events(started.elapsed());
        MessageResult(CachedHead {
            validator: self.validator(epoch),
            view,
            clusters,
        })
    }
}

/// The cached OS view with its validator, taken in the same step.
#[derive(Message)]
#[rtype(result = "(CachedValidator, OsystemsAnswer)")]
pub struct CachedOsystemsValidated;

impl Handler<CachedOsystemsValidated> for RegionActor {
    type Result = MessageResult<CachedOsystemsValidated>;

    fn handle(&mut self, _msg: CachedOsystemsValidated, _ctx: &mut Self::Context) -> Self::Result {
        let answer = self.cached_answer();
        MessageResult((self.validator(self.state.cached_epoch()), answer))
    }
}

/// The live OS view: ask every cluster now, answer by `timeout`.
#[derive(Message)]
#[rtype(result = "OsystemsAnswer")]
pub struct LiveOsystems {
    pub timeout: Duration,
}

impl Handler<LiveOsystems> for RegionActor {
    type Result = ResponseActFuture<Self, OsystemsAnswer>;

    /// Fans out (`ask_all`, one future per cluster under `msg.timeout`), then hands the
    /// answers to the state machine, which holds them and builds the live answer.
    /// The fan-out waits at most `LiveReserve::fanout_budget` of the deadline, so the merge
    /// after it fits inside the deadline (`deadline`).
    fn handle(&mut self, msg: LiveOsystems, _ctx: &mut Self::Context) -> Self::Result {
        let started = tokio::time::Instant::now();
        let asks = self.ask_all(self.live_reserve.fanout_budget(msg.timeout));
        Box::pin(asks.into_actor(self).map(move |answers, act, ctx| {
            let asked = tokio::time::Instant::now();
            crate::metrics::fanout_done(asked - started, &answers);
            act.hold_answers(&answers, ctx);
            let mut answer = act.state.live_answer(
                answers,
                act.clock.now_ms(),
                FanoutTiming {
                    deadline_ms: duration_ms(msg.timeout),
                    elapsed_ms: 0,
                },
            );
            act.report_events(asked.elapsed());
            answer.elapsed_ms = Some(duration_ms(started.elapsed()));
            answer
        }))
    }
}

/// A store call's result has come: its continuation runs (`settle`).
impl StreamHandler<Continuation<()>> for RegionActor {
    fn handle(&mut self, then: Continuation<()>, _ctx: &mut Self::Context) {
        then(self);
    }

    /// Never called: the stream waits for the next push instead of ending. Not stopping the
    /// actor (the default) is the safe side all the same.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

/// `REGISTER_TIMEOUT` after `link` was authenticated: closed if it has not registered.
#[derive(Message)]
#[rtype(result = "()")]
struct RegisterDeadline(LinkId);

impl Handler<RegisterDeadline> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: RegisterDeadline, _ctx: &mut Self::Context) {
        let link = msg.0;
        if let Some(cluster) = self.state.handle_register_timeout(link) {
            tracing::info!(?cluster, "no Register within {REGISTER_TIMEOUT:?}; closing");
            self.close_link(link);
        }
    }
}

/// The API rendered a live answer in this long: reserved inside the next live reads'
/// deadlines beside the merge (`deadline`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LiveRendered(pub Duration);

impl Handler<LiveRendered> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: LiveRendered, _ctx: &mut Self::Context) {
        self.live_reserve.rendered(msg.0);
    }
}

/// Every cluster the region knows, sorted by id.
#[derive(Message)]
#[rtype(result = "Vec<ClusterStatus>")]
pub struct ListClusters;

impl Handler<ListClusters> for RegionActor {
    type Result = MessageResult<ListClusters>;

    fn handle(&mut self, _msg: ListClusters, ctx: &mut Self::Context) -> Self::Result {
        if osmesh_core::hooks::region_actor_dies() {
            ctx.stop();
        }
        MessageResult(self.state.cluster_statuses(self.clock.now_ms()))
    }
}

/// Every known cluster's held images (its last snapshot), with whether it is connected.
#[derive(Message)]
#[rtype(result = "Vec<images::HeldImages>")]
pub struct ListHeldImages;

impl Handler<ListHeldImages> for RegionActor {
    type Result = MessageResult<ListHeldImages>;

    fn handle(&mut self, _msg: ListHeldImages, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.held_images(self.clock.now_ms()))
    }
}

/// The connected clusters' peers, for calls the service makes itself (license keys, preseeds).
#[derive(Message)]
#[rtype(result = "Vec<(ClusterId, Peer)>")]
pub struct ConnectedPeers;

impl Handler<ConnectedPeers> for RegionActor {
    type Result = MessageResult<ConnectedPeers>;

    fn handle(&mut self, _msg: ConnectedPeers, _ctx: &mut Self::Context) -> Self::Result {
        let peers = self
            .state
            .connected_links()
            .filter_map(|(id, link)| Some((id.clone(), self.peers.get(&link)?.clone())))
            .collect();
        MessageResult(peers)
    }
}

/// The region clock's now (unix ms), for the timestamps the service stores.
#[derive(Message)]
#[rtype(result = "i64")]
pub struct Now;

impl Handler<Now> for RegionActor {
    type Result = i64;

    fn handle(&mut self, _msg: Now, _ctx: &mut Self::Context) -> i64 {
        self.clock.now_ms()
    }
}
