//! What instances did lately, from the counters nodes send with their heartbeats: a
//! short summary for users' instance lists (messages in the last minute, a sink's lag).
//!
//! Kept in memory only: a summary of the last minute needs no history across restarts,
//! and writing every heartbeat's counters would make every heartbeat a change.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use ld_protocol::{InstanceActivity, NodeOffsets};

/// How far back the summary looks.
const WINDOW_MS: u64 = 60_000;

/// One node's counters of one instance at one heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    at: u64,
    messages: u64,
    lag: Option<u64>,
}

/// Samples per (deployment, instance, node), oldest first; and each node's last report
/// of an instance's offsets or state.
#[derive(Default)]
pub struct Activity {
    samples: Mutex<BTreeMap<(u64, u64, String), VecDeque<Sample>>>,
    offsets: Mutex<BTreeMap<(u64, u64, String), NodeOffsets>>,
}

impl Activity {
    /// Records a node's counters of an instance, received at `at` (supervisor clock).
    pub fn record(
        &self,
        deployment_id: u64,
        instance_id: u64,
        node_id: &str,
        at: u64,
        messages: u64,
        lag: Option<u64>,
    ) {
        let mut samples = self.samples.lock().expect("activity lock");
        let node = samples
            .entry((deployment_id, instance_id, node_id.to_string()))
            .or_default();
        node.push_back(Sample { at, messages, lag });
        // Keep one sample at or before the window's start, to measure from.
        while node.len() > 2 && node[1].at <= at.saturating_sub(WINDOW_MS) {
            node.pop_front();
        }
    }

    /// The summary of an instance over `nodes` (its live nodes), at `now`; `None` when
    /// none of them sent counters.
    pub fn summary(
        &self,
        deployment_id: u64,
        instance_id: u64,
        nodes: &[&str],
        now: u64,
    ) -> Option<InstanceActivity> {
        let samples = self.samples.lock().expect("activity lock");
        let mut summary: Option<InstanceActivity> = None;
        for node in nodes {
            let Some(node) = samples.get(&(deployment_id, instance_id, node.to_string())) else {
                continue;
            };
            let (Some(first), Some(last)) = (node.front(), node.back()) else {
                continue;
            };
            let s = summary.get_or_insert(InstanceActivity {
                messages_last_minute: 0,
                lag: None,
            });
            if now.saturating_sub(last.at) > WINDOW_MS {
                continue;
            }
            // The counter starts again when the instance restarts on the node.
            s.messages_last_minute += if last.messages >= first.messages {
                last.messages - first.messages
            } else {
                last.messages
            };
            if let Some(lag) = last.lag {
                s.lag = Some(s.lag.unwrap_or(0) + lag);
            }
        }
        summary
    }

    /// Keeps a node's report of an instance's offsets or state (the last one counts).
    pub fn record_offsets(&self, deployment_id: u64, instance_id: u64, report: NodeOffsets) {
        self.offsets
            .lock()
            .expect("activity lock")
            .insert((deployment_id, instance_id, report.node_id.clone()), report);
    }

    /// The last reports of an instance's offsets from `nodes`, in node order.
    pub fn offsets(
        &self,
        deployment_id: u64,
        instance_id: u64,
        nodes: &[&str],
    ) -> Vec<NodeOffsets> {
        let offsets = self.offsets.lock().expect("activity lock");
        nodes
            .iter()
            .filter_map(|n| offsets.get(&(deployment_id, instance_id, n.to_string())))
            .cloned()
            .collect()
    }

    /// Forgets an instance (deleted).
    pub fn forget(&self, deployment_id: u64, instance_id: u64) {
        self.samples
            .lock()
            .expect("activity lock")
            .retain(|(d, i, _), _| (*d, *i) != (deployment_id, instance_id));
        self.offsets
            .lock()
            .expect("activity lock")
            .retain(|(d, i, _), _| (*d, *i) != (deployment_id, instance_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_the_last_minute_and_the_lag_add_up_over_nodes() {
        let a = Activity::default();
        // Node a: 0 at 0 s, 500 at 30 s, 1500 at 70 s: counted from the sample at 0 s,
        // the last one at or before the window's start (10 s).
        a.record(1, 7, "a", 0, 0, Some(50));
        a.record(1, 7, "a", 30_000, 500, Some(20));
        a.record(1, 7, "a", 70_000, 1500, Some(5));
        // Node b restarted: its counter went back to 40.
        a.record(1, 7, "b", 60_000, 900, None);
        a.record(1, 7, "b", 70_000, 40, Some(1));
        let s = a.summary(1, 7, &["a", "b"], 70_000).unwrap();
        assert_eq!(s.messages_last_minute, 1500 + 40);
        assert_eq!(s.lag, Some(6));
        // Only the live nodes count.
        let s = a.summary(1, 7, &["a"], 70_000).unwrap();
        assert_eq!(s.messages_last_minute, 1500);
        assert_eq!(a.summary(1, 8, &["a"], 70_000), None);
        a.forget(1, 7);
        assert_eq!(a.summary(1, 7, &["a", "b"], 70_000), None);
    }
}
