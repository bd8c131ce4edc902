//! The minimal sink driven as the host drives it, in a plain `#[tokio::test]`.
//!
//! It stores nothing (it only counts bytes), so the conformance suite runs without its
//! storage checks (`can_read_back` is false); the other tests check what can be seen
//! from outside: config errors, accepted batches committed, the size limit.

use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
use ld_plugin_api::testing::{SinkHarness, TestBatch};
use ld_plugin_api::ErrorKind;
use serde_json::json;

use super::MinimalSink;

/// Nothing to read back: only the config and lifecycle checks run.
struct Counts;

impl SinkTarget for Counts {
    type Sink = MinimalSink;
    fn config(&self) -> serde_json::Value {
        json!({})
    }
    fn invalid_config(&self) -> serde_json::Value {
        json!({"max_batch_bytes": "1kB"})
    }
    fn unreachable_config(&self) -> Option<serde_json::Value> {
        None
    }
    async fn stored(&self) -> Vec<u64> {
        Vec::new()
    }
    fn redelivery(&self) -> Redelivery {
        Redelivery::AtLeastOnce
    }
    fn can_read_back(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn conforms_as_far_as_it_can_be_read() {
    let report = check_sink(&Counts).await;
    assert_eq!(report.passed.len(), 1, "{report}");
    assert_eq!(report.skipped.len(), 3, "{report}");
}

#[test]
fn a_wrong_config_is_refused_naming_the_field() {
    let err = SinkHarness::new::<MinimalSink>(json!({"max_batch_bytes": "1kB"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().starts_with("plugin_config.max_batch_bytes: "),
        "{err}"
    );
    let err = SinkHarness::new::<MinimalSink>(json!({"max_bytes": 10})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("unknown field `max_bytes`"), "{err}");
    // No field is required.
    SinkHarness::new::<MinimalSink>(json!({})).unwrap();
}

#[tokio::test]
async fn each_accepted_batch_is_committed() {
    let mut sink = SinkHarness::new::<MinimalSink>(json!({})).unwrap();
    sink.open().await.unwrap();
    let batch = TestBatch::text(["a", "bb", "ccc"]);
    assert_eq!(sink.consume(&batch).await.unwrap(), [], "nothing rejected");
    assert_eq!(
        sink.committed_offset("test-stream", "test-topic", 0),
        Some(3)
    );
    let next = TestBatch::bytes([vec![0u8; 4096]]).starting_at(3);
    sink.consume(&next).await.unwrap();
    assert_eq!(
        sink.committed_offset("test-stream", "test-topic", 0),
        Some(4)
    );
    assert_eq!((sink.consumed(), sink.durable()), (2, 2));
    sink.close().await.unwrap();
}

#[tokio::test]
async fn a_batch_over_max_batch_bytes_is_a_fatal_error_and_not_committed() {
    let mut sink = SinkHarness::new::<MinimalSink>(json!({"max_batch_bytes": 5})).unwrap();
    sink.open().await.unwrap();
    // 5 bytes: at the limit, accepted.
    sink.consume(&TestBatch::text(["ab", "cde"])).await.unwrap();
    let over = TestBatch::text(["abc", "def"]).starting_at(2);
    let err = sink.consume(&over).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal);
    assert_eq!(
        err.message(),
        "batch of 6 bytes is over max_batch_bytes (5)"
    );
    assert_eq!(
        sink.committed_offset("test-stream", "test-topic", 0),
        Some(2),
        "the refused batch is not committed"
    );
    assert_eq!(sink.consumed(), 1);
    sink.close().await.unwrap();
}
