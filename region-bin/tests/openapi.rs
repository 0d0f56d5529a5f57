//! The OpenAPI document against the app: every route the app registers (the API's route
//! table, which both mounts the routes and feeds the authentication middleware, plus the
//! operator routes) is in the document with its method, the document names no route the app
//! does not serve, it parses as OpenAPI 3.1, every schema reference resolves, and the served
//! copy is the generated one.

mod common;

use actix_web::{test as web_test, web, App};
use common::*;
use osmesh_region::{api, openapi, OPS_PATHS};
use serde_json::Value;
use std::collections::BTreeSet;

/// (METHOD, path) of every operation in the document.
fn documented(doc: &oas3::OpenApiV3Spec) -> BTreeSet<(String, String)> {
    doc.operations()
        .map(|(path, method, _)| (method.as_str().to_uppercase(), path))
        .collect()
}

/// (METHOD, path) of every route the app registers.
fn registered() -> BTreeSet<(String, String)> {
    let mut routes: BTreeSet<_> = api::access_rules()
        .into_iter()
        .map(|rule| (rule.method.as_str().to_string(), rule.path))
        .collect();
    routes.extend(OPS_PATHS.iter().map(|p| ("GET".to_string(), p.to_string())));
    routes
}

#[test]
fn every_registered_route_is_documented_and_nothing_else_is() {
    let json = openapi::document().to_pretty_json().expect("render");
    let doc = oas3::from_json(&json).expect("the document parses as OpenAPI");
    assert!(doc.openapi.starts_with("3.1"), "version {}", doc.openapi);
    let documented = documented(&doc);
    let registered = registered();
    assert!(registered.len() > 30, "{registered:?}");
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "registered but not documented: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(extra.is_empty(), "documented but not registered: {extra:?}");
    assert!(registered.contains(&("GET".into(), openapi::OPENAPI_PATH.into())));
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_reference_resolves_and_operations_say_what_they_answer() {
    let json: Value =
        serde_json::from_str(&openapi::document().to_json().expect("render")).expect("JSON");
    let mut found = Vec::new();
    refs(&json, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            json["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // Generated from the types: the mesh view's shape, the node's fields, the error body.
    let schemas = &json["components"]["schemas"];
    for name in [
        "OsystemsAnswer",
        "MeshView",
        "NodeView",
        "ErrorBody",
        "Readiness",
    ] {
        assert!(schemas[name].is_object(), "no schema {name}");
    }
    assert!(schemas["NodeView"]["properties"]["hostname"].is_object());
    for (path, item) in json["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
        }
    }
    // The probes need no token; everything else names the bearer scheme.
    assert_eq!(
        json["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn the_document_is_served_at_api_v1_openapi_json() {
    let db = TestDb::sqlite();
    let mesh = Mesh::start(&db.url, &[]).await;
    let app = web_test::init_service(
        App::new()
            .app_data(web::Data::new(mesh.service.clone()))
            .configure(api::configure),
    )
    .await;
    let response = web_test::call_service(
        &app,
        web_test::TestRequest::get()
            .uri(openapi::OPENAPI_PATH)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let served: Value = web_test::read_body_json(response).await;
    let generated: Value =
        serde_json::from_str(&openapi::document().to_json().expect("render")).expect("JSON");
    assert_eq!(served, generated);
}
