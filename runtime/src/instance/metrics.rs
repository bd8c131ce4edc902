//! Per-instance counters, updated by the instance task and read by the local API.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stream::TopicRef;

/// Counters of one instance.
#[derive(Debug, Default)]
pub struct InstanceMetrics {
    /// Messages delivered (sink: written by the plugin; source: appended).
    pub messages: AtomicU64,
    /// Payload bytes of those messages.
    pub bytes: AtomicU64,
    /// Batches delivered.
    pub batches: AtomicU64,
    /// Messages dropped by a filter transform.
    pub filtered: AtomicU64,
    /// Failed calls (retried or not).
    pub errors: AtomicU64,
    /// Failed calls by kind, in the order of [`ERROR_KINDS`].
    pub errors_by_kind: [AtomicU64; ERROR_KINDS.len()],
    /// Messages taken in (sink: read from the stream; source: produced by the plugin).
    pub messages_in: AtomicU64,
    /// Calls retried after a transient failure.
    pub retries: AtomicU64,
    /// Messages set aside in the dead-letter topic.
    pub dead_lettered: AtomicU64,
    /// When a batch last went through, in milliseconds since the Unix epoch (0: never).
    pub last_success_ms: AtomicU64,
    /// A sink's progress per topic and partition: what it read and committed, and the
    /// partition's end.
    pub progress: std::sync::Mutex<std::collections::BTreeMap<(TopicRef, u32), PartitionProgress>>,
    /// Set once the plugin opened: the instance is running.
    pub opened: std::sync::atomic::AtomicBool,
    /// Woken when `opened` is set.
    pub opened_notify: tokio::sync::Notify,
    /// Time per delivered batch (sink: the plugin's write; source: the append).
    pub batch_latency: Histogram,
    /// The failure being retried right now, if any: the instance's status shows it.
    pub trouble: tokio::sync::watch::Sender<Option<String>>,
}

/// The kinds of failed calls counted apart (`kind` label of the errors metric):
/// a plugin's error by its kind, a plugin call over its deadline, the stream, a
/// transform, the local state, anything else.
pub const ERROR_KINDS: [&str; 9] = [
    "plugin_transient",
    "plugin_fatal",
    "plugin_invalid_config",
    "timeout",
    "stream",
    "transform",
    "rejected",
    "state",
    "other",
];

/// What a sink did with one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// The next offset it reads.
    pub read: u64,
    /// The next offset committed (what a restart reads from), once it committed.
    pub committed: Option<u64>,
    /// The partition's end (the next offset appended), as last seen.
    pub end: Option<u64>,
}

impl PartitionProgress {
    /// Messages in the partition after what the sink read.
    pub fn lag(&self) -> Option<u64> {
        self.end.map(|end| end.saturating_sub(self.read))
    }
}

/// A latency histogram with fixed buckets, in the Prometheus sense (cumulative on
/// export).
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Upper bounds of the histogram buckets, in seconds.
pub const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// (upper bound, cumulative count) per bucket, then the total count and the sum in
    /// seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BUCKETS.len());
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        (
            buckets,
            cumulative,
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        )
    }
}

impl InstanceMetrics {
    pub(crate) fn delivered(&self, messages: usize, bytes: usize) {
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.last_success_ms
            .store(crate::daemon::now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn taken_in(&self, messages: usize) {
        self.messages_in
            .fetch_add(messages as u64, Ordering::Relaxed);
    }

    /// Records what a sink read of a partition (up to `read`, the next offset), and the
    /// partition's end when the backend said it.
    pub(crate) fn set_read(&self, topic: &TopicRef, partition: u32, read: u64, end: Option<u64>) {
        let mut progress = self.progress.lock().expect("progress lock");
        let p = progress.entry((topic.clone(), partition)).or_default();
        p.read = read;
        if end.is_some() {
            p.end = end;
        }
    }

    /// Records a sink's commit on a partition (`next`: the next offset to read).
    pub(crate) fn set_committed(&self, topic: &TopicRef, partition: u32, next: u64) {
        self.progress
            .lock()
            .expect("progress lock")
            .entry((topic.clone(), partition))
            .or_default()
            .committed = Some(next);
    }

    /// A sink's lag per partition: messages after what it read.
    pub fn lags(&self) -> Vec<(TopicRef, u32, u64)> {
        self.progress
            .lock()
            .expect("progress lock")
            .iter()
            .filter_map(|((t, p), progress)| progress.lag().map(|lag| (t.clone(), *p, lag)))
            .collect()
    }

    pub(crate) fn mark_opened(&self) {
        self.opened.store(true, Ordering::Release);
        self.opened_notify.notify_one();
    }

    /// Shows (or, with `None`, clears) the failure being retried.
    pub(crate) fn set_trouble(&self, trouble: Option<String>) {
        self.trouble.send_if_modified(|now| {
            let changed = *now != trouble;
            *now = trouble;
            changed
        });
    }

    /// Counts a failed call of the kind named (one of [`ERROR_KINDS`]; anything else
    /// counts as `other`).
    pub(crate) fn error(&self, kind: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let i = ERROR_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(ERROR_KINDS.len() - 1);
        self.errors_by_kind[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_lettered(&self, messages: usize) {
        self.dead_lettered
            .fetch_add(messages as u64, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}
