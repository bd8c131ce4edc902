//! The testing kit tests itself: the harness drives sinks and sources as the host does
//! (panics become errors, offsets follow `flush`, rejected messages come back, a crash
//! resumes from the saved state), and the conformance suite passes a correct connector
//! and names the check a broken one fails.

use std::sync::{Arc, Mutex};

use ld_plugin_api::testing::conformance::{
    check_sink, check_source, Redelivery, SinkTarget, SourceTarget,
};
use ld_plugin_api::testing::{SinkHarness, SourceHarness, TestBatch, TestMessage};
use ld_plugin_api::{
    ErrorKind, InstanceContext, PluginError, Rejection, Sink, SinkBatch, Source, SourceBatch,
};
use serde_json::{json, Value};

/// Where the test sinks store: one store per test, named in the config.
static STORES: Mutex<Vec<Arc<Mutex<Vec<u64>>>>> = Mutex::new(Vec::new());

fn new_store() -> (usize, Arc<Mutex<Vec<u64>>>) {
    let mut stores = STORES.lock().unwrap();
    let store = Arc::new(Mutex::new(Vec::new()));
    stores.push(store.clone());
    (stores.len() - 1, store)
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MemoryConfig {
    store: usize,
    /// Hold batches until `flush` with `closing`.
    #[serde(default)]
    hold: bool,
    /// Answer Ok without storing (a broken sink).
    #[serde(default)]
    drop_everything: bool,
    /// "panic" or "unreachable".
    #[serde(default)]
    fail_open: Option<String>,
    /// Reject messages whose `n` is a multiple of this.
    #[serde(default)]
    reject_every: u64,
}

/// Stores each message's `n` in memory.
struct MemorySink {
    config: MemoryConfig,
    store: Arc<Mutex<Vec<u64>>>,
    held: Vec<u64>,
    rejected: Vec<Rejection>,
}

impl Sink for MemorySink {
    type Config = MemoryConfig;

    fn new(config: MemoryConfig, _: &InstanceContext) -> Result<Self, PluginError> {
        let store = STORES
            .lock()
            .unwrap()
            .get(config.store)
            .cloned()
            .ok_or_else(|| PluginError::invalid_config("plugin_config.store: no such store"))?;
        Ok(MemorySink {
            config,
            store,
            held: Vec::new(),
            rejected: Vec::new(),
        })
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        match self.config.fail_open.as_deref() {
            Some("panic") => panic!("asked to panic in open"),
            Some(_) => Err(PluginError::transient("connection refused")),
            None => Ok(()),
        }
    }

    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        self.rejected.clear();
        for m in batch.messages() {
            let n = m
                .json::<Value>()
                .ok()
                .and_then(|v| v["n"].as_u64())
                .ok_or_else(|| PluginError::fatal("no n"))?;
            if self.config.reject_every > 0 && n % self.config.reject_every == 0 {
                self.rejected.push(Rejection::new(m.offset(), "multiple"));
            } else if !self.config.drop_everything {
                self.held.push(n);
            }
        }
        if !self.config.hold {
            self.store.lock().unwrap().append(&mut self.held);
        }
        Ok(())
    }

    async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
        if !self.config.hold {
            return Ok(consumed);
        }
        if closing {
            self.store.lock().unwrap().append(&mut self.held);
            return Ok(consumed);
        }
        Ok(0)
    }

    fn rejected(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejected)
    }
}

struct MemoryTarget {
    store: usize,
    stored: Arc<Mutex<Vec<u64>>>,
    extra: Value,
}

impl MemoryTarget {
    fn new(extra: Value) -> Self {
        let (store, stored) = new_store();
        MemoryTarget {
            store,
            stored,
            extra,
        }
    }
}

impl SinkTarget for MemoryTarget {
    type Sink = MemorySink;
    fn config(&self) -> Value {
        let mut c = json!({"store": self.store});
        for (k, v) in self.extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }
    fn invalid_config(&self) -> Value {
        json!({"store": "first"})
    }
    fn unreachable_config(&self) -> Option<Value> {
        Some(json!({"store": self.store, "fail_open": "unreachable"}))
    }
    async fn stored(&self) -> Vec<u64> {
        self.stored.lock().unwrap().clone()
    }
    fn redelivery(&self) -> Redelivery {
        Redelivery::AtLeastOnce
    }
}

#[tokio::test]
async fn a_correct_sink_passes_and_a_holding_one_too() {
    let report = check_sink(&MemoryTarget::new(json!({}))).await;
    assert_eq!(report.passed.len(), 4, "{report}");
    let report = check_sink(&MemoryTarget::new(json!({"hold": true}))).await;
    assert_eq!(report.passed.len(), 4, "{report}");
}

#[tokio::test]
#[should_panic(
    expected = "conformance check `sink: what flush says is durable is stored` failed: message 1 is durable but not stored"
)]
async fn a_sink_that_answers_ok_without_storing_fails_the_suite() {
    check_sink(&MemoryTarget::new(json!({"drop_everything": true}))).await;
}

/// Promises exactly once but appends.
struct OverPromising(MemoryTarget);

impl SinkTarget for OverPromising {
    type Sink = MemorySink;
    fn config(&self) -> Value {
        self.0.config()
    }
    fn invalid_config(&self) -> Value {
        self.0.invalid_config()
    }
    fn unreachable_config(&self) -> Option<Value> {
        self.0.unreachable_config()
    }
    async fn stored(&self) -> Vec<u64> {
        self.0.stored().await
    }
    fn redelivery(&self) -> Redelivery {
        Redelivery::ExactlyOnce
    }
}

#[tokio::test]
#[should_panic(expected = "message 51 is stored 2 times (the target promises exactly once)")]
async fn a_sink_that_stores_a_redelivered_batch_twice_is_not_exactly_once() {
    check_sink(&OverPromising(MemoryTarget::new(json!({})))).await;
}

#[tokio::test]
async fn the_harness_turns_panics_into_errors_and_names_wrong_fields() {
    let (store, _) = new_store();
    let err = SinkHarness::new::<MemorySink>(json!({"store": store, "hold": "yes"})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().starts_with("plugin_config.hold:"), "{err}");

    let mut sink =
        SinkHarness::new::<MemorySink>(json!({"store": store, "fail_open": "panic"})).unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked);
    assert!(err.message().contains("asked to panic in open"), "{err}");
}

#[tokio::test]
async fn offsets_are_committed_only_once_flush_says_durable() {
    let (store, stored) = new_store();
    let mut sink = SinkHarness::new::<MemorySink>(json!({"store": store, "hold": true})).unwrap();
    sink.open().await.unwrap();
    sink.consume(&TestBatch::json([json!({"n": 1}), json!({"n": 2})]))
        .await
        .unwrap();
    assert_eq!(sink.committed_offset("test-stream", "test-topic", 0), None);
    assert_eq!((sink.consumed(), sink.durable()), (1, 0));
    sink.close().await.unwrap();
    assert_eq!(
        sink.committed_offset("test-stream", "test-topic", 0),
        Some(2)
    );
    assert_eq!(*stored.lock().unwrap(), vec![1, 2]);
}

#[tokio::test]
async fn rejected_messages_come_back_by_offset() {
    let (store, stored) = new_store();
    let mut sink =
        SinkHarness::new::<MemorySink>(json!({"store": store, "reject_every": 2})).unwrap();
    sink.open().await.unwrap();
    let batch = TestBatch::json((1..=4).map(|n| json!({"n": n}))).starting_at(10);
    let rejected = sink.consume(&batch).await.unwrap();
    assert_eq!(
        rejected,
        vec![
            Rejection::new(11, "multiple"),
            Rejection::new(13, "multiple")
        ]
    );
    assert_eq!(*stored.lock().unwrap(), vec![1, 3]);
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CounterConfig {
    per_batch: u64,
    /// Forget the state (a broken source): restarts from 1.
    #[serde(default)]
    ignore_state: bool,
    /// Return empty batches from this record on.
    #[serde(default)]
    stop_at: Option<u64>,
}

/// Produces records 1, 2, ... as `{"n": N}`, `per_batch` at a time.
struct Counter {
    next: u64,
    per_batch: u64,
    stop_at: Option<u64>,
}

impl Source for Counter {
    type Config = CounterConfig;
    type State = u64;

    fn new(c: CounterConfig, state: Option<u64>, _: &InstanceContext) -> Result<Self, PluginError> {
        if c.per_batch == 0 {
            return Err(PluginError::invalid_config(
                "plugin_config.per_batch: must be at least 1",
            ));
        }
        let state = if c.ignore_state { None } else { state };
        Ok(Counter {
            next: state.unwrap_or(1),
            per_batch: c.per_batch,
            stop_at: c.stop_at,
        })
    }

    async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
        let mut batch = SourceBatch::new();
        if self.stop_at.is_some_and(|stop| self.next >= stop) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            return Ok(batch);
        }
        for _ in 0..self.per_batch {
            batch.push_json(&json!({"n": self.next}))?;
            self.next += 1;
        }
        batch.set_state(&self.next)?;
        Ok(batch)
    }
}

struct CounterTarget {
    config: Value,
}

impl SourceTarget for CounterTarget {
    type Source = Counter;
    fn config(&self) -> Value {
        self.config.clone()
    }
    fn invalid_config(&self) -> Value {
        json!({"per_batch": 0})
    }
    fn unreachable_config(&self) -> Option<Value> {
        None
    }
    async fn produce(&self, _from: u64, _to: u64) {}
    fn number(&self, message: &TestMessage) -> u64 {
        message.json::<Value>().unwrap()["n"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn a_correct_source_passes() {
    let report = check_source(&CounterTarget {
        config: json!({"per_batch": 7}),
    })
    .await;
    assert_eq!(report.passed.len(), 3, "{report}");
    assert_eq!(report.skipped.len(), 1, "{report}");
}

#[tokio::test]
#[should_panic(expected = "after the crash, message 1 is record 1, expected record 101")]
async fn a_source_that_forgets_its_state_fails_the_suite() {
    check_source(&CounterTarget {
        config: json!({"per_batch": 10, "ignore_state": true}),
    })
    .await;
}

#[tokio::test]
async fn a_source_resumes_after_the_last_committed_batch() {
    let mut source = SourceHarness::new::<Counter>(json!({"per_batch": 3})).unwrap();
    source.open().await.unwrap();
    let first = source.poll_committed().await.unwrap();
    assert_eq!(first.seq, Some(1));
    assert_eq!(first.state_as::<u64>(), Some(4));
    let uncommitted = source.poll().await.unwrap();
    assert_eq!(
        uncommitted.messages[0].offset, 3,
        "offsets as a stream counts"
    );
    assert_eq!(
        source.saved_state::<u64>(),
        Some(4),
        "not saved before commit"
    );
    source.crash_and_restart().await.unwrap();
    let again = source.take(3).await.unwrap();
    assert_eq!(
        again[0].json::<Value>().unwrap()["n"],
        4,
        "the uncommitted batch comes again"
    );

    let source = SourceHarness::with_state::<Counter>(json!({"per_batch": 1}), &40).unwrap();
    assert_eq!(source.saved_state::<u64>(), Some(40));
}

#[tokio::test]
async fn take_gives_up_when_no_message_comes() {
    let mut source = SourceHarness::new::<Counter>(json!({"per_batch": 5, "stop_at": 21})).unwrap();
    source.set_poll_timeout(std::time::Duration::from_millis(300));
    source.open().await.unwrap();
    let err = source.take(30).await.unwrap_err();
    assert!(err.message().contains("got 20 of 30"), "{err}");
}
