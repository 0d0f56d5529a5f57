//! `/api/v1/images`: per-image records (arch, subarch, kernel flavour, label, purposes) of every
//! cluster, filtered by `osystem`, `release` and `arch` query parameters.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::images::ImageFilter;
use osmesh_actors::region::service::RegionService;

use super::{resource, ApiResult};

pub(super) fn routes(scope: actix_web::Scope) -> actix_web::Scope {
    scope.service(resource("/images").route(web::get().to(list)))
}

async fn list(service: web::Data<RegionService>, filter: web::Query<ImageFilter>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.images(&filter).await?))
}
