//! The region actor: one entry per cluster it has ever seen (its link, if any, and its last
//! pushed snapshot), the two read paths over them (cached snapshots at once; live fan-out with
//! one deadline), and persistence of what clusters report.

pub mod edge;
pub mod identity;
pub mod images;
pub mod license;
pub mod nodes;
pub mod preseed;
pub mod regions;
pub mod render;
pub mod service;
pub mod settings;
pub mod template;

use actix::prelude::*;
use futures::future::join_all;
use osmesh_core::mesh::{ClusterAnswer, ClusterReport, MeshView, NoAnswerReason};
use osmesh_core::{BootImage, ClusterId, OsystemInfo};
use osmesh_net::envelope::{decode_body, encode_body};
use osmesh_net::handshake::{accept_handshake, Authenticated, HandshakeConfig};
use osmesh_net::limits::{
    source_of, RateLimitedWarn, MAX_IMAGES_PER_REPORT, MAX_LINKS, MAX_OSYSTEMS_PER_REPORT,
    MAX_TEMPLATES_PER_REPORT, MAX_TEMPLATE_NAMES_PER_CLUSTER,
};
use osmesh_net::messages::{
    method, Ack, ListBootImages, ListOperatingSystems, Register, ReportBootImages,
    ReportPreseedTemplates,
};
use osmesh_net::peer::{spawn_peer, Incoming, Peer, PeerConfig};
use osmesh_net::{ErrorKind, FrameConn, Listener, RpcError};
use rand::rngs::StdRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::connection::{Connection, InboundCall, LinkClosed, LinkId};
use crate::store::{
    ClusterSnapshot, ClusterTemplate, RegionStore, StoreCall, StoreError, StoreHandle,
};

pub use osmesh_api::osystems::{ClusterPart, ClusterStatus, OsystemsAnswer, ReadPath};
pub use osmesh_net::limits::{MAX_HANDSHAKES_PER_SOURCE, MAX_PENDING_HANDSHAKES};

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

/// A cluster's last report as the region holds it, and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldSnapshot {
    pub osystems: Vec<OsystemInfo>,
    pub images: Vec<BootImage>,
    pub received_at_ms: i64,
}

struct ClusterEntry {
    name: String,
    link: Option<(LinkId, Peer)>,
    snapshot: Option<HeldSnapshot>,
    last_seen_ms: i64,
    /// When the region last lost (or, after a restart, last heard from) this cluster; `None`
    /// while connected.
    disconnected_since_ms: Option<i64>,
}

impl ClusterEntry {
    fn peer(&self) -> Option<Peer> {
        self.link.as_ref().map(|(_, peer)| peer.clone())
    }
}

/// A result ready now, or one that comes once a store call has run on the store's threads.
/// The simulator's store runs inline, so there it is always `Now`.
enum Deferred<R> {
    Now(R),
    Later(Pin<Box<dyn ActorFuture<RegionActor, Output = R>>>),
}

impl<R: 'static> Deferred<R> {
    fn map<S: 'static>(self, f: impl FnOnce(R) -> S + 'static) -> Deferred<S> {
        match self {
            Deferred::Now(r) => Deferred::Now(f(r)),
            Deferred::Later(fut) => Deferred::Later(Box::pin(fut.map(move |r, _, _| f(r)))),
        }
    }
}

pub struct RegionActor {
    settings: RegionSettings,
    store: StoreHandle,
    clock: Clock,
    rng: StdRng,
    clusters: BTreeMap<ClusterId, ClusterEntry>,
    /// Registered links, each the current link of its cluster.
    links: BTreeMap<LinkId, ClusterId>,
    /// Authenticated links that have not yet registered: the identity they proved and their
    /// peer. A link becomes a cluster only when its `Register` succeeds; until then it is in
    /// no answer and no listing, and it is closed if it does not register in time.
    unregistered: BTreeMap<LinkId, (ClusterId, Peer)>,
    next_link: LinkId,
    /// Handshakes under way, in all and by source address (`limits::source_of`); an entry
    /// is removed when its count reaches zero, so the map holds only sources in handshake.
    pending_handshakes: usize,
    handshakes_by_source: BTreeMap<String, usize>,
    /// One warning a second for refused and failed handshakes, however many there are.
    refusal_warn: RateLimitedWarn,
    failure_warn: RateLimitedWarn,
    /// One warning a second for `Register`s refused (duplicate or mismatched identity).
    register_warn: RateLimitedWarn,
    listener: Option<Box<dyn Listener>>,
    /// The merged view of the clusters' snapshots, kept until a snapshot or a link changes, so
    /// a cached read costs no merge. Invariant: `None` or equal to a fresh merge.
    cached_view: Option<Arc<MeshView>>,
    /// This region's registry id and every live region's endpoints, for clusters (issue 15).
    mesh: regions::RegionMesh,
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
        let mut clusters = BTreeMap::new();
        match store.direct().list_clusters() {
            Ok(records) => {
                for record in records {
                    // Disconnected since, at the latest, the last time it was heard from.
                    let heard = record
                        .snapshot
                        .as_ref()
                        .map_or(record.last_seen_ms, |(_, at)| {
                            (*at).max(record.last_seen_ms)
                        });
                    let snapshot = record.snapshot.map(|(s, at)| HeldSnapshot {
                        osystems: s.osystems,
                        images: s.images,
                        received_at_ms: at,
                    });
                    let entry = ClusterEntry {
                        name: record.name,
                        link: None,
                        snapshot,
                        last_seen_ms: heard,
                        disconnected_since_ms: Some(heard),
                    };
                    clusters.insert(record.id, entry);
                }
            }
            Err(err) => tracing::error!(%err, "cannot read known clusters from the store"),
        }
        RegionActor {
            settings,
            store,
            clock,
            rng,
            clusters,
            links: BTreeMap::new(),
            unregistered: BTreeMap::new(),
            next_link: 0,
            pending_handshakes: 0,
            handshakes_by_source: BTreeMap::new(),
            refusal_warn: RateLimitedWarn::default(),
            failure_warn: RateLimitedWarn::default(),
            register_warn: RateLimitedWarn::default(),
            listener: Some(listener),
            cached_view: None,
            mesh: regions::RegionMesh::default(),
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

    /// Frees the handshake slot `source` held.
    fn handshake_ended(&mut self, source: &str) {
        self.pending_handshakes -= 1;
        if let Some(count) = self.handshakes_by_source.get_mut(source) {
            *count -= 1;
            if *count == 0 {
                self.handshakes_by_source.remove(source);
            }
        }
    }

    /// Starts the connection actor of a link that completed the handshake. The link is only
    /// "unregistered" until its `Register` succeeds (`register`); it is closed if none arrives
    /// within `REGISTER_TIMEOUT`.
    fn on_authenticated(&mut self, auth: Authenticated, ctx: &mut Context<Self>) {
        let cluster = ClusterId::new(auth.peer_identity.clone());
        let has_link = self
            .clusters
            .get(&cluster)
            .is_some_and(|e| e.link.is_some());
        if self.links.len() + self.unregistered.len() >= MAX_LINKS && !has_link {
            let message = format!("all {MAX_LINKS} cluster links are taken; closing");
            self.refusal_warn.warn(&auth.conn.peer_addr, &message);
            return;
        }
        let (peer, incoming) = spawn_peer(auth, self.settings.peer.clone());
        self.next_link += 1;
        let link = self.next_link;
        let me = ctx.address();
        Connection::start(
            link,
            peer.clone(),
            incoming,
            me.clone().recipient(),
            me.recipient(),
        );
        self.unregistered.insert(link, (cluster, peer));
        ctx.run_later(REGISTER_TIMEOUT, move |act, _ctx| {
            if let Some((cluster, peer)) = act.unregistered.remove(&link) {
                tracing::info!(?cluster, "no Register within {REGISTER_TIMEOUT:?}; closing");
                peer.close();
            }
        });
    }

    /// The `Register` of an unregistered link: the identity it registers must be the one it
    /// proved, and no live link may hold that identity already (the genuine link stays; a
    /// second one gets in only once the first is closed, e.g. by its heartbeat timeout).
    /// On success the link becomes its cluster's link.
    fn register(
        &mut self,
        link: LinkId,
        method_name: &str,
        body: &[u8],
    ) -> Deferred<Result<bytes::Bytes, RpcError>> {
        let Some((cluster, peer)) = self.unregistered.get(&link).cloned() else {
            return Deferred::Now(Err(RpcError::internal("not an unregistered link")));
        };
        if method_name != method::REGISTER {
            return Deferred::Now(Err(RpcError::bad_request(format!(
                "{method_name:?} before Register: a link must register first"
            ))));
        }
        let req = match check_register(&cluster, body) {
            Ok(req) => req,
            Err(err) => return Deferred::Now(Err(err)),
        };
        if let Err(err) = self.refuse_duplicate(&cluster) {
            return Deferred::Now(Err(err));
        }
        // Identity comes from the credential: a read of the enrollment on record (small, and
        // bounded by the handshake slots), on this thread before the write is queued.
        if let Err(err) = identity::admit(self.store.direct(), &cluster, peer.credential()) {
            return Deferred::Now(Err(err));
        }
        let now = self.clock.now_ms();
        let (id, name) = (cluster.clone(), req.name.clone());
        self.after_store(
            &cluster,
            move |store| store.upsert_cluster_seen(&id, &name, now),
            move |act, stored| {
                stored.map_err(|e| RpcError::internal(format!("store: {e}")))?;
                act.complete_register(link, req.name, now)
            },
        )
    }

    /// Refuses a `Register` for `cluster` while another live link holds that identity.
    fn refuse_duplicate(&mut self, cluster: &ClusterId) -> Result<(), RpcError> {
        if let Some((old_link, old_peer)) = self.clusters.get(cluster).and_then(|e| e.link.as_ref())
        {
            if !old_peer.is_closed() {
                osmesh_net::metrics::handshake_refused("duplicate_identity");
                self.settings.peer.counters.register_refused_duplicate();
                let message = format!(
                    "refused a second link for cluster {:?}: link {old_link} is alive",
                    cluster.as_str()
                );
                self.register_warn
                    .warn(&format!("{:?}", cluster.as_str()), &message);
                return Err(RpcError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "cluster {:?} is already connected on a live link; a second link is \
                         refused until that one is declared dead",
                        cluster.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Makes `link` its cluster's link once its registration is stored. Checked again here:
    /// with the store on its own threads, the link may have closed, or another link of the
    /// same identity registered, while the write ran.
    fn complete_register(
        &mut self,
        link: LinkId,
        name: String,
        now: i64,
    ) -> Result<bytes::Bytes, RpcError> {
        let Some((cluster, peer)) = self.unregistered.get(&link).cloned() else {
            return Err(RpcError::internal("the link closed while registering"));
        };
        self.refuse_duplicate(&cluster)?;
        self.unregistered.remove(&link);
        let entry = self
            .clusters
            .entry(cluster.clone())
            .or_insert_with(|| ClusterEntry {
                name: name.clone(),
                link: None,
                snapshot: None,
                last_seen_ms: now,
                disconnected_since_ms: None,
            });
        if let Some((old_link, old_peer)) = entry.link.replace((link, peer)) {
            // Closed already (its `LinkClosed` is on its way): the new link takes over.
            old_peer.close();
            self.links.remove(&old_link);
        }
        entry.name = name;
        entry.last_seen_ms = now;
        entry.disconnected_since_ms = None;
        self.links.insert(link, cluster.clone());
        self.cached_view = None;
        tracing::info!(cluster = ?cluster.as_str(), "cluster registered");
        Ok(encode_body(&self.mesh.registered(&self.settings.name)))
    }

    /// A registered cluster's call. Calls that write wait for their store call before they
    /// are answered (inline in the simulator; on the store's threads in regiond).
    fn answer(
        &mut self,
        cluster: &ClusterId,
        method_name: &str,
        body: &[u8],
    ) -> Deferred<Result<bytes::Bytes, RpcError>> {
        match self.try_answer(cluster, method_name, body) {
            Ok(answer) => answer,
            Err(err) => Deferred::Now(Err(err)),
        }
    }

    fn try_answer(
        &mut self,
        cluster: &ClusterId,
        method_name: &str,
        body: &[u8],
    ) -> Result<Deferred<Result<bytes::Bytes, RpcError>>, RpcError> {
        let now = self.clock.now_ms();
        let entry = self
            .clusters
            .get_mut(cluster)
            .ok_or_else(|| RpcError::internal("link without a cluster"))?;
        entry.last_seen_ms = now;
        let ack = || encode_body(&Ack {});
        match method_name {
            method::REGISTER => {
                // Registered already (this is its link): only the name may change.
                let req = check_register(cluster, body)?;
                entry.name = req.name.clone();
                let registered = encode_body(&self.mesh.registered(&self.settings.name));
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
            method::REPORT_BOOT_IMAGES => {
                let mut req: ReportBootImages = decode_body(body)?;
                check_image_report(&req)?;
                edge::check_image_report_names(&req)?;
                let skipped = edge::drop_images_without_known_purposes(&mut req);
                if skipped > 0 {
                    tracing::debug!(cluster = ?cluster.as_str(), skipped, "images with no known purpose skipped");
                }
                let held = self.hold_snapshot(cluster, req.osystems, req.images, now);
                Ok(held.map(move |()| Ok(ack())))
            }
            method::REPORT_PRESEED_TEMPLATES => {
                let req: ReportPreseedTemplates = decode_body(body)?;
                edge::check_template_report_names(&req)?;
                let recorded = self.record_templates(cluster, req, now)?;
                Ok(recorded.map(move |stored| stored.map(|()| ack())))
            }
            other => Err(RpcError::unknown_method(other)),
        }
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
            StoreCall::Pending(rx) => Deferred::Later(Box::pin(
                actix::fut::wrap_future::<_, Self>(rx).map(move |received, act, _ctx| {
                    then(act, received.unwrap_or(Err(StoreError::Stopped)))
                }),
            )),
        }
    }

    /// Hands a deferred result to `finish`: now, or when it arrives.
    fn settle<R: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        result: Deferred<R>,
        finish: impl FnOnce(&mut Self, R) + 'static,
    ) {
        match result {
            Deferred::Now(result) => finish(self, result),
            Deferred::Later(fut) => {
                ctx.spawn(fut.map(move |result, act, _ctx| finish(act, result)));
            }
        }
    }

    /// Holds a cluster's report as its snapshot at once, and stores it (done when the
    /// result is).
    fn hold_snapshot(
        &mut self,
        cluster: &ClusterId,
        osystems: Vec<OsystemInfo>,
        images: Vec<BootImage>,
        now: i64,
    ) -> Deferred<()> {
        if !self.clusters.contains_key(cluster) {
            return Deferred::Now(());
        }
        let stored = ClusterSnapshot { osystems, images };
        let (id, saved) = (cluster.clone(), stored.clone());
        let persisted = self.after_store(
            cluster,
            move |store| store.save_snapshot(&id, &saved, now),
            |_, result| {
                if let Err(err) = result {
                    tracing::error!(%err, "cannot persist a cluster's snapshot");
                }
            },
        );
        let Some(entry) = self.clusters.get_mut(cluster) else {
            return persisted;
        };
        let unchanged = entry
            .snapshot
            .as_ref()
            .is_some_and(|s| s.osystems == stored.osystems && s.images == stored.images);
        if !unchanged {
            self.cached_view = None;
        }
        entry.snapshot = Some(HeldSnapshot {
            osystems: stored.osystems,
            images: stored.images,
            received_at_ms: now,
        });
        persisted
    }

    /// Stores a template report whole, in one transaction, or refuses it whole: over the
    /// per-report or per-cluster bound, or with a name or content that breaks its field rule.
    fn record_templates(
        &mut self,
        cluster: &ClusterId,
        report: ReportPreseedTemplates,
        now: i64,
    ) -> Result<Deferred<Result<(), RpcError>>, RpcError> {
        if report.templates.len() > MAX_TEMPLATES_PER_REPORT {
            return Err(RpcError::bad_request(format!(
                "{} templates in one report; at most {MAX_TEMPLATES_PER_REPORT} allowed",
                report.templates.len()
            )));
        }
        for t in &report.templates {
            let field = osmesh_core::fields::PRESEED_NAME
                .check(&t.name)
                .and_then(|()| osmesh_core::fields::PRESEED_CONTENT.check(&t.content));
            if let Err(e) = field {
                return Err(RpcError::bad_request(format!(
                    "template {:.64?}: {e}",
                    t.name
                )));
            }
        }
        let id = cluster.clone();
        let job = move |store: &dyn RegionStore| {
            let templates: Vec<_> = report
                .templates
                .iter()
                .map(|t| ClusterTemplate {
                    name: &t.name,
                    osystem: t.osystem.as_deref(),
                    content: &t.content,
                })
                .collect();
            store.record_cluster_templates(&templates, &id, now, MAX_TEMPLATE_NAMES_PER_CLUSTER)
        };
        let id = cluster.clone();
        Ok(self.after_store(cluster, job, move |_, stored| match stored {
            Ok(_) => Ok(()),
            Err(StoreError::Invalid(message)) => Err(RpcError::bad_request(message)),
            Err(err) => {
                tracing::error!(cluster = ?id.as_str(), %err, "cannot record preseed templates");
                Err(RpcError::internal(format!("store: {err}")))
            }
        }))
    }

    fn cluster_part(&self, id: &ClusterId, entry: &ClusterEntry, now: i64) -> ClusterPart {
        ClusterPart {
            cluster: id.clone(),
            name: entry.name.clone(),
            connected: entry.link.is_some(),
            disconnected_since_ms: entry.disconnected_since_ms,
            age_ms: entry.snapshot.as_ref().map(|s| now - s.received_at_ms),
            no_answer: None,
        }
    }

    fn cached_answer(&mut self) -> OsystemsAnswer {
        let now = self.clock.now_ms();
        let parts = self
            .clusters
            .iter()
            .map(|(id, entry)| ClusterPart {
                no_answer: cached_no_answer(entry),
                ..self.cluster_part(id, entry, now)
            })
            .collect();
        OsystemsAnswer {
            source: ReadPath::Cached,
            view: self.cached_view(),
            clusters: parts,
            deadline_ms: None,
            elapsed_ms: None,
        }
    }

    /// The merge of every cluster's snapshot, computed again only after something changed.
    fn cached_view(&mut self) -> Arc<MeshView> {
        if let Some(view) = &self.cached_view {
            return view.clone();
        }
        let answers: BTreeMap<_, _> = self
            .clusters
            .iter()
            .map(|(id, entry)| {
                let report = |s: &HeldSnapshot| ClusterReport {
                    osystems: s.osystems.clone(),
                    images: s.images.clone(),
                };
                let answer = match (&entry.snapshot, cached_no_answer(entry)) {
                    (Some(s), None) => ClusterAnswer::Answered(report(s)),
                    (Some(s), Some(reason)) => ClusterAnswer::LastKnown {
                        reason,
                        report: report(s),
                    },
                    (None, reason) => {
                        ClusterAnswer::NoAnswer(reason.unwrap_or(NoAnswerReason::NotConnected))
                    }
                };
                (id.clone(), answer)
            })
            .collect();
        let view = Arc::new(MeshView::from_answers(&answers));
        crate::metrics::view_rebuilt();
        self.cached_view = Some(view.clone());
        view
    }

    /// Asks every known cluster now, each with `timeout`; the future resolves by the deadline.
    fn ask_all(
        &self,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Vec<(ClusterId, ClusterAnswer)>> {
        let asks: Vec<_> = self
            .clusters
            .iter()
            .map(|(id, entry)| ask_cluster(id.clone(), entry.peer(), timeout))
            .collect();
        join_all(asks)
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let asks = self.ask_all(REFRESH_TIMEOUT);
        ctx.spawn(asks.into_actor(self).map(|answers, act, ctx| {
            act.hold_answers(&answers, ctx);
        }));
    }

    /// Keeps every live answer as the cluster's snapshot.
    fn hold_answers(&mut self, answers: &[(ClusterId, ClusterAnswer)], ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        for (id, answer) in answers {
            if let ClusterAnswer::Answered(report) = answer {
                // Its replies are frames received from it.
                if let Some(entry) = self.clusters.get_mut(id) {
                    entry.last_seen_ms = entry.last_seen_ms.max(now);
                }
                let changed = self
                    .clusters
                    .get(id)
                    .and_then(|e| e.snapshot.as_ref())
                    .is_none_or(|s| s.osystems != report.osystems || s.images != report.images);
                if changed {
                    let held =
                        self.hold_snapshot(id, report.osystems.clone(), report.images.clone(), now);
                    self.settle(ctx, held, |_, ()| {});
                } else if let Some(snapshot) =
                    self.clusters.get_mut(id).and_then(|e| e.snapshot.as_mut())
                {
                    snapshot.received_at_ms = now;
                }
            }
        }
    }
}

impl RegionActor {
    /// Injected bug (test hooks only): every silent cluster with a snapshot "answers" with it.
    fn inject_cached_as_live(&self, answers: &mut [(ClusterId, ClusterAnswer)]) {
        for (id, answer) in answers.iter_mut() {
            let snapshot = self.clusters.get(id).and_then(|e| e.snapshot.as_ref());
            if let (ClusterAnswer::NoAnswer(_), Some(s)) = (&*answer, snapshot) {
                *answer = ClusterAnswer::Answered(ClusterReport {
                    osystems: s.osystems.clone(),
                    images: s.images.clone(),
                });
            }
        }
    }
}

/// Decodes a `Register` and checks it against the identity the link proved: the same
/// identity, not empty, and a valid name. Peer-supplied text is quoted escaped (`{:?}`).
fn check_register(cluster: &ClusterId, body: &[u8]) -> Result<Register, RpcError> {
    let req: Register = decode_body(body)?;
    if cluster.as_str().is_empty() {
        return Err(RpcError::bad_request("an empty identity cannot register"));
    }
    if req.cluster != *cluster {
        return Err(RpcError::bad_request(format!(
            "authenticated as {:?} but registering as {:?}",
            cluster.as_str(),
            req.cluster.as_str()
        )));
    }
    osmesh_core::fields::CLUSTER_NAME
        .check(&req.name)
        .map_err(|e| RpcError::bad_request(e.to_string()))?;
    Ok(req)
}

/// Refuses an image report over `MAX_IMAGES_PER_REPORT` or `MAX_OSYSTEMS_PER_REPORT`.
fn check_image_report(report: &ReportBootImages) -> Result<(), RpcError> {
    if report.images.len() > MAX_IMAGES_PER_REPORT {
        return Err(RpcError::bad_request(format!(
            "{} images in one report; at most {MAX_IMAGES_PER_REPORT} allowed",
            report.images.len()
        )));
    }
    if report.osystems.len() > MAX_OSYSTEMS_PER_REPORT {
        return Err(RpcError::bad_request(format!(
            "{} operating systems in one report; at most {MAX_OSYSTEMS_PER_REPORT} allowed",
            report.osystems.len()
        )));
    }
    Ok(())
}

/// Why a cluster does not count as answering in the cached view: it is not connected (what
/// it last reported, if anything, is only "last known"), or it has sent no report yet.
fn cached_no_answer(entry: &ClusterEntry) -> Option<NoAnswerReason> {
    match (&entry.snapshot, entry.link.is_some()) {
        (Some(_), true) => None,
        (_, false) => Some(NoAnswerReason::NotConnected),
        (None, true) => Some(NoAnswerReason::Error(
            "connected, but no report received yet".into(),
        )),
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
    let (osystems, images) = futures::join!(
        peer.call_typed(&ListOperatingSystems {}, timeout),
        peer.call_typed(&ListBootImages {}, timeout)
    );
    let answer = match (osystems, images) {
        (Ok(os), Ok(im)) => ClusterAnswer::Answered(ClusterReport {
            osystems: os.osystems,
            images: im.images,
        }),
        (Err(err), _) | (_, Err(err)) => ClusterAnswer::NoAnswer(no_answer_reason(err)),
    };
    (id, answer)
}

/// Why a call did not produce an answer, as the mesh view reports it.
pub fn no_answer_reason(err: RpcError) -> NoAnswerReason {
    match err.kind {
        ErrorKind::Timeout => NoAnswerReason::Timeout,
        ErrorKind::Unavailable => NoAnswerReason::NotConnected,
        _ => NoAnswerReason::Error(err.to_string()),
    }
}

impl Actor for RegionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.accept_loop(ctx);
        ctx.run_interval(self.settings.refresh_interval, |act, ctx| act.refresh(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        for entry in self.clusters.values() {
            if let Some((_, peer)) = &entry.link {
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
        let counters = &self.settings.peer.counters;
        if self.pending_handshakes >= MAX_PENDING_HANDSHAKES {
            osmesh_net::metrics::handshake_refused("too_many_pending");
            counters.handshake_refused_global();
            let message = format!("all {MAX_PENDING_HANDSHAKES} handshake slots taken; closing");
            self.refusal_warn.warn(&msg.conn.peer_addr, &message);
            return;
        }
        let from_source = self.handshakes_by_source.entry(source.clone()).or_default();
        if *from_source >= MAX_HANDSHAKES_PER_SOURCE {
            osmesh_net::metrics::handshake_refused("too_many_from_source");
            counters.handshake_refused_per_source();
            let message = format!(
                "{MAX_HANDSHAKES_PER_SOURCE} handshakes from {source} under way already; closing"
            );
            self.refusal_warn.warn(&msg.conn.peer_addr, &message);
            return;
        }
        *from_source += 1;
        self.pending_handshakes += 1;
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let handshake = self.settings.handshake.clone();
        let peer_addr = msg.conn.peer_addr.clone();
        let fut = async move { accept_handshake(msg.conn, &handshake, nonce).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.handshake_ended(&source);
            match result {
                Ok(auth) => act.on_authenticated(auth, ctx),
                Err(osmesh_net::HandshakeError::Enrolled { identity }) => {
                    tracing::info!(cluster = ?identity, "cluster enrolled: certificate issued");
                }
                Err(err) => {
                    osmesh_net::metrics::handshake_failed(&err);
                    act.settings.peer.counters.handshake_failed();
                    let message = format!("handshake refused: {err}");
                    act.failure_warn.warn(&peer_addr, &message);
                }
            }
        }));
    }
}

impl Handler<InboundCall> for RegionActor {
    type Result = ();

    fn handle(&mut self, call: InboundCall, ctx: &mut Self::Context) {
        let Incoming {
            method,
            body,
            responder,
            ..
        } = call.incoming;
        let started = tokio::time::Instant::now();
        if let Some((_, peer)) = self.unregistered.get(&call.link).cloned() {
            // Before `Register` only `Register` is served; a refused one closes the link
            // (after the refusal is written, so the peer reads why).
            let link = call.link;
            let result = self.register(link, &method, &body);
            self.settle(ctx, result, move |act, result| {
                osmesh_net::metrics::record_served(&method, started, &result);
                let refused = result.is_err();
                if let Some(responder) = responder {
                    responder.reply(result);
                }
                if refused {
                    act.unregistered.remove(&link);
                    peer.close();
                }
            });
            return;
        }
        let Some(cluster) = self.links.get(&call.link).cloned() else {
            return;
        };
        let result = self.answer(&cluster, &method, &body);
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
}

impl Handler<LinkClosed> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: LinkClosed, ctx: &mut Self::Context) {
        if self.unregistered.remove(&msg.link).is_some() {
            return;
        }
        let Some(cluster) = self.links.remove(&msg.link) else {
            return;
        };
        if let Some(entry) = self.clusters.get_mut(&cluster) {
            if entry
                .link
                .as_ref()
                .is_some_and(|(link, _)| *link == msg.link)
            {
                entry.link = None;
                entry.disconnected_since_ms = Some(self.clock.now_ms());
                self.cached_view = None;
                // `last_seen_ms` moves in memory with every frame; it is written here.
                let (id, name, seen) = (cluster.clone(), entry.name.clone(), entry.last_seen_ms);
                let written = self.after_store(
                    &cluster,
                    move |store| store.upsert_cluster_seen(&id, &name, seen),
                    |_, result| {
                        if let Err(err) = result {
                            tracing::error!(%err, "cannot persist a cluster's last seen");
                        }
                    },
                );
                self.settle(ctx, written, |_, ()| {});
                tracing::warn!(cluster = ?cluster.as_str(), "cluster disconnected");
                if osmesh_core::hooks::forget_disconnected_cluster() {
                    self.clusters.remove(&cluster);
                }
            }
        }
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

/// The live OS view: ask every cluster now, answer by `timeout`.
#[derive(Message)]
#[rtype(result = "OsystemsAnswer")]
pub struct LiveOsystems {
    pub timeout: Duration,
}

impl Handler<LiveOsystems> for RegionActor {
    type Result = ResponseActFuture<Self, OsystemsAnswer>;

    fn handle(&mut self, msg: LiveOsystems, _ctx: &mut Self::Context) -> Self::Result {
        let started = tokio::time::Instant::now();
        let asks = self.ask_all(msg.timeout);
        Box::pin(asks.into_actor(self).map(move |answers, act, ctx| {
            crate::metrics::fanout_done(started.elapsed(), &answers);
            act.hold_answers(&answers, ctx);
            let mut answers = answers;
            if osmesh_core::hooks::serve_cached_as_live() {
                act.inject_cached_as_live(&mut answers);
            }
            let now = act.clock.now_ms();
            let mut parts = Vec::new();
            for (id, answer) in &answers {
                let Some(entry) = act.clusters.get(id) else {
                    continue;
                };
                let mut part = act.cluster_part(id, entry, now);
                match answer {
                    ClusterAnswer::Answered(_) => part.age_ms = Some(0),
                    ClusterAnswer::NoAnswer(reason) | ClusterAnswer::LastKnown { reason, .. } => {
                        part.no_answer = Some(reason.clone())
                    }
                }
                parts.push(part);
            }
            let answered =
                |(_, a): &(ClusterId, ClusterAnswer)| matches!(a, ClusterAnswer::Answered(_));
            let everyone_answered = if osmesh_core::hooks::reuse_merge_if_any_answered() {
                answers.iter().any(answered)
            } else {
                answers.iter().all(answered)
            };
            // When every cluster answered and is still linked, the answers are now exactly the
            // held snapshots and the cached view counts the same clusters as answering, so the
            // live view is the cached one (merged again only if a snapshot changed). A cluster
            // that answered and then lost its link is only "last known" in the cached view, so
            // reusing it would contradict this answer's parts (found by swarm seed 1031976090).
            let still_linked = answers
                .iter()
                .all(|(id, _)| act.clusters.get(id).is_some_and(|e| e.link.is_some()));
            let view = if everyone_answered && still_linked {
                act.cached_view()
            } else {
                let answers: BTreeMap<_, _> = answers.into_iter().collect();
                Arc::new(MeshView::from_answers(&answers))
            };
            OsystemsAnswer {
                source: ReadPath::Live,
                view,
                clusters: parts,
                deadline_ms: Some(duration_ms(msg.timeout)),
                elapsed_ms: Some(duration_ms(started.elapsed())),
            }
        }))
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
        let now = self.clock.now_ms();
        let list = self
            .clusters
            .iter()
            .map(|(id, entry)| ClusterStatus {
                id: id.clone(),
                name: entry.name.clone(),
                connected: entry.link.is_some(),
                disconnected_since_ms: entry.disconnected_since_ms,
                last_seen_ms: entry.last_seen_ms,
                image_count: entry.snapshot.as_ref().map_or(0, |s| s.images.len()),
                snapshot_age_ms: entry.snapshot.as_ref().map(|s| now - s.received_at_ms),
            })
            .collect();
        MessageResult(list)
    }
}

/// Every known cluster's held images (its last snapshot), with whether it is connected.
#[derive(Message)]
#[rtype(result = "Vec<images::HeldImages>")]
pub struct ListHeldImages;

impl Handler<ListHeldImages> for RegionActor {
    type Result = MessageResult<ListHeldImages>;

    fn handle(&mut self, _msg: ListHeldImages, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        let held = self
            .clusters
            .iter()
            .map(|(id, entry)| images::HeldImages {
                cluster: id.clone(),
                connected: entry.link.is_some(),
                disconnected_since_ms: entry.disconnected_since_ms,
                age_ms: entry.snapshot.as_ref().map(|s| now - s.received_at_ms),
                images: entry
                    .snapshot
                    .as_ref()
                    .map(|s| s.images.clone())
                    .unwrap_or_default(),
            })
            .collect();
        MessageResult(held)
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
            .clusters
            .iter()
            .filter_map(|(id, entry)| entry.peer().map(|p| (id.clone(), p)))
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
