//! SIGTERM with a pipeline running: the daemon drains and exits within its 10 s shutdown
//! timeout, and the next start delivers every id, each once.

use std::time::Duration;

use ld_e2e_tests::{
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
    local::{read_ids, wait_for_ids},
};
use ld_protocol::InstanceStatus;
use serde_json::json;

#[test]
fn sigterm_drains_within_the_timeout_and_the_next_start_loses_nothing() {
    const COUNT: u64 = 30_000;
    let supervisor = Supervisor::start();
    let mut node = Node::start(&supervisor, "node-t", NodeOptions::default());
    let out = node.path("ids.txt");
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 4, "rate": 4000, "count": COUNT, "batch_size": 400}),
        ),
    );
    let rec = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
    );
    wait_for_ids(&out, Duration::from_secs(20), |ids| ids.len() >= 4000);

    let (ok, took) = node.terminate(Duration::from_secs(15));
    assert!(ok, "clean exit after SIGTERM; log:\n{}", node.log());
    assert!(
        took < Duration::from_secs(10),
        "exited within 10 s: {took:?}"
    );
    eprintln!("SIGTERM -> exit: {took:?}");
    let log = node.log();
    assert!(log.contains("SIGTERM: shutting down") && log.contains("stopped"));
    assert!(!log.contains("abandoned"), "nothing abandoned:\n{log}");
    let before = read_ids(&out).len() as u64;
    assert!(before < COUNT, "stopped mid-stream ({before} of {COUNT})");

    node.restart();
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= COUNT
    });
    for id in 1..=u128::from(COUNT) {
        assert!(ids.contains_key(&id), "id {id} missing");
    }
    assert_eq!(ids.len() as u64, COUNT, "no id outside 1..={COUNT}");
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "a drained shutdown commits what it wrote");
    for id in [gen.id, rec.id] {
        supervisor.wait_status(id, InstanceStatus::Active, Duration::from_secs(5));
    }
}
