//! Shared harness: a real supervisor on a real 127.0.0.1 socket, in-process or as the
//! `ld-supervisor` binary, and keys for every permission set.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ld_protocol::{routes, ActivateRequest, Permission, Scope, SupervisorClient, API_KEY_HEADER};
use ld_supervisor::{Supervisor, SupervisorConfig};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::Value;
use tokio::sync::oneshot;

/// The deployment id of the seed's example; must round-trip as a JSON integer.
pub const DEP: u64 = 611298765432109056;

/// The tenant, division and environment of the Main API calls.
pub fn scope() -> Scope {
    Scope::new("t1", "d1", "e1")
}

/// Main API prefix (the catalog route) for `dep`.
pub fn main_api(dep: u64) -> String {
    routes::catalog(&scope(), dep)
}

/// Keys with the interesting permission sets.
pub struct Keys {
    pub admin: String,
    pub manage: String,
    pub read: String,
    pub node: String,
}

/// A supervisor serving on 127.0.0.1:0 inside the test process.
pub struct Server {
    pub base: String,
    pub keys: Keys,
    /// For requests of the tests' own making (the HTTP layer under test).
    pub client: Client,
    /// The protocol client with the admin key, for [`DEP`].
    pub api: SupervisorClient,
    pub supervisor: Supervisor,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    /// Starts with the built-in catalog and the default node TTL.
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    /// Starts after letting `tune` change the config.
    pub async fn start_with(tune: impl FnOnce(&mut SupervisorConfig)) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SupervisorConfig::new(dir.path().join("data"));
        tune(&mut config);
        let supervisor = Supervisor::open(config).expect("open");
        for entry in ld_supervisor::builtin_catalog() {
            supervisor.register_catalog_entry(entry).expect("catalog");
        }
        let keys = keys_for(&supervisor);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel();
        let serving = supervisor.clone();
        tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        let api = SupervisorClient::new(&base, DEP, &keys.admin, &[]);
        Server {
            base,
            keys,
            client: Client::new(),
            api,
            supervisor,
            dir,
            stop: Some(stop),
        }
    }

    /// A request with `key` (None sends no key header).
    pub fn req(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match key {
            Some(key) => builder.header(API_KEY_HEADER, key),
            None => builder,
        }
    }

    /// A request with the admin key.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path, Some(&self.keys.admin))
    }

    /// Activates `body` (an activate request as JSON) on `dep` with the admin key and
    /// returns the created item as JSON; panics when refused.
    pub async fn activate(&self, dep: u64, body: Value) -> Value {
        let request: ActivateRequest =
            serde_json::from_value(body.clone()).expect("an activate request");
        let item = self
            .api
            .for_deployment(dep)
            .activate(&scope(), &request)
            .await
            .unwrap_or_else(|e| panic!("activate {body}: {e}"));
        serde_json::to_value(item).expect("an item serializes")
    }

    /// The instance list of `dep` as the admin key sees it, as JSON; panics when refused.
    pub async fn instances(&self, dep: u64) -> Vec<Value> {
        let items = self
            .api
            .for_deployment(dep)
            .list_instances()
            .await
            .expect("instance list");
        items
            .into_iter()
            .map(|item| serde_json::to_value(item).expect("an item serializes"))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn keys_for(supervisor: &Supervisor) -> Keys {
    Keys {
        admin: supervisor.create_api_key(&Permission::ALL).unwrap(),
        manage: supervisor.create_api_key(&[Permission::Manage]).unwrap(),
        read: supervisor.create_api_key(&[Permission::Read]).unwrap(),
        node: supervisor.create_api_key(&[Permission::Node]).unwrap(),
    }
}

/// Checks that a response is a problem document with `status` and returns its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    for field in ["type", "title", "code", "reason"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    assert_eq!(body["status"], status, "{body}");
    body
}

/// The `ld-supervisor` binary serving a data directory; killed on drop.
pub struct Binary {
    pub base: String,
    child: Child,
}

/// Runs `ld-supervisor keys create` and returns the printed key.
pub fn cli_create_key(data: &Path, permissions: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ld-supervisor"))
        .args(["keys", "create", "--data"])
        .arg(data)
        .args(["--permissions", permissions])
        .output()
        .expect("run keys create");
    assert!(output.status.success(), "keys create: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

impl Binary {
    /// Starts `ld-supervisor serve --data DATA --listen 127.0.0.1:0` and waits for its
    /// "listening" line.
    pub fn start(data: &Path, extra: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ld-supervisor"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ld-supervisor");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("ld-supervisor exited before listening")
                .expect("read stdout");
            if let Some(url) = line.strip_prefix("ld-supervisor listening on ") {
                break url.trim().to_string();
            }
        };
        Binary { base, child }
    }

    /// Kills the process (SIGKILL: no graceful shutdown) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
