//! Keys, config versions, stop/start, and how node reports make an instance's status.

mod common;

use std::time::Duration;

use common::{main_api, problem, Server, DEP};
use reqwest::Method;
use serde_json::{json, Value};

fn pg() -> Value {
    json!({"connector_key": "postgres", "connector_type": "sink"})
}

#[tokio::test]
async fn keys_are_generated_unique_and_conflicts_are_409() {
    let server = Server::start().await;
    let a = server.activate(DEP, pg()).await;
    let b = server.activate(DEP, pg()).await;
    let c = server.activate(DEP, pg()).await;
    assert_eq!(a["key"], "postgres-sink");
    assert_eq!(b["key"], "postgres-sink-2");
    assert_eq!(c["key"], "postgres-sink-3");
    assert_eq!(a["status"], "pending");
    assert_eq!(
        a["name"], "PostgreSQL sink",
        "name defaults to the catalog's"
    );
    let ids: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);

    let taken = server
        .admin(Method::POST, &format!("{}/activate", main_api(DEP)))
        .json(&json!({"connector_key": "postgres", "connector_type": "sink", "instance_key": "postgres-sink-2"}))
        .send()
        .await
        .unwrap();
    let body = problem(taken, 409).await;
    assert_eq!(body["field"], "instance_key");
    assert_eq!(server.instances(DEP).await.len(), 3);

    // Keys are unique per deployment, not globally.
    let other = server.activate(7, pg()).await;
    assert_eq!(other["key"], "postgres-sink");
    assert_eq!(server.instances(7).await.len(), 1);

    // Deleting frees nothing but the instance; the same id is then 404.
    let path = format!("/deployments/{DEP}/connectors/instances/{}", ids[1]);
    assert_eq!(
        server
            .admin(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    problem(
        server.admin(Method::DELETE, &path).send().await.unwrap(),
        404,
    )
    .await;
    // An instance of another deployment is not found through this one.
    let foreign = format!("/deployments/{DEP}/connectors/instances/{}", other["id"]);
    problem(
        server.admin(Method::DELETE, &foreign).send().await.unwrap(),
        404,
    )
    .await;
    let keys: Vec<Value> = server
        .instances(DEP)
        .await
        .iter()
        .map(|i| i["key"].clone())
        .collect();
    assert_eq!(keys, vec![json!("postgres-sink"), json!("postgres-sink-3")]);
}

#[tokio::test]
async fn config_versions_and_stop_start() {
    let server = Server::start().await;
    let config = json!({"enabled": true, "plugin_config": {"target_table": "orders"}});
    let item = server
        .activate(
            DEP,
            json!({"connector_key": "postgres", "connector_type": "sink", "config": config}),
        )
        .await;
    assert_eq!(item["config"], json!({"version": 1, "values": config}));
    let id = item["id"].as_u64().unwrap();
    let base = format!("/deployments/{DEP}/connectors/instances/{id}");

    let v2 = json!({"enabled": true, "plugin_config": {"target_table": "orders_v2"}});
    let response = server
        .admin(Method::PUT, &format!("{base}/config"))
        .json(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["config"], json!({"version": 2, "values": v2}));
    assert_eq!(server.instances(DEP).await[0]["config"]["version"], 2);

    let stopped: Value = server
        .admin(Method::POST, &format!("{base}/stop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stopped["status"], "inactive");
    assert_eq!(server.instances(DEP).await[0]["status"], "inactive");
    let started: Value = server
        .admin(Method::POST, &format!("{base}/start"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "pending");

    let off = json!({"enabled": false});
    let disabled: Value = server
        .admin(Method::PUT, &format!("{base}/config"))
        .json(&off)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["status"], "inactive");
    assert_eq!(disabled["config"]["version"], 3);

    problem(
        server
            .admin(
                Method::POST,
                &format!("/deployments/{DEP}/connectors/instances/999/stop"),
            )
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        server
            .admin(
                Method::PUT,
                &format!("/deployments/{DEP}/connectors/instances/999/config"),
            )
            .json(&v2)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test]
async fn status_follows_the_live_nodes_reports() {
    let server = Server::start_with(|c| c.node_ttl = Duration::from_secs(1)).await;
    let item = server.activate(DEP, pg()).await;
    let id = item["id"].as_u64().unwrap();
    let node = |n: &str| format!("/deployments/{DEP}/nodes/{n}");
    let status_path = format!("/deployments/{DEP}/connectors/instances/{id}/status");
    let put = |path: String, body: Value| {
        server
            .req(Method::PUT, &path, Some(&server.keys.node))
            .json(&body)
            .send()
    };
    let status = || async { server.instances(DEP).await[0].clone() };

    // A live node that has not run it yet: pending.
    let beat = json!({"runtime_version": "0.1.0", "at": 10, "plugins": [], "instances": []});
    assert_eq!(put(node("a"), beat).await.unwrap().status(), 200);
    assert_eq!(status().await["status"], "pending");

    // The node reports it active on version 1: active.
    let report = json!({"node_id": "a", "status": "active", "config_version": 1, "at": 11});
    assert_eq!(
        put(status_path.clone(), report.clone())
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put(status_path.clone(), report.clone())
            .await
            .unwrap()
            .status(),
        204,
        "idempotent"
    );
    assert_eq!(status().await["status"], "active");

    // A second live node that has not reported: pending again.
    let beat_b = json!({"runtime_version": "0.1.0", "at": 5, "instances": []});
    put(node("b"), beat_b).await.unwrap();
    assert_eq!(status().await["status"], "pending");
    let beat_b = json!({"runtime_version": "0.1.0", "at": 6,
        "instances": [{"instance_id": id, "status": "active", "config_version": 1}]});
    put(node("b"), beat_b).await.unwrap();
    assert_eq!(
        status().await["status"],
        "active",
        "heartbeat statuses count"
    );

    // A stale report (older `at`) is ignored.
    let stale =
        json!({"node_id": "a", "status": "failed", "reason": "old", "config_version": 1, "at": 3});
    put(status_path.clone(), stale).await.unwrap();
    assert_eq!(status().await["status"], "active");

    // A node fails it: failed, with the reason.
    let failed = json!({"node_id": "b", "status": "failed", "reason": "connection refused", "config_version": 1, "at": 20});
    put(status_path.clone(), failed).await.unwrap();
    let now = status().await;
    assert_eq!(now["status"], "failed");
    assert!(
        now["reason"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{now}"
    );

    // A new config version: the failure was on the old one, so pending.
    let base = format!("/deployments/{DEP}/connectors/instances/{id}");
    server
        .admin(Method::PUT, &format!("{base}/config"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    let now = status().await;
    assert_eq!(now["status"], "pending");
    assert!(
        now.get("reason").is_none(),
        "reason only when failed: {now}"
    );

    // Status reports for unknown instances are 404.
    let unknown = format!("/deployments/{DEP}/connectors/instances/999/status");
    problem(
        put(
            unknown,
            json!({"node_id": "a", "status": "active", "config_version": 1, "at": 1}),
        )
        .await
        .unwrap(),
        404,
    )
    .await;

    // Both nodes run version 2; then both expire: with no live node, pending.
    for n in ["a", "b"] {
        let report = json!({"node_id": n, "status": "active", "config_version": 2, "at": 30});
        put(status_path.clone(), report).await.unwrap();
    }
    assert_eq!(status().await["status"], "active");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(status().await["status"], "pending", "nodes gone");
}
