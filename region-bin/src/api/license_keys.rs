//! `/api/v1/license-keys`: add (validated by a cluster), list, show, replace, delete; keys
//! are masked in every answer.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::license::LicenseKeyRequest;
use osmesh_actors::region::service::RegionService;
use serde::Deserialize;

use osmesh_actors::store::Role;

use super::{ApiResult, Routes};

/// Anyone may list (keys are masked); only `admin` changes keys.
pub(super) fn routes(r: &mut Routes) {
    let one = "/license-keys/{osystem}/{distro_series}";
    r.get("/license-keys", Role::Reader, list)
        .post("/license-keys", Role::Admin, add)
        .get(one, Role::Reader, show)
        .put(one, Role::Admin, update)
        .delete(one, Role::Admin, delete);
}

/// The body of a PUT: the release comes from the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    license_key: String,
}

async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.license_keys().await?))
}

async fn add(service: web::Data<RegionService>, body: web::Json<LicenseKeyRequest>) -> ApiResult {
    Ok(HttpResponse::Created().json(service.add_license_key(&body).await?))
}

async fn show(service: web::Data<RegionService>, path: web::Path<(String, String)>) -> ApiResult {
    let (osystem, series) = path.into_inner();
    Ok(HttpResponse::Ok().json(service.license_key(&osystem, &series).await?))
}

async fn update(
    service: web::Data<RegionService>,
    path: web::Path<(String, String)>,
    body: web::Json<KeyBody>,
) -> ApiResult {
    let (osystem, distro_series) = path.into_inner();
    let request = LicenseKeyRequest {
        osystem,
        distro_series,
        license_key: body.into_inner().license_key,
    };
    Ok(HttpResponse::Ok().json(service.update_license_key(&request).await?))
}

async fn delete(service: web::Data<RegionService>, path: web::Path<(String, String)>) -> ApiResult {
    let (osystem, series) = path.into_inner();
    service.delete_license_key(&osystem, &series).await?;
    Ok(HttpResponse::NoContent().finish())
}
