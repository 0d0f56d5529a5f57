//! The page's sessions at the HTTP level (no browser): login, the cookie's flags, CSRF on
//! every write through a session, roles as in the API, logout, revocation, and the change
//! feed's first events.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::{test, web};
use common::*;
use osmesh_region::api;
use osmesh_region::auth::{issue_token, AuthSettings, AuthState};
use osmesh_store::{AuditQuery, Role};
use serde_json::{json, Value};

const CLIENT: &str = "127.0.0.9:40000";

async fn app(
    mesh: &Mesh,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await
}

async fn token(mesh: &Mesh, name: &str, role: Role) -> String {
    let now = mesh.service.now_ms().await.unwrap();
    let (secret, _) = issue_token(&mesh.store, name, role, "test", now, None).unwrap();
    secret.expose().to_owned()
}

fn login_request(token: &str) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/ui/login")
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .set_payload(format!("token={token}"))
        .peer_addr(CLIENT.parse().unwrap())
}

struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
}

async fn send<S, B>(app: &S, req: test::TestRequest) -> Answer
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response =
        test::call_service(app, req.peer_addr(CLIENT.parse().unwrap()).to_request()).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

/// Logs in with `token`: the session cookie's value and the CSRF token.
async fn session<S, B>(app: &S, token: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let answer = send(app, login_request(token)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let cookie = set_cookie(&answer.headers).expect("a session cookie");
    let id = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("osmesh_session="))
        .expect("osmesh_session=…")
        .to_owned();
    let me = send(
        app,
        with_cookie(test::TestRequest::get().uri("/ui/session"), &id),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    (id, me.body["csrf"].as_str().expect("csrf").to_owned())
}

fn set_cookie(headers: &header::HeaderMap) -> Option<String> {
    headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn with_cookie(req: test::TestRequest, id: &str) -> test::TestRequest {
    req.insert_header((header::COOKIE, format!("osmesh_session={id}")))
}

fn settings_write(id: &str, csrf: Option<&str>) -> test::TestRequest {
    let mut req = with_cookie(test::TestRequest::put().uri("/api/v1/settings"), id)
        .set_json(json!({"default_osystem": "ubuntu"}));
    if let Some(csrf) = csrf {
        req = req.insert_header(("X-CSRF-Token", csrf));
    }
    req
}

#[actix_rt::test]
async fn without_a_session_the_page_redirects_and_the_api_answers_401() {
    let (_db, mesh) = empty_mesh().await;
    let app = app(&mesh).await;
    let page = send(&app, test::TestRequest::get().uri("/")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers.get(header::LOCATION).unwrap(), "/login");
    let login = send(&app, test::TestRequest::get().uri("/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.as_str().unwrap().contains("name=\"token\""));
    for path in ["/ui/session", "/ui/events", "/api/v1/clusters"] {
        let answer = send(&app, test::TestRequest::get().uri(path)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.body["code"], "missing_token", "{path}");
    }
    // An unknown or forged session id is refused, on the page and on the API.
    let forged = "a".repeat(64);
    let page = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/"), &forged),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let api = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/api/v1/clusters"), &forged),
    )
    .await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.body["code"], "session_ended");
    // The assets are public: they hold no data.
    let js = send(&app, test::TestRequest::get().uri("/ui/assets/app.js")).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
}

#[actix_rt::test]
async fn login_sets_an_httponly_strict_cookie_secure_under_https() {
    let (_db, mesh) = empty_mesh().await;
    let app = app(&mesh).await;
    let admin = token(&mesh, "web-admin", Role::Admin).await;
    let answer = send(&app, login_request(&admin)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.headers.get(header::LOCATION).unwrap(), "/");
    let cookie = set_cookie(&answer.headers).unwrap();
    let flags: Vec<&str> = cookie.split("; ").skip(1).collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(flags.contains(&flag), "{cookie}");
    }
    assert!(!flags.contains(&"Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(&admin), "the cookie is not the token");
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("osmesh_session=");
    assert_eq!(id.len(), 64);
    // With the session, `/` serves the page.
    let page = send(&app, with_cookie(test::TestRequest::get().uri("/"), id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.as_str().unwrap().contains("/ui/assets/app.js"));

    let https = send(
        &app,
        login_request(&admin).insert_header(("X-Forwarded-Proto", "https")),
    )
    .await;
    let cookie = set_cookie(&https.headers).unwrap();
    assert!(cookie.split("; ").any(|f| f == "Secure"), "{cookie}");

    // A bad token: back to the form with the reason, no cookie; both logins audited.
    let bad = send(&app, login_request(&format!("osm_{}", "0".repeat(72)))).await;
    assert_eq!(bad.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bad.headers.get(header::LOCATION).unwrap(),
        "/login?error=bad_token"
    );
    assert!(set_cookie(&bad.headers).is_none());
    let audit = mesh
        .store
        .audit(&AuditQuery {
            object: Some("/ui/login".into()),
            token_name: None,
            before_id: None,
            limit: 10,
        })
        .unwrap();
    let outcomes: Vec<(Option<&str>, &str)> = audit
        .iter()
        .map(|e| (e.token_name.as_deref(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (None, "refused"),
            (Some("web-admin"), "accepted"),
            (Some("web-admin"), "accepted")
        ]
    );
    // A body past the bound is refused before it is read.
    let big = send(&app, login_request(&"a".repeat(4096))).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(set_cookie(&big.headers).is_none());
    // A login posted from another site is refused (login CSRF); from our own form it is not.
    for (from, refused) in [
        ("cross-site", true),
        ("same-site", true),
        ("same-origin", false),
        ("none", false),
    ] {
        let answer = send(
            &app,
            login_request(&admin).insert_header(("Sec-Fetch-Site", from)),
        )
        .await;
        assert_eq!(set_cookie(&answer.headers).is_none(), refused, "{from}");
        if refused {
            assert_eq!(
                answer.headers.get(header::LOCATION).unwrap(),
                "/login?error=cross_site"
            );
        }
    }
}

#[actix_rt::test]
async fn every_write_through_a_session_needs_its_csrf_token() {
    let (_db, mesh) = empty_mesh().await;
    let app = app(&mesh).await;
    let admin = token(&mesh, "web-admin", Role::Admin).await;
    let (id, csrf) = session(&app, &admin).await;
    let (_, other_csrf) = session(&app, &admin).await;
    for (what, header) in [
        ("none", None),
        ("wrong", Some("0".repeat(64))),
        ("another session's", Some(other_csrf.clone())),
        ("empty", Some(String::new())),
    ] {
        let answer = send(&app, settings_write(&id, header.as_deref())).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            answer.body
        );
        assert_eq!(answer.body["code"], "csrf_failed", "{what}");
    }
    // Every write route, not just one: a POST, a DELETE.
    for req in [
        test::TestRequest::post()
            .uri("/api/v1/license-keys")
            .set_json(json!({})),
        test::TestRequest::delete().uri("/api/v1/nodes/1"),
        test::TestRequest::post().uri("/ui/logout"),
    ] {
        let answer = send(&app, with_cookie(req, &id)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    // Reads need none; the right token passes the check (the settings are then refused by
    // the region, which has no cluster holding ubuntu: not a 403).
    let read = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/api/v1/settings"), &id),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    let answer = send(&app, settings_write(&id, Some(&csrf))).await;
    assert!(
        answer.status != StatusCode::FORBIDDEN && answer.status != StatusCode::UNAUTHORIZED,
        "{} {}",
        answer.status,
        answer.body
    );
    // The refused writes are in the audit log, under the session's token.
    let refused = mesh
        .store
        .audit(&AuditQuery {
            object: Some("/api/v1/settings".into()),
            token_name: Some("web-admin".into()),
            before_id: None,
            limit: 100,
        })
        .unwrap()
        .iter()
        .filter(|e| e.status == 403)
        .count();
    assert_eq!(refused, 4);
    // A bearer token needs no CSRF token (no cookie rides along with it).
    let bearer = send(
        &app,
        test::TestRequest::put()
            .uri("/api/v1/settings")
            .insert_header(("Authorization", format!("Bearer {admin}")))
            .set_json(json!({"default_osystem": "ubuntu"})),
    )
    .await;
    assert_ne!(bearer.status, StatusCode::FORBIDDEN);
}

#[actix_rt::test]
async fn a_session_has_its_tokens_role() {
    let (_db, mesh) = empty_mesh().await;
    let app = app(&mesh).await;
    let reader = token(&mesh, "web-reader", Role::Reader).await;
    let operator = token(&mesh, "web-operator", Role::Operator).await;
    let (rid, rcsrf) = session(&app, &reader).await;
    let me = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/ui/session"), &rid),
    )
    .await;
    assert_eq!(me.body["role"], "reader");
    assert_eq!(me.body["name"], "web-reader");
    let write = send(&app, settings_write(&rid, Some(&rcsrf))).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert_eq!(write.body["code"], "forbidden");
    let (oid, ocsrf) = session(&app, &operator).await;
    let key = send(
        &app,
        with_cookie(
            test::TestRequest::post()
                .uri("/api/v1/license-keys")
                .insert_header(("X-CSRF-Token", ocsrf.as_str()))
                .set_json(json!({"osystem": "windows", "distro_series": "win2019", "license_key": VALID_WINDOWS_KEY})),
            &oid,
        ),
    )
    .await;
    assert_eq!(key.status, StatusCode::FORBIDDEN, "keys are admin's");
    let audit = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/api/v1/audit"), &oid),
    )
    .await;
    assert_eq!(
        audit.status,
        StatusCode::FORBIDDEN,
        "the audit log is admin's"
    );
}

#[actix_rt::test]
async fn logout_and_revocation_end_sessions() {
    let (_db, mesh) = empty_mesh().await;
    let app = app(&mesh).await;
    let admin = token(&mesh, "web-admin", Role::Admin).await;
    let (id, csrf) = session(&app, &admin).await;
    let out = send(
        &app,
        with_cookie(test::TestRequest::post().uri("/ui/logout"), &id)
            .insert_header(("X-CSRF-Token", csrf.as_str())),
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let cleared = set_cookie(&out.headers).unwrap();
    assert!(
        cleared.starts_with("osmesh_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/ui/session"), &id),
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let page = send(&app, with_cookie(test::TestRequest::get().uri("/"), &id)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    // Revoking the token ends its sessions on their next request.
    let (id, _) = session(&app, &admin).await;
    let now = mesh.service.now_ms().await.unwrap();
    mesh.store.revoke_token("web-admin", now).unwrap();
    let after = send(
        &app,
        with_cookie(test::TestRequest::get().uri("/api/v1/clusters"), &id),
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.body["code"], "bad_token");
}

/// The next chunk of a streaming body.
async fn next_chunk<B: MessageBody + Unpin>(body: &mut B) -> String {
    let chunk = futures::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx))
        .await
        .expect("the stream goes on")
        .unwrap_or_else(|_| panic!("stream error"));
    String::from_utf8_lossy(&chunk).into_owned()
}

#[actix_rt::test]
async fn the_event_stream_tells_each_change_of_the_mesh() {
    let db = TestDb::sqlite();
    let clusters = standard_clusters();
    let mut mesh = Mesh::start(&db.url, &clusters).await;
    let app = app(&mesh).await;
    let admin = token(&mesh, "web-admin", Role::Admin).await;
    let (id, _) = session(&app, &admin).await;
    let response = test::call_service(
        &app,
        with_cookie(test::TestRequest::get().uri("/ui/events"), &id)
            .peer_addr(CLIENT.parse().unwrap())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    let mut body = Box::pin(response.into_body());
    let first = next_chunk(&mut body).await;
    assert_eq!(first, "event: mesh\ndata: {\"version\":0}\n\n");
    // The poller's first reading is an event too (a page that fetched before it started
    // refetches): once it has come, the poller holds the mesh as it is now.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), next_chunk(&mut body))
        .await
        .expect("the first reading");
    assert_eq!(first, "event: mesh\ndata: {\"version\":1}\n\n");
    // A cluster goes away: the next event is a new version (not a keep-alive).
    let gone = clusters[0].id;
    mesh.stop_cluster(gone).await;
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), next_chunk(&mut body))
        .await
        .expect("an event within the poll interval");
    assert_eq!(second, "event: mesh\ndata: {\"version\":2}\n\n");
    // It comes back with another image (a link and a new snapshot): a new version again.
    let mut back = clusters[0].clone();
    back.images.push(image("ubuntu", "amd64", "focal", NETBOOT));
    mesh.start_cluster(&back).await;
    let third = tokio::time::timeout(std::time::Duration::from_secs(10), next_chunk(&mut body))
        .await
        .expect("an event within the poll interval");
    let version: u64 = third
        .strip_prefix("event: mesh\ndata: {\"version\":")
        .and_then(|rest| rest.strip_suffix("}\n\n"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a version event: {third}"));
    assert!(version > 2, "{third}");
}
