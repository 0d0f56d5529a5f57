//! `/api/v1/settings`: the OS settings, checked against the mesh view on update.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::settings::OsSettings;

use super::{resource, ApiResult};

pub(super) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope.service(
        resource("/settings")
            .route(web::get().to(show))
            .route(web::put().to(update)),
    )
}

async fn show(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.settings().await?))
}

async fn update(service: web::Data<RegionService>, body: web::Json<OsSettings>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.update_settings(&body).await?))
}
