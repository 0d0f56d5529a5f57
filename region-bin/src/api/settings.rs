//! `/api/v1/settings`: the OS settings, checked against the mesh view on update.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::settings::OsSettings;

use osmesh_actors::store::Role;

use super::{ApiResult, Routes};

pub(super) fn routes(r: &mut Routes) {
    r.get("/settings", Role::Reader, show)
        .put("/settings", Role::Operator, update);
}

async fn show(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.settings().await?))
}

async fn update(service: web::Data<RegionService>, body: web::Json<OsSettings>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.update_settings(&body).await?))
}
