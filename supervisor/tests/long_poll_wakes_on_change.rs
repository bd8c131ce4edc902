//! ETag, conditional GET and the event-driven long poll on the instance list.

mod common;

use std::time::{Duration, Instant};

use common::{Server, DEP};
use reqwest::Method;
use serde_json::json;

/// Generous bound for a wake-up on a loaded 2-core machine; the long poll itself is
/// event-driven (a fixed-interval poll of 1 s or more would miss this by far).
const WAKE_BOUND: Duration = Duration::from_millis(500);

async fn etag(server: &Server) -> String {
    let response = server
        .admin(
            Method::GET,
            &format!("/deployments/{DEP}/connectors/instances"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["etag"].to_str().unwrap().to_string()
}

fn poll(server: &Server, etag: &str, wait: u64) -> reqwest::RequestBuilder {
    server
        .admin(
            Method::GET,
            &format!("/deployments/{DEP}/connectors/instances?wait={wait}"),
        )
        .header("if-none-match", etag)
}

#[tokio::test]
async fn conditional_get_and_timeout() {
    let server = Server::start().await;
    let first = etag(&server).await;
    assert!(
        first.starts_with('"') && first.ends_with('"'),
        "strong quoted etag: {first}"
    );
    assert_eq!(etag(&server).await, first, "stable while nothing changes");

    let response = server
        .admin(
            Method::GET,
            &format!("/deployments/{DEP}/connectors/instances"),
        )
        .header("if-none-match", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304, "no wait: answer at once");

    let started = Instant::now();
    let response = poll(&server, &first, 1).send().await.unwrap();
    assert_eq!(response.status(), 304);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the timeout"
    );
    assert_eq!(response.headers()["etag"].to_str().unwrap(), first);

    // A different ETag answers at once, even with a long wait.
    let started = Instant::now();
    let response = poll(&server, "\"stale\"", 30).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));

    server
        .activate(
            DEP,
            json!({"connector_key": "postgres", "connector_type": "sink"}),
        )
        .await;
    assert_ne!(etag(&server).await, first, "etag changes with the list");
}

#[tokio::test]
async fn a_long_poll_wakes_on_activate_and_on_delete() {
    let server = Server::start().await;
    let current = etag(&server).await;

    let waiter = tokio::spawn(poll(&server, &current, 30).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "nothing changed yet, still waiting");
    let changed_at = Instant::now();
    let item = server
        .activate(
            DEP,
            json!({"connector_key": "postgres", "connector_type": "sink"}),
        )
        .await;
    let response = waiter.await.unwrap().unwrap();
    let woke_after = changed_at.elapsed();
    assert_eq!(response.status(), 200);
    assert!(
        woke_after < WAKE_BOUND,
        "woke {woke_after:?} after activate"
    );
    let after_activate = response.headers()["etag"].to_str().unwrap().to_string();
    let items: Vec<serde_json::Value> = response.json().await.unwrap();
    assert_eq!(items.len(), 1);

    let waiter = tokio::spawn(poll(&server, &after_activate, 30).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    let changed_at = Instant::now();
    let path = format!("/deployments/{DEP}/connectors/instances/{}", item["id"]);
    assert_eq!(
        server
            .admin(Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let response = waiter.await.unwrap().unwrap();
    let woke_after = changed_at.elapsed();
    assert_eq!(response.status(), 200);
    assert!(woke_after < WAKE_BOUND, "woke {woke_after:?} after delete");
    let items: Vec<serde_json::Value> = response.json().await.unwrap();
    assert!(items.is_empty());
}

#[tokio::test]
async fn a_change_elsewhere_does_not_wake_the_poll() {
    let server = Server::start().await;
    let current = etag(&server).await;
    let started = Instant::now();
    let waiter = tokio::spawn(poll(&server, &current, 1).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    server
        .activate(
            DEP + 1,
            json!({"connector_key": "postgres", "connector_type": "sink"}),
        )
        .await;
    let response = waiter.await.unwrap().unwrap();
    assert_eq!(response.status(), 304, "other deployment's change");
    assert!(started.elapsed() >= Duration::from_millis(900));
}
