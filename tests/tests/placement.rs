//! Several nodes on one supervisor, as real processes: a source runs on exactly one node
//! under a lease and moves, with its shared checkpoint, when that node dies; sinks run
//! on every node. On the embedded log each node's log is its own, so a source's
//! messages are delivered by the sink of the node that produced them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ld_e2e_tests::{
    cluster::{delivered, item, wait_delivered},
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
};
use ld_protocol::InstanceStatus;
use serde_json::json;

/// Node TTL (and source lease) of these tests, in seconds: short, so failover is quick.
const TTL: u64 = 3;

fn start_nodes(supervisor: &Supervisor, ids: &[&str]) -> Vec<Node> {
    ids.iter()
        .map(|id| Node::start(supervisor, id, NodeOptions::default()))
        .collect()
}

/// The recording sink on every node, each writing `ids.txt` in its own directory.
fn activate_recorder(supervisor: &Supervisor, nodes: usize) -> u64 {
    let rec = supervisor.activate(
        "rec",
        "test",
        "sink",
        sink_config("numbers", json!({"output_file": "ids.txt"})),
    );
    supervisor.watch(Duration::from_secs(20), "the sink on every node", |items| {
        let rec = item(items, rec.id);
        rec.status == InstanceStatus::Active && rec.nodes.len() == nodes
    });
    rec.id
}

#[test]
fn a_source_runs_on_one_node_and_each_message_is_produced_once() {
    const COUNT: u128 = 3000;
    let supervisor = Supervisor::start_with_ttl(TTL);
    let nodes = start_nodes(&supervisor, &["n1", "n2", "n3"]);
    activate_recorder(&supervisor, 3);
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 1, "rate": 3000, "count": COUNT, "batch_size": 100}),
        ),
    );
    let items = supervisor.watch(Duration::from_secs(20), "the source active", |items| {
        item(items, gen.id).status == InstanceStatus::Active
    });
    let source = item(&items, gen.id).clone();
    let lease = source.lease.clone().expect("a source has a lease");
    assert_eq!(lease.epoch, 1);
    let placed: Vec<&str> = source.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(placed, vec![lease.node_id.as_str()], "one node: {source:?}");
    assert_eq!(source.nodes[0].status, Some(InstanceStatus::Active));

    let all = wait_delivered(&nodes, Duration::from_secs(30), "every id", |all| {
        all.len() as u128 >= COUNT
    });
    // Let anything produced twice arrive too.
    std::thread::sleep(Duration::from_secs(2));
    let per_node = delivered(&nodes);
    let all_now = ld_e2e_tests::cluster::union(&per_node);
    assert_eq!(all_now.len(), all.len());
    for id in 1..=COUNT {
        assert_eq!(all_now.get(&id), Some(&1), "id {id} delivered once");
    }
    // Only the node running the source produced (the embedded log is per node).
    for (node, ids) in nodes.iter().zip(&per_node) {
        let expected = if node.id == lease.node_id {
            COUNT as usize
        } else {
            0
        };
        assert_eq!(ids.len(), expected, "node {}", node.id);
    }
    // Only the holder runs it: the other nodes do not even know it.
    for node in nodes.iter().filter(|n| n.id != lease.node_id) {
        assert!(
            node.instance(gen.id).is_none(),
            "node {} runs no source",
            node.id
        );
    }
}

#[test]
fn sources_spread_over_the_nodes() {
    let supervisor = Supervisor::start_with_ttl(TTL);
    let _nodes = start_nodes(&supervisor, &["n1", "n2"]);
    // Both nodes are live once the sink runs on both.
    activate_recorder(&supervisor, 2);
    let ids: Vec<u64> = (0..4)
        .map(|i| {
            supervisor
                .activate(
                    &format!("gen-{i}"),
                    "random",
                    "source",
                    source_config("numbers", json!({"seed": i, "rate": 10})),
                )
                .id
        })
        .collect();
    let items = supervisor.watch(Duration::from_secs(20), "every source placed", |items| {
        ids.iter().all(|id| item(items, *id).lease.is_some())
    });
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        *per_node
            .entry(item(&items, *id).lease.clone().unwrap().node_id)
            .or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2],
        "{per_node:?}"
    );
}

#[test]
fn kill9_of_the_source_node_moves_the_source_which_resumes_from_its_checkpoint() {
    const COUNT: u128 = 8000;
    const BATCH: u32 = 100;
    let supervisor = Supervisor::start_with_ttl(TTL);
    let mut nodes = start_nodes(&supervisor, &["n1", "n2"]);
    activate_recorder(&supervisor, 2);
    let gen = supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 7, "rate": 1000, "count": COUNT, "batch_size": BATCH}),
        ),
    );
    let items = supervisor.watch(Duration::from_secs(20), "the source active", |items| {
        item(items, gen.id).status == InstanceStatus::Active
    });
    let first = item(&items, gen.id).lease.clone().unwrap();
    wait_delivered(&nodes, Duration::from_secs(20), "some ids", |all| {
        all.len() >= 1500
    });

    let victim = nodes.iter().position(|n| n.id == first.node_id).unwrap();
    nodes[victim].kill9();
    let killed = Instant::now();
    let items = supervisor.watch(
        Duration::from_secs(30),
        "the source moved and active",
        |items| {
            let g = item(items, gen.id);
            g.lease.as_ref().is_some_and(|l| l.node_id != first.node_id)
                && g.status == InstanceStatus::Active
        },
    );
    let failover = killed.elapsed();
    let second = item(&items, gen.id).lease.clone().unwrap();
    assert_eq!(second.epoch, first.epoch + 1, "a new epoch");
    let survivor = 1 - victim;
    let resumed_at = Instant::now();
    // The survivor produces the rest: up to the last id.
    let path = nodes[survivor].path("ids.txt");
    ld_e2e_tests::local::wait_for_ids(&path, Duration::from_secs(30), |ids| {
        ids.contains_key(&COUNT)
    });
    eprintln!(
        "failover: kill -9 to active on {} in {failover:?}; the rest produced {:?} later",
        second.node_id,
        resumed_at.elapsed()
    );

    // The killed node comes back: its sink delivers what its log still held, and it
    // does not run the source again.
    nodes[victim].restart();
    let all = wait_delivered(&nodes, Duration::from_secs(30), "every id", |all| {
        all.len() as u128 >= COUNT
    });
    for id in 1..=COUNT {
        assert!(all.contains_key(&id), "id {id} missing");
    }
    // What both nodes produced is what the survivor produced again after the
    // checkpoint: at most one batch.
    let per_node = delivered(&nodes);
    let twice: Vec<u128> = per_node[victim]
        .keys()
        .filter(|id| per_node[survivor].contains_key(id))
        .copied()
        .collect();
    eprintln!("produced on both nodes: {} ids", twice.len());
    assert!(
        twice.len() <= BATCH as usize,
        "at most one batch produced twice, got {}",
        twice.len()
    );
    std::thread::sleep(Duration::from_secs(2));
    let g = supervisor.instance(gen.id).unwrap();
    assert_eq!(
        g.lease.unwrap().node_id,
        second.node_id,
        "the source stays put"
    );
    let view = nodes[victim].instance(gen.id);
    assert!(
        view.as_ref().is_none_or(|v| v["status"] != "active"),
        "the returned node does not run the source: {view:?}"
    );
}

/// One line of the test source's log of when it ran.
#[derive(Debug, Clone)]
struct Ran {
    pid: u32,
    event: String,
    at_ms: u64,
    last_id: u64,
}

fn ran(path: &std::path::Path) -> Vec<Ran> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Some(Ran {
                pid: f.first()?.parse().ok()?,
                event: f.get(1)?.to_string(),
                at_ms: f.get(2)?.parse().ok()?,
                last_id: f.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// When `pid` logged `event` (any event with `None`).
fn times<'a>(log: &'a [Ran], pid: u32, event: Option<&'a str>) -> impl Iterator<Item = u64> + 'a {
    log.iter()
        .filter(move |r| r.pid == pid && event.is_none_or(|e| r.event == e))
        .map(|r| r.at_ms)
}

#[test]
fn a_node_cut_off_from_the_supervisor_stops_its_source_before_another_node_starts_it() {
    const BATCH: u64 = 20;
    let supervisor = Supervisor::start_with_ttl(TTL);
    let target: std::net::SocketAddr = supervisor
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let link = ld_e2e_tests::proxy::Proxy::start(target);
    // Node a reaches the supervisor only through the link; it is alone at first, so
    // the source goes to it.
    let mut nodes = vec![Node::start_at(
        &link.url(),
        supervisor.key(),
        "a",
        NodeOptions::default(),
    )];
    activate_recorder(&supervisor, 1);
    let log_dir = tempfile::tempdir().unwrap();
    let intervals = log_dir.path().join("intervals.log");
    let counter = supervisor.activate(
        "counter",
        "test",
        "source",
        source_config(
            "numbers",
            json!({"count": 1_000_000, "batch_size": BATCH, "interval_ms": 50,
                   "intervals_file": intervals.to_str().unwrap()}),
        ),
    );
    supervisor.watch(Duration::from_secs(20), "the source active on a", |items| {
        let c = item(items, counter.id);
        c.status == InstanceStatus::Active && c.lease.as_ref().is_some_and(|l| l.node_id == "a")
    });
    nodes.push(Node::start(&supervisor, "b", NodeOptions::default()));
    supervisor.watch(Duration::from_secs(20), "the sink on both nodes", |items| {
        items.iter().any(|i| i.key == "rec" && i.nodes.len() == 2)
    });
    wait_delivered(&nodes, Duration::from_secs(20), "some ids", |all| {
        all.len() >= 200
    });
    // Let a heartbeat of a's renew its lease now that b could take the source over
    // (a lease says whether its holder is alone: alone, a holder goes on while it
    // cannot share its checkpoints).
    std::thread::sleep(Duration::from_millis(1500));
    let (pid_a, pid_b) = (nodes[0].pid(), nodes[1].pid());

    link.cut();
    let cut = Instant::now();
    supervisor.watch(Duration::from_secs(30), "the source moved to b", |items| {
        let c = item(items, counter.id);
        c.status == InstanceStatus::Active && c.lease.as_ref().is_some_and(|l| l.node_id == "b")
    });
    let moved = cut.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    // Node a comes back: the source stays with b.
    link.restore();
    std::thread::sleep(Duration::from_secs(TTL + 1));
    let c = supervisor.instance(counter.id).unwrap();
    assert_eq!(c.lease.unwrap().node_id, "b", "the source stays with b");

    // The source's own log: a closed it before b opened it, and a never ran it again.
    let log = ran(&intervals);
    let a_closed = times(&log, pid_a, Some("close"))
        .max()
        .expect("a closed the source when its lease ran out");
    let b_opened = times(&log, pid_b, Some("open"))
        .min()
        .expect("b opened the source");
    let a_last = times(&log, pid_a, None).max().unwrap();
    assert!(
        a_last == a_closed && a_closed < b_opened,
        "overlap: a's last event at {a_last}, a closed at {a_closed}, b opened at {b_opened}"
    );
    eprintln!(
        "cut off: a stopped the source {} ms before b started it; moved {moved:?} after the cut",
        b_opened - a_closed
    );

    // b went on from a's shared checkpoint: every id up to b's last, at most one batch
    // produced by both.
    let b_last = log
        .iter()
        .filter(|r| r.pid == pid_b && r.event == "poll_end")
        .map(|r| r.last_id)
        .max()
        .expect("b produced");
    let all = wait_delivered(&nodes, Duration::from_secs(20), "every id", |all| {
        (1..=u128::from(b_last)).all(|id| all.contains_key(&id))
    });
    let per_node = delivered(&nodes);
    let twice = per_node[0]
        .keys()
        .filter(|id| per_node[1].contains_key(id))
        .count();
    assert!(twice <= BATCH as usize, "produced twice: {twice}");
    assert!(all.len() as u64 >= b_last);
}
