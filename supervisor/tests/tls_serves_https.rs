//! `ld-supervisor serve --tls-cert --tls-key` and `Supervisor::serve_tls` serve HTTPS from
//! PEM files; the test makes a CA and a server certificate with rcgen.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli_create_key, Binary, DEP};
use ld_protocol::{ClientError, Permission, SupervisorClient};
use ld_supervisor::{Supervisor, SupervisorConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_pem: Vec<u8>,
}

fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ld-supervisor test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca_pem: ca_cert.pem().into_bytes(),
    };
    std::fs::write(&pki.ca, &pki.ca_pem).unwrap();
    std::fs::write(&pki.cert, server_cert.pem()).unwrap();
    std::fs::write(&pki.key, server_key.serialize_pem()).unwrap();
    pki
}

/// A protocol client of `base` trusting the test CA.
fn trusting(pki: &Pki, base: &str, key: &str) -> SupervisorClient {
    SupervisorClient::builder(base, DEP)
        .api_key(key)
        .ca_file(&pki.ca)
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn embedded_supervisor_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let supervisor = Supervisor::open(SupervisorConfig::new(dir.path().join("data"))).unwrap();
    let key = supervisor.create_api_key(&Permission::ALL).unwrap();
    let tls = ld_supervisor::tls::load_server_config(&pki.cert, &pki.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(supervisor.serve_tls(listener, tls, async {
        let _ = stopped.await;
    }));

    for host in ["localhost", "127.0.0.1"] {
        let base = format!("https://{host}:{port}");
        let listed = trusting(&pki, &base, &key).list_instances().await;
        assert!(listed.is_ok(), "{base}: {listed:?}");
    }
    // A client that does not trust the CA refuses the server, and says why; plain HTTP
    // gets no answer.
    let base = format!("https://127.0.0.1:{port}");
    match SupervisorClient::new(&base, DEP, &key, &[])
        .list_instances()
        .await
    {
        Err(ClientError::Unreachable(why)) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("an untrusted certificate is unreachable: {other:?}"),
    }
    let plain = SupervisorClient::new(&format!("http://127.0.0.1:{port}"), DEP, &key, &[]);
    assert!(matches!(
        plain.list_instances().await,
        Err(ClientError::Unreachable(_))
    ));
    // Still serving after the failed handshakes.
    let listed = trusting(&pki, &base, &key).list_instances().await;
    assert!(listed.is_ok(), "{listed:?}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn serve_binary_with_tls_flags() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let data = dir.path().join("data");
    let key = cli_create_key(&data, "deployment:connector:read,supervisor:keys:manage");
    let server = Binary::start(
        &data,
        &[
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let listed = trusting(&pki, &server.base, &key).list_instances().await;
    assert!(listed.is_ok(), "{listed:?}");

    // The keys CLI reaches the HTTPS server with the CA.
    let output = Command::new(env!("CARGO_BIN_EXE_ld-supervisor"))
        .args(["keys", "list", "--json", "--data"])
        .arg(&data)
        .args(["--api-key", &key, "--ca-cert"])
        .arg(&pki.ca)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    // A key file that does not match is refused at start, naming the problem.
    let other = make_pki(&dir.path().join("x").tap_mkdir());
    let output = Command::new(env!("CARGO_BIN_EXE_ld-supervisor"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data2"))
        .arg("--tls-cert")
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&other.key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("certificate and key"), "{stderr}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
