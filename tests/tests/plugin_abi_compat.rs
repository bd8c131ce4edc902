//! The plugin ABI evolves without breaking plugins: a sink built against the frozen
//! `ld-plugin-api` 0.1.0 (before `Sink::flush`) loads and runs in today's host, and a
//! sink that holds batches has its offsets committed only once it says they are durable.

use std::time::Duration;

use ld_connectord::plugin_host::PluginLibrary;
use ld_e2e_tests::{
    daemon_binary, frozen_plugin,
    local::{wait_for_ids, LocalRun},
};
use serde_json::json;

#[test]
fn a_plugin_built_against_0_1_0_loads_through_the_real_loader() {
    let path = frozen_plugin("abi_0_1_0_sink");
    let cache = tempfile::tempdir().unwrap();
    let lib = PluginLibrary::load(&path, cache.path()).expect("a 0.1.0 plugin loads");
    assert_eq!(lib.meta().key, "abi-0-1-0");
    assert!(lib.meta().sink.is_some());

    let out = std::process::Command::new(daemon_binary())
        .arg("check-plugin")
        .arg(&path)
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

#[test]
fn a_0_1_0_sink_runs_and_its_offsets_are_committed() {
    let mut run = LocalRun::new(&["random_source"]);
    std::fs::copy(
        frozen_plugin("abi_0_1_0_sink"),
        run.plugin_dir().join("libld_abi_0_1_0_sink.so"),
    )
    .unwrap();
    let out = run.path("ids.txt");
    run.instance("gen", source(3000, 0));
    run.instance(
        "old-sink",
        json!({"type": "sink", "key": "abi-0-1-0",
               "streams": [{"stream": "s", "topics": ["t"], "batch_length": 100}],
               "plugin_config": {"output_file": out}}),
    );
    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 3000);
    assert_eq!(ids.len(), 3000);
    let (clean, _) = run.terminate(Duration::from_secs(20));
    assert!(clean, "stopped cleanly: {}", run.log());

    // Committed through the default `flush`: a restart redelivers nothing.
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
