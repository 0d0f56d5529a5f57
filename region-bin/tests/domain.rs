//! The domain API (license keys, settings, nodes, preseeds) against the real routes, a real
//! region actor and real clusters over the in-memory transport, in one actix System.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, web, App, HttpMessage};
use common::*;
use osmesh_actors::region::nodes::AllocateRequest;
use osmesh_actors::region::service::{FailureKind, ServiceError};
use osmesh_region::api;
use serde_json::{json, Value};
use std::collections::BTreeSet;

macro_rules! app {
    ($mesh:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($mesh.service.clone()))
                // Every request as an admin: authentication has its own tests (tests/auth.rs).
                .wrap_fn(|req, srv| {
                    req.extensions_mut().insert(osmesh_region::auth::Caller {
                        name: "domain-tests".into(),
                        role: osmesh_store::Role::Admin,
                    });
                    srv.call(req)
                })
                .configure(api::configure),
        )
        .await
    };
}

/// Sends a request; the status and the JSON body (`null` when empty).
async fn send<S, B>(app: &S, req: test::TestRequest) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req.to_request()).await;
    let status = response.status();
    let bytes = test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

fn get(path: &str) -> test::TestRequest {
    test::TestRequest::get().uri(path)
}

fn post(path: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post().uri(path).set_json(body)
}

fn put(path: &str, body: Value) -> test::TestRequest {
    test::TestRequest::put().uri(path).set_json(body)
}

fn delete(path: &str) -> test::TestRequest {
    test::TestRequest::delete().uri(path)
}

async fn mesh() -> (TestDb, Mesh) {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &standard_clusters()).await;
    (db, mesh)
}

fn windows_key(key: &str) -> Value {
    json!({"osystem": "windows", "distro_series": "win2019", "license_key": key})
}

#[actix_rt::test]
async fn license_key_is_validated_by_a_knowing_cluster_and_always_masked() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let (status, body) = send(
        &app,
        post("/api/v1/license-keys", windows_key(VALID_WINDOWS_KEY)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["validated_by"], "alpha");
    assert_eq!(body["license_key"], "*****-*****-*****-*****-KLMNO");
    assert!(body["validated_at_ms"].as_i64().unwrap() >= 1_700_000_000_000);

    let (status, list) = send(&app, get("/api/v1/license-keys")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["license_key"], "*****-*****-*****-*****-KLMNO");
    assert!(!list.to_string().contains("ABCDE"), "{list}");
    let (status, one) = send(&app, get("/api/v1/license-keys/windows/win2019")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["license_key"], "*****-*****-*****-*****-KLMNO");

    let (status, body) = send(
        &app,
        post("/api/v1/license-keys", windows_key(VALID_WINDOWS_KEY)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "license_key_exists");

    let replace = json!({"license_key": "VWXYZ-12345-FGHIJ-67890-QRSTU"});
    let (status, body) = send(&app, put("/api/v1/license-keys/windows/win2019", replace)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["license_key"], "*****-*****-*****-*****-QRSTU");
    let bad = json!({"license_key": "short"});
    let (status, body) = send(&app, put("/api/v1/license-keys/windows/win2019", bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, one) = send(&app, get("/api/v1/license-keys/windows/win2019")).await;
    assert_eq!(
        one["license_key"], "*****-*****-*****-*****-QRSTU",
        "a refused update changes nothing"
    );
    let (status, _) = send(
        &app,
        put(
            "/api/v1/license-keys/windows/win2022",
            json!({"license_key": VALID_WINDOWS_KEY}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = send(&app, delete("/api/v1/license-keys/windows/win2019")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = send(&app, get("/api/v1/license-keys/windows/win2019")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "no_such_license_key");
    let (status, _) = send(&app, delete("/api/v1/license-keys/windows/win2019")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn invalid_windows_key_is_refused_with_the_clusters_reason() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let (status, body) = send(
        &app,
        post("/api/v1/license-keys", windows_key("ABCDE-12345")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_license_key");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("refused the key") && message.contains("alpha ("),
        "{message}"
    );
    assert!(
        message.contains("group"),
        "the driver's reason is passed on: {message}"
    );
    let (_, list) = send(&app, get("/api/v1/license-keys")).await;
    assert_eq!(list, json!([]));
}

#[actix_rt::test]
async fn key_for_an_os_only_a_disconnected_cluster_knows_is_refused_and_not_stored() {
    let (_db, mut mesh) = mesh().await;
    let app = app!(mesh);
    let acme =
        |key: &str| json!({"osystem": "acme-linux", "distro_series": "a2", "license_key": key});
    let (status, body) = send(&app, post("/api/v1/license-keys", acme("ACME-12"))).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "gamma is asked while connected: {body}"
    );
    assert!(body["message"].as_str().unwrap().contains("gamma"));

    mesh.stop_cluster("gamma").await;
    let (status, body) = send(&app, post("/api/v1/license-keys", acme("ACME-1234"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "no_cluster_can_validate");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("known to disconnected clusters: gamma"),
        "{message}"
    );
    assert!(
        !message.contains("ACME-1234"),
        "the key is not echoed: {message}"
    );
    let (_, list) = send(&app, get("/api/v1/license-keys")).await;
    assert_eq!(list, json!([]), "nothing is stored without a cluster's yes");

    let unknown = json!({"osystem": "plan9", "distro_series": "4", "license_key": "x"});
    let (status, body) = send(&app, post("/api/v1/license-keys", unknown)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "as every unknown OS: {body}");
    assert_eq!(body["code"], "no_such_osystem");
}

#[actix_rt::test]
async fn settings_are_checked_against_the_mesh_and_refusals_list_the_choices() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let empty = json!({"default_osystem": null, "default_distro_series": null, "commissioning_distro_series": null});
    assert_eq!(
        send(&app, get("/api/v1/settings")).await,
        (StatusCode::OK, empty)
    );

    let good = json!({"default_osystem": "ubuntu", "default_distro_series": "jammy", "commissioning_distro_series": "noble"});
    let (status, body) = send(&app, put("/api/v1/settings", good.clone())).await;
    assert_eq!((status, &body), (StatusCode::OK, &good));

    let cases = [
        (
            json!({"default_osystem": "plan9"}),
            "valid choices: acme-linux, centos, ubuntu, windows",
        ),
        (
            json!({"default_distro_series": "win2019"}),
            "valid choices: jammy, noble",
        ),
        (
            json!({"commissioning_distro_series": "win2019"}),
            "valid choices: jammy, noble",
        ),
        (
            json!({"default_osystem": "windows"}),
            "valid choices: win2019 (releases of windows)",
        ),
    ];
    for (update, expected) in cases {
        let (status, body) = send(&app, put("/api/v1/settings", update.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{update}: {body}");
        assert_eq!(body["code"], "invalid_setting");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(expected), "{update}: {message}");
    }
    assert_eq!(
        send(&app, get("/api/v1/settings")).await,
        (StatusCode::OK, good),
        "refusals store nothing"
    );

    let both = json!({"default_osystem": "windows", "default_distro_series": "win2019"});
    let (status, body) = send(&app, put("/api/v1/settings", both)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["default_osystem"], "windows");
    for bad in [json!({}), json!({"colour": "blue"}), json!([1])] {
        let (status, body) = send(&app, put("/api/v1/settings", bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

fn enlist(hostname: &str, cluster: &str, arch: &str) -> test::TestRequest {
    post(
        "/api/v1/nodes",
        json!({"hostname": hostname, "cluster": cluster, "arch": arch}),
    )
}

#[actix_rt::test]
async fn nodes_are_enlisted_on_known_clusters_listed_and_deleted() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let (status, node) = send(&app, enlist("n1", "alpha", "amd64")).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    assert_eq!(node["subarch"], "generic");
    assert_eq!(node["status"], "ready");
    assert_eq!(node["cluster"], "alpha");
    let (status, body) = send(&app, enlist("n1", "beta", "amd64")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("node_exists"))
    );
    let (status, body) = send(&app, enlist("n2", "nowhere", "amd64")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("unknown_cluster"))
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("known: alpha, beta, gamma"));
    let (status, _) = send(&app, enlist("bad host", "alpha", "amd64")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let with_power = post(
        "/api/v1/nodes",
        json!({"hostname": "n0", "cluster": "beta", "arch": "arm64", "subarch": "xgene", "power_type": "ipmi", "power_parameters": {"address": "10.0.0.9"}}),
    );
    let (status, n0) = send(&app, with_power).await;
    assert_eq!(status, StatusCode::CREATED, "{n0}");
    assert_eq!(n0["power_parameters"]["address"], "10.0.0.9");

    let (_, list) = send(&app, get("/api/v1/nodes")).await;
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["hostname"].clone())
        .collect();
    assert_eq!(names, [json!("n1"), json!("n0")], "sorted by id");
    let id = node["id"].as_i64().unwrap();
    let (status, one) = send(&app, get(&format!("/api/v1/nodes/{id}"))).await;
    assert_eq!((status, &one["hostname"]), (StatusCode::OK, &json!("n1")));
    assert_eq!(
        send(&app, delete(&format!("/api/v1/nodes/{id}"))).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = send(&app, get(&format!("/api/v1/nodes/{id}"))).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("no_such_node"))
    );
    assert_eq!(
        send(&app, delete(&format!("/api/v1/nodes/{id}"))).await.0,
        StatusCode::NOT_FOUND
    );
}

fn allocate(os: &str, release: &str, arch: &str) -> test::TestRequest {
    post(
        "/api/v1/nodes/allocate",
        json!({"osystem": os, "distro_series": release, "arch": arch}),
    )
}

#[actix_rt::test]
async fn allocation_skips_ready_nodes_whose_cluster_lacks_the_image() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    // beta lists jammy (it holds an arm64 image) but has no amd64 jammy image.
    let (_, on_beta) = send(&app, enlist("b1", "beta", "amd64")).await;
    let (_, on_alpha) = send(&app, enlist("a1", "alpha", "amd64")).await;
    assert!(on_beta["id"].as_i64() < on_alpha["id"].as_i64());

    let (status, node) = send(&app, allocate("ubuntu", "jammy", "amd64")).await;
    assert_eq!(status, StatusCode::OK, "{node}");
    assert_eq!(node["hostname"], "a1");
    assert_eq!(node["status"], "allocated");
    assert_eq!(node["osystem"], "ubuntu");
    assert_eq!(node["distro_series"], "jammy");

    let (status, body) = send(&app, allocate("ubuntu", "jammy", "amd64")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("no_free_node"))
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("alpha: no ready amd64 node")
            && message.contains("beta: holds no amd64 image of ubuntu/jammy"),
        "the refusal says per cluster why it could not serve: {message}"
    );

    // An OS or release no cluster knows is 404, as everywhere; one known but held nowhere for
    // the arch is a conflict with the mesh as it is.
    for (os, release, arch, status, code) in [
        (
            "plan9",
            "4",
            "amd64",
            StatusCode::NOT_FOUND,
            "no_such_osystem",
        ),
        (
            "ubuntu",
            "focal",
            "amd64",
            StatusCode::NOT_FOUND,
            "no_such_release",
        ),
        (
            "ubuntu",
            "jammy",
            "ppc64el",
            StatusCode::CONFLICT,
            "no_cluster_with_image",
        ),
    ] {
        let (got, body) = send(&app, allocate(os, release, arch)).await;
        assert_eq!(
            (got, &body["code"]),
            (status, &json!(code)),
            "{os}/{release}/{arch}: {body}"
        );
    }

    let id = node["id"].as_i64().unwrap();
    let (status, released) = send(
        &app,
        post(&format!("/api/v1/nodes/{id}/release"), json!({})),
    )
    .await;
    assert_eq!(
        (status, &released["status"]),
        (StatusCode::OK, &json!("ready"))
    );
    assert_eq!(released["osystem"], Value::Null);
    let (status, again) = send(&app, allocate("ubuntu", "noble", "amd64")).await;
    assert_eq!(
        (status, &again["hostname"]),
        (StatusCode::OK, &json!("b1")),
        "beta holds noble: {again}"
    );
    let (status, _) = send(&app, post("/api/v1/nodes/999/release", json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn allocation_needs_a_license_key_where_the_release_requires_one() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    send(&app, enlist("w1", "alpha", "amd64")).await;
    let (status, body) = send(&app, allocate("windows", "win2019", "amd64")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("license_key_missing")),
        "{body}"
    );
    let (status, _) = send(
        &app,
        post("/api/v1/license-keys", windows_key(VALID_WINDOWS_KEY)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, node) = send(&app, allocate("windows", "win2019", "amd64")).await;
    assert_eq!(
        (status, &node["hostname"]),
        (StatusCode::OK, &json!("w1")),
        "{node}"
    );
}

#[actix_rt::test]
async fn bad_bodies_paths_and_methods_are_json_4xx() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let raw = |method: actix_web::http::Method, path: &str, body: &'static str| {
        test::TestRequest::default()
            .method(method)
            .uri(path)
            .insert_header(("content-type", "application/json"))
            .set_payload(body)
    };
    use actix_web::http::Method;
    let cases = [
        (
            raw(Method::POST, "/api/v1/nodes", "{not json"),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(Method::POST, "/api/v1/nodes", r#"{"hostname": "x"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(Method::POST, "/api/v1/nodes/allocate", r#"{"osystem": 1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(
                Method::POST,
                "/api/v1/license-keys",
                r#"{"osystem": "windows"}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(
                Method::POST,
                "/api/v1/license-keys",
                r#"{"osystem": "windows", "distro_series": "win2019", "license_key": "  "}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(
                Method::PUT,
                "/api/v1/preseeds/generic",
                r#"{"content": "x", "based_on_version": "one"}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(Method::POST, "/api/v1/preseeds/generic/resolve", "[]"),
            StatusCode::BAD_REQUEST,
        ),
        (get("/api/v1/nodes/abc"), StatusCode::BAD_REQUEST),
        (
            get("/api/v1/nodes/99999999999999999999"),
            StatusCode::BAD_REQUEST,
        ),
        (get("/api/v1/nodes/1/preseed"), StatusCode::BAD_REQUEST),
        (
            get("/api/v1/nodes/1/preseed?type=a%20b"),
            StatusCode::BAD_REQUEST,
        ),
        (delete("/api/v1/settings"), StatusCode::METHOD_NOT_ALLOWED),
        (
            get("/api/v1/nodes/allocate"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (get("/api/v1/license-keys/windows"), StatusCode::NOT_FOUND),
        (get("/api/v1/preseeds/nope/history"), StatusCode::NOT_FOUND),
    ];
    for (req, expected) in cases {
        let req = req.to_request();
        let label = format!("{} {}", req.method(), req.uri());
        let response = test::call_service(&app, req).await;
        let status = response.status();
        let body: Value = serde_json::from_slice(&test::read_body(response).await)
            .unwrap_or_else(|e| panic!("{label}: not JSON: {e}"));
        assert_eq!(status, expected, "{label}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{label}: {body}"
        );
    }
}

fn edit(name: &str, content: &str, based_on: i32) -> test::TestRequest {
    put(
        &format!("/api/v1/preseeds/{name}"),
        json!({"content": content, "based_on_version": based_on}),
    )
}

#[actix_rt::test]
async fn preseed_edits_conflicts_and_resolution_never_lose_a_version() {
    let (_db, mut mesh) = mesh().await;
    let app = app!(mesh);
    let (status, list) = send(&app, get("/api/v1/preseeds")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("generic"), json!("windows")]);
    assert_eq!(list[0]["current"]["version"], 1);
    assert_eq!(list[0]["current"]["origin_cluster"], "alpha");
    assert_eq!(list[0]["in_conflict"], false);

    let (status, body) = send(&app, edit("generic", "operator {{ hostname }}\n", 1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], 2);
    assert_eq!(body["current"]["origin"], "operator");
    let (status, body) = send(&app, edit("generic", "late edit\n", 1)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("stale_preseed"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("current version is 2"),
        "{body}"
    );
    let (status, body) = send(&app, edit("generic", "ok\n{% for %}\n", 2)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_template"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"generic\" line 2"),
        "{body}"
    );
    let (status, _) = send(&app, edit("no-such", "x", 1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // alpha comes back shipping a changed template: both sides are kept, in conflict.
    let mut alpha = standard_clusters().remove(0);
    alpha.templates[1] = template("generic", "cluster v2 {{ hostname }}\n");
    mesh.stop_cluster("alpha").await;
    mesh.start_cluster(&alpha).await;
    let (_, shown) = send(&app, get("/api/v1/preseeds/generic")).await;
    assert_eq!(shown["in_conflict"], true, "{shown}");
    assert_eq!(
        shown["conflict"],
        json!({"operator_version": 2, "cluster_version": 3})
    );
    assert_eq!(
        shown["current"]["version"], 2,
        "the operator's edit stays current"
    );

    let (status, body) = send(
        &app,
        post("/api/v1/preseeds/generic/resolve", json!({"version": 1})),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("cannot_resolve"))
    );
    let (status, body) = send(
        &app,
        post("/api/v1/preseeds/generic/resolve", json!({"version": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["version"], 3);
    assert_eq!(body["in_conflict"], false);
    let (status, body) = send(
        &app,
        post("/api/v1/preseeds/generic/resolve", json!({"version": 3})),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("cannot_resolve"))
    );

    let (status, history) = send(&app, get("/api/v1/preseeds/generic/history")).await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["origin"].as_str().unwrap().to_owned(),
                v["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (1, "cluster".into(), "generic for {{ hostname }}\n".into()),
            (2, "operator".into(), "operator {{ hostname }}\n".into()),
            (3, "cluster".into(), "cluster v2 {{ hostname }}\n".into()),
        ]
    );
    // An edit based on the current version after resolution adds a fourth.
    let (status, body) = send(&app, edit("generic", "merged {{ hostname }}\n", 3)).await;
    assert_eq!(
        (status, &body["current"]["version"]),
        (StatusCode::OK, &json!(4))
    );
}

#[actix_rt::test]
async fn preseed_renders_the_most_specific_template_with_cluster_data() {
    let (_db, mut mesh) = mesh().await;
    let app = app!(mesh);
    send(
        &app,
        post("/api/v1/license-keys", windows_key(VALID_WINDOWS_KEY)),
    )
    .await;
    let (_, win) = send(&app, enlist("w1", "alpha", "amd64")).await;
    let (_, ubu) = send(&app, enlist("u1", "alpha", "amd64")).await;
    let preseed = |id: &Value, kind: &str| get(&format!("/api/v1/nodes/{id}/preseed?type={kind}"));

    let (status, body) = send(&app, preseed(&ubu["id"], "curtin")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("node_has_no_os")),
        "{body}"
    );

    send(&app, allocate("windows", "win2019", "amd64")).await;
    // alpha's templates are new names: they wait for an admin before serving any node.
    let (status, body) = send(&app, preseed(&win["id"], "windows")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("no_preseed_template")),
        "{body}"
    );
    for name in ["generic", "windows"] {
        let path = format!("/api/v1/cluster-templates/alpha/{name}/approve");
        let (status, body) = send(&app, post(&path, Value::Null)).await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::OK, &json!("approved"))
        );
    }
    let (status, body) = send(&app, preseed(&win["id"], "windows")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["template"], "windows");
    assert_eq!(
        body["content"],
        format!("windows win2019 on w1 key={VALID_WINDOWS_KEY}\n")
    );
    // As in MAAS, Windows is not installed by curtin: its cluster refuses the preseed.
    let (status, body) = send(&app, preseed(&win["id"], "curtin")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!("preseed_not_served")),
        "{body}"
    );

    send(&app, allocate("ubuntu", "jammy", "amd64")).await;
    let (status, body) = send(&app, preseed(&ubu["id"], "curtin")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["template"].as_str(), body["content"].as_str()),
        (Some("generic"), Some("generic for u1\n"))
    );

    let (_, current) = send(&app, get("/api/v1/preseeds/generic")).await;
    let version = current["current"]["version"].as_i64().unwrap() as i32;
    send(
        &app,
        edit("generic", "line one\n{{ data.missing }}\n", version),
    )
    .await;
    let (status, body) = send(&app, preseed(&ubu["id"], "curtin")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["code"], "preseed_render_failed");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"generic\" line 2"),
        "{body}"
    );

    mesh.stop_cluster("alpha").await;
    let (status, body) = send(&app, preseed(&win["id"], "curtin")).await;
    assert_eq!(
        (status, &body["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("cluster_unavailable")
        )
    );
}

/// 100 allocation requests from 100 threads at once, for 10 matching nodes (plus nodes that
/// must never be picked): exactly 10 distinct nodes are handed out, 90 requests refused.
#[core::prelude::v1::test]
fn hundred_concurrent_allocations_hand_out_ten_nodes_exactly_once() {
    for db in TestDb::each() {
        actix_rt::System::new().block_on(allocation_race(&db));
    }
}

async fn allocation_race(db: &TestDb) {
    let mesh = Mesh::start(&db.url, &standard_clusters()[..2]).await;
    let store = &mesh.store;
    let node = |hostname: String, cluster: &str, arch: &str| osmesh_store::NewNode {
        system_id: None,
        hostname,
        arch: arch.into(),
        subarch: "generic".into(),
        cluster_id: osmesh_core::ClusterId::new(cluster),
        power_type: None,
        power_parameters: None,
    };
    for i in 0..10 {
        store
            .create_node(&node(format!("a{i}"), "alpha", "amd64"), 1)
            .unwrap();
        store
            .create_node(&node(format!("b{i}"), "beta", "amd64"), 1)
            .unwrap();
        store
            .create_node(&node(format!("c{i}"), "alpha", "arm64"), 1)
            .unwrap();
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let mut answers = Vec::new();
    for _ in 0..100 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let service = mesh.service.clone();
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            let request = AllocateRequest {
                osystem: "ubuntu".into(),
                distro_series: "jammy".into(),
                arch: "amd64".into(),
                subarch: None,
                hostname: None,
            };
            barrier.wait();
            let _ = tx.send(futures::executor::block_on(service.allocate_node(&request)));
        });
        answers.push(rx);
    }
    let results = futures::future::join_all(answers).await;
    let mut won = BTreeSet::new();
    let mut refused = 0;
    for result in results {
        match result.expect("a thread answered") {
            Ok(node) => {
                assert!(node.hostname.starts_with('a'), "[{}] {node:?}", db.label);
                assert!(
                    won.insert(node.id),
                    "[{}] node {} handed out twice",
                    db.label,
                    node.id
                );
            }
            Err(ServiceError {
                kind: FailureKind::Conflict,
                code: "no_free_node",
                ..
            }) => refused += 1,
            Err(other) => panic!("[{}] unexpected refusal: {other:?}", db.label),
        }
    }
    assert_eq!((won.len(), refused), (10, 90), "[{}]", db.label);
    let allocated = store
        .list_nodes()
        .unwrap()
        .into_iter()
        .filter(|n| n.status == osmesh_store::NodeStatus::Allocated)
        .count();
    assert_eq!(allocated, 10, "[{}]", db.label);
}

#[actix_rt::test]
async fn images_are_listed_per_cluster_with_flavour_and_staleness() {
    let (_db, mut mesh) = mesh().await;
    let app = app!(mesh);
    let (status, body) = send(&app, get("/api/v1/images?osystem=ubuntu&release=jammy")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<(String, String, String, bool)> = body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cluster"].as_str().unwrap().to_owned(),
                r["arch"].as_str().unwrap().to_owned(),
                r["kflavor"].as_str().unwrap().to_owned(),
                r["connected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("alpha".into(), "amd64".into(), "generic".into(), true),
            ("beta".into(), "arm64".into(), "generic".into(), true),
        ]
    );
    assert_eq!(
        body["images"][0]["title"],
        "Ubuntu 22.04 LTS \"Jammy Jellyfish\""
    );

    mesh.stop_cluster("beta").await;
    let (_, body) = send(&app, get("/api/v1/images?arch=arm64")).await;
    let beta = &body["images"][0];
    assert_eq!(beta["cluster"], "beta");
    assert_eq!(
        beta["connected"], false,
        "last known, not available: {body}"
    );
    assert!(beta["disconnected_since_ms"].is_i64(), "{body}");

    let (status, body) = send(&app, get("/api/v1/images?color=red")).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_query"))
    );
}

#[actix_rt::test]
async fn keys_for_releases_that_need_none_are_refused_and_holders_validate() {
    let (_db, mesh) = mesh().await;
    let app = app!(mesh);
    let ubuntu =
        json!({"osystem": "ubuntu", "distro_series": "jammy", "license_key": VALID_WINDOWS_KEY});
    let (status, body) = send(&app, post("/api/v1/license-keys", ubuntu)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("license_key_not_needed")),
        "{body}"
    );
    // Every cluster knows windows/win2019, but only alpha holds an image: alpha decides.
    let (status, body) = send(
        &app,
        post("/api/v1/license-keys", windows_key(VALID_WINDOWS_KEY)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["validated_by"], "alpha");
    let (_, list) = send(&app, get("/api/v1/license-keys")).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

/// `alpha` (standard) and `evil`, a cluster that ships a template more specific than any
/// other for ubuntu nodes, one for an invented preseed type, and a broken `generic`.
fn evil_cluster() -> ClusterSpec {
    ClusterSpec {
        id: "evil",
        images: vec![image("ubuntu", "amd64", "jammy", NETBOOT)],
        declared: "",
        templates: vec![
            template("curtin_ubuntu", "late_commands: evil on {{ hostname }}\n"),
            template("zzz_ubuntu", "evil zzz on {{ hostname }}\n"),
            template("generic", "broken {% if %}\n"),
        ],
    }
}

/// Issue 13's attack: a rogue cluster's templates never serve another cluster's nodes, and
/// serve its own only once an admin approved them; a broken one is refused on arrival.
#[actix_rt::test]
async fn a_clusters_templates_serve_only_its_own_nodes_and_only_once_approved() {
    let db = TestDb::sqlite();
    let mut clusters = standard_clusters();
    clusters.truncate(1);
    clusters.push(evil_cluster());
    let mesh = Mesh::start(&db.url, &clusters).await;
    let app = app!(mesh);
    let defaults = json!({"default_osystem": "ubuntu", "default_distro_series": "jammy"});
    assert_eq!(
        send(&app, put("/api/v1/settings", defaults)).await.0,
        StatusCode::OK
    );
    let (_, ubu) = send(&app, enlist("u1", "alpha", "amd64")).await;
    let (_, own) = send(&app, enlist("e1", "evil", "amd64")).await;
    let render = |id: &Value, kind: &str| get(&format!("/api/v1/nodes/{id}/preseed?type={kind}"));

    let (status, list) = send(&app, get("/api/v1/cluster-templates")).await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["cluster"], r["name"], r["state"], r["version"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            r#""alpha" "generic" "pending" 1"#,
            r#""alpha" "windows" "pending" 1"#,
            r#""evil" "curtin_ubuntu" "pending" 1"#,
            r#""evil" "generic" "pending" null"#,
            r#""evil" "zzz_ubuntu" "pending" 1"#,
        ]
    );
    assert!(
        list[3]["error"].as_str().unwrap().contains("syntax error"),
        "{list}"
    );
    let (_, history) = send(&app, get("/api/v1/preseeds/generic/history")).await;
    assert_eq!(
        history.as_array().unwrap().len(),
        1,
        "the broken one is not a version"
    );

    // Nothing is approved: no node has a template, evil's own included.
    for (node, kind) in [
        (&ubu, "curtin"),
        (&ubu, "zzz"),
        (&own, "curtin"),
        (&own, "zzz"),
    ] {
        let (status, body) = send(&app, render(&node["id"], kind)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{kind}: {body}");
    }
    // Approving everything lets each cluster's templates serve its own nodes only.
    approve_all_templates(&mesh).await;
    for kind in ["curtin", "zzz"] {
        let (status, body) = send(&app, render(&ubu["id"], kind)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["template"].as_str(), body["content"].as_str()),
            (Some("generic"), Some("generic for u1\n")),
            "alpha's node never gets evil's {kind} template"
        );
    }
    let (status, body) = send(&app, render(&own["id"], "curtin")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"], "late_commands: evil on e1\n");
    // The broken generic stays unused even approved: evil has no generic to fall back on.
    let (status, _) = send(&app, render(&own["id"], "other")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An operator's version serves every cluster's nodes; refusing stops evil's own.
    let (status, _) = send(&app, edit("generic", "operator {{ hostname }}\n", 1)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = send(&app, render(&own["id"], "other")).await;
    assert_eq!(body["content"], "operator e1\n");
    let (status, body) = send(
        &app,
        post(
            "/api/v1/cluster-templates/evil/curtin_ubuntu/refuse",
            Value::Null,
        ),
    )
    .await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("refused"))
    );
    let (_, body) = send(&app, render(&own["id"], "curtin")).await;
    assert_eq!(body["content"], "operator e1\n");
    let (status, body) = send(
        &app,
        post(
            "/api/v1/cluster-templates/alpha/zzz_ubuntu/approve",
            Value::Null,
        ),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("no_such_cluster_template"))
    );
}

/// `delta` holds acme-linux a2 as `gamma` does, but its declaration wants six digits where
/// gamma's wants four: asked first (by id), it refuses a four-digit key that gamma accepts.
fn strict_acme_cluster() -> ClusterSpec {
    ClusterSpec {
        id: "delta",
        images: vec![image(
            "acme-linux",
            "amd64",
            "a2",
            &[osmesh_core::Purpose::Xinstall],
        )],
        declared: STRICT_ACME_OS,
        templates: vec![],
    }
}

const STRICT_ACME_OS: &str = r#"
[[os]]
name = "acme-linux"
title = "ACME Linux"
default_release = "a2"
requires_license_key = true
license_key_pattern = "^ACME-[0-9]{6}$"

[[os.release]]
name = "a2"
title = "ACME Linux 2"
"#;

/// The key rule's "the clusters that said no before the yes are named in the answer", through
/// the routes: an add and an update each name the refusing validator and its reason; the
/// refusals are not stored, so a read of the key shows none.
#[actix_rt::test]
async fn a_key_accepted_after_a_refusal_names_the_refusing_cluster() {
    let db = TestDb::sqlite();
    let mut clusters = standard_clusters();
    clusters.push(strict_acme_cluster());
    let mesh = Mesh::start(&db.url, &clusters).await;
    let app = app!(mesh);
    let acme =
        |key: &str| json!({"osystem": "acme-linux", "distro_series": "a2", "license_key": key});

    let (status, body) = send(&app, post("/api/v1/license-keys", acme("ACME-1234"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["validated_by"], "gamma", "{body}");
    let refused = body["refused_by"]
        .as_object()
        .unwrap_or_else(|| panic!("the answer names who refused: {body}"));
    assert_eq!(
        refused.keys().collect::<Vec<_>>(),
        ["delta"],
        "only delta was asked before gamma: {body}"
    );
    assert!(
        refused["delta"]
            .as_str()
            .unwrap()
            .contains("^ACME-[0-9]{6}$"),
        "delta's reason is passed on: {body}"
    );
    assert!(!body.to_string().contains("ACME-1234"), "masked: {body}");
    let (status, stored) = send(&app, get("/api/v1/license-keys/acme-linux/a2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["validated_by"], "gamma");
    assert_eq!(
        stored["refused_by"],
        Value::Null,
        "refusals are not stored: {stored}"
    );

    let (status, body) = send(
        &app,
        put(
            "/api/v1/license-keys/acme-linux/a2",
            json!({"license_key": "ACME-5678"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["validated_by"], "gamma", "{body}");
    let refused = body["refused_by"]
        .as_object()
        .unwrap_or_else(|| panic!("the update's answer names who refused: {body}"));
    assert_eq!(refused.keys().collect::<Vec<_>>(), ["delta"], "{body}");

    // A key both accept is taken by delta, the first asked, with no refusal to name.
    let (status, body) = send(
        &app,
        put(
            "/api/v1/license-keys/acme-linux/a2",
            json!({"license_key": "ACME-123456"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["validated_by"], "delta", "{body}");
    assert_eq!(body["refused_by"], Value::Null, "{body}");
}
