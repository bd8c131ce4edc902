//! The embedded pipeline as a real process: `ld-connectord local` with the random source
//! and the stdout sink (printing off) over the embedded log, default settings. Prints
//! msg/s from the process' start until the sink delivered the last message, and the
//! process' peak resident memory (VmHWM). In the same run, the source alone (random ->
//! embedded log) gives the ratio.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench local_process` (set `LD_BENCH_MESSAGES` to
//! change the 2,000,000 messages per run). Targets (issue 14): at least 1,000,000 msg/s
//! end to end, under 150 MB peak.

use std::time::{Duration, Instant};

use ld_e2e_tests::local::LocalRun;
use serde_json::{json, Value};

const RUNS: usize = 3;

struct Figures {
    rate: f64,
    peak_mib: f64,
}

/// Peak resident memory of a process, in MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("VmHWM")
        / 1024.0
}

/// Messages counted so far by the instance `key`, from the local API.
async fn messages(client: &reqwest::Client, api: &str, key: &str) -> u64 {
    let Ok(response) = client.get(format!("http://{api}/instances")).send().await else {
        return 0;
    };
    let Ok(list) = response.json::<Vec<Value>>().await else {
        return 0;
    };
    list.iter()
        .find(|i| i["key"] == key)
        .and_then(|i| i["metrics"]["messages"].as_u64())
        .unwrap_or(0)
}

/// One run of `local`: the source alone, or the whole pipeline; done when `until`
/// counted `n` messages.
async fn run(n: u64, with_sink: bool) -> Figures {
    let mut run = LocalRun::new(&["random_source", "stdout_sink"]);
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "bench", "topic": "t"}],
               "plugin_config": {"seed": 1, "count": n, "rate": 0, "batch_size": 1000}}),
    );
    if with_sink {
        run.instance(
            "out",
            json!({"type": "sink", "key": "stdout",
                   "streams": [{"stream": "bench", "topics": ["t"], "batch_length": 1000}],
                   "plugin_config": {"print_payload": false}}),
        );
    }
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();
    run.args(&["--api-listen", &api]);
    let until = if with_sink { "out" } else { "gen" };
    let client = reqwest::Client::new();
    let started = Instant::now();
    run.start();
    loop {
        if messages(&client, &api, until).await >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not done after 300 s; log:\n{}",
            run.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let peak = peak_mib(run.pid());
    if with_sink {
        // Exactness: the sink delivered what the source produced, no more.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let produced = messages(&client, &api, "gen").await;
        let delivered = messages(&client, &api, "out").await;
        assert_eq!((produced, delivered), (n, n), "produced, delivered");
    }
    let (ok, _) = run.terminate(Duration::from_secs(60));
    assert!(ok, "clean exit; log:\n{}", run.log());
    Figures {
        rate: n as f64 / elapsed.as_secs_f64(),
        peak_mib: peak,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::var("LD_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    // Build the release artifacts before timing anything.
    let _ = ld_e2e_tests::daemon_binary();
    println!("ld-connectord local, embedded log, default settings: {n} messages of 100 B, batches of 1000, {RUNS} runs each (alternating)");
    let (mut source, mut e2e) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        source.push(run(n, false).await);
        e2e.push(run(n, true).await);
    }
    for (name, figures) in [
        ("random -> embedded log (source only)", &source),
        ("random -> embedded log -> stdout sink, printing off", &e2e),
    ] {
        let rates: Vec<String> = figures.iter().map(|f| format!("{:.0}", f.rate)).collect();
        let peaks: Vec<String> = figures
            .iter()
            .map(|f| format!("{:.0}", f.peak_mib))
            .collect();
        println!(
            "{name:55} median {:>10.0} msg/s (runs {}), peak RSS {} MiB",
            median(figures.iter().map(|f| f.rate).collect()),
            rates.join(", "),
            peaks.join(", ")
        );
    }
    let e2e_rate = median(e2e.iter().map(|f| f.rate).collect());
    let source_rate = median(source.iter().map(|f| f.rate).collect());
    let peak = e2e.iter().map(|f| f.peak_mib).fold(0.0, f64::max);
    println!(
        "end to end / source only: {:.0}%; target >= 1,000,000 msg/s: {}; peak {:.0} MiB, target < 150 MB: {}",
        100.0 * e2e_rate / source_rate,
        if e2e_rate >= 1_000_000.0 { "met" } else { "NOT met" },
        peak,
        if peak * 1.048_576 < 150.0 { "met" } else { "NOT met" },
    );
}
