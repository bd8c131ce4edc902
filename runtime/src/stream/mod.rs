//! The stream side of the data plane: one trait, backends as components.
//!
//! - `embedded` (default): a durable local log on disk (`sled`), so one machine runs
//!   whole pipelines with no other server;
//! - `iggy`: a real Apache Iggy server through the official client (feature `iggy`).
//!
//! A source task appends through a [`Producer`]; a sink task reads through a
//! [`Consumer`] and commits a partition's offset only after its plugin wrote the batch
//! (at-least-once). Both are obtained from a [`StreamBackend`].
//!
//! Each backend is a component: it owns its settings (a variant of [`StreamSettings`]),
//! builds itself in [`open`], and declares in [`Capabilities`] what the engine and the
//! tasks may rely on. Every backend passes the same conformance suite (`conformance`).
//! Adding one is a module here, a variant of [`StreamSettings`] and an arm of [`open`].

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::future::BoxFuture;
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

mod batch;
mod codec;
#[doc(hidden)]
pub mod conformance;
pub mod embedded;
#[cfg(feature = "iggy")]
pub mod iggy;
pub mod iggy_settings;
mod settings;

pub use batch::{Entry, HeaderEntry, MessageBatch, MessageRef};
pub use settings::{SettingsError, StreamSettings};

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
    /// The settings name a backend this build does not contain.
    #[error(
        "stream.backend: this build has no {backend} backend (build with --features {feature})"
    )]
    NotBuilt {
        /// The backend's name in the settings.
        backend: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
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
    /// The partition's end as the backend saw it at this poll (the offset the next
    /// appended message gets), when it knows it: what a reader's lag is counted against.
    pub end_offset: Option<u64>,
}

/// What the engine and the tasks may rely on from a backend, declared by the backend
/// (and checked against its behaviour by the conformance suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Producer::append_checkpointed`] stores a source checkpoint in the node's state
    /// database (tree [`crate::state::SOURCE_STATE_TREE`]) atomically with the batch,
    /// and answers `true` whenever it is given one. Without it, the answer is always
    /// `false` and the task saves the checkpoint after the append: a crash between the
    /// two repeats that batch.
    pub atomic_checkpoint: bool,
    /// The node's state store must flush (fsync) each checkpoint it saves. `false` when
    /// the backend's own flushes cover the state database (the embedded log lives in it
    /// and flushes it per its durability), so an extra flush per checkpoint would only
    /// cost time.
    pub state_store_flushes: bool,
}

/// A background job a backend needs while it is open (the embedded log's retention).
/// The engine spawns it with a token that it cancels at shutdown; the job ends soon
/// after the token is cancelled.
pub struct Maintenance(Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>);

impl Maintenance {
    /// A job: `run(stop)` must return soon after `stop` is cancelled.
    pub fn new<F, Fut>(run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        Self(Box::new(move |stop| Box::pin(run(stop))))
    }

    /// The job's future, to spawn.
    pub fn run(self, stop: CancellationToken) -> BoxFuture<'static, ()> {
        (self.0)(stop)
    }
}

/// An open backend, with what it declares and what it needs run beside it.
pub struct OpenedStream {
    /// Hands out producers and consumers.
    pub backend: Arc<dyn StreamBackend>,
    /// What the engine and the tasks may rely on.
    pub capabilities: Capabilities,
    /// A job to spawn while the backend is in use, if it needs one.
    pub maintenance: Option<Maintenance>,
}

impl std::fmt::Debug for OpenedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedStream")
            .field("backend", &self.backend.name())
            .field("capabilities", &self.capabilities)
            .field("maintenance", &self.maintenance.is_some())
            .finish()
    }
}

/// Opens the backend `settings` name. `db` is the node's state database (where source
/// checkpoints live); a backend may keep its data there too.
pub fn open(settings: &StreamSettings, db: &sled::Db) -> Result<OpenedStream, StreamError> {
    match settings {
        StreamSettings::Embedded(s) => embedded::open(s, db),
        #[cfg(feature = "iggy")]
        StreamSettings::Iggy(s) => Ok(iggy::open(s)),
        #[cfg(not(feature = "iggy"))]
        StreamSettings::Iggy(_) => Err(StreamError::NotBuilt {
            backend: "iggy",
            feature: "iggy",
        }),
    }
}

/// How durable an instance asks the topics it creates to be (`durability` in a stream
/// entry of its config). It applies where the stream server keeps a setting per topic
/// (Iggy), when the topic is created; a topic that exists keeps its own settings. The
/// embedded log has one setting for the node (`[stream] durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicDurability {
    /// The server's own defaults. On Iggy a topic is written out every 1024 messages
    /// or 1 MiB: what the server acknowledged but did not write yet is lost when the
    /// server process dies.
    #[default]
    Default,
    /// Every append is written to the server's files before the server acknowledges it:
    /// nothing acknowledged is lost when the server process dies (`kill -9`); a power
    /// loss may still lose what the operating system had not written.
    Write,
    /// Every append is written and synced to disk before the server acknowledges it:
    /// nothing acknowledged is lost on a power loss either. The slowest.
    Fsync,
}

impl std::str::FromStr for TopicDurability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(Self::Default),
            "write" => Ok(Self::Write),
            "fsync" => Ok(Self::Fsync),
            other => Err(format!(
                "`{other}` is not a topic durability: use default, write or fsync"
            )),
        }
    }
}

/// A stream backend: hands out producers and consumers.
#[async_trait]
pub trait StreamBackend: Send + Sync + 'static {
    /// The backend's name in the settings (`embedded`, `iggy`), for logs.
    fn name(&self) -> &'static str;

    /// Creates `topic` when it is missing (where the backend allows it) with the
    /// durability asked for; a topic that exists is left as it is. Backends without
    /// per-topic settings do nothing here and create topics on first use.
    async fn prepare_topic(
        &self,
        topic: &TopicRef,
        durability: TopicDurability,
    ) -> Result<(), StreamError> {
        let _ = (topic, durability);
        Ok(())
    }

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

    /// Appends the batch and, where the backend can make both one atomic write
    /// ([`Capabilities::atomic_checkpoint`]), stores the source checkpoint
    /// `(instance key, state)` with it; returns whether it did. When it did not, the
    /// caller saves the checkpoint after the append.
    async fn append_checkpointed(
        &mut self,
        batch: &MessageBatch,
        checkpoint: Option<(&str, &[u8])>,
    ) -> Result<(Appended, bool), StreamError> {
        let _ = checkpoint;
        Ok((self.append(batch).await?, false))
    }

    /// The topic's schema as the instance config declares it: messages of this schema
    /// need not carry it one by one (Iggy then writes no schema header); a message of
    /// another schema still does.
    fn declare_schema(&mut self, schema: Schema) {
        let _ = schema;
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

    /// The schema of messages that carry none (the sink's configured schema: the one a
    /// source declared for the topic, or what a foreign producer wrote).
    fn assume_schema(&mut self, schema: Schema) {
        let _ = schema;
    }

    /// Moves the group's committed offset on every partition of the topic to `to`
    /// (backwards or forwards), for an operator while the group's sink is stopped;
    /// returns the next offset now committed per partition.
    async fn seek(&mut self, to: SeekTo) -> Result<Vec<(u32, u64)>, StreamError> {
        let _ = to;
        Err(StreamError::Backend(
            "this stream backend cannot move a group's offsets".into(),
        ))
    }
}

/// Where [`Consumer::seek`] moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest message still stored.
    Earliest,
    /// After the newest message: only what comes next.
    Latest,
    /// This offset (the next one read), on every partition.
    Offset(u64),
    /// The first message whose timestamp is at or after this many microseconds since
    /// the Unix epoch (the end when there is none).
    Timestamp(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::state::sled_config(dir.path()).open().unwrap();
        (dir, db)
    }

    #[test]
    fn open_declares_each_backends_capabilities() {
        let (_dir, db) = db();
        let embedded = open(&StreamSettings::default(), &db).unwrap();
        assert_eq!(embedded.backend.name(), "embedded");
        assert_eq!(embedded.capabilities, embedded::EmbeddedLog::CAPABILITIES);
        assert!(embedded.capabilities.atomic_checkpoint);
        assert!(!embedded.capabilities.state_store_flushes);
    }

    #[cfg(feature = "iggy")]
    #[test]
    fn iggy_opens_without_a_server_and_flushes_checkpoints_itself() {
        let (_dir, db) = db();
        // The client connects lazily, per producer and consumer.
        let settings = StreamSettings::Iggy(iggy_settings::IggySettings::new("127.0.0.1:1"));
        let opened = open(&settings, &db).unwrap();
        assert_eq!(opened.backend.name(), "iggy");
        assert_eq!(
            opened.capabilities,
            Capabilities {
                atomic_checkpoint: false,
                state_store_flushes: true
            }
        );
        assert!(opened.maintenance.is_none());
    }

    #[cfg(not(feature = "iggy"))]
    #[test]
    fn a_build_without_iggy_says_how_to_get_it() {
        let (_dir, db) = db();
        let settings = StreamSettings::Iggy(iggy_settings::IggySettings::new("127.0.0.1:8090"));
        let err = open(&settings, &db).unwrap_err().to_string();
        assert_eq!(
            err,
            "stream.backend: this build has no iggy backend (build with --features iggy)"
        );
    }
}
