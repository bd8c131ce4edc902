//! `docs/supervisor-openapi.yaml` documents exactly the routes the router serves.

mod common;

use std::collections::BTreeSet;

use common::{Server, DEP};
use ld_supervisor::routes::ROUTES;
use reqwest::Method;

fn documented() -> BTreeSet<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/supervisor-openapi.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the OpenAPI document");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse the OpenAPI document");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("path string");
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method");
            if methods.contains(&method) {
                routes.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    routes
}

#[test]
fn document_and_router_list_the_same_routes() {
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}

/// The route table really is what the router serves: every listed route answers with
/// something other than 404/405 (auth runs first, so 401 proves the route matched).
#[tokio::test]
async fn every_listed_route_is_served() {
    // More routes than failed authentications allowed per minute: no limit here.
    let server = Server::start_with(|c| c.auth_failures_per_minute = 0).await;
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{tenant_id}", "t")
            .replace("{division_id}", "d")
            .replace("{environment_id}", "e")
            .replace("{deployment_id}", &DEP.to_string())
            .replace("{instance_id}", "1")
            .replace("{node_id}", "n1")
            .replace("{key_id}", "0123456789abcdef");
        let method = Method::from_bytes(method.as_str().as_bytes()).unwrap();
        let status = server
            .req(method.clone(), &concrete, None)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{method} {concrete}");
    }
}
