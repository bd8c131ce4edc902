//! The daemon talks to a supervisor over HTTPS: `ld-supervisor serve --tls-cert/--tls-key`
//! with a certificate from a CA the test makes, and `ld-connectord run` with
//! `supervisor_ca_file`. A node that does not trust the CA gets nothing.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use ld_e2e_tests::daemon::{
    activate_request, free_port, scope, sink_config, supervisor_binary, Http, Node, NodeOptions,
    DEPLOYMENT,
};
use ld_protocol::SupervisorClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;

/// Writes `ca.pem`, `server.pem` (for localhost and 127.0.0.1) and `server.key`.
fn make_pki(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ld-connectord test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_node_runs_instances_from_a_supervisor_over_https() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        json!([{"key": "test", "type": "sink", "name": "Test sink", "description": "fixture"}])
            .to_string(),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(supervisor_binary())
        .arg("serve")
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--catalog")
        .arg(&catalog)
        .arg("--tls-cert")
        .arg(dir.path().join("server.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut key = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("ld-api-key: ") {
            key = k.trim().to_string();
        }
        if line.starts_with("ld-supervisor listening on") {
            assert!(line.contains("https://"), "{line}");
            break;
        }
    }
    let _supervisor = KillOnDrop(child);
    assert!(!key.is_empty(), "the first start prints a key");
    let url = format!("https://localhost:{port}");

    // A node trusting the CA, and one that does not.
    let mut trusting = Node::new(&url, &key, "node-tls", NodeOptions::default());
    let config = trusting.path("config.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "supervisor_ca_file = \"{}\"\n",
        dir.path().join("ca.pem").display()
    ));
    std::fs::write(&config, toml).unwrap();
    trusting.restart();
    let untrusting = Node::start_at(&url, &key, "node-plain", NodeOptions::default());

    // The user's client trusts the same CA file.
    let client = SupervisorClient::builder(&url, DEPLOYMENT)
        .api_key(&key)
        .ca_file(&dir.path().join("ca.pem"))
        .unwrap()
        .build()
        .unwrap();
    let request = activate_request("tls-sink", "test", "sink", sink_config("orders", json!({})));
    let id = Http::new()
        .block_on(client.activate(&scope(), &request))
        .unwrap()
        .id;

    trusting.wait_status(id, "active", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        untrusting.instance(id).is_none(),
        "a node that does not trust the CA got an assignment"
    );
    let log = untrusting.log();
    assert!(
        log.to_lowercase().contains("certificate"),
        "the untrusting node says why: {log}"
    );
}
