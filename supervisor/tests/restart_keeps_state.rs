//! A supervisor killed and restarted on the same data directory still has its instances,
//! config versions and keys, and never reuses an instance id.

mod common;

use common::{cli_create_key, main_api, Binary, DEP};
use reqwest::Client;
use serde_json::{json, Value};

#[tokio::test]
async fn kill_and_restart_keeps_instances_configs_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = cli_create_key(&data, "deployment:connector:manage");
    let client = Client::new();

    let server = Binary::start(&data, &[]);
    let activate = |base: &str, body: Value| {
        client
            .post(format!("{base}{}/activate", main_api(DEP)))
            .header("ld-api-key", &key)
            .json(&body)
            .send()
    };
    let first: Value = activate(&server.base, json!({"connector_key": "postgres", "connector_type": "sink", "instance_key": "orders", "config": {"enabled": true}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_u64().unwrap();
    let response = client
        .put(format!(
            "{}/deployments/{DEP}/connectors/instances/{id}/config",
            server.base
        ))
        .header("ld-api-key", &key)
        .json(&json!({"enabled": true, "plugin_config": {"target_table": "t2"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let before: Value = client
        .get(format!(
            "{}/deployments/{DEP}/connectors/instances",
            server.base
        ))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.kill();

    let server = Binary::start(&data, &[]);
    let response = client
        .get(format!(
            "{}/deployments/{DEP}/connectors/instances",
            server.base
        ))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the key survived");
    let after: Value = response.json().await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after[0]["config"]["version"], 2);
    assert_eq!(
        after[0]["config"]["values"]["plugin_config"]["target_table"],
        "t2"
    );

    let second: Value = activate(
        &server.base,
        json!({"connector_key": "postgres", "connector_type": "sink"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(second["id"].as_u64().unwrap() > id, "ids are not reused");
    let taken = activate(
        &server.base,
        json!({"connector_key": "postgres", "connector_type": "sink", "instance_key": "orders"}),
    )
    .await
    .unwrap();
    assert_eq!(taken.status(), 409, "the old key is still taken");
}
