//! random source -> a real Apache Iggy server -> no-op sink, end to end, source only and
//! sink only, next to the raw `iggy` client sending and polling the same messages
//! concurrently, in one run. After every run the sink has delivered exactly what the
//! source produced.
//!
//! Needs the `iggy` feature and `IGGY_TEST_ADDRESS` (user and password iggy/iggy):
//! `IGGY_TEST_ADDRESS=127.0.0.1:8090 cargo bench -p ld-e2e-tests --features iggy --bench
//! iggy_pipeline` (`LD_BENCH_MESSAGES` changes the 1,000,000 messages per measurement).
//! Without the address it prints a skip notice.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use iggy::prelude::{
    Client, Consumer, Identifier, IggyClient, IggyMessage, MessageClient, Partitioning,
    PollingStrategy, TopicClient, UserClient,
};
use ld_connectord::{
    config::{SinkStream, SourceStream},
    instance::{run_sink, run_source, CallPolicy, InstanceMetrics, SinkTask, SourceTask},
    plugin_host::PluginLibrary,
    state::StateStore,
    stream::{
        iggy::{IggyBackend, IggyConfig},
        StreamBackend, TopicRef,
    },
};
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

const BATCH: u64 = 1000;
const PAYLOAD: usize = 100;

fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("bench-{what}-{nanos}")
}

struct Bench {
    address: String,
    messages: u64,
    cache: tempfile::TempDir,
}

impl Bench {
    fn backend(&self) -> Arc<dyn StreamBackend> {
        Arc::new(IggyBackend::new(IggyConfig {
            address: self.address.clone(),
            ..IggyConfig::default()
        }))
    }

    async fn raw_client(&self) -> IggyClient {
        let client = IggyClient::builder()
            .with_tcp()
            .with_server_address(self.address.clone())
            .build()
            .unwrap();
        client.connect().await.unwrap();
        client.login_user("iggy", "iggy").await.unwrap();
        client
    }

    /// The raw client: one connection sends the batches the random source makes while
    /// another polls them, both as fast as they go. Returns msg/s end to end.
    async fn raw(&self) -> f64 {
        let topic = TopicRef::new(unique("raw"), "numbers");
        // The topic is created the way the daemon creates it.
        drop(self.backend().producer(&topic).await.unwrap());
        let (stream_id, topic_id) = (
            Identifier::named(&topic.stream).unwrap(),
            Identifier::named(&topic.topic).unwrap(),
        );
        let sender = self.raw_client().await;
        let poller = self.raw_client().await;
        let details = sender
            .get_topic(&stream_id, &topic_id)
            .await
            .unwrap()
            .unwrap();
        let partition = details.partitions.first().map_or(0, |p| p.id);
        let mut payload = String::new();
        let mut batches: Vec<Vec<IggyMessage>> = (0..self.messages / BATCH)
            .map(|b| {
                (0..BATCH)
                    .map(|i| {
                        let n = b * BATCH + i;
                        ld_random_source::payload_of(5, n, PAYLOAD, &mut payload);
                        IggyMessage::builder()
                            .id(u128::from(n) + 1)
                            .payload(Bytes::copy_from_slice(payload.as_bytes()))
                            .build()
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let send = async {
            for batch in batches.iter_mut() {
                sender
                    .send_messages(
                        &stream_id,
                        &topic_id,
                        &Partitioning::partition_id(partition),
                        batch,
                    )
                    .await
                    .unwrap();
            }
        };
        let poll = async {
            let consumer = Consumer::new(Identifier::numeric(1).unwrap());
            let mut offset = 0u64;
            while offset < self.messages {
                let polled = poller
                    .poll_messages(
                        &stream_id,
                        &topic_id,
                        Some(partition),
                        &consumer,
                        &PollingStrategy::offset(offset),
                        BATCH as u32,
                        false,
                    )
                    .await
                    .unwrap();
                if polled.messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                offset += polled.messages.len() as u64;
            }
            offset
        };
        let ((), read) = tokio::join!(send, poll);
        let rate = self.messages as f64 / started.elapsed().as_secs_f64();
        assert_eq!(read, self.messages, "the raw client read what it sent");
        rate
    }

    async fn source(&self, topic: &TopicRef, stop: CancellationToken) -> Arc<InstanceMetrics> {
        let random =
            PluginLibrary::load(&ld_e2e_tests::plugin("random_source"), self.cache.path()).unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(state_dir.path(), false).unwrap();
        let metrics = Arc::new(InstanceMetrics::default());
        let config = format!(
            r#"{{"seed": 5, "count": {}, "batch_size": {BATCH}, "payload_size": {PAYLOAD}}}"#,
            self.messages
        );
        let task = SourceTask {
            instance_key: "gen".into(),
            streams: vec![SourceStream {
                stream: topic.stream.clone(),
                topic: topic.topic.clone(),
                schema: Schema::Json,
                batch_length: BATCH as u32,
                linger_time: Duration::from_millis(5),
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin: random.new_source("gen", &config, None).await.unwrap(),
            backend: self.backend(),
            state,
            policy: CallPolicy::default(),
            metrics: metrics.clone(),
            shared: None,
        };
        tokio::spawn(async move {
            let _keep = state_dir;
            run_source(task, stop).await.unwrap();
        });
        metrics
    }

    async fn sink(&self, topic: &TopicRef, stop: CancellationToken) -> Arc<InstanceMetrics> {
        let stdout =
            PluginLibrary::load(&ld_e2e_tests::plugin("stdout_sink"), self.cache.path()).unwrap();
        let metrics = Arc::new(InstanceMetrics::default());
        let task = SinkTask {
            instance_key: "out".into(),
            streams: vec![SinkStream {
                stream: topic.stream.clone(),
                topics: vec![topic.topic.clone()],
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
            backend: self.backend(),
            policy: CallPolicy::default(),
            metrics: metrics.clone(),
        };
        tokio::spawn(async move { run_sink(task, stop).await.unwrap() });
        metrics
    }

    /// Waits until `metrics` counted every message; msg/s since `started`.
    async fn until_all(&self, metrics: &InstanceMetrics, started: Instant) -> f64 {
        while metrics.messages.load(Ordering::Relaxed) < self.messages {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.messages as f64 / started.elapsed().as_secs_f64()
    }

    /// Returns msg/s (end to end, source only, sink only).
    async fn ours(&self) -> (f64, f64, f64) {
        // End to end: source and sink at once.
        let topic = TopicRef::new(unique("e2e"), "numbers");
        let stop = CancellationToken::new();
        let started = Instant::now();
        let source = self.source(&topic, stop.clone()).await;
        let sink = self.sink(&topic, stop.clone()).await;
        let e2e = self.until_all(&sink, started).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        let (produced, delivered) = (
            source.messages.load(Ordering::Relaxed),
            sink.messages.load(Ordering::Relaxed),
        );
        assert_eq!(
            (produced, delivered),
            (self.messages, self.messages),
            "the sink delivered exactly what the source produced"
        );

        // Source alone into a fresh topic, then the sink alone reading it back.
        let topic = TopicRef::new(unique("split"), "numbers");
        let stop = CancellationToken::new();
        let started = Instant::now();
        let source = self.source(&topic, stop.clone()).await;
        let source_only = self.until_all(&source, started).await;
        stop.cancel();
        let stop = CancellationToken::new();
        let started = Instant::now();
        let sink = self.sink(&topic, stop.clone()).await;
        let sink_only = self.until_all(&sink, started).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
        assert_eq!(
            sink.messages.load(Ordering::Relaxed),
            self.messages,
            "the sink alone delivered exactly what the source produced"
        );
        (e2e, source_only, sink_only)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let Ok(address) = std::env::var("IGGY_TEST_ADDRESS") else {
        println!("skipped: IGGY_TEST_ADDRESS is not set (an Apache Iggy server's TCP address)");
        return;
    };
    let messages: u64 = std::env::var("LD_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds = 3;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = Bench {
        address,
        messages,
        cache: tempfile::tempdir().unwrap(),
    };
    println!(
        "random -> Iggy at {} -> no-op sink, {messages} messages of {PAYLOAD} B in batches of {BATCH}, one partition; medians of {rounds} alternating rounds",
        bench.address
    );
    let (mut raw, mut e2e, mut src, mut snk) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw.push(rt.block_on(bench.raw()));
        let (a, b, c) = rt.block_on(bench.ours());
        e2e.push(a);
        src.push(b);
        snk.push(c);
    }
    let (raw, e2e, src, snk) = (median(raw), median(e2e), median(src), median(snk));
    println!("  raw client (send + poll at once): {raw:>10.0} msg/s");
    println!("  ld-connectord end to end:         {e2e:>10.0} msg/s");
    println!("  ld-connectord source only:        {src:>10.0} msg/s");
    println!("  ld-connectord sink only:          {snk:>10.0} msg/s");
    println!(
        "  end to end / raw client: {:.0}% (targets: at least 580,000 msg/s and 70% of the raw client)",
        100.0 * e2e / raw
    );
}
