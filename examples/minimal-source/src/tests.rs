//! The minimal source driven as the host drives it, in a plain `#[tokio::test]`, and
//! the conformance suite every source must pass.

use ld_plugin_api::testing::conformance::{check_source, SourceTarget};
use ld_plugin_api::testing::{SourceHarness, TestMessage};
use ld_plugin_api::{ErrorKind, Schema};
use serde_json::{json, Value};

use super::{MinimalSource, Tick};

/// Tick `N` (from 0) is record `N + 1`.
fn number(message: &TestMessage) -> u64 {
    let text = message.payload_str().expect("a text payload");
    let tick: u64 = text
        .strip_prefix("tick ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a tick: {text}"));
    tick + 1
}

/// A generator: its ticks are numbered by themselves.
struct Ticks;

impl SourceTarget for Ticks {
    type Source = MinimalSource;
    fn config(&self) -> Value {
        // One batch a second: large batches keep the suite to a few seconds.
        json!({"per_batch": 100})
    }
    fn invalid_config(&self) -> Value {
        json!({"per_batch": -1})
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
async fn conforms() {
    let report = check_source(&Ticks).await;
    assert_eq!(report.passed.len(), 3, "{report}");
}

#[test]
fn a_wrong_config_is_refused_naming_the_field() {
    let err = SourceHarness::new::<MinimalSource>(json!({"per_batch": "ten"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().starts_with("plugin_config.per_batch: "),
        "{err}"
    );
    let err = SourceHarness::new::<MinimalSource>(json!({"per_batch": 0})).unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::InvalidConfig,
            "plugin_config.per_batch: must be at least 1"
        )
    );
    let err = SourceHarness::new::<MinimalSource>(json!({"batch": 1})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("unknown field `batch`"), "{err}");
}

#[tokio::test]
async fn ticks_are_text_and_resume_from_the_saved_tick() {
    // Default: ten ticks a batch, from 0.
    let mut source = SourceHarness::new::<MinimalSource>(json!({})).unwrap();
    source.open().await.unwrap();
    let batch = source.poll_committed().await.unwrap();
    let texts: Vec<_> = batch.messages.iter().map(|m| m.payload_str()).collect();
    let expected: Vec<String> = (0..10).map(|n| format!("tick {n}")).collect();
    assert_eq!(
        texts,
        expected
            .iter()
            .map(|t| Some(t.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(batch.messages.iter().all(|m| m.schema == Schema::Text));
    assert_eq!(source.saved_state::<Value>(), Some(json!({"next": 10})));
    source.close().await.unwrap();

    // After a restart the host hands back the saved tick.
    let mut resumed =
        SourceHarness::with_state::<MinimalSource>(json!({"per_batch": 3}), &Tick { next: 42 })
            .unwrap();
    resumed.open().await.unwrap();
    let batch = resumed.poll_committed().await.unwrap();
    let numbers: Vec<u64> = batch.messages.iter().map(number).collect();
    assert_eq!(numbers, [43, 44, 45], "ticks 42, 43, 44");
    assert_eq!(resumed.saved_state::<Value>(), Some(json!({"next": 45})));
}
