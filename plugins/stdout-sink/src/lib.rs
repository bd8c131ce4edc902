//! `stdout` sink: prints each message on a line of standard output.
//!
//! Useful to watch a stream, in demos, and as the no-op end of a benchmark
//! (`print_payload = false` counts messages without printing them).

use ld_plugin_api::{export_plugin, InstanceContext, PluginError, Sink, SinkBatch};
use tokio::io::AsyncWriteExt;

/// `plugin_config` of the stdout sink.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Print each message's payload; `false` only counts messages.
    #[serde(default = "yes")]
    pub print_payload: bool,
    /// Prefix each line with stream, topic, partition, offset and id.
    #[serde(default)]
    pub print_metadata: bool,
}

fn yes() -> bool {
    true
}

/// Prints batches to stdout, one message per line.
pub struct StdoutSink {
    config: StdoutConfig,
    instance_key: String,
    messages: u64,
    line_buffer: Vec<u8>,
}

impl Sink for StdoutSink {
    type Config = StdoutConfig;

    fn new(config: StdoutConfig, ctx: &InstanceContext) -> Result<Self, PluginError> {
        Ok(StdoutSink {
            config,
            instance_key: ctx.instance_key().to_string(),
            messages: 0,
            line_buffer: Vec::new(),
        })
    }

    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        self.messages += batch.len() as u64;
        if !self.config.print_payload {
            return Ok(());
        }
        // One write per batch: the whole batch is formatted into a reused buffer.
        self.line_buffer.clear();
        for message in batch.messages() {
            if self.config.print_metadata {
                use std::io::Write;
                let _ = write!(
                    self.line_buffer,
                    "[{}/{}/{} offset={} id={}] ",
                    batch.stream(),
                    batch.topic(),
                    batch.partition(),
                    message.offset(),
                    message.id()
                );
            }
            match message.payload_str() {
                Some(text) => self.line_buffer.extend_from_slice(text.as_bytes()),
                None => {
                    for byte in message.payload() {
                        self.line_buffer
                            .extend_from_slice(format!("{byte:02x}").as_bytes());
                    }
                }
            }
            self.line_buffer.push(b'\n');
        }
        let mut stdout = tokio::io::stdout();
        stdout
            .write_all(&self.line_buffer)
            .await
            .map_err(|e| PluginError::transient(format!("cannot write to stdout: {e}")))?;
        stdout
            .flush()
            .await
            .map_err(|e| PluginError::transient(format!("cannot flush stdout: {e}")))
    }

    async fn close(&mut self) -> Result<(), PluginError> {
        tracing::info!(
            instance = %self.instance_key,
            messages = self.messages,
            "stdout sink closed"
        );
        Ok(())
    }
}

export_plugin! {
    key: "stdout",
    name: "Standard output",
    description: "Prints every message to standard output, one per line",
    sink: StdoutSink,
}
