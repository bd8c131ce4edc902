//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a temporary
//! directory, a free port on 127.0.0.1, `wal_level = logical`, password (SCRAM) auth over
//! TCP; stopped and deleted on drop.
//!
//! `initdb` and `postgres` refuse to run as root, so when the tests run as root (CI does)
//! the server runs as the unprivileged `nobody` user (uid/gid 65534, present on every
//! Debian system) through `setpriv` from util-linux, and its directory is handed to that
//! user. Binaries come from the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
//!
//! [`PgCluster::start_with_tls`] starts one that serves TLS with a given certificate and
//! accepts TCP connections over TLS only (`hostssl` in `pg_hba.conf`).
//!
//! ```no_run
//! let Some(pg) = ld_e2e_tests::pg::PgCluster::start() else { return }; // prints "skipped: ..."
//! pg.create_database("orders");
//! pg.psql("orders", "CREATE TABLE t (id int)");
//! println!("{}", pg.url("orders"));
//! ```

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The superuser's name in every test cluster.
pub const SUPERUSER: &str = "postgres";
/// The superuser's password in every test cluster.
pub const PASSWORD: &str = "ld-test-secret";
/// uid and gid the server runs as when the tests run as root (`nobody`/`nogroup`).
const UNPRIVILEGED_ID: u32 = 65534;

/// A connection string to a port of 127.0.0.1 nothing listens on, with the clusters'
/// credentials, so only the unreachable server can be what fails.
pub fn unreachable_url(db: &str) -> String {
    format!(
        "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{db}",
        crate::daemon::free_port()
    )
}

/// Where the PostgreSQL server binaries are: the newest `/usr/lib/postgresql/*/bin`,
/// else the directory of `initdb` on `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

fn check(what: &str, output: std::io::Result<Output>) -> Output {
    let output = output.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The certificate (chain) and private key a TLS cluster serves, both PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate, optionally followed by intermediates.
    pub cert_pem: String,
    /// The server certificate's private key (PKCS#8 or traditional PEM).
    pub key_pem: String,
}

/// `pg_hba.conf` of a TLS cluster: local sockets trusted, TCP only over TLS.
const TLS_ONLY_HBA: &str = "\
local all all trust
local replication all trust
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl replication all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
";

/// A running PostgreSQL cluster, deleted on drop.
pub struct PgCluster {
    root: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_nobody: bool,
}

impl PgCluster {
    /// Creates and starts a cluster, or prints `skipped: no PostgreSQL binaries` and
    /// returns `None` when this machine has none. Panics when the binaries exist but the
    /// cluster cannot start (that is a broken test machine, not a skip).
    pub fn start() -> Option<PgCluster> {
        PgCluster::start_inner(None)
    }

    /// As [`PgCluster::start`], with `ssl = on` serving `tls`'s certificate and key, and
    /// a `pg_hba.conf` that refuses TCP connections without TLS (the refusal reads
    /// `no pg_hba.conf entry for host ..., no encryption`). `psql` (libpq's default
    /// `sslmode=prefer`) still connects.
    pub fn start_with_tls(tls: &TlsFiles) -> Option<PgCluster> {
        PgCluster::start_inner(Some(tls))
    }

    fn start_inner(tls: Option<&TlsFiles>) -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            eprintln!("skipped: no PostgreSQL binaries");
            return None;
        };
        let as_nobody = running_as_root();
        let root = tempfile::Builder::new()
            .prefix("ld-pg-")
            .tempdir()
            .expect("temp dir");
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write password file");
        if as_nobody {
            for path in [root.path(), pwfile.as_path()] {
                std::os::unix::fs::chown(path, Some(UNPRIVILEGED_ID), Some(UNPRIVILEGED_ID))
                    .expect("hand the cluster directory to nobody");
            }
        }
        let mut cluster = PgCluster {
            root,
            bin,
            port: 0,
            as_nobody,
        };
        let data = cluster.data_dir();
        check(
            "initdb",
            cluster
                .server_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .output(),
        );
        let tls_options = match tls {
            None => String::new(),
            Some(tls) => cluster.install_tls(tls),
        };
        // A port picked now may be taken before the server binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            let options = format!(
                "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=50 -c shared_buffers=128MB{tls_options}",
                cluster.port,
                cluster.root.path().display()
            );
            let output = cluster
                .server_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.root.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output()
                .expect("cannot run pg_ctl");
            if output.status.success() {
                return Some(cluster);
            }
            last_error = format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(cluster.root.path().join("server.log")).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start:\n{last_error}");
    }

    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Writes the certificate and key (the key `0600` and owned by the server's user,
    /// as PostgreSQL insists) and the TLS-only `pg_hba.conf`; returns the server options
    /// that turn TLS on.
    fn install_tls(&self, tls: &TlsFiles) -> String {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.root.path().join("server.crt");
        let key = self.root.path().join("server.key");
        let hba = self.data_dir().join("pg_hba.conf");
        std::fs::write(&cert, &tls.cert_pem).expect("write the server certificate");
        std::fs::write(&key, &tls.key_pem).expect("write the server key");
        std::fs::write(&hba, TLS_ONLY_HBA).expect("write pg_hba.conf");
        std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the server certificate");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the server key");
        if self.as_nobody {
            for path in [&cert, &key, &hba] {
                std::os::unix::fs::chown(path, Some(UNPRIVILEGED_ID), Some(UNPRIVILEGED_ID))
                    .expect("hand the TLS files to nobody");
            }
        }
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        )
    }

    /// A command for a server binary, run as `nobody` when we are root.
    fn server_command(&self, binary: &str) -> Command {
        let program = self.bin.join(binary);
        if self.as_nobody {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={UNPRIVILEGED_ID}"))
                .arg(format!("--regid={UNPRIVILEGED_ID}"))
                .arg("--clear-groups")
                .arg(program)
                .current_dir(self.root.path());
            cmd
        } else {
            Command::new(program)
        }
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server binaries (`psql` is there too).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A connection URL for `database` as the superuser, with the password.
    pub fn url(&self, database: &str) -> String {
        self.url_with_password(database, PASSWORD)
    }

    /// The server's log so far (for assertions and failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// A connection URL for `database` as the superuser with the given password.
    pub fn url_with_password(&self, database: &str, password: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A `psql` command connected to `database` over TCP (add `-c` or `-f`).
    pub fn psql_command(&self, database: &str) -> Command {
        let psql = [self.bin.join("psql"), PathBuf::from("psql")]
            .into_iter()
            .find(|p| p.is_absolute() && p.exists())
            .unwrap_or_else(|| PathBuf::from("psql"));
        let mut cmd = Command::new(psql);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", database])
            .env("PGPASSWORD", PASSWORD);
        cmd
    }

    /// Runs SQL through `psql` and returns its unaligned, tuples-only output.
    /// Panics when it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = check(
            "psql",
            self.psql_command(database).arg("-c").arg(sql).output(),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Creates a database owned by the superuser.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// A tokio-postgres client for `database`, its connection driven by a spawned task.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .server_command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
        // The temp dir then removes itself: root may delete nobody's files, and
        // without root they are our own.
    }
}
