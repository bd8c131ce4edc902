//! A real single-node OpenSearch 2.19.6 server for tests and benchmarks, run from the
//! Maven project in `tests/opensearch-launcher/` (the server's own jars from Maven Central,
//! embedded in a small launcher: no distribution tarball, no container).
//!
//! The launcher is built once per test process with `mvn package` into
//! `<target dir>/opensearch-launcher/<fingerprint of its sources>/` (the first build on a
//! machine downloads about 60 MB into `~/.m2`); concurrent test processes serialise the
//! build through `flock` and publish it with an atomic rename. Each [`OpenSearch`] is its
//! own JVM (`-Xmx512m`) with its home, data and log in a temporary directory, HTTP on
//! 127.0.0.1, `discovery.type=single-node`; killed and deleted on drop.
//!
//! ```no_run
//! use ld_e2e_tests::opensearch::{OpenSearch, OpenSearchOptions};
//! let Some(os) = OpenSearch::start() else { return }; // prints "skipping: ..."
//! let (status, _) = os.bulk("{\"index\":{\"_index\":\"orders\"}}\n{\"id\":1}\n");
//! assert_eq!(status, 200);
//! assert_eq!(os.count("orders"), 1);
//! // Back-pressure: a write pool of one thread and a queue of one gives 429s quickly.
//! let busy = OpenSearch::start_with(OpenSearchOptions::default()
//!     .setting("thread_pool.write.size", "1")
//!     .setting("thread_pool.write.queue_size", "1"));
//! ```
//!
//! `java` comes from `$JAVA_HOME/bin` when set, else `PATH`; `mvn` from `PATH`. Only when
//! one of them is missing does [`OpenSearch::start`] print `skipping: ...` and return
//! `None`; a failing build or a server that does not become ready panics (with the Maven
//! output or the server log), as that is a broken machine, not a skip.

use std::{
    fs::{File, OpenOptions},
    hash::{DefaultHasher, Hasher},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long a node may take from JVM start to `yellow` before the harness gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// One HTTP request's limit in the helpers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The JVM's heap: small, so that several nodes fit on a 2-core CI machine.
const JVM_OPTIONS: &[&str] = &[
    "-Xms256m",
    "-Xmx512m",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-UsePerfData",
    "-Dfile.encoding=UTF-8",
];

/// Node settings beyond the launcher's defaults, passed as `-Ekey=value`.
#[derive(Debug, Clone, Default)]
pub struct OpenSearchOptions {
    pub settings: Vec<(String, String)>,
}

impl OpenSearchOptions {
    /// Adds one setting, e.g. `.setting("thread_pool.write.queue_size", "1")`.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }
}

/// The built launcher: `java` and the directory with `opensearch-launcher.jar` and `lib/`.
struct Launcher {
    java: PathBuf,
    dir: PathBuf,
}

/// A running (or stopped, see [`OpenSearch::stop`]) single-node OpenSearch server.
pub struct OpenSearch {
    launcher: &'static Launcher,
    settings: Vec<(String, String)>,
    /// Holds `home/` (path.home), `data/` (path.data), `tmp/` and `server.log`.
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The launcher exits when this pipe closes, so a test process that dies without
    /// running destructors does not leave a JVM behind.
    stdin: Option<ChildStdin>,
    port: u16,
}

impl OpenSearch {
    /// Starts a node with the default settings; see [`OpenSearch::start_with`].
    pub fn start() -> Option<OpenSearch> {
        OpenSearch::start_with(OpenSearchOptions::default())
    }

    /// Builds the launcher (once per process) and starts a node with `options`, waiting
    /// until the cluster is at least yellow. Prints `skipping: ...` and returns `None` only
    /// when java or mvn is missing.
    pub fn start_with(options: OpenSearchOptions) -> Option<OpenSearch> {
        let launcher = match launcher() {
            Ok(launcher) => launcher,
            Err(reason) => {
                eprintln!("skipping: {reason}");
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("ld-opensearch-")
            .tempdir()
            .expect("temp dir");
        for sub in ["home", "data", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("create node directory");
        }
        let mut node = OpenSearch {
            launcher,
            settings: options.settings,
            dir,
            child: None,
            stdin: None,
            port: 0,
        };
        // Port 0: the node binds a free port and says which; a restart reuses it.
        node.spawn(0);
        Some(node)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The HTTP port (the same across [`OpenSearch::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this is an emulator rather than the real server: never, here.
    pub fn is_emulator(&self) -> bool {
        false
    }

    /// Sends SIGTERM and waits for the JVM to exit (the node flushes and closes); the port
    /// is closed afterwards. Kills it and panics when it takes longer than a minute. A no-op
    /// when stopped already.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM of the OpenSearch node failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(_status) = child.try_wait().expect("wait for the OpenSearch node") {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.stdin = None;
                panic!(
                    "the OpenSearch node did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stdin = None;
    }

    /// Starts the node again on the same port with the same data directory and settings
    /// (stopping it first if it runs), and waits until it is at least yellow.
    pub fn start_again(&mut self) {
        self.stop();
        let port = self.port;
        self.spawn(port);
    }

    /// Everything the server printed so far (all runs), for assertion messages.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// `POST /{index}/_refresh`; panics unless it succeeds.
    pub fn refresh(&self, index: &str) {
        let (status, body) = self.request("POST", &format!("/{index}/_refresh"), None);
        assert!(
            (200..300).contains(&status),
            "refresh of {index} answered {status}: {body}"
        );
    }

    /// Documents in `index` after a refresh (`_count`); 0 when the index does not exist.
    pub fn count(&self, index: &str) -> u64 {
        let (status, body) = self.request("POST", &format!("/{index}/_refresh"), None);
        if status == 404 {
            return 0;
        }
        assert!(
            (200..300).contains(&status),
            "refresh of {index} answered {status}: {body}"
        );
        let (status, body) = self.request("GET", &format!("/{index}/_count"), None);
        assert_eq!(status, 200, "count of {index}: {body}");
        body["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {body}"))
    }

    /// `GET path` (e.g. `/_nodes/thread_pool`); panics unless the answer is 2xx JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None);
        assert!(
            (200..300).contains(&status),
            "GET {path} answered {status}: {body}"
        );
        body
    }

    /// `PUT path` with a JSON body; returns the status and the JSON answer.
    pub fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("PUT", path, Some(body))
    }

    /// `POST /_bulk` with an NDJSON body (each line ending in `\n`); returns the status and
    /// the JSON answer (per-item statuses under `items`).
    pub fn bulk(&self, ndjson: &str) -> (u16, Value) {
        let (status, text) = http(
            "POST",
            &format!("{}/_bulk", self.url()),
            Some(("application/x-ndjson", ndjson.as_bytes().to_vec())),
            REQUEST_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST /_bulk: {e}\nserver log:\n{}", self.log()));
        (status, parse(&text))
    }

    /// Any request with an optional JSON body; returns the status and the JSON answer
    /// (`Value::Null` for an empty body, a JSON string for a non-JSON one). Panics only
    /// when the server cannot be reached.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let (status, text) = http(
            method,
            &format!("{}{path}", self.url()),
            body,
            REQUEST_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\nserver log:\n{}", self.log()));
        (status, parse(&text))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts the JVM (`port` 0: any free port), waits for its `READY` line and then for
    /// a yellow cluster; panics with the log when it does not get there in time.
    fn spawn(&mut self, port: u16) {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the OpenSearch log");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let root = self.dir.path();
        let classpath = format!(
            "{}:{}/*",
            self.launcher.dir.join("opensearch-launcher.jar").display(),
            self.launcher.dir.join("lib").display()
        );
        let mut cmd = Command::new(&self.launcher.java);
        cmd.args(JVM_OPTIONS)
            .arg(format!("-Djava.io.tmpdir={}", root.join("tmp").display()))
            .arg("-Dld.opensearch.exitOnStdinEof=true")
            .arg("-cp")
            .arg(classpath)
            .arg("ld.opensearch.Launcher")
            .arg(format!("-Epath.home={}", root.join("home").display()))
            .arg(format!("-Epath.data={}", root.join("data").display()))
            .arg(format!("-Ehttp.port={port}"));
        for (key, value) in &self.settings {
            cmd.arg(format!("-E{key}={value}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.launcher.java.display()));
        self.stdin = child.stdin.take();
        self.child = Some(child);

        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        let announced = loop {
            self.assert_running();
            let text = std::fs::read(&log_path).unwrap_or_default();
            let text = String::from_utf8_lossy(text.get(log_start..).unwrap_or_default());
            if let Some(port) = ready_port(&text) {
                break port;
            }
            self.assert_before(deadline, "print READY");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            port == 0 || announced == port,
            "asked for port {port}, the node listens on {announced}"
        );
        self.port = announced;
        let health = format!(
            "{}/_cluster/health?wait_for_status=yellow&timeout=2s",
            self.url()
        );
        loop {
            self.assert_running();
            if let Ok((200, _)) = http("GET", &health, None, Duration::from_secs(5)) {
                break;
            }
            self.assert_before(deadline, "become yellow");
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "OpenSearch 2.19.6 ready at {} in {:.1} s",
            self.url(),
            started.elapsed().as_secs_f64()
        );
    }

    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("node started");
        if let Some(status) = child.try_wait().expect("wait for the OpenSearch node") {
            self.child = None;
            self.stdin = None;
            panic!(
                "the OpenSearch node exited ({status}) before it was ready; log:\n{}",
                self.log()
            );
        }
    }

    fn assert_before(&mut self, deadline: Instant, what: &str) {
        if Instant::now() > deadline {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            self.stdin = None;
            panic!(
                "the OpenSearch node did not {what} within {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for OpenSearch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stdin = None;
    }
}

/// The port of the last `READY http://HOST:PORT` line in `log`.
fn ready_port(log: &str) -> Option<u16> {
    let line = log.lines().rev().find(|l| l.contains("READY http://"))?;
    let address = line.split("READY http://").nth(1)?.trim();
    address.rsplit(':').next()?.parse().ok()
}

fn parse(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    }
}

/// One blocking HTTP request: runs on its own thread with its own runtime, so the
/// helpers work from synchronous tests and from inside a tokio runtime alike.
fn http(
    method: &str,
    url: &str,
    body: Option<(&'static str, Vec<u8>)>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = client.request(method, &url);
            if let Some((content_type, bytes)) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| e.to_string())?;
            Ok((status, text))
        })
    })
    .join()
    .expect("HTTP helper thread panicked")
}

fn launcher() -> Result<&'static Launcher, String> {
    static BUILT: OnceLock<Result<Launcher, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_launcher)
        .as_ref()
        .map_err(Clone::clone)
}

/// The launcher's Maven project.
fn launcher_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("opensearch-launcher")
}

fn build_launcher() -> Result<Launcher, String> {
    let java = java_binary().ok_or("no java (set JAVA_HOME or put java on PATH)")?;
    let source = launcher_source();
    let target_dir = crate::profile_dir()
        .parent()
        .expect("target dir")
        .to_path_buf();
    let out = target_dir
        .join("opensearch-launcher")
        .join(format!("{:016x}", fingerprint(&source)));
    if !out.join("opensearch-launcher.jar").exists() {
        let mvn =
            find_on_path("mvn").ok_or("no mvn on PATH (Maven builds the OpenSearch launcher)")?;
        build(&mvn, &source, &out);
    }
    Ok(Launcher { java, dir: out })
}

/// `mvn package` in a private copy of the sources, published to `out` by renaming its
/// `target/`; run under `flock` (util-linux) so that test processes running in parallel
/// build once and wait for each other.
fn build(mvn: &Path, source: &Path, out: &Path) {
    const SCRIPT: &str = r#"set -e
out="$1"; src="$2"; mvn="$3"
[ -f "$out/opensearch-launcher.jar" ] && exit 0
tmp="$out.building.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"; mkdir -p "$tmp"
cp -R "$src/pom.xml" "$src/src" "$tmp/"
"$mvn" -B -q -f "$tmp/pom.xml" package
mv -T "$tmp/target" "$out"
"#;
    let parent = out.parent().expect("launcher dir");
    std::fs::create_dir_all(parent).expect("create the launcher build directory");
    eprintln!(
        "building the OpenSearch launcher with Maven into {} (the first build on a machine \
         downloads about 60 MB into ~/.m2)",
        out.display()
    );
    let started = Instant::now();
    let mut cmd = match find_on_path("flock") {
        Some(flock) => {
            let mut cmd = Command::new(flock);
            cmd.arg(parent.join(".build.lock")).arg("sh");
            cmd
        }
        None => Command::new("sh"),
    };
    let output = cmd
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .arg(out)
        .arg(source)
        .arg(mvn)
        .stdin(Stdio::null())
        .output()
        .expect("run sh to build the OpenSearch launcher");
    assert!(
        output.status.success() && out.join("opensearch-launcher.jar").exists(),
        "building the OpenSearch launcher failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "OpenSearch launcher ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A hash of the launcher's pom and sources: a changed source gets its own build.
fn fingerprint(source: &Path) -> u64 {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = vec![source.join("pom.xml")];
    walk(&source.join("src"), &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        hasher.write(
            file.strip_prefix(source)
                .unwrap_or(&file)
                .as_os_str()
                .as_encoded_bytes(),
        );
        hasher.write(&std::fs::read(&file).unwrap_or_default());
    }
    hasher.finish()
}

fn java_binary() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let java = Path::new(&home).join("bin").join("java");
        if java.is_file() {
            return Some(java);
        }
    }
    find_on_path("java")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| File::open(path).is_ok() && path.is_file())
}
