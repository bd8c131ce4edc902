//! Per-instance counters, updated by the instance task and read by the local API.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl InstanceMetrics {
    pub(crate) fn delivered(&self, messages: usize, bytes: usize) {
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}
