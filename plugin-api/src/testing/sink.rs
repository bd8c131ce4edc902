//! [`SinkHarness`]: a sink driven in process as the host drives it.

use std::collections::BTreeMap;

use abi_stable::std_types::RResult;

use super::TestBatch;
use crate::{
    ffi::{SinkBox, SinkInit},
    PluginError, Rejection, Sink,
};

type NewSink = fn(SinkInit<'_>) -> RResult<SinkBox, PluginError>;

/// Drives a [`Sink`] in a plain `#[tokio::test]`, in process, through the same adapter
/// and panic guard the host uses: the config is parsed as the host's is (a wrong field
/// is an `invalid_config` error naming it), a panic comes back as an error of kind
/// `panicked`, and after each `consume` the harness asks for rejected messages and calls
/// `flush` as the host does, committing offsets only up to the batch `flush` says is
/// durable.
///
/// ```
/// use ld_plugin_api::testing::{SinkHarness, TestBatch};
/// use ld_plugin_api::{InstanceContext, PluginError, Sink, SinkBatch};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct CountConfig { limit: usize }
///
/// struct CountSink { limit: usize, seen: usize }
///
/// impl Sink for CountSink {
///     type Config = CountConfig;
///     fn new(c: CountConfig, _: &InstanceContext) -> Result<Self, PluginError> {
///         Ok(CountSink { limit: c.limit, seen: 0 })
///     }
///     async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
///         if self.seen + batch.len() > self.limit {
///             return Err(PluginError::fatal("over the limit"));
///         }
///         self.seen += batch.len();
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut sink = SinkHarness::new::<CountSink>(serde_json::json!({"limit": 3})).unwrap();
/// sink.open().await.unwrap();
/// let batch = TestBatch::json([1, 2]);
/// sink.consume(&batch).await.unwrap();
/// assert_eq!(sink.committed_offset("test-stream", "test-topic", 0), Some(2));
///
/// let err = sink.consume(&TestBatch::json([3, 4]).starting_at(2)).await.unwrap_err();
/// assert_eq!(err.kind(), ld_plugin_api::ErrorKind::Fatal);
/// sink.close().await.unwrap();
///
/// let err = SinkHarness::new::<CountSink>(serde_json::json!({"limit": "x"})).unwrap_err();
/// assert!(err.message().starts_with("plugin_config.limit"), "{err}");
/// # }
/// ```
pub struct SinkHarness {
    make: NewSink,
    instance_key: String,
    config: String,
    sink: SinkBox,
    /// Batches `consume` accepted since `open`, numbered from 1 as the host does.
    consumed: u64,
    durable: u64,
    /// Where each consumed, not yet committed batch ends: (number, partition, next offset).
    due: Vec<(u64, (String, String, u32), u64)>,
    committed: BTreeMap<(String, String, u32), u64>,
}

impl std::fmt::Debug for SinkHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkHarness")
            .field("instance_key", &self.instance_key)
            .field("consumed", &self.consumed)
            .field("durable", &self.durable)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl SinkHarness {
    /// Builds a sink of type `S` from its `plugin_config`, with instance key
    /// `test-sink`.
    pub fn new<S: Sink>(config: serde_json::Value) -> Result<Self, PluginError> {
        Self::with_key::<S>("test-sink", config)
    }

    /// Builds a sink of type `S` with the given instance key.
    pub fn with_key<S: Sink>(
        instance_key: &str,
        config: serde_json::Value,
    ) -> Result<Self, PluginError> {
        let make: NewSink = crate::export::new_sink::<S>;
        let config = config.to_string();
        let sink = build(make, instance_key, &config)?;
        Ok(SinkHarness {
            make,
            instance_key: instance_key.to_string(),
            config,
            sink,
            consumed: 0,
            durable: 0,
            due: Vec::new(),
            committed: BTreeMap::new(),
        })
    }

    /// Calls `open`.
    pub async fn open(&mut self) -> Result<(), PluginError> {
        self.sink.open().await.into_result()
    }

    /// Hands `batch` to the sink as the host does: `consume`; if it returned `Ok`,
    /// `rejected` and `flush`, and the offsets of the batches `flush` says are durable
    /// are committed. Returns the messages the sink rejected.
    pub async fn consume(&mut self, batch: &TestBatch) -> Result<Vec<Rejection>, PluginError> {
        let headers = batch.header_views();
        let messages = batch.message_views(&headers);
        self.sink
            .consume(batch.view(&messages))
            .await
            .into_result()?;
        self.consumed += 1;
        if let Some(next) = batch.next_offset() {
            let partition = (batch.stream.clone(), batch.topic.clone(), batch.partition);
            self.due.push((self.consumed, partition, next));
        }
        let rejected = Vec::from(self.sink.rejected().into_result()?);
        self.flush(false).await?;
        Ok(rejected)
    }

    /// Asks the sink which consumed batches are durable (`flush(consumed, closing)`)
    /// and commits their offsets; returns the number of the last durable batch. The
    /// host calls this after each `consume`, about once a second while batches are
    /// held, and with `closing` before `close`.
    pub async fn flush(&mut self, closing: bool) -> Result<u64, PluginError> {
        let durable = self
            .sink
            .flush(self.consumed, closing)
            .await
            .into_result()?;
        self.durable = durable.clamp(self.durable, self.consumed);
        let durable = self.durable;
        for (_, partition, next) in self.due.iter().filter(|(n, _, _)| *n <= durable) {
            self.committed.insert(partition.clone(), *next);
        }
        self.due.retain(|(n, _, _)| *n > durable);
        Ok(self.durable)
    }

    /// Stops the sink as the host does: a closing `flush`, then `close`.
    pub async fn close(&mut self) -> Result<(), PluginError> {
        self.flush(true).await?;
        self.sink.close().await.into_result()
    }

    /// Simulates a crash of the daemon: the instance is dropped without `flush` or
    /// `close`, a new one is built from the same config and opened. Offsets committed
    /// so far stay; a test then delivers again what the host would (the batches after
    /// the last committed offset, see [`Self::committed_offset`]).
    pub async fn crash_and_restart(&mut self) -> Result<(), PluginError> {
        let fresh = build(self.make, &self.instance_key, &self.config)?;
        drop(std::mem::replace(&mut self.sink, fresh));
        self.consumed = 0;
        self.durable = 0;
        self.due.clear();
        self.open().await
    }

    /// Batches `consume` accepted since the last `open`.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The last batch the sink said is durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The offset the host would have committed for a partition: the one after the
    /// last durable message (`None`: nothing committed).
    pub fn committed_offset(&self, stream: &str, topic: &str, partition: u32) -> Option<u64> {
        self.committed
            .get(&(stream.to_string(), topic.to_string(), partition))
            .copied()
    }
}

fn build(make: NewSink, instance_key: &str, config: &str) -> Result<SinkBox, PluginError> {
    make(SinkInit {
        instance_key: instance_key.into(),
        config: config.into(),
    })
    .into_result()
}
