//! The source leases this node holds: renewed by each heartbeat's answer, counted from
//! when the heartbeat was sent (so the node's deadline is never later than the
//! supervisor's), and given up a quarter of the lease early so the source has stopped
//! before the supervisor may give it to another node.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ld_protocol::LeaseGrant;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: u64,
    sole: bool,
    /// When this node stops using the lease (a quarter of it before its end).
    usable_until: Instant,
    /// The same on the wall clock, ms since the Unix epoch, for the cache.
    usable_until_ms: u64,
}

/// A lease as cached across restarts of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLease {
    /// The source instance.
    pub instance_id: u64,
    /// The epoch.
    pub epoch: u64,
    /// Until when this node may use it, ms since the Unix epoch.
    pub usable_until_ms: u64,
    /// No other node could take the source over when it was renewed.
    #[serde(default)]
    pub sole: bool,
}

/// The leases held by this node.
pub struct Leases {
    held: Mutex<HashMap<u64, Held>>,
    /// Bumped on every change, so waiters re-check.
    changed: watch::Sender<u64>,
    renew: Notify,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            renew: Notify::new(),
        }
    }
}

impl Leases {
    /// Takes a heartbeat's answer: `grants` are every lease the node holds now (a lease
    /// missing from them is gone), counted from `sent` (`sent_ms` on the wall clock).
    pub fn renewed(&self, sent: Instant, sent_ms: u64, grants: &[LeaseGrant]) {
        let held = grants
            .iter()
            .map(|g| {
                let usable = Duration::from_millis(g.valid_for_ms - g.valid_for_ms / 4);
                (
                    g.instance_id,
                    Held {
                        epoch: g.epoch,
                        sole: g.sole,
                        usable_until: sent + usable,
                        usable_until_ms: sent_ms + usable.as_millis() as u64,
                    },
                )
            })
            .collect();
        *self.held.lock().expect("leases lock") = held;
        self.changed.send_modify(|v| *v += 1);
    }

    /// Gives up a lease at once (the supervisor said another node has the source).
    pub fn revoke(&self, instance_id: u64) {
        self.held.lock().expect("leases lock").remove(&instance_id);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Until when the lease `epoch` of `instance_id` may be used, if it may be now.
    fn usable_until(&self, instance_id: u64, epoch: u64) -> Option<Instant> {
        let held = self.held.lock().expect("leases lock");
        held.get(&instance_id)
            .filter(|h| h.epoch == epoch && h.usable_until > Instant::now())
            .map(|h| h.usable_until)
    }

    /// Whether no other node could take the source over at the last renewal: it may
    /// then go on while its checkpoints cannot be shared.
    pub fn sole(&self, instance_id: u64) -> bool {
        let held = self.held.lock().expect("leases lock");
        held.get(&instance_id).is_some_and(|h| h.sole)
    }

    /// Whether this node may run the source under lease `epoch` now.
    pub fn valid(&self, instance_id: u64, epoch: u64) -> bool {
        self.usable_until(instance_id, epoch).is_some()
    }

    /// Asks the heartbeat loop to renew now (a lease was assigned and is not held yet).
    pub fn request_renewal(&self) {
        self.renew.notify_one();
    }

    /// Resolves when a renewal was asked for.
    pub async fn renewal_requested(&self) {
        self.renew.notified().await;
    }

    /// Waits until the lease is valid; false when `stop` fired first.
    pub async fn wait_valid(&self, instance_id: u64, epoch: u64, stop: &CancellationToken) -> bool {
        let mut changed = self.changed.subscribe();
        loop {
            if self.valid(instance_id, epoch) {
                return true;
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                r = changed.changed() => if r.is_err() { return false },
            }
        }
    }

    /// Cancels `lost` once the lease stops being usable (not renewed in time, revoked,
    /// or replaced by another epoch).
    pub async fn watch(&self, instance_id: u64, epoch: u64, lost: CancellationToken) {
        let mut changed = self.changed.subscribe();
        loop {
            let Some(until) = self.usable_until(instance_id, epoch) else {
                lost.cancel();
                return;
            };
            tokio::select! {
                _ = lost.cancelled() => return,
                _ = tokio::time::sleep_until(until.into()) => {}
                r = changed.changed() => if r.is_err() { return },
            }
        }
    }

    /// The leases for the cache, so a node restarted while the supervisor is away goes
    /// on with the sources whose lease has not ended.
    pub fn to_cache(&self) -> Vec<CachedLease> {
        let held = self.held.lock().expect("leases lock");
        let mut cached: Vec<CachedLease> = held
            .iter()
            .map(|(id, h)| CachedLease {
                instance_id: *id,
                epoch: h.epoch,
                usable_until_ms: h.usable_until_ms,
                sole: h.sole,
            })
            .collect();
        cached.sort_by_key(|c| c.instance_id);
        cached
    }

    /// Takes the cached leases that are still usable at `now_ms` (wall clock).
    pub fn restore(&self, cached: &[CachedLease], now_ms: u64) {
        let now = Instant::now();
        let held = cached
            .iter()
            .filter(|c| c.usable_until_ms > now_ms)
            .map(|c| {
                let left = Duration::from_millis(c.usable_until_ms - now_ms);
                (
                    c.instance_id,
                    Held {
                        epoch: c.epoch,
                        sole: c.sole,
                        usable_until: now + left,
                        usable_until_ms: c.usable_until_ms,
                    },
                )
            })
            .collect();
        *self.held.lock().expect("leases lock") = held;
        self.changed.send_modify(|v| *v += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(id: u64, epoch: u64, ms: u64) -> LeaseGrant {
        LeaseGrant {
            instance_id: id,
            epoch,
            valid_for_ms: ms,
            sole: false,
        }
    }

    #[tokio::test]
    async fn a_lease_is_usable_for_three_quarters_of_it_from_the_send() {
        let leases = Leases::default();
        let sent = Instant::now();
        leases.renewed(sent, 1_000, &[grant(1, 2, 400)]);
        assert!(leases.valid(1, 2));
        assert!(!leases.valid(1, 1), "another epoch is not held");
        assert!(!leases.valid(7, 2), "another instance is not held");
        let lost = CancellationToken::new();
        let watch = leases.watch(1, 2, lost.clone());
        tokio::time::timeout(Duration::from_secs(2), watch)
            .await
            .unwrap();
        assert!(lost.is_cancelled());
        let held_for = sent.elapsed();
        assert!(held_for >= Duration::from_millis(300), "{held_for:?}");
        assert!(!leases.valid(1, 2));
    }

    #[tokio::test]
    async fn a_renewal_without_the_lease_or_a_revoke_ends_it_at_once() {
        let leases = std::sync::Arc::new(Leases::default());
        leases.renewed(
            Instant::now(),
            0,
            &[grant(1, 1, 60_000), grant(2, 1, 60_000)],
        );
        let watch = |id: u64| {
            let lost = CancellationToken::new();
            let task = tokio::spawn({
                let (leases, lost) = (leases.clone(), lost.clone());
                async move { leases.watch(id, 1, lost).await }
            });
            (lost, task)
        };
        let (lost1, task1) = watch(1);
        let (lost2, task2) = watch(2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!lost1.is_cancelled() && !lost2.is_cancelled());
        // The next heartbeat's answer no longer holds instance 1: it moved.
        leases.renewed(Instant::now(), 0, &[grant(2, 1, 60_000)]);
        tokio::time::timeout(Duration::from_secs(1), task1)
            .await
            .unwrap()
            .unwrap();
        assert!(lost1.is_cancelled());
        assert!(!lost2.is_cancelled());
        // The supervisor fenced instance 2 off.
        leases.revoke(2);
        tokio::time::timeout(Duration::from_secs(1), task2)
            .await
            .unwrap()
            .unwrap();
        assert!(lost2.is_cancelled());
    }

    #[test]
    fn the_cache_keeps_only_leases_still_usable() {
        let leases = Leases::default();
        leases.renewed(
            Instant::now(),
            10_000,
            &[grant(1, 3, 4_000), grant(2, 1, 4_000)],
        );
        let cached = leases.to_cache();
        assert_eq!(cached.len(), 2);
        assert_eq!(cached[0].usable_until_ms, 13_000);
        let restored = Leases::default();
        restored.restore(&cached, 12_000);
        assert!(restored.valid(1, 3));
        restored.restore(&cached, 13_000);
        assert!(!restored.valid(1, 3), "ended on the wall clock");
    }
}
