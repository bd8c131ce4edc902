//! The traits a plugin author implements: [`Sink`] and [`Source`].

use std::future::Future;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{PluginError, Rejection, SinkBatch, SourceBatch};

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

    /// Makes consumed batches durable, for sinks that hold messages across batches
    /// (the role of Kafka Connect's `preCommit`); most sinks keep the default.
    ///
    /// The batches `consume` accepted are numbered from 1 since `open`; `consumed` is
    /// the number of the last one. The host calls `flush` after each successful
    /// `consume`, about once a second while no data arrives (only while some consumed
    /// batch is not yet durable), and once with `closing = true` before `close` (then
    /// write out everything held). Return the number of the last batch that is durable:
    /// the host commits stream offsets only up to that batch, and delivers the later
    /// ones again after a restart. An error is retried like a failed `consume`.
    ///
    /// The default says every consumed batch is durable, which is what `consume`
    /// returning `Ok` means for a sink that writes each batch before returning.
    ///
    /// ```
    /// use ld_plugin_api::{InstanceContext, PluginError, Sink, SinkBatch};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct BufferConfig { every: u64 }
    ///
    /// /// Holds batches and writes them `every` batches at a time.
    /// struct BufferSink { every: u64, held: Vec<Vec<u8>>, durable: u64 }
    ///
    /// impl Sink for BufferSink {
    ///     type Config = BufferConfig;
    ///     fn new(c: BufferConfig, _: &InstanceContext) -> Result<Self, PluginError> {
    ///         Ok(BufferSink { every: c.every, held: Vec::new(), durable: 0 })
    ///     }
    ///     async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
    ///         for m in batch.messages() {
    ///             self.held.push(m.payload().to_vec()); // copy: the batch is borrowed
    ///         }
    ///         Ok(()) // held, not yet durable
    ///     }
    ///     async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
    ///         if closing || consumed - self.durable >= self.every {
    ///             // ... write self.held to the external system ...
    ///             self.held.clear();
    ///             self.durable = consumed;
    ///         }
    ///         Ok(self.durable)
    ///     }
    /// }
    /// # fn main() {}
    /// ```
    fn flush(
        &mut self,
        consumed: u64,
        closing: bool,
    ) -> impl Future<Output = Result<u64, PluginError>> + Send {
        let _ = closing;
        async move { Ok(consumed) }
    }

    /// The messages of the batch `consume` just accepted that the sink did not write,
    /// each with why. Most sinks keep the default (none): returning an error from
    /// `consume` fails the whole batch, which is right when the cause is the external
    /// system, not one message.
    ///
    /// The host calls `rejected` after each `consume` that returned `Ok` (since
    /// `ld-plugin-api` 0.1.2). Return each rejected message once, by its offset, and
    /// forget it: a sink usually collects them in `consume` and hands them over with
    /// `std::mem::take` (start each `consume` with an empty list: after a failed
    /// `consume` the host delivers the batch again without asking). What happens to them is the instance's `errors` setting: with
    /// `tolerance = "all"` they go to its dead-letter topic with headers naming the
    /// instance, where they came from, the stage `sink` and the reason, and the rest of
    /// the batch counts as written; with `tolerance = "none"` (the default) the instance
    /// fails naming the first one, and the batch is delivered again after a restart.
    /// An offset that is not in the batch is logged and ignored.
    ///
    /// ```
    /// use ld_plugin_api::{InstanceContext, PluginError, Rejection, Sink, SinkBatch};
    ///
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct JsonOnlyConfig {}
    ///
    /// /// Writes JSON objects; anything else is rejected, not the whole batch.
    /// struct JsonOnlySink { rejected: Vec<Rejection> }
    ///
    /// impl Sink for JsonOnlySink {
    ///     type Config = JsonOnlyConfig;
    ///     fn new(_: JsonOnlyConfig, _: &InstanceContext) -> Result<Self, PluginError> {
    ///         Ok(JsonOnlySink { rejected: Vec::new() })
    ///     }
    ///     async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
    ///         self.rejected.clear();
    ///         for m in batch.messages() {
    ///             match m.json::<serde_json::Map<String, serde_json::Value>>() {
    ///                 Ok(_object) => { /* ... write it ... */ }
    ///                 Err(e) => self.rejected.push(Rejection::new(m.offset(), e.to_string())),
    ///             }
    ///         }
    ///         Ok(())
    ///     }
    ///     fn rejected(&mut self) -> Vec<Rejection> {
    ///         std::mem::take(&mut self.rejected)
    ///     }
    /// }
    /// # fn main() {}
    /// ```
    fn rejected(&mut self) -> Vec<Rejection> {
        Vec::new()
    }

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
