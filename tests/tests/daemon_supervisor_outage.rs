//! The supervisor goes away: a node keeps running what it has, queues the status changes
//! of the outage in its outbox and delivers them when the supervisor returns; and a node
//! killed with `kill -9` while the supervisor is down resumes from its cached assignment.

use std::time::{Duration, Instant};

use ld_e2e_tests::{
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
    local::{read_ids, wait_for_ids},
};
use ld_protocol::InstanceStatus;
use serde_json::json;

#[test]
fn instances_keep_running_through_an_outage_and_its_statuses_arrive_afterwards() {
    // Nodes stay live for 5 minutes, and this node sends a single heartbeat at start:
    // whatever the supervisor learns after the outage came through the outbox (status
    // reports), not through a heartbeat carrying the node's whole view.
    let mut supervisor = Supervisor::start_with_ttl(300);
    let node = Node::start(
        &supervisor,
        "node-o",
        NodeOptions {
            heartbeat_interval: "10m",
            ..NodeOptions::default()
        },
    );
    let out = node.path("ids.txt");
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config("numbers", json!({"seed": 2, "rate": 500, "batch_size": 50})),
    );
    let rec = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
    );
    let printer = supervisor.activate(
        "printer",
        "stdout",
        "sink",
        sink_config("numbers", json!({"print_payload": false})),
    );
    for id in [gen.id, rec.id, printer.id] {
        supervisor.wait_status(id, InstanceStatus::Active, Duration::from_secs(5));
    }

    supervisor.kill9();
    let outage = Instant::now();
    let before = read_ids(&out).len();
    // During the outage an operator removes the stdout plugin: the instance restarts,
    // cannot find its connector and gives up.
    std::fs::remove_file(node.plugin_dir().join("libld_stdout_sink.so")).unwrap();
    let view = node.wait_status(printer.id, "failed", Duration::from_secs(8));
    eprintln!("failed locally during the outage: {view}");
    // The pipeline keeps writing.
    wait_for_ids(&out, Duration::from_secs(8), |ids| {
        ids.len() > before + 1000
    });
    for id in [gen.id, rec.id] {
        assert_eq!(node.instance(id).unwrap()["status"], "active");
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));

    supervisor.restart();
    let back = Instant::now();
    let failed =
        supervisor.wait_status(printer.id, InstanceStatus::Failed, Duration::from_secs(20));
    eprintln!(
        "failure of the outage reached the supervisor {:?} after it returned: {:?}",
        back.elapsed(),
        failed.reason
    );
    let reason = failed.reason.unwrap();
    assert!(
        reason.contains("node-o") && reason.contains("stdout"),
        "names the node and the missing connector: {reason}"
    );
    for id in [gen.id, rec.id] {
        assert_eq!(
            supervisor.instance(id).unwrap().status,
            InstanceStatus::Active
        );
    }
    let during = read_ids(&out).len();
    wait_for_ids(&out, Duration::from_secs(5), |ids| ids.len() > during + 100);
}

#[test]
fn kill9_with_the_supervisor_down_resumes_from_the_cached_assignment() {
    const COUNT: u64 = 20_000;
    let mut supervisor = Supervisor::start();
    let mut node = Node::start(&supervisor, "node-k", NodeOptions::default());
    let out = node.path("ids.txt");
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 3, "rate": 2000, "count": COUNT, "batch_size": 200}),
        ),
    );
    let rec = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
    );
    wait_for_ids(&out, Duration::from_secs(20), |ids| ids.len() >= 3000);

    node.kill9();
    supervisor.kill9();
    let at_kill = read_ids(&out).len() as u64;
    assert!(at_kill < COUNT, "killed mid-stream ({at_kill} of {COUNT})");

    node.restart();
    for id in [gen.id, rec.id] {
        node.wait_status(id, "active", Duration::from_secs(5));
    }
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= COUNT
    });
    for id in 1..=u128::from(COUNT) {
        assert!(ids.contains_key(&id), "id {id} missing");
    }
    assert!(
        node.log().contains("resuming the cached assignment"),
        "resumed from the cache"
    );

    // When the supervisor returns, it learns the node runs both.
    supervisor.restart();
    for id in [gen.id, rec.id] {
        supervisor.wait_status(id, InstanceStatus::Active, Duration::from_secs(20));
    }
}
