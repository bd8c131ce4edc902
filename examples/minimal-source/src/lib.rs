//! The smallest correct source: it emits `"tick N"` text messages, one batch per second,
//! and resumes from the last committed tick after a restart.

use std::time::Duration;

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Schema, Source, SourceBatch};

/// The instance's `plugin_config` (see the minimal sink for how configs are handled).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinimalSourceConfig {
    /// Messages per batch (at least 1).
    #[serde(default = "ten")]
    pub per_batch: u32,
}

fn ten() -> u32 {
    10
}

/// The checkpoint. The host saves it only after the batch that carried it is durably
/// in the stream, and hands it back to `new` after a restart.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Tick {
    /// The next tick to emit.
    pub next: u64,
}

/// One instance of the source.
pub struct MinimalSource {
    per_batch: u32,
    next: u64,
}

impl Source for MinimalSource {
    type Config = MinimalSourceConfig;
    type State = Tick;

    fn new(
        config: MinimalSourceConfig,
        state: Option<Tick>,
        _ctx: &InstanceContext,
    ) -> Result<Self, PluginError> {
        // What serde cannot check, `new` does, naming the field.
        if config.per_batch == 0 {
            return Err(PluginError::invalid_config(
                "plugin_config.per_batch: must be at least 1",
            ));
        }
        Ok(MinimalSource {
            per_batch: config.per_batch,
            next: state.map_or(0, |t| t.next),
        })
    }

    // Wait asynchronously for data (tokio timers and I/O work here: the SDK runs a tokio
    // runtime for the library), then return one batch with the new state.
    async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
        tokio_sleep(Duration::from_secs(1)).await;
        let mut batch = SourceBatch::new();
        for _ in 0..self.per_batch {
            batch.push(Schema::Text, format!("tick {}", self.next).as_bytes());
            self.next += 1;
        }
        batch.set_state(&Tick { next: self.next })?;
        Ok(batch)
    }
}

async fn tokio_sleep(d: Duration) {
    ld_plugin_api::reexports::tokio::time::sleep(d).await;
}

export_plugin! {
    key: "minimal",
    name: "Minimal source",
    description: "Emits a batch of tick messages every second",
    source: MinimalSource,
}

// Tests drive the plugin in process with `ld_plugin_api::testing` (a dev-dependency
// with the `testing` feature), through the same adapter the host uses.
#[cfg(test)]
mod tests;
