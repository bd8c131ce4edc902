//! The data-plane pipeline against a real Apache Iggy server: random source -> Iggy
//! topic -> test sink writing ids to a file; every id arrives, and a sink restarted
//! before committing gets its uncommitted batch again.
//!
//! Needs `--features iggy` and `IGGY_TEST_ADDRESS` (e.g. `127.0.0.1:8090`; user and
//! password from `IGGY_TEST_USER`/`IGGY_TEST_PASSWORD`, default iggy/iggy); without the
//! address it prints a skip notice.
#![cfg(feature = "iggy")]

use std::{sync::Arc, time::Duration};

use ld_connectord::{
    config::{SinkStream, SourceStream},
    instance::{run_sink, run_source, CallPolicy, InstanceMetrics, SinkTask, SourceTask},
    plugin_host::PluginLibrary,
    state::StateStore,
    stream::{
        iggy::{IggyBackend, IggyConfig},
        StreamBackend,
    },
};
use ld_e2e_tests::{local::wait_for_ids, plugin};
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

fn backend() -> Option<Arc<dyn StreamBackend>> {
    let Ok(address) = std::env::var("IGGY_TEST_ADDRESS") else {
        eprintln!("skipped: IGGY_TEST_ADDRESS is not set");
        return None;
    };
    Some(Arc::new(IggyBackend::new(IggyConfig {
        address,
        username: std::env::var("IGGY_TEST_USER").unwrap_or_else(|_| "iggy".into()),
        password: std::env::var("IGGY_TEST_PASSWORD").unwrap_or_else(|_| "iggy".into()),
        create_missing: true,
        ..IggyConfig::default()
    })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_source_through_iggy_to_a_sink_delivers_every_id() {
    let Some(backend) = backend() else { return };
    const COUNT: u64 = 20_000;
    let stream = format!("ld-pipeline-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let state = StateStore::open(
        &dir.path().join("state"),
        IggyBackend::CAPABILITIES.state_store_flushes,
    )
    .unwrap();
    let out = dir.path().join("ids.txt");
    let random = PluginLibrary::load(&plugin("random_source"), &cache).unwrap();
    let test_sink = PluginLibrary::load(&plugin("test_sink"), &cache).unwrap();

    let stop = CancellationToken::new();
    let source = tokio::spawn(run_source(
        SourceTask {
            instance_key: "gen".into(),
            streams: vec![SourceStream {
                stream: stream.clone(),
                topic: "numbers".into(),
                schema: Schema::Json,
                batch_length: 1000,
                linger_time: Duration::from_millis(5),
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin: random
                .new_source(
                    "gen",
                    &format!(r#"{{"seed": 3, "count": {COUNT}, "batch_size": 1000}}"#),
                    None,
                )
                .await
                .unwrap(),
            backend: backend.clone(),
            state: state.clone(),
            policy: CallPolicy::default(),
            metrics: Arc::new(InstanceMetrics::default()),
            shared: None,
        },
        stop.clone(),
    ));
    let sink_task = |out: &std::path::Path,
                     lib: Arc<PluginLibrary>,
                     backend: Arc<dyn StreamBackend>,
                     stream: String| {
        let config = serde_json::json!({"output_file": out.to_str().unwrap()}).to_string();
        async move {
            SinkTask {
                instance_key: "rec".into(),
                streams: vec![SinkStream {
                    stream,
                    topics: vec!["numbers".into()],
                    schema: Schema::Json,
                    batch_length: 1000,
                    poll_interval: Duration::from_millis(20),
                    consumer_group: Some("ld-rec".into()),
                    durability: Default::default(),
                }],
                transforms: vec![],
                errors: Default::default(),
                plugin: lib.new_sink("rec", &config).await.unwrap(),
                backend,
                policy: CallPolicy::default(),
                metrics: Arc::new(InstanceMetrics::default()),
            }
        }
    };
    // First sink run: stop it part-way, then a second run must continue from its commit.
    let first_stop = CancellationToken::new();
    let first = tokio::spawn(run_sink(
        sink_task(&out, test_sink.clone(), backend.clone(), stream.clone()).await,
        first_stop.clone(),
    ));
    let out2 = out.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_ids(&out2, Duration::from_secs(60), |ids| ids.len() >= 5_000)
    })
    .await
    .unwrap();
    first_stop.cancel();
    first.await.unwrap().unwrap();

    let second = tokio::spawn(run_sink(
        sink_task(&out, test_sink.clone(), backend.clone(), stream.clone()).await,
        stop.clone(),
    ));
    let out2 = out.clone();
    let ids = tokio::task::spawn_blocking(move || {
        wait_for_ids(&out2, Duration::from_secs(120), |ids| {
            ids.len() as u64 >= COUNT
        })
    })
    .await
    .unwrap();
    stop.cancel();
    source.await.unwrap().unwrap();
    second.await.unwrap().unwrap();

    for id in 1..=u128::from(COUNT) {
        assert!(ids.contains_key(&id), "id {id} missing");
    }
    assert_eq!(ids.len() as u64, COUNT);
    let duplicates: u32 = ids.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "a drained stop commits what it wrote");
    assert!(
        state.source_state("gen").unwrap().is_some(),
        "the source's checkpoint was saved"
    );
}
