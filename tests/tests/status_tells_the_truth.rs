//! Statuses that tell the truth, through the real supervisor and a real daemon: an
//! instance activated without a config waits for one (`inactive`, not `failed`), and an
//! instance retrying a failure shows that failure as its reason while it retries.

use std::time::Duration;

use ld_e2e_tests::daemon::{sink_config, source_config, wait_until, Node, NodeOptions, Supervisor};
use serde_json::json;

#[test]
fn an_instance_with_no_config_yet_waits_for_one() {
    let supervisor = Supervisor::start();
    let node = Node::start(&supervisor, "node-a", NodeOptions::default());
    // As the seed's example activates `postgres`: no config at all.
    let item = supervisor.activate("pg-no-config", "test", "sink", json!({}));
    let view = node.wait_status(item.id, "inactive", Duration::from_secs(10));
    assert_eq!(view["reason"], "waiting for a config", "{view}");
    // The list keeps the seed's `pending` and says why.
    let listed = wait_until(
        Duration::from_secs(10),
        "the node's reason in the list",
        || {
            supervisor
                .instance(item.id)
                .filter(|i| i.reason.as_deref() == Some("node node-a: waiting for a config"))
        },
        || format!("{:?}", supervisor.instance(item.id)),
    );
    assert_eq!(listed.status.as_str(), "pending");

    // Once a config arrives, it runs.
    supervisor.set_config(item.id, sink_config("orders", json!({})));
    let view = node.wait_status(item.id, "active", Duration::from_secs(10));
    assert!(view["reason"].is_null(), "{view}");
}

#[test]
fn a_failure_being_retried_is_the_reason() {
    let supervisor = Supervisor::start();
    let node = Node::start(&supervisor, "node-a", NodeOptions::default());
    let sink = supervisor.activate(
        "failing-sink",
        "test",
        "sink",
        sink_config("retried", json!({"always_fail": true})),
    );
    supervisor.activate(
        "some-source",
        "random",
        "source",
        source_config("retried", json!({"count": 10, "rate": 0})),
    );
    let view = wait_until(
        Duration::from_secs(30),
        "the retried failure as reason",
        || {
            node.instance(sink.id).filter(|v| {
                v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("retrying consume") && r.contains("always fails"))
            })
        },
        || format!("{:?}\n{}", node.instance(sink.id), node.log()),
    );
    assert_eq!(
        view["status"], "active",
        "still running while it retries: {view}"
    );
}
