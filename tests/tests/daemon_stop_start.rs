//! Stop and start through the supervisor's API: a stopped instance is `inactive` on the
//! node and in the supervisor and its pipeline stops writing; started again, it resumes
//! where it stopped, losing nothing.

use std::time::Duration;

use ld_e2e_tests::{
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
    local::{read_ids, wait_for_ids},
};
use ld_protocol::InstanceStatus;
use serde_json::json;

#[test]
fn a_stopped_instance_is_inactive_and_resumes_when_started() {
    const COUNT: u64 = 20_000;
    let supervisor = Supervisor::start();
    let node = Node::start(&supervisor, "node-a", NodeOptions::default());
    let out = node.path("ids.txt");
    let source = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 2, "count": COUNT, "rate": 5_000, "batch_size": 500}),
        ),
    );
    let sink = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
    );
    supervisor.wait_status(sink.id, InstanceStatus::Active, Duration::from_secs(5));
    wait_for_ids(&out, Duration::from_secs(30), |ids| ids.len() >= 2_000);

    supervisor.stop_or_start(sink.id, "stop");
    supervisor.wait_status(sink.id, InstanceStatus::Inactive, Duration::from_secs(5));
    node.wait_status(sink.id, "inactive", Duration::from_secs(5));
    // Stopped: nothing more is written while the source keeps producing.
    std::thread::sleep(Duration::from_millis(300));
    let at_stop = read_ids(&out).len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        read_ids(&out).len(),
        at_stop,
        "a stopped sink writes nothing"
    );
    assert_eq!(
        node.health().0,
        200,
        "inactive on purpose is where it should be"
    );

    supervisor.stop_or_start(sink.id, "start");
    supervisor.wait_status(sink.id, InstanceStatus::Active, Duration::from_secs(5));
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= COUNT
    });
    for id in 1..=u128::from(COUNT) {
        assert!(ids.contains_key(&id), "id {id} missing after the restart");
    }
    assert_eq!(
        ids.values().map(|n| u64::from(n - 1)).sum::<u64>(),
        0,
        "a stop drains and commits"
    );
    assert_eq!(
        supervisor.instance(source.id).unwrap().status,
        InstanceStatus::Active
    );
}
