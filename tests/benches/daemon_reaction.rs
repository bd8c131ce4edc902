//! The daemon's reaction time and scale, with a real `ld-supervisor` and a real
//! `ld-connectord run` process:
//!
//! - activate (202) -> `active` in the supervisor's list, and delete (204) -> gone from the
//!   node's `/instances`, over 100 rounds: p50 and p99 (target: p99 under 500 ms);
//! - 1,000 test-sink instances on one node, all reading one topic: time until all are
//!   active, resident memory, idle CPU over 10 s (targets: under 200 MB, under 2 %).
//!
//! `cargo bench -p ld-e2e-tests --bench daemon_reaction` (`ROUNDS`, `INSTANCES` env vars
//! shrink it; `POLL_INTERVAL`, default `1s`, is the sinks' configured poll interval).

use std::time::{Duration, Instant};

use ld_e2e_tests::daemon::{cpu_time, rss_bytes, sink_config, Node, NodeOptions, Supervisor};
use ld_protocol::InstanceStatus;
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(name: &str, mut samples: Vec<Duration>, target: Duration) {
    samples.sort();
    let p50 = percentile(&samples, 0.50);
    let p99 = percentile(&samples, 0.99);
    println!(
        "{name:<32} n={:<4} p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms  (target p99 < {} ms: {})",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        target.as_millis(),
        if p99 < target { "met" } else { "MISSED" }
    );
}

fn reaction(rounds: usize) {
    let supervisor = Supervisor::start();
    let node = Node::start(
        &supervisor,
        "bench-node",
        NodeOptions {
            long_poll_wait: "30s",
            heartbeat_interval: "10s",
            ..NodeOptions::default()
        },
    );
    let mut to_active = Vec::with_capacity(rounds);
    let mut to_stopped = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let began = Instant::now();
        let item = supervisor.activate(
            &format!("reaction-{round}"),
            "test",
            "sink",
            sink_config("bench", json!({})),
        );
        supervisor.wait_status(item.id, InstanceStatus::Active, Duration::from_secs(10));
        to_active.push(began.elapsed());

        let began = Instant::now();
        supervisor.delete(item.id);
        node.wait_gone(item.id, Duration::from_secs(10));
        to_stopped.push(began.elapsed());
    }
    let target = Duration::from_millis(500);
    report("activate -> active (supervisor)", to_active, target);
    report("delete -> gone (node)", to_stopped, target);
}

fn scale(instances: usize, poll_interval: &str) {
    let supervisor = Supervisor::start();
    // The node is configured first and started after the activations: the figure is
    // the reconcile of the whole assignment, not the pace of 1,000 API calls.
    let mut node = Node::new(
        &supervisor.url(),
        supervisor.key(),
        "scale-node",
        NodeOptions {
            plugins: vec!["test_sink"],
            long_poll_wait: "30s",
            heartbeat_interval: "10s",
            ..NodeOptions::default()
        },
    );
    let activating = Instant::now();
    // With the embedded log an append wakes a waiting consumer at once; `poll_interval`
    // only bounds how long an idle sink waits before it polls again (default 5 ms).
    let mut config = sink_config("shared", json!({}));
    config["streams"][0]["poll_interval"] = json!(poll_interval);
    for i in 0..instances {
        supervisor.activate(&format!("scale-{i}"), "test", "sink", config.clone());
    }
    println!(
        "activated {instances} instances through the API in {:.1} s",
        activating.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    node.restart();
    node.wait_instances(Duration::from_secs(300), "all active locally", |list| {
        list.len() == instances && list.iter().all(|v| v["status"] == "active")
    });
    let local = started.elapsed();
    supervisor.watch(Duration::from_secs(300), "all active", |list| {
        list.len() == instances && list.iter().all(|i| i.status == InstanceStatus::Active)
    });
    let reported = started.elapsed();
    println!(
        "{instances} instances: node start -> all active on the node {:.2} s, -> all active in the supervisor {:.2} s",
        local.as_secs_f64(),
        reported.as_secs_f64()
    );

    // Let the status reports and the first heartbeats settle, then measure idle.
    std::thread::sleep(Duration::from_secs(3));
    let pid = node.pid();
    let cpu_before = cpu_time(pid);
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let cpu = cpu_time(pid) - cpu_before;
    let rss = rss_bytes(pid) as f64 / (1024.0 * 1024.0);
    let idle = cpu.as_secs_f64() / window.as_secs_f64() * 100.0;
    println!("sinks configured with poll_interval = {poll_interval} (a lone reader waits up to 1 s, woken at once by data)");
    println!(
        "{instances} instances: RSS {rss:.1} MiB (target < 200 MB: {}), idle CPU {idle:.2} % of one core over {}s (target < 2 %: {})",
        if rss * 1.048_576 < 200.0 { "met" } else { "MISSED" },
        window.as_secs(),
        if idle < 2.0 { "met" } else { "MISSED" }
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rounds = env_or("ROUNDS", 100);
    let instances = env_or("INSTANCES", 1000);
    reaction(rounds);
    let poll_interval = std::env::var("POLL_INTERVAL").unwrap_or_else(|_| "1s".into());
    scale(instances, &poll_interval);
}
