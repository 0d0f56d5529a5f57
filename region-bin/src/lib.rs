//! osmesh-region: the region controller behind `regiond`.
//!
//! What will live here: configuration (flags, env, TOML), start-up (store, migrations, RPC
//! listener, region actors) and the actix-web HTTP API, whose handlers stay thin: parse, call
//! the region service functions in `osmesh-actors`, render.
//!
//! What it must not know: domain rules (those live in `core`) or the simulator.

pub mod api;
pub mod config;
pub mod limits;

use actix::Actor;
use actix_web::{web, App, HttpServer};
use anyhow::{Context, Result};
use osmesh_actors::clock::Clock;
use osmesh_actors::region::render::{
    RenderPool, TemplateRunner, RENDER_DEADLINE, RENDER_QUEUE, RENDER_THREADS,
};
use osmesh_actors::region::service::RegionService;
use osmesh_actors::region::{RegionActor, RegionSettings};
use osmesh_actors::store::Store;
use osmesh_net::handshake::HandshakeConfig;
use osmesh_net::peer::PeerConfig;
use osmesh_net::tcp::TcpListener;
use osmesh_net::{Listener, DEFAULT_MAX_FRAME};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::RegionConfig;

/// How long a cluster has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A started region: where it listens, and the HTTP server to await or stop.
pub struct RunningRegion {
    pub rpc_addr: String,
    pub http_addrs: Vec<std::net::SocketAddr>,
    pub service: RegionService,
    pub server: actix_web::dev::Server,
    /// RPC refusals counted since start (handshakes refused or failed, links cut off for not
    /// reading), for the metrics endpoint.
    pub abuse: osmesh_net::limits::AbuseCounters,
}

/// Opens the store (running migrations), binds the RPC listener, starts the region actor and
/// the HTTP API. Must be called inside an actix `System`.
pub async fn start(config: RegionConfig) -> Result<RunningRegion> {
    match limits::raise_fd_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit (RLIMIT_NOFILE)"),
        Err(err) => tracing::warn!(%err, "cannot raise the open-file limit"),
    }
    let store = Store::open(&config.database_url)
        .with_context(|| format!("cannot open the database {}", config.database_url))?;
    let listener = TcpListener::bind(&config.rpc_listen, DEFAULT_MAX_FRAME)
        .await
        .with_context(|| format!("cannot listen for clusters on {}", config.rpc_listen))?;
    let rpc_addr = listener.local_addr();
    let abuse = osmesh_net::limits::AbuseCounters::default();
    let settings = RegionSettings {
        name: config.name.clone(),
        handshake: HandshakeConfig {
            timeout: HANDSHAKE_TIMEOUT,
            ..HandshakeConfig::new(config.name.clone(), config.secret.clone())
        },
        peer: PeerConfig {
            counters: abuse.clone(),
            ..PeerConfig::default()
        },
        refresh_interval: config.refresh_interval,
    };
    let clock = Clock::anchored_at(wall_clock_ms());
    let region = RegionActor::new(
        settings,
        store.clone(),
        clock,
        StdRng::from_entropy(),
        Box::new(listener),
    )
    .start();
    let renders = RenderPool::start(RENDER_THREADS, RENDER_QUEUE, RENDER_DEADLINE)
        .context("cannot start the template render threads")?;
    let service =
        RegionService::new(region, store).with_template_runner(TemplateRunner::Pool(renders));
    let data = web::Data::new(service.clone());
    let writes = web::Data::new(limits::WriteLimiter::default());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(limits::bound_request))
            .app_data(data.clone())
            .app_data(writes.clone())
            .configure(api::configure)
    })
    .on_connect({
        let by_source = std::sync::Arc::new(limits::ConnectionsBySource::default());
        move |io, data| by_source.on_connect(io, data)
    })
    .workers(limits::HTTP_WORKERS)
    .max_connections(limits::HTTP_MAX_CONNECTIONS_PER_WORKER)
    .client_request_timeout(limits::HEADER_READ_TIMEOUT)
    // A graceful stop (SIGTERM) waits this long for requests in flight, not the default 30 s.
    .shutdown_timeout(5)
    .bind(&config.http_listen)
    .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    let http_addrs = server.addrs();
    tracing::info!(rpc = %rpc_addr, http = ?http_addrs, database = %redact_url(&config.database_url), "region started");
    Ok(RunningRegion {
        rpc_addr,
        http_addrs,
        service,
        server: server.run(),
        abuse,
    })
}

/// The wall clock, read once at start-up to anchor the actors' tokio-time clock.
pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A database URL fit for a log line: any password replaced.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
