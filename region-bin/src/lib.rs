//! osmesh-region: the region controller behind `regiond`.
//!
//! What lives here: configuration (flags, env, TOML), start-up (store, migrations, the store's
//! threads, RPC listener, region actor) and the actix-web HTTP API, whose handlers stay thin:
//! parse, call the region service functions in `osmesh-actors`, render; authentication,
//! audit, limits, health and metrics.
//!
//! What it must not know: domain rules (those live in `core`) or the simulator.

pub mod api;
pub mod auth;
pub mod check;
pub mod config;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod redact;
pub mod registry;
pub mod rpc_tls;
pub mod sqlite_lock;
pub mod tls;
pub mod ui;

use actix::Actor;
use actix_web::{web, HttpServer};
use anyhow::{Context, Result};
use osmesh_actors::clock::Clock;
use osmesh_actors::region::render::{
    RenderPool, TemplateRunner, RENDER_DEADLINE, RENDER_QUEUE, RENDER_THREADS,
};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{RegionActor, RegionSettings};
use osmesh_net::handshake::HandshakeConfig;
use osmesh_net::peer::PeerConfig;
use osmesh_net::tls::TlsListener;
use osmesh_net::{Listener, DEFAULT_MAX_FRAME};
use osmesh_store::Store;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::RegionConfig;
pub use redact::redact_url;

/// How long a cluster has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A started region: where it listens, and the HTTP server to await or stop.
pub struct RunningRegion {
    pub rpc_addr: String,
    pub http_addrs: Vec<std::net::SocketAddr>,
    pub service: RegionService,
    /// The store itself, for what only regiond keeps in it (API tokens, the audit log).
    pub store: Store,
    pub server: actix_web::dev::Server,
    /// RPC refusals counted since start (handshakes refused or failed, links cut off for not
    /// reading), for the metrics endpoint.
    pub abuse: osmesh_net::limits::AbuseCounters,
    /// The RPC port's CA (what enrollment tokens pin).
    pub rpc_ca: std::sync::Arc<rpc_tls::RegionCa>,
    /// This region's entry in the region registry; dropping it removes the entry.
    pub registration: registry::Registration,
    /// The single-region lock of a SQLite database, held while this value lives (declared
    /// last: released after the registry entry is removed).
    pub sqlite_lock: Option<sqlite_lock::SqliteLock>,
}

/// Opens the store (running migrations), binds the RPC listener, starts the region actor and
/// the HTTP API. Must be called inside an actix `System`.
pub async fn start(config: RegionConfig) -> Result<RunningRegion> {
    match limits::raise_fd_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit (RLIMIT_NOFILE)"),
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
    osmesh_telemetry::metrics::install();
    osmesh_store::install_query_metrics();
    // Before the store opens (and migrates): a second region on one SQLite file stops here.
    let sqlite_lock = sqlite_lock::lock_sqlite(&config.database_url)?;
    let store = Store::open(&config.database_url).with_context(|| {
        format!(
            "cannot open the database {}",
            redact_url(&config.database_url)
        )
    })?;
    let (ca, listener) = rpc_listener(&config).await?;
    let rpc_addr = listener.local_addr();
    let abuse = osmesh_net::limits::AbuseCounters::default();
    let settings = region_settings(&config, &ca, &store, &abuse);
    // The region actor's store calls run on the store's own threads, never on the thread that
    // serves every cluster link, handshake and heartbeat.
    let handle = store
        .on_threads()
        .context("cannot start the store threads")?;
    let clock = Clock::anchored_at(wall_clock_ms());
    let region = RegionActor::new(
        settings,
        handle.clone(),
        clock,
        StdRng::from_entropy(),
        Box::new(listener),
    )
    .start();
    let renders = RenderPool::start(RENDER_THREADS, RENDER_QUEUE, RENDER_DEADLINE)
        .context("cannot start the template render threads")?;
    let service = RegionService::new(region.clone(), handle)
        .with_template_runner(TemplateRunner::Pool(renders));
    let (http_addrs, server) = http_server(&config, &service, &store, &ca)?;
    let registration = registry::register(
        store.clone(),
        region,
        registry::RegionEntry::new(
            config.name.clone(),
            advertised_rpc(&config, &rpc_addr),
            advertised_http(&config, &http_addrs),
        ),
    )?;
    tracing::info!(rpc = %rpc_addr, http = ?http_addrs, database = %redact_url(&config.database_url), "region started");
    Ok(RunningRegion {
        rpc_addr,
        http_addrs,
        service,
        store,
        server,
        abuse,
        rpc_ca: ca,
        registration,
        sqlite_lock,
    })
}

/// The RPC port's CA (loaded, or made on first start) and its TLS 1.3 listener.
async fn rpc_listener(
    config: &RegionConfig,
) -> Result<(std::sync::Arc<rpc_tls::RegionCa>, TlsListener)> {
    let ca = std::sync::Arc::new(
        rpc_tls::RegionCa::load_or_create(&config.rpc_ca)
            .context("cannot load or create the RPC CA")?,
    );
    let listener = TlsListener::bind(&config.rpc_listen, ca.server_config()?, DEFAULT_MAX_FRAME)
        .await
        .with_context(|| format!("cannot listen for clusters on {}", config.rpc_listen))?;
    tracing::info!(ca_sha256 = %ca.fingerprint(), "RPC port: TLS 1.3, clusters enrolled by this CA");
    if config.secret.is_some() {
        tracing::warn!("shared-secret compatibility mode is on: any holder of the secret may claim any cluster identity not enrolled");
    }
    Ok((ca, listener))
}

/// The region actor's settings: its handshake (certificates, enrollment through `ca`, the
/// shared secret only in compatibility mode), its peers' bounds and counters.
fn region_settings(
    config: &RegionConfig,
    ca: &std::sync::Arc<rpc_tls::RegionCa>,
    store: &Store,
    abuse: &osmesh_net::limits::AbuseCounters,
) -> RegionSettings {
    let enroller = rpc_tls::RegionEnroller {
        ca: ca.clone(),
        store: store.clone(),
    };
    RegionSettings {
        name: config.name.clone(),
        handshake: HandshakeConfig {
            timeout: HANDSHAKE_TIMEOUT,
            secret: config.secret.clone(),
            require_secured: true,
            enroller: Some(std::sync::Arc::new(enroller)),
            ..HandshakeConfig::certificates(config.name.clone())
        },
        peer: PeerConfig {
            counters: abuse.clone(),
            ..PeerConfig::default()
        },
        refresh_interval: config.refresh_interval,
    }
}

/// The HTTP API and the page, bound (HTTPS when given certificate files) and serving; with
/// the addresses it bound.
fn http_server(
    config: &RegionConfig,
    service: &RegionService,
    store: &Store,
    ca: &std::sync::Arc<rpc_tls::RegionCa>,
) -> Result<(Vec<std::net::SocketAddr>, actix_web::dev::Server)> {
    let data = web::Data::new(service.clone());
    let store_data = web::Data::new(store.clone());
    let rpc_ca = web::Data::new(ca.clone());
    let auth = web::Data::new(auth::AuthState::new(config.auth.clone()));
    let writes = web::Data::new(limits::WriteLimiter::default());
    // One set of browser sessions and one change feed for every worker.
    let sessions = web::Data::new(crate::ui::Sessions::default());
    let live = web::Data::new(crate::ui::Live::default());
    let server = HttpServer::new(move || {
        api::app(data.clone(), store_data.clone(), auth.clone())
            .app_data(rpc_ca.clone())
            // One write budget for every worker (`api::app` gives each a default of its own).
            .app_data(writes.clone())
            .app_data(sessions.clone())
            .app_data(live.clone())
            // Outermost: the whole-request deadline covers authentication too.
            .wrap(actix_web::middleware::from_fn(limits::bound_request))
    })
    .on_connect({
        let by_source = std::sync::Arc::new(limits::ConnectionsBySource::default());
        move |io, data| by_source.on_connect(io, data)
    })
    .workers(limits::HTTP_WORKERS)
    .max_connections(limits::HTTP_MAX_CONNECTIONS_PER_WORKER)
    .client_request_timeout(limits::HEADER_READ_TIMEOUT)
    // A graceful stop (SIGTERM) waits this long for requests in flight, not the default 30 s.
    .shutdown_timeout(5);
    let server = match &config.tls {
        Some(files) => {
            let (tls, fingerprint) = tls::server_config(files)?;
            tracing::info!(sha256 = %fingerprint, "serving the API over HTTPS (pin with osmesh --pin-sha256)");
            server.bind_rustls_0_23(&config.http_listen, tls)
        }
        None => {
            tls::check_plain_http(&config.http_listen, config.insecure_http)?;
            server.bind(&config.http_listen)
        }
    }
    .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    Ok((server.addrs(), server.run()))
}

/// The RPC addresses clusters are told to dial: the configured ones, else the bound one (an
/// unspecified bind address such as 0.0.0.0 cannot be dialed, so that is warned about).
fn advertised_rpc(config: &RegionConfig, bound: &str) -> Vec<String> {
    if !config.rpc_advertise.is_empty() {
        return config.rpc_advertise.clone();
    }
    let unspecified = bound
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified());
    if unspecified {
        tracing::warn!(rpc = %bound, "the RPC listener is on an unspecified address; set rpc_advertise so clusters can reach this region from the region list");
    }
    vec![bound.to_owned()]
}

/// The API URL the region list shows: the configured one, else the first bound address.
fn advertised_http(config: &RegionConfig, bound: &[std::net::SocketAddr]) -> String {
    if let Some(url) = &config.http_url {
        return url.clone();
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    bound
        .first()
        .map_or_else(String::new, |a| format!("{scheme}://{a}"))
}

/// The operator's routes beside the API (all GET); the API's own are `api::access_rules`.
pub const OPS_PATHS: [&str; 3] = [health::HEALTHZ, health::READYZ, metrics::METRICS];

/// The operator's routes beside the API: `/healthz`, `/readyz`, `/metrics`.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    metrics::configure(cfg);
}

/// The wall clock, read once at start-up to anchor the actors' tokio-time clock.
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
