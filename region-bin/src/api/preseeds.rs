//! `/api/v1/preseeds`: current versions, history, edits based on a version, resolution.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::preseed::PreseedEdit;
use osmesh_actors::region::service::RegionService;
use serde::Deserialize;

use super::{resource, ApiResult};

pub(super) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope
        .service(resource("/preseeds").route(web::get().to(list)))
        .service(
            resource("/preseeds/{name}")
                .route(web::get().to(show))
                .route(web::put().to(edit)),
        )
        .service(resource("/preseeds/{name}/history").route(web::get().to(history)))
        .service(resource("/preseeds/{name}/resolve").route(web::post().to(resolve)))
}

/// Which side of a conflict to keep.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    version: i32,
}

async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseeds().await?))
}

async fn show(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseed(&name).await?))
}

async fn history(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseed_history(&name).await?))
}

async fn edit(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<PreseedEdit>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.edit_preseed(&name, &body).await?))
}

async fn resolve(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<ResolveBody>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.resolve_preseed(&name, body.version).await?))
}
