//! Sink tasks over the embedded log with the real test sink plugin, in-process: commits
//! happen only after the plugin succeeded, transient failures lose nothing, filters
//! still advance the offset.

use std::{sync::Arc, time::Duration};

use ld_connectord::{
    config::SinkStream,
    instance::{run_sink, CallPolicy, InstanceMetrics, RetryPolicy, SinkTask, TaskError},
    plugin_host::PluginLibrary,
    stream::{embedded::EmbeddedLog, MessageBatch, StreamBackend, TopicRef},
    transform,
};
use ld_e2e_tests::{local::wait_for_ids, plugin};
use ld_plugin_api::{ErrorKind, Schema};
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    log: EmbeddedLog,
    topic: TopicRef,
}

impl Fixture {
    async fn with_messages(n: u128) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open_dir(&dir.path().join("db"), Default::default()).unwrap();
        let topic = TopicRef::new("orders", "created");
        let mut producer = log.producer(&topic).await.unwrap();
        for chunk in (1..=n).collect::<Vec<_>>().chunks(100) {
            let mut batch = MessageBatch::default();
            for id in chunk {
                let kind = if id % 2 == 0 { "even" } else { "odd" };
                let payload = format!(r#"{{"id":{id},"kind":"{kind}"}}"#);
                batch.push(*id, 0, 0, Schema::Json, [], payload.as_bytes());
            }
            producer.append(&batch).await.unwrap();
        }
        Fixture { dir, log, topic }
    }

    fn output(&self) -> std::path::PathBuf {
        self.dir.path().join("ids.txt")
    }

    fn stream(&self) -> SinkStream {
        SinkStream {
            stream: self.topic.stream.clone(),
            topics: vec![self.topic.topic.clone()],
            schema: Schema::Json,
            batch_length: 50,
            poll_interval: Duration::from_millis(5),
            consumer_group: Some("g".into()),
            durability: Default::default(),
        }
    }

    async fn sink_task(
        &self,
        plugin_config: serde_json::Value,
        transforms: serde_json::Value,
    ) -> SinkTask {
        let cache = self.dir.path().join("cache");
        let lib = PluginLibrary::load(&plugin("test_sink"), &cache).unwrap();
        let mut config = plugin_config;
        config["output_file"] = self.output().to_str().unwrap().into();
        SinkTask {
            instance_key: "rec".into(),
            streams: vec![self.stream()],
            transforms: transform::parse_list(&transforms).unwrap(),
            errors: Default::default(),
            plugin: lib.new_sink("rec", &config.to_string()).await.unwrap(),
            backend: Arc::new(self.log.clone()),
            policy: CallPolicy {
                call_timeout: Duration::from_secs(10),
                retry: RetryPolicy {
                    initial: Duration::from_millis(5),
                    max: Duration::from_millis(20),
                    max_attempts: 5,
                    healthy_after: None,
                },
            },
            metrics: Arc::new(InstanceMetrics::default()),
        }
    }

    /// The group's committed next offset; 0 when nothing was committed (the embedded
    /// log registers a group at 0 when its first consumer starts).
    fn committed(&self) -> u64 {
        self.log
            .committed(&self.topic, "g", 0)
            .unwrap()
            .unwrap_or(0)
    }
}

/// Runs the task until `expected` ids are in the output, then stops it.
async fn run_until(fx: &Fixture, task: SinkTask, expected: usize) -> Result<(), TaskError> {
    let stop = CancellationToken::new();
    let handle = tokio::spawn(run_sink(task, stop.clone()));
    let out = fx.output();
    tokio::task::spawn_blocking(move || {
        wait_for_ids(&out, Duration::from_secs(60), |ids| ids.len() >= expected)
    })
    .await
    .unwrap();
    // Let the last commit land, then stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    handle.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_lose_nothing_and_commit_everything() {
    let fx = Fixture::with_messages(500).await;
    let task = fx
        .sink_task(
            serde_json::json!({"transient_failures": 3}),
            serde_json::json!([]),
        )
        .await;
    let metrics = task.metrics.clone();
    run_until(&fx, task, 500).await.unwrap();
    let ids = ld_e2e_tests::local::read_ids(&fx.output());
    assert_eq!(ids.len(), 500);
    assert!(ids.values().all(|n| *n == 1), "each id written once");
    assert_eq!(fx.committed(), 500);
    assert_eq!(metrics.errors.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_always_fails_never_commits() {
    let fx = Fixture::with_messages(100).await;
    let task = fx
        .sink_task(
            serde_json::json!({"always_fail": true}),
            serde_json::json!([]),
        )
        .await;
    let err = run_sink(task, CancellationToken::new()).await.unwrap_err();
    match &err {
        TaskError::Plugin { call, error } => {
            assert_eq!(*call, "consume");
            assert_eq!(error.kind(), ErrorKind::Transient);
            assert!(
                error.message().contains("gave up after 5 attempts"),
                "{err}"
            );
        }
        other => panic!("unexpected: {other}"),
    }
    assert_eq!(fx.committed(), 0);
    assert!(ld_e2e_tests::local::read_ids(&fx.output()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_fails_the_task_and_commits_nothing() {
    let fx = Fixture::with_messages(10).await;
    let task = fx
        .sink_task(
            serde_json::json!({"panic_in": "consume"}),
            serde_json::json!([]),
        )
        .await;
    let err = run_sink(task, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(fx.committed(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_that_drops_messages_still_advances_the_offset() {
    let fx = Fixture::with_messages(300).await;
    let transforms = serde_json::json!([
        {"type": "filter_messages", "drop_if": {"field": "kind", "equals": "odd"}},
        {"type": "add_fields", "fields": [{"key": "seen", "value": {"static": true}}]},
    ]);
    let task = fx.sink_task(serde_json::json!({}), transforms).await;
    let metrics = task.metrics.clone();
    run_until(&fx, task, 150).await.unwrap();
    let ids = ld_e2e_tests::local::read_ids(&fx.output());
    assert_eq!(ids.len(), 150);
    assert!(ids.keys().all(|id| id % 2 == 0), "only even ids kept");
    assert_eq!(fx.committed(), 300, "dropped messages count as processed");
    assert_eq!(
        metrics.filtered.load(std::sync::atomic::Ordering::Relaxed),
        150
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_on_a_non_json_payload_fails_naming_the_message() {
    let fx = Fixture::with_messages(0).await;
    let mut producer = fx.log.producer(&fx.topic).await.unwrap();
    let mut batch = MessageBatch::default();
    batch.push(1, 0, 0, Schema::Json, [], br#"{"ok":1}"#);
    batch.push(2, 0, 0, Schema::Json, [], b"<xml/>");
    producer.append(&batch).await.unwrap();
    let task = fx
        .sink_task(
            serde_json::json!({}),
            serde_json::json!([{"type": "delete_fields", "fields": ["ok"]}]),
        )
        .await;
    let err = run_sink(task, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("offset 1 (id 2)"), "{err}");
    assert_eq!(fx.committed(), 0, "never skipped silently");
}
