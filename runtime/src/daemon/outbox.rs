//! Status reports not yet acknowledged by the supervisor, kept in `sled` so they survive
//! restarts and outages. The latest report per instance wins; a report is removed only
//! if it is still the one that was acknowledged.

use std::{sync::Arc, time::Duration};

use ld_protocol::StatusReport;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::SupervisorClient;
use crate::state::StateError;

/// The outbox.
#[derive(Clone)]
pub struct Outbox {
    tree: sled::Tree,
    wake: Arc<Notify>,
}

impl Outbox {
    /// Opens the outbox in the node's database.
    pub fn open(db: &sled::Db) -> Result<Self, StateError> {
        Ok(Self {
            tree: db.open_tree("daemon/outbox")?,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Queues a report, replacing any older one of the same instance.
    pub fn put(&self, instance_id: u64, report: &StatusReport) {
        let bytes = serde_json::to_vec(report).expect("a status report serializes");
        if let Err(e) = self.tree.insert(instance_id.to_be_bytes(), bytes) {
            tracing::error!(error = %e, instance_id, "cannot queue a status report");
        }
        self.wake.notify_one();
    }

    /// Reports waiting to be sent.
    pub fn pending(&self) -> usize {
        self.tree.len()
    }

    /// Drops the queued report of a deleted instance.
    pub fn forget(&self, instance_id: u64) {
        let _ = self.tree.remove(instance_id.to_be_bytes());
    }

    /// Sends every queued report once, several at a time; returns how many are still
    /// waiting.
    pub async fn send_all(&self, client: &SupervisorClient) -> usize {
        use futures::StreamExt;
        let queued: Vec<(sled::IVec, sled::IVec)> =
            self.tree.iter().filter_map(Result::ok).collect();
        let results = futures::stream::iter(queued)
            .map(|(key, value)| async move {
                let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or_default());
                let Ok(report) = serde_json::from_slice::<StatusReport>(&value) else {
                    let _ = self.tree.remove(&key);
                    return true;
                };
                match client.report_status(id, &report).await {
                    Ok(()) => {
                        // Remove only what was sent: a newer report stays queued.
                        let _ = self.tree.compare_and_swap(&key, Some(value), None as Option<&[u8]>);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, instance_id = id, "status report not delivered yet");
                        false
                    }
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<bool>>()
            .await;
        results.into_iter().filter(|delivered| !delivered).count()
    }

    /// Delivers reports until `shutdown`, retrying with backoff while the supervisor is
    /// unreachable.
    pub async fn run(self, client: SupervisorClient, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let waiting = self.send_all(&client).await;
            let pause = if waiting == 0 {
                backoff = Duration::from_millis(200);
                Duration::from_secs(5)
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(10));
                backoff
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified(), if waiting == 0 => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

impl super::manager::StatusSink for Outbox {
    fn put(&self, instance_id: u64, report: &StatusReport) {
        Outbox::put(self, instance_id, report)
    }

    fn forget(&self, instance_id: u64) {
        Outbox::forget(self, instance_id)
    }
}
