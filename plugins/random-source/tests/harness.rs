//! The random source driven in process with `ld_plugin_api::testing`: the conformance
//! suite (a generator: nothing to produce, the record number is in the message), and its
//! own promises: config errors name the field, a resumed state continues the sequence,
//! the same seed gives the same messages.

use std::time::{Duration, Instant};

use ld_plugin_api::testing::conformance::{check_source, SourceTarget};
use ld_plugin_api::testing::{SourceHarness, TestMessage};
use ld_plugin_api::{ErrorKind, Schema};
use ld_random_source::{payload_of, RandomSource, RandomState};
use serde_json::{json, Value};

/// The record number of message `n` (from 0) is `n + 1`, its message id.
fn number(message: &TestMessage) -> u64 {
    let payload: Value = message.json().expect("a JSON payload");
    let n = payload["id"].as_u64().expect("an id field") + 1;
    assert_eq!(message.id, u128::from(n), "message id = payload id + 1");
    n
}

/// The random source, as fast as possible, with the given pacing fields.
struct Generator(Value);

impl SourceTarget for Generator {
    type Source = RandomSource;
    fn config(&self) -> Value {
        self.0.clone()
    }
    fn invalid_config(&self) -> Value {
        json!({"batch_size": 0})
    }
    fn unreachable_config(&self) -> Option<Value> {
        None
    }
    async fn produce(&self, _from: u64, _to: u64) {}
    fn number(&self, message: &TestMessage) -> u64 {
        number(message)
    }
}

#[tokio::test]
async fn conforms_with_rate_pacing() {
    let report = check_source(&Generator(json!({"seed": 42, "batch_size": 7}))).await;
    assert_eq!(report.passed.len(), 3, "{report}");
    assert_eq!(report.skipped.len(), 1, "no external system: {report}");
}

#[tokio::test]
async fn conforms_with_iggy_interval_pacing() {
    let config = json!({"seed": 3, "interval": "1ms", "messages_range": [1, 20]});
    let report = check_source(&Generator(config)).await;
    assert_eq!(report.passed.len(), 3, "{report}");
}

fn config_error(config: Value) -> ld_plugin_api::PluginError {
    SourceHarness::new::<RandomSource>(config.clone())
        .map(|_| ())
        .expect_err(&format!("{config} must be refused"))
}

#[test]
fn config_errors_are_invalid_config_naming_the_field() {
    let cases = [
        (json!({"seed": "x"}), "plugin_config.seed: "),
        (json!({"rate": -1}), "plugin_config.rate: "),
        (json!({"payload_size": 1.5}), "plugin_config.payload_size: "),
        (
            json!({"messages_range": [1]}),
            "plugin_config.messages_range",
        ),
        (
            json!({"batch_size": 0}),
            "plugin_config.batch_size: must be at least 1",
        ),
        (
            json!({"interval": "soon"}),
            "plugin_config.interval: `soon` is not a duration",
        ),
        (
            json!({"interval": "1s", "rate": 5}),
            "plugin_config.rate: cannot be combined",
        ),
        (
            json!({"messages_range": [5, 1]}),
            "plugin_config.messages_range: [5, 1]",
        ),
    ];
    for (config, expected) in cases {
        let err = config_error(config.clone());
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{config}: {err}");
        assert!(err.message().starts_with(expected), "{config}: {err}");
    }
    let err = config_error(json!({"sead": 1}));
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("unknown field `sead`"), "{err}");
}

#[tokio::test]
async fn messages_are_json_of_the_payload_size_with_ids_from_one() {
    let mut source =
        SourceHarness::new::<RandomSource>(json!({"seed": 1, "batch_size": 4, "payload_size": 64}))
            .unwrap();
    source.open().await.unwrap();
    let batch = source.poll_committed().await.unwrap();
    assert_eq!(batch.messages.len(), 4, "batch_size is the most per batch");
    assert_eq!(batch.state_as::<Value>(), Some(json!({"next": 4})));
    for (i, m) in batch.messages.iter().enumerate() {
        assert_eq!(m.schema, Schema::Json);
        assert_eq!(m.payload.len(), 64);
        assert_eq!(number(m), i as u64 + 1);
    }
    source.close().await.unwrap();
}

#[tokio::test]
async fn a_resumed_state_continues_the_sequence() {
    let config = json!({"seed": 9, "batch_size": 10});
    let mut fresh = SourceHarness::new::<RandomSource>(config.clone()).unwrap();
    fresh.open().await.unwrap();
    let from_start = fresh.take(60).await.unwrap();
    assert_eq!(
        fresh.saved_state::<Value>(),
        Some(json!({"next": 60})),
        "the state is the next index"
    );

    let mut resumed =
        SourceHarness::with_state::<RandomSource>(config, &RandomState { next: 40 }).unwrap();
    resumed.open().await.unwrap();
    let after = resumed.take(20).await.unwrap();
    assert_eq!(after.len(), 20);
    assert_eq!(number(&after[0]), 41, "index 40 is record 41");
    for (resumed, original) in after.iter().zip(&from_start[40..]) {
        assert_eq!(
            (resumed.id, &resumed.payload),
            (original.id, &original.payload),
            "the same message as the uninterrupted source's"
        );
    }
    assert_eq!(resumed.saved_state::<Value>(), Some(json!({"next": 60})));
}

#[tokio::test]
async fn the_seed_alone_decides_the_messages() {
    async fn first(config: Value, n: usize) -> Vec<TestMessage> {
        let mut source = SourceHarness::new::<RandomSource>(config).unwrap();
        source.open().await.unwrap();
        let messages = source.take(n).await.unwrap();
        source.close().await.unwrap();
        messages
    }
    let a = first(json!({"seed": 5, "batch_size": 3}), 30).await;
    // Another batch size cuts the same messages differently.
    let b = first(json!({"seed": 5, "batch_size": 13}), 30).await;
    let other = first(json!({"seed": 6, "batch_size": 3}), 30).await;
    let payloads = |m: &[TestMessage]| {
        m[..30]
            .iter()
            .map(|m| m.payload.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(payloads(&a), payloads(&b), "same seed, same messages");
    let mut expected = String::new();
    for (n, m) in a.iter().enumerate().take(30) {
        payload_of(5, n as u64, 100, &mut expected);
        assert_eq!(m.payload_str(), Some(expected.as_str()));
    }
    let differing = a
        .iter()
        .zip(&other)
        .filter(|(a, o)| a.payload != o.payload)
        .count();
    assert_eq!(differing, 30, "another seed changes every message");
    assert!(a.iter().zip(&other).all(|(a, o)| a.id == o.id));
}

#[tokio::test]
async fn count_ends_the_stream_and_an_exhausted_source_returns_nothing() {
    let mut source =
        SourceHarness::new::<RandomSource>(json!({"count": 25, "batch_size": 10})).unwrap();
    source.open().await.unwrap();
    let mut sizes = Vec::new();
    for _ in 0..3 {
        sizes.push(source.poll_committed().await.unwrap().messages.len());
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(source.saved_state::<Value>(), Some(json!({"next": 25})));
    // Exhausted: after a wait, an empty batch without state (which the host skips).
    let started = Instant::now();
    let empty = source.poll().await.unwrap();
    assert!(empty.messages.is_empty() && empty.state.is_none());
    assert_eq!(empty.seq, None);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Restarted from the saved state, it stays exhausted.
    source.crash_and_restart().await.unwrap();
    assert!(source.poll().await.unwrap().messages.is_empty());
}

#[tokio::test]
async fn rate_paces_the_messages() {
    let mut source =
        SourceHarness::new::<RandomSource>(json!({"rate": 200, "batch_size": 50})).unwrap();
    source.open().await.unwrap();
    let started = Instant::now();
    let messages = source.take(40).await.unwrap();
    assert!(messages.len() >= 40);
    // 40 messages at 200 a second: the 40th is due 195 ms after the first poll.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{} messages in {:?}",
        messages.len(),
        started.elapsed()
    );
}
