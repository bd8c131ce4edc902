//! `ld-connectord standalone` for real: one process holding the embedded reference
//! supervisor and the daemon, driven through the printed API key and `ld-protocol`'s
//! client. Tests use only this module to start, watch and stop it.

use std::{
    future::Future,
    path::PathBuf,
    process::{Child, Command},
    time::Duration,
};

use ld_connectord::standalone::DEPLOYMENT_ID;
use ld_protocol::SupervisorClient;

use crate::{
    daemon::{free_port, terminate, wait_until, Http},
    daemon_binary,
};

/// A running `ld-connectord standalone` on free ports, its state, stdout and stderr in a
/// directory of its own; killed on drop.
pub struct Standalone {
    dir: tempfile::TempDir,
    child: Option<Child>,
    http: Http,
    client: SupervisorClient,
}

impl Standalone {
    /// Starts `ld-connectord standalone` with `args` after its listen addresses and state
    /// directory (e.g. `--no-demo`, `--plugins DIR`), logging at `info`, and waits until
    /// it prints its API key (it does once the daemon is ready).
    pub fn start(args: &[&str]) -> Standalone {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(daemon_binary())
            .arg("standalone")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--state")
            .arg(dir.path().join("state"))
            .args(args)
            .env("LD_CONNECTORD_LOG", "info")
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("start ld-connectord standalone");
        let log = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        let key = wait_until(
            Duration::from_secs(60),
            "standalone's API key",
            || {
                log().lines().find_map(|line| {
                    let key = line.trim().strip_prefix("API key:")?.trim();
                    Some(key.to_string())
                })
            },
            log,
        );
        let client =
            SupervisorClient::new(&format!("http://127.0.0.1:{port}"), DEPLOYMENT_ID, key, &[]);
        Standalone {
            dir,
            child: Some(child),
            http: Http::new(),
            client,
        }
    }

    /// The protocol client, with the API key standalone printed for its user.
    pub fn client(&self) -> &SupervisorClient {
        &self.client
    }

    /// Runs `future` (a call of [`Standalone::client`]) to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.http.block_on(future)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What it wrote to stderr so far: the banner and the log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    /// What it wrote to stdout so far: the stdout sink's messages.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path("stdout")).unwrap_or_default()
    }

    /// SIGTERM; returns (exited successfully, time to exit); panics after `limit`.
    pub fn terminate(&mut self, limit: Duration) -> (bool, Duration) {
        let mut child = self.child.take().expect("standalone running");
        terminate(&mut child, limit, || self.log())
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
