//! Placement as pure rules: which nodes an instance is assigned to. A source runs on
//! exactly one node under a lease; a sink on every candidate node, or on as many as its
//! config's `placement.nodes` asks. Tested over tables, without a server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A source's lease as stored: the holder, the epoch, and when it ends unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The node that may run the source.
    pub node_id: String,
    /// Grows by one each time the source is given to a node after a lease ended.
    pub epoch: u64,
    /// Supervisor clock, ms since the epoch: the lease ends then unless the holder's
    /// heartbeat renews it.
    pub expires_at_ms: u64,
}

/// What to do with one source's lease now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// The lease stands (also when its holder is silent but the lease has not certainly
    /// ended yet: the holder may still be running the source).
    Keep,
    /// Give the source to this node under a new epoch.
    Grant(LeaseRecord),
    /// No lease and no node to give it to.
    Vacant,
}

/// Decides one source's lease.
///
/// `candidates` are the live nodes that can run it, in id order; `load` counts the
/// sources each node holds (the least loaded candidate gets a new lease, ties by id).
/// A held lease is only replaced once `now` is past its end plus `grace`: the holder
/// counts its lease from when it sent the heartbeat that renewed it, so its own deadline
/// is earlier than `expires_at_ms`, and `grace` covers stopping the source and the
/// difference in clock rates.
pub fn decide_lease(
    current: Option<&LeaseRecord>,
    candidates: &[&str],
    load: &BTreeMap<String, usize>,
    now_ms: u64,
    grace_ms: u64,
    ttl_ms: u64,
) -> LeaseDecision {
    if let Some(lease) = current {
        if now_ms <= lease.expires_at_ms.saturating_add(grace_ms) {
            return LeaseDecision::Keep;
        }
    }
    let Some(node) = candidates
        .iter()
        .min_by_key(|n| (load.get(**n).copied().unwrap_or(0), **n))
    else {
        return match current {
            Some(_) => LeaseDecision::Keep,
            None => LeaseDecision::Vacant,
        };
    };
    LeaseDecision::Grant(LeaseRecord {
        node_id: node.to_string(),
        epoch: current.map_or(1, |l| l.epoch + 1),
        expires_at_ms: now_ms + ttl_ms,
    })
}

/// The nodes a sink runs on: every candidate, or `wanted` of them chosen by rendezvous
/// hashing on (instance, node), so the choice is stable while nodes come and go and
/// different sinks spread over different nodes.
pub fn sink_nodes(instance_id: u64, candidates: &[&str], wanted: Option<u64>) -> Vec<String> {
    let mut chosen: Vec<&str> = candidates.to_vec();
    if let Some(n) = wanted {
        chosen.sort_by_key(|node| std::cmp::Reverse(rendezvous(instance_id, node)));
        chosen.truncate(n as usize);
        chosen.sort_unstable();
    }
    chosen.into_iter().map(str::to_string).collect()
}

/// FNV-1a over the instance id and node id: stable across processes and releases.
fn rendezvous(instance_id: u64, node_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in instance_id.to_be_bytes().iter().chain(node_id.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The node count a sink's config asks for (`"placement": {"nodes": N}`), if any.
pub fn wanted_nodes(values: &serde_json::Value) -> Option<u64> {
    values
        .get("placement")
        .and_then(|p| p.get("nodes"))
        .and_then(|n| n.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, epoch: u64, expires: u64) -> LeaseRecord {
        LeaseRecord {
            node_id: node.into(),
            epoch,
            expires_at_ms: expires,
        }
    }

    #[test]
    fn leases() {
        let load: BTreeMap<String, usize> = [("a".to_string(), 2), ("b".to_string(), 0)].into();
        let held = lease("a", 3, 1_000);
        type Case<'a> = (
            &'a str,
            Option<&'a LeaseRecord>,
            Vec<&'a str>,
            u64,
            LeaseDecision,
        );
        let cases: Vec<Case> = vec![
            (
                "new source goes to the least loaded node",
                None,
                vec!["a", "b"],
                500,
                LeaseDecision::Grant(lease("b", 1, 500 + 30)),
            ),
            (
                "no node, no lease",
                None,
                vec![],
                500,
                LeaseDecision::Vacant,
            ),
            (
                "held and current",
                Some(&held),
                vec!["a", "b"],
                900,
                LeaseDecision::Keep,
            ),
            (
                "ended but within grace: the holder may still run it",
                Some(&held),
                vec!["b"],
                1_010,
                LeaseDecision::Keep,
            ),
            (
                "ended past grace: moves with the next epoch",
                Some(&held),
                vec!["b"],
                1_011,
                LeaseDecision::Grant(lease("b", 4, 1_011 + 30)),
            ),
            (
                "ended and nobody to take it: stays with the old holder",
                Some(&held),
                vec![],
                5_000,
                LeaseDecision::Keep,
            ),
        ];
        for (name, current, candidates, now, want) in cases {
            assert_eq!(
                decide_lease(current, &candidates, &load, now, 10, 30),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn ties_go_to_the_first_node_by_id() {
        let load = BTreeMap::new();
        let got = decide_lease(None, &["b", "a", "c"], &load, 0, 0, 1);
        assert_eq!(got, LeaseDecision::Grant(lease("a", 1, 1)));
    }

    #[test]
    fn sinks_run_everywhere_or_on_a_stable_subset() {
        let all = ["a", "b", "c"];
        assert_eq!(sink_nodes(7, &all, None), vec!["a", "b", "c"]);
        let two = sink_nodes(7, &all, Some(2));
        assert_eq!(two.len(), 2);
        // Stable: the same answer every time, and a node leaving that was not chosen
        // changes nothing.
        assert_eq!(sink_nodes(7, &all, Some(2)), two);
        let unchosen = all.iter().find(|n| !two.contains(&n.to_string())).unwrap();
        let rest: Vec<&str> = all.iter().copied().filter(|n| n != unchosen).collect();
        assert_eq!(sink_nodes(7, &rest, Some(2)), two);
        // More asked than there are: all of them.
        assert_eq!(sink_nodes(7, &all, Some(9)).len(), 3);
        // Different sinks spread: over many instances every node gets some.
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for id in 0..300 {
            for n in sink_nodes(id, &all, Some(1)) {
                *count.entry(n).or_default() += 1;
            }
        }
        assert_eq!(count.len(), 3, "{count:?}");
        assert!(count.values().all(|c| *c > 50), "{count:?}");
    }

    #[test]
    fn wanted_nodes_reads_the_placement_table() {
        assert_eq!(
            wanted_nodes(&serde_json::json!({"placement": {"nodes": 2}})),
            Some(2)
        );
        assert_eq!(wanted_nodes(&serde_json::json!({})), None);
    }
}
