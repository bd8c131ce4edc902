//! A real Apache Iggy server as a child process of the test, on a free loopback port
//! and a data directory of its own, so a test can stop it gracefully, `kill -9` it and
//! start it again on the same data.
//!
//! The binary comes from `IGGY_TEST_SERVER_BIN` (an `iggy-server` built from
//! `github:apache/iggy` outside this repository); [`IggyServer::from_env`] returns
//! `None` with a printed skip notice when it is unset.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A server this test started.
pub struct IggyServer {
    binary: PathBuf,
    /// Data and logs; removed on drop.
    dir: tempfile::TempDir,
    address: SocketAddr,
    child: Option<Child>,
    starts: u32,
}

impl IggyServer {
    /// Starts a server from `IGGY_TEST_SERVER_BIN`; `None` (and a notice) when it is unset.
    pub fn from_env() -> Option<Self> {
        let Ok(binary) = std::env::var("IGGY_TEST_SERVER_BIN") else {
            eprintln!("skipped: IGGY_TEST_SERVER_BIN (an iggy-server binary) is not set");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            binary: binary.into(),
            dir: tempfile::tempdir().expect("temp dir"),
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            starts: 0,
        };
        server.start();
        Some(server)
    }

    /// `host:port` of its TCP listener.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// The URL of the server for `ld-connectord local --stream` (user iggy/iggy).
    pub fn url(&self) -> String {
        format!("iggy://iggy:iggy@{}", self.address)
    }

    /// Starts the server on its data directory and waits until it accepts TCP.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let log =
            std::fs::File::create(self.dir.path().join(format!("server-{}.log", self.starts)))
                .unwrap();
        let child = Command::new(&self.binary)
            .current_dir(&data)
            .env("IGGY_SYSTEM_PATH", &data)
            .env("IGGY_TCP_ENABLED", "true")
            .env("IGGY_TCP_ADDRESS", self.address.to_string())
            .env("IGGY_HTTP_ENABLED", "false")
            .env("IGGY_QUIC_ENABLED", "false")
            .env("IGGY_WEBSOCKET_ENABLED", "false")
            .env("IGGY_ROOT_USERNAME", "iggy")
            .env("IGGY_ROOT_PASSWORD", "iggy")
            // A small shared machine: no pinned shard threads.
            .env("IGGY_SYSTEM_SHARDING_CPU_ALLOCATION", "all")
            .env("IGGY_SYSTEM_SHARDING_PIN_CORES", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "iggy-server exited at start ({status}); log:\n{}",
                    self.log()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "iggy-server did not listen within 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for it to exit (a graceful shutdown saves what it buffers).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("iggy-server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`: whatever the server had not written yet is gone.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Everything the server logged.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("server-{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }
}

impl Drop for IggyServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
