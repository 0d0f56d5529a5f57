//! The cluster actor: owns the cluster's OS registry and boot-image set, keeps one link to
//! every live region (each dialed with its own capped, jittered backoff), answers the regions'
//! calls from `core`, and pushes `ReportBootImages` on every link whenever a rescan sees the
//! image set change.
//!
//! Several regions (issue 15): the cluster starts with one link target, the configured region
//! addresses (tried in turn). The first region that answers `Register` names itself
//! (`region_id`) and every live region (`regions`); the cluster then keeps one target per
//! region, keyed by its id, and follows the list each region pushes (`RegionList`, at each
//! of its heartbeats). A target that leaves the list is dropped once its link is down; when
//! no target is left, the configured addresses are dialed again. A region that sends no list
//! (an older one, or the simulator's single region) leaves the cluster with its single link,
//! as before.

use actix::prelude::*;
use bytes::Bytes;
use osmesh_core::os::{Registry, RegistryConfig, RegistryError};
use osmesh_core::{BootImage, ClusterId};
use osmesh_net::backoff::Backoff;
use osmesh_net::envelope::{decode_body, encode_body};
use osmesh_net::handshake::{dial_handshake, HandshakeConfig};
use osmesh_net::limits::{MAX_ENDPOINTS_PER_REGION, MAX_REGIONS, MAX_REGION_FIELD_LEN};
use osmesh_net::messages::{
    method, BootImageList, GetOsReleaseTitle, GetPreseedData, LicenseKeyVerdict,
    OperatingSystemList, PreseedData, PreseedTemplate, RegionEndpoint, RegionList, Register,
    Registered, ReleaseTitle, ReportBootImages, ReportPreseedTemplates, ValidateLicenseKey,
};
use osmesh_net::peer::{spawn_peer, Incoming, Peer, PeerConfig};
use osmesh_net::{Dialer, ErrorKind, RpcError};
use rand::rngs::StdRng;
use rand::RngCore;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{Connection, InboundCall, LinkClosed, LinkId};

/// How long the cluster waits for the region to acknowledge a push before dropping the link.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a cluster's boot images come from: a directory in production, a scripted set in the
/// simulator. A rescan returns the whole current set, sorted.
pub trait ImageSource {
    fn scan(&mut self) -> Vec<BootImage>;
}

/// Everything a cluster needs to know about itself and its region.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub id: ClusterId,
    pub name: String,
    /// Region RPC addresses, tried in turn.
    pub region_addrs: Vec<String>,
    pub handshake: HandshakeConfig,
    pub peer: PeerConfig,
    pub rescan_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

/// The key of the target dialing the configured addresses, before a region has named itself.
pub const SEED_TARGET: &str = "";

/// The state of one link to a region.
enum RegionLink {
    /// Not connected; a dial is scheduled.
    Waiting,
    Dialing,
    Connected {
        link: LinkId,
        peer: Peer,
    },
}

/// One region the cluster keeps a link to: where to dial it, and its own backoff.
struct RegionTarget {
    /// Its name as the region list gave it (`None` for the configured addresses).
    name: Option<String>,
    /// RPC addresses, tried in turn.
    addrs: Vec<String>,
    next_addr: usize,
    backoff: Backoff,
    link: RegionLink,
}

impl RegionTarget {
    /// A target not yet dialed, with a fresh backoff.
    fn new(name: Option<String>, addrs: Vec<String>, settings: &ClusterSettings) -> Self {
        RegionTarget {
            name,
            addrs,
            next_addr: 0,
            backoff: Backoff::new(settings.backoff_base, settings.backoff_cap),
            link: RegionLink::Waiting,
        }
    }

    fn peer(&self) -> Option<&Peer> {
        match &self.link {
            RegionLink::Connected { peer, .. } => Some(peer),
            _ => None,
        }
    }
}

/// One region link as the cluster reports it (status, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionLinkStatus {
    /// The region's registry id; empty for the configured addresses before any region named
    /// itself (or when the region is one that names none).
    pub region_id: String,
    pub name: Option<String>,
    pub addrs: Vec<String>,
    pub connected: bool,
}

pub struct ClusterActor {
    settings: ClusterSettings,
    dialer: Arc<dyn Dialer>,
    source: Box<dyn ImageSource>,
    registry_config: RegistryConfig,
    templates: Vec<PreseedTemplate>,
    images: Vec<BootImage>,
    registry: Registry,
    /// The encoded `ListOperatingSystems` and `ListBootImages` replies, kept until the
    /// registry changes so a busy region does not make us encode the same reply twice.
    os_reply: Bytes,
    images_reply: Bytes,
    rng: StdRng,
    next_link: LinkId,
    /// One target per region, by registry id ([`SEED_TARGET`] for the configured addresses).
    targets: BTreeMap<String, RegionTarget>,
    /// The target each live link belongs to.
    links: BTreeMap<LinkId, String>,
    /// The last region list a region sent; `None` while no region has sent one.
    region_list: Option<Vec<RegionEndpoint>>,
}

impl ClusterActor {
    pub fn new(
        settings: ClusterSettings,
        dialer: Arc<dyn Dialer>,
        source: Box<dyn ImageSource>,
        registry_config: RegistryConfig,
        templates: Vec<PreseedTemplate>,
        rng: StdRng,
    ) -> Self {
        let seed = RegionTarget::new(None, settings.region_addrs.clone(), &settings);
        let mut actor = ClusterActor {
            settings,
            dialer,
            source,
            registry_config,
            templates,
            images: Vec::new(),
            registry: Registry::new(&RegistryConfig::default(), &[]),
            os_reply: Bytes::new(),
            images_reply: Bytes::new(),
            rng,
            next_link: 0,
            targets: BTreeMap::from([(SEED_TARGET.to_owned(), seed)]),
            links: BTreeMap::new(),
            region_list: None,
        };
        let images = actor.source.scan();
        actor.install_images(images);
        actor
    }

    /// Rebuilds the registry and the cached replies for a new image set.
    fn install_images(&mut self, images: Vec<BootImage>) {
        self.registry = Registry::new(&self.registry_config, &images);
        self.os_reply = encode_body(&OperatingSystemList {
            osystems: self.registry.list().into(),
        });
        self.images_reply = encode_body(&BootImageList {
            images: self.registry.boot_images().to_vec().into(),
        });
        self.images = images;
    }

    fn rescan(&mut self, ctx: &mut Context<Self>) {
        let images = self.source.scan();
        if images == self.images {
            return;
        }
        tracing::info!(cluster = %self.settings.id, images = images.len(), "boot images changed");
        self.install_images(images);
        let peers: Vec<Peer> = self
            .targets
            .values()
            .filter_map(|t| t.peer().cloned())
            .collect();
        for peer in peers {
            self.push_images(peer, ctx);
        }
    }

    fn report(&self) -> ReportBootImages {
        ReportBootImages {
            images: self.registry.boot_images().to_vec(),
            osystems: self.registry.list(),
        }
    }

    fn push_images(&self, peer: Peer, ctx: &mut Context<Self>) {
        let report = self.report();
        ctx.spawn(
            async move {
                if let Err(err) = peer.call_typed(&report, PUSH_TIMEOUT).await {
                    tracing::warn!(%err, "ReportBootImages failed; dropping the link");
                    peer.close();
                }
            }
            .into_actor(self),
        );
    }

    /// Dials target `key` if it is waiting (a stale timer finds it gone or busy: no-op).
    fn dial(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(target) = self.targets.get_mut(key) else {
            return;
        };
        if !matches!(target.link, RegionLink::Waiting) {
            return;
        }
        if target.addrs.is_empty() {
            tracing::error!(cluster = %self.settings.id, "no region address configured");
            return;
        }
        let addr = target.addrs[target.next_addr % target.addrs.len()].clone();
        target.next_addr = target.next_addr.wrapping_add(1);
        target.link = RegionLink::Dialing;
        let dialer = self.dialer.clone();
        let handshake = self.settings.handshake.clone();
        let peer_config = self.settings.peer.clone();
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let connect = async move {
            let conn = dialer.dial(&addr).await.map_err(|e| e.to_string())?;
            let auth = dial_handshake(conn, &handshake, nonce).await.map_err(|e| {
                osmesh_net::metrics::handshake_failed(&e);
                e.to_string()
            })?;
            Ok::<_, String>(spawn_peer(auth, peer_config))
        };
        let key = key.to_owned();
        ctx.spawn(connect.into_actor(self).map(move |result, act, ctx| match result {
            Ok((peer, incoming)) => act.on_connected(&key, peer, incoming, ctx),
            Err(reason) => {
                tracing::warn!(cluster = %act.settings.id, region = ?key, %reason, "cannot reach the region");
                act.schedule_dial(&key, ctx);
            }
        }));
    }

    /// Waits out target `key`'s backoff, then dials it again.
    fn schedule_dial(&mut self, key: &str, ctx: &mut Context<Self>) {
        let Some(target) = self.targets.get_mut(key) else {
            return;
        };
        target.link = RegionLink::Waiting;
        let delay = target.backoff.next_delay(&mut self.rng);
        let key = key.to_owned();
        ctx.run_later(delay, move |act, ctx| act.dial(&key, ctx));
    }

    fn on_connected(
        &mut self,
        key: &str,
        peer: Peer,
        incoming: osmesh_net::peer::IncomingCalls,
        ctx: &mut Context<Self>,
    ) {
        let dialing = self
            .targets
            .get(key)
            .is_some_and(|t| matches!(t.link, RegionLink::Dialing));
        if !dialing {
            // The target left the list, or another link to that region took its place.
            peer.close();
            return;
        }
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
        if let Some(target) = self.targets.get_mut(key) {
            target.link = RegionLink::Connected {
                link,
                peer: peer.clone(),
            };
        }
        self.links.insert(link, key.to_owned());
        tracing::info!(cluster = %self.settings.id, region = ?key, "connected to the region");
        self.announce(link, peer, ctx);
    }

    /// Register, then push the image set and the preseed templates.
    fn announce(&mut self, link: LinkId, peer: Peer, ctx: &mut Context<Self>) {
        let register = Register {
            cluster: self.settings.id.clone(),
            name: self.settings.name.clone(),
            capabilities: vec!["declared-os".into(), "preseed-data".into()],
        };
        let report = self.report();
        let templates = ReportPreseedTemplates {
            templates: self.templates.clone(),
        };
        let announce = async move {
            let registered = peer.call_typed(&register, PUSH_TIMEOUT).await?;
            peer.call_typed(&report, PUSH_TIMEOUT).await?;
            peer.call_typed(&templates, PUSH_TIMEOUT).await?;
            Ok::<_, RpcError>((peer, registered))
        };
        ctx.spawn(announce.into_actor(self).map(move |result, act, ctx| match result {
            Ok((_, registered)) => act.on_registered(link, registered, ctx),
            Err(err) => {
                tracing::warn!(cluster = %act.settings.id, %err, "announce failed; dropping the link");
                if let Some(peer) = act.link_peer(link) {
                    peer.close();
                }
            }
        }));
    }

    /// The peer of live link `link`, if it is still a target's link.
    fn link_peer(&self, link: LinkId) -> Option<Peer> {
        let key = self.links.get(&link)?;
        match &self.targets.get(key)?.link {
            RegionLink::Connected { link: l, peer } if *l == link => Some(peer.clone()),
            _ => None,
        }
    }

    /// The region accepted link `link`: reset its backoff, key its target by the region's id,
    /// and follow the region list it sent.
    fn on_registered(&mut self, link: LinkId, registered: Registered, ctx: &mut Context<Self>) {
        let Some(key) = self.links.get(&link).cloned() else {
            return;
        };
        if let Some(target) = self.targets.get_mut(&key) {
            target.backoff.reset();
            target.name = Some(registered.region.clone());
        }
        if let Some(region_id) = registered.region_id.filter(|id| valid_field(id)) {
            self.rekey(link, &key, &region_id);
        }
        if let Some(regions) = registered.regions {
            self.follow_region_list(regions, ctx);
        }
    }

    /// Moves link `link` from target `from` to target `to` (the region's id). If `to` already
    /// has a live link of its own, this one is the duplicate and is closed.
    fn rekey(&mut self, link: LinkId, from: &str, to: &str) {
        if from == to {
            return;
        }
        let to_connected = self.targets.get(to).is_some_and(|t| t.peer().is_some());
        if to_connected {
            tracing::info!(cluster = %self.settings.id, region = ?to, "a second link to one region; closing it");
            self.links.remove(&link);
            if let Some(target) = self.targets.remove(from) {
                if let Some(peer) = target.peer() {
                    peer.close();
                }
            }
            return;
        }
        let Some(mut moved) = self.targets.remove(from) else {
            return;
        };
        if let Some(existing) = self.targets.remove(to) {
            // Keep the learned addresses; a dial of it in flight finds it connected and stops.
            moved.addrs = existing.addrs;
            moved.next_addr = 0;
        }
        self.targets.insert(to.to_owned(), moved);
        self.links.insert(link, to.to_owned());
    }

    /// Keeps one target per listed region: new ones are dialed at once, known ones get the
    /// listed addresses, and unlisted ones without a live link are dropped.
    fn follow_region_list(&mut self, regions: Vec<RegionEndpoint>, ctx: &mut Context<Self>) {
        if let Err(why) = check_region_list(&regions) {
            tracing::warn!(cluster = %self.settings.id, %why, "ignoring a region list");
            return;
        }
        let listed: BTreeMap<String, RegionEndpoint> =
            regions.iter().map(|r| (r.id.clone(), r.clone())).collect();
        self.targets
            .retain(|key, target| listed.contains_key(key) || target.peer().is_some());
        let mut new = Vec::new();
        for (id, region) in &listed {
            match self.targets.get_mut(id) {
                Some(target) => {
                    target.name = Some(region.name.clone());
                    if target.addrs != region.rpc {
                        target.addrs = region.rpc.clone();
                        target.next_addr = 0;
                    }
                }
                None => {
                    let target = RegionTarget::new(
                        Some(region.name.clone()),
                        region.rpc.clone(),
                        &self.settings,
                    );
                    self.targets.insert(id.clone(), target);
                    new.push(id.clone());
                }
            }
        }
        self.region_list = Some(regions);
        for id in new {
            tracing::info!(cluster = %self.settings.id, region = ?id, "linking to a region from the region list");
            self.dial(&id, ctx);
        }
    }

    /// Whether target `key` should be dialed again after its link closed: it is still listed
    /// (or no list has come), or it is the configured addresses.
    fn keeps_target(&self, key: &str) -> bool {
        key == SEED_TARGET
            || self
                .region_list
                .as_ref()
                .is_none_or(|list| list.iter().any(|r| r.id == key))
    }

    fn answer(&self, method_name: &str, body: &[u8]) -> Result<Bytes, RpcError> {
        match method_name {
            method::LIST_OPERATING_SYSTEMS => Ok(self.os_reply.clone()),
            method::LIST_BOOT_IMAGES => Ok(self.images_reply.clone()),
            method::GET_OS_RELEASE_TITLE => {
                let req: GetOsReleaseTitle = decode_body(body)?;
                let title = self
                    .registry
                    .release_title(&req.osystem, &req.release)
                    .map_err(registry_error)?;
                Ok(encode_body(&ReleaseTitle { title }))
            }
            method::VALIDATE_LICENSE_KEY => {
                let req: ValidateLicenseKey = decode_body(body)?;
                let verdict =
                    match self
                        .registry
                        .validate_license_key(&req.osystem, &req.release, &req.key)
                    {
                        Ok(()) => LicenseKeyVerdict {
                            valid: true,
                            reason: None,
                        },
                        Err(RegistryError::InvalidLicenseKey { reason, .. }) => LicenseKeyVerdict {
                            valid: false,
                            reason: Some(reason.to_string()),
                        },
                        Err(other) => return Err(registry_error(other)),
                    };
                Ok(encode_body(&verdict))
            }
            method::GET_PRESEED_DATA => {
                let req: GetPreseedData = decode_body(body)?;
                let data = self
                    .registry
                    .compose_preseed(
                        &req.osystem,
                        &req.release,
                        &req.preseed_type,
                        &req.node.hostname,
                        req.license_key.as_deref(),
                    )
                    .map_err(registry_error)?;
                Ok(encode_body(&PreseedData { data }))
            }
            other => Err(RpcError::unknown_method(other)),
        }
    }
}

/// The typed RPC error for a registry refusal.
pub fn registry_error(err: RegistryError) -> RpcError {
    let kind = match &err {
        RegistryError::NoSuchOperatingSystem(_) => ErrorKind::NoSuchOperatingSystem,
        RegistryError::NoSuchRelease { .. } => ErrorKind::NoSuchRelease,
        _ => ErrorKind::BadRequest,
    };
    RpcError::new(kind, err.to_string())
}

impl Actor for ClusterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.dial(SEED_TARGET, ctx);
        ctx.run_interval(self.settings.rescan_interval, |act, ctx| act.rescan(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        for peer in self.targets.values().filter_map(RegionTarget::peer) {
            peer.close();
        }
        Running::Stop
    }
}

impl Handler<crate::Shutdown> for ClusterActor {
    type Result = ();

    fn handle(&mut self, _msg: crate::Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<InboundCall> for ClusterActor {
    type Result = ();

    fn handle(&mut self, call: InboundCall, ctx: &mut Self::Context) {
        let Incoming {
            method,
            body,
            responder,
            ..
        } = call.incoming;
        let Some(responder) = responder else {
            if method == method::REGION_LIST {
                match decode_body::<RegionList>(&body) {
                    Ok(list) => self.follow_region_list(list.regions, ctx),
                    Err(err) => tracing::warn!(%err, "ignoring an undecodable region list"),
                }
            } else {
                tracing::debug!(%method, "ignoring a notification from the region");
            }
            return;
        };
        responder.reply(osmesh_net::metrics::served(&method, || {
            self.answer(&method, &body)
        }));
    }
}

impl Handler<LinkClosed> for ClusterActor {
    type Result = ();

    /// A link closed: dial its region again with that region's backoff, or drop the target
    /// if the region left the list; with no target left, dial the configured addresses.
    fn handle(&mut self, msg: LinkClosed, ctx: &mut Self::Context) {
        let Some(key) = self.links.remove(&msg.link) else {
            return;
        };
        let current = self.targets.get(&key).is_some_and(
            |t| matches!(t.link, RegionLink::Connected { link, .. } if link == msg.link),
        );
        if !current {
            return;
        }
        if self.keeps_target(&key) {
            tracing::warn!(cluster = %self.settings.id, region = ?key, "lost the region; reconnecting");
            self.schedule_dial(&key, ctx);
            return;
        }
        tracing::info!(cluster = %self.settings.id, region = ?key, "lost a region that left the list");
        self.targets.remove(&key);
        if self.targets.is_empty() {
            let seed = RegionTarget::new(None, self.settings.region_addrs.clone(), &self.settings);
            self.targets.insert(SEED_TARGET.to_owned(), seed);
            self.schedule_dial(SEED_TARGET, ctx);
        }
    }
}

/// Ask the cluster to rescan its images now (the simulator's `images_change`, an operator's
/// SIGHUP), rather than at the next interval.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rescan;

impl Handler<Rescan> for ClusterActor {
    type Result = ();

    fn handle(&mut self, _msg: Rescan, ctx: &mut Self::Context) {
        self.rescan(ctx);
    }
}

/// Whether the cluster holds a live link to at least one region (for tests and status).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsConnected;

impl Handler<IsConnected> for ClusterActor {
    type Result = bool;

    fn handle(&mut self, _msg: IsConnected, _ctx: &mut Self::Context) -> bool {
        self.targets.values().any(|t| t.peer().is_some())
    }
}

/// Every region link the cluster keeps, sorted by region id (for status and tests).
#[derive(Message)]
#[rtype(result = "Vec<RegionLinkStatus>")]
pub struct RegionLinks;

impl Handler<RegionLinks> for ClusterActor {
    type Result = MessageResult<RegionLinks>;

    fn handle(&mut self, _msg: RegionLinks, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.targets
                .iter()
                .map(|(id, t)| RegionLinkStatus {
                    region_id: id.clone(),
                    name: t.name.clone(),
                    addrs: t.addrs.clone(),
                    connected: t.peer().is_some(),
                })
                .collect(),
        )
    }
}

/// Refuses a region list over the bounds in `net::limits`, or with an empty or over-long id,
/// name or address, or a region with no address.
fn check_region_list(regions: &[RegionEndpoint]) -> Result<(), String> {
    if regions.len() > MAX_REGIONS {
        return Err(format!(
            "{} regions listed; at most {MAX_REGIONS} allowed",
            regions.len()
        ));
    }
    for r in regions {
        if !valid_field(&r.id) || r.name.len() > MAX_REGION_FIELD_LEN {
            return Err(format!(
                "region id {:.64?} or its name is empty or too long",
                r.id
            ));
        }
        if r.rpc.is_empty() || r.rpc.len() > MAX_ENDPOINTS_PER_REGION {
            return Err(format!(
                "region {:.64?} lists {} addresses; 1 to {MAX_ENDPOINTS_PER_REGION} allowed",
                r.id,
                r.rpc.len()
            ));
        }
        if !r.rpc.iter().all(|a| valid_field(a)) {
            return Err(format!(
                "region {:.64?} lists an empty or over-long address",
                r.id
            ));
        }
    }
    Ok(())
}

fn valid_field(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_REGION_FIELD_LEN
}

/// A fixed image set: for tests, and for clusters whose images are known up front.
pub struct FixedImages(pub Vec<BootImage>);

impl ImageSource for FixedImages {
    fn scan(&mut self) -> Vec<BootImage> {
        self.0.clone()
    }
}
