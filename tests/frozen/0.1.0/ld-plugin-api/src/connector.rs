//! The traits a plugin author implements: [`Sink`] and [`Source`].

use std::future::Future;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{PluginError, SinkBatch, SourceBatch};

/// What the host tells an instance about itself when constructing it.
///
/// ```
/// let ctx = ld_plugin_api::InstanceContext::new("orders-pg-sink");
/// assert_eq!(ctx.instance_key(), "orders-pg-sink");
/// ```
#[derive(Debug, Clone)]
pub struct InstanceContext {
    instance_key: String,
}

impl InstanceContext {
    /// A context for the instance with this key.
    pub fn new(instance_key: impl Into<String>) -> Self {
        Self {
            instance_key: instance_key.into(),
        }
    }

    /// The instance key, unique within the deployment (e.g. `orders-pg-sink`).
    pub fn instance_key(&self) -> &str {
        &self.instance_key
    }
}

/// A sink writes batches of stream messages into an external system.
///
/// The host calls [`Sink::open`] once, then [`Sink::consume`] for each batch, and
/// commits the batch's offsets only after `consume` returned `Ok`: returning an error
/// means the batch is delivered again. [`Sink::close`] runs on shutdown.
///
/// Every future runs with the plugin's own tokio runtime entered, so `tokio` I/O,
/// timers and `tokio::spawn` work inside it. Do not block the thread: use async I/O.
///
/// ```
/// use ld_plugin_api::{InstanceContext, PluginError, Sink, SinkBatch};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct CountConfig {}
///
/// struct CountSink { seen: u64 }
///
/// impl Sink for CountSink {
///     type Config = CountConfig;
///     fn new(_: CountConfig, _: &InstanceContext) -> Result<Self, PluginError> {
///         Ok(CountSink { seen: 0 })
///     }
///     async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
///         self.seen += batch.len() as u64;
///         Ok(())
///     }
/// }
/// # fn main() {}
/// ```
pub trait Sink: Send + Sized + 'static {
    /// The `plugin_config` of an instance; its JSON Schema is published in the catalog.
    type Config: DeserializeOwned + JsonSchema;

    /// Builds an instance from its parsed config. Do no I/O here: use [`Sink::open`].
    fn new(config: Self::Config, ctx: &InstanceContext) -> Result<Self, PluginError>;

    /// Connects to the external system. Called once before the first batch.
    fn open(&mut self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }

    /// Writes one batch. `Ok` means the batch is durably written; the host then
    /// commits its offsets.
    fn consume(
        &mut self,
        batch: SinkBatch<'_>,
    ) -> impl Future<Output = Result<(), PluginError>> + Send;

    /// Releases resources on shutdown.
    fn close(&mut self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }
}

/// A source reads an external system and produces batches of messages.
///
/// The host calls [`Source::open`], then [`Source::poll`] in a loop. After a batch is
/// durably appended to the stream the host saves the state the batch carried (see
/// [`SourceBatch::set_state`]) and then calls [`Source::committed`]. After a restart
/// [`Source::new`] receives the last saved state, so a source resumes where its last
/// committed batch ended.
///
/// ```
/// use ld_plugin_api::{InstanceContext, PluginError, Source, SourceBatch};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct CounterConfig { per_batch: u32 }
///
/// struct Counter { next: u64, per_batch: u32 }
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
/// # fn main() {}
/// ```
pub trait Source: Send + Sized + 'static {
    /// The `plugin_config` of an instance; its JSON Schema is published in the catalog.
    type Config: DeserializeOwned + JsonSchema;
    /// The checkpoint the host saves for this source (as JSON) after each committed batch.
    type State: Serialize + DeserializeOwned;

    /// Builds an instance from its config and its last saved state, if any.
    fn new(
        config: Self::Config,
        state: Option<Self::State>,
        ctx: &InstanceContext,
    ) -> Result<Self, PluginError>;

    /// Connects to the external system. Called once before the first poll.
    fn open(&mut self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }

    /// Produces the next batch. Wait (asynchronously) while there is nothing to read;
    /// an empty batch is allowed and simply skipped.
    fn poll(&mut self) -> impl Future<Output = Result<SourceBatch, PluginError>> + Send;

    /// Batch number `seq` is durably in the stream and its state saved. Batches are
    /// numbered from 1 since `open`, counting the polls that returned messages or a
    /// state (empty batches without state are skipped and not numbered). Calls come in
    /// order, possibly several after one poll. Sources that acknowledge upstream (a
    /// replication slot, a queue) do it here.
    fn committed(&mut self, seq: u64) -> impl Future<Output = Result<(), PluginError>> + Send {
        let _ = seq;
        async { Ok(()) }
    }

    /// Releases resources on shutdown.
    fn close(&mut self) -> impl Future<Output = Result<(), PluginError>> + Send {
        async { Ok(()) }
    }
}
