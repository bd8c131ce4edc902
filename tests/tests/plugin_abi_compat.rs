//! The plugin ABI evolves without breaking plugins: sinks built against the frozen
//! `ld-plugin-api` 0.1.0 (before `Sink::flush`) and 0.1.1 (before `Sink::rejected`)
//! load and run in today's host, and a sink that holds batches has its offsets committed
//! only once it says they are durable.

use std::time::Duration;

use ld_connectord::plugin_host::PluginLibrary;
use ld_e2e_tests::{
    daemon_binary, frozen_plugin,
    local::{wait_for_ids, LocalRun},
};
use serde_json::json;

/// The frozen fixture sink built against `release`: (library, connector key).
fn frozen_sink(release: &str) -> (std::path::PathBuf, String) {
    let name = format!("abi_{}_sink", release.replace('.', "_"));
    (
        frozen_plugin(release, &name),
        format!("abi-{}", release.replace('.', "-")),
    )
}

#[test]
fn plugins_built_against_0_1_0_and_0_1_1_load_through_the_real_loader() {
    for release in ["0.1.0", "0.1.1"] {
        let (path, key) = frozen_sink(release);
        let cache = tempfile::tempdir().unwrap();
        let lib = PluginLibrary::load(&path, cache.path())
            .unwrap_or_else(|e| panic!("a {release} plugin loads: {e}"));
        assert_eq!(lib.meta().key, key);
        assert!(lib.meta().sink.is_some());
        check_plugin_accepts(&path);
    }
}

fn check_plugin_accepts(path: &std::path::Path) {
    let out = std::process::Command::new(daemon_binary())
        .arg("check-plugin")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-plugin refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn source(count: u64, rate: u64) -> serde_json::Value {
    json!({"type": "source", "key": "random",
           "streams": [{"stream": "s", "topic": "t"}],
           "plugin_config": {"seed": 3, "count": count, "rate": rate, "batch_size": 100, "payload_size": 50}})
}

/// Runs the frozen sink of `release` behind a random source of 3,000 messages, stops,
/// starts again, and checks every message arrived exactly once: its offsets were
/// committed (through `flush`, its own or the default) and nothing came twice.
fn old_sink_runs_and_its_offsets_are_committed(release: &str) {
    let (library, key) = frozen_sink(release);
    let mut run = LocalRun::new(&["random_source"]);
    std::fs::copy(
        &library,
        run.plugin_dir().join(library.file_name().unwrap()),
    )
    .unwrap();
    let out = run.path("ids.txt");
    run.instance("gen", source(3000, 0));
    run.instance(
        "old-sink",
        json!({"type": "sink", "key": key,
               "streams": [{"stream": "s", "topics": ["t"], "batch_length": 100}],
               "plugin_config": {"output_file": out}}),
    );
    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 3000);
    assert_eq!(ids.len(), 3000);
    let (clean, _) = run.terminate(Duration::from_secs(20));
    assert!(clean, "stopped cleanly: {}", run.log());

    // Committed: a restart redelivers nothing.
    run.start();
    std::thread::sleep(Duration::from_secs(3));
    let ids = ld_e2e_tests::local::read_ids(&out);
    assert_eq!(ids.len(), 3000);
    assert!(
        ids.values().all(|&n| n == 1),
        "a committed batch came again after the restart"
    );
}

#[test]
fn a_0_1_0_sink_runs_and_its_offsets_are_committed() {
    old_sink_runs_and_its_offsets_are_committed("0.1.0");
}

#[test]
fn a_0_1_1_sink_runs_and_its_offsets_are_committed() {
    old_sink_runs_and_its_offsets_are_committed("0.1.1");
}

#[test]
fn held_batches_are_flushed_when_due_and_when_idle() {
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    // 5,000 messages in 50 batches: written 7 batches at a time; the last one only by
    // the host's idle flush once it is 300 ms old.
    run.instance("gen", source(5000, 0));
    run.instance(
        "holder",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "s", "topics": ["t"], "batch_length": 100}],
               "plugin_config": {"output_file": out, "hold_batches": 7, "hold_ms": 300}}),
    );
    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 5000);
    assert!(ids.values().all(|&n| n == 1));
    run.terminate(Duration::from_secs(20));
}

#[test]
fn held_batches_are_not_committed_so_kill_9_loses_none() {
    let total = 20_000;
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    // 2,000 messages a second, written 10 batches (1,000 messages) at a time: at any
    // moment up to a second of consumed messages is only held in the sink's memory.
    run.instance("gen", source(total, 2000));
    run.instance(
        "holder",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "s", "topics": ["t"], "batch_length": 100}],
               "plugin_config": {"output_file": out, "hold_batches": 10, "hold_ms": 60000}}),
    );
    run.start();
    wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 3000);
    std::thread::sleep(Duration::from_millis(450));
    run.kill9();
    let before = ld_e2e_tests::local::read_ids(&out).len();
    assert!(before < total as usize, "killed mid-stream");

    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(90), |ids| {
        ids.len() >= total as usize
    });
    assert_eq!(
        ids.len(),
        total as usize,
        "every message arrived once the held batches were delivered again"
    );
    run.terminate(Duration::from_secs(20));
}
