//! Secrets are write-only: writes carrying a power password and a license key, then every
//! read a `reader` can make, with every log line (all targets, TRACE) captured; neither
//! secret appears in any answer or any log line. An admin's rendered preseed still has the key.
//! One test in this binary: it owns the process's global log subscriber.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web};
use common::*;
use osmesh_region::api;
use osmesh_region::auth::{issue_token, AuthSettings, AuthState};
use osmesh_store::Role;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

const POWER_PASS: &str = "S3cr3t-P0wer-Pa55";
const OTHER_KEY: &str = "ZZZZZ-99999-YYYYY-88888-XXXXX";

/// Every log line of the process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

async fn call<S, B>(
    app: &S,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default()
        .method(method)
        .uri(path)
        .peer_addr("127.0.0.1:5000".parse().unwrap())
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(body) = body {
        req = req.set_json(body);
    }
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status();
    let bytes = test::read_body(response).await;
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[actix_rt::test]
async fn power_passwords_and_license_keys_never_reach_a_reader_or_the_log() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    let app = test::init_service(api::app(
        web::Data::new(mesh.service.clone()),
        web::Data::new(mesh.store.clone()),
        web::Data::new(AuthState::new(AuthSettings::default())),
    ))
    .await;
    let now = mesh.service.now_ms().await.unwrap();
    let token = |role: Role| {
        issue_token(&mesh.store, role.as_str(), role, "test", now, None)
            .unwrap()
            .0
            .expose()
            .to_owned()
    };
    let (reader, operator, admin) = (
        token(Role::Reader),
        token(Role::Operator),
        token(Role::Admin),
    );
    let mut answers = Vec::new();
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/cluster-templates/alpha/windows/approve",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The writes, each answered to its writer: masked too.
    let key =
        json!({"osystem": "windows", "distro_series": "win2019", "license_key": VALID_WINDOWS_KEY});
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/license-keys",
        &admin,
        Some(key),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    answers.push(body);
    let node = json!({"hostname": "w1", "cluster": "alpha", "arch": "amd64", "power_type": "ipmi",
        "power_parameters": {"power_address": "10.0.0.9", "power_user": "admin", "power_pass": POWER_PASS}});
    let (status, body) = call(&app, Method::POST, "/api/v1/nodes", &operator, Some(node)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    assert!(
        body.contains("10.0.0.9"),
        "non-secret parameters stay readable: {body}"
    );
    answers.push(body);
    let allocate = json!({"osystem": "windows", "distro_series": "win2019", "arch": "amd64"});
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/nodes/allocate",
        &operator,
        Some(allocate),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    answers.push(body);
    // A reader's refused write carrying another key.
    let other = json!({"osystem": "windows", "distro_series": "win2019", "license_key": OTHER_KEY});
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/license-keys",
        &reader,
        Some(other),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    answers.push(body);

    // Everything a reader can read.
    let preseed = format!("/api/v1/nodes/{id}/preseed?type=windows");
    for path in [
        "/api/v1/nodes".to_owned(),
        format!("/api/v1/nodes/{id}"),
        "/api/v1/license-keys".into(),
        "/api/v1/license-keys/windows/win2019".into(),
        preseed.clone(),
        "/api/v1/preseeds".into(),
        "/api/v1/preseeds/windows/history".into(),
        "/api/v1/settings".into(),
        "/api/v1/audit".into(),
        "/api/v1/tokens".into(),
    ] {
        let (_, body) = call(&app, Method::GET, &path, &reader, None).await;
        answers.push(body);
    }
    let (status, rendered) = call(&app, Method::GET, &preseed, &reader, None).await;
    assert_eq!(status, StatusCode::OK, "{rendered}");
    assert!(rendered.contains("key=********"), "{rendered}");

    // Only an admin gets the rendered preseed whole.
    let (_, whole) = call(&app, Method::GET, &preseed, &admin, None).await;
    assert!(whole.contains(VALID_WINDOWS_KEY), "{whole}");

    let logs = logs.text();
    assert!(
        logs.contains("INFO") || logs.contains("DEBUG") || logs.contains("TRACE"),
        "the capture works"
    );
    for secret in [POWER_PASS, VALID_WINDOWS_KEY, OTHER_KEY] {
        for answer in &answers {
            assert!(!answer.contains(secret), "{secret} in an answer: {answer}");
        }
        assert!(!logs.contains(secret), "{secret} in the log");
    }
}

#[core::prelude::v1::test]
fn a_template_cannot_dump_its_context() {
    use osmesh_actors::region::template::{render_template, PreseedContext};
    let mut ctx = PreseedContext {
        preseed_type: "curtin".into(),
        hostname: "w1".into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        osystem: "windows".into(),
        release: "win2019".into(),
        cluster: "alpha".into(),
        data: Default::default(),
    };
    ctx.data
        .insert("license_key".into(), VALID_WINDOWS_KEY.into());
    let err = render_template("t", "{{ debug() }}", &ctx).unwrap_err();
    assert!(!err.to_string().contains(VALID_WINDOWS_KEY), "{err}");
    assert!(!format!("{ctx:?}").contains(VALID_WINDOWS_KEY));
}
