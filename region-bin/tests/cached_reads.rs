//! The cached read of `GET /api/v1/osystems` as the server answers it: its `ETag` and
//! `If-None-Match` → 304, and compressed bodies (gzip from the kept compressed view), through
//! the full app (`api::app`, with authentication and `Compress`) over a real region and real
//! clusters.

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
    // The gzip encoding has a validator of its own.
    assert!(etag(&headers).ends_with("-gzip\""), "{}", etag(&headers));
}

/// A GET with the token and extra headers, and the app's count of compressed renderings
/// after it.
async fn get_counted<S, B>(
    app: &S,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, header::HeaderMap, Vec<u8>, u64)
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
    let compressions = response
        .request()
        .app_data::<web::Data<api::RenderedView>>()
        .expect("the app's rendered view")
        .gzip_compressions();
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await.to_vec();
    (status, headers, body, compressions)
}

fn content_encoding(headers: &header::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn varies_on_accept_encoding(headers: &header::HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding"))
}

/// Gunzips once: the one gzip member the answer must be.
fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut decoded)
        .expect("one valid gzip member");
    decoded
}

const GZIP: (&str, &str) = ("Accept-Encoding", "gzip");

#[actix_rt::test]
async fn gzip_reads_come_from_the_kept_compressed_view_and_gunzip_to_the_identity_answer() {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;

    let (_, plain_headers, plain, compressions) =
        get_counted(&app, "/api/v1/osystems", &token, &[]).await;
    assert_eq!(compressions, 0, "identity reads compress nothing");
    assert!(content_encoding(&plain_headers).is_empty());
    assert!(varies_on_accept_encoding(&plain_headers));
    let plain: Value = serde_json::from_slice(&plain).unwrap();

    let (status, headers, gzipped, compressions) =
        get_counted(&app, "/api/v1/osystems", &token, &[GZIP]).await;
    assert_eq!(status, StatusCode::OK);
    // Encoded once, by the handler: `Compress` left it alone, so one gunzip gives the JSON.
    assert_eq!(content_encoding(&headers), ["gzip"]);
    assert!(varies_on_accept_encoding(&headers));
    let decoded: Value = serde_json::from_slice(&gunzip(&gzipped)).expect("JSON after one gunzip");
    // The ages move between the two reads; everything else is the same answer.
    assert_eq!(without_ages(decoded), without_ages(plain.clone()));
    assert_eq!(
        compressions, 1,
        "the view, compressed on its first gzip read"
    );
    let gzip_etag = etag(&headers);
    assert_ne!(gzip_etag, etag(&plain_headers), "one validator per coding");
    assert!(gzip_etag.starts_with("W/\""), "{gzip_etag}");

    // Again: the kept compressed view, not a new compression.
    let (_, headers, again, compressions) =
        get_counted(&app, "/api/v1/osystems", &token, &[GZIP]).await;
    assert_eq!(compressions, 1, "kept, not compressed again");
    assert_eq!(etag(&headers), gzip_etag);
    let again: Value = serde_json::from_slice(&gunzip(&again)).unwrap();
    assert_eq!(without_ages(again), without_ages(plain));

    // The summary: its gzip gunzips to exactly its identity body, the same bytes every read.
    let (_, _, summary, _) = get_counted(&app, "/api/v1/osystems?view=summary", &token, &[]).await;
    let (_, headers, first, compressions) =
        get_counted(&app, "/api/v1/osystems?view=summary", &token, &[GZIP]).await;
    assert_eq!(content_encoding(&headers), ["gzip"]);
    assert_eq!(gunzip(&first), summary);
    assert_eq!(
        compressions, 2,
        "the summary, compressed on its first gzip read"
    );
    let (_, _, second, compressions) =
        get_counted(&app, "/api/v1/osystems?view=summary", &token, &[GZIP]).await;
    assert_eq!(second, first);
    assert_eq!(compressions, 2);

    // A browser's list: gzip, from the kept view. Brotli alone: `Compress`, from the identity
    // body, with nothing compressed by the handler.
    let (_, headers, _, compressions) = get_counted(
        &app,
        "/api/v1/osystems",
        &token,
        &[("Accept-Encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(content_encoding(&headers), ["gzip"]);
    assert_eq!(compressions, 2);
    let (_, headers, _, compressions) = get_counted(
        &app,
        "/api/v1/osystems",
        &token,
        &[("Accept-Encoding", "br")],
    )
    .await;
    assert_eq!(content_encoding(&headers), ["br"]);
    assert_eq!(compressions, 2);
}

#[actix_rt::test]
async fn after_the_view_changes_the_gzip_body_is_the_new_answer() {
    let db = TestDb::sqlite();
    let mut mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;
    let (_, before_headers, before, compressions) =
        get_counted(&app, "/api/v1/osystems", &token, &[GZIP]).await;
    assert_eq!(compressions, 1);
    assert!(!String::from_utf8_lossy(&gunzip(&before)).contains("focal"));

    // beta comes back with another image: a new snapshot, a new release in the view.
    mesh.stop_cluster("beta").await;
    let mut beta = standard_clusters()
        .into_iter()
        .find(|c| c.id == "beta")
        .unwrap();
    beta.images.push(image("ubuntu", "amd64", "focal", NETBOOT));
    mesh.start_cluster(&beta).await;

    let (status, headers, after, compressions) = get_counted(
        &app,
        "/api/v1/osystems",
        &token,
        &[GZIP, ("If-None-Match", &etag(&before_headers))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(etag(&headers), etag(&before_headers));
    assert_eq!(compressions, 2, "the new view compressed");
    let after: Value = serde_json::from_slice(&gunzip(&after)).unwrap();
    let (_, _, plain, _) = get_counted(&app, "/api/v1/osystems", &token, &[]).await;
    let plain: Value = serde_json::from_slice(&plain).unwrap();
    assert!(plain.to_string().contains("focal"));
    assert_eq!(without_ages(after), without_ages(plain));

    // The summary too.
    let (_, _, summary, _) = get_counted(&app, "/api/v1/osystems?view=summary", &token, &[]).await;
    let (_, _, gzipped, _) =
        get_counted(&app, "/api/v1/osystems?view=summary", &token, &[GZIP]).await;
    assert_eq!(gunzip(&gzipped), summary);
    assert!(String::from_utf8_lossy(&summary).contains("focal"));
}

#[actix_rt::test]
async fn gzip_refused_gets_identity_and_the_gzip_etag_revalidates_to_304() {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;
    let (_, plain_headers, _) = get(&app, "/api/v1/osystems", &token, &[]).await;

    for refusal in ["gzip;q=0", "gzip;q=0, *", "identity, *;q=0"] {
        let (status, headers, body, compressions) = get_counted(
            &app,
            "/api/v1/osystems",
            &token,
            &[("Accept-Encoding", refusal)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{refusal}");
        assert!(content_encoding(&headers).is_empty(), "{refusal}");
        assert_eq!(etag(&headers), etag(&plain_headers), "{refusal}");
        serde_json::from_slice::<Value>(&body).expect("plain JSON");
        assert_eq!(compressions, 0, "{refusal}");
    }
    // `*` accepts gzip.
    let (_, headers, _) = get(
        &app,
        "/api/v1/osystems",
        &token,
        &[("Accept-Encoding", "*")],
    )
    .await;
    assert_eq!(content_encoding(&headers), ["gzip"]);

    for path in ["/api/v1/osystems", "/api/v1/osystems?view=summary"] {
        let (_, headers, _) = get(&app, path, &token, &[GZIP]).await;
        let gzip_etag = etag(&headers);
        let (status, headers, body) =
            get(&app, path, &token, &[GZIP, ("If-None-Match", &gzip_etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(etag(&headers), gzip_etag);
        assert!(varies_on_accept_encoding(&headers));
        assert!(content_encoding(&headers).is_empty());
        // The gzip tag does not name the identity body.
        let (status, _, _) = get(&app, path, &token, &[("If-None-Match", &gzip_etag)]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
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

/// A view is rendered once however many reads show it: live reads that reuse the kept merge
/// reuse one rendering, and the cached read that follows takes that one too. A changed view
/// is rendered again.
#[actix_rt::test]
async fn a_view_is_rendered_once_for_live_and_cached_reads() {
    let db = TestDb::sqlite();
    let mut mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let token = admin_token(&mesh).await;
    let renders = |response: &ServiceResponse<_>| {
        response
            .request()
            .app_data::<web::Data<api::RenderedView>>()
            .expect("the app's rendered view")
            .view_renders()
    };
    let read = |path: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            let req = test::TestRequest::get()
                .uri(path)
                .peer_addr(CLIENT.parse().unwrap())
                .insert_header(("Authorization", format!("Bearer {token}")))
                .to_request();
            let response = test::call_service(app, req).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let count = renders(&response);
            let body: Value = serde_json::from_slice(&test::read_body(response).await).unwrap();
            (body, count)
        }
    };
    let (live_a, after_live_a) = read("/api/v1/osystems?live=true").await;
    let (live_b, after_live_b) = read("/api/v1/osystems?live=true").await;
    let (cached, after_cached) = read("/api/v1/osystems").await;
    assert_eq!(after_live_a, 1, "the first live read renders the view");
    assert_eq!(after_live_b, 1, "the second reuses it");
    assert_eq!(after_cached, 1, "so does the cached read");
    assert_eq!(live_a["view"], live_b["view"]);
    assert_eq!(live_a["view"], cached["view"]);

    // Another view: rendered again, and what is served is the new one.
    mesh.stop_cluster("beta").await;
    let (changed, after_change) = read("/api/v1/osystems").await;
    assert_eq!(after_change, 2);
    assert_ne!(changed["view"], cached["view"]);
    let (again, after_again) = read("/api/v1/osystems").await;
    assert_eq!(
        (again["view"].clone(), after_again),
        (changed["view"].clone(), 2)
    );
}
