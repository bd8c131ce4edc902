//! Error tolerance (issue 15): with `errors.tolerance = "all"`, a message a transform
//! cannot process, or one the sink plugin rejects (`Sink::rejected`), goes to the
//! dead-letter topic, unchanged, with headers naming the instance, where it came from,
//! the stage and why, and the rest flows on. `ld-connectord local`
//! over the embedded log; the dead-letter topic is read back from the node's log after
//! the run.

use std::collections::BTreeMap;
use std::time::Duration;

use ld_connectord::stream::{
    embedded::{EmbeddedLog, EmbeddedSettings},
    StreamBackend, TopicRef,
};
use ld_e2e_tests::local::{wait_for_ids, LocalRun};
use serde_json::{json, Value};

const COUNT: u64 = 200;
const POISON_EVERY: u64 = 10;

/// The test source: ids 1..=200, every tenth one not JSON.
fn poisoned_source(errors: Option<Value>) -> Value {
    let mut v = json!({"type": "source", "key": "test",
           "streams": [{"stream": "s", "topic": "numbers"}],
           "plugin_config": {"count": COUNT, "batch_size": 50, "interval_ms": 5,
                             "poison_every": POISON_EVERY}});
    if let Some(errors) = errors {
        v["transforms"] =
            json!([{"type": "add_fields", "fields": [{"key": "seen", "value": {"static": true}}]}]);
        v["errors"] = errors;
    }
    v
}

/// The test sink writing ids to `out`, behind a transform that needs JSON objects.
fn transforming_sink(out: &std::path::Path, errors: Option<Value>) -> Value {
    let mut v = json!({"type": "sink", "key": "test",
           "streams": [{"stream": "s", "topics": ["numbers"], "batch_length": 50}],
           "transforms": [{"type": "add_fields", "fields": [{"key": "seen", "value": {"static": true}}]}],
           "plugin_config": {"output_file": out}});
    if let Some(errors) = errors {
        v["errors"] = errors;
    }
    v
}

/// Every message of a topic in the run's log: (payload, headers).
async fn read_all(
    state: &std::path::Path,
    topic: &TopicRef,
) -> Vec<(String, BTreeMap<String, String>)> {
    let db = ld_connectord::engine::open_db(state).unwrap();
    let log = EmbeddedLog::open(db, EmbeddedSettings::default()).unwrap();
    let mut consumer = log.consumer(topic, "check").await.unwrap();
    let mut out = Vec::new();
    loop {
        let polled = consumer
            .poll(1000, Duration::from_millis(200))
            .await
            .unwrap();
        if polled.batch.is_empty() {
            return out;
        }
        for m in polled.batch.iter() {
            let headers = m
                .headers()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            out.push((String::from_utf8_lossy(m.payload()).into_owned(), headers));
        }
    }
}

/// Checks that the dead-letter topic `s/<topic>` of the run holds exactly `expected`
/// (payloads, each once, unchanged, in order); returns the first letter's headers.
async fn assert_dead_letters(
    run: &LocalRun,
    topic: &str,
    expected: impl Iterator<Item = String>,
) -> BTreeMap<String, String> {
    let dead = read_all(&run.path("state"), &TopicRef::new("s", topic)).await;
    let payloads: Vec<&str> = dead.iter().map(|(p, _)| p.as_str()).collect();
    let expected: Vec<String> = expected.collect();
    assert_eq!(
        payloads, expected,
        "each message set aside once, unchanged, in order"
    );
    dead.into_iter().next().expect("a dead letter").1
}

/// The headers of a dead letter the sink `rec` set aside from `s/numbers` partition 0.
fn assert_from_rec(headers: &BTreeMap<String, String>, offset: &str, stage: &str) {
    assert_eq!(headers["ld-dlq-instance"], "rec");
    assert_eq!(headers["ld-dlq-stream"], "s");
    assert_eq!(headers["ld-dlq-topic"], "numbers");
    assert_eq!(headers["ld-dlq-partition"], "0");
    assert_eq!(headers["ld-dlq-offset"], offset);
    assert_eq!(headers["ld-dlq-stage"], stage);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_goes_to_the_dead_letter_topic_with_its_headers_while_the_rest_flows() {
    let mut run = LocalRun::new(&["test_sink"]);
    let out = run.path("ids.txt");
    run.instance("gen", poisoned_source(None));
    run.instance(
        "rec",
        transforming_sink(
            &out,
            Some(json!({"tolerance": "all", "dead_letter": {"stream": "s", "topic": "dead"}})),
        ),
    );
    run.args(&["--api-listen", "127.0.0.1:0"]);
    run.start();
    let good = COUNT - COUNT / POISON_EVERY;
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= good
    });
    // Give a poison message that would still arrive the time to do so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit; log:\n{}", run.log());
    assert_eq!(
        ids.len() as u64,
        good,
        "the rest flowed, the poison did not reach the sink"
    );
    assert!(ids
        .keys()
        .all(|id| !(*id as u64).is_multiple_of(POISON_EVERY)));
    assert!(
        run.log().contains("dead-letter"),
        "the log says so:\n{}",
        run.log()
    );

    let expected = (1..=COUNT / POISON_EVERY).map(|i| format!("not json {}", i * POISON_EVERY));
    let headers = assert_dead_letters(&run, "dead", expected).await;
    // Id 10 is the tenth message of the topic: offset 9.
    assert_from_rec(&headers, "9", "transform:add_fields");
    assert!(
        headers["ld-dlq-reason"].contains("not valid JSON"),
        "{headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_sets_aside_what_its_transforms_cannot_process() {
    let mut run = LocalRun::new(&["test_sink"]);
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        poisoned_source(Some(
            json!({"tolerance": "all", "dead_letter": {"stream": "s", "topic": "gen-dead"}}),
        )),
    );
    run.instance(
        "rec",
        json!({"type": "sink", "key": "test",
               "streams": [{"stream": "s", "topics": ["numbers"], "batch_length": 50}],
               "plugin_config": {"output_file": out}}),
    );
    run.start();
    let good = COUNT - COUNT / POISON_EVERY;
    wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= good
    });
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit; log:\n{}", run.log());
    let expected = (1..=COUNT / POISON_EVERY).map(|i| format!("not json {}", i * POISON_EVERY));
    let headers = assert_dead_letters(&run, "gen-dead", expected).await;
    assert_eq!(headers["ld-dlq-instance"], "gen");
    assert_eq!(headers["ld-dlq-topic"], "numbers", "where it was going");
    assert!(
        !headers.contains_key("ld-dlq-offset"),
        "it had no offset yet"
    );
}

#[test]
fn without_tolerance_a_poison_message_fails_the_sink() {
    let mut run = LocalRun::new(&["test_sink"]);
    let out = run.path("ids.txt");
    run.instance("gen", poisoned_source(None));
    run.instance("rec", transforming_sink(&out, None));
    run.args(&["--max-restarts", "0"]);
    run.start();
    std::thread::sleep(Duration::from_secs(3));
    let log = run.log();
    assert!(log.contains("not valid JSON"), "{log}");
    // Nothing at or after the first poison message's batch was written.
    let ids = ld_e2e_tests::local::read_ids(&out);
    assert!(
        ids.keys().all(|id| *id < POISON_EVERY as u128),
        "{:?}",
        ids.len()
    );
}

const REJECT_EVERY: u64 = 7;

/// The test sink writing ids to `out` and rejecting every seventh.
fn rejecting_sink(out: &std::path::Path, errors: Option<Value>) -> Value {
    let mut v = json!({"type": "sink", "key": "test",
           "streams": [{"stream": "s", "topics": ["numbers"], "batch_length": 50}],
           "plugin_config": {"output_file": out, "reject_every": REJECT_EVERY}});
    if let Some(errors) = errors {
        v["errors"] = errors;
    }
    v
}

/// The value of a series of the node's `/metrics` for instance `key`.
async fn instance_metric(api: &str, name: &str, key: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{api}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = format!("instance=\"{key}\"");
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_the_sink_rejects_go_to_the_dead_letter_topic_while_the_rest_is_written() {
    let mut run = LocalRun::new(&["test_sink"]);
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        json!({"type": "source", "key": "test",
               "streams": [{"stream": "s", "topic": "numbers"}],
               "plugin_config": {"count": COUNT, "batch_size": 50, "interval_ms": 5}}),
    );
    run.instance(
        "rec",
        rejecting_sink(
            &out,
            Some(json!({"tolerance": "all", "dead_letter": {"stream": "s", "topic": "rejected"}})),
        ),
    );
    let api = format!("127.0.0.1:{}", ld_e2e_tests::daemon::free_port());
    run.args(&["--api-listen", &api]);
    run.start();
    let good = COUNT - COUNT / REJECT_EVERY;
    let ids = wait_for_ids(&out, Duration::from_secs(60), |ids| {
        ids.len() as u64 >= good
    });
    // The count reaches the metrics once the batch went through.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let dead_lettered = loop {
        let n = instance_metric(&api, "ld_instance_dead_lettered_total", "rec").await;
        if n == Some((COUNT / REJECT_EVERY) as f64) || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let written = instance_metric(&api, "ld_instance_messages_total", "rec").await;
    let (ok, _) = run.terminate(Duration::from_secs(30));
    assert!(ok, "clean exit; log:\n{}", run.log());
    assert_eq!(
        dead_lettered,
        Some((COUNT / REJECT_EVERY) as f64),
        "the metrics count the rejected messages"
    );
    assert_eq!(
        written,
        Some(good as f64),
        "the messages metric counts only what was written"
    );
    assert_eq!(ids.len() as u64, good, "the rest of each batch was written");
    assert!(ids
        .keys()
        .all(|id| !(*id as u64).is_multiple_of(REJECT_EVERY)));

    let expected = (1..=COUNT / REJECT_EVERY).map(|i| format!("{{\"id\":{}}}", i * REJECT_EVERY));
    let headers = assert_dead_letters(&run, "rejected", expected).await;
    // Id 7 is the seventh message of the topic: offset 6.
    assert_from_rec(&headers, "6", "sink");
    assert_eq!(
        headers["ld-dlq-reason"],
        "test sink rejects id 7, a multiple of 7"
    );
}

#[test]
fn without_tolerance_a_rejected_message_fails_the_sink_naming_it() {
    let mut run = LocalRun::new(&["test_sink"]);
    let out = run.path("ids.txt");
    run.instance(
        "gen",
        json!({"type": "source", "key": "test",
               "streams": [{"stream": "s", "topic": "numbers"}],
               "plugin_config": {"count": COUNT, "batch_size": 50, "interval_ms": 5}}),
    );
    run.instance("rec", rejecting_sink(&out, None));
    run.args(&["--max-restarts", "0"]);
    run.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !run.log().contains("the sink rejected") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = run.log();
    assert!(
        log.contains("the sink rejected the message at offset 6 of s/numbers partition 0: test sink rejects id 7"),
        "{log}"
    );
    assert!(log.contains("errors.tolerance is \"none\""), "{log}");
}
