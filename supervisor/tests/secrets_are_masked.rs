//! Secret config values never come back out, except to nodes: a recognisable password goes
//! through activate, the list (read, manage and node keys), config PUTs, stop/start,
//! problem answers and the OpenAPI document's examples.

mod common;

use common::{main_api, problem, Server, DEP};
use ld_supervisor::secrets::{mask_config, MASK};
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "Rec0gnisable-Pa55word";
const URL_PASSWORD: &str = "SuperSecret123";
const SIG: &str = "sig-Rec0gnisable-value";

fn config() -> Value {
    json!({
        "enabled": true,
        "streams": [{"stream": "orders", "topics": ["completed"]}],
        "plugin_config": {
            "connection_string": format!("postgres://bob:{URL_PASSWORD}@db.example.com:5432/orders"),
            "target_table": "orders",
            "auth": {"password": PASSWORD},
            "sig": SIG
        }
    })
}

fn leaks(text: &str) -> Option<&'static str> {
    [PASSWORD, URL_PASSWORD, SIG]
        .into_iter()
        .find(|secret| text.contains(secret))
}

/// The list as a user sees it (masked).
async fn list_text(server: &Server, key: &str) -> String {
    list_with(server, key, "").await
}

/// The list as a node asks for it: `reveal_secrets=true`.
async fn node_list_text(server: &Server, key: &str) -> String {
    list_with(server, key, "?reveal_secrets=true").await
}

async fn list_with(server: &Server, key: &str, query: &str) -> String {
    let response = server
        .req(
            Method::GET,
            &format!("/deployments/{DEP}/connectors/instances{query}"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn secrets_are_masked_for_users_and_real_for_nodes() {
    let server = Server::start().await;
    // A node reports which field its plugin marks secret; `sig` has no secret-looking name.
    let response = server
        .req(
            Method::PUT,
            &format!("/deployments/{DEP}/nodes/n1"),
            Some(&server.keys.node),
        )
        .json(&json!({"runtime_version": "0.1.0", "at": 1, "plugins": [
            {"key": "postgres", "type": "sink", "name": "PostgreSQL",
             "secret_fields": ["/sig", "/connection_string"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Activate: the 202 answer is masked.
    let response = server
        .req(
            Method::POST,
            &format!("{}/activate", main_api(DEP)),
            Some(&server.keys.manage),
        )
        .json(
            &json!({"connector_key": "postgres", "connector_type": "sink",
                      "instance_key": "orders-pg-sink", "config": config()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let text = response.text().await.unwrap();
    assert_eq!(leaks(&text), None, "activate answer leaks: {text}");
    let item: Value = serde_json::from_str(&text).unwrap();
    let id = item["id"].as_u64().unwrap();
    let masked = &item["config"]["values"]["plugin_config"];
    assert_eq!(masked["auth"]["password"], MASK);
    assert_eq!(masked["sig"], MASK);
    // A reported pointer masks the whole value.
    assert_eq!(masked["connection_string"], MASK);
    assert_eq!(masked["target_table"], "orders");

    // The list: masked for read and manage keys, real for the node key (and a key that
    // holds the node permission among others).
    for key in [&server.keys.read, &server.keys.manage] {
        let text = list_text(&server, key).await;
        assert_eq!(leaks(&text), None, "list leaks: {text}");
        assert!(text.contains(MASK), "{text}");
    }
    // Without asking, even a key that could see them gets masks; a key without the node
    // permission that asks is refused.
    for key in [&server.keys.node, &server.keys.admin] {
        let text = list_text(&server, key).await;
        assert_eq!(leaks(&text), None, "unasked list leaks: {text}");
    }
    let refused = server
        .req(
            Method::GET,
            &format!("/deployments/{DEP}/connectors/instances?reveal_secrets=true"),
            Some(&server.keys.manage),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    for key in [&server.keys.node, &server.keys.admin] {
        let text = node_list_text(&server, key).await;
        let list: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            list[0]["config"]["values"],
            config(),
            "nodes get real values"
        );
    }

    // Config PUT of the listed (masked) config with one field edited keeps every secret.
    let listed: Value =
        serde_json::from_str(&list_text(&server, &server.keys.manage).await).unwrap();
    let mut edited = listed[0]["config"]["values"].clone();
    edited["plugin_config"]["target_table"] = json!("orders_v2");
    let instance = format!("/deployments/{DEP}/connectors/instances/{id}");
    let response = server
        .req(
            Method::PUT,
            &format!("{instance}/config"),
            Some(&server.keys.manage),
        )
        .json(&edited)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let text = response.text().await.unwrap();
    assert_eq!(leaks(&text), None, "config answer leaks: {text}");
    let node_view: Value =
        serde_json::from_str(&node_list_text(&server, &server.keys.node).await).unwrap();
    let mut want = config();
    want["plugin_config"]["target_table"] = json!("orders_v2");
    assert_eq!(node_view[0]["config"]["values"], want, "mask round-trip");
    assert_eq!(node_view[0]["config"]["version"], 2);

    // Stop and start answers are masked too.
    for action in ["stop", "start"] {
        let response = server
            .req(
                Method::POST,
                &format!("{instance}/{action}"),
                Some(&server.keys.manage),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let text = response.text().await.unwrap();
        assert_eq!(leaks(&text), None, "{action} leaks: {text}");
    }
}

#[tokio::test]
async fn name_fallback_masks_before_any_node_reported() {
    let server = Server::start().await;
    let item = server
        .activate(
            DEP,
            json!({"connector_key": "postgres", "connector_type": "sink", "config": config()}),
        )
        .await;
    let id = item["id"].as_u64().unwrap();
    let text = list_text(&server, &server.keys.read).await;
    assert!(
        !text.contains(PASSWORD) && !text.contains(URL_PASSWORD),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    let plugin_config = &list[0]["config"]["values"]["plugin_config"];
    assert_eq!(
        plugin_config["connection_string"], "postgres://bob:******@db.example.com:5432/orders",
        "only the password part of a URL is masked"
    );
    assert_eq!(plugin_config["auth"]["password"], MASK);
    assert_eq!(
        plugin_config["sig"], SIG,
        "no node marked it, no secret name"
    );

    // Editing the host of the masked URL keeps the stored password.
    let mut edited = list[0]["config"]["values"].clone();
    edited["plugin_config"]["connection_string"] =
        json!("postgres://bob:******@db2.example.com/orders");
    let response = server
        .req(
            Method::PUT,
            &format!("/deployments/{DEP}/connectors/instances/{id}/config"),
            Some(&server.keys.manage),
        )
        .json(&edited)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let node: Value =
        serde_json::from_str(&node_list_text(&server, &server.keys.node).await).unwrap();
    assert_eq!(
        node[0]["config"]["values"]["plugin_config"]["connection_string"],
        format!("postgres://bob:{URL_PASSWORD}@db2.example.com/orders")
    );
    assert_eq!(
        node[0]["config"]["values"]["plugin_config"]["auth"]["password"],
        PASSWORD
    );
}

#[tokio::test]
async fn problem_answers_never_carry_secrets() {
    let server = Server::start().await;
    let activate = format!("{}/activate", main_api(DEP));
    server
        .activate(
            DEP,
            json!({"connector_key": "postgres", "connector_type": "sink",
                   "instance_key": "taken", "config": config()}),
        )
        .await;
    let mut wrong_enabled = config();
    wrong_enabled["enabled"] = json!("yes");
    let mut masked_new = config();
    masked_new["plugin_config"]["api_key"] = json!(MASK);
    let bodies: Vec<(String, u16)> = vec![
        // 409: key taken.
        (
            json!({"connector_key": "postgres", "connector_type": "sink",
                   "instance_key": "taken", "config": config()})
            .to_string(),
            409,
        ),
        // 400: config shape.
        (
            json!({"connector_key": "postgres", "connector_type": "sink", "config": wrong_enabled})
                .to_string(),
            400,
        ),
        // 400: unknown connector.
        (
            json!({"connector_key": "nope", "connector_type": "sink", "config": config()})
                .to_string(),
            400,
        ),
        // 400: unknown field next to the config.
        (
            json!({"connector_key": "postgres", "connector_type": "sink", "config": config(),
                   "password": PASSWORD})
            .to_string(),
            400,
        ),
        // 400: a wrong type where the password is.
        (
            json!({"connector_key": "postgres", "connector_type": "sink",
                   "instance_name": {"password": PASSWORD}})
            .to_string(),
            400,
        ),
        // 400: malformed JSON around the password.
        (
            format!(r#"{{"connector_key": "postgres", "config": {{"password": "{PASSWORD}" "#),
            400,
        ),
        // 400: the mask where nothing is stored.
        (
            json!({"connector_key": "postgres", "connector_type": "sink", "config": masked_new})
                .to_string(),
            400,
        ),
        // 413: too large.
        (
            format!(
                r#"{{"password": "{PASSWORD}", "pad": "{}"}}"#,
                "x".repeat(2 * 1024 * 1024)
            ),
            413,
        ),
    ];
    for (body, status) in bodies {
        let response = server
            .req(Method::POST, &activate, Some(&server.keys.manage))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let problem = problem(response, status).await;
        let text = problem.to_string();
        assert_eq!(leaks(&text), None, "problem leaks: {text}");
    }
    // PUT config errors: a bad shape and the mask where nothing is stored.
    let id = server.instances(DEP).await[0]["id"].as_u64().unwrap();
    let mut put_masked = config();
    put_masked["plugin_config"]["new_token"] = json!(MASK);
    for (body, status, code) in [
        (bad_shape(), 400, "invalid_field"),
        (put_masked, 400, "masked_secret"),
    ] {
        let response = server
            .req(
                Method::PUT,
                &format!("/deployments/{DEP}/connectors/instances/{id}/config"),
                Some(&server.keys.manage),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        let problem = problem(response, status).await;
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(leaks(&problem.to_string()), None, "{problem}");
    }
    assert_eq!(server.instances(DEP).await[0]["config"]["version"], 1);
}

fn bad_shape() -> Value {
    let mut c = config();
    c["streams"] = json!({"password": PASSWORD});
    c
}

#[tokio::test]
async fn bad_secret_field_pointer_is_400() {
    let server = Server::start().await;
    let response = server
        .req(
            Method::PUT,
            &format!("/deployments/{DEP}/nodes/n1"),
            Some(&server.keys.node),
        )
        .json(&json!({"runtime_version": "0.1.0", "at": 1, "plugins": [
            {"key": "postgres", "type": "sink", "name": "PostgreSQL",
             "secret_fields": ["password"]}]}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 400).await;
    assert_eq!(body["field"], "plugins[0].secret_fields[0]", "{body}");
}

/// Every example in the OpenAPI document shows secrets masked, and at least one shows it.
#[test]
fn openapi_examples_show_the_mask() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/supervisor-openapi.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let mut configs = Vec::new();
    collect_configs(&doc, &mut configs);
    assert!(!configs.is_empty(), "the document has config examples");
    let mut shows_mask = false;
    for config in configs {
        let mut masked = config.clone();
        mask_config(&mut masked, &Default::default());
        assert_eq!(masked, config, "example shows a secret");
        shows_mask |= config.to_string().contains(MASK);
    }
    assert!(shows_mask, "an example shows the mask");
}

/// Objects with a `plugin_config` inside `example`/`examples` values.
fn collect_configs(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("plugin_config") {
                out.push(value.clone());
            }
            for v in map.values() {
                collect_configs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_configs(v, out)),
        _ => {}
    }
}
