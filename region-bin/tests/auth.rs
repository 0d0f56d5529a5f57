//! Who may call what: every registered route (from the one table the app is built from)
//! against no token, a bad token and each role; the 401/403 bodies; revocation and expiry
//! taking effect on the next request; throttled failures; the audit rows of refused writes.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web};
use common::*;
use osmesh_region::api;
use osmesh_region::auth::{issue_token, AuthSettings, AuthState};
use osmesh_store::{AuditQuery, Role};
use serde_json::{json, Value};
use std::num::NonZeroU32;
use std::time::Duration;

const CLIENT: &str = "127.0.0.7:40000";

async fn app_with(
    mesh: &Mesh,
    settings: AuthSettings,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(settings)),
    ))
    .await
}

/// Sends a request; the status, the headers' Retry-After, and the JSON body (`null` when empty).
async fn send<S, B>(app: &S, req: test::TestRequest) -> (StatusCode, Option<String>, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response =
        test::call_service(app, req.peer_addr(CLIENT.parse().unwrap()).to_request()).await;
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let bytes = test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else if status.is_success() && !bytes.starts_with(b"{") && !bytes.starts_with(b"[") {
        // A successful non-JSON answer (`/metrics` is the text exposition format).
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, retry, body)
}

fn request(method: &Method, path: &str, token: Option<&str>) -> test::TestRequest {
    let mut req = test::TestRequest::default()
        .method(method.clone())
        .uri(path);
    if *method != Method::GET {
        req = req.set_json(json!({}));
    }
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    req
}

/// A concrete path for a pattern: every `{param}` becomes `1`.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

struct Tokens {
    by_role: Vec<(Role, String)>,
}

async fn tokens(mesh: &Mesh) -> Tokens {
    let now = mesh.service.now_ms().await.unwrap();
    let by_role = Role::ALL
        .iter()
        .map(|role| {
            let (secret, _) =
                issue_token(&mesh.store, &format!("t-{role}"), *role, "test", now, None).unwrap();
            (*role, secret.expose().to_owned())
        })
        .collect();
    Tokens { by_role }
}

#[actix_rt::test]
async fn every_registered_route_answers_each_role_by_its_rule() {
    let (_db, mesh) = empty_mesh().await;
    // Hundreds of deliberate failures from one address: no throttling here (tested below).
    let unthrottled = AuthSettings {
        failed_auth_burst: NonZeroU32::new(100_000).unwrap(),
        ..AuthSettings::default()
    };
    let app = app_with(&mesh, unthrottled).await;
    let tokens = tokens(&mesh).await;
    let rules = api::access_rules();
    assert!(rules.len() >= 25, "{} rules", rules.len());
    let malformed = "osm_not-a-token";
    let unknown = format!("osm_{}", "0".repeat(72));
    for rule in &rules {
        let path = concrete(&rule.path);
        let what = format!("{} {}", rule.method, rule.path);
        for (token, code) in [
            (None, "missing_token"),
            (Some(malformed), "bad_token"),
            (Some(unknown.as_str()), "bad_token"),
        ] {
            let (status, _, body) = send(&app, request(&rule.method, &path, token)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} {token:?}: {body}");
            assert_eq!(body["code"], code, "{what}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        for (role, token) in &tokens.by_role {
            let (status, _, body) = send(&app, request(&rule.method, &path, Some(token))).await;
            if *role < rule.role {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {body}");
                assert_eq!(body["code"], "forbidden", "{what}");
                let message = body["message"].as_str().unwrap();
                assert!(
                    message.contains(rule.role.as_str()) && message.contains(role.as_str()),
                    "{message}"
                );
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{what} as {role}: {status} {body}"
                );
                // The rule names a route the app really serves: no 404-for-route, no 405.
                assert_ne!(body["code"], "no_such_route", "{what} is not mounted");
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{what} is not mounted"
                );
            }
        }
    }
}

#[actix_rt::test]
async fn the_rules_give_each_role_what_the_issue_says() {
    let rule = |method: Method, path: &str| {
        api::access_rules()
            .into_iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("no rule for {method} {path}"))
            .role
    };
    for r in api::access_rules() {
        if r.method == Method::GET
            && !["/api/v1/tokens", "/api/v1/audit"].contains(&r.path.as_str())
        {
            assert_eq!(r.role, Role::Reader, "every GET is a reader's: {}", r.path);
        }
    }
    assert_eq!(rule(Method::POST, "/api/v1/nodes"), Role::Operator);
    assert_eq!(rule(Method::POST, "/api/v1/nodes/allocate"), Role::Operator);
    assert_eq!(
        rule(Method::POST, "/api/v1/nodes/{id}/release"),
        Role::Operator
    );
    assert_eq!(rule(Method::PUT, "/api/v1/settings"), Role::Operator);
    assert_eq!(rule(Method::POST, "/api/v1/license-keys"), Role::Admin);
    assert_eq!(rule(Method::PUT, "/api/v1/preseeds/{name}"), Role::Admin);
    for verb in ["approve", "refuse"] {
        let path = format!("/api/v1/cluster-templates/{{cluster}}/{{name}}/{verb}");
        assert_eq!(rule(Method::POST, &path), Role::Admin);
    }
    assert_eq!(rule(Method::POST, "/api/v1/tokens"), Role::Admin);
    assert_eq!(rule(Method::GET, "/api/v1/audit"), Role::Admin);
}

#[actix_rt::test]
async fn revocation_and_expiry_take_effect_on_the_next_request() {
    let (_db, mesh) = empty_mesh().await;
    let app = app_with(&mesh, AuthSettings::default()).await;
    let tokens = tokens(&mesh).await;
    let admin = &tokens.by_role[2].1;

    // An admin makes a reader token through the API; it works at once.
    let (status, _, created) = send(
        &app,
        request(&Method::POST, "/api/v1/tokens", Some(admin))
            .set_json(json!({"name": "ci", "role": "reader"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ci = created["token"].as_str().unwrap().to_owned();
    assert!(ci.starts_with("osm_") && ci.len() == 76, "{ci}");
    assert_eq!(created["created_by"], "t-admin");
    let (status, _, me) = send(&app, request(&Method::GET, "/api/v1/whoami", Some(&ci))).await;
    assert_eq!(
        (status, &me),
        (StatusCode::OK, &json!({"name": "ci", "role": "reader"}))
    );

    // The list never shows a token or its hash.
    let (_, _, list) = send(&app, request(&Method::GET, "/api/v1/tokens", Some(admin))).await;
    let text = list.to_string();
    assert!(
        text.contains("\"ci\"") && !text.contains(&ci) && !text.contains("hash"),
        "{text}"
    );

    let (status, _, _) = send(
        &app,
        request(&Method::DELETE, "/api/v1/tokens/ci", Some(admin)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(&app, request(&Method::GET, "/api/v1/whoami", Some(&ci))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "the token was revoked");

    // A token that expires in 300 ms of region time works, then stops.
    let now = mesh.service.now_ms().await.unwrap();
    let (short, _) = issue_token(
        &mesh.store,
        "short",
        Role::Reader,
        "test",
        now,
        Some(now + 300),
    )
    .unwrap();
    let (status, _, _) = send(
        &app,
        request(&Method::GET, "/api/v1/whoami", Some(short.expose())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, body) = send(
        &app,
        request(&Method::GET, "/api/v1/whoami", Some(short.expose())),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "the token has expired");
}

#[actix_rt::test]
async fn refused_and_accepted_writes_are_audited_and_the_log_pages() {
    let (_db, mesh) = empty_mesh().await;
    let app = app_with(&mesh, AuthSettings::default()).await;
    let tokens = tokens(&mesh).await;
    let (reader, admin) = (&tokens.by_role[0].1, &tokens.by_role[2].1);
    let write = |token: Option<&str>| {
        request(&Method::POST, "/api/v1/tokens", token)
            .set_json(json!({"name": "new", "role": "reader"}))
    };
    send(&app, write(None)).await;
    send(&app, write(Some(reader))).await;
    let (status, _, _) = send(&app, write(Some(admin))).await;
    assert_eq!(status, StatusCode::CREATED);
    // Reads are not audited.
    send(&app, request(&Method::GET, "/api/v1/tokens", Some(admin))).await;

    let rows = mesh
        .store
        .audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let seen: Vec<(Option<&str>, i32, &str)> = rows
        .iter()
        .map(|r| (r.token_name.as_deref(), r.status, r.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("t-admin"), 201, "accepted"),
            (Some("t-reader"), 403, "refused"),
            (None, 401, "refused"),
        ]
    );
    for row in &rows {
        assert_eq!(
            (row.method.as_str(), row.route.as_str(), row.object.as_str()),
            ("POST", "/api/v1/tokens", "/api/v1/tokens")
        );
        assert_eq!(row.client, "127.0.0.7");
    }

    let (status, _, page) = send(
        &app,
        request(
            &Method::GET,
            "/api/v1/audit?limit=2&token=t-reader",
            Some(admin),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let (_, _, page) = send(
        &app,
        request(&Method::GET, "/api/v1/audit?limit=2", Some(admin)),
    )
    .await;
    let next = page["next_before_id"].as_i64().expect("a next page");
    let (_, _, older) = send(
        &app,
        request(
            &Method::GET,
            &format!("/api/v1/audit?limit=2&before_id={next}"),
            Some(admin),
        ),
    )
    .await;
    assert_eq!(older["entries"][0]["status"], 401);
    assert!(older["next_before_id"].is_null());
}

#[actix_rt::test]
async fn repeated_failures_from_one_address_are_throttled_and_counted() {
    let (_db, mesh) = empty_mesh().await;
    let settings = AuthSettings {
        failed_auth_burst: NonZeroU32::new(3).unwrap(),
        failed_auth_replenish: Duration::from_secs(60),
        ..AuthSettings::default()
    };
    let state = web::Data::new(AuthState::new(settings));
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        state.clone(),
    ))
    .await;
    let tokens = tokens(&mesh).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, retry, body) =
            send(&app, request(&Method::GET, "/api/v1/clusters", None)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], "too_many_failed_authentications");
            let secs: u64 = retry.expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&secs), "{secs}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // A valid token still works from the throttled address.
    let (status, _, _) = send(
        &app,
        request(&Method::GET, "/api/v1/clusters", Some(&tokens.by_role[0].1)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let counts = state.counts();
    assert_eq!((counts.failed, counts.throttled), (3, 2));
}

#[actix_rt::test]
async fn public_paths_need_no_token_and_metrics_only_when_open() {
    let (_db, mesh) = empty_mesh().await;
    let closed = app_with(&mesh, AuthSettings::default()).await;
    for path in osmesh_region::auth::PUBLIC_PATHS {
        let (status, _, _) = send(&closed, request(&Method::GET, path, None)).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _, _) = send(&closed, request(&Method::GET, "/metrics", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Closed, a reader's token scrapes it (its rule is in auth::OUTSIDE_RULES).
    let tokens = tokens(&mesh).await;
    let (status, _, _) = send(
        &closed,
        request(&Method::GET, "/metrics", Some(&tokens.by_role[0].1)),
    )
    .await;
    assert!(
        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
        "{status}"
    );
    let open = app_with(
        &mesh,
        AuthSettings {
            open_metrics: true,
            ..AuthSettings::default()
        },
    )
    .await;
    let (status, _, _) = send(&open, request(&Method::GET, "/metrics", None)).await;
    assert_ne!(status, StatusCode::UNAUTHORIZED);
}

#[core::prelude::v1::test]
fn a_5xx_answer_carries_a_request_id_not_the_driver_text() {
    use actix_web::ResponseError;
    use osmesh_actors::region::service::{FailureKind, ServiceError};
    let detail = "could not connect to server: db.internal (10.1.2.3) port 5432 refused";
    for (kind, code) in [
        (FailureKind::Internal, "store_failed"),
        (FailureKind::Unavailable, "database_unavailable"),
    ] {
        let response = api::ApiError(ServiceError::new(kind, code, detail)).error_response();
        assert!(response.status().is_server_error());
        let bytes = actix_web::body::to_bytes(response.into_body());
        let body: Value =
            serde_json::from_slice(&futures::executor::block_on(bytes).unwrap()).unwrap();
        assert_eq!(body["code"], code);
        assert_eq!(
            body["request_id"].as_str().map(str::len),
            Some(16),
            "{body}"
        );
        assert!(!body.to_string().contains("10.1.2.3"), "{body}");
    }
    // Messages osmesh writes itself about the mesh stay whole.
    let own = ServiceError::new(
        FailureKind::Unavailable,
        "cluster_unavailable",
        "cluster alpha is not connected",
    );
    let response = api::ApiError(own).error_response();
    let bytes =
        futures::executor::block_on(actix_web::body::to_bytes(response.into_body())).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("cluster alpha is not connected"));
}
