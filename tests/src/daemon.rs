//! The daemon for real: a real `ld-supervisor serve` process and real `ld-connectord run`
//! processes, driven through the real HTTP APIs (the supervisor's Main and Supervisor API
//! through `ld-protocol`'s client, the node's local API). Tests and the reaction benchmark
//! use only this module to start, kill, restart and watch processes.

use std::{
    future::Future,
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use ld_protocol::{
    ActivateRequest, Assignment, CatalogPage, CatalogQuery, CreateKeyRequest, InstanceItem,
    InstanceStatus, ListQuery, Permission, Scope, SupervisorClient,
};
use serde_json::{json, Value};

use crate::{artifacts, daemon_binary, plugin_dir_with};

/// The deployment every test uses (the seed's example id).
pub const DEPLOYMENT: u64 = 611298765432109056;

/// The tenant, division and environment of the tests' Main API calls (the reference
/// supervisor takes any ids there).
pub fn scope() -> Scope {
    Scope::new("1", "1", "1")
}

/// How long one call to the supervisor or a node's local API may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Path of the `ld-supervisor` binary.
pub fn supervisor_binary() -> PathBuf {
    artifacts().join("ld-supervisor")
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `limit` naming
/// `what` and the last thing `describe` says.
pub fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if started.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for {what}; {}",
                describe()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A blocking HTTP client for a node's local API, and the runtime that the supervisor's
/// async client runs on in these blocking tests: reqwest's async client on a runtime of
/// its own (reqwest's `blocking` feature would change the daemon's feature set and
/// rebuild it for tests).
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

/// An answer: status, ETag and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.body)
    }
}

impl Http {
    /// A client with a 15 s timeout per request.
    pub fn new() -> Self {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("HTTP client"),
        }
    }

    /// Runs `future` (a call of the supervisor's client) to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads the whole answer.
    pub fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Result<Answer> {
        self.block_on(async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response.text().await?;
            Ok(Answer { status, etag, body })
        })
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// Sends SIGTERM and waits for the exit; returns (exited successfully, time to exit), or
/// kills it and panics after `limit`.
pub(crate) fn terminate(
    child: &mut Child,
    limit: Duration,
    log: impl Fn() -> String,
) -> (bool, Duration) {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.success(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within {limit:?} of SIGTERM; log:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// CPU time (user + system) a process used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_sec: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// A sink config reading `stream/topic` of the node's embedded log with the test sink's
/// `plugin_config`.
pub fn sink_config(topic: &str, plugin_config: Value) -> Value {
    json!({"enabled": true,
           "streams": [{"stream": "e2e", "topics": [topic], "schema": "json",
                        "batch_length": 500, "poll_interval": "10ms"}],
           "plugin_config": plugin_config})
}

/// A random source config writing into `stream/topic`.
pub fn source_config(topic: &str, plugin_config: Value) -> Value {
    json!({"enabled": true,
           "streams": [{"stream": "e2e", "topic": topic, "schema": "json"}],
           "plugin_config": plugin_config})
}

/// The activate request the tests send: the instance key doubles as its name.
pub fn activate_request(
    instance_key: &str,
    connector_key: &str,
    connector_type: &str,
    config: Value,
) -> ActivateRequest {
    ActivateRequest {
        connector_key: connector_key.to_string(),
        connector_type: connector_type
            .parse()
            .unwrap_or_else(|e| panic!("connector type: {e}")),
        instance_name: Some(instance_key.to_string()),
        instance_key: Some(instance_key.to_string()),
        config: Some(config),
    }
}

/// A real `ld-supervisor serve` process on 127.0.0.1 with its own data directory.
pub struct Supervisor {
    dir: tempfile::TempDir,
    port: u16,
    key: String,
    node_ttl_secs: u64,
    child: Option<Child>,
    runs: u32,
    http: Http,
    /// The client with the key of every permission (set by the first start).
    client: Option<SupervisorClient>,
}

impl Supervisor {
    /// Starts a supervisor with a fresh data directory; its catalog holds the connectors
    /// the tests use (`test` and `stdout` sinks, `random` source).
    pub fn start() -> Self {
        Self::start_with_ttl(30)
    }

    /// Same, with nodes counted as gone after `node_ttl_secs` without a sign of life.
    pub fn start_with_ttl(node_ttl_secs: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("catalog.json"),
            serde_json::to_vec(&json!([
                {"key": "test", "type": "sink", "name": "Test sink", "description": "fixture"},
                {"key": "test", "type": "source", "name": "Test source", "description": "counts, and logs when it runs"},
                {"key": "stdout", "type": "sink", "name": "Stdout sink", "description": "prints"},
                {"key": "random", "type": "source", "name": "Random source", "description": "generates"}
            ]))
            .unwrap(),
        )
        .unwrap();
        let mut supervisor = Supervisor {
            dir,
            port: free_port(),
            key: String::new(),
            node_ttl_secs,
            child: None,
            runs: 0,
            http: Http::new(),
            client: None,
        };
        supervisor.restart();
        assert!(!supervisor.key.is_empty(), "the first start prints a key");
        supervisor.client = Some(
            SupervisorClient::builder(&supervisor.url(), DEPLOYMENT)
                .api_key(&supervisor.key)
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("supervisor client"),
        );
        supervisor
    }

    /// Starts the process again on the same data directory and port (it must not run).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "supervisor already running");
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs)).unwrap();
        let mut child = Command::new(supervisor_binary())
            .arg("serve")
            .arg("--data")
            .arg(self.dir.path().join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--catalog")
            .arg(self.dir.path().join("catalog.json"))
            .arg("--node-ttl-secs")
            .arg(self.node_ttl_secs.to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start ld-supervisor");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        for line in stdout.lines() {
            let line = line.expect("supervisor stdout");
            if let Some(key) = line.strip_prefix("ld-api-key: ") {
                self.key = key.trim().to_string();
            }
            if line.starts_with("ld-supervisor listening on") {
                break;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ld-supervisor exited: {status}; log:\n{}", self.log());
        }
        self.child = Some(child);
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("supervisor running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API key with every permission.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("supervisor-{run}.log"))
    }

    /// Every log written so far.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// The protocol client, with the key of every permission.
    pub fn client(&self) -> &SupervisorClient {
        self.client.as_ref().expect("started")
    }

    /// The runtime the blocking helpers run the client's calls on.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Activates a connector through the Main API and returns the new item; panics when
    /// refused.
    pub fn activate(
        &self,
        instance_key: &str,
        connector_key: &str,
        connector_type: &str,
        config: Value,
    ) -> InstanceItem {
        let request = activate_request(instance_key, connector_key, connector_type, config);
        self.http
            .block_on(self.client().activate(&scope(), &request))
            .unwrap_or_else(|e| panic!("activate {instance_key}: {e}"))
    }

    /// Deletes an instance; panics when refused.
    pub fn delete(&self, id: u64) {
        self.http
            .block_on(self.client().delete_instance(id))
            .unwrap_or_else(|e| panic!("delete {id}: {e}"))
    }

    /// Stores a new config version; returns the instance as answered.
    pub fn set_config(&self, id: u64, config: Value) -> InstanceItem {
        self.http
            .block_on(self.client().set_config(id, &config))
            .unwrap_or_else(|e| panic!("set config of {id}: {e}"))
    }

    /// Stops (`"stop"`: `inactive`) or starts (`"start"`) an instance.
    pub fn stop_or_start(&self, id: u64, action: &str) {
        let client = self.client();
        let answer = match action {
            "stop" => self.http.block_on(client.stop(id)),
            "start" => self.http.block_on(client.start(id)),
            other => panic!("`{other}` is neither stop nor start"),
        };
        answer.unwrap_or_else(|e| panic!("{action} {id}: {e}"));
    }

    /// Restarts an instance (`POST .../restart`); returns it as answered.
    pub fn restart_instance(&self, id: u64) -> InstanceItem {
        self.http
            .block_on(self.client().restart(id))
            .unwrap_or_else(|e| panic!("restart {id}: {e}"))
    }

    /// Restarts the deployment's instances (`POST .../instances/restart`); returns
    /// those restarted.
    pub fn restart_all(&self, only_failed: bool) -> Vec<InstanceItem> {
        self.http
            .block_on(self.client().restart_all(only_failed))
            .unwrap_or_else(|e| panic!("restart all: {e}"))
    }

    /// Creates a key holding `permissions`; returns the key.
    pub fn create_key(&self, permissions: &[Permission]) -> String {
        let request = CreateKeyRequest {
            permissions: permissions.to_vec(),
            deployments: Vec::new(),
            expires_at: None,
            expires_in_secs: None,
            name: None,
        };
        self.http
            .block_on(self.client().create_key(&request))
            .unwrap_or_else(|e| panic!("create key: {e}"))
            .key
    }

    /// Waits until the catalog lists `key`: nodes announce their plugins in heartbeats,
    /// and activating before that is refused as an unknown connector.
    pub fn wait_catalog(&self, key: &str) {
        let query = CatalogQuery {
            results: Some(100),
            ..CatalogQuery::default()
        };
        let started = Instant::now();
        loop {
            let page = self.catalog(&query);
            if page.items.iter().any(|item| item.key == key) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "catalog without {key}: {page:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One page of the deployment's catalog.
    pub fn catalog(&self, query: &CatalogQuery) -> CatalogPage {
        self.http
            .block_on(self.client().catalog(&scope(), query))
            .unwrap_or_else(|e| panic!("catalog: {e}"))
    }

    /// The instance list as JSON text, as a user holding `key` sees it (secret values
    /// masked).
    pub fn list_json_as(&self, key: &str) -> String {
        let list = self
            .http
            .block_on(self.client().with_api_key(key).list_instances())
            .unwrap_or_else(|e| panic!("list instances: {e}"));
        // The supervisor serializes these same structs: this is the text it sent.
        serde_json::to_string(&list).expect("a list serializes")
    }

    /// The instance list as JSON text, with the key of every permission.
    pub fn list_json(&self) -> String {
        self.list_json_as(&self.key)
    }

    /// The instance list.
    pub fn instances(&self) -> Vec<InstanceItem> {
        self.http
            .block_on(self.client().list_instances())
            .unwrap_or_else(|e| panic!("list instances: {e}"))
    }

    /// One instance of the list.
    pub fn instance(&self, id: u64) -> Option<InstanceItem> {
        self.instances().into_iter().find(|i| i.id == id)
    }

    /// Waits, with the long poll (`If-None-Match` + `wait`), until `done` holds for the
    /// list; returns the list. Panics after `limit` with the last list.
    pub fn watch(
        &self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&[InstanceItem]) -> bool,
    ) -> Vec<InstanceItem> {
        let started = Instant::now();
        let mut etag: Option<String> = None;
        let mut last: Vec<InstanceItem> = Vec::new();
        loop {
            let query = ListQuery {
                if_none_match: etag.as_deref(),
                wait: Some(Duration::from_secs(1)),
                reveal_secrets: false,
                node_id: None,
            };
            match self.http.block_on(self.client().list(&query)) {
                Ok(Assignment::Changed {
                    etag: new,
                    instances,
                }) => {
                    etag = new;
                    last = instances;
                    if done(&last) {
                        return last;
                    }
                }
                Ok(Assignment::Unchanged) => {}
                // Down for a restart, or between two lives: try again shortly.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            if started.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for {what}; last list: {}",
                    serde_json::to_string(&last).unwrap()
                );
            }
        }
    }

    /// Waits until the supervisor shows instance `id` with `status`; returns it.
    pub fn wait_status(&self, id: u64, status: InstanceStatus, limit: Duration) -> InstanceItem {
        let list = self.watch(limit, &format!("instance {id} {status}"), |list| {
            list.iter().any(|i| i.id == id && i.status == status)
        });
        list.into_iter().find(|i| i.id == id).unwrap()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Settings of a node's generated config; short intervals for fast tests.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Plugins copied into the node's plugin directory (`test_sink`, `random_source`, ...).
    pub plugins: Vec<&'static str>,
    /// `heartbeat_interval`.
    pub heartbeat_interval: &'static str,
    /// `long_poll_wait`.
    pub long_poll_wait: &'static str,
    /// `restart_backoff`.
    pub restart_backoff: &'static str,
    /// `restart_backoff_max`.
    pub restart_backoff_max: &'static str,
    /// `max_restarts`.
    pub max_restarts: u32,
    /// `shutdown_timeout`.
    pub shutdown_timeout: &'static str,
    /// TOML appended to the config, e.g. a `[stream]` table (default: the embedded log).
    pub extra_toml: String,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            plugins: vec!["test_sink", "random_source", "stdout_sink"],
            heartbeat_interval: "1s",
            long_poll_wait: "5s",
            restart_backoff: "100ms",
            restart_backoff_max: "400ms",
            max_restarts: 2,
            shutdown_timeout: "10s",
            extra_toml: String::new(),
        }
    }
}

/// A real `ld-connectord run --config <generated toml>` process with its own node id,
/// state directory, plugin directory and local API port.
pub struct Node {
    /// The node id.
    pub id: String,
    dir: tempfile::TempDir,
    plugins: tempfile::TempDir,
    api_port: u16,
    api_key: String,
    child: Option<Child>,
    runs: u32,
    http: Http,
}

impl Node {
    /// Starts a node of `supervisor`.
    pub fn start(supervisor: &Supervisor, id: &str, options: NodeOptions) -> Self {
        Self::start_at(&supervisor.url(), supervisor.key(), id, options)
    }

    /// Starts a node talking to the supervisor at `url` with `api_key`.
    pub fn start_at(url: &str, api_key: &str, id: &str, options: NodeOptions) -> Self {
        let mut node = Self::new(url, api_key, id, options);
        node.restart();
        node
    }

    /// A node that is configured but not started yet.
    pub fn new(url: &str, api_key: &str, id: &str, options: NodeOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = plugin_dir_with(&options.plugins);
        let api_port = free_port();
        let toml = format!(
            "supervisor_url = \"{url}\"\n\
             deployment_id = {DEPLOYMENT}\n\
             node_id = \"{id}\"\n\
             plugin_dir = \"{plugins}\"\n\
             state_dir = \"{state}\"\n\
             api_listen = \"127.0.0.1:{api_port}\"\n\
             heartbeat_interval = \"{hb}\"\n\
             long_poll_wait = \"{lp}\"\n\
             restart_backoff = \"{rb}\"\n\
             restart_backoff_max = \"{rbm}\"\n\
             max_restarts = {mr}\n\
             shutdown_timeout = \"{st}\"\n",
            plugins = plugins.path().display(),
            state = dir.path().join("state").display(),
            hb = options.heartbeat_interval,
            lp = options.long_poll_wait,
            rb = options.restart_backoff,
            rbm = options.restart_backoff_max,
            mr = options.max_restarts,
            st = options.shutdown_timeout,
        ) + &options.extra_toml;
        std::fs::write(dir.path().join("config.toml"), toml).unwrap();
        Node {
            id: id.to_string(),
            dir,
            plugins,
            api_port,
            api_key: api_key.to_string(),
            child: None,
            runs: 0,
            http: Http::new(),
        }
    }

    /// Starts the process (again) and waits until its local API answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs)).unwrap();
        let child = Command::new(daemon_binary())
            .arg("run")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            // Relative paths in plugin configs (a sink's output file) are per node.
            .current_dir(self.dir.path())
            .env("LD_CONNECTORD_API_KEY", &self.api_key)
            .env("LD_CONNECTORD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ld-connectord run");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("node {} exited: {status}; log:\n{}", self.id, self.log());
            }
            let health = self.http.client().get(format!("{}/health", self.api_url()));
            if self.http.send(health).is_ok() {
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "node {}'s local API did not answer; log:\n{}",
                    self.id,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Base URL of the node's local API.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The node's plugin directory.
    pub fn plugin_dir(&self) -> &Path {
        self.plugins.path()
    }

    /// A path in the node's working directory (for sink output files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node running").id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("node running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM; returns (exited successfully, time to exit); panics after `limit`.
    pub fn terminate(&mut self, limit: Duration) -> (bool, Duration) {
        let mut child = self.child.take().expect("node running");
        terminate(&mut child, limit, || self.log())
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("node-{run}.log"))
    }

    /// Every log written so far.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// `GET /instances` of the local API.
    pub fn instances(&self) -> Vec<Value> {
        let request = self
            .http
            .client()
            .get(format!("{}/instances", self.api_url()));
        self.http
            .send(request)
            .map_err(|e| e.to_string())
            .and_then(|a| a.json::<Vec<Value>>().map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("node {} /instances: {e}; log:\n{}", self.id, self.log()))
    }

    /// One instance of `/instances`.
    pub fn instance(&self, id: u64) -> Option<Value> {
        self.instances().into_iter().find(|v| v["id"] == id)
    }

    /// `GET /metrics` of the local API (Prometheus text).
    pub fn metrics(&self) -> String {
        let request = self
            .http
            .client()
            .get(format!("{}/metrics", self.api_url()));
        self.http.send(request).expect("metrics").body
    }

    /// `GET /health`: (HTTP status, body).
    pub fn health(&self) -> (u16, Value) {
        let request = self.http.client().get(format!("{}/health", self.api_url()));
        let answer = self.http.send(request).expect("health");
        (answer.status, answer.json().unwrap_or(Value::Null))
    }

    /// Waits until `done` holds for the node's `/instances`.
    pub fn wait_instances(
        &self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        wait_until(
            limit,
            &format!("{what} on node {}", self.id),
            || {
                let list = self.instances();
                done(&list).then_some(list)
            },
            || {
                format!(
                    "node /instances: {}",
                    serde_json::to_string(&self.instances()).unwrap()
                )
            },
        )
    }

    /// Waits until the node shows instance `id` with local `status`; returns its view.
    pub fn wait_status(&self, id: u64, status: &str, limit: Duration) -> Value {
        let list = self.wait_instances(limit, &format!("instance {id} {status}"), |list| {
            list.iter().any(|v| v["id"] == id && v["status"] == status)
        });
        list.into_iter().find(|v| v["id"] == id).unwrap()
    }

    /// Waits until the node no longer lists instance `id`.
    pub fn wait_gone(&self, id: u64, limit: Duration) {
        self.wait_instances(limit, &format!("instance {id} gone"), |list| {
            list.iter().all(|v| v["id"] != id)
        });
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
