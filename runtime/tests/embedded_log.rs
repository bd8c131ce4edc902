//! What only the embedded log does: retention, and the maintenance job that enforces it.
//! The contract it shares with every backend is checked by `stream_conformance.rs`.

use std::time::Duration;

use ld_connectord::stream::{
    self,
    embedded::{Durability, EmbeddedLog, EmbeddedSettings},
    MessageBatch, SeekTo, StreamBackend, StreamSettings, TopicRef,
};
use ld_plugin_api::Schema;

fn batch(from_id: u128, n: usize) -> MessageBatch {
    let mut b = MessageBatch::default();
    for i in 0..n as u128 {
        let payload = format!("{{\"id\":{}}}", from_id + i);
        b.push(from_id + i, 0, 0, Schema::Json, [], payload.as_bytes());
    }
    b
}

#[tokio::test]
async fn retention_removes_the_oldest_batches_and_readers_skip_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let settings = EmbeddedSettings {
        durability: Durability::Interval(Duration::from_millis(50)),
        retention_bytes: Some(400),
        ..EmbeddedSettings::default()
    };
    let log = EmbeddedLog::open_dir(dir.path(), settings).unwrap();
    let topic = TopicRef::new("s", "t");
    let mut producer = log.producer(&topic).await.unwrap();
    for i in 0..10 {
        producer.append(&batch(i * 2 + 1, 2)).await.unwrap();
    }
    let removed = log.enforce_retention().unwrap();
    assert!(removed >= 5, "removed {removed}");
    let mut consumer = log.consumer(&topic, "late").await.unwrap();
    let polled = consumer.poll(100, Duration::ZERO).await.unwrap();
    assert!(!polled.batch.is_empty());
    assert!(polled.batch.first_offset().unwrap() > 0, "oldest gone");
    assert_eq!(polled.batch.last_offset(), Some(19), "newest kept");
}

#[test]
fn only_a_log_with_retention_limits_has_a_maintenance_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = ld_connectord::state::sled_config(dir.path())
        .open()
        .unwrap();
    let open = |settings| stream::open(&StreamSettings::Embedded(settings), &db).unwrap();
    let unlimited = open(EmbeddedSettings::default());
    assert!(unlimited.maintenance.is_none());
    assert_eq!(unlimited.capabilities, EmbeddedLog::CAPABILITIES);
    let by_age = open(EmbeddedSettings {
        retention_age: Some(Duration::from_secs(3600)),
        ..EmbeddedSettings::default()
    });
    assert!(by_age.maintenance.is_some());
}

#[tokio::test]
async fn delete_consumed_removes_what_every_committed_group_has_read_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = EmbeddedSettings {
        delete_consumed: true,
        ..EmbeddedSettings::default()
    };
    let log = EmbeddedLog::open_dir(dir.path(), settings).unwrap();
    let topic = TopicRef::new("s", "t");
    let mut producer = log.producer(&topic).await.unwrap();
    for i in 0..5 {
        producer.append(&batch(i * 10 + 1, 10)).await.unwrap();
    }
    // Two groups read; "slow" has read less, so it holds the batches back.
    let mut fast = log.consumer(&topic, "fast").await.unwrap();
    let mut slow = log.consumer(&topic, "slow").await.unwrap();
    let oldest = || log.oldest_offset(&topic, 0).unwrap();
    fast.commit(0, 30).await.unwrap();
    assert_eq!(oldest(), Some(0), "slow has read nothing yet");
    slow.commit(0, 10).await.unwrap();
    assert_eq!(oldest(), Some(10), "offsets 0-9 gone");
    slow.commit(0, 40).await.unwrap();
    assert_eq!(oldest(), Some(30), "what both read is gone");
    // Everything read: the newest batch stays, so offsets go on where they were.
    fast.commit(0, 50).await.unwrap();
    slow.commit(0, 50).await.unwrap();
    assert_eq!(oldest(), Some(40), "the newest batch stays");
    let appended = producer.append(&batch(51, 10)).await.unwrap();
    assert_eq!(appended.first_offset, 50, "offsets continue");
    // A committed group resumes where it was; a new one gets what is left.
    let mut again = log.consumer(&topic, "fast").await.unwrap();
    let polled = again.poll(1000, Duration::ZERO).await.unwrap();
    assert_eq!(polled.batch.first_offset(), Some(50));
    let mut late = log.consumer(&topic, "late").await.unwrap();
    let polled = late.poll(1000, Duration::ZERO).await.unwrap();
    assert_eq!(polled.batch.first_offset(), Some(40));
    // And from now on it holds back what it has not read.
    fast.commit(0, 60).await.unwrap();
    slow.commit(0, 60).await.unwrap();
    assert_eq!(oldest(), Some(40));
}

#[tokio::test]
async fn seek_moves_a_group_to_the_earliest_the_latest_an_offset_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let settings = EmbeddedSettings {
        delete_consumed: false,
        ..EmbeddedSettings::default()
    };
    let log = EmbeddedLog::open_dir(dir.path(), settings).unwrap();
    let topic = TopicRef::new("s", "t");
    let mut producer = log.producer(&topic).await.unwrap();
    // Ten messages stamped 1000, 2000, ... microseconds.
    let mut b = MessageBatch::default();
    for i in 0..10u64 {
        b.push(u128::from(i) + 1, 0, (i + 1) * 1000, Schema::Raw, [], b"x");
    }
    producer.append(&b).await.unwrap();
    let mut consumer = log.consumer(&topic, "g").await.unwrap();
    let first = |polled: stream::Polled| polled.batch.first_offset();
    assert_eq!(
        consumer.seek(SeekTo::Offset(4)).await.unwrap(),
        vec![(0, 4)]
    );
    assert_eq!(log.committed(&topic, "g", 0).unwrap(), Some(4));
    assert_eq!(
        first(consumer.poll(100, Duration::ZERO).await.unwrap()),
        Some(4)
    );
    assert_eq!(
        consumer.seek(SeekTo::Timestamp(6500)).await.unwrap(),
        vec![(0, 6)]
    );
    assert_eq!(
        first(consumer.poll(100, Duration::ZERO).await.unwrap()),
        Some(6)
    );
    assert_eq!(consumer.seek(SeekTo::Earliest).await.unwrap(), vec![(0, 0)]);
    assert_eq!(consumer.seek(SeekTo::Latest).await.unwrap(), vec![(0, 10)]);
    assert!(consumer
        .poll(100, Duration::ZERO)
        .await
        .unwrap()
        .batch
        .is_empty());
    // Past the end means the end; a time after every message too.
    assert_eq!(
        consumer.seek(SeekTo::Offset(99)).await.unwrap(),
        vec![(0, 10)]
    );
    assert_eq!(
        consumer.seek(SeekTo::Timestamp(99_000)).await.unwrap(),
        vec![(0, 10)]
    );
}
