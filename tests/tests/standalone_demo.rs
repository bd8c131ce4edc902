//! `ld-connectord standalone` with no other arguments than its ports and plugins: the
//! embedded supervisor, the daemon, and the demo pipeline it activates through the
//! protocol client (random source -> embedded log -> stdout sink) all run in one process,
//! and the printed API key works against the printed API.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use ld_connectord::standalone::DEPLOYMENT_ID;
use ld_e2e_tests::{
    daemon::{free_port, wait_until, Http},
    daemon_binary, plugin_dir_with,
};
use ld_protocol::{InstanceStatus, SupervisorClient};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends every line of `stream` into a channel, from a thread of its own.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn standalone_runs_the_demo_pipeline() {
    let plugins = plugin_dir_with(&["random_source", "stdout_sink"]);
    let port = free_port();
    let mut child = Command::new(daemon_binary())
        .arg("standalone")
        .arg("--plugins")
        .arg(plugins.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--api-listen", &format!("127.0.0.1:{}", free_port())])
        .env("LD_CONNECTORD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ld-connectord standalone");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let _child = KillOnDrop(child);

    let mut said = Vec::new();
    let started = Instant::now();
    let key = loop {
        let line = stderr
            .recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed()))
            .unwrap_or_else(|_| panic!("no API key printed; stderr so far:\n{said:#?}"));
        if let Some(key) = line.trim().strip_prefix("API key:") {
            break key.trim().to_string();
        }
        said.push(line);
    };
    // The stdout sink prints the demo's messages.
    let first = stdout
        .recv_timeout(Duration::from_secs(30))
        .expect("the stdout sink prints the demo's messages");
    assert!(!first.trim().is_empty(), "a message: {first:?}");

    let client =
        SupervisorClient::new(&format!("http://127.0.0.1:{port}"), DEPLOYMENT_ID, key, &[]);
    let http = Http::new();
    let list = wait_until(
        Duration::from_secs(30),
        "both demo instances active",
        || {
            let list = http.block_on(client.list_instances()).ok()?;
            let active = list.len() == 2 && list.iter().all(|i| i.status == InstanceStatus::Active);
            active.then_some(list)
        },
        || format!("{:?}", http.block_on(client.list_instances())),
    );
    let mut keys: Vec<&str> = list.iter().map(|i| i.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["demo-random", "demo-stdout"]);
}
