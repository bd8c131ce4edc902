//! Test fixture `abi-0-1-0` (sink): built against the frozen `ld-plugin-api` 0.1.0
//! (`tests/frozen/`), before sinks could hold batches (`Sink::flush`). It appends each
//! message's id to a file, so a test can see that a newer host loads it, runs it and
//! commits its offsets through the defaults of the methods added since.

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
use tokio::io::AsyncWriteExt;

/// `plugin_config` of the fixture.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Abi010SinkConfig {
    /// Append `<id>\n` per message to this file.
    pub output_file: String,
}

/// The fixture sink.
pub struct Abi010Sink {
    path: String,
    file: Option<tokio::fs::File>,
}

impl Sink for Abi010Sink {
    type Config = Abi010SinkConfig;

    fn new(config: Abi010SinkConfig, _: &InstanceContext) -> Result<Self, PluginError> {
        Ok(Abi010Sink {
            path: config.output_file,
            file: None,
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
        let mut out = String::new();
        for message in batch.messages() {
            out.push_str(&message.id().to_string());
            out.push('\n');
        }
        let file = self.file.as_mut().expect("opened");
        file.write_all(out.as_bytes())
            .await
            .map_err(|e| PluginError::transient(e.to_string()))?;
        file.sync_data()
            .await
            .map_err(|e| PluginError::transient(e.to_string()))
    }
}

export_plugin! {
    key: "abi-0-1-0",
    name: "ABI 0.1.0 fixture",
    description: "A sink built against ld-plugin-api 0.1.0",
    sink: Abi010Sink,
}
