//! Test fixture `abi-0-1-1` (sink): built against the frozen `ld-plugin-api` 0.1.1
//! (`tests/frozen/`), which added `Sink::flush` and had no way to reject messages. It
//! holds each consumed batch and writes the ids of everything held in `flush`, so a
//! test can see that a newer host loads it, calls the 0.1.1 `flush` through that
//! release's layout, and answers the calls added since with their defaults.

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
use tokio::io::AsyncWriteExt;

/// `plugin_config` of the fixture.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Abi011SinkConfig {
    /// Append `<id>\n` per message to this file.
    pub output_file: String,
}

/// The fixture sink.
pub struct Abi011Sink {
    path: String,
    file: Option<tokio::fs::File>,
    held: String,
}

impl Sink for Abi011Sink {
    type Config = Abi011SinkConfig;

    fn new(config: Abi011SinkConfig, _: &InstanceContext) -> Result<Self, PluginError> {
        Ok(Abi011Sink {
            path: config.output_file,
            file: None,
            held: String::new(),
        })
    }

    async fn open(&mut self) -> Result<(), PluginError> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(|e| PluginError::fatal(format!("cannot open {}: {e}", self.path)))?;
        self.file = Some(file);
        Ok(())
    }

    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        for message in batch.messages() {
            self.held.push_str(&message.id().to_string());
            self.held.push('\n');
        }
        Ok(())
    }

    async fn flush(&mut self, consumed: u64, _closing: bool) -> Result<u64, PluginError> {
        let file = self.file.as_mut().expect("opened");
        file.write_all(self.held.as_bytes())
            .await
            .map_err(|e| PluginError::transient(e.to_string()))?;
        file.sync_data()
            .await
            .map_err(|e| PluginError::transient(e.to_string()))?;
        self.held.clear();
        Ok(consumed)
    }
}

export_plugin! {
    key: "abi-0-1-1",
    name: "ABI 0.1.1 fixture",
    description: "A sink built against ld-plugin-api 0.1.1",
    sink: Abi011Sink,
}
