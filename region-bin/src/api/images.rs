//! `/api/v1/images`: per-image records (arch, subarch, kernel flavour, label, purposes) of every
//! cluster, filtered by `osystem`, `release` and `arch` query parameters.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::images::{ImageFilter, ImagesAnswer};
use osmesh_actors::region::service::RegionService;
use osmesh_store::Role;

use super::{ApiResult, ErrorBody, Routes};

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub(super) struct Doc;

pub(super) fn routes(r: &mut Routes) {
    r.get("/images", Role::Reader, list);
}

/// Every image every cluster holds (a disconnected cluster's only as last known).
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(ImageFilter), responses((status = 200, body = ImagesAnswer), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>, filter: web::Query<ImageFilter>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.images(&filter).await?))
}
