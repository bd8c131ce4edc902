//! The smallest correct sink: it counts the bytes it is given.
//!
//! Build it with `cargo build --release -p minimal-sink` and point ld-connectord's plugin
//! directory at `target/release/` (the file is `libld_minimal_sink.so`).

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};

/// The instance's `plugin_config`. serde parses it (an unknown or wrong field is
/// refused with its name before the instance starts) and schemars publishes its JSON
/// Schema in the catalog. Doc comments become the schema's descriptions.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinimalSinkConfig {
    /// Fail every batch larger than this many bytes (to show errors); absent: no limit.
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
}

/// One instance of the sink. The host owns it and calls it from one task at a time.
pub struct MinimalSink {
    config: MinimalSinkConfig,
    bytes: u64,
}

impl Sink for MinimalSink {
    type Config = MinimalSinkConfig;

    // Construct only: no I/O here. Connect in `open` (not needed here).
    fn new(config: MinimalSinkConfig, _ctx: &InstanceContext) -> Result<Self, PluginError> {
        Ok(MinimalSink { config, bytes: 0 })
    }

    // Called once per batch. The messages borrow the host's buffer: no copy, no
    // allocation. Return Ok only once the batch is written for good: the host then
    // commits the offsets. An Err makes the host deliver the same batch again
    // (transient) or stop the instance (fatal).
    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        let size: usize = batch.messages().iter().map(|m| m.payload().len()).sum();
        if let Some(limit) = self.config.max_batch_bytes {
            if size > limit {
                return Err(PluginError::fatal(format!(
                    "batch of {size} bytes is over max_batch_bytes ({limit})"
                )));
            }
        }
        self.bytes += size as u64;
        Ok(())
    }
}

// Generates the library's root module: plugin info, panic-safe entry points, the
// library's own tokio runtime and log forwarding. The key is what instance configs
// and the catalog name ("connector_key").
export_plugin! {
    key: "minimal",
    name: "Minimal sink",
    description: "Counts the bytes it receives",
    sink: MinimalSink,
}

// Tests drive the plugin in process with `ld_plugin_api::testing` (a dev-dependency
// with the `testing` feature), through the same adapter the host uses.
#[cfg(test)]
mod tests;
