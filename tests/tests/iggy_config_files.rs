//! Connector files written for Apache Iggy's connectors runtime run as they are under
//! `ld-connectord local`: Iggy's example random source (`random_source_v0.toml`, with its
//! `benchmark`, `plugin_config_format`, Iggy's random-source `plugin_config` and an
//! `add_fields` transform) feeds Iggy's example stdout sink (`stdout_sink.toml`, with its
//! consumer group and its own transform), and every message arrives, transformed by
//! both. The fields that have no effect are named once per instance in the log.
//!
//! The files are the verbatim copies in `runtime/tests/iggy_configs/example_config/`
//! (from apache/iggy, see the README there).

use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use ld_e2e_tests::local::LocalRun;
use serde_json::Value;

fn iggy_example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/tests/iggy_configs/example_config")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The JSON messages the stdout sink printed.
fn printed(run: &LocalRun) -> Vec<Value> {
    run.stdout()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[test]
fn iggy_example_random_source_and_stdout_sink_files_run_as_they_are() {
    let source = iggy_example("random_source_v0.toml");
    let sink = iggy_example("stdout_sink.toml");
    // What the test relies on, so a refreshed copy that changes it fails here clearly.
    assert!(source.contains("max_count = 1000") && source.contains("benchmark = true"));
    assert!(sink.contains("consumer_group = \"stdout_sink_connector\""));

    let mut run = LocalRun::new(&["random_source", "stdout_sink"]);
    run.capture_stdout()
        .instance_file("random_source_v0.toml", &source)
        .instance_file("stdout_sink.toml", &sink)
        .start();

    // 1000 messages in batches of 10 to 49 every 100 ms: about 3.5 s.
    let started = Instant::now();
    let mut messages = printed(&run);
    while messages.len() < 1000 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
        messages = printed(&run);
    }
    // A little longer: nothing beyond max_count may come.
    std::thread::sleep(Duration::from_millis(1500));
    messages = printed(&run);
    let (stopped, _) = run.terminate(Duration::from_secs(20));
    let log = run.log();
    assert!(stopped, "clean exit on SIGTERM; log:\n{log}");

    let ids: BTreeSet<u64> = messages
        .iter()
        .map(|m| m["id"].as_u64().expect("an id"))
        .collect();
    assert_eq!(
        messages.len(),
        1000,
        "max_count = 1000, each once; log:\n{log}"
    );
    assert_eq!(ids, (0..1000).collect::<BTreeSet<u64>>());
    for m in &messages {
        // The source's transform, then the sink's.
        assert_eq!(m["test_field"], "hello!", "{m}");
        assert_eq!(m["message"], "hello", "{m}");
    }

    // One warning per instance, naming what has no effect, in the instance's span
    // (which names its key).
    let warnings = |key: &str| -> Vec<&str> {
        log.lines()
            .filter(|l| {
                l.contains(&format!("instance{{key={key} ")) && l.contains("config fields accepted")
            })
            .collect()
    };
    let source_warnings = warnings("random_source_v0");
    assert_eq!(source_warnings.len(), 1, "{log}");
    assert!(
        source_warnings[0].contains("name, version, path (Iggy's file identity")
            && source_warnings[0].contains("plugin_config_format (")
            && source_warnings[0].contains("benchmark ("),
        "{}",
        source_warnings[0]
    );
    let sink_warnings = warnings("stdout_sink");
    assert_eq!(sink_warnings.len(), 1, "{log}");
    assert!(
        sink_warnings[0].contains("benchmark (") && !sink_warnings[0].contains("verbose"),
        "verbose = false asks for nothing: {}",
        sink_warnings[0]
    );
    assert!(!log.contains("ERROR"), "{log}");
}
