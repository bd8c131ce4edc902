//! 401 without or with an unknown key, 403 without the permission, on every kind of call.

mod common;

use common::{main_api, problem, Server, DEP};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn missing_or_unknown_key_is_401() {
    let server = Server::start().await;
    let paths = [
        (Method::GET, main_api(DEP)),
        (Method::POST, format!("{}/activate", main_api(DEP))),
        (
            Method::GET,
            format!("/deployments/{DEP}/connectors/instances"),
        ),
        (
            Method::DELETE,
            format!("/deployments/{DEP}/connectors/instances/1"),
        ),
        (Method::PUT, format!("/deployments/{DEP}/nodes/n1")),
    ];
    for (method, path) in &paths {
        let body = problem(
            server.req(method.clone(), path, None).send().await.unwrap(),
            401,
        )
        .await;
        assert!(
            body["reason"].as_str().unwrap().contains("ld-api-key"),
            "{body}"
        );
        let body = problem(
            server
                .req(method.clone(), path, Some("ldk_nope"))
                .send()
                .await
                .unwrap(),
            401,
        )
        .await;
        assert_eq!(body["code"], "unauthorized");
    }
}

#[tokio::test]
async fn missing_permission_is_403_and_changes_nothing() {
    let server = Server::start().await;
    let activate = format!("{}/activate", main_api(DEP));
    let body = json!({"connector_key": "postgres", "connector_type": "sink"});
    for key in [&server.keys.read, &server.keys.node] {
        let response = server
            .req(Method::POST, &activate, Some(key))
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = problem(response, 403).await;
        assert!(problem["reason"]
            .as_str()
            .unwrap()
            .contains("deployment:connector:manage"));
    }
    assert!(server.instances(DEP).await.is_empty());

    let item = server.activate(DEP, body.clone()).await;
    let id = item["id"].as_u64().unwrap();
    let instance = format!("/deployments/{DEP}/connectors/instances/{id}");
    for (method, path) in [
        (Method::DELETE, instance.clone()),
        (Method::POST, format!("{instance}/stop")),
        (Method::PUT, format!("{instance}/config")),
    ] {
        let response = server
            .req(method, &path, Some(&server.keys.read))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        problem(response, 403).await;
    }
    // Node calls need the node permission, even for a manager.
    let response = server
        .req(
            Method::PUT,
            &format!("/deployments/{DEP}/nodes/n1"),
            Some(&server.keys.manage),
        )
        .json(&json!({"runtime_version": "0.1.0", "at": 1}))
        .send()
        .await
        .unwrap();
    problem(response, 403).await;
    let response = server
        .req(
            Method::PUT,
            &format!("{instance}/status"),
            Some(&server.keys.read),
        )
        .json(&json!({"node_id": "n1", "status": "active", "config_version": 1, "at": 1}))
        .send()
        .await
        .unwrap();
    problem(response, 403).await;
    // The catalog is not for nodes.
    let response = server
        .req(Method::GET, &main_api(DEP), Some(&server.keys.node))
        .send()
        .await
        .unwrap();
    problem(response, 403).await;

    // What each key may do, it can.
    for key in [&server.keys.read, &server.keys.manage, &server.keys.node] {
        let response = server
            .req(
                Method::GET,
                &format!("/deployments/{DEP}/connectors/instances"),
                Some(key),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(server.instances(DEP).await.len(), 1, "nothing was deleted");
}

#[tokio::test]
async fn permitted_reflects_the_manage_permission() {
    let server = Server::start().await;
    for (key, permitted) in [(&server.keys.read, false), (&server.keys.manage, true)] {
        let page: serde_json::Value = server
            .req(Method::GET, &main_api(DEP), Some(key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(items.iter().all(|i| i["permitted"] == permitted), "{page}");
    }
}
