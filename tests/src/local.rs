//! Running `ld-connectord local` as a real process: config files, start, SIGTERM,
//! `kill -9`, resident memory, and waiting on a sink's output file.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{daemon_binary, plugin_dir_with};

/// A working directory with plugins, instance files and local state.
pub struct LocalRun {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
    plugins: tempfile::TempDir,
    configs: Vec<PathBuf>,
    extra_args: Vec<String>,
    capture_stdout: bool,
    child: Option<Child>,
    runs: u32,
}

impl LocalRun {
    /// A run with copies of the named plugins (e.g. `random_source`).
    pub fn new(plugins: &[&str]) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            plugins: plugin_dir_with(plugins),
            configs: Vec::new(),
            extra_args: Vec::new(),
            capture_stdout: false,
            child: None,
            runs: 0,
        }
    }

    /// The directory the run loads plugins from (copy more libraries into it).
    pub fn plugin_dir(&self) -> &Path {
        self.plugins.path()
    }

    /// A path inside the run's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds an instance file `<instance_key>.json` with this content.
    pub fn instance(&mut self, instance_key: &str, config: serde_json::Value) -> &mut Self {
        let path = self.path(&format!("{instance_key}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        self.configs.push(path);
        self
    }

    /// Adds an instance file `file_name` (e.g. `stdout_sink.toml`, written for Iggy's
    /// runtime) with this text; the instance key is the name without extension.
    pub fn instance_file(&mut self, file_name: &str, text: &str) -> &mut Self {
        let path = self.path(file_name);
        std::fs::write(&path, text).unwrap();
        self.configs.push(path);
        self
    }

    /// Keeps what the process prints on stdout (the stdout sink's output) in
    /// `stdout-<n>.log`, read with [`LocalRun::stdout`]; by default it is discarded.
    pub fn capture_stdout(&mut self) -> &mut Self {
        self.capture_stdout = true;
        self
    }

    /// Everything printed on stdout so far (with [`LocalRun::capture_stdout`]).
    pub fn stdout(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                std::fs::read_to_string(self.path(&format!("stdout-{n}.log"))).unwrap_or_default()
            })
            .collect()
    }

    /// Extra command-line arguments for `local`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.extra_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Starts the process (stderr goes to `daemon-<n>.log`).
    pub fn start(&mut self) -> &mut Self {
        assert!(self.child.is_none(), "already running");
        self.runs += 1;
        let log = std::fs::File::create(self.path(&format!("daemon-{}.log", self.runs))).unwrap();
        let stdout = if self.capture_stdout {
            Stdio::from(
                std::fs::File::create(self.path(&format!("stdout-{}.log", self.runs))).unwrap(),
            )
        } else {
            Stdio::null()
        };
        let child = Command::new(daemon_binary())
            .arg("local")
            .arg("--plugins")
            .arg(self.plugins.path())
            .arg("--state")
            .arg(self.path("state"))
            .args(&self.extra_args)
            .args(&self.configs)
            .env("LD_CONNECTORD_LOG", "info")
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("start ld-connectord local");
        self.child = Some(child);
        self
    }

    /// The process id of the running process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns (success, time to exit).
    pub fn terminate(&mut self, limit: Duration) -> (bool, Duration) {
        let mut child = self.child.take().expect("running");
        crate::daemon::terminate(&mut child, limit, || self.log())
    }

    /// Waits for the process to exit by itself; returns whether it succeeded, or kills
    /// it and panics after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.success();
            }
            if started.elapsed() > limit {
                panic!("did not exit within {limit:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory of the running process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS");
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }

    /// Every log written so far.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                std::fs::read_to_string(self.path(&format!("daemon-{n}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Ids written by the test sink, with how often each was seen.
pub fn read_ids(path: &Path) -> HashMap<u128, u32> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = HashMap::new();
    // A line may be cut short by a kill -9 mid-write: only whole lines count.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        if let Ok(id) = line.trim().parse::<u128>() {
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    seen
}

/// Waits until `done(ids)` holds for the ids in `path`, or panics after `limit`.
pub fn wait_for_ids(
    path: &Path,
    limit: Duration,
    mut done: impl FnMut(&HashMap<u128, u32>) -> bool,
) -> HashMap<u128, u32> {
    let started = Instant::now();
    loop {
        let ids = read_ids(path);
        if done(&ids) {
            return ids;
        }
        if started.elapsed() > limit {
            panic!("timed out after {limit:?} with {} distinct ids", ids.len());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
