//! Apache Iggy's own faults: the server restarts (gracefully, then after `kill -9`)
//! while a source and a sink of `ld-connectord local` run through it. Both resume by
//! themselves within 10 s of the server being back, and every id arrives.
//!
//! Needs `--features iggy` and `IGGY_TEST_SERVER_BIN`, an `iggy-server` binary the test
//! starts and restarts itself (on a free port and a data directory of its own);
//! without it the test prints a skip notice.
#![cfg(feature = "iggy")]

use std::time::{Duration, Instant};

use ld_e2e_tests::{
    iggy_server::IggyServer,
    local::{read_ids, wait_for_ids, LocalRun},
};
use serde_json::json;

const COUNT: u64 = 60_000;
const RATE: u64 = 3_000;

/// Waits until the sink delivered an id it had not delivered before `since`; the time
/// it took.
fn resumed(out: &std::path::Path, what: &str) -> Duration {
    let before = read_ids(out).len();
    let back = Instant::now();
    wait_for_ids(out, Duration::from_secs(60), |ids| {
        ids.len() > before + RATE as usize
    });
    let took = back.elapsed();
    eprintln!("{what}: the pipeline delivered again {took:?} after the server was back");
    took
}

#[test]
fn a_pipeline_through_iggy_survives_server_restarts_and_loses_nothing() {
    let Some(mut server) = IggyServer::from_env() else {
        return;
    };
    let stream = "restarts";
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": stream, "topic": "numbers", "schema": "json",
                            "durability": "write"}],
               "plugin_config": {"seed": 3, "count": COUNT, "rate": RATE, "batch_size": 100}}),
    );
    run.instance(
        "rec",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": stream, "topics": ["numbers"], "schema": "json",
                            "batch_length": 100, "poll_interval": "10ms",
                            "consumer_group": "rec", "durability": "write"}],
               "plugin_config": {"output_file": out}}),
    );
    run.args(&["--stream", &server.url()]);
    run.start();
    wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= 6_000);

    server.stop();
    std::thread::sleep(Duration::from_secs(2));
    server.start();
    let graceful = resumed(&out, "graceful restart");

    server.kill9();
    std::thread::sleep(Duration::from_secs(2));
    server.start();
    let killed = resumed(&out, "kill -9");

    let ids = wait_for_ids(&out, Duration::from_secs(120), |ids| {
        ids.len() as u64 >= COUNT
    });
    let missing: Vec<u128> = (1..=COUNT as u128)
        .filter(|id| !ids.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids lost, first {:?}; log:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        run.log()
    );
    assert_eq!(ids.len() as u64, COUNT, "no id outside 1..={COUNT}");
    let twice = ids.values().filter(|n| **n > 1).count();
    eprintln!("delivered more than once: {twice}");
    assert!(graceful < Duration::from_secs(10), "graceful: {graceful:?}");
    assert!(killed < Duration::from_secs(10), "kill -9: {killed:?}");
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit; log:\n{}", run.log());
}
