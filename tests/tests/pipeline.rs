//! Whole pipelines in a real `ld-connectord local` process: random source -> embedded
//! log -> test sink writing ids to a file. Every id arrives, across SIGTERM and
//! `kill -9`, and a slow sink keeps memory flat.

use std::time::Duration;

use ld_e2e_tests::local::{read_ids, wait_for_ids, LocalRun};
use serde_json::json;

const BATCH: u64 = 1000;

fn pipeline(count: u64, rate: u64, sink_extra: serde_json::Value) -> LocalRun {
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    let mut sink_config = json!({"output_file": out.to_str().unwrap()});
    for (k, v) in sink_extra.as_object().unwrap() {
        sink_config[k] = v.clone();
    }
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "demo", "topic": "numbers"}],
               "plugin_config": {"seed": 5, "count": count, "rate": rate, "batch_size": BATCH}}),
    );
    run.instance(
        "rec",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "demo", "topics": ["numbers"], "batch_length": BATCH}],
               "plugin_config": sink_config}),
    );
    run
}

fn assert_complete(ids: &std::collections::HashMap<u128, u32>, count: u64) -> u64 {
    for id in 1..=count as u128 {
        assert!(ids.contains_key(&id), "id {id} missing");
    }
    assert_eq!(ids.len() as u64, count, "no id outside 1..={count}");
    ids.values().map(|n| u64::from(n - 1)).sum()
}

#[test]
fn every_generated_id_arrives_and_sigterm_loses_nothing() {
    const COUNT: u64 = 30_000;
    let mut run = pipeline(COUNT, 20_000, json!({}));
    let out = run.path("ids.txt");
    run.start();
    wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 5_000);
    let (ok, took) = run.terminate(Duration::from_secs(15));
    assert!(ok, "clean exit after SIGTERM; log:\n{}", run.log());
    assert!(
        took < Duration::from_secs(10),
        "exited within the 10 s timeout: {took:?}"
    );
    let before = read_ids(&out).len() as u64;
    assert!(before < COUNT, "stopped mid-stream ({before} of {COUNT})");

    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(120), |ids| {
        ids.len() as u64 >= COUNT
    });
    let duplicates = assert_complete(&ids, COUNT);
    assert_eq!(duplicates, 0, "a drained shutdown commits what it wrote");
    assert!(run.log().contains("SIGTERM: shutting down"));
}

#[test]
fn kill9_mid_stream_loses_nothing() {
    const COUNT: u64 = 40_000;
    let mut run = pipeline(COUNT, 20_000, json!({}));
    let out = run.path("ids.txt");
    run.start();
    wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 8_000);
    run.kill9();
    let at_kill = read_ids(&out).len() as u64;
    assert!(at_kill < COUNT, "killed mid-stream ({at_kill} of {COUNT})");

    run.start();
    let ids = wait_for_ids(&out, Duration::from_secs(120), |ids| {
        ids.len() as u64 >= COUNT
    });
    let duplicates = assert_complete(&ids, COUNT);
    // The source's batch and its checkpoint are one atomic write, so the source repeats
    // nothing; at most the sink's batch in flight is written again.
    assert!(duplicates <= BATCH, "{duplicates} duplicates");
}

#[test]
fn a_slow_sink_keeps_memory_flat() {
    // The sink takes 50 ms per batch of 100 (2,000 msg/s); the source produces as fast
    // as it can (well over 100x that). The log absorbs the difference on disk.
    const BOUND: u64 = 200 << 20;
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "demo", "topic": "numbers"}],
               "plugin_config": {"seed": 1, "count": 600_000, "batch_size": 1000}}),
    );
    run.instance(
        "rec",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "demo", "topics": ["numbers"], "batch_length": 100}],
               "plugin_config": {"output_file": out.to_str().unwrap(), "delay_ms": 50}}),
    );
    run.args(&["--durability", "100ms"]);
    run.start();
    let mut peak = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(run.rss_bytes());
    }
    let delivered = read_ids(&out).len();
    assert!(
        delivered > 0 && delivered < 100_000,
        "the sink is slow: {delivered}"
    );
    assert!(
        peak < BOUND,
        "peak RSS {} MiB over the {} MiB bound",
        peak >> 20,
        BOUND >> 20
    );
    eprintln!(
        "slow sink: peak RSS {} MiB, {delivered} delivered in 8 s",
        peak >> 20
    );
}
