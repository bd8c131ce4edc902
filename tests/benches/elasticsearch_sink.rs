//! Elasticsearch sink throughput against a plain `_bulk` loop, on one real OpenSearch node
//! (`ld_e2e_tests::opensearch`), in one run.
//!
//! 1. The pipeline: random source -> embedded log -> `elasticsearch` sink, in-process with
//!    the real loader and the real instance tasks (`run_source` / `run_sink`), about 1 KB
//!    JSON documents, batches and bulks of 1000.
//! 2. The plain loop: the same documents (same ids, same bulk size) as pre-built NDJSON
//!    bodies, `POST /_bulk` one after the other, checking `errors`.
//!
//! Each round writes into fresh indices (deleted afterwards); the figures are medians.
//! Target: sink >= 0.80 x plain loop.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench elasticsearch_sink`
//! (`LD_ES_BENCH_DOCS=20000` for a quick run; default 100,000 documents per measurement).
//! Skips with a notice when no OpenSearch can be started (no java or mvn).

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
        embedded::{EmbeddedLog, EmbeddedSettings},
        StreamBackend,
    },
};
use ld_e2e_tests::opensearch::OpenSearch;
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

const BULK: u64 = 1000;
const PAYLOAD: usize = 1000;
const SEED: u64 = 11;
const STREAM: &str = "bench";

/// The random source's `value` is any u64, beyond the `long` a dynamic mapping picks.
fn mapping() -> serde_json::Value {
    serde_json::json!({"properties": {"id": {"type": "long"}, "value": {"type": "keyword"}}})
}

/// The sink pipeline into `index`; documents per second, from the first message to the
/// last one stored.
async fn pipeline(os: &OpenSearch, docs: u64, index: &str, cache: &std::path::Path) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = ld_connectord::engine::open_db(dir.path()).unwrap();
    let state =
        StateStore::with_db(db.clone(), EmbeddedLog::CAPABILITIES.state_store_flushes).unwrap();
    let log = EmbeddedLog::open(db, EmbeddedSettings::default()).unwrap();
    let backend: Arc<dyn StreamBackend> = Arc::new(log);
    let random = PluginLibrary::load(&ld_e2e_tests::plugin("random_source"), cache).unwrap();
    let es = PluginLibrary::load(&ld_e2e_tests::plugin("elasticsearch_sink"), cache).unwrap();
    let source_config = format!(
        r#"{{"seed": {SEED}, "count": {docs}, "batch_size": {BULK}, "payload_size": {PAYLOAD}}}"#
    );
    let sink_config = serde_json::json!({
        "url": os.url(), "index": index, "max_bulk_docs": BULK,
        "max_bulk_bytes": 100 * 1024 * 1024, "index_mapping": mapping(),
    })
    .to_string();
    let policy = CallPolicy::default();
    let sink_metrics = Arc::new(InstanceMetrics::default());
    let stop = CancellationToken::new();
    let mut plugin = es.new_sink("es", &sink_config).await.unwrap();
    // Open (GET /, index creation) before the clock starts, as the plain loop's index
    // exists before its clock starts too.
    plugin.open().await.unwrap();
    let started = Instant::now();
    let source = tokio::spawn(run_source(
        SourceTask {
            instance_key: "gen".into(),
            streams: vec![SourceStream {
                stream: STREAM.into(),
                topic: index.into(),
                schema: Schema::Json,
                batch_length: BULK as u32,
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
            instance_key: "es".into(),
            streams: vec![SinkStream {
                stream: STREAM.into(),
                topics: vec![index.into()],
                schema: Schema::Json,
                batch_length: BULK as u32,
                poll_interval: Duration::from_millis(5),
                consumer_group: None,
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin,
            backend,
            policy,
            metrics: sink_metrics.clone(),
        },
        stop.clone(),
    ));
    while sink_metrics.messages.load(Ordering::Relaxed) < docs {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = docs as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    source.await.unwrap().unwrap();
    sink.await.unwrap().unwrap();
    assert_eq!(os.count(index), docs, "every message is one document");
    rate
}

/// The same documents as NDJSON bodies of `BULK` documents each, with the ids the sink
/// derives.
fn bodies(docs: u64, index: &str) -> Vec<Vec<u8>> {
    let mut payload = String::new();
    (0..docs.div_ceil(BULK))
        .map(|b| {
            let mut body = Vec::with_capacity((BULK as usize) * (PAYLOAD + 100));
            for n in b * BULK..((b + 1) * BULK).min(docs) {
                ld_random_source::payload_of(SEED, n, PAYLOAD, &mut payload);
                body.extend_from_slice(
                    format!(
                        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{STREAM}/{index}/0/{n}\"}}}}\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(payload.as_bytes());
                body.push(b'\n');
            }
            body
        })
        .collect()
}

/// `POST /_bulk` of pre-built bodies, one after the other; documents per second.
async fn plain_loop(os: &OpenSearch, docs: u64, index: &str) -> f64 {
    let bodies = bodies(docs, index);
    let client = reqwest::Client::new();
    let (status, body) = os.put_json(
        &format!("/{index}"),
        &serde_json::json!({ "mappings": mapping() }),
    );
    assert_eq!(status, 200, "{body}");
    let url = format!("{}/_bulk", os.url());
    let started = Instant::now();
    for body in bodies {
        let answer = client
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let text = answer.bytes().await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            value["errors"],
            false,
            "{}",
            String::from_utf8_lossy(&text[..text.len().min(500)])
        );
    }
    let rate = docs as f64 / started.elapsed().as_secs_f64();
    assert_eq!(os.count(index), docs);
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let docs: u64 = std::env::var("LD_ES_BENCH_DOCS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let rounds = 3;
    let Some(os) = OpenSearch::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let version = os.get_json("/")["version"]["number"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    println!(
        "elasticsearch sink benchmark: OpenSearch {version}, {docs} documents of ~{PAYLOAD} B JSON per measurement, bulks of {BULK}; medians of {rounds} rounds"
    );
    // Warm-up: the JVM's JIT and the first index creation.
    rt.block_on(plain_loop(&os, docs.min(10_000), "warmup"));
    os.request("DELETE", "/warmup", None);
    let (mut plain, mut sink) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let index = format!("plain-{round}");
        let rate = rt.block_on(plain_loop(&os, docs, &index));
        println!("  round {round}: plain _bulk loop  {rate:>10.0} docs/s");
        os.request("DELETE", &format!("/{index}"), None);
        plain.push(rate);
        let index = format!("sink-{round}");
        let rate = rt.block_on(pipeline(&os, docs, &index, cache.path()));
        println!("  round {round}: sink pipeline     {rate:>10.0} docs/s");
        os.request("DELETE", &format!("/{index}"), None);
        sink.push(rate);
    }
    let (plain, sink) = (median(plain), median(sink));
    println!(
        "plain _bulk loop:                      {plain:>10.0} docs/s  {:>6.1} MB/s",
        plain * PAYLOAD as f64 / 1e6
    );
    println!(
        "random -> embedded log -> sink:        {sink:>10.0} docs/s  {:>6.1} MB/s",
        sink * PAYLOAD as f64 / 1e6
    );
    println!("sink / plain loop = {:.2}  (target >= 0.80)", sink / plain);
}
