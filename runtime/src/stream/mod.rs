//! The stream side of the data plane: one trait, two backends.
//!
//! - `embedded` (default): a durable local log on disk (`sled`), so one machine runs
//!   whole pipelines with no other server;
//! - `iggy`: a real Apache Iggy server through the official client.
//!
//! A source task appends through a [`Producer`]; a sink task reads through a
//! [`Consumer`] and commits a partition's offset only after its plugin wrote the batch
//! (at-least-once). Both are obtained from a [`StreamBackend`].

use std::time::Duration;

use async_trait::async_trait;

mod batch;
mod codec;
pub mod embedded;
#[cfg(feature = "iggy")]
pub mod iggy;

pub use batch::{Entry, HeaderEntry, MessageBatch, MessageRef};

/// A stream/topic pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicRef {
    /// Stream name.
    pub stream: String,
    /// Topic name.
    pub topic: String,
}

impl TopicRef {
    /// A topic of a stream.
    pub fn new(stream: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            topic: topic.into(),
        }
    }
}

impl std::fmt::Display for TopicRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream, self.topic)
    }
}

/// Errors of the stream side.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The stream or topic does not exist and may not be created.
    #[error("topic {0} does not exist")]
    NoSuchTopic(TopicRef),
    /// The backend cannot be reached or answered with a passing failure: retry.
    #[error("stream backend unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read (corruption, incompatible format).
    #[error("stream data corrupt: {0}")]
    Corrupt(String),
    /// Any other backend failure.
    #[error("stream backend error: {0}")]
    Backend(String),
}

impl StreamError {
    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StreamError::Unavailable(_))
    }
}

/// Where appended messages landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Partition written to.
    pub partition: u32,
    /// Offset of the first message.
    pub first_offset: u64,
    /// Offset of the last message.
    pub last_offset: u64,
}

/// Messages read by a [`Consumer`], all from one partition.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// The partition they come from.
    pub partition: u32,
    /// The messages, with their offsets.
    pub batch: MessageBatch,
}

/// A stream backend: hands out producers and consumers.
#[async_trait]
pub trait StreamBackend: Send + Sync + 'static {
    /// `embedded` or `iggy`.
    fn name(&self) -> &'static str;

    /// A producer appending to `topic`; the stream and topic are created on first use
    /// where the backend allows it.
    async fn producer(&self, topic: &TopicRef) -> Result<Box<dyn Producer>, StreamError>;

    /// A consumer of `topic` in consumer group `group`. It starts reading at the
    /// group's committed offsets (or the beginning of the topic when nothing was
    /// committed yet).
    async fn consumer(
        &self,
        topic: &TopicRef,
        group: &str,
    ) -> Result<Box<dyn Consumer>, StreamError>;
}

/// Appends batches to one topic.
#[async_trait]
pub trait Producer: Send {
    /// Appends the batch (its offsets are ignored: the backend assigns them). When this
    /// returns `Ok`, the messages are as durable as the backend's durability setting
    /// promises.
    async fn append(&mut self, batch: &MessageBatch) -> Result<Appended, StreamError>;

    /// Appends the batch and, where the backend can make both one atomic write, stores
    /// the source checkpoint `(instance key, state)` with it; returns whether it did.
    /// When it did not, the caller saves the checkpoint after the append.
    async fn append_checkpointed(
        &mut self,
        batch: &MessageBatch,
        checkpoint: Option<(&str, &[u8])>,
    ) -> Result<(Appended, bool), StreamError> {
        let _ = checkpoint;
        Ok((self.append(batch).await?, false))
    }
}

/// Reads one topic for one consumer group.
///
/// A consumer keeps its own read position, ahead of the committed one, so a task can
/// read batch N+1 while its plugin still writes batch N. After a restart a new consumer
/// starts from the committed offsets again: uncommitted messages are delivered again.
#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` messages after the read position, from one partition. When none is
    /// there, waits at most `wait` for some to arrive (returning as soon as they do) and
    /// returns an empty batch on timeout.
    async fn poll(&mut self, max: u32, wait: Duration) -> Result<Polled, StreamError>;

    /// Records that the group processed every message of `partition` before
    /// `next_offset`. Durable when this returns `Ok`.
    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), StreamError>;
}
