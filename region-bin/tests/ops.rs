//! The operator's endpoints on the real routes, a real region actor and real clusters:
//! `/healthz`, `/readyz` (ready, then not ready with the failed check named) and `/metrics`,
//! whose output is parsed as the Prometheus text exposition format.

mod common;

use actix_web::http::StatusCode;
use actix_web::{middleware, test, web, App};
use common::*;
use futures::SinkExt;
use osmesh_net::Dialer;
use osmesh_region::{api, metrics};
use osmesh_telemetry::metrics::name;
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::Value;
use std::time::Duration;

macro_rules! app {
    ($mesh:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($mesh.service.clone()))
                .app_data(web::Data::new($mesh.store.clone()))
                .wrap(middleware::from_fn(metrics::track))
                .configure(osmesh_region::ops_routes)
                .configure(api::configure),
        )
        .await
    };
}

async fn get_json<S, B>(app: &S, path: &str) -> (StatusCode, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let response = test::call_service(app, test::TestRequest::get().uri(path).to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

async fn scrape<S, B>(app: &S) -> Scrape
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let response =
        test::call_service(app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = test::read_body(response).await;
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 exposition");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not the exposition format ({e}):\n{text}"));
    // The parser skips lines it cannot read; every family written must have been read.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let family = line
            .split(['{', ' '])
            .next()
            .unwrap_or_default()
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            scrape.samples.iter().any(|s| s.metric == family),
            "a line the parser did not read: {line}"
        );
    }
    scrape
}

fn samples<'a>(scrape: &'a Scrape, metric: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .collect()
}

fn scalar(sample: &Sample) -> f64 {
    match sample.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
        ref other => panic!("{} is not a scalar: {other:?}", sample.metric),
    }
}

fn histogram_count(sample: &Sample) -> f64 {
    match &sample.value {
        PromValue::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        other => panic!("{} is not a histogram: {other:?}", sample.metric),
    }
}

#[actix_web::test]
async fn healthz_and_readyz_answer_and_readyz_names_the_failed_check() {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = app!(mesh);
    let (status, body) = get_json(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = get_json(&app, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    let names: Vec<_> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["database", "migrations", "rpc_listener"]);

    // The region actor (which owns the RPC accept loop) stops: not ready, and it says why.
    mesh.service.region().do_send(osmesh_actors::Shutdown);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get_json(&app, "/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["ready"], false);
            assert_eq!(body["failed"], serde_json::json!(["rpc_listener"]));
            assert!(body["checks"][2]["detail"].is_string(), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn metrics_parse_as_exposition_format_and_cover_rpc_http_fanout_store_and_handshakes() {
    osmesh_telemetry::metrics::install().expect("the recorder of this test process");
    osmesh_store::install_query_metrics();
    let db = TestDb::sqlite();
    let mut mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = app!(mesh);
    let (status, _) = get_json(&app, "/api/v1/osystems?live=true").await;
    assert_eq!(status, StatusCode::OK);
    // One cluster gone, then a live read: it is counted as not answering.
    mesh.stop_cluster("gamma").await;
    let (status, _) = get_json(&app, "/api/v1/osystems?live=true&timeout_ms=500").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json(&app, "/api/v1/osystems/ubuntu/releases/jammy").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json(&app, "/no/such/route/12345").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A peer that sends garbage instead of a handshake.
    let mut conn = mesh.network.dialer().dial(REGION_ADDR).await.expect("dial");
    conn.sink
        .send(bytes::Bytes::from_static(b"\xff\x00 not a handshake"))
        .await
        .expect("send");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let scrape = loop {
        let scrape = scrape(&app).await;
        if !samples(&scrape, name::HANDSHAKE_FAILURES).is_empty() {
            break scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no handshake failure counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // HTTP: by route pattern (not the raw path), method and status.
    let http = samples(&scrape, name::HTTP_REQUESTS);
    let release = http
        .iter()
        .find(|s| s.labels.get("route") == Some("/api/v1/osystems/:name/releases/:release"))
        .unwrap_or_else(|| panic!("the release route, by its pattern: {http:#?}"));
    assert_eq!(release.labels.get("status"), Some("200"));
    assert_eq!(release.labels.get("method"), Some("GET"));
    assert!(http
        .iter()
        .all(|s| !s.labels.get("route").unwrap_or_default().contains("jammy")));
    let unmatched = http
        .iter()
        .find(|s| s.labels.get("route") == Some("unmatched"))
        .expect("unrouted requests under one label");
    assert_eq!(unmatched.labels.get("status"), Some("404"));
    assert!(!samples(&scrape, name::HTTP_DURATION).is_empty());

    // RPC, both sides: the region called ListOperatingSystems; the clusters called Register.
    let client = samples(&scrape, name::RPC_CLIENT_CALLS);
    for method in ["ListOperatingSystems", "ListBootImages", "Register"] {
        let calls = client
            .iter()
            .find(|s| s.labels.get("method") == Some(method))
            .unwrap_or_else(|| panic!("no client calls of {method}"));
        assert!(scalar(calls) >= 1.0);
    }
    let served = samples(&scrape, name::RPC_SERVER_CALLS);
    for method in ["ListOperatingSystems", "Register", "ReportBootImages"] {
        assert!(
            served
                .iter()
                .any(|s| s.labels.get("method") == Some(method) && scalar(s) >= 1.0),
            "no served calls of {method}"
        );
    }
    let durations = samples(&scrape, name::RPC_CLIENT_DURATION);
    assert!(durations.iter().any(|s| histogram_count(s) >= 1.0));

    // The fan-out: timed, and the stopped cluster counted by reason.
    let fanouts = samples(&scrape, name::FANOUT_DURATION);
    assert_eq!(fanouts.len(), 1);
    assert!(histogram_count(fanouts[0]) >= 2.0);
    let no_answer = samples(&scrape, name::FANOUT_NO_ANSWER);
    assert!(no_answer
        .iter()
        .any(|s| s.labels.get("reason") == Some("not_connected") && scalar(s) >= 1.0));
    assert!(samples(&scrape, name::VIEW_REBUILDS)
        .iter()
        .any(|s| scalar(s) >= 1.0));

    // State gauges, read at scrape time.
    let gauge = |metric: &str| {
        let found = samples(&scrape, metric);
        assert_eq!(found.len(), 1, "{metric}");
        scalar(found[0])
    };
    assert_eq!(gauge(name::CLUSTERS_KNOWN), 3.0);
    assert_eq!(gauge(name::CLUSTERS_CONNECTED), 2.0);
    assert!(gauge(name::SNAPSHOT_AGE_MAX) >= 0.0);
    assert!(gauge(name::DB_POOL_IN_USE) >= 0.0);
    assert!(gauge(name::DB_POOL_IDLE) >= 0.0);
    assert!(samples(&scrape, name::DB_QUERY_DURATION)
        .iter()
        .any(|s| histogram_count(s) >= 1.0));

    // Handshake failures by a fixed reason word.
    let failures = samples(&scrape, name::HANDSHAKE_FAILURES);
    let reasons = [
        "timeout",
        "bad_credentials",
        "no_common_version",
        "refused",
        "protocol",
        "transport",
    ];
    assert!(failures
        .iter()
        .all(|s| reasons.contains(&s.labels.get("reason").unwrap_or_default())));

    // No series names a cluster.
    for sample in &scrape.samples {
        for cluster in ["alpha", "beta", "gamma"] {
            assert!(
                !format!("{:?}", sample.labels).contains(cluster),
                "{} carries a cluster label",
                sample.metric
            );
        }
    }
}
