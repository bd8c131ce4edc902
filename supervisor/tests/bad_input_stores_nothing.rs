//! Every kind of bad input gets a 400 (413 for an oversize body) problem document naming
//! what was wrong, and nothing is stored.

mod common;

use common::{main_api, problem, Server, DEP};
use reqwest::Method;
use serde_json::{json, Value};

async fn activate_raw(server: &Server, body: impl Into<reqwest::Body>) -> reqwest::Response {
    server
        .admin(Method::POST, &format!("{}/activate", main_api(DEP)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_activate_bodies_are_400_and_store_nothing() {
    let server = Server::start().await;
    // (body, expected code, expected field)
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{".into(), "malformed_json", None),
        ("".into(), "malformed_json", None),
        ("[1, 2]".into(), "invalid_body", None),
        (r#"{"connector_key": "postgres", "connector_type": "sink"} trailing"#.into(), "malformed_json", None),
        (r#"{"connector_key": 7, "connector_type": "sink"}"#.into(), "invalid_field", Some("connector_key")),
        (r#"{"connector_key": "postgres", "connector_type": "pipe"}"#.into(), "invalid_field", Some("connector_type")),
        (r#"{"connector_key": "postgres"}"#.into(), "invalid_field", Some("connector_type")),
        (r#"{"connector_type": "sink"}"#.into(), "invalid_field", Some("connector_key")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "instance_key": 5}"#.into(), "invalid_field", Some("instance_key")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "instance_key": "has space"}"#.into(), "invalid_field", Some("instance_key")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "instance_name": ""}"#.into(), "invalid_field", Some("instance_name")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "connector_kye": "x"}"#.into(), "invalid_field", Some("connector_kye")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "config": []}"#.into(), "invalid_field", Some("config")),
        (r#"{"connector_key": "postgres", "connector_type": "sink", "config": {"enabled": "yes"}}"#.into(), "invalid_field", Some("config.enabled")),
        (r#"{"connector_key": "nosuch", "connector_type": "sink"}"#.into(), "unknown_connector", Some("connector_key")),
        (r#"{"connector_key": "random", "connector_type": "sink"}"#.into(), "unknown_connector", Some("connector_type")),
    ];
    for (body, code, field) in cases {
        let got = problem(activate_raw(&server, body.clone()).await, 400).await;
        assert_eq!(got["code"], code, "{body} -> {got}");
        let want_field = field.map(Value::from).unwrap_or(Value::Null);
        assert_eq!(got["field"], want_field, "{body} -> {got}");
        if let Some(field) = field {
            assert!(got["reason"].as_str().unwrap().contains(field), "{got}");
        }
    }
    assert!(server.instances(DEP).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn oversize_body_is_413_problem() {
    let server = Server::start().await;
    let big = format!(
        r#"{{"connector_key": "postgres", "connector_type": "sink", "config": {{"plugin_config": {{"blob": "{}"}}}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let got = problem(activate_raw(&server, big).await, 413).await;
    assert_eq!(got["code"], "payload_too_large");
    assert!(server.instances(DEP).await.is_empty());
}

#[tokio::test]
async fn bad_queries_and_ids_are_400_naming_the_field() {
    let server = Server::start().await;
    let catalog = main_api(DEP);
    let cases = [
        (format!("{catalog}?page=0"), "page"),
        (format!("{catalog}?page=-1"), "page"),
        (format!("{catalog}?page=abc"), "page"),
        (format!("{catalog}?results=1000"), "results"),
        (format!("{catalog}?results=101"), "results"),
        (format!("{catalog}?results=0"), "results"),
        (format!("{catalog}?type=pipe"), "type"),
        (main_api(0).replace("/0/", "/abc/"), "deployment_id"),
        (
            "/deployments/abc/connectors/instances".to_string(),
            "deployment_id",
        ),
        (
            "/deployments/-5/connectors/instances".to_string(),
            "deployment_id",
        ),
        (
            "/deployments/99999999999999999999/connectors/instances".to_string(),
            "deployment_id",
        ),
        (
            format!("/deployments/{DEP}/connectors/instances?wait=soon"),
            "wait",
        ),
    ];
    for (path, field) in cases {
        let body = problem(server.admin(Method::GET, &path).send().await.unwrap(), 400).await;
        assert_eq!(body["field"], field, "{path} -> {body}");
        assert!(body["reason"].as_str().unwrap().contains(field), "{body}");
    }
    let bad_id = problem(
        server
            .admin(
                Method::DELETE,
                &format!("/deployments/{DEP}/connectors/instances/one"),
            )
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(bad_id["field"], "instance_id");
    let bad_node = problem(
        server
            .admin(Method::PUT, &format!("/deployments/{DEP}/nodes/bad%20node"))
            .json(&json!({"runtime_version": "1", "at": 1}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_eq!(bad_node["field"], "node_id");
}

#[tokio::test]
async fn bad_extension_bodies_are_400_and_change_nothing() {
    let server = Server::start().await;
    let item = server
        .activate(DEP, json!({"connector_key": "postgres", "connector_type": "sink", "config": {"enabled": true}}))
        .await;
    let id = item["id"].as_u64().unwrap();
    let instance = format!("/deployments/{DEP}/connectors/instances/{id}");
    let cases = [
        (
            format!("{instance}/config"),
            json!({"streams": "orders"}),
            Some("config.streams"),
        ),
        (format!("{instance}/config"), json!("text"), None),
        (
            format!("{instance}/status"),
            json!({"node_id": "n1", "status": "running", "config_version": 1, "at": 1}),
            Some("status"),
        ),
        (
            format!("{instance}/status"),
            json!({"node_id": "n1", "status": "active", "config_version": "1", "at": 1}),
            Some("config_version"),
        ),
        (
            format!("/deployments/{DEP}/nodes/n1"),
            json!({"runtime_version": "1", "at": 1, "plugins": [{"key": "pg", "type": "tap", "name": "x"}]}),
            Some("plugins[0].type"),
        ),
        (
            format!("/deployments/{DEP}/nodes/n1"),
            json!({"at": 1}),
            Some("runtime_version"),
        ),
    ];
    for (path, body, field) in cases {
        let response = server
            .admin(Method::PUT, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let got = problem(response, 400).await;
        assert_eq!(
            got["field"],
            field.map(Value::from).unwrap_or(Value::Null),
            "{path} {body} -> {got}"
        );
    }
    let items = server.instances(DEP).await;
    assert_eq!(items[0]["config"]["version"], 1, "config unchanged");
    assert_eq!(items[0]["status"], "pending", "no node report stored");
    assert!(
        server
            .supervisor
            .catalog(DEP, true)
            .unwrap()
            .iter()
            .all(|i| !i.available),
        "no node stored"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let server = Server::start().await;
    let problem404 = problem(
        server.admin(Method::GET, "/nope").send().await.unwrap(),
        404,
    )
    .await;
    assert_eq!(problem404["code"], "not_found");
    let problem405 = problem(
        server
            .admin(
                Method::PATCH,
                &format!("/deployments/{DEP}/connectors/instances"),
            )
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    assert_eq!(problem405["code"], "method_not_allowed");
    let missing = problem(
        server
            .admin(
                Method::DELETE,
                &format!("/deployments/{DEP}/connectors/instances/42"),
            )
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert!(missing["reason"].as_str().unwrap().contains("42"));
}
