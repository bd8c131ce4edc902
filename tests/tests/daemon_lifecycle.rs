//! The control-plane lifecycle through the real supervisor and two real daemons: activate,
//! change config, delete; and a plugin whose `open` fails ends `failed` with its reason
//! while the node's other instances keep running.

use std::time::{Duration, Instant};

use ld_e2e_tests::{
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
    local::{read_ids, wait_for_ids},
};
use ld_protocol::InstanceStatus;
use serde_json::json;

#[test]
fn two_nodes_run_activated_instance_follow_config_and_stop_on_delete() {
    let supervisor = Supervisor::start();
    let a = Node::start(&supervisor, "node-a", NodeOptions::default());
    let b = Node::start(&supervisor, "node-b", NodeOptions::default());

    let activated = Instant::now();
    let item = supervisor.activate(
        "orders-test-sink",
        "test",
        "sink",
        sink_config("orders", json!({})),
    );
    assert_eq!(item.status, InstanceStatus::Pending, "starts pending");
    let active = supervisor.wait_status(item.id, InstanceStatus::Active, Duration::from_secs(2));
    for node in [&a, &b] {
        let view = node.wait_status(item.id, "active", Duration::from_secs(2));
        assert_eq!(view["config_version"], 1);
    }
    let took = activated.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "active on both nodes in {took:?}"
    );
    assert_eq!(active.config.version, 1);
    eprintln!("activate -> active on both nodes: {took:?}");

    // A new config version restarts the instance on it.
    let changed = supervisor.set_config(item.id, sink_config("orders", json!({"delay_ms": 1})));
    assert_eq!(changed.config.version, 2);
    for node in [&a, &b] {
        node.wait_instances(Duration::from_secs(2), "config version 2 active", |list| {
            list.iter()
                .any(|v| v["id"] == item.id && v["config_version"] == 2 && v["status"] == "active")
        });
    }
    let active = supervisor.wait_status(item.id, InstanceStatus::Active, Duration::from_secs(2));
    assert_eq!(active.config.version, 2);

    // Delete: gone from both nodes within 2 s.
    let deleted = Instant::now();
    supervisor.delete(item.id);
    a.wait_gone(item.id, Duration::from_secs(2));
    b.wait_gone(item.id, Duration::from_secs(2));
    eprintln!("delete -> stopped on both nodes: {:?}", deleted.elapsed());
    assert!(supervisor.instance(item.id).is_none());
    assert_eq!(a.health().0, 200);
}

#[test]
fn failing_open_ends_failed_with_the_reason_and_other_instances_keep_running() {
    let supervisor = Supervisor::start();
    let node = Node::start(&supervisor, "node-f", NodeOptions::default());
    let out = node.path("ids.txt");

    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config("numbers", json!({"seed": 1, "rate": 500, "batch_size": 50})),
    );
    let rec = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
    );
    supervisor.wait_status(gen.id, InstanceStatus::Active, Duration::from_secs(5));
    supervisor.wait_status(rec.id, InstanceStatus::Active, Duration::from_secs(5));
    wait_for_ids(&out, Duration::from_secs(10), |ids| !ids.is_empty());

    let broken = supervisor.activate(
        "broken",
        "test",
        "sink",
        sink_config("numbers", json!({"fail_open": "database is on fire"})),
    );
    let failed = supervisor.wait_status(broken.id, InstanceStatus::Failed, Duration::from_secs(10));
    let reason = failed.reason.expect("failed carries a reason");
    assert!(
        reason.contains("database is on fire") && reason.contains("node-f"),
        "the plugin's reason and the node: {reason}"
    );
    let view = node.instance(broken.id).unwrap();
    assert_eq!(view["status"], "failed");
    assert_eq!(view["restarts"], 2, "retried up to max_restarts: {view}");

    // The others were never touched, and the pipeline still moves.
    for id in [gen.id, rec.id] {
        let view = node.instance(id).unwrap();
        assert_eq!(view["status"], "active", "{view}");
        assert_eq!(view["restarts"], 0, "{view}");
        assert_eq!(
            supervisor.instance(id).unwrap().status,
            InstanceStatus::Active
        );
    }
    let before = read_ids(&out).len();
    wait_for_ids(&out, Duration::from_secs(10), |ids| {
        ids.len() > before + 100
    });
    let (code, health) = node.health();
    assert_eq!(code, 503, "health names the failed instance: {health}");
    assert_eq!(health["not_settled"][0]["key"], "broken");
}
