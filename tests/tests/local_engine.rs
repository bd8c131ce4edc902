//! `ld-connectord local` runs the same engine as the daemon: instances restart and end
//! `failed` after their restarts, the local API answers, and its logs are plain (no
//! colour codes in a file, one span per instance) or JSON on request.

use std::time::Duration;

use ld_e2e_tests::{
    daemon::{free_port, Http},
    local::{wait_for_ids, LocalRun},
};
use serde_json::{json, Value};

fn random_to_test_sink(run: &mut LocalRun, count: u64) {
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "demo", "topic": "numbers"}],
               "plugin_config": {"seed": 3, "count": count, "rate": 0, "batch_size": 100}}),
    );
    run.instance(
        "rec",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "demo", "topics": ["numbers"], "batch_length": 100}],
               "plugin_config": {"output_file": out.to_str().unwrap()}}),
    );
}

#[test]
fn plain_logs_in_a_file_have_no_colour_codes_and_one_span_per_instance() {
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    random_to_test_sink(&mut run, 500);
    run.start();
    wait_for_ids(&run.path("ids.txt"), Duration::from_secs(60), |ids| {
        ids.len() >= 500
    });
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "clean exit; log:\n{}", run.log());
    let log = run.log();
    assert!(!log.contains('\u{1b}'), "no escape codes in a file:\n{log}");
    let in_span: Vec<&str> = log.lines().filter(|l| l.contains("instance{")).collect();
    assert!(!in_span.is_empty(), "instance lines carry the span:\n{log}");
    for line in in_span {
        assert_eq!(line.matches("instance{").count(), 1, "one span: {line}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    random_to_test_sink(&mut run, 200);
    run.args(&["--log-format", "json"]);
    run.start();
    wait_for_ids(&run.path("ids.txt"), Duration::from_secs(60), |ids| {
        ids.len() >= 200
    });
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "clean exit; log:\n{}", run.log());
    let log = run.log();
    let mut with_instance = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let object: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string(), "{line}");
        if object["span"]["key"] == "rec" {
            with_instance += 1;
        }
    }
    assert!(
        with_instance > 0,
        "instance lines name the instance:\n{log}"
    );
}

#[test]
fn a_failing_instance_is_restarted_then_failed_and_local_exits_non_zero() {
    let mut run = LocalRun::new(&["test_sink"]);
    run.instance(
        "broken",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "demo", "topics": ["t"]}],
               "plugin_config": {"fail_open": "the disk is on fire"}}),
    );
    run.args(&["--max-restarts", "1"]);
    run.start();
    let ok = run.wait_exit(Duration::from_secs(60));
    let log = run.log();
    assert!(!ok, "exit status says an instance failed:\n{log}");
    assert!(log.contains("restarting in"), "restarted once:\n{log}");
    assert!(
        log.contains("the disk is on fire (gave up after 1 restarts)"),
        "failed with the reason:\n{log}"
    );
}

#[test]
fn the_local_api_serves_the_instances() {
    let mut run = LocalRun::new(&["random_source", "test_sink"]);
    random_to_test_sink(&mut run, 300);
    let port = free_port();
    run.args(&["--api-listen", &format!("127.0.0.1:{port}")]);
    run.start();
    wait_for_ids(&run.path("ids.txt"), Duration::from_secs(60), |ids| {
        ids.len() >= 300
    });
    let http = Http::new();
    let answer = http
        .send(
            http.client()
                .get(format!("http://127.0.0.1:{port}/instances")),
        )
        .expect("local API answers");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let views: Vec<Value> = answer.json().unwrap();
    let rec = views
        .iter()
        .find(|v| v["key"] == "rec")
        .expect("rec listed");
    assert_eq!(rec["status"], "active", "{rec}");
    assert!(rec["metrics"]["messages"].as_u64().unwrap() >= 300, "{rec}");
    let metrics = http
        .send(
            http.client()
                .get(format!("http://127.0.0.1:{port}/metrics")),
        )
        .expect("metrics answer");
    assert!(metrics.body.contains("rec"), "{}", metrics.body);
    run.terminate(Duration::from_secs(20));
}
