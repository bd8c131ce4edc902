//! The conformance suite every stream backend passes: the contract of
//! [`StreamBackend`], [`Producer`] and [`Consumer`] as the source and sink tasks rely
//! on it, and the backend's [`Capabilities`] checked against what it does.
//!
//! A backend is opened the way the engine opens it, through [`super::open`] with the
//! settings a [`Harness`] gives, on a fresh state database in a temporary directory.
//! Run every check with [`crate::stream_conformance_tests!`] from an integration test
//! (`runtime/tests/stream_conformance.rs`):
//!
//! ```ignore
//! mod embedded {
//!     ld_connectord::stream_conformance_tests!(Some(super::Embedded));
//! }
//! ```
//!
//! The checks assume the backend's strictest durability (the embedded log with
//! `durability = "batch"`): "durable" means present in a copy of the state directory
//! taken right after the call returned, as a crash would leave it, and, for a server,
//! visible to a new connection. Each check uses topics of its own (unique stream
//! names), so checks can run in parallel and again against the same server. They
//! panic, naming what failed.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

use super::{
    embedded::now_micros, Capabilities, Consumer, MessageBatch, OpenedStream, Producer,
    StreamSettings, TopicRef,
};
use crate::state::{sled_config, StateStore};

/// How to open the backend under test.
pub trait Harness: Send + Sync {
    /// Settings of the backend whose new topics get `partitions` partitions, or `None`
    /// when it cannot make more than one.
    fn settings(&self, partitions: u32) -> Option<StreamSettings>;
}

/// Runs every check of the suite, one `#[tokio::test]` each, in the calling module.
/// `$harness` is an expression of type `Option<impl Harness>`, evaluated by each
/// test; `None` skips them (the harness says why).
#[macro_export]
#[doc(hidden)]
macro_rules! stream_conformance_tests {
    ($harness:expr) => {
        $crate::stream_conformance_tests!(@each $harness;
            appended_batches_come_back_intact,
            offsets_grow_without_gaps,
            consumers_resume_at_the_committed_offset,
            groups_are_independent,
            poll_waits_for_data_and_times_out_empty,
            commit_is_durable_when_it_returns,
            append_checkpointed_agrees_with_capabilities,
            partitions_spread_batches_and_commit_separately,
            maintenance_ends_when_cancelled,
            a_declared_schema_comes_back_as_declared,
        );
    };
    (@each $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(harness) = $harness {
                    $crate::stream::conformance::$check(&harness).await;
                }
            }
        )*
    };
}

/// Longest wait for messages a check expects (a consumer group may first have to
/// hand a partition over from a member that left).
const READ_DEADLINE: Duration = Duration::from_secs(30);
/// Wait of one poll inside a read.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// A backend opened on its own state database, as on a node.
struct Node {
    // Dropped in this order: the backend and the database before their directory.
    stream: OpenedStream,
    db: sled::Db,
    settings: StreamSettings,
    dir: tempfile::TempDir,
}

impl Node {
    fn open(harness: &dyn Harness, partitions: u32) -> Option<Node> {
        let settings = harness.settings(partitions)?;
        let dir = tempfile::tempdir().expect("temporary directory");
        Some(Node::open_in(settings, dir))
    }

    fn open_in(settings: StreamSettings, dir: tempfile::TempDir) -> Node {
        let db = sled_config(dir.path()).open().expect("state database");
        let stream = super::open(&settings, &db).expect("stream::open");
        Node {
            stream,
            db,
            settings,
            dir,
        }
    }

    /// The node as a crash right now would leave it: the backend opened again on a
    /// copy of the state directory (what reached the disk), this one still running.
    fn after_a_crash(&self) -> Node {
        let dir = tempfile::tempdir().expect("temporary directory");
        copy_dir(self.dir.path(), dir.path());
        Node::open_in(self.settings.clone(), dir)
    }

    fn capabilities(&self) -> Capabilities {
        self.stream.capabilities
    }

    async fn producer(&self, topic: &TopicRef) -> Box<dyn Producer> {
        self.stream
            .backend
            .producer(topic)
            .await
            .unwrap_or_else(|e| panic!("producer of {topic}: {e}"))
    }

    async fn consumer(&self, topic: &TopicRef, group: &str) -> Box<dyn Consumer> {
        self.stream
            .backend
            .consumer(topic, group)
            .await
            .unwrap_or_else(|e| panic!("consumer of {topic} in {group}: {e}"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read the state directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&target).expect("create a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A topic no other check or run used.
fn unique_topic(check: &str) -> TopicRef {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    TopicRef::new(
        format!(
            "ld-conformance-{check}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ),
        "events",
    )
}

/// A message as appended, or as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    id: u128,
    /// Microseconds; 0 when appended asks the backend for "now".
    timestamp: u64,
    schema: Schema,
    /// Distinct keys in key order (Iggy keeps headers as a map).
    headers: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
}

/// A message read back, with where it was.
#[derive(Debug, Clone)]
struct Read {
    partition: u32,
    offset: u64,
    message: Message,
}

/// Message `i` of a check: ids above 2^64 (all 128 bits are kept); every schema;
/// headers none, two, or one with an empty value; an empty payload now and then; an
/// explicit timestamp on even `i` when `timestamps` (else "now").
fn message(i: u64, timestamps: bool) -> Message {
    let id = (1u128 << 100) + u128::from(i) + 1;
    let (schema, payload) = match i % 4 {
        0 => (Schema::Json, format!("{{\"i\":{i}}}").into_bytes()),
        1 => (Schema::Text, format!("text {i}").into_bytes()),
        2 => (Schema::Raw, vec![0, 0xff, (i % 251) as u8, b'\n']),
        _ => (Schema::Raw, Vec::new()),
    };
    let headers = match i % 3 {
        0 => Vec::new(),
        1 => vec![
            ("a".to_string(), b"x".to_vec()),
            ("seq".to_string(), i.to_string().into_bytes()),
        ],
        _ => vec![("empty".to_string(), Vec::new())],
    };
    let timestamp = if timestamps && i.is_multiple_of(2) {
        1_700_000_000_000_000 + i
    } else {
        0
    };
    Message {
        id,
        timestamp,
        schema,
        headers,
        payload,
    }
}

fn messages(range: std::ops::Range<u64>, timestamps: bool) -> Vec<Message> {
    range.map(|i| message(i, timestamps)).collect()
}

fn batch_of(messages: &[Message]) -> MessageBatch {
    let mut batch = MessageBatch::default();
    for m in messages {
        batch.push(
            m.id,
            0,
            m.timestamp,
            m.schema,
            m.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
            &m.payload,
        );
    }
    batch
}

/// Appends `messages` as one batch; checks the offsets it reports.
async fn append(producer: &mut dyn Producer, messages: &[Message]) -> super::Appended {
    let appended = producer
        .append(&batch_of(messages))
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    assert_eq!(
        appended.last_offset - appended.first_offset + 1,
        messages.len() as u64,
        "an append of {} messages reports {appended:?}",
        messages.len()
    );
    appended
}

/// Reads exactly `n` messages (polling for at most `max_per_poll` at a time), or
/// panics after [`READ_DEADLINE`].
async fn read(consumer: &mut dyn Consumer, n: usize, max_per_poll: u32) -> Vec<Read> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} messages in {READ_DEADLINE:?}",
            out.len()
        );
        let want = u32::try_from(n - out.len())
            .unwrap_or(u32::MAX)
            .min(max_per_poll);
        let polled = consumer
            .poll(want, POLL_WAIT)
            .await
            .unwrap_or_else(|e| panic!("poll: {e}"));
        assert!(
            polled.batch.len() <= want as usize,
            "asked for at most {want} messages, got {}",
            polled.batch.len()
        );
        for m in polled.batch.iter() {
            let e = m.entry();
            out.push(Read {
                partition: polled.partition,
                offset: e.offset,
                message: Message {
                    id: e.id,
                    timestamp: e.timestamp_micros,
                    schema: e.schema,
                    headers: m
                        .headers()
                        .map(|(k, v)| (k.to_string(), v.to_vec()))
                        .collect(),
                    payload: m.payload().to_vec(),
                },
            });
        }
    }
    out
}

/// Asserts that the next message `consumer` delivers is `sentinel` (so it delivers
/// nothing older first).
async fn next_is(consumer: &mut dyn Consumer, sentinel: &Message, why: &str) {
    let next = read(consumer, 1, 1).await;
    assert_eq!(
        next[0].message.id, sentinel.id,
        "{why}: expected the message appended last, got offset {} of partition {}",
        next[0].offset, next[0].partition
    );
}

/// Asserts that `got` are `appended` at `first_offset..` of one partition, intact;
/// `window` is when they were appended, for the timestamps the backend set.
fn assert_intact(got: &[Read], appended: &[Message], first_offset: u64, window: (u64, u64)) {
    assert_eq!(got.len(), appended.len(), "message count");
    for (k, (r, want)) in got.iter().zip(appended).enumerate() {
        let at = first_offset + k as u64;
        assert_eq!(r.offset, at, "offset of message {k}");
        assert_eq!(r.partition, got[0].partition, "partition of offset {at}");
        let got = &r.message;
        assert_eq!(got.id, want.id, "id at offset {at}");
        assert_eq!(got.schema, want.schema, "schema at offset {at}");
        assert_eq!(got.headers, want.headers, "headers at offset {at}");
        assert_eq!(got.payload, want.payload, "payload at offset {at}");
        if want.timestamp == 0 {
            // "Now" as of the append, give or take a second of clock between the
            // process and a server.
            let (from, to) = window;
            assert!(
                got.timestamp + 1_000_000 >= from && got.timestamp <= to + 1_000_000,
                "timestamp at offset {at}: {} outside the append's {from}..{to}",
                got.timestamp
            );
        } else {
            assert_eq!(got.timestamp, want.timestamp, "timestamp at offset {at}");
        }
    }
}

/// Appended batches come back in order, with ids, timestamps, schemas, headers and
/// payloads intact, in a large batch too; an empty batch is refused; another topic
/// sees none of it; nothing comes after the last message.
pub async fn appended_batches_come_back_intact(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("intact");
    let mut producer = node.producer(&topic).await;
    let small = messages(0..12, true);
    let large = messages(12..1012, false);
    let from = now_micros();
    let first = append(producer.as_mut(), &small).await;
    let second = append(producer.as_mut(), &large).await;
    let to = now_micros();
    assert!(
        producer.append(&MessageBatch::default()).await.is_err(),
        "an empty batch is refused"
    );

    let mut consumer = node.consumer(&topic, "g").await;
    let got = read(consumer.as_mut(), small.len() + large.len(), 1000).await;
    let (got_small, got_large) = got.split_at(small.len());
    assert_intact(got_small, &small, first.first_offset, (from, to));
    assert_intact(got_large, &large, second.first_offset, (from, to));
    assert_eq!(got[0].partition, first.partition, "partition of the append");
    let after = consumer
        .poll(100, Duration::from_millis(300))
        .await
        .expect("poll");
    assert!(after.batch.is_empty(), "nothing after the last message");

    let other = TopicRef::new(topic.stream.clone(), "other");
    let mut elsewhere = node.consumer(&other, "g").await;
    let polled = elsewhere
        .poll(100, Duration::from_millis(300))
        .await
        .expect("poll");
    assert!(polled.batch.is_empty(), "another topic holds nothing");
}

/// A topic whose source declares its schema and whose sink assumes the same one reads
/// back every message as it was appended: those of the declared schema (which a backend
/// may store without it) and those of any other schema, with and without headers and
/// payloads.
pub async fn a_declared_schema_comes_back_as_declared(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("declared");
    let mut producer = node.producer(&topic).await;
    producer.declare_schema(Schema::Json);
    let appended = messages(0..24, true);
    let from = now_micros();
    let first = append(producer.as_mut(), &appended).await;
    let to = now_micros();
    let mut consumer = node.consumer(&topic, "g").await;
    consumer.assume_schema(Schema::Json);
    let got = read(consumer.as_mut(), appended.len(), 100).await;
    assert_intact(&got, &appended, first.first_offset, (from, to));
}

/// Offsets of a partition grow without gaps from append to append, also across
/// producers (a restarted source task).
pub async fn offsets_grow_without_gaps(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("offsets");
    let mut producer = node.producer(&topic).await;
    let mut next = None;
    let mut partition = None;
    for (i, n) in [1u64, 5, 3].into_iter().enumerate() {
        let a = append(producer.as_mut(), &messages(0..n, false)).await;
        if let Some(expected) = next {
            assert_eq!(a.first_offset, expected, "first offset of append {i}");
        }
        assert_eq!(*partition.get_or_insert(a.partition), a.partition);
        next = Some(a.last_offset + 1);
    }
    drop(producer);
    let mut again = node.producer(&topic).await;
    let a = append(again.as_mut(), &messages(0..2, false)).await;
    assert_eq!(
        Some(a.first_offset),
        next,
        "a new producer continues the offsets"
    );
}

/// A consumer reads ahead of its commits; a new consumer of the group starts at the
/// committed offset, so what was not committed is delivered again, until committed.
pub async fn consumers_resume_at_the_committed_offset(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("resume");
    let mut producer = node.producer(&topic).await;
    let sent = messages(0..10, false);
    append(producer.as_mut(), &sent[..5]).await;
    append(producer.as_mut(), &sent[5..]).await;

    let mut first = node.consumer(&topic, "g").await;
    let done = read(first.as_mut(), 5, 5).await;
    // Read ahead of the commit (a sink prefetches the next batch).
    let ahead = read(first.as_mut(), 5, 5).await;
    assert_eq!(ahead[0].message.id, sent[5].id, "the read runs ahead");
    let partition = done[0].partition;
    first
        .commit(partition, done[4].offset + 1)
        .await
        .expect("commit");
    drop(first);

    let mut second = node.consumer(&topic, "g").await;
    let again = read(second.as_mut(), 5, 100).await;
    let ids: Vec<u128> = again.iter().map(|r| r.message.id).collect();
    let expected: Vec<u128> = sent[5..].iter().map(|m| m.id).collect();
    assert_eq!(ids, expected, "a new consumer starts at the commit");
    drop(second);

    // Nothing more was committed: the same five once more.
    let mut third = node.consumer(&topic, "g").await;
    let once_more = read(third.as_mut(), 5, 100).await;
    let ids: Vec<u128> = once_more.iter().map(|r| r.message.id).collect();
    assert_eq!(ids, expected, "uncommitted messages are delivered again");
    third
        .commit(partition, once_more[4].offset + 1)
        .await
        .expect("commit");
    drop(third);

    let sentinel = message(10, false);
    append(producer.as_mut(), std::slice::from_ref(&sentinel)).await;
    let mut fourth = node.consumer(&topic, "g").await;
    next_is(
        fourth.as_mut(),
        &sentinel,
        "everything before was committed",
    )
    .await;
}

/// Consumer groups keep their own offsets: what one commits does not move another.
pub async fn groups_are_independent(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("groups");
    let mut producer = node.producer(&topic).await;
    let sent = messages(0..4, false);
    append(producer.as_mut(), &sent).await;

    let mut a = node.consumer(&topic, "group-a").await;
    let read_a = read(a.as_mut(), 4, 100).await;
    let partition = read_a[0].partition;
    a.commit(partition, read_a[3].offset + 1)
        .await
        .expect("commit");
    let mut b = node.consumer(&topic, "group-b").await;
    let read_b = read(b.as_mut(), 4, 100).await;
    assert_eq!(
        read_b[0].message.id, sent[0].id,
        "group b starts at the beginning"
    );
    b.commit(partition, read_b[1].offset + 1)
        .await
        .expect("commit");
    drop((a, b));

    let sentinel = message(4, false);
    append(producer.as_mut(), std::slice::from_ref(&sentinel)).await;
    let mut a = node.consumer(&topic, "group-a").await;
    next_is(a.as_mut(), &sentinel, "group a committed everything").await;
    let mut b = node.consumer(&topic, "group-b").await;
    let rest = read(b.as_mut(), 3, 100).await;
    let ids: Vec<u128> = rest.iter().map(|r| r.message.id).collect();
    assert_eq!(
        ids,
        vec![sent[2].id, sent[3].id, sentinel.id],
        "group b resumes at its own commit"
    );
}

/// `poll` on nothing returns empty after its wait (at once with no wait), and returns
/// as soon as data arrives when it comes during the wait.
pub async fn poll_waits_for_data_and_times_out_empty(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("wait");
    let mut producer = node.producer(&topic).await;
    let mut consumer = node.consumer(&topic, "g").await;

    let wait = Duration::from_millis(300);
    let started = Instant::now();
    let polled = consumer.poll(10, wait).await.expect("poll");
    let took = started.elapsed();
    assert!(polled.batch.is_empty(), "nothing to read");
    assert!(took >= wait, "returned before the wait ended: {took:?}");
    assert!(took < wait + Duration::from_secs(3), "waited {took:?}");

    let started = Instant::now();
    let polled = consumer.poll(10, Duration::ZERO).await.expect("poll");
    assert!(polled.batch.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait took {:?}",
        started.elapsed()
    );

    let sent = message(0, false);
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            append(producer.as_mut(), std::slice::from_ref(&sent)).await;
        })
    };
    let started = Instant::now();
    let polled = consumer
        .poll(10, Duration::from_secs(30))
        .await
        .expect("poll");
    let took = started.elapsed();
    writer.await.expect("writer");
    assert_eq!(
        polled.batch.len(),
        1,
        "the message appended during the wait"
    );
    assert_eq!(polled.batch.entries[0].id, sent.id);
    assert!(
        took < Duration::from_secs(5),
        "returned {took:?} after the poll, not when the data arrived"
    );
}

/// A commit is durable when it returns: a node that crashes right after starts the
/// group there (and its producers continue the offsets).
pub async fn commit_is_durable_when_it_returns(harness: &dyn Harness) {
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let topic = unique_topic("durable");
    let mut producer = node.producer(&topic).await;
    let sent = messages(0..6, false);
    let appended = append(producer.as_mut(), &sent).await;
    let mut consumer = node.consumer(&topic, "g").await;
    let got = read(consumer.as_mut(), 6, 100).await;
    consumer
        .commit(got[0].partition, got[3].offset + 1)
        .await
        .expect("commit");
    let crashed = node.after_a_crash();
    drop(consumer);

    let mut resumed = crashed.consumer(&topic, "g").await;
    let rest = read(resumed.as_mut(), 2, 100).await;
    let ids: Vec<u128> = rest.iter().map(|r| r.message.id).collect();
    assert_eq!(
        ids,
        vec![sent[4].id, sent[5].id],
        "the group resumes at the commit"
    );
    let mut producer = crashed.producer(&topic).await;
    let a = append(producer.as_mut(), &messages(6..7, false)).await;
    assert_eq!(a.first_offset, appended.last_offset + 1, "offsets continue");
}

/// `append_checkpointed` answers what [`Capabilities::atomic_checkpoint`] declares, and
/// does it: a stored checkpoint is durable with its batch, an unstored one is not
/// written. Where the state store does not flush checkpoints
/// ([`Capabilities::state_store_flushes`] false), the backend's appends make them
/// durable.
pub async fn append_checkpointed_agrees_with_capabilities(harness: &dyn Harness) {
    const SOURCE: &str = "conformance-source";
    let node = Node::open(harness, 1).expect("a backend with one partition");
    let capabilities = node.capabilities();
    let topic = unique_topic("checkpoint");
    let mut producer = node.producer(&topic).await;

    let plain = messages(0..2, false);
    let (_, stored) = producer
        .append_checkpointed(&batch_of(&plain), None)
        .await
        .expect("append without a checkpoint");
    assert!(!stored, "no checkpoint given, none stored");

    let with_state = messages(2..5, false);
    let (appended, stored) = producer
        .append_checkpointed(&batch_of(&with_state), Some((SOURCE, b"state-1")))
        .await
        .expect("append with a checkpoint");
    assert_eq!(
        appended.last_offset - appended.first_offset + 1,
        with_state.len() as u64
    );
    assert_eq!(
        stored, capabilities.atomic_checkpoint,
        "append_checkpointed's answer vs {capabilities:?}"
    );
    if capabilities.atomic_checkpoint {
        let crashed = node.after_a_crash();
        let state = StateStore::with_db(crashed.db.clone(), true).expect("state store");
        assert_eq!(
            state.source_state(SOURCE).expect("read the checkpoint"),
            Some(b"state-1".to_vec()),
            "the checkpoint is durable when the append returns"
        );
        let mut consumer = crashed.consumer(&topic, "g").await;
        let got = read(consumer.as_mut(), 5, 100).await;
        assert_eq!(got[4].message.id, with_state[2].id, "with its batch");
    } else {
        let state = StateStore::with_db(node.db.clone(), true).expect("state store");
        assert_eq!(
            state.source_state(SOURCE).expect("read the checkpoint"),
            None,
            "a backend that says it did not store the checkpoint did not"
        );
    }

    if !capabilities.state_store_flushes {
        let state = StateStore::with_db(node.db.clone(), false).expect("state store");
        state
            .save_source_state("conformance-unflushed", b"state-2")
            .await
            .expect("save a checkpoint");
        append(producer.as_mut(), &messages(5..6, false)).await;
        let crashed = node.after_a_crash();
        let state = StateStore::with_db(crashed.db.clone(), true).expect("state store");
        assert_eq!(
            state
                .source_state("conformance-unflushed")
                .expect("read the checkpoint"),
            Some(b"state-2".to_vec()),
            "the backend's append made the unflushed checkpoint durable"
        );
    }
}

/// With several partitions, a producer spreads its batches over them; each partition
/// numbers its own offsets; a consumer alone in its group reads every partition, each
/// poll from one, in order; commits are per partition.
pub async fn partitions_spread_batches_and_commit_separately(harness: &dyn Harness) {
    let Some(node) = Node::open(harness, 3) else {
        println!("the backend has no partitions: nothing to check");
        return;
    };
    let topic = unique_topic("partitions");
    let mut producer = node.producer(&topic).await;
    let sent = messages(0..24, false);
    let mut next_offset: BTreeMap<u32, u64> = BTreeMap::new();
    for chunk in sent.chunks(4) {
        let a = append(producer.as_mut(), chunk).await;
        let next = next_offset.entry(a.partition).or_insert(0);
        assert_eq!(
            a.first_offset, *next,
            "offsets of partition {}",
            a.partition
        );
        *next = a.last_offset + 1;
    }
    assert!(
        next_offset.len() > 1,
        "six batches all went to partition {:?}",
        next_offset.keys()
    );

    let mut consumer = node.consumer(&topic, "g").await;
    let mut seen = BTreeSet::new();
    let mut position: BTreeMap<u32, u64> = BTreeMap::new();
    let deadline = Instant::now() + READ_DEADLINE;
    while seen.len() < sent.len() {
        assert!(Instant::now() < deadline, "read {} of 24", seen.len());
        let polled = consumer.poll(100, POLL_WAIT).await.expect("poll");
        let Some(last) = polled.batch.last_offset() else {
            continue;
        };
        for m in polled.batch.iter() {
            let at = position.entry(polled.partition).or_insert(0);
            assert_eq!(
                m.entry().offset,
                *at,
                "offsets of partition {}",
                polled.partition
            );
            *at += 1;
            assert!(seen.insert(m.entry().id), "id {} twice", m.entry().id);
        }
        consumer
            .commit(polled.partition, last + 1)
            .await
            .expect("commit");
    }
    assert_eq!(position, next_offset, "every partition read to its end");
    drop(consumer);

    let sentinel = message(24, false);
    append(producer.as_mut(), std::slice::from_ref(&sentinel)).await;
    let mut resumed = node.consumer(&topic, "g").await;
    next_is(
        resumed.as_mut(),
        &sentinel,
        "every partition's commit holds",
    )
    .await;
}

/// A backend's maintenance job, if it has one, runs until its token is cancelled and
/// ends soon after.
pub async fn maintenance_ends_when_cancelled(harness: &dyn Harness) {
    let mut node = Node::open(harness, 1).expect("a backend with one partition");
    let Some(maintenance) = node.stream.maintenance.take() else {
        println!("the backend has no maintenance job: nothing to check");
        return;
    };
    let stop = CancellationToken::new();
    let job = tokio::spawn(maintenance.run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!job.is_finished(), "the job ended before it was cancelled");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .expect("the job ends within 5 s of the cancel")
        .expect("the job did not panic");
}
