//! `GET /metrics` (Prometheus text exposition) and the HTTP middleware that counts and times
//! every request by route pattern (`/api/v1/nodes/:id`, never the raw path), method
//! and status. Gauges that describe state (clusters, snapshot age, the DB pool) are read at
//! scrape time. Exempt from API authentication; it shows counts, never names or secrets.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_store::Store;
use osmesh_telemetry::metrics::{name, CONTENT_TYPE};

pub const METRICS: &str = "/metrics";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(METRICS, web::get().to(metrics));
}

/// Every metric of the process, Prometheus text exposition format (state gauges read now).
/// Needs a token unless regiond runs with `--open-metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token", body = crate::api::ErrorBody)))]
pub async fn metrics(service: web::Data<RegionService>, store: web::Data<Store>) -> HttpResponse {
    if let Ok(clusters) = service.clusters().await {
        let connected = clusters.iter().filter(|c| c.connected).count();
        let oldest = clusters.iter().filter_map(|c| c.snapshot_age_ms).max();
        let without = clusters
            .iter()
            .filter(|c| c.snapshot_age_ms.is_none())
            .count();
        metrics::gauge!(name::CLUSTERS_KNOWN).set(clusters.len() as f64);
        metrics::gauge!(name::CLUSTERS_CONNECTED).set(connected as f64);
        metrics::gauge!(name::CLUSTERS_WITHOUT_SNAPSHOT).set(without as f64);
        metrics::gauge!(name::SNAPSHOT_AGE_MAX).set(oldest.unwrap_or(0).max(0) as f64 / 1000.0);
    }
    let pool = store.pool_state();
    metrics::gauge!(name::DB_POOL_IN_USE).set(f64::from(pool.in_use));
    metrics::gauge!(name::DB_POOL_IDLE).set(f64::from(pool.idle));
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(osmesh_telemetry::metrics::render())
}

/// Middleware (`actix_web::middleware::from_fn(metrics::track)`): counts and times each
/// request under its route pattern; requests no route matched count as `unmatched`.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = tokio::time::Instant::now();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .map_or_else(|| "unmatched".into(), |p| route_label(&p));
    let status = response.status().as_u16().to_string();
    metrics::counter!(name::HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(name::HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// A route pattern as a label: `{name}` segments written `:name`, so no label value holds a
/// brace (valid in the format, but some parsers and tools choke on it).
pub fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

/// The method label: the standard methods by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
