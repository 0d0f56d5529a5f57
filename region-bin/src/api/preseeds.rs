//! `/api/v1/preseeds`: current versions, history, edits based on a version, resolution.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::preseed::PreseedEdit;
use osmesh_actors::region::service::RegionService;
use serde::Deserialize;

use osmesh_actors::store::Role;

use super::{ApiResult, Routes};

/// A template is the script a machine runs at install time: only `admin` edits one.
pub(super) fn routes(r: &mut Routes) {
    r.get("/preseeds", Role::Reader, list)
        .get("/preseeds/{name}", Role::Reader, show)
        .put("/preseeds/{name}", Role::Admin, edit)
        .get("/preseeds/{name}/history", Role::Reader, history)
        .post("/preseeds/{name}/resolve", Role::Admin, resolve);
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
