//! random source -> embedded log -> no-op sink, next to raw appends of the same batches
//! to the same store (the limit), in one run.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench pipeline` (set `LD_BENCH_MESSAGES` to change
//! the 2,000,000 messages per measurement).

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use ld_connectord::{
    config::{SinkStream, SourceStream},
    instance::{run_sink, run_source, CallPolicy, InstanceMetrics, SinkTask, SourceTask},
    plugin_host::PluginLibrary,
    state::StateStore,
    stream::{
        embedded::{Durability, EmbeddedLog, EmbeddedSettings},
        MessageBatch, StreamBackend, TopicRef,
    },
};
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

const BATCH: u64 = 1000;
const PAYLOAD: usize = 100;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn open(dir: &std::path::Path, durability: Durability) -> (StateStore, EmbeddedLog) {
    let db = ld_connectord::engine::open_db(dir).unwrap();
    let state =
        StateStore::with_db(db.clone(), EmbeddedLog::CAPABILITIES.state_store_flushes).unwrap();
    let log = EmbeddedLog::open(
        db,
        EmbeddedSettings {
            durability,
            ..EmbeddedSettings::default()
        },
    )
    .unwrap();
    (state, log)
}

/// The same batches the random source makes, appended straight to the store.
async fn raw_appends(messages: u64, durability: Durability) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (_state, log) = open(dir.path(), durability);
    let mut payload = String::new();
    let batches: Vec<MessageBatch> = (0..messages / BATCH)
        .map(|b| {
            let mut batch = MessageBatch::with_capacity(BATCH as usize, BATCH as usize * PAYLOAD);
            for i in 0..BATCH {
                let n = b * BATCH + i;
                ld_random_source::payload_of(5, n, PAYLOAD, &mut payload);
                batch.push(
                    u128::from(n) + 1,
                    0,
                    0,
                    Schema::Json,
                    [],
                    payload.as_bytes(),
                );
            }
            batch
        })
        .collect();
    let topic = TopicRef::new("bench", "raw");
    let mut producer = log.producer(&topic).await.unwrap();
    let started = Instant::now();
    for batch in &batches {
        producer.append(batch).await.unwrap();
    }
    messages as f64 / started.elapsed().as_secs_f64()
}

/// Returns (messages/s, peak RSS MiB during the run).
async fn pipeline(messages: u64, durability: Durability, cache: &std::path::Path) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (state, log) = open(dir.path(), durability);
    let backend: Arc<dyn StreamBackend> = Arc::new(log);
    let random = PluginLibrary::load(&ld_e2e_tests::plugin("random_source"), cache).unwrap();
    let stdout = PluginLibrary::load(&ld_e2e_tests::plugin("stdout_sink"), cache).unwrap();
    let source_config = format!(
        r#"{{"seed": 5, "count": {messages}, "batch_size": {BATCH}, "payload_size": {PAYLOAD}}}"#
    );
    let policy = CallPolicy::default();
    let sink_metrics = Arc::new(InstanceMetrics::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let source = tokio::spawn(run_source(
        SourceTask {
            instance_key: "gen".into(),
            streams: vec![SourceStream {
                stream: "bench".into(),
                topic: "pipeline".into(),
                schema: Schema::Json,
                batch_length: BATCH as u32,
                linger_time: Duration::from_millis(5),
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin: random
                .new_source("gen", &source_config, None)
                .await
                .unwrap(),
            backend: backend.clone(),
            state,
            policy,
            metrics: Arc::new(InstanceMetrics::default()),
            shared: None,
        },
        stop.clone(),
    ));
    let sink = tokio::spawn(run_sink(
        SinkTask {
            instance_key: "out".into(),
            streams: vec![SinkStream {
                stream: "bench".into(),
                topics: vec!["pipeline".into()],
                schema: Schema::Json,
                batch_length: BATCH as u32,
                poll_interval: Duration::from_millis(5),
                consumer_group: None,
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin: stdout
                .new_sink("out", r#"{"print_payload": false}"#)
                .await
                .unwrap(),
            backend,
            policy,
            metrics: sink_metrics.clone(),
        },
        stop.clone(),
    ));
    let mut peak: f64 = 0.0;
    while sink_metrics.messages.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_millis(5)).await;
        peak = peak.max(rss_mib());
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    source.await.unwrap().unwrap();
    sink.await.unwrap().unwrap();
    (rate, peak)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let messages: u64 = std::env::var("LD_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let rounds = 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    println!(
        "random -> embedded log -> no-op sink, {messages} messages of {PAYLOAD} B in batches of {BATCH}, transforms off; medians of {rounds} rounds"
    );
    for (name, durability) in [
        ("fsync per batch", Durability::Batch),
        (
            "fsync every 100 ms",
            Durability::Interval(Duration::from_millis(100)),
        ),
    ] {
        let (mut raw, mut pipe, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            raw.push(rt.block_on(raw_appends(messages, durability)));
            let (rate, peak) = rt.block_on(pipeline(messages, durability, cache.path()));
            pipe.push(rate);
            peaks.push(peak);
        }
        let (raw, pipe, peak) = (median(raw), median(pipe), median(peaks));
        println!("durability: {name}");
        println!(
            "  raw appends:  {:>10.0} msg/s  {:>7.1} MB/s",
            raw,
            raw * PAYLOAD as f64 / 1e6
        );
        println!(
            "  pipeline:     {:>10.0} msg/s  {:>7.1} MB/s  peak RSS {:.0} MiB",
            pipe,
            pipe * PAYLOAD as f64 / 1e6,
            peak
        );
        println!(
            "  pipeline / raw appends: {:.0}% (target: at least 80%, and at least 1,000,000 msg/s)",
            100.0 * pipe / raw
        );
    }
}
