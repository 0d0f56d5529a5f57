//! `/api/v1/nodes`: enlist, list, show, delete, allocate, release, and render a preseed.
//! Power parameters are write-only: secret-looking values are masked in every answer, and a
//! rendered preseed shows the node's secrets and its release's license key only to `admin`.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::nodes::{AllocateRequest, EnlistRequest, NodeView};
use osmesh_actors::region::service::RegionService;
use osmesh_store::Role;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiResult, ErrorBody, Routes};
use osmesh_actors::region::preseed::RenderedPreseed;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, enlist, allocate, show, delete, release, preseed))]
pub(super) struct Doc;
use crate::auth::Caller;
use crate::redact::{is_secret_name, redact_secrets, MASK};

pub(super) fn routes(r: &mut Routes) {
    // `/nodes/allocate` before `/nodes/{id}`, so "allocate" is never read as an id.
    r.get("/nodes", Role::Reader, list)
        .post("/nodes", Role::Operator, enlist)
        .post("/nodes/allocate", Role::Operator, allocate)
        .get("/nodes/{id}", Role::Reader, show)
        .delete("/nodes/{id}", Role::Operator, delete)
        .post("/nodes/{id}/release", Role::Operator, release)
        .get("/nodes/{id}/preseed", Role::Reader, preseed);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct PreseedQuery {
    /// The preseed type to render (for example `install`).
    #[serde(rename = "type")]
    preseed_type: String,
}

/// The node as every role sees it: secret power parameters masked.
fn masked(mut node: NodeView) -> NodeView {
    if let Some(params) = &mut node.power_parameters {
        mask_secret_values(params);
    }
    node
}

/// Replaces the value of every key that names a secret (`power_pass`, `password`, `key`…),
/// at any depth.
fn mask_secret_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) && !v.is_null() {
                    *v = Value::String(MASK.into());
                } else {
                    mask_secret_values(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secret_values),
        _ => {}
    }
}

/// The values of a node's secret power parameters.
fn secret_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if is_secret_name(key) => out.push(s.clone()),
                    Value::Number(n) if is_secret_name(key) => out.push(n.to_string()),
                    other => secret_values(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| secret_values(v, out)),
        _ => {}
    }
}

/// Every node, secret power parameters masked.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", responses((status = 200, body = Vec<NodeView>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>) -> ApiResult {
    let nodes: Vec<NodeView> = service.nodes().await?.into_iter().map(masked).collect();
    Ok(HttpResponse::Ok().json(nodes))
}

/// Enlists a node on a known cluster.
#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = EnlistRequest, responses((status = 201, body = NodeView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn enlist(service: web::Data<RegionService>, body: web::Json<EnlistRequest>) -> ApiResult {
    Ok(HttpResponse::Created().json(masked(service.enlist_node(&body).await?)))
}

/// One node.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = i64, Path, description = "Node id")), responses((status = 200, body = NodeView), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn show(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    Ok(HttpResponse::Ok().json(masked(service.node(*id).await?)))
}

/// Deletes a node.
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = i64, Path, description = "Node id")), responses((status = 204, description = "Deleted"), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn delete(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    service.delete_node(*id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Allocates a ready node whose cluster holds an install image for the request (atomic).
#[utoipa::path(post, path = "/api/v1/nodes/allocate", tag = "nodes", request_body = AllocateRequest, responses((status = 200, body = NodeView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "No cluster supports the OS or release", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn allocate(
    service: web::Data<RegionService>,
    body: web::Json<AllocateRequest>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(masked(service.allocate_node(&body).await?)))
}

/// Releases an allocated node.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/release", tag = "nodes", params(("id" = i64, Path, description = "Node id")), responses((status = 200, body = NodeView), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn release(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    Ok(HttpResponse::Ok().json(masked(service.release_node(*id).await?)))
}

/// The rendered preseed; for every role but `admin`, the node's secret power parameters and
/// its release's license key are replaced wherever they appear in it.
/// Renders the most specific preseed template for the node.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/preseed", tag = "nodes", params(("id" = i64, Path, description = "Node id"), PreseedQuery), responses((status = 200, body = RenderedPreseed), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn preseed(
    service: web::Data<RegionService>,
    caller: Caller,
    id: web::Path<i64>,
    query: web::Query<PreseedQuery>,
) -> ApiResult {
    let mut rendered = service.render_preseed(*id, &query.preseed_type).await?;
    if caller.role < Role::Admin {
        let mut secrets = Vec::new();
        let node = service.node(*id).await?;
        if let Some(params) = &node.power_parameters {
            secret_values(params, &mut secrets);
        }
        let key = service
            .store()
            .get_license_key(&rendered.osystem, &rendered.distro_series)
            .map_err(osmesh_actors::region::service::ServiceError::from_store)?;
        secrets.extend(key.map(|k| k.license_key));
        rendered.content = redact_secrets(&rendered.content, &secrets);
    }
    Ok(HttpResponse::Ok().json(rendered))
}
