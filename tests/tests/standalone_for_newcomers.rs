//! `ld-connectord standalone` as a newcomer meets it: a fresh build starts with no
//! warning, and its catalog offers only the connectors we ship (no example or test
//! fixture), over the real API.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ld_e2e_tests::{
    daemon::{free_port, Http},
    daemon_binary,
};
use serde_json::Value;

#[test]
fn a_fresh_standalone_lists_only_shipped_connectors_without_warnings() {
    let state = tempfile::tempdir().unwrap();
    let (api, local) = (free_port(), free_port());
    let log_path = state.path().join("standalone.log");
    let mut child = Command::new(daemon_binary())
        .args(["standalone", "--no-demo", "--listen"])
        .arg(format!("127.0.0.1:{api}"))
        .arg("--api-listen")
        .arg(format!("127.0.0.1:{local}"))
        .arg("--state")
        .arg(state.path().join("state"))
        .env("LD_CONNECTORD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start standalone");
    let http = Http::new();
    let started = Instant::now();
    let catalog = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let key = log
            .split("ld-api-key: ")
            .nth(1)
            .map(|rest| rest.split('"').next().unwrap().to_string());
        if let Some(key) = key {
            let url = format!(
                "http://127.0.0.1:{api}/tenants/1/divisions/1/environments/1/deployments/611298765432109056/connectors?page=1&results=100"
            );
            if let Ok(answer) = http.send(http.client().get(url).header("ld-api-key", &key)) {
                let page: Value = answer.json().unwrap_or_default();
                let items = page["items"].as_array().cloned().unwrap_or_default();
                // The node's first heartbeat brings the catalog.
                if items.iter().any(|i| i["available"] == true) {
                    break items;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no catalog within 60 s; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();

    let mut keys: Vec<String> = catalog
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["key"].as_str().unwrap(),
                i["type"].as_str().unwrap()
            )
        })
        .collect();
    keys.sort();
    for shipped in [
        "random source",
        "stdout sink",
        "postgres sink",
        "postgres source",
    ] {
        assert!(
            keys.iter().any(|k| k == shipped),
            "{shipped} offered: {keys:?}"
        );
    }
    for fixture in ["test", "minimal", "old"] {
        assert!(
            !keys.iter().any(|k| k.starts_with(fixture)),
            "no {fixture} connector offered: {keys:?}"
        );
    }
    assert!(!log.contains("WARN"), "no warning on a fresh build:\n{log}");
}
