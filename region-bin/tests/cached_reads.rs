//! The cached read of `GET /api/v1/osystems` as the server answers it: its `ETag` and
//! `If-None-Match` → 304, and compressed bodies, through the full app (`api::app`, with
//! authentication) over a real region and real clusters.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::{test, web};
use common::*;
use osmesh_region::api;
use osmesh_region::auth::{issue_token, AuthSettings, AuthState};
use osmesh_store::Role;
use serde_json::Value;
use std::io::Read;

const CLIENT: &str = "127.0.0.9:40000";

async fn admin_token(mesh: &Mesh) -> String {
    let now = mesh.service.now_ms().await.unwrap();
    issue_token(&mesh.store, "cached", Role::Admin, "test", now, None)
        .unwrap()
        .0
        .expose()
        .to_owned()
}

/// A GET with the token and extra headers: status, headers, raw body bytes.
async fn get<S, B>(
    app: &S,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, Vec<u8>)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get()
        .uri(path)
        .peer_addr(CLIENT.parse().unwrap())
        .insert_header(("Authorization", format!("Bearer {token}")));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await.to_vec();
    (status, headers, body)
}

fn etag(headers: &header::HeaderMap) -> String {
    headers
        .get(header::ETAG)
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The answer without its ages, which move on every read.
fn without_ages(mut body: Value) -> Value {
    for part in body["clusters"].as_array_mut().expect("clusters") {
        part.as_object_mut().unwrap().remove("age_ms");
    }
    body
}

#[actix_rt::test]
async fn cached_read_has_an_etag_and_answers_304_until_the_mesh_changes() {
    let db = TestDb::sqlite();
    let mut mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;

    let (status, headers, body) = get(&app, "/api/v1/osystems", &token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let first = etag(&headers);
    assert!(first.starts_with("W/\"") && first.len() > 10, "{first}");
    let first_body: Value = serde_json::from_slice(&body).unwrap();

    // The same validator back: 304, no body, the validator repeated.
    let (status, headers, body) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("If-None-Match", &first)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    assert_eq!(etag(&headers), first);
    // In a list with others, and as `*`: still a match.
    let list = format!("\"other\", {first}");
    let (status, _, _) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("If-None-Match", &list)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = get(&app, "/api/v1/osystems", &token, &[("If-None-Match", "*")]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    // Another validator, or garbage: the full answer.
    for other in ["W/\"0000\"", "not a tag"] {
        let (status, headers, _) = get(
            &app,
            "/api/v1/osystems",
            &token,
            &[("If-None-Match", other)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{other}");
        assert_eq!(etag(&headers), first);
    }
    // A live read is never served from a validator.
    let (status, headers, _) = get(
        &app,
        "/api/v1/osystems?live=true",
        &token,
        &[("If-None-Match", &first)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::ETAG).is_none());

    // A cluster goes away: its part changes, so does the validator.
    mesh.stop_cluster("beta").await;
    let (status, headers, body) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("If-None-Match", &first)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let disconnected = etag(&headers);
    assert_ne!(disconnected, first);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_ne!(without_ages(body), without_ages(first_body.clone()));

    // It comes back with another image (a new snapshot, a new release in the view).
    let mut beta = standard_clusters()
        .into_iter()
        .find(|c| c.id == "beta")
        .unwrap();
    beta.images.push(image("ubuntu", "amd64", "focal", NETBOOT));
    mesh.start_cluster(&beta).await;
    let (status, headers, body) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("If-None-Match", &disconnected)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let changed = etag(&headers);
    assert_ne!(changed, first);
    assert_ne!(changed, disconnected);
    assert!(String::from_utf8_lossy(&body).contains("focal"));
    // And the new validator matches again.
    let (status, _, body) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("If-None-Match", &changed)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[actix_rt::test]
async fn large_answers_are_gzipped_when_asked_and_decode_to_the_same_json() {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;

    let (status, headers, plain) = get(&app, "/api/v1/osystems", &token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    let (status, headers, gzipped) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
    assert!(gzipped.starts_with(&[0x1f, 0x8b]), "not a gzip stream");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_end(&mut decoded)
        .expect("a valid gzip stream");
    let plain: Value = serde_json::from_slice(&plain).unwrap();
    let decoded: Value = serde_json::from_slice(&decoded).unwrap();
    // The ages move between the two reads; everything else is the same answer.
    assert_eq!(without_ages(decoded), without_ages(plain));
    // The compressed answer keeps its validator (compression happens after the handler).
    assert!(headers.get(header::ETAG).is_some());
}

#[actix_rt::test]
async fn summary_counts_clusters_by_os_and_release_and_has_its_own_etag() {
    let db = TestDb::sqlite();
    let mut mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;

    let (status, headers, body) = get(&app, "/api/v1/osystems?view=summary", &token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let summary_etag = etag(&headers);
    let (_, full_headers, _) = get(&app, "/api/v1/osystems", &token, &[]).await;
    assert_ne!(summary_etag, etag(&full_headers), "another representation");
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["source"], "cached");
    assert_eq!(summary["clusters"], 3);
    assert_eq!(summary["answered"], 3);
    assert!(
        !String::from_utf8_lossy(&body).contains("alpha"),
        "{summary}"
    );
    let os = |name: &str| {
        summary["osystems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {summary}"))
            .clone()
    };
    let ubuntu = os("ubuntu");
    assert_eq!(ubuntu["supported_by"], 2, "alpha and beta: {ubuntu}");
    let release = |os: &Value, name: &str| {
        os["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {os}"))
            .clone()
    };
    // jammy: images on alpha (amd64) and beta (arm64), counted once each.
    assert_eq!(release(&ubuntu, "jammy")["available_on"], 2);
    assert_eq!(release(&ubuntu, "noble")["available_on"], 1);
    assert_eq!(os("acme-linux")["supported_by"], 1);

    let (status, _, body) = get(
        &app,
        "/api/v1/osystems?view=summary",
        &token,
        &[("If-None-Match", &summary_etag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    mesh.stop_cluster("gamma").await;
    let (status, headers, body) = get(
        &app,
        "/api/v1/osystems?view=summary",
        &token,
        &[("If-None-Match", &summary_etag)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(etag(&headers), summary_etag);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["not_answered"], 1, "{summary}");

    // The live read has a summary form too; a form that does not exist is a 400.
    let (status, _, body) = get(&app, "/api/v1/osystems?live=true&view=summary", &token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let live: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(live["source"], "live", "{live}");
    let (status, _, _) = get(&app, "/api/v1/osystems?view=tiny", &token, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
