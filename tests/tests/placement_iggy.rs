//! Several nodes sharing one real Apache Iggy server: the stream is shared, so a sink's
//! consumer group splits the partitions between the nodes, and a source moved to
//! another node continues the same topic.
//!
//! Needs `--features iggy` and `IGGY_TEST_ADDRESS` (e.g. `127.0.0.1:8090`, user and
//! password iggy/iggy); without the address it prints a skip notice.
#![cfg(feature = "iggy")]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ld_e2e_tests::{
    cluster::{delivered, item, union, wait_delivered},
    daemon::{Node, NodeOptions, Supervisor},
};
use ld_protocol::InstanceStatus;
use serde_json::{json, Value};

const TTL: u64 = 3;

/// Node options on the Iggy server, with topics of `partitions` partitions; `None` (and
/// a printed notice) without `IGGY_TEST_ADDRESS`.
fn iggy_nodes(partitions: u32) -> Option<NodeOptions> {
    let Ok(address) = std::env::var("IGGY_TEST_ADDRESS") else {
        eprintln!("skipped: IGGY_TEST_ADDRESS is not set");
        return None;
    };
    Some(NodeOptions {
        extra_toml: format!(
            "[stream]\nbackend = \"iggy\"\naddress = \"{address}\"\npartitions = {partitions}\n"
        ),
        ..NodeOptions::default()
    })
}

/// A stream name of its own for each run (the server outlives the tests).
fn unique_stream(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{nanos}")
}

fn sink(stream: &str) -> Value {
    json!({"enabled": true,
           "streams": [{"stream": stream, "topics": ["numbers"], "schema": "json",
                        "batch_length": 100, "poll_interval": "10ms",
                        "consumer_group": "rec"}],
           "plugin_config": {"output_file": "ids.txt"}})
}

fn source(stream: &str, plugin_config: Value) -> Value {
    json!({"enabled": true,
           "streams": [{"stream": stream, "topic": "numbers", "schema": "json"}],
           "plugin_config": plugin_config})
}

/// Activates the random source (`gen`) and the recording sink (`rec`, on `nodes`
/// nodes); returns the source's id and the list once both are active.
fn activate_pipeline(
    supervisor: &Supervisor,
    stream: &str,
    random: Value,
    nodes: usize,
) -> (u64, Vec<ld_protocol::InstanceItem>) {
    let gen = supervisor.activate("gen", "random", "source", source(stream, random));
    let rec = supervisor.activate("rec", "test", "sink", sink(stream));
    let items = supervisor.watch(Duration::from_secs(30), "both active", |items| {
        let (g, r) = (item(items, gen.id), item(items, rec.id));
        g.status == InstanceStatus::Active
            && r.status == InstanceStatus::Active
            && r.nodes.len() == nodes
    });
    (gen.id, items)
}

fn start(supervisor: &Supervisor, ids: &[&str], options: &NodeOptions) -> Vec<Node> {
    ids.iter()
        .map(|id| Node::start(supervisor, id, options.clone()))
        .collect()
}

#[test]
fn a_sink_group_on_three_nodes_over_three_partitions_delivers_each_message_once() {
    const COUNT: u128 = 6000;
    let Some(options) = iggy_nodes(3) else { return };
    let stream = unique_stream("placement-group");
    let supervisor = Supervisor::start_with_ttl(TTL);
    let nodes = start(&supervisor, &["n1", "n2", "n3"], &options);
    // The topic exists (with its three partitions) once the source runs; the sink's
    // members then join the group, one per node.
    activate_pipeline(
        &supervisor,
        &stream,
        json!({"seed": 5, "rate": 3000, "count": COUNT, "batch_size": 100}),
        3,
    );
    let all = wait_delivered(&nodes, Duration::from_secs(60), "every id", |all| {
        all.len() as u128 >= COUNT
    });
    std::thread::sleep(Duration::from_secs(2));
    let per_node = delivered(&nodes);
    let now = union(&per_node);
    assert_eq!(now.len(), all.len());
    let twice = now.values().filter(|n| **n > 1).count();
    for id in 1..=COUNT {
        assert!(now.contains_key(&id), "id {id} missing");
    }
    let shares: Vec<usize> = per_node.iter().map(|ids| ids.len()).collect();
    eprintln!("delivered per node: {shares:?}; more than once: {twice}");
    assert_eq!(twice, 0, "each message once");
    assert!(
        shares.iter().all(|n| *n > 0),
        "the group split the partitions over the nodes: {shares:?}"
    );
}

#[test]
fn kill9_of_the_source_node_continues_the_topic_from_another_node() {
    const COUNT: u128 = 8000;
    const BATCH: usize = 100;
    let Some(options) = iggy_nodes(1) else { return };
    let stream = unique_stream("placement-failover");
    let supervisor = Supervisor::start_with_ttl(TTL);
    let mut nodes = start(&supervisor, &["n1", "n2"], &options);
    let (gen, items) = activate_pipeline(
        &supervisor,
        &stream,
        json!({"seed": 9, "rate": 1000, "count": COUNT, "batch_size": BATCH}),
        2,
    );
    let first = item(&items, gen).lease.clone().unwrap();
    wait_delivered(&nodes, Duration::from_secs(30), "some ids", |all| {
        all.len() >= 1500
    });
    let victim = nodes.iter().position(|n| n.id == first.node_id).unwrap();
    nodes[victim].kill9();
    let killed = Instant::now();
    supervisor.watch(Duration::from_secs(30), "the source moved", |items| {
        let g = item(items, gen);
        g.lease.as_ref().is_some_and(|l| l.node_id != first.node_id)
            && g.status == InstanceStatus::Active
    });
    eprintln!(
        "failover on Iggy: active on the other node {:?} after kill -9",
        killed.elapsed()
    );
    // The survivor's sink takes the partition over once the server drops the dead
    // member; everything arrives without the killed node coming back.
    let all = wait_delivered(&nodes, Duration::from_secs(60), "every id", |all| {
        all.len() as u128 >= COUNT
    });
    for id in 1..=COUNT {
        assert!(all.contains_key(&id), "id {id} missing");
    }
    let twice = all.values().filter(|n| **n > 1).count();
    eprintln!("delivered more than once: {twice}");
    // At most one source batch produced again, plus one sink batch the dead member
    // wrote but did not commit.
    assert!(twice <= 2 * BATCH, "duplicates: {twice}");
}
