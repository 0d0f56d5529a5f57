//! `/api/v1/license-keys`: add (validated by a cluster), list, show, replace, delete; keys
//! are masked in every answer.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::license::LicenseKeyRequest;
use osmesh_actors::region::service::RegionService;
use osmesh_api::license::LicenseKeyUpdate;

use osmesh_store::Role;

use super::{ApiResult, ErrorBody, Routes};
use osmesh_actors::region::license::LicenseKeyView;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, add, show, update, delete))]
pub(super) struct Doc;

/// Anyone may list (keys are masked); only `admin` changes keys.
pub(super) fn routes(r: &mut Routes) {
    let one = "/license-keys/{osystem}/{distro_series}";
    r.get("/license-keys", Role::Reader, list)
        .post("/license-keys", Role::Admin, add)
        .get(one, Role::Reader, show)
        .put(one, Role::Admin, update)
        .delete(one, Role::Admin, delete);
}

/// Every license key, masked.
#[utoipa::path(get, path = "/api/v1/license-keys", tag = "license-keys", responses((status = 200, body = Vec<LicenseKeyView>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.license_keys().await?))
}

/// Adds a key once a connected cluster that knows the release has validated it.
#[utoipa::path(post, path = "/api/v1/license-keys", tag = "license-keys", request_body = LicenseKeyRequest, responses((status = 201, body = LicenseKeyView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "No cluster supports the OS or release", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody), (status = 503, description = "No cluster can answer", body = ErrorBody)))]
async fn add(service: web::Data<RegionService>, body: web::Json<LicenseKeyRequest>) -> ApiResult {
    Ok(HttpResponse::Created().json(service.add_license_key(&body).await?))
}

/// One release's key, masked.
#[utoipa::path(get, path = "/api/v1/license-keys/{osystem}/{distro_series}", tag = "license-keys", params(("osystem" = String, Path, description = "OS name"), ("distro_series" = String, Path, description = "Release")), responses((status = 200, body = LicenseKeyView), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn show(service: web::Data<RegionService>, path: web::Path<(String, String)>) -> ApiResult {
    let (osystem, series) = path.into_inner();
    Ok(HttpResponse::Ok().json(service.license_key(&osystem, &series).await?))
}

/// Replaces a release's key, validated again.
#[utoipa::path(put, path = "/api/v1/license-keys/{osystem}/{distro_series}", tag = "license-keys", params(("osystem" = String, Path, description = "OS name"), ("distro_series" = String, Path, description = "Release")), request_body = LicenseKeyUpdate, responses((status = 200, body = LicenseKeyView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "No cluster can answer", body = ErrorBody)))]
async fn update(
    service: web::Data<RegionService>,
    path: web::Path<(String, String)>,
    body: web::Json<LicenseKeyUpdate>,
) -> ApiResult {
    let (osystem, distro_series) = path.into_inner();
    let request = LicenseKeyRequest {
        osystem,
        distro_series,
        license_key: body.into_inner().license_key,
    };
    Ok(HttpResponse::Ok().json(service.update_license_key(&request).await?))
}

/// Deletes a release's key.
#[utoipa::path(delete, path = "/api/v1/license-keys/{osystem}/{distro_series}", tag = "license-keys", params(("osystem" = String, Path, description = "OS name"), ("distro_series" = String, Path, description = "Release")), responses((status = 204, description = "Deleted"), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn delete(service: web::Data<RegionService>, path: web::Path<(String, String)>) -> ApiResult {
    let (osystem, series) = path.into_inner();
    service.delete_license_key(&osystem, &series).await?;
    Ok(HttpResponse::NoContent().finish())
}
