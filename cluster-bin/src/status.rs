//! clusterd's optional status listener (`--status-listen ADDR`, off by default):
//! `GET /healthz` (the process serves), `GET /readyz` (linked to a region: 200, else 503 with
//! the failed check named; `regions` lists every region link and whether it is up) and
//! `GET /metrics` (Prometheus text exposition). It serves nothing
//! else and shows no secrets; bind it to an address only monitoring can reach.

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{Context, Result};
use osmesh_actors::cluster::{ClusterActor, RegionLinkStatus, RegionLinks};
use osmesh_telemetry::metrics::{name, CONTENT_TYPE};
use serde_json::json;

/// Binds the status listener and returns its server (spawn or await it) and bound addresses.
/// Must be called inside an actix `System`.
pub fn start(
    addr: &str,
    cluster: Addr<ClusterActor>,
) -> Result<(actix_web::dev::Server, Vec<std::net::SocketAddr>)> {
    osmesh_telemetry::metrics::install();
    let data = web::Data::new(cluster);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(json!({"code": "no_such_route", "message": "the status listener serves /healthz, /readyz and /metrics"}))
            }))
    })
    .workers(1)
    .shutdown_timeout(1)
    .bind(addr)
    .with_context(|| format!("cannot listen for status on {addr}"))?;
    let addrs = server.addrs();
    tracing::info!(status = ?addrs, "status listener started");
    Ok((server.run(), addrs))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Every region link the cluster keeps (one per live region once a region listed them).
async fn links(cluster: &Addr<ClusterActor>) -> Result<Vec<RegionLinkStatus>, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), cluster.send(RegionLinks)).await {
        Ok(Ok(links)) => Ok(links),
        Ok(Err(e)) => Err(format!("the cluster actor is not running: {e}")),
        Err(_) => Err("the cluster actor did not answer within 2 s".into()),
    }
}

async fn readyz(cluster: web::Data<Addr<ClusterActor>>) -> HttpResponse {
    let links = links(&cluster).await;
    let detail = match &links {
        Ok(links) if links.iter().any(|l| l.connected) => None,
        Ok(_) => Some("not linked to any region (dialling)".to_string()),
        Err(e) => Some(e.clone()),
    };
    let ready = detail.is_none();
    let regions: Vec<_> = links
        .unwrap_or_default()
        .into_iter()
        .map(|l| json!({"region_id": l.region_id, "name": l.name, "addrs": l.addrs, "connected": l.connected}))
        .collect();
    let body = json!({
        "ready": ready,
        "failed": if ready { vec![] } else { vec!["region_link"] },
        "checks": [{"name": "region_link", "ok": ready, "detail": detail}],
        "regions": regions,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(cluster: web::Data<Addr<ClusterActor>>) -> HttpResponse {
    let connected = links(&cluster)
        .await
        .map_or(0, |links| links.iter().filter(|l| l.connected).count());
    metrics::gauge!(name::REGION_LINKS).set(connected as f64);
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(osmesh_telemetry::metrics::render())
}
