//! The OpenSearch harness against the real server: a document indexed through `_bulk`
//! is counted, survives a stop and a restart on the same port and data directory, the
//! server is unreachable while stopped, and `-E` settings reach the node.

use std::time::Duration;

use ld_e2e_tests::opensearch::{OpenSearch, OpenSearchOptions};
use serde_json::json;

fn reachable(url: &str) -> bool {
    let address = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(
        &address.parse().expect("socket address"),
        Duration::from_secs(1),
    )
    .is_ok()
}

#[test]
fn a_document_survives_stop_and_start_again() {
    let Some(mut os) = OpenSearch::start() else {
        return;
    };
    assert!(!os.is_emulator());
    let root = os.get_json("/");
    assert_eq!(root["version"]["number"], "2.19.6", "{root}");
    assert_eq!(root["version"]["distribution"], "opensearch", "{root}");

    assert_eq!(os.count("orders"), 0, "no index yet");
    let (status, created) = os.put_json(
        "/orders",
        &json!({"settings": {"number_of_shards": 1, "number_of_replicas": 0}}),
    );
    assert_eq!(status, 200, "{created}");
    let (status, answer) = os
        .bulk("{\"index\":{\"_index\":\"orders\",\"_id\":\"o-1\"}}\n{\"id\":1,\"item\":\"tea\"}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["errors"], false, "{answer}");
    assert_eq!(answer["items"][0]["index"]["status"], 201, "{answer}");
    assert_eq!(os.count("orders"), 1);
    assert_eq!(os.get_json("/orders/_doc/o-1")["_source"]["item"], "tea");

    let port = os.port();
    let url = os.url();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    os.stop();
    assert!(!reachable(&url), "{url} still answers after stop");
    assert!(
        os.log().contains("STOPPED"),
        "the node did not close cleanly:\n{}",
        os.log()
    );

    os.start_again();
    assert_eq!(os.port(), port, "start_again changed the port");
    assert!(reachable(&url));
    assert_eq!(
        os.count("orders"),
        1,
        "the document did not survive the restart:\n{}",
        os.log()
    );
    let health = os.get_json("/_cluster/health/orders");
    assert_eq!(health["status"], "green", "{health}");
    // A write after the restart lands too.
    let (status, answer) =
        os.bulk("{\"index\":{\"_index\":\"orders\",\"_id\":\"o-2\"}}\n{\"id\":2}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(os.count("orders"), 2);
}

#[test]
fn settings_reach_the_node_and_a_tiny_write_pool_rejects() {
    let Some(os) = OpenSearch::start_with(
        OpenSearchOptions::default()
            .setting("thread_pool.write.size", "1")
            .setting("thread_pool.write.queue_size", "1"),
    ) else {
        return;
    };
    let nodes = os.get_json("/_nodes/thread_pool");
    let pools: Vec<_> = nodes["nodes"]
        .as_object()
        .expect("nodes object")
        .values()
        .map(|node| node["thread_pool"]["write"].clone())
        .collect();
    assert_eq!(pools.len(), 1, "{nodes}");
    assert_eq!(pools[0]["size"], 1, "{nodes}");
    assert_eq!(pools[0]["queue_size"], 1, "{nodes}");

    // Many shards written at once by parallel bulks overflow one thread and one queue
    // slot: the node answers some items with 429.
    let (status, created) = os.put_json(
        "/busy",
        &json!({"settings": {"number_of_shards": 8, "number_of_replicas": 0}}),
    );
    assert_eq!(status, 200, "{created}");
    let body: String = (0..400)
        .map(|i| format!("{{\"index\":{{\"_index\":\"busy\"}}}}\n{{\"n\":{i}}}\n"))
        .collect();
    let rejected: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6).map(|_| scope.spawn(|| os.bulk(&body))).collect();
        handles
            .into_iter()
            .map(|h| {
                let (status, answer) = h.join().expect("bulk thread");
                if status == 429 {
                    return 400;
                }
                assert_eq!(status, 200, "{answer}");
                answer["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .filter(|item| item["index"]["status"] == 429)
                    .count() as u64
            })
            .sum()
    });
    assert!(
        rejected > 0,
        "no 429 from a write pool of 1 thread and 1 queue slot"
    );
    assert_eq!(os.count("busy"), 6 * 400 - rejected);
}
