//! The embedded log: append, read ahead, commit, resume, wake-ups and retention.

use std::time::{Duration, Instant};

use ld_connectord::stream::{
    self,
    embedded::{Durability, EmbeddedLog, EmbeddedSettings},
    MessageBatch, StreamBackend, StreamSettings, TopicRef,
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

fn ids(b: &MessageBatch) -> Vec<u128> {
    b.entries.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn appended_batches_are_read_in_order_and_resume_from_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let topic = TopicRef::new("orders", "completed");
    {
        let log = EmbeddedLog::open_dir(dir.path(), EmbeddedSettings::default()).unwrap();
        let mut producer = log.producer(&topic).await.unwrap();
        let a = producer.append(&batch(1, 3)).await.unwrap();
        assert_eq!((a.first_offset, a.last_offset), (0, 2));
        let a = producer.append(&batch(4, 2)).await.unwrap();
        assert_eq!((a.first_offset, a.last_offset), (3, 4));

        let mut consumer = log.consumer(&topic, "g").await.unwrap();
        let first = consumer.poll(2, Duration::ZERO).await.unwrap();
        assert_eq!(ids(&first.batch), vec![1, 2]);
        assert_eq!(first.batch.entries[1].offset, 1);
        // Reads run ahead of commits, across stored batches.
        let second = consumer.poll(10, Duration::ZERO).await.unwrap();
        assert_eq!(ids(&second.batch), vec![3, 4, 5]);
        assert_eq!(
            second.batch.iter().nth(2).unwrap().payload(),
            br#"{"id":5}"#
        );
        consumer.commit(0, 2).await.unwrap();
        assert!(consumer
            .poll(10, Duration::ZERO)
            .await
            .unwrap()
            .batch
            .is_empty());
    }
    // Reopened from disk: a new consumer starts at the commit; offsets continue.
    let log = EmbeddedLog::open_dir(dir.path(), EmbeddedSettings::default()).unwrap();
    let mut consumer = log.consumer(&topic, "g").await.unwrap();
    let again = consumer.poll(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        ids(&again.batch),
        vec![3, 4, 5],
        "uncommitted messages come again"
    );
    let mut other = log.consumer(&topic, "other-group").await.unwrap();
    assert_eq!(
        other.poll(100, Duration::ZERO).await.unwrap().batch.len(),
        5
    );
    let mut producer = log.producer(&topic).await.unwrap();
    assert_eq!(producer.append(&batch(6, 1)).await.unwrap().first_offset, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_wakes_as_soon_as_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open_dir(dir.path(), EmbeddedSettings::default()).unwrap();
    let topic = TopicRef::new("s", "t");
    let mut consumer = log.consumer(&topic, "g").await.unwrap();
    let started = Instant::now();
    let empty = consumer.poll(10, Duration::from_millis(50)).await.unwrap();
    assert!(empty.batch.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(45));

    let producer_log = log.clone();
    let topic2 = topic.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut p = producer_log.producer(&topic2).await.unwrap();
        p.append(&batch(1, 1)).await.unwrap();
    });
    let started = Instant::now();
    let polled = consumer.poll(10, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ids(&polled.batch), vec![1]);
    // Woken by the append, not by the 20 s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn partitions_spread_batches_and_commit_separately() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedSettings {
        partitions: 2,
        ..EmbeddedSettings::default()
    };
    let log = EmbeddedLog::open_dir(dir.path(), config).unwrap();
    let topic = TopicRef::new("s", "t");
    let mut producer = log.producer(&topic).await.unwrap();
    let a = producer.append(&batch(1, 2)).await.unwrap();
    let b = producer.append(&batch(3, 2)).await.unwrap();
    assert_ne!(a.partition, b.partition);
    let mut consumer = log.consumer(&topic, "g").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let polled = consumer.poll(10, Duration::ZERO).await.unwrap();
        seen.extend(ids(&polled.batch));
        consumer
            .commit(polled.partition, polled.batch.last_offset().unwrap() + 1)
            .await
            .unwrap();
    }
    seen.sort();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    let mut resumed = log.consumer(&topic, "g").await.unwrap();
    assert!(resumed
        .poll(10, Duration::ZERO)
        .await
        .unwrap()
        .batch
        .is_empty());
}

#[tokio::test]
async fn retention_removes_the_oldest_batches_and_readers_skip_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedSettings {
        durability: Durability::Interval(Duration::from_millis(50)),
        retention_bytes: Some(400),
        ..EmbeddedSettings::default()
    };
    let log = EmbeddedLog::open_dir(dir.path(), config).unwrap();
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
