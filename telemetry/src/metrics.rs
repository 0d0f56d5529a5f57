//! The process's Prometheus recorder: installed once by a daemon (or the demo), rendered as
//! the text exposition format at `/metrics`.
//!
//! The libraries (`osmesh-net`, `osmesh-actors`) emit through the `metrics` facade's macros;
//! without an installed recorder (the simulator, most tests) those are no-ops. Every metric
//! osmesh emits is named and described here, so `/metrics` shows HELP and TYPE for each, and
//! the list in `docs/OPERATIONS.md` has one source. Labels are bounded: method names are mapped
//! onto the protocol's fixed catalogue, routes are route patterns, reasons are fixed words;
//! no series carries a cluster id.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Bucket bounds (seconds) of every latency histogram: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes (bounds the
/// memory a busy, unscraped process holds).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Every metric osmesh emits: name, type, unit and help. `describe_all` registers them.
pub mod name {
    pub const RPC_CLIENT_CALLS: &str = "osmesh_rpc_client_calls_total";
    pub const RPC_CLIENT_ERRORS: &str = "osmesh_rpc_client_errors_total";
    pub const RPC_CLIENT_DURATION: &str = "osmesh_rpc_client_duration_seconds";
    pub const RPC_SERVER_CALLS: &str = "osmesh_rpc_server_calls_total";
    pub const RPC_SERVER_ERRORS: &str = "osmesh_rpc_server_errors_total";
    pub const RPC_SERVER_DURATION: &str = "osmesh_rpc_server_duration_seconds";
    pub const HANDSHAKE_FAILURES: &str = "osmesh_handshake_failures_total";
    pub const FANOUT_DURATION: &str = "osmesh_fanout_duration_seconds";
    pub const FANOUT_NO_ANSWER: &str = "osmesh_fanout_no_answer_total";
    pub const VIEW_REBUILDS: &str = "osmesh_cached_view_rebuilds_total";
    pub const CLUSTERS_KNOWN: &str = "osmesh_clusters_known";
    pub const CLUSTERS_CONNECTED: &str = "osmesh_clusters_connected";
    pub const SNAPSHOT_AGE_MAX: &str = "osmesh_snapshot_age_max_seconds";
    pub const CLUSTERS_WITHOUT_SNAPSHOT: &str = "osmesh_clusters_without_snapshot";
    pub const HTTP_REQUESTS: &str = "osmesh_http_requests_total";
    pub const HTTP_DURATION: &str = "osmesh_http_request_duration_seconds";
    pub const DB_POOL_IN_USE: &str = "osmesh_db_pool_connections_in_use";
    pub const DB_POOL_IDLE: &str = "osmesh_db_pool_connections_idle";
    pub const DB_QUERY_DURATION: &str = "osmesh_db_query_duration_seconds";
    pub const DB_QUERY_ERRORS: &str = "osmesh_db_query_errors_total";
    pub const REGION_LINKS: &str = "osmesh_cluster_region_links";
    pub const REGIONS_UP: &str = "osmesh_regions_up";
    pub const REGIONS_DOWN: &str = "osmesh_regions_down";
    pub const LOG_SUPPRESSED: &str = "osmesh_log_events_suppressed_total";
}

/// Installs the Prometheus recorder for this process, once; later calls return the same
/// handle. `None` if another recorder was installed first (metrics then go there).
pub fn install() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe_all();
            let upkeep = handle.clone();
            // A plain thread: daemons only (the simulator never installs a recorder).
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            Some(handle)
        })
        .as_ref()
}

/// The text exposition of every metric, or an empty string if no recorder is installed.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// The content type of `render`'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn describe_all() {
    describe_rpc();
    describe_region();
    describe_http_and_store();
}

/// The RPC layer's metrics, both sides of a call.
fn describe_rpc() {
    use name::*;
    describe_counter!(
        RPC_CLIENT_CALLS,
        "RPC calls this process made, by method (the peer's reply or failure ends each)"
    );
    describe_counter!(
        RPC_CLIENT_ERRORS,
        "RPC calls this process made that failed, by method and error kind"
    );
    describe_histogram!(
        RPC_CLIENT_DURATION,
        Unit::Seconds,
        "Time from sending an RPC call to its reply or failure, by method"
    );
    describe_counter!(
        RPC_SERVER_CALLS,
        "RPC calls this process answered, by method"
    );
    describe_counter!(
        RPC_SERVER_ERRORS,
        "RPC calls this process answered with an error, by method and error kind"
    );
    describe_histogram!(
        RPC_SERVER_DURATION,
        Unit::Seconds,
        "Time this process took to answer an RPC call, by method"
    );
    describe_counter!(
        HANDSHAKE_FAILURES,
        "RPC handshakes that failed, by reason (timeout, bad_credentials, no_common_version, refused, protocol, transport, too_many_pending)"
    );
}

/// The region's view of its clusters, and the regions sharing a database.
fn describe_region() {
    use name::*;
    describe_histogram!(
        FANOUT_DURATION,
        Unit::Seconds,
        "Duration of a live fan-out to every cluster (bounded by its deadline)"
    );
    describe_counter!(
        FANOUT_NO_ANSWER,
        "Clusters that gave a live fan-out no answer, by reason (not_connected, timeout, error)"
    );
    describe_counter!(
        VIEW_REBUILDS,
        "Merges of the cached mesh view (one per change of a snapshot or a link that was read)"
    );
    describe_gauge!(CLUSTERS_KNOWN, "Clusters the region knows");
    describe_gauge!(CLUSTERS_CONNECTED, "Clusters connected to the region now");
    describe_gauge!(
        SNAPSHOT_AGE_MAX,
        Unit::Seconds,
        "Age of the oldest cluster snapshot the region holds"
    );
    describe_gauge!(
        CLUSTERS_WITHOUT_SNAPSHOT,
        "Known clusters of which the region holds no snapshot"
    );
    describe_gauge!(
        REGION_LINKS,
        "Authenticated links from this cluster to regions (one per live region when several share a database)"
    );
    describe_gauge!(
        REGIONS_UP,
        "Regions in the registry whose heartbeat is current, this one included (regiond, every 5 s)"
    );
    describe_gauge!(
        REGIONS_DOWN,
        "Regions in the registry whose heartbeat lapsed (15 s) and whose rows are not yet forgotten (1 h)"
    );
}

/// The HTTP API's, the database's and the logger's metrics.
fn describe_http_and_store() {
    use name::*;
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route pattern, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by route pattern and method"
    );
    describe_gauge!(DB_POOL_IN_USE, "Database pool connections handed out now");
    describe_gauge!(DB_POOL_IDLE, "Database pool connections open and idle");
    describe_histogram!(
        DB_QUERY_DURATION,
        Unit::Seconds,
        "Database statement latency (each statement Diesel runs)"
    );
    describe_counter!(DB_QUERY_ERRORS, "Database statements that failed");
    describe_counter!(
        LOG_SUPPRESSED,
        "Log events dropped by the per-source rate limit (each drop is summarised in the log)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_histograms_and_counters_parse_as_exposition_format() {
        install().expect("the first recorder in this test process");
        metrics::counter!(name::RPC_CLIENT_CALLS, "method" => "Register").increment(2);
        metrics::histogram!(name::RPC_CLIENT_DURATION, "method" => "Register").record(0.003);
        let text = render();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("exposition format");
        let calls = scrape
            .samples
            .iter()
            .find(|s| s.metric == name::RPC_CLIENT_CALLS)
            .expect("the counter");
        assert_eq!(calls.labels.get("method"), Some("Register"));
        assert!(matches!(calls.value, prometheus_parse::Value::Counter(v) if v == 2.0));
        let histogram = scrape
            .samples
            .iter()
            .find(|s| s.metric == name::RPC_CLIENT_DURATION)
            .expect("the histogram");
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("not a histogram: {:?}", histogram.value);
        };
        let le_5ms = buckets
            .iter()
            .find(|b| b.less_than == 0.005)
            .expect("a 5 ms bucket");
        assert_eq!(le_5ms.count, 1.0);
        assert!(scrape.docs.contains_key(name::RPC_CLIENT_CALLS));
    }
}
