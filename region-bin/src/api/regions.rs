//! `/api/v1/regions`: every region sharing this database (issue 15), up or down, with the
//! clusters linked to each, and which clusters reach only some of the live regions.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::regions::RegionsAnswer;
use osmesh_actors::region::service::RegionService;
use osmesh_store::Role;

use super::{ApiResult, ErrorBody, Routes};

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
pub(super) struct Doc;

pub(super) fn routes(r: &mut Routes) {
    r.get("/regions", Role::Reader, list);
}

/// The region registry: each region's endpoints, heartbeat, state and linked clusters.
#[utoipa::path(get, path = "/api/v1/regions", tag = "regions", responses((status = 200, body = RegionsAnswer), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.regions().await?))
}
