//! Every curl example of the seed page, replayed against `ld-supervisor serve` (the real
//! binary) with the host swapped and the path kept.

mod common;

use common::{cli_create_key, Binary, DEP};
use reqwest::Client;
use serde_json::{json, Value};

const TENANT: &str = "/tenants/acme/divisions/eu/environments/prod";

#[tokio::test]
async fn the_four_seed_calls_behave_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = cli_create_key(
        &data,
        "deployment:connector:manage,deployment:connector:read",
    );
    let server = Binary::start(&data, &[]);
    let client = Client::new();
    let url = |path: &str| format!("{}{path}", server.base);

    // List Available Connectors
    let response = client
        .get(url(&format!(
            "{TENANT}/deployments/{DEP}/connectors?type=sink&page=1&results=10"
        )))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["page"], 1);
    assert!(page["total_pages"].as_u64().unwrap() >= 1);
    let items = page["items"].as_array().unwrap();
    assert_eq!(
        page["total_results"].as_u64().unwrap() as usize,
        items.len()
    );
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(item["type"], "sink", "type filter: {item}");
        let fields: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = fields.clone();
        fields.sort();
        assert_eq!(
            fields,
            [
                "available",
                "description",
                "key",
                "name",
                "permitted",
                "type"
            ]
        );
        assert_eq!(item["available"], false, "no node has reported plugins");
        assert_eq!(item["permitted"], true, "key has manage");
    }
    assert!(items.iter().any(|i| i["key"] == "postgres"));

    // Activate a Connector
    let response = client
        .post(url(&format!(
            "{TENANT}/deployments/{DEP}/connectors/activate"
        )))
        .header("ld-api-key", &key)
        .header("Content-Type", "application/json")
        .body(
            r#"{
"connector_key": "postgres",
"connector_type": "sink",
"instance_name": "Orders to Postgres",
"instance_key": "orders-pg-sink"
}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // List Connector Instances
    let response = client
        .get(url(&format!("/deployments/{DEP}/connectors/instances")))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("\"deployment_id\":611298765432109056"),
        "deployment id must be a JSON integer: {text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert!(item["id"].is_u64());
    assert_eq!(item["deployment_id"].as_u64(), Some(DEP));
    assert_eq!(item["connector_type"], "sink");
    assert_eq!(item["connector_key"], "postgres");
    assert_eq!(item["name"], "Orders to Postgres");
    assert_eq!(item["key"], "orders-pg-sink");
    assert_eq!(item["status"], "pending", "starts pending");
    assert_eq!(item["config"], json!({"version": 1, "values": {}}));
    let id = item["id"].as_u64().unwrap();

    // Delete a Connector Instance
    let response = client
        .delete(url(&format!(
            "/deployments/{DEP}/connectors/instances/{id}"
        )))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());

    let list: Value = client
        .get(url(&format!("/deployments/{DEP}/connectors/instances")))
        .header("ld-api-key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
}
