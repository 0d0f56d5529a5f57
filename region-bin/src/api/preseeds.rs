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
async fn history(
    service: web::Data<RegionService>,
    name: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> ApiResult {
    let limit = query.limit.unwrap_or(HISTORY_PAGE_DEFAULT);
    if limit == 0 || limit > HISTORY_PAGE_MAX {
        return Err(super::bad_request(
            "bad_query",
            format!("limit must be between 1 and {HISTORY_PAGE_MAX}"),
        ));
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
