//! Change notification for long polls on a deployment's instances.
//!
//! Each deployment that somebody polls gets a `watch` channel; every change to that
//! deployment's instances (activate, delete, config, stop/start, node reports) bumps it.
//! A poller subscribes *before* computing the current ETag, so a change between the two
//! steps still wakes it: no lost wake-ups, and no polling loop.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The per-deployment change channels.
#[derive(Default)]
pub struct Changes {
    channels: Mutex<HashMap<u64, watch::Sender<()>>>,
}

impl Changes {
    /// A receiver that wakes on the next change of `deployment_id`'s instances.
    pub fn subscribe(&self, deployment_id: u64) -> watch::Receiver<()> {
        let mut channels = self.channels.lock().expect("changes lock");
        channels
            .entry(deployment_id)
            .or_insert_with(|| watch::channel(()).0)
            .subscribe()
    }

    /// Wakes every poller of `deployment_id`.
    pub fn notify(&self, deployment_id: u64) {
        let channels = self.channels.lock().expect("changes lock");
        if let Some(sender) = channels.get(&deployment_id) {
            sender.send_replace(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn notify_wakes_a_subscriber_of_that_deployment_only() {
        let changes = Changes::default();
        let mut one = changes.subscribe(1);
        let mut two = changes.subscribe(2);
        changes.notify(1);
        tokio::time::timeout(Duration::from_secs(1), one.changed())
            .await
            .expect("woken")
            .expect("open");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), two.changed())
                .await
                .is_err(),
            "deployment 2 must not wake"
        );
    }
}
