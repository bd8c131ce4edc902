//! Catalog pagination, the type filter, and availability from node heartbeats.

mod common;

use common::{main_api, Server, DEP};
use ld_protocol::ConnectorType;
use ld_supervisor::CatalogEntry;
use reqwest::Method;
use serde_json::{json, Value};

async fn page(server: &Server, query: &str) -> Value {
    let response = server
        .admin(Method::GET, &format!("{}{query}", main_api(DEP)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pages_cover_every_entry_once() {
    let server = Server::start().await;
    let builtin = ld_supervisor::builtin_catalog().len() as u64;
    for n in 0..25 {
        server
            .supervisor
            .register_catalog_entry(CatalogEntry {
                key: format!("gen{n:02}"),
                connector_type: ConnectorType::Sink,
                name: format!("Generated {n}"),
                description: String::new(),
            })
            .unwrap();
    }
    let total = builtin + 25;

    let first = page(&server, "").await;
    assert_eq!(first["page"], 1, "page defaults to 1");
    assert_eq!(
        first["items"].as_array().unwrap().len(),
        10,
        "results defaults to 10"
    );
    assert_eq!(first["total_results"], total);
    assert_eq!(first["total_pages"], total.div_ceil(10));

    let mut seen = Vec::new();
    for p in 1..=total.div_ceil(7) {
        let page = page(&server, &format!("?page={p}&results=7")).await;
        assert_eq!(page["page"], p);
        assert_eq!(page["total_pages"], total.div_ceil(7));
        seen.extend(
            keys(&page).into_iter().zip(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["type"].clone()),
            ),
        );
    }
    assert_eq!(seen.len() as u64, total);
    let mut dedup = seen.clone();
    dedup.sort_by_key(|(key, kind)| (key.clone(), kind.to_string()));
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no entry twice");

    let beyond = page(&server, "?page=99").await;
    assert_eq!(beyond["items"], json!([]));
    assert_eq!(beyond["total_results"], total);

    let all = page(&server, "?results=100").await;
    assert_eq!(all["items"].as_array().unwrap().len() as u64, total);
    assert_eq!(all["total_pages"], 1);

    let sources = page(&server, "?type=source&results=100").await;
    assert!(sources["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["type"] == "source"));
    assert_eq!(sources["total_results"], 2, "the built-in sources");
}

#[tokio::test]
async fn a_live_node_makes_its_plugins_available_and_a_gone_node_does_not() {
    let server = Server::start_with(|c| c.node_ttl = std::time::Duration::from_secs(1)).await;
    let beat = json!({
        "runtime_version": "0.1.0",
        "at": 1,
        "plugins": [
            {"key": "postgres", "type": "sink", "name": "PostgreSQL", "description": "pg", "version": "0.1.0"},
            {"key": "kafka", "type": "source", "name": "Kafka source", "description": "from node", "version": "0.2.0"}
        ]
    });
    let response = server
        .req(
            Method::PUT,
            &format!("/deployments/{DEP}/nodes/node-1"),
            Some(&server.keys.node),
        )
        .json(&beat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    assert_eq!(ack["ttl_secs"], 1);

    let all = page(&server, "?results=100").await;
    let find = |page: &Value, key: &str, kind: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == key && i["type"] == kind)
            .cloned()
    };
    assert_eq!(find(&all, "postgres", "sink").unwrap()["available"], true);
    assert_eq!(
        find(&all, "postgres", "source").unwrap()["available"],
        false
    );
    let kafka = find(&all, "kafka", "source").expect("node plugin joins the catalog");
    assert_eq!(kafka["available"], true);
    assert_eq!(kafka["description"], "from node");

    // Another deployment's catalog is not affected by this node.
    let other: Value = server
        .admin(Method::GET, &format!("{}?results=100", main_api(7)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(find(&other, "kafka", "source").is_none());

    // A connector only a node has can be activated.
    server
        .activate(
            DEP,
            json!({"connector_key": "kafka", "connector_type": "source"}),
        )
        .await;

    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let after = page(&server, "?results=100").await;
    assert_eq!(
        find(&after, "postgres", "sink").unwrap()["available"],
        false,
        "node expired"
    );
    assert_eq!(
        find(&after, "kafka", "source").unwrap()["available"],
        false,
        "still listed, unavailable"
    );
}
