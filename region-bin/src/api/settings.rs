//! `/api/v1/settings`: the OS settings, checked against the mesh view on update.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::settings::OsSettings;

use osmesh_store::Role;

use super::{ApiResult, ErrorBody, Routes};

#[derive(utoipa::OpenApi)]
#[openapi(paths(show, update))]
pub(super) struct Doc;

pub(super) fn routes(r: &mut Routes) {
    r.get("/settings", Role::Reader, show)
        .put("/settings", Role::Operator, update);
}

/// The default OS, release and commissioning release.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", responses((status = 200, body = OsSettings), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn show(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.settings().await?))
}

/// Sets the defaults, checked against what the clusters support.
#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", request_body = OsSettings, responses((status = 200, body = OsSettings), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody)))]
async fn update(service: web::Data<RegionService>, body: web::Json<OsSettings>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.update_settings(&body).await?))
}
