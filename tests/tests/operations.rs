//! Operating instances through the API (issue 15): restart a failed instance once its
//! cause is fixed, and automatic restarts of failed instances. Real supervisor and
//! daemon processes, the real test-sink plugin.

use std::time::Duration;

use ld_e2e_tests::daemon::{Node, NodeOptions, Supervisor};
use ld_protocol::InstanceStatus;
use serde_json::json;

/// A random source and a test sink that fails to open while `blocker` exists.
fn pipeline(
    supervisor: &Supervisor,
    dir: &std::path::Path,
    stream: &str,
) -> (u64, std::path::PathBuf) {
    let out = dir.join(format!("{stream}.txt"));
    let blocker = dir.join(format!("{stream}.blocked"));
    std::fs::write(&blocker, "").unwrap();
    supervisor.activate(
        &format!("{stream}-gen"),
        "random",
        "source",
        json!({"enabled": true, "streams": [{"stream": stream, "topic": "t"}],
               "plugin_config": {"seed": 1, "count": 500, "rate": 0, "batch_size": 100}}),
    );
    let sink = supervisor.activate(
        &format!("{stream}-rec"),
        "test",
        "sink",
        json!({"enabled": true, "streams": [{"stream": stream, "topics": ["t"], "batch_length": 100}],
               "plugin_config": {"output_file": out, "fail_open_while": blocker}}),
    );
    (sink.id, blocker)
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn wait_lines(path: &std::path::Path, n: usize, limit: Duration) {
    let started = std::time::Instant::now();
    while lines(path) < n {
        assert!(
            started.elapsed() < limit,
            "{} of {n} lines after {limit:?}",
            lines(path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failed_instance_restarts_through_the_api_once_its_cause_is_fixed() {
    let supervisor = Supervisor::start();
    let _node = Node::start(
        &supervisor,
        "n1",
        NodeOptions {
            max_restarts: 1,
            extra_toml: "auto_restart = false\n".into(),
            ..NodeOptions::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (sink, blocker) = pipeline(&supervisor, dir.path(), "fixed");
    let failed = supervisor.wait_status(sink, InstanceStatus::Failed, Duration::from_secs(30));
    let reason = failed.reason.unwrap_or_default();
    assert!(reason.contains("exists"), "{reason}");
    assert!(
        !reason.contains("automatic restart"),
        "auto restart is off: {reason}"
    );

    // A restart asked for is counted in the item (each one restarts it on its nodes).
    let item = supervisor.restart_instance(sink);
    assert_eq!(item.restarts, 1);
    // The node runs it again (and its one restart), which fails again while the cause
    // stays: well within 3 s with a 100 ms restart backoff.
    std::thread::sleep(Duration::from_secs(3));
    supervisor.wait_status(sink, InstanceStatus::Failed, Duration::from_secs(30));

    std::fs::remove_file(&blocker).unwrap();
    // Nothing happens by itself (auto restart is off) ...
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&dir.path().join("fixed.txt")), 0);
    // ... until a restart is asked for: the collection's, for the failed ones.
    let restarted = supervisor.restart_all(true);
    assert_eq!(
        restarted.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![sink]
    );
    supervisor.wait_status(sink, InstanceStatus::Active, Duration::from_secs(30));
    wait_lines(&dir.path().join("fixed.txt"), 500, Duration::from_secs(30));
}

#[test]
fn restarting_a_stopped_instance_is_refused_with_409() {
    let supervisor = Supervisor::start();
    let _node = Node::start(&supervisor, "n1", NodeOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let (sink, _blocker) = pipeline(&supervisor, dir.path(), "stopped");
    supervisor.stop_or_start(sink, "stop");
    let refused = supervisor
        .http()
        .block_on(supervisor.client().restart(sink))
        .expect_err("refused");
    let text = refused.to_string();
    assert!(text.contains("409") && text.contains("start it"), "{text}");
}

#[test]
fn a_failed_instance_is_restarted_automatically_and_says_when() {
    let supervisor = Supervisor::start();
    let _node = Node::start(
        &supervisor,
        "n1",
        NodeOptions {
            max_restarts: 1,
            extra_toml: "auto_restart_backoff = \"2s\"\nauto_restart_backoff_max = \"4s\"\n".into(),
            ..NodeOptions::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let (sink, blocker) = pipeline(&supervisor, dir.path(), "auto");
    let list = supervisor.watch(
        Duration::from_secs(30),
        "failed, with the next attempt",
        |l| {
            l.iter().any(|i| {
                i.id == sink
                    && i.status == InstanceStatus::Failed
                    && i.reason
                        .as_deref()
                        .is_some_and(|r| r.contains("automatic restart 1 at"))
            })
        },
    );
    eprintln!("{:?}", list.iter().find(|i| i.id == sink).unwrap().reason);
    // The next attempts fail too while the cause stays; the count goes on.
    supervisor.watch(Duration::from_secs(30), "a later automatic attempt", |l| {
        l.iter().any(|i| {
            i.id == sink
                && i.reason
                    .as_deref()
                    .is_some_and(|r| r.contains("automatic restart 2 at"))
        })
    });
    std::fs::remove_file(&blocker).unwrap();
    supervisor.wait_status(sink, InstanceStatus::Active, Duration::from_secs(30));
    wait_lines(&dir.path().join("auto.txt"), 500, Duration::from_secs(30));
}
