//! `/api/v1/nodes`: enlist, list, show, delete, allocate, release, and render a preseed.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::nodes::{AllocateRequest, EnlistRequest};
use osmesh_actors::region::service::RegionService;
use serde::Deserialize;

use super::{resource, ApiResult};

pub(super) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    // `/nodes/allocate` before `/nodes/{id}`, so "allocate" is never read as an id.
    scope
        .service(
            resource("/nodes")
                .route(web::get().to(list))
                .route(web::post().to(enlist)),
        )
        .service(resource("/nodes/allocate").route(web::post().to(allocate)))
        .service(
            resource("/nodes/{id}")
                .route(web::get().to(show))
                .route(web::delete().to(delete)),
        )
        .service(resource("/nodes/{id}/release").route(web::post().to(release)))
        .service(resource("/nodes/{id}/preseed").route(web::get().to(preseed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreseedQuery {
    #[serde(rename = "type")]
    preseed_type: String,
}

async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.nodes().await?))
}

async fn enlist(service: web::Data<RegionService>, body: web::Json<EnlistRequest>) -> ApiResult {
    Ok(HttpResponse::Created().json(service.enlist_node(&body).await?))
}

async fn show(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.node(*id).await?))
}

async fn delete(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    service.delete_node(*id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn allocate(
    service: web::Data<RegionService>,
    body: web::Json<AllocateRequest>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.allocate_node(&body).await?))
}

async fn release(service: web::Data<RegionService>, id: web::Path<i64>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.release_node(*id).await?))
}

async fn preseed(
    service: web::Data<RegionService>,
    id: web::Path<i64>,
    query: web::Query<PreseedQuery>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.render_preseed(*id, &query.preseed_type).await?))
}
