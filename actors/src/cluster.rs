//! The cluster actor: owns the cluster's OS registry and boot-image set, keeps one link to the
//! region (dialing with capped, jittered backoff), answers the region's calls from `core`, and
//! pushes `ReportBootImages` whenever a rescan sees the image set change.

use actix::prelude::*;
use bytes::Bytes;
use osmesh_core::os::{Registry, RegistryConfig, RegistryError};
use osmesh_core::{BootImage, ClusterId};
use osmesh_net::backoff::Backoff;
use osmesh_net::envelope::{decode_body, encode_body};
use osmesh_net::handshake::{dial_handshake, HandshakeConfig};
use osmesh_net::messages::{
    method, BootImageList, GetOsReleaseTitle, GetPreseedData, LicenseKeyVerdict,
    OperatingSystemList, PreseedData, PreseedTemplate, Register, ReleaseTitle, ReportBootImages,
    ReportPreseedTemplates, ValidateLicenseKey,
};
use osmesh_net::peer::{spawn_peer, Incoming, Peer, PeerConfig};
use osmesh_net::{Dialer, ErrorKind, RpcError};
use rand::rngs::StdRng;
use rand::RngCore;
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

/// The cluster's view of its link to the region.
enum RegionLink {
    /// Not connected; a dial is scheduled.
    Waiting,
    Dialing,
    Connected {
        link: LinkId,
        peer: Peer,
    },
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
    backoff: Backoff,
    next_addr: usize,
    next_link: LinkId,
    region: RegionLink,
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
        let backoff = Backoff::new(settings.backoff_base, settings.backoff_cap);
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
            backoff,
            next_addr: 0,
            next_link: 0,
            region: RegionLink::Waiting,
        };
        let images = actor.source.scan();
        actor.install_images(images);
        actor
    }

    /// Rebuilds the registry and the cached replies for a new image set.
    fn install_images(&mut self, images: Vec<BootImage>) {
        self.registry = Registry::new(&self.registry_config, &images);
        self.os_reply = encode_body(&OperatingSystemList {
            osystems: self.registry.list(),
        });
        self.images_reply = encode_body(&BootImageList {
            images: self.registry.boot_images().to_vec(),
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
        if let RegionLink::Connected { peer, .. } = &self.region {
            self.push_images(peer.clone(), ctx);
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

    fn dial(&mut self, ctx: &mut Context<Self>) {
        let Some(addr) = self.pick_region_addr() else {
            tracing::error!(cluster = %self.settings.id, "no region address configured");
            return;
        };
        self.region = RegionLink::Dialing;
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
        ctx.spawn(connect.into_actor(self).map(|result, act, ctx| match result {
            Ok((peer, incoming)) => act.on_connected(peer, incoming, ctx),
            Err(reason) => {
                tracing::warn!(cluster = %act.settings.id, %reason, "cannot reach the region");
                act.schedule_dial(ctx);
            }
        }));
    }

    fn pick_region_addr(&mut self) -> Option<String> {
        let addrs = &self.settings.region_addrs;
        if addrs.is_empty() {
            return None;
        }
        let addr = addrs[self.next_addr % addrs.len()].clone();
        self.next_addr = self.next_addr.wrapping_add(1);
        Some(addr)
    }

    fn schedule_dial(&mut self, ctx: &mut Context<Self>) {
        self.region = RegionLink::Waiting;
        let delay = self.backoff.next_delay(&mut self.rng);
        ctx.run_later(delay, |act, ctx| act.dial(ctx));
    }

    fn on_connected(
        &mut self,
        peer: Peer,
        incoming: osmesh_net::peer::IncomingCalls,
        ctx: &mut Context<Self>,
    ) {
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
        self.region = RegionLink::Connected {
            link,
            peer: peer.clone(),
        };
        tracing::info!(cluster = %self.settings.id, "connected to the region");
        self.announce(peer, ctx);
    }

    /// Register, then push the image set and the preseed templates.
    fn announce(&mut self, peer: Peer, ctx: &mut Context<Self>) {
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
            peer.call_typed(&register, PUSH_TIMEOUT).await?;
            peer.call_typed(&report, PUSH_TIMEOUT).await?;
            peer.call_typed(&templates, PUSH_TIMEOUT).await?;
            Ok::<_, RpcError>(peer)
        };
        ctx.spawn(announce.into_actor(self).map(|result, act, _ctx| match result {
            Ok(_) => act.backoff.reset(),
            Err(err) => {
                tracing::warn!(cluster = %act.settings.id, %err, "announce failed; dropping the link");
                if let RegionLink::Connected { peer, .. } = &act.region {
                    peer.close();
                }
            }
        }));
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
        self.dial(ctx);
        ctx.run_interval(self.settings.rescan_interval, |act, ctx| act.rescan(ctx));
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        if let RegionLink::Connected { peer, .. } = &self.region {
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

    fn handle(&mut self, call: InboundCall, _ctx: &mut Self::Context) {
        let Incoming {
            method,
            body,
            responder,
            ..
        } = call.incoming;
        let Some(responder) = responder else {
            tracing::debug!(%method, "ignoring a notification from the region");
            return;
        };
        responder.reply(osmesh_net::metrics::served(&method, || {
            self.answer(&method, &body)
        }));
    }
}

impl Handler<LinkClosed> for ClusterActor {
    type Result = ();

    fn handle(&mut self, msg: LinkClosed, ctx: &mut Self::Context) {
        match self.region {
            RegionLink::Connected { link, .. } if link == msg.link => {
                tracing::warn!(cluster = %self.settings.id, "lost the region; reconnecting");
                self.schedule_dial(ctx);
            }
            _ => {}
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

/// Whether the cluster holds a live link to the region (for tests and status).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsConnected;

impl Handler<IsConnected> for ClusterActor {
    type Result = bool;

    fn handle(&mut self, _msg: IsConnected, _ctx: &mut Self::Context) -> bool {
        matches!(self.region, RegionLink::Connected { .. })
    }
}

/// A fixed image set: for tests, and for clusters whose images are known up front.
pub struct FixedImages(pub Vec<BootImage>);

impl ImageSource for FixedImages {
    fn scan(&mut self) -> Vec<BootImage> {
        self.0.clone()
    }
}
