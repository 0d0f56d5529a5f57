//! The HTTP API (actix-web, JSON). Handlers stay thin: parse, call the region service, render.
//! Every refusal is JSON `{"code": "...", "message": "..."}` with a 4xx or 5xx status; bad
//! paths, queries and bodies are 4xx, never 500.

use actix_web::http::StatusCode;
use actix_web::{error, web, HttpRequest, HttpResponse, ResponseError};
use osmesh_actors::region::service::{
    FailureKind, RegionService, ServiceError, DEFAULT_LIVE_TIMEOUT,
};
use osmesh_actors::region::{ClusterPart, OsystemsAnswer, ReadPath};
use osmesh_core::mesh::MeshView;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod license_keys;
mod nodes;
mod preseeds;
mod settings;

/// An API refusal: the service's error, rendered as JSON with its status.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        ApiError(err)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0.kind {
            FailureKind::BadRequest => StatusCode::BAD_REQUEST,
            FailureKind::NotFound => StatusCode::NOT_FOUND,
            FailureKind::Conflict => StatusCode::CONFLICT,
            FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            FailureKind::OverLimit => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: self.0.code,
            message: &self.0.message,
        })
    }
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError(ServiceError::new(FailureKind::BadRequest, code, message))
}

/// The largest JSON body accepted (preseed templates are the big ones).
pub const MAX_BODY: usize = 1 << 20;

type ApiResult = Result<HttpResponse, ApiError>;

/// A resource whose unsupported methods answer a JSON 405, like every other refusal.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Mounts every route, with JSON errors for malformed queries, bodies and paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(RenderedView::default()))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            error::InternalError::from_response(
                err.to_string(),
                bad_request("bad_query", err.to_string()).error_response(),
            )
            .into()
        }))
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_BODY)
                .error_handler(|err, _req| {
                    let response = match err {
                        error::JsonPayloadError::Overflow { .. }
                        | error::JsonPayloadError::OverflowKnownLength { .. } => {
                            crate::limits::body_too_large(MAX_BODY)
                        }
                        _ => bad_request("bad_body", err.to_string()).error_response(),
                    };
                    error::InternalError::from_response(err.to_string(), response).into()
                }),
        )
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            error::InternalError::from_response(
                err.to_string(),
                bad_request("bad_path", err.to_string()).error_response(),
            )
            .into()
        }))
        .service(domain_routes(
            web::scope("/api/v1")
                .route("/clusters", web::get().to(clusters))
                .route("/osystems", web::get().to(osystems))
                .route(
                    "/osystems/{name}/releases/{release}",
                    web::get().to(release),
                ),
        ))
        .default_service(web::to(not_found));
}

/// License keys, settings, nodes and preseeds.
fn domain_routes(scope: actix_web::Scope) -> actix_web::Scope {
    let scope = license_keys::routes(scope);
    let scope = settings::routes(scope);
    let scope = nodes::routes(scope);
    preseeds::routes(scope)
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(ErrorBody {
        code: "method_not_allowed",
        message: &format!("{} is not allowed on {}", req.method(), req.path()),
    })
}

async fn not_found(req: HttpRequest) -> ApiResult {
    Err(ApiError(ServiceError::new(
        FailureKind::NotFound,
        "no_such_route",
        format!("no route for {} {}", req.method(), req.path()),
    )))
}

async fn clusters(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.clusters().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OsystemsQuery {
    #[serde(default)]
    live: bool,
    timeout_ms: Option<u64>,
}

async fn osystems(
    service: web::Data<RegionService>,
    rendered: web::Data<RenderedView>,
    query: web::Query<OsystemsQuery>,
) -> ApiResult {
    if !query.live {
        if query.timeout_ms.is_some() {
            return Err(bad_request(
                "bad_query",
                "timeout_ms only applies to a live read (live=true)",
            ));
        }
        let answer = service.osystems_cached().await?;
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(rendered.render(&answer)?));
    }
    let timeout = query
        .timeout_ms
        .map_or(DEFAULT_LIVE_TIMEOUT, Duration::from_millis);
    Ok(HttpResponse::Ok().json(service.osystems_live(timeout).await?))
}

async fn release(
    service: web::Data<RegionService>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (name, release) = path.into_inner();
    Ok(HttpResponse::Ok().json(service.release(&name, &release).await?))
}

/// The cached view's JSON, kept while the region hands out the same merged view (it keeps one
/// until a snapshot or a link changes), so a cached read renders only the per-cluster parts.
/// At 1,000 clusters the view is most of a 750 KiB answer.
#[derive(Default)]
pub struct RenderedView {
    last: Mutex<Option<(Arc<MeshView>, Box<RawValue>)>>,
}

/// An `OsystemsAnswer` with its view already rendered.
#[derive(Serialize)]
struct RenderedAnswer<'a> {
    source: ReadPath,
    view: &'a RawValue,
    clusters: &'a [ClusterPart],
    deadline_ms: Option<u64>,
    elapsed_ms: Option<u64>,
}

impl RenderedView {
    fn render(&self, answer: &OsystemsAnswer) -> Result<Vec<u8>, ApiError> {
        let internal = |e: serde_json::Error| {
            ApiError(ServiceError::new(
                FailureKind::Internal,
                "render_failed",
                e.to_string(),
            ))
        };
        // A poisoned lock only means a render panicked; the slot is overwritten below anyway.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let view: &RawValue = match &mut *last {
            Some((view, raw)) if Arc::ptr_eq(view, &answer.view) => raw,
            slot => {
                let json = serde_json::to_string(&*answer.view).map_err(internal)?;
                let raw = RawValue::from_string(json).map_err(internal)?;
                &slot.insert((answer.view.clone(), raw)).1
            }
        };
        serde_json::to_vec(&RenderedAnswer {
            source: answer.source,
            view,
            clusters: &answer.clusters,
            deadline_ms: answer.deadline_ms,
            elapsed_ms: answer.elapsed_ms,
        })
        .map_err(internal)
    }
}
