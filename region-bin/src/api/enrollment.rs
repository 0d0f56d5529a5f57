//! `/api/v1/clusters/{name}/enroll` (a one-time enrollment token, shown once),
//! `/api/v1/clusters/{name}/revoke` (cuts its links at once; refused afterwards) and
//! `DELETE /api/v1/clusters/{name}` (forgets a disconnected cluster and its snapshot). All
//! admin's (issue 13).

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_core::ClusterId;
use osmesh_store::{Role, Store};
use serde::Serialize;
use std::sync::Arc;

use super::{ApiResult, Routes};
use crate::rpc_tls::{self, RegionCa};

#[derive(utoipa::OpenApi)]
#[openapi(paths(enroll, revoke, remove))]
pub(super) struct Doc;

pub(super) fn routes(r: &mut Routes) {
    r.post("/clusters/{name}/enroll", Role::Admin, enroll)
        .post("/clusters/{name}/revoke", Role::Admin, revoke)
        .delete("/clusters/{name}", Role::Admin, remove);
}

/// A new enrollment: the token is shown here once, never stored (only its hash is).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Enrollment {
    pub cluster: String,
    /// `osmj1.<ca sha256>.<secret>`: give it to the cluster (`clusterd --enroll-token-file`).
    pub token: String,
    pub expires_at_ms: i64,
    /// SHA-256 of the region's RPC CA certificate, as the token carries it.
    pub ca_sha256: String,
}

/// What a revocation or removal did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClusterChange {
    pub cluster: String,
    /// Revocation: whether a live link was cut.
    pub link_closed: bool,
}

fn cluster_id(name: &str) -> Result<ClusterId, ServiceError> {
    osmesh_core::fields::CLUSTER_ID
        .check(name)
        .map_err(|e| ServiceError::bad_request("bad_cluster_id", e.to_string()))?;
    Ok(ClusterId::new(name))
}

/// Enrolls a cluster: a one-time token, valid 24 hours, replacing any earlier enrollment.
#[utoipa::path(post, path = "/api/v1/clusters/{name}/enroll", tag = "clusters",
    responses((status = 200, body = Enrollment)))]
async fn enroll(
    service: web::Data<RegionService>,
    store: web::Data<Store>,
    ca: Option<web::Data<Arc<RegionCa>>>,
    name: web::Path<String>,
) -> ApiResult {
    let id = cluster_id(&name)?;
    // Present whenever regiond serves the API; an app built without the RPC side has none.
    let Some(ca) = ca else {
        let message = "this API has no RPC CA to enroll clusters with";
        return Err(ServiceError::unavailable("enrollment_unavailable", message).into());
    };
    let now = service.now_ms().await?;
    let (token, expires_at_ms) = rpc_tls::enroll(&store, &ca, &id, now)
        .map_err(|e| ServiceError::unavailable("store_unavailable", format!("{e:#}")))?;
    tracing::info!(cluster = %id.as_str(), "enrollment token issued");
    Ok(HttpResponse::Ok().json(Enrollment {
        cluster: id.as_str().to_owned(),
        token: token.to_string(),
        expires_at_ms,
        ca_sha256: ca.fingerprint().to_owned(),
    }))
}

/// Revokes a cluster: its links are closed at once and it is refused until enrolled again.
#[utoipa::path(post, path = "/api/v1/clusters/{name}/revoke", tag = "clusters",
    responses((status = 200, body = ClusterChange)))]
async fn revoke(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    let id = cluster_id(&name)?;
    let link_closed = service.revoke_cluster(&id).await?;
    Ok(HttpResponse::Ok().json(ClusterChange {
        cluster: id.as_str().to_owned(),
        link_closed,
    }))
}

/// Deletes a disconnected cluster, its snapshot and its enrollment.
#[utoipa::path(delete, path = "/api/v1/clusters/{name}", tag = "clusters",
    responses((status = 200, body = ClusterChange)))]
async fn remove(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    let id = cluster_id(&name)?;
    service.remove_cluster(&id).await?;
    Ok(HttpResponse::Ok().json(ClusterChange {
        cluster: id.as_str().to_owned(),
        link_closed: false,
    }))
}
