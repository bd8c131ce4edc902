//! API keys are created, listed and revoked while the supervisor runs, through the API and
//! the CLI; they may expire and be bound to deployments; revoked and expired keys get the
//! same 401 as unknown ones; tenant, division and environment segments are validated.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{cli_create_key, main_api, problem, Binary, Server, DEP};
use reqwest::{Client, Method};
use serde_json::{json, Value};

fn instances(dep: u64) -> String {
    format!("/deployments/{dep}/connectors/instances")
}

async fn status(server: &Server, path: &str, key: &str) -> u16 {
    server
        .req(Method::GET, path, Some(key))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn create(server: &Server, body: Value) -> Value {
    let response = server
        .admin(Method::POST, "/keys")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "create {body}");
    response.json().await.unwrap()
}

async fn unknown_key_body(server: &Server) -> Value {
    let response = server
        .req(
            Method::GET,
            &instances(DEP),
            Some("ldk_0000000000000000000000000000000000000000000000000000000000000000"),
        )
        .send()
        .await
        .unwrap();
    problem(response, 401).await
}

#[tokio::test]
async fn create_list_revoke_through_the_api() {
    let server = Server::start().await;
    let created = create(
        &server,
        json!({"permissions": ["deployment:connector:read"], "name": "dashboard"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(status(&server, &instances(DEP), &key).await, 200);

    let listed: Vec<Value> = server
        .admin(Method::GET, "/keys")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&key), "the list never shows a key");
    assert!(!text.contains(&key[4..20]), "nor a part of it");
    let entry = listed.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(entry["permissions"], json!(["deployment:connector:read"]));
    assert_eq!(entry["name"], "dashboard");
    assert!(entry["created_at"].is_u64());
    assert!(entry["last_used_at"].is_u64(), "used once: {entry}");
    assert!(entry.get("key").is_none());
    assert_eq!(listed.len(), 5, "four harness keys and this one");

    let response = server
        .admin(Method::DELETE, &format!("/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = server
        .req(Method::GET, &instances(DEP), Some(&key))
        .send()
        .await
        .unwrap();
    let revoked = problem(response, 401).await;
    assert_eq!(
        revoked,
        unknown_key_body(&server).await,
        "revoked looks unknown"
    );
    let response = server
        .admin(Method::DELETE, &format!("/keys/{id}"))
        .send()
        .await
        .unwrap();
    problem(response, 404).await;
    let response = server
        .admin(Method::DELETE, "/keys/not-an-id")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response, 400).await["field"], "key_id");
}

#[tokio::test]
async fn key_management_needs_its_own_permission() {
    let server = Server::start().await;
    for key in [&server.keys.manage, &server.keys.read, &server.keys.node] {
        for (method, path) in [
            (Method::GET, "/keys".to_string()),
            (Method::POST, "/keys".to_string()),
            (Method::DELETE, "/keys/0123456789abcdef".to_string()),
        ] {
            let response = server
                .req(method, &path, Some(key))
                .json(&json!({"permissions": ["deployment:connector:read"]}))
                .send()
                .await
                .unwrap();
            let body = problem(response, 403).await;
            assert!(body["reason"]
                .as_str()
                .unwrap()
                .contains("supervisor:keys:manage"));
        }
    }
    // A key manager cannot grant what it does not hold.
    let keys_only = create(&server, json!({"permissions": ["supervisor:keys:manage"]})).await;
    let response = server
        .req(Method::POST, "/keys", keys_only["key"].as_str())
        .json(&json!({"permissions": ["deployment:node"]}))
        .send()
        .await
        .unwrap();
    problem(response, 403).await;
    // Bad bodies are 400 naming the field.
    for (body, field) in [
        (json!({"permissions": []}), "permissions"),
        (json!({"permissions": ["root"]}), "permissions[0]"),
        (
            json!({"permissions": ["deployment:node"], "expires_at": 1}),
            "expires_at",
        ),
        (
            json!({"permissions": ["deployment:node"], "bogus": 1}),
            "bogus",
        ),
    ] {
        let response = server
            .admin(Method::POST, "/keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(response, 400).await["field"], field, "{body}");
    }
}

#[tokio::test]
async fn expired_keys_get_the_unknown_key_401() {
    let server = Server::start().await;
    let now = ld_supervisor::now_ms();
    let created = create(
        &server,
        json!({"permissions": ["deployment:connector:read"], "expires_at": now + 700}),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(created["expires_at"], now + 700);
    assert_eq!(status(&server, &instances(DEP), key).await, 200);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let response = server
        .req(Method::GET, &instances(DEP), Some(key))
        .send()
        .await
        .unwrap();
    let expired = problem(response, 401).await;
    assert_eq!(expired, unknown_key_body(&server).await);
}

#[tokio::test]
async fn keys_bound_to_deployments_are_refused_elsewhere() {
    let server = Server::start().await;
    let created = create(
        &server,
        json!({"permissions": ["deployment:connector:manage", "supervisor:keys:manage"],
               "deployments": [DEP]}),
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(created["deployments"], json!([DEP]));
    assert_eq!(status(&server, &instances(DEP), key).await, 200);
    assert_eq!(status(&server, &main_api(DEP), key).await, 200);
    for path in [instances(DEP + 1), main_api(DEP + 1), "/keys".to_string()] {
        let response = server
            .req(Method::GET, &path, Some(key))
            .send()
            .await
            .unwrap();
        problem(response, 403).await;
    }
    let response = server
        .req(
            Method::POST,
            &format!("{}/activate", main_api(DEP + 1)),
            Some(key),
        )
        .json(&json!({"connector_key": "postgres", "connector_type": "sink"}))
        .send()
        .await
        .unwrap();
    problem(response, 403).await;
    assert!(server.instances(DEP + 1).await.is_empty());
}

#[tokio::test]
async fn tenant_division_environment_are_ids() {
    let server = Server::start().await;
    for (path, field) in [
        (
            format!("/tenants/t%21/divisions/d/environments/e/deployments/{DEP}/connectors"),
            "tenant_id",
        ),
        (
            format!("/tenants/t/divisions/a%20b/environments/e/deployments/{DEP}/connectors"),
            "division_id",
        ),
        (
            format!(
                "/tenants/t/divisions/d/environments/{}/deployments/{DEP}/connectors",
                "e".repeat(129)
            ),
            "environment_id",
        ),
    ] {
        let response = server.admin(Method::GET, &path).send().await.unwrap();
        let body = problem(response, 400).await;
        assert_eq!(body["field"], field, "{body}");
        assert!(body["reason"].as_str().unwrap().contains(field), "{body}");
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ld-supervisor"))
        .args(args)
        .env_remove("LD_SUPERVISOR_API_KEY")
        .env_remove("LD_SUPERVISOR_URL")
        .env_remove("LD_SUPERVISOR_DATA")
        .output()
        .expect("run ld-supervisor")
}

#[tokio::test]
async fn the_cli_manages_keys_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = cli_create_key(&data, "supervisor:keys:manage,deployment:connector:read");
    let server = Binary::start(&data, &[]);
    let data_arg = data.to_str().unwrap();

    // Locked directory and no key: a clear error.
    let output = cli(&[
        "keys",
        "create",
        "--data",
        data_arg,
        "--permissions",
        "deployment:connector:read",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--api-key"), "{stderr}");

    // With the admin key it goes through the running server's API.
    let output = cli(&[
        "keys",
        "create",
        "--data",
        data_arg,
        "--api-key",
        &admin,
        "--permissions",
        "deployment:connector:read",
        "--expires-in",
        "30d",
        "--name",
        "ci",
    ]);
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("ldk_"), "{key}");
    let client = Client::new();
    let list_url = format!("{}{}", server.base, instances(DEP));
    let get = |key: String| {
        let client = client.clone();
        let url = list_url.clone();
        async move {
            client
                .get(url)
                .header("ld-api-key", key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(key.clone()).await, 200);

    let output = cli(&[
        "keys",
        "list",
        "--json",
        "--data",
        data_arg,
        "--api-key",
        &admin,
    ]);
    assert!(output.status.success(), "{output:?}");
    let listed: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let entry = listed.iter().find(|k| k["name"] == "ci").expect("listed");
    assert!(entry["expires_at"].is_u64());
    let id = entry["id"].as_str().unwrap().to_string();
    let output = cli(&["keys", "list", "--data", data_arg, "--api-key", &admin]);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains(&id) && !table.contains(&key), "{table}");

    let output = cli(&[
        "keys",
        "revoke",
        &id,
        "--data",
        data_arg,
        "--api-key",
        &admin,
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(get(key.clone()).await, 401);

    // Stopped: the same commands work on the directory itself.
    server.kill();
    let output = cli(&["keys", "list", "--json", "--data", data_arg]);
    assert!(output.status.success(), "{output:?}");
    let listed: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.len(), 1, "the admin key remains: {listed:?}");
    let admin_id = listed[0]["id"].as_str().unwrap().to_string();
    let output = cli(&["keys", "revoke", &admin_id, "--data", data_arg]);
    assert!(output.status.success(), "{output:?}");
    let output = cli(&["keys", "list", "--json", "--data", data_arg]);
    let listed: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(listed.is_empty());
}
