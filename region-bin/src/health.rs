//! Health endpoints for supervisors and load balancers. `GET /healthz`: the process serves
//! HTTP (nothing else is asked). `GET /readyz`: the region can do its work — the database
//! answers, every migration is applied, and the region actor (which owns the RPC listener's
//! accept loop) is running; 200 when all hold, else 503 with the failed checks named.
//! Both are exempt from API authentication, so they answer no secrets.

use actix_web::{web, HttpResponse};
use osmesh_actors::region::service::RegionService;
use osmesh_store::{Store, StoreReadiness};
use serde::Serialize;
use std::time::Duration;

/// How long the region actor has to answer before the RPC listener counts as not running.
pub const ACTOR_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(HEALTHZ, web::get().to(healthz))
        .route(READYZ, web::get().to(readyz));
}

/// `/healthz`'s body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

/// One readiness check and its outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Why it failed; absent when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `/readyz`'s body: `ready`, every check, and the names of the failed ones.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub failed: Vec<&'static str>,
    pub checks: Vec<Check>,
}

/// Liveness: the process serves HTTP. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Liveness)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

/// Readiness: database reachable, migrations applied, RPC listener running. Needs no token.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "Not ready: `failed` names the checks", body = Readiness)))]
pub async fn readyz(service: web::Data<RegionService>, store: web::Data<Store>) -> HttpResponse {
    let readiness = readiness(&service, &store).await;
    let status = if readiness.ready {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status).json(readiness)
}

/// Runs every check; each failure is named, none hides another.
pub async fn readiness(service: &RegionService, store: &Store) -> Readiness {
    let (database, migrations) = match store.readiness() {
        StoreReadiness::Ready => (None, None),
        StoreReadiness::DatabaseUnreachable(why) => (
            Some(why),
            Some("not checked: the database is unreachable".into()),
        ),
        StoreReadiness::MigrationsPending(why) => (None, Some(why)),
    };
    let listener = match tokio::time::timeout(ACTOR_PROBE_TIMEOUT, service.now_ms()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.message),
        Err(_) => Some(format!(
            "the region actor did not answer within {ACTOR_PROBE_TIMEOUT:?}"
        )),
    };
    let checks = vec![
        check("database", database),
        check("migrations", migrations),
        check("rpc_listener", listener),
    ];
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    Readiness {
        ready: failed.is_empty(),
        failed,
        checks,
    }
}

fn check(name: &'static str, failure: Option<String>) -> Check {
    Check {
        name,
        ok: failure.is_none(),
        detail: failure,
    }
}
