//! What only the `iggy` backend does, against a real Apache Iggy server: creating (or
//! not) missing topics, connection failures, the stored offset, exact offsets under
//! concurrent producers, consumer-group assignment, a server restart. The contract it
//! shares with every backend is checked by `stream_conformance.rs`.
//!
//! Set `IGGY_TEST_ADDRESS` (e.g. `127.0.0.1:8090`) and optionally `IGGY_TEST_USER` /
//! `IGGY_TEST_PASSWORD` (default `iggy`/`iggy`); without it every test is skipped.
//! Every test uses its own stream, so reruns against one server do not collide.
#![cfg(feature = "iggy")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ld_connectord::stream::iggy::{IggyBackend, IggyConfig};
use ld_connectord::stream::{
    Consumer, MessageBatch, Polled, SeekTo, StreamBackend, StreamError, TopicDurability, TopicRef,
};
use ld_plugin_api::Schema;

const SKIPPED: &str = "skipped: IGGY_TEST_ADDRESS is not set";

fn config() -> Option<IggyConfig> {
    let address = std::env::var("IGGY_TEST_ADDRESS").ok()?;
    Some(IggyConfig {
        address,
        username: std::env::var("IGGY_TEST_USER").unwrap_or_else(|_| "iggy".into()),
        password: std::env::var("IGGY_TEST_PASSWORD").unwrap_or_else(|_| "iggy".into()),
        ..IggyConfig::default()
    })
}

/// A stream name no other test run used.
fn unique(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ld-test-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Message `i`: id `i + 1`, a 100-byte payload derived from `i`.
fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("message {i:08} ").into_bytes();
    p.resize(100, b'a' + (i % 26) as u8);
    p
}

fn batch(range: std::ops::Range<u64>) -> MessageBatch {
    let mut b = MessageBatch::with_capacity(range.clone().count(), 100 * range.clone().count());
    for i in range {
        b.push(u128::from(i) + 1, 0, 0, Schema::Raw, [], &payload(i));
    }
    b
}

async fn append_all(backend: &IggyBackend, topic: &TopicRef, batches: u64, per_batch: u64) {
    let mut producer = backend.producer(topic).await.expect("producer");
    for b in 0..batches {
        let appended = producer
            .append(&batch(b * per_batch..(b + 1) * per_batch))
            .await
            .expect("append");
        assert_eq!(
            appended.first_offset,
            b * per_batch,
            "first offset of batch {b}"
        );
        assert_eq!(
            appended.last_offset,
            (b + 1) * per_batch - 1,
            "last offset of batch {b}"
        );
    }
}

/// Reads until `n` messages arrived; checks ids, offsets and payloads from `first`.
async fn read_exactly(consumer: &mut dyn Consumer, first: u64, n: u64) -> Vec<Polled> {
    let mut next = first;
    let mut polls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while next < first + n {
        assert!(Instant::now() < deadline, "timed out at message {next}");
        let want = u32::try_from(first + n - next).unwrap().min(1000);
        let polled = consumer
            .poll(want, Duration::from_millis(500))
            .await
            .expect("poll");
        for m in polled.batch.iter() {
            let e = m.entry();
            assert_eq!(e.offset, next, "offset");
            assert_eq!(e.id, u128::from(next) + 1, "id of offset {next}");
            assert_eq!(m.payload(), payload(next).as_slice(), "payload of {next}");
            assert_eq!(e.schema, Schema::Raw);
            assert!(e.timestamp_micros > 0);
            next += 1;
        }
        polls.push(polled);
    }
    assert_eq!(next, first + n, "read past the end");
    polls
}

#[tokio::test]
async fn missing_topic_without_create_is_no_such_topic() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(IggyConfig {
        create_missing: false,
        ..config.clone()
    });
    let topic = TopicRef::new(unique("missing"), "events");
    match backend.producer(&topic).await {
        Err(StreamError::NoSuchTopic(t)) => assert_eq!(t, topic),
        Err(e) => panic!("expected NoSuchTopic, got {e}"),
        Ok(_) => panic!("expected NoSuchTopic, got a producer"),
    }
    match backend.consumer(&topic, "sink").await {
        Err(StreamError::NoSuchTopic(t)) => assert_eq!(t, topic),
        Err(e) => panic!("expected NoSuchTopic, got {e}"),
        Ok(_) => panic!("expected NoSuchTopic, got a consumer"),
    }
    // The stream exists but not the topic.
    let creating = IggyBackend::new(config);
    creating.producer(&topic).await.expect("created");
    let other = TopicRef::new(topic.stream.clone(), "other");
    assert!(matches!(
        backend.producer(&other).await,
        Err(StreamError::NoSuchTopic(_))
    ));
    backend.producer(&topic).await.expect("exists now");
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    if config().is_none() {
        println!("{SKIPPED}");
        return;
    }
    let backend = IggyBackend::new(IggyConfig {
        address: "127.0.0.1:1".into(),
        reconnect_retries: 1,
        reconnect_interval: Duration::from_millis(50),
        ..IggyConfig::default()
    });
    let topic = TopicRef::new(unique("down"), "events");
    match backend.producer(&topic).await {
        Err(e) => assert!(e.is_transient(), "not transient: {e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// What the server stored for `group` on `partition`, through the plain client.
async fn stored_offset(
    config: &IggyConfig,
    topic: &TopicRef,
    group: &str,
    partition: u32,
) -> Option<u64> {
    use iggy::prelude::{Client, ConsumerOffsetClient, Identifier, IggyClient, UserClient};
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(config.address.clone())
        .build()
        .unwrap();
    client.connect().await.unwrap();
    client
        .login_user(&config.username, &config.password)
        .await
        .unwrap();
    client
        .get_consumer_offset(
            &iggy::prelude::Consumer::group(Identifier::named(group).unwrap()),
            &Identifier::named(&topic.stream).unwrap(),
            &Identifier::named(&topic.topic).unwrap(),
            Some(partition),
        )
        .await
        .unwrap()
        .map(|info| info.stored_offset)
}

#[tokio::test]
async fn commit_stores_the_last_processed_offset() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(config.clone());
    let topic = TopicRef::new(unique("stored"), "events");
    append_all(&backend, &topic, 1, 10).await;
    let mut consumer = backend.consumer(&topic, "sink").await.expect("consumer");
    let polls = read_exactly(consumer.as_mut(), 0, 10).await;
    let p = polls[0].partition;
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, None);
    // Nothing processed: nothing to store.
    consumer.commit(p, 0).await.expect("commit");
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, None);
    consumer.commit(p, 1).await.expect("commit");
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, Some(0));
    consumer.commit(p, 10).await.expect("commit");
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, Some(9));
}

#[tokio::test]
async fn a_topic_is_created_with_the_durability_asked_for() {
    use iggy::prelude::{Client, Identifier, IggyClient, TopicClient, UserClient};
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(config.clone());
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(config.address.clone())
        .build()
        .unwrap();
    client.connect().await.unwrap();
    client
        .login_user(&config.username, &config.password)
        .await
        .unwrap();
    let options = |topic: TopicRef| {
        let client = &client;
        async move {
            let details = client
                .get_topic(
                    &Identifier::named(&topic.stream).unwrap(),
                    &Identifier::named(&topic.topic).unwrap(),
                )
                .await
                .unwrap()
                .expect("created");
            details
                .options
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k.as_bytes()).into_owned(),
                        format!("{v:?}"),
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let fsync = TopicRef::new(unique("fsync"), "events");
    backend
        .prepare_topic(&fsync, TopicDurability::Fsync)
        .await
        .expect("prepared");
    let got = options(fsync.clone()).await;
    assert!(got["enforce_fsync"].contains("true"), "{got:?}");
    assert!(got["messages_required_to_save"].contains('1'), "{got:?}");
    let default = TopicRef::new(unique("default"), "events");
    backend
        .prepare_topic(&default, TopicDurability::Default)
        .await
        .expect("prepared");
    let got = options(default).await;
    assert!(
        got.get("enforce_fsync").is_none_or(|v| v.contains("false")),
        "{got:?}"
    );
    // A topic that exists keeps its settings.
    backend
        .prepare_topic(&fsync, TopicDurability::Default)
        .await
        .expect("prepared");
    assert!(options(fsync).await["enforce_fsync"].contains("true"));
}

#[tokio::test]
async fn a_consumer_fetches_ahead_but_hands_out_at_most_what_is_asked() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(IggyConfig {
        fetch_batches: 4,
        ..config
    });
    let topic = TopicRef::new(unique("ahead"), "events");
    append_all(&backend, &topic, 10, 100).await;
    let mut consumer = backend.consumer(&topic, "sink").await.expect("consumer");
    let (mut next, mut committed) = (0, None);
    while next < 1000 {
        let polled = consumer
            .poll(70, Duration::from_millis(500))
            .await
            .expect("poll");
        assert!(polled.batch.len() <= 70, "{} messages", polled.batch.len());
        for m in polled.batch.iter() {
            assert_eq!(m.entry().offset, next);
            next += 1;
        }
        if committed.is_none() && next >= 350 {
            consumer
                .commit(polled.partition, next)
                .await
                .expect("commit");
            committed = Some(next);
        }
    }
    // What was fetched but not committed comes again to the next consumer of the group.
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = backend.consumer(&topic, "sink").await.expect("consumer");
    let from = committed.unwrap();
    read_exactly(again.as_mut(), from, 1000 - from).await;
}

#[tokio::test]
async fn seek_moves_a_group_backwards_and_forwards() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(config.clone());
    let topic = TopicRef::new(unique("seek"), "events");
    append_all(&backend, &topic, 2, 50).await;
    let mut consumer = backend.consumer(&topic, "sink").await.expect("consumer");
    let polls = read_exactly(consumer.as_mut(), 0, 100).await;
    let p = polls[0].partition;
    consumer.commit(p, 100).await.expect("commit");
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Back to 30: the next consumer reads from there.
    let mut mover = backend.consumer(&topic, "sink").await.expect("consumer");
    assert_eq!(
        mover.seek(SeekTo::Offset(30)).await.expect("seek"),
        vec![(p, 30)]
    );
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, Some(29));
    drop(mover);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = backend.consumer(&topic, "sink").await.expect("consumer");
    read_exactly(again.as_mut(), 30, 70).await;
    // Earliest: nothing stored, everything again; latest: only what comes next.
    assert_eq!(
        again.seek(SeekTo::Earliest).await.expect("seek"),
        vec![(p, 0)]
    );
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, None);
    assert_eq!(
        again.seek(SeekTo::Latest).await.expect("seek"),
        vec![(p, 100)]
    );
    assert_eq!(stored_offset(&config, &topic, "sink", p).await, Some(99));
}

#[tokio::test]
async fn concurrent_producers_get_exact_offsets() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(config);
    let topic = TopicRef::new(unique("concurrent"), "events");
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let mut producer = backend.producer(&topic).await.expect("producer");
        tasks.push(tokio::spawn(async move {
            let mut ranges = Vec::new();
            for b in 0..20u64 {
                let base = (w * 20 + b) * 50;
                let a = producer
                    .append(&batch(base..base + 50))
                    .await
                    .expect("append");
                assert_eq!(a.last_offset - a.first_offset, 49);
                ranges.push((a.first_offset, base));
            }
            ranges
        }));
    }
    // offset -> message index, from what append reported.
    let mut expected = std::collections::HashMap::new();
    for t in tasks {
        for (first, base) in t.await.unwrap() {
            for k in 0..50 {
                assert!(
                    expected.insert(first + k, base + k).is_none(),
                    "offset reported twice"
                );
            }
        }
    }
    assert_eq!(expected.len(), 4000);
    let mut consumer = backend.consumer(&topic, "sink").await.expect("consumer");
    let mut seen = 0;
    while seen < 4000 {
        let polled = consumer
            .poll(1000, Duration::from_secs(2))
            .await
            .expect("poll");
        assert!(!polled.batch.is_empty(), "missing messages after {seen}");
        for m in polled.batch.iter() {
            let i = expected[&m.entry().offset];
            assert_eq!(m.entry().id, u128::from(i) + 1);
            assert_eq!(m.payload(), payload(i).as_slice());
            seen += 1;
        }
    }
}

#[tokio::test]
async fn a_group_splits_partitions_and_takes_over_from_a_leaver() {
    let Some(config) = config() else {
        println!("{SKIPPED}");
        return;
    };
    let backend = IggyBackend::new(IggyConfig {
        partitions: 3,
        ..config
    });
    let topic = TopicRef::new(unique("partitions"), "events");
    let mut producer = backend.producer(&topic).await.expect("producer");
    let mut partitions = std::collections::BTreeSet::new();
    for b in 0..6u64 {
        let a = producer
            .append(&batch(b * 10..b * 10 + 10))
            .await
            .expect("append");
        assert_eq!(a.first_offset, b / 3 * 10, "round-robin over 3 partitions");
        partitions.insert(a.partition);
    }
    assert_eq!(partitions.len(), 3);

    // Alone in its group: reads all 60, every batch from one partition, in order.
    let mut alone = backend.consumer(&topic, "solo").await.expect("consumer");
    let mut ids = Vec::new();
    let mut from = std::collections::HashMap::new();
    while ids.len() < 60 {
        let polled = alone.poll(100, Duration::from_secs(2)).await.expect("poll");
        assert!(!polled.batch.is_empty(), "stalled at {}", ids.len());
        for m in polled.batch.iter() {
            let next = from.entry(polled.partition).or_insert(0);
            assert_eq!(m.entry().offset, *next);
            *next += 1;
            ids.push(m.entry().id);
        }
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=60).collect::<Vec<u128>>());

    // Two members: disjoint shares that cover everything.
    let mut a = backend.consumer(&topic, "pair").await.expect("consumer");
    let mut b = backend.consumer(&topic, "pair").await.expect("consumer");
    let mut got = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < 60 && Instant::now() < deadline {
        for (name, c) in [("a", &mut a), ("b", &mut b)] {
            let polled = c.poll(100, Duration::from_millis(100)).await.expect("poll");
            for m in polled.batch.iter() {
                got.insert(m.entry().id, (name, polled.partition));
            }
        }
    }
    assert_eq!(got.len(), 60, "the pair read everything");
    let by_a: std::collections::BTreeSet<u32> = got
        .values()
        .filter(|(n, _)| *n == "a")
        .map(|(_, p)| *p)
        .collect();
    let by_b: std::collections::BTreeSet<u32> = got
        .values()
        .filter(|(n, _)| *n == "b")
        .map(|(_, p)| *p)
        .collect();
    assert!(by_a.is_disjoint(&by_b), "a {by_a:?} b {by_b:?}");
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "a {by_a:?} b {by_b:?}"
    );

    // b commits nothing and leaves: a takes over b's partitions from the start.
    drop(b);
    let expected = 20 * by_b.len();
    let mut again = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while again < expected && Instant::now() < deadline {
        let polled = a.poll(100, Duration::from_millis(200)).await.expect("poll");
        if !polled.batch.is_empty() {
            assert!(
                by_b.contains(&polled.partition),
                "partition {}",
                polled.partition
            );
            again += polled.batch.len();
        }
    }
    assert_eq!(again, expected, "b's uncommitted messages went to a");
}

fn config_at(port: u16) -> IggyConfig {
    IggyConfig {
        address: format!("127.0.0.1:{port}"),
        ..config().expect("IGGY_TEST_ADDRESS")
    }
}

/// A server of our own (binary from `IGGY_TEST_SERVER_BIN`) on `port`, data in `dir`.
fn spawn_server(bin: &str, dir: &std::path::Path, port: u16) -> Server {
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} is taken"
    );
    let child = std::process::Command::new(bin)
        .arg("--with-default-root-credentials")
        .env("IGGY_SYSTEM_PATH", dir)
        .env("IGGY_TCP_ADDRESS", format!("127.0.0.1:{port}"))
        .env("IGGY_HTTP_ENABLED", "false")
        .env("IGGY_QUIC_ENABLED", "false")
        .env("IGGY_WEBSOCKET_ENABLED", "false")
        .env(
            "IGGY_CONFIG_PATH",
            std::env::var("IGGY_TEST_SERVER_CONFIG").unwrap_or_default(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start iggy-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "iggy-server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server(child)
}

/// Kills the server when a test fails half-way.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the server under a producer and a consumer: calls fail as transient, and the
/// producer works again once the server is back. Needs `IGGY_TEST_SERVER_BIN` (and
/// `IGGY_TEST_SERVER_CONFIG`, the server's config.toml) since it restarts a server.
#[tokio::test]
async fn a_server_outage_is_transient() {
    let (Ok(bin), Some(config)) = (std::env::var("IGGY_TEST_SERVER_BIN"), config()) else {
        println!("skipped: IGGY_TEST_SERVER_BIN or IGGY_TEST_ADDRESS is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = 18090;
    let mut server = spawn_server(&bin, dir.path(), port);
    let backend = IggyBackend::new(IggyConfig {
        address: format!("127.0.0.1:{port}"),
        reconnect_retries: 2,
        reconnect_interval: Duration::from_millis(200),
        ..config
    });
    let topic = TopicRef::new(unique("outage"), "events");
    let mut producer = backend.producer(&topic).await.expect("producer");
    producer.append(&batch(0..10)).await.expect("append");
    let mut consumer = backend.consumer(&topic, "sink").await.expect("consumer");
    let polls = read_exactly(consumer.as_mut(), 0, 10).await;
    consumer
        .commit(polls[0].partition, 5)
        .await
        .expect("commit");

    // A clean stop (SIGTERM: the server flushes; a SIGKILL loses what the server's
    // flush settings had not written yet).
    stop(&mut server);
    let started = Instant::now();
    let e = producer
        .append(&batch(10..20))
        .await
        .expect_err("append to nothing");
    assert!(e.is_transient(), "append: {e}");
    let e = consumer
        .poll(10, Duration::from_millis(100))
        .await
        .expect_err("poll from nothing");
    assert!(e.is_transient(), "poll: {e}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let mut server = spawn_server(&bin, dir.path(), port);
    // The same producer and consumer work again once the server is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let appended = loop {
        match producer.append(&batch(10..20)).await {
            Ok(a) => break a,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("append after the restart: {e}"),
        }
    };
    assert_eq!(appended.first_offset, 10);
    // The server keeps the consumer's member from before its restart and would give
    // it the partition forever; the consumer re-creates the group with its stored
    // offset and reads on from the committed one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let polled = loop {
        match consumer.poll(10, Duration::from_millis(200)).await {
            Ok(p) if !p.batch.is_empty() => break p,
            Ok(_) => {}
            Err(e) => assert!(e.is_transient(), "poll after the restart: {e}"),
        }
        assert!(Instant::now() < deadline, "the consumer never read again");
    };
    assert_eq!(
        polled.batch.first_offset(),
        Some(5),
        "from the committed offset"
    );
    assert_eq!(
        stored_offset(&config_at(port), &topic, "sink", polled.partition).await,
        Some(4),
        "the stored offset survived the re-creation"
    );
    drop(consumer);
    // Data and the stream survived the restart: another group reads all 20.
    let mut other = backend.consumer(&topic, "other").await.expect("consumer");
    read_exactly(other.as_mut(), 0, 20).await;
    stop(&mut server);
}

fn stop(server: &mut Server) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    server.0.wait().unwrap();
}
