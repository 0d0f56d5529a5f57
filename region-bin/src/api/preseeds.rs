//! `/api/v1/preseeds`: current versions, history, edits based on a version, resolution.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::preseed::PreseedEdit;
use osmesh_actors::region::service::RegionService;
use serde::Deserialize;

use osmesh_actors::store::Role;

use super::{ApiResult, ErrorBody, Routes};
use osmesh_actors::region::preseed::{PreseedVersionView, PreseedView};

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, edit, history, resolve))]
pub(super) struct Doc;

/// A template is the script a machine runs at install time: only `admin` edits one.
pub(super) fn routes(r: &mut Routes) {
    r.get("/preseeds", Role::Reader, list)
        .get("/preseeds/{name}", Role::Reader, show)
        .put("/preseeds/{name}", Role::Admin, edit)
        .get("/preseeds/{name}/history", Role::Reader, history)
        .post("/preseeds/{name}/resolve", Role::Admin, resolve);
}

/// Which side of a conflict to keep.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    version: i32,
}

/// Every template's head version and open conflicts.
#[utoipa::path(get, path = "/api/v1/preseeds", tag = "preseeds", responses((status = 200, body = Vec<PreseedView>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseeds().await?))
}

/// One template.
#[utoipa::path(get, path = "/api/v1/preseeds/{name}", tag = "preseeds", params(("name" = String, Path, description = "Template name")), responses((status = 200, body = PreseedView), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn show(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseed(&name).await?))
}

/// Every version of a template, oldest first (none is ever lost).
#[utoipa::path(get, path = "/api/v1/preseeds/{name}/history", tag = "preseeds", params(("name" = String, Path, description = "Template name")), responses((status = 200, body = Vec<PreseedVersionView>), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn history(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseed_history(&name).await?))
}

/// An operator edit: a new version, refused if based on an old one.
#[utoipa::path(put, path = "/api/v1/preseeds/{name}", tag = "preseeds", params(("name" = String, Path, description = "Template name")), request_body = PreseedEdit, responses((status = 200, body = PreseedView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn edit(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<PreseedEdit>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.edit_preseed(&name, &body).await?))
}

/// Resolves a conflict by keeping one version.
#[utoipa::path(post, path = "/api/v1/preseeds/{name}/resolve", tag = "preseeds", params(("name" = String, Path, description = "Template name")), request_body = ResolveBody, responses((status = 200, body = PreseedView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn resolve(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<ResolveBody>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.resolve_preseed(&name, body.version).await?))
}
