//! Who may be a cluster (issue 13): a link's credential is admitted at `Register` only while it
//! is the certificate on record for that identity and the identity is not revoked; an operator
//! can cut a cluster's links at once (revocation) and forget a disconnected cluster.

use actix::prelude::*;
use osmesh_core::ClusterId;
use osmesh_net::{Credential, RpcError};
use std::collections::BTreeSet;

use super::service::ServiceError;
use super::state::LinkRole;
use super::{Deferred, RegionActor};
use crate::store::{ClusterExclusions, RegionStore};

/// `Ok` when `cluster` may register with `credential`: its certificate is the one issued to
/// it and it is not revoked. A link without a certificate proved the shared secret in
/// compatibility mode (the handshake refuses it otherwise); it is refused once revoked, and
/// for an identity that is enrolled (the secret never stands in for a certificate).
pub fn admit(
    store: &dyn RegionStore,
    cluster: &ClusterId,
    credential: Option<&Credential>,
) -> Result<(), RpcError> {
    if osmesh_core::hooks::admit_any_credential() {
        return Ok(());
    }
    let record = store
        .enrollment(cluster)
        .map_err(|e| RpcError::internal(format!("store: {e}")))?;
    let id = cluster.as_str();
    if record.as_ref().is_some_and(|r| r.revoked_at_ms.is_some()) {
        return Err(RpcError::bad_request(format!(
            "cluster {id:?} is revoked; an admin must enroll it again (osmesh clusters enroll {id})"
        )));
    }
    let current = record.and_then(|r| r.cert_sha256);
    let Some(credential) = credential else {
        // The shared secret cannot stand in for an enrolled cluster's certificate.
        if current.is_some() {
            return Err(RpcError::bad_request(format!(
                "cluster {id:?} is enrolled: it must present its certificate, not the shared secret"
            )));
        }
        return Ok(());
    };
    if current.as_deref() == Some(credential.fingerprint.as_str()) {
        return Ok(());
    }
    Err(RpcError::bad_request(format!(
        "this certificate is not the one on record for cluster {id:?} (superseded or removed); \
         an admin must enroll it again (osmesh clusters enroll {id})"
    )))
}

/// Closes every link of `cluster` at once, registered or not (after its revocation is stored,
/// so a redial is refused). Answers whether a registered link was open.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CutCluster {
    pub cluster: ClusterId,
}

impl Handler<CutCluster> for RegionActor {
    type Result = bool;

    fn handle(&mut self, msg: CutCluster, _ctx: &mut Self::Context) -> bool {
        let mut registered = false;
        for link in self.state.links_of(&msg.cluster) {
            registered |= matches!(self.state.link(link), Some(LinkRole::Registered(_)));
            if let Some(peer) = self.peers.get(&link) {
                peer.close();
            }
        }
        if registered {
            tracing::warn!(cluster = ?msg.cluster.as_str(), "cluster revoked: link closed");
        }
        registered
    }
}

/// What a region's heartbeat hands it from the database: the clusters revoked or removed
/// through any region. Their links here are closed (a redial is refused: the revocation is
/// stored, a removed cluster's enrollment deleted), and a removed one with no link left is
/// forgotten here too (its rows are the removing region's to delete). Answers how many links
/// were closed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ApplyExclusions(pub ClusterExclusions);

impl Handler<ApplyExclusions> for RegionActor {
    type Result = usize;

    fn handle(&mut self, msg: ApplyExclusions, _ctx: &mut Self::Context) -> usize {
        let ClusterExclusions { revoked, removed } = msg.0;
        let excluded: BTreeSet<&ClusterId> = revoked.iter().chain(&removed).collect();
        let mut closed = 0;
        for link in self.state.links_of_any(|id| excluded.contains(id)) {
            if let Some(peer) = self.peers.get(&link) {
                peer.close();
                closed += 1;
            }
        }
        for id in &removed {
            if self.state.forget(id) == Ok(true) {
                tracing::info!(cluster = ?id.as_str(), "cluster removed through another region: forgotten");
            }
        }
        if closed > 0 {
            tracing::warn!(closed, "links of revoked or removed clusters closed");
        }
        closed
    }
}

/// Why a cluster cannot be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("cluster {0:?} is connected; revoke it first (osmesh clusters revoke {0})")]
    Connected(String),
    #[error("no cluster {0:?}")]
    Unknown(String),
    #[error("store: {0}")]
    Store(String),
}

/// Deletes a disconnected cluster: its entry, its stored record and snapshot, and its
/// enrollment (so its certificate admits nothing any more).
#[derive(Message)]
#[rtype(result = "Result<(), ForgetError>")]
pub struct ForgetCluster {
    pub cluster: ClusterId,
}

impl Handler<ForgetCluster> for RegionActor {
    type Result = ResponseActFuture<Self, Result<(), ForgetError>>;

    /// Forgets the cluster at once, then deletes its rows in its store lane, after any write
    /// of its own still queued there (its last-seen write when its link closed would
    /// otherwise bring the row back).
    fn handle(&mut self, msg: ForgetCluster, _ctx: &mut Self::Context) -> Self::Result {
        let id = msg.cluster.as_str().to_owned();
        let Ok(known) = self.state.forget(&msg.cluster) else {
            return Box::pin(actix::fut::ready(Err(ForgetError::Connected(id))));
        };
        let cluster = msg.cluster.clone();
        let removed = self.after_store(
            &msg.cluster,
            move |store| store.remove_cluster(&cluster),
            move |_, result| {
                let removed = result.map_err(|e| ForgetError::Store(e.to_string()))?;
                if !removed && !known {
                    return Err(ForgetError::Unknown(id));
                }
                tracing::info!(cluster = ?id, "cluster removed");
                Ok(())
            },
        );
        match removed {
            Deferred::Now(result) => Box::pin(actix::fut::ready(result)),
            Deferred::Later(future) => {
                Box::pin(future.into_actor(self).map(|then, act, _| then(act)))
            }
        }
    }
}

impl super::service::RegionService {
    /// Revokes `cluster`: the revocation is stored first (so a redial is refused), then its
    /// links here are closed at once (other regions close theirs at their next heartbeat).
    /// Answers whether a registered link was open; `NotFound` when the cluster is neither
    /// on record nor linked.
    pub async fn revoke_cluster(&self, cluster: &ClusterId) -> Result<bool, ServiceError> {
        let now = self.now_ms().await?;
        let known = self
            .store()
            .revoke_cluster(cluster, now)
            .map_err(ServiceError::from_store)?;
        let link_closed = self
            .region()
            .send(CutCluster {
                cluster: cluster.clone(),
            })
            .await
            .map_err(ServiceError::region_gone)?;
        if !known && !link_closed {
            let message = format!("no cluster {:?}", cluster.as_str());
            return Err(ServiceError::not_found("no_such_cluster", message));
        }
        Ok(link_closed)
    }

    /// Removes a disconnected cluster (`ForgetCluster`): `Conflict` while it is connected,
    /// `NotFound` when the region never knew it.
    pub async fn remove_cluster(&self, cluster: &ClusterId) -> Result<(), ServiceError> {
        let forget = ForgetCluster {
            cluster: cluster.clone(),
        };
        match self.region().send(forget).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ ForgetError::Connected(_))) => {
                Err(ServiceError::conflict("cluster_connected", e.to_string()))
            }
            Ok(Err(e @ ForgetError::Unknown(_))) => {
                Err(ServiceError::not_found("no_such_cluster", e.to_string()))
            }
            Ok(Err(e @ ForgetError::Store(_))) => Err(ServiceError::unavailable(
                "store_unavailable",
                e.to_string(),
            )),
            Err(e) => Err(ServiceError::region_gone(e)),
        }
    }
}
