//! [`SourceHarness`]: a source driven in process as the host drives it.

use std::time::Duration;

use abi_stable::std_types::{RResult, RSlice};
use serde::{de::DeserializeOwned, Serialize};

use super::TestMessage;
use crate::{
    ffi::{SourceBox, SourceInit},
    PluginError, Source,
};

type NewSource = fn(SourceInit<'_>) -> RResult<SourceBox, PluginError>;

/// What one poll of a source under test produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledBatch {
    /// The messages, with the offsets a stream would give them (the harness counts
    /// every message polled since it was built). An id or timestamp of `0` is as the
    /// source left it: the host assigns those.
    pub messages: Vec<TestMessage>,
    /// The state the batch carried, as the source serialized it (JSON).
    pub state: Option<Vec<u8>>,
    /// The batch's number, as the host numbers batches since `open` (`None`: an empty
    /// batch without state, which the host skips).
    pub seq: Option<u64>,
}

impl PolledBatch {
    /// The state the batch carried, parsed.
    pub fn state_as<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.state.as_ref()?).ok()
    }
}

/// Drives a [`Source`] in a plain `#[tokio::test]`, in process, through the same
/// adapter and panic guard the host uses. `poll` polls once; `commit` does what the host
/// does once polled batches are durably in the stream (saves the latest state they
/// carried, then calls `committed` for each in order); `crash_and_restart` drops the
/// instance without `close` and builds a new one from the saved state, as after a
/// `kill -9`.
///
/// ```
/// use ld_plugin_api::testing::SourceHarness;
/// use ld_plugin_api::{InstanceContext, PluginError, Source, SourceBatch};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct CounterConfig { per_batch: u64 }
///
/// struct Counter { next: u64, per_batch: u64 }
///
/// impl Source for Counter {
///     type Config = CounterConfig;
///     type State = u64;
///     fn new(c: CounterConfig, state: Option<u64>, _: &InstanceContext) -> Result<Self, PluginError> {
///         Ok(Counter { next: state.unwrap_or(0), per_batch: c.per_batch })
///     }
///     async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
///         let mut batch = SourceBatch::new();
///         for _ in 0..self.per_batch {
///             batch.push_json(&self.next)?;
///             self.next += 1;
///         }
///         batch.set_state(&self.next)?;
///         Ok(batch)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut source = SourceHarness::new::<Counter>(serde_json::json!({"per_batch": 2})).unwrap();
/// source.open().await.unwrap();
/// let first = source.poll_committed().await.unwrap();
/// assert_eq!(first.messages[1].json::<u64>().unwrap(), 1);
/// assert_eq!(source.saved_state::<u64>(), Some(2));
///
/// source.poll().await.unwrap(); // polled, never committed
/// source.crash_and_restart().await.unwrap();
/// let again = source.poll_committed().await.unwrap();
/// assert_eq!(again.messages[0].json::<u64>().unwrap(), 2, "resumes from the saved state");
/// # }
/// ```
pub struct SourceHarness {
    make: NewSource,
    instance_key: String,
    config: String,
    source: SourceBox,
    /// Batches numbered since `open`.
    seq: u64,
    /// Polled batches not yet committed: (number, state).
    uncommitted: Vec<(u64, Option<Vec<u8>>)>,
    saved_state: Option<Vec<u8>>,
    next_offset: u64,
    poll_timeout: Duration,
}

impl std::fmt::Debug for SourceHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHarness")
            .field("instance_key", &self.instance_key)
            .field("seq", &self.seq)
            .field(
                "saved_state",
                &self.saved_state.as_deref().map(String::from_utf8_lossy),
            )
            .finish_non_exhaustive()
    }
}

impl SourceHarness {
    /// Builds a source of type `S` from its `plugin_config`, without saved state, with
    /// instance key `test-source`.
    pub fn new<S: Source>(config: serde_json::Value) -> Result<Self, PluginError> {
        Self::build::<S>("test-source", config, None)
    }

    /// Builds a source of type `S` as the host does after a restart: with `state` as
    /// its last saved state.
    pub fn with_state<S: Source>(
        config: serde_json::Value,
        state: &S::State,
    ) -> Result<Self, PluginError> {
        let state = serde_json::to_vec(state)
            .map_err(|e| PluginError::fatal(format!("test state: {e}")))?;
        Self::build::<S>("test-source", config, Some(state))
    }

    fn build<S: Source>(
        instance_key: &str,
        config: serde_json::Value,
        state: Option<Vec<u8>>,
    ) -> Result<Self, PluginError> {
        let make: NewSource = crate::export::new_source::<S>;
        let config = config.to_string();
        let source = construct(make, instance_key, &config, state.as_deref())?;
        Ok(SourceHarness {
            make,
            instance_key: instance_key.to_string(),
            config,
            source,
            seq: 0,
            uncommitted: Vec::new(),
            saved_state: state,
            next_offset: 0,
            poll_timeout: Duration::from_secs(10),
        })
    }

    /// How long [`Self::take`] waits for one poll before giving up (default 10 s).
    pub fn set_poll_timeout(&mut self, timeout: Duration) {
        self.poll_timeout = timeout;
    }

    /// Calls `open`.
    pub async fn open(&mut self) -> Result<(), PluginError> {
        self.seq = 0;
        self.source.open().await.into_result()
    }

    /// Polls once. The batch is not committed: its state is not saved yet.
    pub async fn poll(&mut self) -> Result<PolledBatch, PluginError> {
        let mut raw = self.source.poll().await.into_result()?;
        let state = raw.take_state();
        let seq = if raw.is_empty() && state.is_none() {
            None
        } else {
            self.seq += 1;
            self.uncommitted.push((self.seq, state.clone()));
            Some(self.seq)
        };
        let messages = raw
            .iter()
            .map(|m| {
                let offset = self.next_offset;
                self.next_offset += 1;
                TestMessage {
                    id: m.id(),
                    offset,
                    timestamp_micros: m.timestamp_micros(),
                    schema: m.schema(),
                    headers: m
                        .headers()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect(),
                    payload: m.payload().to_vec(),
                }
            })
            .collect();
        Ok(PolledBatch {
            messages,
            state,
            seq,
        })
    }

    /// Does what the host does once the polled batches are durably in the stream:
    /// saves the latest state they carried, then calls `committed` for each, in order.
    pub async fn commit(&mut self) -> Result<(), PluginError> {
        for (seq, state) in std::mem::take(&mut self.uncommitted) {
            if let Some(state) = state {
                self.saved_state = Some(state);
            }
            self.source.committed(seq).await.into_result()?;
        }
        Ok(())
    }

    /// Polls once and commits.
    pub async fn poll_committed(&mut self) -> Result<PolledBatch, PluginError> {
        let batch = self.poll().await?;
        self.commit().await?;
        Ok(batch)
    }

    /// Polls and commits until at least `n` messages came; fails when no message came
    /// for the poll timeout (see [`Self::set_poll_timeout`]), whether one poll hangs or
    /// the source keeps returning empty batches.
    pub async fn take(&mut self, n: usize) -> Result<Vec<TestMessage>, PluginError> {
        let timeout = self.poll_timeout;
        let stalled = |got: usize| {
            PluginError::transient(format!("no message for {timeout:?}: got {got} of {n}"))
        };
        let mut out = Vec::new();
        let mut last_progress = tokio::time::Instant::now();
        while out.len() < n {
            let left = timeout.saturating_sub(last_progress.elapsed());
            let batch = tokio::time::timeout(left, self.poll_committed())
                .await
                .map_err(|_| stalled(out.len()))??;
            if batch.messages.is_empty() {
                if last_progress.elapsed() >= timeout {
                    return Err(stalled(out.len()));
                }
                continue;
            }
            last_progress = tokio::time::Instant::now();
            out.extend(batch.messages);
        }
        Ok(out)
    }

    /// The last saved state, as the source serialized it.
    pub fn saved_state_bytes(&self) -> Option<&[u8]> {
        self.saved_state.as_deref()
    }

    /// The last saved state, parsed.
    pub fn saved_state<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.saved_state.as_ref()?).ok()
    }

    /// Replaces the saved state (what an operator's offsets reset does), for the next
    /// restart.
    pub fn set_saved_state<T: Serialize>(&mut self, state: Option<&T>) {
        self.saved_state = state.and_then(|s| serde_json::to_vec(s).ok());
    }

    /// Calls `close`.
    pub async fn close(&mut self) -> Result<(), PluginError> {
        self.source.close().await.into_result()
    }

    /// Simulates a crash of the daemon: the instance is dropped without `close`, what
    /// was polled but not committed is forgotten, and a new instance is built from the
    /// saved state and opened.
    pub async fn crash_and_restart(&mut self) -> Result<(), PluginError> {
        let fresh = construct(
            self.make,
            &self.instance_key,
            &self.config,
            self.saved_state.as_deref(),
        )?;
        drop(std::mem::replace(&mut self.source, fresh));
        self.uncommitted.clear();
        self.open().await
    }

    /// A clean restart: `close`, then a new instance from the saved state, opened.
    pub async fn restart(&mut self) -> Result<(), PluginError> {
        self.close().await?;
        self.crash_and_restart().await
    }
}

fn construct(
    make: NewSource,
    instance_key: &str,
    config: &str,
    state: Option<&[u8]>,
) -> Result<SourceBox, PluginError> {
    make(SourceInit {
        instance_key: instance_key.into(),
        config: config.into(),
        state: state.map(RSlice::from_slice).into(),
    })
    .into_result()
}
