//! Repeated failed authentication from one address is slowed down (429 + Retry-After), and
//! no answer tells an unknown key from a malformed one (revoked and expired keys: see
//! `keys_are_managed.rs`).

mod common;

use std::net::IpAddr;

use common::{problem, Server, DEP};
use reqwest::{Client, Method};

fn list() -> String {
    format!("/deployments/{DEP}/connectors/instances")
}

#[tokio::test]
async fn ten_failures_a_minute_then_429_with_retry_after() {
    let server = Server::start().await;
    for i in 0..10 {
        let key = format!("ldk_guess{i}");
        let response = server
            .req(Method::GET, &list(), Some(&key))
            .send()
            .await
            .unwrap();
        problem(response, 401).await;
    }
    // Blocked now: wrong keys and even the right key get 429, so a guess cannot be
    // confirmed while blocked.
    for key in ["ldk_guess11", server.keys.admin.as_str()] {
        let response = server
            .req(Method::GET, &list(), Some(key))
            .send()
            .await
            .unwrap();
        let retry_after: u64 = response
            .headers()
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body = problem(response, 429).await;
        assert_eq!(body["code"], "too_many_requests");
    }
    // Another address is not affected.
    let other = Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let response = other
        .get(format!("{}{}", server.base, list()))
        .header("ld-api-key", &server.keys.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn successes_do_not_count() {
    let server = Server::start().await;
    for _ in 0..30 {
        let response = server
            .req(Method::GET, &list(), Some(&server.keys.read))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let server = Server::start_with(|c| c.auth_failures_per_minute = 0).await;
    for _ in 0..20 {
        let response = server
            .req(Method::GET, &list(), Some("ldk_nope"))
            .send()
            .await
            .unwrap();
        problem(response, 401).await;
    }
}

#[tokio::test]
async fn unknown_and_malformed_keys_get_the_same_401() {
    let server = Server::start().await;
    let mut bodies = Vec::new();
    for key in [
        "ldk_0000000000000000000000000000000000000000000000000000000000000000",
        "not-even-a-key",
        &server.keys.admin[..server.keys.admin.len() - 1],
    ] {
        let response = server
            .req(Method::GET, &list(), Some(key))
            .send()
            .await
            .unwrap();
        bodies.push(problem(response, 401).await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}
