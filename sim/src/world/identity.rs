//! Cluster identity in the simulated world (issue 13). The simulated network hands the
//! region's end of a link the credential its dialer presents, as TLS hands up a verified
//! client certificate, so the region's own rules (`region/identity.rs`: the certificate on
//! record, no revoked identity; the handshake: the certificate names the `hello`'s identity)
//! decide who may register, here as in regiond.
//!
//! A credential is an identity and a fingerprint. The world issues one by recording it in
//! the store as regiond's enroller does (token created, redeemed, certificate fingerprint
//! set); the cluster's dialer presents whatever its slot holds at each dial. An attacker is a
//! real cluster actor on links the network names `impostor(c1)`, presenting a forged or a
//! revoked credential and reporting images of its own. What the world did is recorded in the
//! oracle (`oracle::Credentials`), never read back from the region.

use actix::prelude::*;
use osmesh_actors::cluster::{ClusterActor, ClusterSettings};
use osmesh_actors::Shutdown;
use osmesh_core::os::RegistryConfig;
use osmesh_core::ClusterId;
use osmesh_net::{Credential, HandshakeConfig};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{ms, ScriptedImages, State, SIM_EPOCH_MS};
use crate::net::{impostor_link, CredentialSlot};
use crate::oracle::{Attack, Held, IdentityEvent};
use crate::scenario::{parse_images, CredentialKind, Impersonate};
use crate::trace::Source;

/// How long an enrollment token would live (regiond's: 24 hours); redeemed at once here.
const TOKEN_LIFETIME_MS: i64 = 24 * 60 * 60 * 1_000;

/// The world's side of cluster identities.
#[derive(Default)]
pub(crate) struct Identities {
    /// Per cluster, the credential its dialer presents (empty: the shared secret).
    slots: BTreeMap<String, CredentialSlot>,
    /// Counts credentials issued, so each fingerprint is new.
    issued: u64,
    /// Per cluster, the credential it held when it was last revoked.
    revoked: BTreeMap<String, Credential>,
    /// The attackers running, kept so their actors live until stopped.
    attackers: Vec<Addr<ClusterActor>>,
}

impl Identities {
    /// `cluster`'s slot, made empty on first use.
    pub(super) fn slot(&mut self, cluster: &str) -> CredentialSlot {
        self.slots.entry(cluster.to_owned()).or_default().clone()
    }

    fn holds(&self, cluster: &str) -> Option<Credential> {
        let slot = self.slots.get(cluster)?;
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn next_fingerprint(&mut self, what: &str, cluster: &str) -> String {
        self.issued += 1;
        format!("sim-{what}-{cluster}-{}", self.issued)
    }
}

impl State {
    /// The handshake of a cluster that presents its certificate (no shared secret).
    pub(super) fn certificates(&self, identity: &str) -> HandshakeConfig {
        let mut config = HandshakeConfig::certificates(identity);
        config.timeout = ms(self.settings.handshake_timeout_ms);
        config
    }

    /// The region's handshake: certificates only in an enrolled world (compatibility mode
    /// off, plain links refused, as in regiond), else the shared secret too.
    pub(super) fn region_handshake(&self, name: &str) -> HandshakeConfig {
        if !self.settings.enrolled {
            return self.handshake(name);
        }
        let mut config = self.certificates(name);
        config.require_secured = true;
        config
    }

    /// The handshake cluster `id` starts with: its certificate once it holds one.
    pub(super) fn cluster_handshake(&self, id: &str) -> HandshakeConfig {
        if self.identity.holds(id).is_some() {
            self.certificates(id)
        } else {
            self.handshake(id)
        }
    }

    /// Enrolls every cluster of the world at the start (an enrolled world).
    pub(super) fn enroll_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<String> = self.clusters.keys().cloned().collect();
        for id in ids {
            self.enroll(&id).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Issues `cluster` a new credential and records it in the store as regiond's enroller
    /// does; its dialer presents it from its next dial.
    pub(crate) fn enroll(&mut self, cluster: &str) -> Result<(), String> {
        let now = self.now_ms();
        let wall = SIM_EPOCH_MS + i64::try_from(now).unwrap_or(i64::MAX);
        let id = ClusterId::new(cluster);
        let fingerprint = self.identity.next_fingerprint("cert", cluster);
        let token_hash = format!("sim-token-{fingerprint}");
        let store = self.checker.store();
        let failed = |e: osmesh_store::DbError| format!("store: {e}");
        let expires = wall + TOKEN_LIFETIME_MS;
        store
            .create_enrollment(&id, &token_hash, expires, wall)
            .map_err(failed)?;
        if !store
            .redeem_enrollment(&id, &token_hash, wall)
            .map_err(failed)?
        {
            return Err(format!(
                "the enrollment token of {cluster} was not redeemed"
            ));
        }
        store
            .set_enrolled_certificate(&id, &fingerprint)
            .map_err(failed)?;
        let credential = Credential {
            identity: cluster.to_owned(),
            fingerprint,
        };
        *self
            .identity
            .slot(cluster)
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(credential);
        self.oracle
            .credentials
            .record(cluster, now, IdentityEvent::Enrolled);
        Ok(())
    }

    /// Records a revocation the region answered: the credential held then is the one a
    /// `revoked` attacker presents.
    pub(crate) fn revoked(&mut self, cluster: &str) {
        let now = self.now_ms();
        if let Some(credential) = self.identity.holds(cluster) {
            self.identity.revoked.insert(cluster.to_owned(), credential);
        }
        self.oracle
            .credentials
            .record(cluster, now, IdentityEvent::Revoked);
    }

    /// Records a removal the region answered.
    pub(crate) fn removed(&mut self, cluster: &str) {
        let now = self.now_ms();
        self.acked.removed_clusters.insert(cluster.to_owned());
        self.oracle
            .credentials
            .record(cluster, now, IdentityEvent::Removed);
    }

    /// Starts an attacker claiming `attack.cluster`'s identity.
    pub(super) fn impersonate(&mut self, attack: &Impersonate) -> anyhow::Result<()> {
        let cluster = attack.cluster.as_str();
        let images = parse_images(&attack.images).map_err(anyhow::Error::msg)?;
        let (credential, named) = self.attack_credential(cluster, attack.credential);
        let now = self.now_ms();
        let config = RegistryConfig::default();
        let poison = Held::new(now, &config, &images).releases;
        let record = Attack {
            cluster: cluster.to_owned(),
            credential: named.to_owned(),
            from_ms: now,
        };
        self.oracle.credentials.attacked(record, poison);
        self.log(
            Source::Fault,
            format!(
                "attacker on {} presents a {named} credential",
                impostor_link(cluster)
            ),
        );
        let link = impostor_link(cluster);
        let slot: CredentialSlot = Arc::new(Mutex::new(Some(credential)));
        let dialer = Arc::new(self.net.secured_dialer(&link, slot));
        let settings = ClusterSettings {
            id: ClusterId::new(cluster),
            name: cluster.to_owned(),
            // The attacker dials the first region; told of the others, it dials them too.
            region_addrs: vec![super::regions::region_name(0, self.regions.len())],
            handshake: self.certificates(cluster),
            peer: self.peer_config(),
            rescan_interval: ms(self.settings.rescan_interval_ms),
            backoff_base: ms(self.settings.backoff_base_ms),
            backoff_cap: ms(self.settings.backoff_cap_ms),
        };
        let rng = StdRng::seed_from_u64(self.rng.next_u64());
        let source = ScriptedImages::default();
        source.set(images);
        let actor =
            ClusterActor::new(settings, dialer, Box::new(source), config, Vec::new(), rng).start();
        if let Some(until) = attack.until_ms {
            let (net, stop) = (self.net.clone(), actor.clone());
            let at = self.start + ms(until);
            actix_rt::spawn(async move {
                tokio::time::sleep_until(at).await;
                stop.do_send(Shutdown);
                net.cut(Some(&link));
            });
        }
        self.identity.attackers.push(actor);
        Ok(())
    }

    /// The credential an attacker on `cluster` presents, and how the trace names it.
    fn attack_credential(
        &mut self,
        cluster: &str,
        kind: CredentialKind,
    ) -> (Credential, &'static str) {
        if kind == CredentialKind::Revoked {
            if let Some(credential) = self.identity.revoked.get(cluster) {
                return (credential.clone(), "revoked");
            }
        }
        let fingerprint = self.identity.next_fingerprint("forged", cluster);
        let credential = Credential {
            identity: cluster.to_owned(),
            fingerprint,
        };
        let named = match kind {
            CredentialKind::Forged => "forged",
            CredentialKind::Revoked => "forged (never revoked)",
        };
        (credential, named)
    }
}
