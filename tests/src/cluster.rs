//! Helpers for tests over several nodes of one deployment: what each node's sink
//! delivered (`ids.txt` in the node's own directory, a relative `output_file`), summed
//! over the nodes, and the one item of a list.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ld_protocol::InstanceItem;

use crate::{daemon::Node, local::read_ids};

/// Ids delivered by each node's sink, in node order.
pub fn delivered(nodes: &[Node]) -> Vec<HashMap<u128, u32>> {
    nodes.iter().map(|n| read_ids(&n.path("ids.txt"))).collect()
}

/// How often each id was delivered over all nodes.
pub fn union(per_node: &[HashMap<u128, u32>]) -> BTreeMap<u128, u32> {
    let mut all = BTreeMap::new();
    for ids in per_node {
        for (id, n) in ids {
            *all.entry(*id).or_insert(0) += n;
        }
    }
    all
}

/// Waits until `done` holds for the ids delivered over all nodes; panics after `limit`.
pub fn wait_delivered(
    nodes: &[Node],
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&BTreeMap<u128, u32>) -> bool,
) -> BTreeMap<u128, u32> {
    let started = Instant::now();
    loop {
        let all = union(&delivered(nodes));
        if done(&all) {
            return all;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: timed out after {limit:?} with {} distinct ids",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The item with `id` in a list.
pub fn item(items: &[InstanceItem], id: u64) -> &InstanceItem {
    items.iter().find(|i| i.id == id).expect("instance listed")
}
