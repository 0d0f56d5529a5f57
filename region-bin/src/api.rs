//! The HTTP API (actix-web, JSON). Handlers stay thin: parse, call the region service, render.
//! Every refusal is JSON `{"code": "...", "message": "..."}` with a 4xx or 5xx status; bad
//! paths, queries and bodies are 4xx, never 500.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{from_fn, Compress};
use actix_web::{
    error, web, App, FromRequest, Handler, HttpRequest, HttpResponse, Responder, ResponseError,
};
use osmesh_actors::region::service::ReleaseAnswer;
use osmesh_actors::region::service::{
    FailureKind, RegionService, ServiceError, DEFAULT_LIVE_TIMEOUT,
};
use osmesh_actors::region::{CachedHead, CachedValidator, ClusterStatus, OsystemsAnswer, ReadPath};
use osmesh_core::mesh::MeshView;
use osmesh_store::{Role, Store};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{AccessRule, AuthState};
use gzip::{Coding, KeptJson};

mod enrollment;
mod gzip;
mod images;
mod license_keys;
mod nodes;
mod preseeds;
mod regions;
mod settings;
mod tokens;

/// The OpenAPI paths of every API handler, each module's merged into one document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(clusters, osystems, release))]
    struct Doc;
    let mut doc = Doc::openapi();
    for part in [
        images::Doc::openapi(),
        license_keys::Doc::openapi(),
        settings::Doc::openapi(),
        nodes::Doc::openapi(),
        preseeds::Doc::openapi(),
        regions::Doc::openapi(),
        tokens::Doc::openapi(),
        enrollment::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

/// An API refusal: the service's error, rendered as JSON with its status.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

/// Every refusal: a stable machine-readable code and a sentence for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
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

    /// A 5xx whose message may carry driver or infrastructure text (database errors name hosts
    /// and addresses) answers a generic message and a request id; the detail goes to the log
    /// under that id. Messages osmesh writes itself about the mesh stay (see
    /// [`DOMAIN_5XX_CODES`]).
    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() && !DOMAIN_5XX_CODES.contains(&self.0.code) {
            let request_id = request_id();
            tracing::error!(%request_id, code = self.0.code, detail = %self.0.message, "request failed");
            return HttpResponse::build(status).json(InternalBody {
                code: self.0.code,
                message: "the region could not complete the request; its log has the detail",
                request_id: &request_id,
            });
        }
        HttpResponse::build(status).json(ErrorBody {
            code: self.0.code,
            message: &self.0.message,
        })
    }
}

/// 5xx codes whose messages osmesh composes from its own state (which cluster is not
/// connected, which template line failed), never from a driver's error text.
const DOMAIN_5XX_CODES: &[&str] = &[
    "cluster_unavailable",
    "no_cluster_can_validate",
    "preseed_render_failed",
];

#[derive(Serialize)]
struct InternalBody<'a> {
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// A random id tying a generic 5xx answer to its log line.
pub(crate) fn request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The largest JSON body accepted (preseed templates are the big ones).
pub const MAX_BODY: usize = 1 << 20;

type ApiResult = Result<HttpResponse, ApiError>;

/// A resource whose unsupported methods answer a JSON 405, like every other refusal.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Where every route is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// The API's routes, each registered with the role it needs: the one table that both
/// [`configure`] mounts and the authentication middleware (and `tests/auth.rs`) reads, so a
/// route cannot exist without an access rule.
pub struct Routes {
    /// Resources in registration order (it decides matching: `/nodes/allocate` before
    /// `/nodes/{id}`), each with its routes.
    resources: Vec<(String, Vec<actix_web::Route>)>,
    rules: Vec<AccessRule>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            resources: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Registers `method` on `path` (below [`API_PREFIX`]), callable by `role` and above.
    pub fn add<F, Args>(&mut self, method: Method, path: &str, role: Role, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let full = format!("{API_PREFIX}{path}");
        let route = web::method(method.clone()).to(handler);
        match self.resources.iter_mut().find(|(p, _)| *p == full) {
            Some((_, routes)) => routes.push(route),
            None => self.resources.push((full.clone(), vec![route])),
        }
        self.rules.push(AccessRule {
            method,
            path: full,
            role,
        });
        self
    }

    pub fn get<F, Args>(&mut self, path: &str, role: Role, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, role, handler)
    }

    pub fn post<F, Args>(&mut self, path: &str, role: Role, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, role, handler)
    }

    pub fn put<F, Args>(&mut self, path: &str, role: Role, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PUT, path, role, handler)
    }

    pub fn delete<F, Args>(&mut self, path: &str, role: Role, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, role, handler)
    }
}

/// Every route of the API, with its rule. Reads are `reader`'s (secrets redacted); node and
/// settings writes `operator`'s; license keys, preseed edits, tokens and the audit log `admin`'s.
fn api_routes() -> Routes {
    let mut r = Routes::new();
    r.get("/clusters", Role::Reader, clusters)
        .get("/osystems", Role::Reader, osystems)
        .get("/osystems/{name}/releases/{release}", Role::Reader, release);
    images::routes(&mut r);
    license_keys::routes(&mut r);
    settings::routes(&mut r);
    nodes::routes(&mut r);
    preseeds::routes(&mut r);
    regions::routes(&mut r);
    tokens::routes(&mut r);
    enrollment::routes(&mut r);
    r.get("/openapi.json", Role::Reader, crate::openapi::serve);
    r
}

/// The access rule of every registered route, in registration order.
pub fn access_rules() -> Vec<AccessRule> {
    api_routes().rules
}

/// The API as the server runs it: the region service, the store (its token, audit and pool
/// calls are regiond's own), the authentication middleware and its state, and every route.
pub fn app(
    service: web::Data<RegionService>,
    store: web::Data<Store>,
    auth: web::Data<AuthState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(service)
        .app_data(store)
        .app_data(auth)
        .app_data(web::Data::new(crate::limits::WriteLimiter::default()))
        // Innermost: gzip, brotli or zstd as the client's Accept-Encoding asks (actix-web's
        // default features); a 1,000-cluster cached read is ~965 KiB of repetitive JSON. The
        // cached reads come gzipped from their handler (kept, `api/gzip.rs`); `Compress`
        // leaves a response that has a `Content-Encoding` as it is.
        .wrap(Compress::default())
        .wrap(from_fn(crate::auth::authenticate))
        // Outermost, so refusals (401, 403, 429) are counted too.
        .wrap(from_fn(crate::metrics::track))
        .configure(crate::ops_routes)
        .configure(crate::ui::configure)
        .configure(configure)
}

/// Mounts every route, with JSON errors for malformed queries, bodies and paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::Data::new(RenderedView::default()))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| {
            error::InternalError::from_response(
                err.to_string(),
                ApiError(ServiceError::bad_request("bad_query", err.to_string())).error_response(),
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
                        _ => ApiError(ServiceError::bad_request("bad_body", err.to_string()))
                            .error_response(),
                    };
                    error::InternalError::from_response(err.to_string(), response).into()
                }),
        )
        .app_data(web::PathConfig::default().error_handler(|err, _req| {
            error::InternalError::from_response(
                err.to_string(),
                ApiError(ServiceError::bad_request("bad_path", err.to_string())).error_response(),
            )
            .into()
        }));
    for (path, routes) in api_routes().resources {
        let mut res = resource(&path);
        for route in routes {
            res = res.route(route);
        }
        cfg.service(res);
    }
    cfg.default_service(web::to(not_found));
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

/// Every cluster the region knows, connected or not, with its snapshot's age.
#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters",
    responses((status = 200, body = Vec<ClusterStatus>), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn clusters(service: web::Data<RegionService>) -> ApiResult {
    Ok(HttpResponse::Ok().json(service.clusters().await?))
}

/// `GET /api/v1/osystems`'s query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct OsystemsQuery {
    /// Ask every cluster now instead of reading the cached snapshots.
    #[serde(default)]
    live: bool,
    /// The live read's deadline in ms (1 to 60,000; default 2,000); only with `live=true`.
    timeout_ms: Option<u64>,
    /// `full` (the default): the view with every cluster listed; `summary`: counts by OS and
    /// release instead of cluster lists (a few KiB however many clusters).
    #[serde(default)]
    #[param(inline)]
    view: ViewForm,
}

/// Which form of the OS view an answer carries.
#[derive(Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum ViewForm {
    #[default]
    Full,
    Summary,
}

/// `GET /api/v1/osystems`'s answer: the full form, or the summary with `view=summary`.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used: the handler renders each form directly.
enum OsystemsBody {
    Full(OsystemsAnswer),
    Summary(OsystemsSummary),
}

/// `GET /api/v1/osystems?view=summary`: the view as counts of clusters, no cluster lists.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OsystemsSummary {
    source: ReadPath,
    /// Clusters the region knows.
    clusters: usize,
    /// Clusters in the view's `answered` and `not_answered`.
    answered: usize,
    not_answered: usize,
    conflicts: usize,
    osystems: Vec<OsystemSummary>,
    deadline_ms: Option<u64>,
    elapsed_ms: Option<u64>,
}

/// One OS in the summary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OsystemSummary {
    name: String,
    /// Clusters supporting it; clusters not answering whose last report listed it.
    supported_by: usize,
    last_known_by: usize,
    releases: Vec<ReleaseSummary>,
}

/// One release in the summary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReleaseSummary {
    name: String,
    requires_license_key: bool,
    end_of_life: bool,
    supported_by: usize,
    /// Clusters holding at least one image of it, on any architecture.
    available_on: usize,
    last_known_by: usize,
}

impl OsystemsSummary {
    fn of(answer: &OsystemsAnswer) -> OsystemsSummary {
        let mut summary = Self::of_view(answer.source, &answer.view, answer.clusters.len());
        summary.deadline_ms = answer.deadline_ms;
        summary.elapsed_ms = answer.elapsed_ms;
        summary
    }

    /// The summary of `view`, merged over `clusters` clusters (no deadline or duration).
    fn of_view(source: ReadPath, view: &MeshView, clusters: usize) -> OsystemsSummary {
        OsystemsSummary {
            source,
            clusters,
            answered: view.answered.len(),
            not_answered: view.not_answered.len(),
            conflicts: view.conflicts.len(),
            osystems: view
                .osystems
                .iter()
                .map(|os| OsystemSummary {
                    name: os.name.clone(),
                    supported_by: os.supported_by.len(),
                    last_known_by: os.last_known_by.len(),
                    releases: os
                        .releases
                        .iter()
                        .map(|r| ReleaseSummary {
                            name: r.name.clone(),
                            requires_license_key: r.requires_license_key,
                            end_of_life: r.end_of_life,
                            supported_by: r.supported_by.len(),
                            available_on: r
                                .available
                                .values()
                                .flat_map(|by_cluster| by_cluster.keys())
                                .collect::<std::collections::BTreeSet<_>>()
                                .len(),
                            last_known_by: r.last_known_by.len(),
                        })
                        .collect(),
                })
                .collect(),
            deadline_ms: None,
            elapsed_ms: None,
        }
    }
}

/// The merged OS view: for each OS and release, which clusters support it and which hold
/// images for it, and which clusters did not answer and why; cached (each cluster's last
/// snapshot, with its age) or live (every cluster asked now, under a deadline).
///
/// A cached read carries a weak `ETag` (see [`RenderedView::etag`]); sent back in
/// `If-None-Match`, it answers 304 with no body while nothing but the ages has changed. With
/// `Accept-Encoding: gzip` it comes gzipped from a kept compressed view.
#[utoipa::path(get, path = "/api/v1/osystems", tag = "osystems",
    params(OsystemsQuery,
        ("If-None-Match" = Option<String>, Header, description = "A cached read's earlier `ETag`: 304 while the view and every cluster's part (ages aside) are unchanged"),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip` (or `*`) with a non-zero qvalue: a cached read comes gzipped, from a compressed view kept with the view; br and zstd are compressed per response")),
    responses(
        (status = 200, description = "The mesh view and which read path answered: `OsystemsAnswer`, or `OsystemsSummary` with `view=summary`", body = OsystemsBody,
            headers(("ETag" = String, description = "Cached reads only: a weak validator over the view and the cluster parts, ages excluded; the gzip encoding's ends in `-gzip`"),
                ("Vary" = String, description = "Cached reads: `Accept-Encoding`"))),
        (status = 304, description = "Cached read, `If-None-Match` matched: unchanged apart from ages; no body",
            headers(("ETag" = String, description = "The matching validator"), ("Vary" = String, description = "`Accept-Encoding`"))),
        (status = 400, description = "Bad path, query or body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody)))]
async fn osystems(
    req: HttpRequest,
    service: web::Data<RegionService>,
    rendered: web::Data<RenderedView>,
    query: web::Query<OsystemsQuery>,
) -> ApiResult {
    if !query.live {
        if query.timeout_ms.is_some() {
            return Err(ApiError(ServiceError::bad_request(
                "bad_query",
                "timeout_ms only applies to a live read (live=true)",
            )));
        }
        return osystems_cached(&req, &service, &rendered, query.view).await;
    }
    let timeout = query
        .timeout_ms
        .map_or(DEFAULT_LIVE_TIMEOUT, Duration::from_millis);
    let answer = service.osystems_live(timeout).await?;
    // The render is inside the deadline too: its time is reserved in the next live reads.
    let rendering = std::time::Instant::now();
    let body = if query.view == ViewForm::Summary {
        serde_json::to_vec(&OsystemsSummary::of(&answer)).map_err(render_failed)?
    } else {
        AroundView::of(&answer)?.join(&rendered.live_view(&answer)?)
    };
    service.live_rendered(rendering.elapsed());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// The cached read: 304 when `If-None-Match` matches, else the form asked for, in the coding
/// `Accept-Encoding` asks for (gzip from the kept compressed view, see [`gzip`]).
async fn osystems_cached(
    req: &HttpRequest,
    service: &RegionService,
    rendered: &RenderedView,
    form: ViewForm,
) -> ApiResult {
    let coding = gzip::negotiate(req);
    // The validator first, without building 1,000s of cluster parts: a poller's 304 and
    // the summary cost the same at any size.
    let head = service.osystems_cached_head().await?;
    let etag = RenderedView::etag(&head.validator, form, coding);
    if if_none_match(req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header(header::ETag(etag))
            .insert_header(gzip::vary())
            .finish());
    }
    let (etag, body) = match form {
        ViewForm::Summary => (etag, rendered.summary(&head, coding).await?),
        ViewForm::Full => {
            // The answer and its own validator in one step: the mesh may have moved since.
            let (validator, answer) = service.osystems_cached_validated().await?;
            let etag = RenderedView::etag(&validator, form, coding);
            (etag, rendered.full(&answer, coding).await?)
        }
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header(header::ETag(etag))
        .insert_header(gzip::vary());
    if coding == Coding::Gzip {
        response.insert_header(header::ContentEncoding::Gzip);
    }
    Ok(response.body(body))
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, as RFC 9110 asks
/// for `If-None-Match`; `*` matches any current representation). An unparsable header is
/// treated as absent: the full answer is never wrong.
fn if_none_match(req: &HttpRequest, etag: &header::EntityTag) -> bool {
    use actix_web::http::header::Header;
    match header::IfNoneMatch::parse(req) {
        Ok(header::IfNoneMatch::Any) => true,
        Ok(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
        Err(_) => false,
    }
}

/// One release of one OS, from the cached view.
#[utoipa::path(get, path = "/api/v1/osystems/{name}/releases/{release}", tag = "osystems",
    params(("name" = String, Path, description = "OS name"), ("release" = String, Path, description = "Release name")),
    responses((status = 200, body = ReleaseAnswer), (status = 404, description = "No cluster supports it", body = ErrorBody), (status = 400, description = "Bad path, query or body", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody)))]
async fn release(
    service: web::Data<RegionService>,
    path: web::Path<(String, String)>,
) -> ApiResult {
    let (name, release) = path.into_inner();
    Ok(HttpResponse::Ok().json(service.release(&name, &release).await?))
}

/// The cached view's JSON, kept while the region hands out the same merged view (it keeps one
/// until a snapshot or a link changes), so a cached read renders only the per-cluster parts.
/// At 1,000 clusters the view is most of a 965 KiB answer. The summary form of the same view
/// is kept beside it. Each kept rendering also keeps its gzip encoding, made on its first
/// gzip read ([`KeptJson::piece`]), so a gzip read compresses only the cluster parts.
#[derive(Default)]
pub struct RenderedView {
    last: Mutex<Option<CachedView>>,
    /// The last live answer's view, kept apart from `last` so live reads do not evict the
    /// cached read's rendering.
    last_live: Mutex<Option<(Arc<MeshView>, web::Bytes)>>,
    summary: Mutex<Option<CachedSummary>>,
    /// How many kept renderings have been compressed (each at most once).
    compressions: Arc<AtomicU64>,
    /// How many times a view was rendered as JSON (cached and live reads).
    renders: AtomicU64,
}

struct CachedView {
    view: Arc<MeshView>,
    json: Arc<KeptJson>,
}

struct CachedSummary {
    view: Arc<MeshView>,
    clusters: usize,
    json: Arc<KeptJson>,
}

fn render_failed(e: impl fmt::Display) -> ApiError {
    ApiError(ServiceError::new(
        FailureKind::Internal,
        "render_failed",
        e.to_string(),
    ))
}

impl RenderedView {
    /// How many kept renderings (views and summaries) have been gzip-compressed: once each,
    /// so gzip reads of an unchanged view leave it as it is.
    pub fn gzip_compressions(&self) -> u64 {
        self.compressions.load(Ordering::Relaxed)
    }

    /// How many times a view was rendered as JSON: once per view however many cached and
    /// live reads show it.
    pub fn view_renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
    }

    fn render(&self, view: &MeshView) -> Result<web::Bytes, ApiError> {
        self.renders.fetch_add(1, Ordering::Relaxed);
        Ok(serde_json::to_vec(view).map_err(render_failed)?.into())
    }

    /// The full cached answer in `coding`: the kept view between the cluster parts.
    async fn full(&self, answer: &OsystemsAnswer, coding: Coding) -> Result<web::Bytes, ApiError> {
        let view = self.view(answer)?;
        let around = AroundView::of(answer)?;
        match coding {
            Coding::Identity => Ok(around.join(view.json()).into()),
            Coding::Gzip => self.gzip(view, around.head, around.tail).await,
        }
    }

    /// The cached summary in `coding`.
    async fn summary(&self, head: &CachedHead, coding: Coding) -> Result<web::Bytes, ApiError> {
        let summary = self.kept_summary(head)?;
        match coding {
            Coding::Identity => Ok(summary.json().clone()),
            Coding::Gzip => self.gzip(summary, Vec::new(), Vec::new()).await,
        }
    }

    /// One gzip member of `head`, `kept` (compressed once, on its first gzip read) and
    /// `tail`, made on a blocking thread: compressing 800 KiB must not hold an HTTP worker.
    async fn gzip(
        &self,
        kept: Arc<KeptJson>,
        head: Vec<u8>,
        tail: Vec<u8>,
    ) -> Result<web::Bytes, ApiError> {
        let compressions = self.compressions.clone();
        let member = web::block(move || {
            let piece = kept.piece(&compressions)?;
            gzip::around(&head, &piece, &tail)
        })
        .await
        .map_err(render_failed)?
        .map_err(render_failed)?;
        Ok(member.into())
    }

    /// The answer's view as JSON, rendered once per view.
    fn view(&self, answer: &OsystemsAnswer) -> Result<Arc<KeptJson>, ApiError> {
        // A poisoned lock only means a render panicked; the slot is overwritten below anyway.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some(cached) if Arc::ptr_eq(&cached.view, &answer.view) => Ok(cached.json.clone()),
            _ => {
                // A live read may have rendered this view already (the kept merge it reused).
                let live = self
                    .last_live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                let json = match live {
                    Some((view, json)) if Arc::ptr_eq(&view, &answer.view) => json,
                    _ => self.render(&answer.view)?,
                };
                let json = Arc::new(KeptJson::new(json));
                *last = Some(CachedView {
                    view: answer.view.clone(),
                    json: json.clone(),
                });
                Ok(json)
            }
        }
    }

    /// The cached summary's JSON, rendered once per view (and cluster count).
    fn kept_summary(&self, head: &CachedHead) -> Result<Arc<KeptJson>, ApiError> {
        let mut last = self.summary.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = &*last {
            if Arc::ptr_eq(&cached.view, &head.view) && cached.clusters == head.clusters {
                return Ok(cached.json.clone());
            }
        }
        let summary = OsystemsSummary::of_view(ReadPath::Cached, &head.view, head.clusters);
        let json = serde_json::to_vec(&summary).map_err(render_failed)?;
        let json = Arc::new(KeptJson::new(json.into()));
        *last = Some(CachedSummary {
            view: head.view.clone(),
            clusters: head.clusters,
            json: json.clone(),
        });
        Ok(json)
    }

    /// A live answer's view as JSON: the cached read's kept rendering when the answer reused
    /// the kept merge (every cluster answered), else the last live read's if its view is this
    /// one (the kept merge again, before any cached read rendered it), else rendered now and
    /// kept in the live slot (never in the cached read's: a live merge with clusters missing
    /// would evict it).
    fn live_view(&self, answer: &OsystemsAnswer) -> Result<web::Bytes, ApiError> {
        if let Some(cached) = &*self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if Arc::ptr_eq(&cached.view, &answer.view) {
                return Ok(cached.json.json().clone());
            }
        }
        let mut live = self.last_live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((view, json)) = &*live {
            if Arc::ptr_eq(view, &answer.view) {
                return Ok(json.clone());
            }
        }
        let json = self.render(&answer.view)?;
        *live = Some((answer.view.clone(), json.clone()));
        Ok(json)
    }

    /// The cached read's validator: the region's `CachedValidator` (its instance and the
    /// epoch of its cached answer, which moves at every change but the ages), the form and
    /// the coding. Weak (`W/"…"`), honestly so: the body carries each cluster's snapshot age
    /// in ms, which grows on every read, so no two bodies are byte-equal. Two answers with the
    /// same weak `ETag` have the same view, the same clusters, links, disconnection times and
    /// reasons; only the ages differ (a cluster that re-sent an identical snapshot keeps the
    /// `ETag` and its age restarts). A client holding a body knows its ages have grown by the
    /// time since it got it. Another region, or this one restarted, names the same answer
    /// differently: a 200 where a 304 would have done, never the reverse.
    ///
    /// The gzip encoding has its own tag (`…-gzip`). RFC 9110 §8.8.3.3 requires that only of
    /// strong tags, but a cache freshens the stored response whose validator a 304 names (RFC
    /// 9111 §4.3.4); one tag per coding keeps that response the right one. The cost: a client
    /// that changes its `Accept-Encoding` gets one 200 where a 304 would have done. A br or
    /// zstd answer (`Compress`, from the identity body) carries the identity tag, as weak tags
    /// may.
    fn etag(validator: &CachedValidator, form: ViewForm, coding: Coding) -> header::EntityTag {
        let form = match form {
            ViewForm::Full => "full",
            ViewForm::Summary => "summ",
        };
        let coding = match coding {
            Coding::Identity => "",
            Coding::Gzip => "-gzip",
        };
        header::EntityTag::new_weak(format!(
            "{form}-{:016x}-{:x}{coding}",
            validator.instance, validator.epoch
        ))
    }
}

/// An `OsystemsAnswer`'s JSON but for its view, which goes between `head` and `tail`: the kept
/// view, or its kept compressed piece, is used as it is.
struct AroundView {
    /// `{"source":…,"view":`
    head: Vec<u8>,
    /// `,"clusters":[…],"deadline_ms":…,"elapsed_ms":…}`
    tail: Vec<u8>,
}

impl AroundView {
    /// Field for field what `OsystemsAnswer`'s `Serialize` writes (a test holds them equal).
    fn of(answer: &OsystemsAnswer) -> Result<AroundView, ApiError> {
        let mut head = br#"{"source":"#.to_vec();
        serde_json::to_writer(&mut head, &answer.source).map_err(render_failed)?;
        head.extend_from_slice(br#","view":"#);
        let mut tail = br#","clusters":"#.to_vec();
        serde_json::to_writer(&mut tail, &answer.clusters).map_err(render_failed)?;
        tail.extend_from_slice(br#","deadline_ms":"#);
        serde_json::to_writer(&mut tail, &answer.deadline_ms).map_err(render_failed)?;
        tail.extend_from_slice(br#","elapsed_ms":"#);
        serde_json::to_writer(&mut tail, &answer.elapsed_ms).map_err(render_failed)?;
        tail.push(b'}');
        Ok(AroundView { head, tail })
    }

    fn join(self, view: &[u8]) -> Vec<u8> {
        [&self.head[..], view, &self.tail[..]].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osmesh_actors::region::ClusterPart;
    use osmesh_core::mesh::NoAnswerReason;
    use osmesh_core::ClusterId;

    #[test]
    fn the_answer_around_its_view_is_the_answers_own_json() {
        let part = |id: &str, connected: bool| ClusterPart {
            cluster: ClusterId::new(id),
            name: format!("{id} \"quoted\""),
            connected,
            disconnected_since_ms: (!connected).then_some(17),
            age_ms: Some(42),
            no_answer: (!connected).then_some(NoAnswerReason::NotConnected),
        };
        let mut view = MeshView::default();
        view.answered.insert(ClusterId::new("a"));
        for (source, deadline_ms) in [(ReadPath::Cached, None), (ReadPath::Live, Some(500))] {
            let answer = OsystemsAnswer {
                source,
                view: Arc::new(view.clone()),
                clusters: vec![part("a", true), part("b", false)],
                deadline_ms,
                elapsed_ms: deadline_ms.map(|d| d / 2),
            };
            let view_json = serde_json::to_vec(&*answer.view).unwrap();
            assert_eq!(
                AroundView::of(&answer).unwrap().join(&view_json),
                serde_json::to_vec(&answer).unwrap()
            );
        }
    }
}
