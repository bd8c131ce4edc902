//! Plugin `tracing` events reach the host's subscriber, inside the caller's span.

use std::sync::{Arc, Mutex};

use ld_connectord::plugin_host::PluginLibrary;
use ld_e2e_tests::plugin;
use ld_plugin_api::{Message, Schema, SinkBatch};
use tracing::Instrument;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_logs_are_forwarded_into_the_instance_span() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let cache = tempfile::tempdir().unwrap();
    let lib = PluginLibrary::load(&plugin("stdout_sink"), cache.path()).unwrap();
    let span = tracing::info_span!("sink", key = "orders-out", connector = "stdout");
    async {
        let mut sink = lib
            .new_sink("orders-out", r#"{"print_payload": false}"#)
            .await
            .unwrap();
        sink.open().await.unwrap();
        let views = [Message::new(1, 0, 0, Schema::Json, &[], b"{}")];
        sink.consume(SinkBatch::new("s", "t", 0, &views))
            .await
            .unwrap();
        sink.close().await.unwrap();
    }
    .instrument(span)
    .await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("stdout sink closed"))
        .unwrap_or_else(|| panic!("plugin log line not forwarded; got:\n{text}"));
    assert!(line.contains("messages=1"), "{line}");
    assert!(
        line.contains("key=\"orders-out\""),
        "in the instance span: {line}"
    );
}
