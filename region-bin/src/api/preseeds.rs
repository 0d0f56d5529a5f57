//! `/api/v1/preseeds`: current versions, history, edits based on a version, resolution;
//! `/api/v1/cluster-templates`: each cluster's templates and an admin's approval of them.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::preseed::PreseedEdit;
use osmesh_actors::region::service::{RegionService, ServiceError};
use osmesh_api::preseeds::ResolveRequest;
use serde::Deserialize;

use osmesh_store::Role;

use super::{ApiError, ApiResult, ErrorBody, Routes};
use osmesh_actors::region::preseed::{ClusterTemplateView, PreseedVersionView, PreseedView};
use osmesh_core::ClusterId;

#[derive(utoipa::OpenApi)]
#[openapi(paths(list, show, edit, history, resolve, cluster_templates, approve, refuse))]
pub(super) struct Doc;

/// A template is the script a machine runs at install time: only `admin` edits one, or lets
/// a cluster's template serve that cluster's nodes.
pub(super) fn routes(r: &mut Routes) {
    r.get("/preseeds", Role::Reader, list)
        .get("/preseeds/{name}", Role::Reader, show)
        .put("/preseeds/{name}", Role::Admin, edit)
        .get("/preseeds/{name}/history", Role::Reader, history)
        .post("/preseeds/{name}/resolve", Role::Admin, resolve)
        .get("/cluster-templates", Role::Reader, cluster_templates)
        .post(
            "/cluster-templates/{cluster}/{name}/approve",
            Role::Admin,
            approve,
        )
        .post(
            "/cluster-templates/{cluster}/{name}/refuse",
            Role::Admin,
            refuse,
        );
}

/// Every template name a cluster shipped, with its state (`pending` ones wait for an admin),
/// sorted by cluster then name.
#[utoipa::path(get, path = "/api/v1/cluster-templates", tag = "preseeds", responses((status = 200, body = Vec<ClusterTemplateView>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn cluster_templates(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.cluster_templates().await?))
}

/// Lets what the cluster ships as this template serve the cluster's own nodes.
#[utoipa::path(post, path = "/api/v1/cluster-templates/{cluster}/{name}/approve", tag = "preseeds", params(("cluster" = String, Path, description = "Cluster id"), ("name" = String, Path, description = "Template name")), responses((status = 200, body = ClusterTemplateView), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn approve(
    service: web::Data<RegionService>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (cluster, name) = path.into_inner();
    let view = service
        .decide_cluster_template(&ClusterId::new(cluster), &name, true)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Stops what the cluster ships as this template from serving any node.
#[utoipa::path(post, path = "/api/v1/cluster-templates/{cluster}/{name}/refuse", tag = "preseeds", params(("cluster" = String, Path, description = "Cluster id"), ("name" = String, Path, description = "Template name")), responses((status = 200, body = ClusterTemplateView), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn refuse(service: web::Data<RegionService>, path: web::Path<(String, String)>) -> ApiResult {
    let (cluster, name) = path.into_inner();
    let view = service
        .decide_cluster_template(&ClusterId::new(cluster), &name, false)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Every template's head version and open conflicts.
#[utoipa::path(get, path = "/api/v1/preseeds", tag = "preseeds", responses((status = 200, body = Vec<PreseedView>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn list(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseeds().await?))
}

/// One template.
#[utoipa::path(get, path = "/api/v1/preseeds/{name}", tag = "preseeds", params(("name" = String, Path, description = "Template name")), responses((status = 200, body = PreseedView), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn show(service: web::Data<RegionService>, name: web::Path<String>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.preseed(&name).await?))
}

/// Versions per history page when the client names no `limit`: each may be 256 KiB, so a
/// page is at most 5 MiB (before: the whole history, 50 MB for 50 edits of 1 MB).
pub const HISTORY_PAGE_DEFAULT: usize = 20;

/// The largest `limit` a client may ask for (25 MiB of versions at most).
pub const HISTORY_PAGE_MAX: usize = 100;

/// One page of a history: `?after_version=N&limit=M`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    after_version: Option<i32>,
    limit: Option<usize>,
}

/// A page of versions, oldest first, as a JSON array; when the page is full, a
/// `Link: <…?after_version=N&limit=M>; rel="next"` header names the next one.
#[utoipa::path(get, path = "/api/v1/preseeds/{name}/history", tag = "preseeds", params(("name" = String, Path, description = "Template name"), ("after_version" = Option<i32>, Query, description = "Versions after this one"), ("limit" = Option<usize>, Query, description = "Versions per page (1 to 100, default 20)")), responses((status = 200, body = Vec<PreseedVersionView>), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn history(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> ApiResult {
    let limit = query.limit.unwrap_or(HISTORY_PAGE_DEFAULT);
    if limit == 0 || limit > HISTORY_PAGE_MAX {
        return Err(ApiError(ServiceError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {HISTORY_PAGE_MAX}"),
        )));
    }
    let page = service
        .preseed_history_page(&name, query.after_version, limit)
        .await?;
    let mut response = HttpResponse::Ok();
    if let (true, Some(last)) = (page.len() == limit, page.last()) {
        response.insert_header((
            actix_web::http::header::LINK,
            format!(
                "</api/v1/preseeds/{}/history?after_version={}&limit={limit}>; rel=\"next\"",
                name.as_str(),
                last.version
            ),
        ));
    }
    Ok(response.json(page))
}

/// An operator edit: a new version, refused if based on an old one.
#[utoipa::path(put, path = "/api/v1/preseeds/{name}", tag = "preseeds", params(("name" = String, Path, description = "Template name")), request_body = PreseedEdit, responses((status = 200, body = PreseedView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn edit(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<PreseedEdit>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.edit_preseed(&name, &body).await?))
}

/// Resolves a conflict by keeping one version.
#[utoipa::path(post, path = "/api/v1/preseeds/{name}/resolve", tag = "preseeds", params(("name" = String, Path, description = "Template name")), request_body = ResolveRequest, responses((status = 200, body = PreseedView), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's role may not", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict", body = ErrorBody)))]
async fn resolve(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    body: web::Json<ResolveRequest>,
) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.resolve_preseed(&name, body.version).await?))
}
