//! Reading Iceberg tables back with engines we did not write (pyiceberg, and DuckDB
//! with its iceberg extension), through `tests/iceberg/read_table.py`, and the plugin
//! configs the Iceberg tests share.
//!
//! Needs `python3` with `pyiceberg[sql-sqlite,pyarrow]` (and for DuckDB `duckdb`,
//! `duckdb-extension-iceberg`, `duckdb-extension-avro`, all from PyPI, working offline).
//! Without them [`ReadBack::available`] prints a skip notice and returns `None`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// The read-back script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("iceberg/read_table.py")
}

/// The Python interpreter the tests use (`LD_TEST_PYTHON`, default `python3`).
pub fn python() -> String {
    std::env::var("LD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Which engines can read: `(pyiceberg, duckdb)`, probed once per process.
pub fn engines() -> (bool, bool) {
    static PROBED: OnceLock<(bool, bool)> = OnceLock::new();
    *PROBED.get_or_init(|| {
        let probe = |code: &str| {
            Command::new(python())
                .args(["-c", code])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let py = probe("import pyiceberg.catalog.sql, pyarrow, sqlalchemy");
        let duck = py && probe("import duckdb, duckdb_extension_iceberg");
        (py, duck)
    })
}

/// An embedded (SQLite) catalog and warehouse in a directory, read back by Python.
#[derive(Debug, Clone)]
pub struct ReadBack {
    /// The SQLite catalog file.
    pub catalog_db: PathBuf,
    /// The warehouse directory.
    pub warehouse: PathBuf,
    /// Where the script finds the warehouse when it is not `warehouse` (an `s3://` URL),
    /// with the catalog properties it needs (`s3.endpoint=...`).
    pub remote: Option<(String, Vec<String>)>,
}

impl ReadBack {
    /// A catalog under `dir`, or `None` (with a printed notice) when pyiceberg is
    /// missing.
    pub fn available(dir: &Path, test: &str) -> Option<ReadBack> {
        let (py, duck) = engines();
        if !py {
            eprintln!(
                "SKIP {test}: needs {} with pyiceberg[sql-sqlite,pyarrow] (pip install \"pyiceberg[sql-sqlite,pyarrow]\")",
                python()
            );
            return None;
        }
        if !duck {
            eprintln!(
                "NOTE {test}: duckdb + duckdb-extension-iceberg missing: pyiceberg reads alone"
            );
        }
        Some(ReadBack {
            catalog_db: dir.join("catalog.db"),
            warehouse: dir.join("warehouse"),
            remote: None,
        })
    }

    /// The sink's `plugin_config` for this catalog, merged with `extra`.
    pub fn plugin_config(&self, tables: &[&str], extra: Value) -> Value {
        let mut config = json!({
            "tables": tables,
            "uri": self.catalog_db.to_str().unwrap(),
            "warehouse": self.warehouse.to_str().unwrap(),
        });
        for (k, v) in extra.as_object().expect("an object") {
            config[k] = v.clone();
        }
        config
    }

    /// Reads `table` with every available engine; `args` go to the script as they are.
    pub fn read(&self, table: &str, args: &[&str]) -> Value {
        let (_, duck) = engines();
        let mut cmd = Command::new(python());
        cmd.arg(script())
            .arg("--catalog-uri")
            .arg(format!("sqlite:///{}", self.catalog_db.display()));
        match &self.remote {
            None => {
                cmd.arg("--warehouse")
                    .arg(format!("file://{}", self.warehouse.display()));
            }
            Some((location, props)) => {
                cmd.args(["--warehouse", location]);
                for p in props {
                    cmd.args(["--prop", p]);
                }
            }
        }
        let engines = if duck && self.remote.is_none() {
            "pyiceberg,duckdb"
        } else {
            "pyiceberg"
        };
        let out = cmd
            .args(["--table", table])
            .args(["--engines", engines])
            .args(args)
            .output()
            .expect("run read_table.py");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "read_table.py printed no JSON ({e}): {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Rows pyiceberg counts in `table` (0 while it does not exist).
    pub fn count(&self, table: &str) -> u64 {
        let v = self.read(table, &["--engines", "pyiceberg"]);
        v["pyiceberg"]["row_count"].as_u64().unwrap_or(0)
    }

    /// Waits until pyiceberg counts at least `rows` in `table`; returns the count.
    pub fn wait_rows(&self, table: &str, rows: u64, limit: Duration) -> u64 {
        let started = Instant::now();
        loop {
            let n = self.count(table);
            if n >= rows {
                return n;
            }
            assert!(
                started.elapsed() < limit,
                "only {n} of {rows} rows in {table} after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Checks one engine's answer: no error, and `rows` rows with distinct ids.
pub fn assert_engine_rows(result: &Value, engine: &str, rows: u64) {
    let r = &result[engine];
    if r.get("skipped").is_some() {
        eprintln!("NOTE {engine} skipped: {}", r["skipped"]);
        return;
    }
    assert!(r.get("error").is_none(), "{engine} failed: {r}");
    assert_eq!(
        r["row_count"].as_u64(),
        Some(rows),
        "{engine} row count: {r}"
    );
    assert_eq!(
        r["distinct_ids"].as_u64(),
        Some(rows),
        "{engine}: a duplicate id: {r}"
    );
}

/// An S3-compatible server from PyPI (`moto[server]`, an S3 emulator, not AWS) on a
/// free loopback port, stopped on drop; `None` (with a notice) when it cannot start.
pub struct MotoS3 {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl MotoS3 {
    /// Starts the server and creates `bucket`.
    pub fn start(bucket: &str, test: &str) -> Option<MotoS3> {
        let ok = Command::new(python())
            .args(["-c", "import moto.server, flask, s3fs"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "SKIP {test}: needs moto[server] and s3fs (pip install \"moto[server]\" s3fs)"
            );
            return None;
        }
        let port = crate::daemon::free_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = MotoS3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while http(port, "GET", "/").is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                eprintln!("SKIP {test}: moto server did not come up");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = http(port, "PUT", &format!("/{bucket}"))?;
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "create bucket: {status}"
        );
        eprintln!("NOTE {test}: S3 storage is moto's S3 emulator (PyPI), not AWS or MinIO");
        Some(server)
    }

    /// The sink's store fields for this server.
    pub fn store_config(&self) -> Value {
        json!({"store_url": self.endpoint, "store_access_key_id": "test-key",
               "store_secret_access_key": "test-secret", "store_region": "us-east-1",
               "store_class": "s3"})
    }

    /// pyiceberg's catalog properties for this server.
    pub fn read_props(&self) -> Vec<String> {
        vec![
            // pyarrow's own S3 client ignored the endpoint here; fsspec/s3fs honours it.
            "py-io-impl=pyiceberg.io.fsspec.FsspecFileIO".into(),
            format!("s3.endpoint={}", self.endpoint),
            "s3.access-key-id=test-key".into(),
            "s3.secret-access-key=test-secret".into(),
            "s3.region=us-east-1".into(),
        ]
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 request to 127.0.0.1; the status line, or `None`.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().next().map(str::to_string)
}

/// Apache Iceberg's reference REST catalog server (Java, from Maven Central: see
/// `tests/iceberg/rest-server/pom.xml`) on a free loopback port, stopped on drop.
pub struct RestCatalogServer {
    child: Option<std::process::Child>,
    jars: PathBuf,
    port: u16,
    log: PathBuf,
}

impl RestCatalogServer {
    /// Where the server's jars are: `LD_ICEBERG_REST_JARS` or
    /// `tests/iceberg/rest-server/lib`; `None` (with a notice) when absent or no `java`.
    pub fn available(test: &str, log_dir: &Path) -> Option<RestCatalogServer> {
        let jars = std::env::var_os("LD_ICEBERG_REST_JARS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("iceberg/rest-server/lib")
            });
        let has_jars = std::fs::read_dir(&jars).is_ok_and(|d| d.count() > 10);
        let has_java = Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_jars || !has_java {
            eprintln!(
                "SKIP {test}: needs java 17 and the Iceberg REST server jars in {} (mvn -q -f tests/iceberg/rest-server/pom.xml dependency:copy-dependencies -DoutputDirectory=lib)",
                jars.display()
            );
            return None;
        }
        Some(RestCatalogServer {
            child: None,
            jars,
            port: crate::daemon::free_port(),
            log: log_dir.join("rest-catalog.log"),
        })
    }

    /// `http://127.0.0.1:<port>`, also before the server runs.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server (warehouse: `warehouse`, an absolute directory) and waits
    /// until `/v1/config` answers.
    pub fn start(&mut self, warehouse: &Path) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new("java")
            .arg("-cp")
            .arg(format!("{}/*", self.jars.display()))
            .arg("org.apache.iceberg.rest.RESTCatalogServer")
            .env("CATALOG_REST_PORT", self.port.to_string())
            .env(
                "CATALOG_WAREHOUSE",
                format!("file://{}", warehouse.display()),
            )
            // Metadata files in the server's memory: no Hadoop file system needed; data
            // and manifests are written by the clients to the warehouse.
            .env(
                "CATALOG_IO__IMPL",
                "org.apache.iceberg.inmemory.InMemoryFileIO",
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start java");
        self.child = Some(child);
        let started = Instant::now();
        while http(self.port, "GET", "/v1/config").is_none_or(|s| !s.contains(" 200")) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "REST catalog did not come up: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for RestCatalogServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads a table through a REST catalog with pyiceberg.
pub fn read_rest(uri: &str, table: &str) -> Value {
    let out = Command::new(python())
        .arg(script())
        .args([
            "--rest-uri",
            uri,
            "--table",
            table,
            "--engines",
            "pyiceberg",
        ])
        .output()
        .expect("run read_table.py");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "read_table.py printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
