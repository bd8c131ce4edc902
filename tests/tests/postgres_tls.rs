//! TLS to PostgreSQL through the real loader, against a throwaway cluster serving a
//! certificate this test generates (a CA, and a server certificate for `localhost` and
//! 127.0.0.1 signed by it) and accepting TCP connections over TLS only:
//!
//! - `require` encrypts (the server's `pg_stat_ssl` shows the sink's connection) and
//!   writes rows; the source reads over it too;
//! - `verify-full` with the right CA and host name works, given as fields or libpq style
//!   inside the connection string; a host name the certificate lacks is refused, fatally,
//!   with a reason naming the host; `verify-ca` accepts that name but not a foreign CA;
//! - `disable` against the TLS-only server, and `require` against a server without TLS,
//!   fail with a reason that says what to change;
//! - a missing CA file is refused before the instance starts, naming the field and path.
//!
//! No message ever contains the password.

use std::{path::PathBuf, sync::Arc};

use ld_connectord::plugin_host::{PluginLibrary, SinkHandle};
use ld_e2e_tests::{
    pg::{PgCluster, TlsFiles, PASSWORD, SUPERUSER},
    plugin,
};
use ld_plugin_api::{ErrorKind, Message, PluginError, Schema, SinkBatch};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};

/// A CA and a server certificate it signed, written where the plugins can read them.
struct Pki {
    dir: tempfile::TempDir,
    server: TlsFiles,
}

impl Pki {
    /// A CA named `ca_name`, and a server certificate for `names` signed by it.
    fn new(ca_name: &str, names: &[&str]) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "ld test postgres");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root.crt"), ca_cert.pem()).unwrap();
        Pki {
            dir,
            server: TlsFiles {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        }
    }

    /// The CA certificate's file (PEM).
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("root.crt")
    }

    fn ca_path(&self) -> String {
        self.ca_file().display().to_string()
    }
}

fn sink_library(cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin("postgres_sink"), cache.path()).unwrap()
}

fn source_library(cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin("postgres_source"), cache.path()).unwrap()
}

/// A URL as the superuser for `database` at `host` (a name or an address).
fn url(pg: &PgCluster, host: &str, database: &str) -> String {
    format!(
        "postgres://{SUPERUSER}:{PASSWORD}@{host}:{}/{database}",
        pg.port()
    )
}

fn sink_config(connection_string: String, tls: Value) -> Value {
    let mut config = json!({
        "connection_string": connection_string,
        "target_table": "orders",
        "auto_create_table": true,
        "max_retries": 1,
        "retry_delay": "10ms",
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(tls.as_object().cloned().unwrap_or_default());
    config
}

/// Opens a sink; the error when `new` or `open` fails.
async fn try_open(lib: &Arc<PluginLibrary>, config: &Value) -> Result<SinkHandle, PluginError> {
    let mut sink = lib.new_sink("pg-tls-sink", &config.to_string()).await?;
    sink.open().await?;
    Ok(sink)
}

/// Writes `count` JSON payloads at offsets `first..`.
async fn write(sink: &mut SinkHandle, first: u64, count: u64) {
    let payloads: Vec<Vec<u8>> = (first..first + count)
        .map(|i| format!(r#"{{"n":{i}}}"#).into_bytes())
        .collect();
    let messages: Vec<Message<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offset = first + i as u64;
            Message::new(u128::from(offset), offset, 1, Schema::Json, &[], p)
        })
        .collect();
    sink.consume(SinkBatch::new("orders", "tls", 0, &messages))
        .await
        .unwrap();
}

/// Connections of the plugins (by application name) that the server sees, and how many
/// of them use TLS. A connection closed a moment ago may still be listed.
fn plugin_connections(pg: &PgCluster) -> (usize, usize) {
    let out = pg.psql(
        "postgres",
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'ld-connectord %'",
    );
    let (all, tls) = out.split_once('|').expect("two columns");
    (all.parse().unwrap(), tls.parse().unwrap())
}

/// The server sees the plugin's open connection, over TLS.
fn assert_plugin_uses_tls(pg: &PgCluster) {
    let (all, tls) = plugin_connections(pg);
    assert!(
        all >= 1 && tls == all,
        "{tls} of {all} plugin connections use TLS"
    );
}

fn assert_no_password(err: &PluginError) {
    assert!(
        !err.message().contains(PASSWORD),
        "the password leaked: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_and_writes_rows() {
    let pki = Pki::new("ld test CA", &["localhost", "127.0.0.1"]);
    let Some(pg) = PgCluster::start_with_tls(&pki.server) else {
        return;
    };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = sink_library(&cache);

    // libpq style, inside the connection string.
    let config = sink_config(
        format!("{}?sslmode=require", url(&pg, "127.0.0.1", "shop")),
        json!({}),
    );
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 0, 100).await;
    // While the sink's connection is open, the server lists it as encrypted.
    assert_plugin_uses_tls(&pg);
    sink.close().await.unwrap();

    // As a config field, with the other spelling of the host.
    let config = sink_config(
        url(&pg, "localhost", "shop"),
        json!({"ssl_mode": "require"}),
    );
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 100, 50).await;
    sink.close().await.unwrap();

    // The default (`prefer`) uses TLS when the server offers it: this server refuses
    // anything else, so this working shows it.
    let config = sink_config(url(&pg, "127.0.0.1", "shop"), json!({}));
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 150, 10).await;
    sink.close().await.unwrap();

    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "160");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let pki = Pki::new("ld test CA", &["localhost", "127.0.0.1"]);
    let Some(pg) = PgCluster::start_with_tls(&pki.server) else {
        return;
    };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = sink_library(&cache);

    // The right CA, a name and an address the certificate holds: it works.
    for host in ["localhost", "127.0.0.1"] {
        let config = sink_config(
            url(&pg, host, "shop"),
            json!({"ssl_mode": "verify-full", "ssl_root_cert": pki.ca_path()}),
        );
        let mut sink = try_open(&lib, &config)
            .await
            .unwrap_or_else(|e| panic!("verify-full to {host}: {e}"));
        write(&mut sink, 0, 10).await;
        assert_plugin_uses_tls(&pg);
        sink.close().await.unwrap();
    }
    // The same, libpq style inside the connection string.
    let config = sink_config(
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            url(&pg, "localhost", "shop"),
            pki.ca_path()
        ),
        json!({}),
    );
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 10, 10).await;
    sink.close().await.unwrap();
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "20");

    // A host name the certificate lacks (the same server, reached through hostaddr).
    let wrong_host = format!(
        "host=db.wrong.example hostaddr=127.0.0.1 port={} user={SUPERUSER} password={PASSWORD} dbname=shop",
        pg.port()
    );
    let config = sink_config(
        wrong_host.clone(),
        json!({"ssl_mode": "verify-full", "ssl_root_cert": pki.ca_path()}),
    );
    let err = try_open(&lib, &config)
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Fatal, "not worth a retry: {err}");
    let message = err.message();
    assert!(
        message.starts_with(&format!(
            "cannot connect to {SUPERUSER}@db.wrong.example:{}/shop: TLS: the server's certificate does not name the host `db.wrong.example`",
            pg.port()
        )),
        "{err}"
    );
    assert!(
        message.contains("certificate not valid for name \"db.wrong.example\""),
        "{err}"
    );
    assert!(
        message.contains("localhost"),
        "says which names it holds: {err}"
    );
    assert_no_password(&err);

    // verify-ca checks the chain only: the same name passes.
    let config = sink_config(
        wrong_host,
        json!({"ssl_mode": "verify-ca", "ssl_root_cert": pki.ca_path()}),
    );
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 20, 10).await;
    sink.close().await.unwrap();

    // A CA that did not sign the server's certificate: refused under verify-ca (and
    // under require, which checks the chain once a CA file is given, as libpq does).
    let other = Pki::new("some other CA", &["localhost"]);
    for mode in ["verify-ca", "verify-full", "require"] {
        let config = sink_config(
            url(&pg, "localhost", "shop"),
            json!({"ssl_mode": mode, "ssl_root_cert": other.ca_path()}),
        );
        let err = try_open(&lib, &config)
            .await
            .map(drop)
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::Fatal, "{mode}: {err}");
        assert!(
            err.message().contains(&format!(
                "TLS: the server's certificate is not signed by the CA file `{}`",
                other.ca_path()
            )),
            "{mode}: {err}"
        );
        assert!(err.message().contains("UnknownIssuer"), "{mode}: {err}");
        assert_no_password(&err);
    }
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_against_a_tls_only_server_fails_with_a_clear_reason() {
    let pki = Pki::new("ld test CA", &["localhost", "127.0.0.1"]);
    let Some(pg) = PgCluster::start_with_tls(&pki.server) else {
        return;
    };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = sink_library(&cache);
    let config = sink_config(
        format!("{}?sslmode=disable", url(&pg, "127.0.0.1", "shop")),
        json!({}),
    );
    let err = try_open(&lib, &config)
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(err.message().contains("no encryption"), "{err}");
    assert!(
        err.message()
            .contains("the server accepts only TLS connections from here, and sslmode=disable"),
        "{err}"
    );
    assert_no_password(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_fails_with_a_clear_reason() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = sink_library(&cache);
    let config = sink_config(
        url(&pg, "127.0.0.1", "shop"),
        json!({"ssl_mode": "require"}),
    );
    let err = try_open(&lib, &config)
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message().contains(
            "the server does not accept TLS connections, and sslmode=require requires TLS"
        ),
        "{err}"
    );
    assert_no_password(&err);
    // The default, prefer, falls back to a plain connection.
    let config = sink_config(url(&pg, "127.0.0.1", "shop"), json!({}));
    let mut sink = try_open(&lib, &config).await.unwrap();
    write(&mut sink, 0, 5).await;
    let (all, tls) = plugin_connections(&pg);
    assert!(all >= 1 && tls == 0, "plain: {tls} of {all} use TLS");
    sink.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_are_refused_before_the_instance_starts() {
    let cache = tempfile::tempdir().unwrap();
    let lib = sink_library(&cache);
    let missing = "/nonexistent/ld-test/root.crt";
    let connection = format!("postgres://{SUPERUSER}:{PASSWORD}@localhost:5432/shop");

    let config = sink_config(
        connection.clone(),
        json!({"ssl_mode": "verify-full", "ssl_root_cert": missing}),
    );
    let err = lib
        .new_sink("s", &config.to_string())
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(
        err.message().starts_with(&format!(
            "plugin_config.ssl_root_cert: cannot read the CA file `{missing}`"
        )),
        "{err}"
    );
    assert_no_password(&err);

    let config = sink_config(
        format!("{connection}?sslmode=verify-ca&sslrootcert={missing}"),
        json!({}),
    );
    let err = lib
        .new_sink("s", &config.to_string())
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(
        err.message()
            .starts_with("plugin_config.connection_string: sslrootcert: cannot read the CA file"),
        "{err}"
    );
    assert!(err.message().contains(missing), "{err}");
    assert_no_password(&err);

    let config = sink_config(connection.clone(), json!({"ssl_mode": "allow"}));
    let err = lib
        .new_sink("s", &config.to_string())
        .await
        .map(drop)
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert_no_password(&err);

    let config = sink_config(
        format!("{connection}?sslmode=require"),
        json!({"ssl_mode": "disable"}),
    );
    let err = lib
        .new_sink("s", &config.to_string())
        .await
        .map(drop)
        .expect_err("refused");
    assert!(
        err.message().starts_with("plugin_config.ssl_mode:") && err.message().contains("disagrees"),
        "{err}"
    );
    assert_no_password(&err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reads_over_tls() {
    let pki = Pki::new("ld test CA", &["localhost", "127.0.0.1"]);
    let Some(pg) = PgCluster::start_with_tls(&pki.server) else {
        return;
    };
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text); \
         INSERT INTO orders (item) SELECT 'item-' || i FROM generate_series(1, 12) i",
    );
    let cache = tempfile::tempdir().unwrap();
    let lib = source_library(&cache);
    for (host, tls) in [
        ("127.0.0.1", json!({"ssl_mode": "require"})),
        (
            "localhost",
            json!({"ssl_mode": "verify-full", "ssl_root_cert": pki.ca_path()}),
        ),
    ] {
        let mut config = json!({
            "connection_string": url(&pg, host, "shop"),
            "table": "orders",
            "batch_size": 100,
            "poll_interval": "20ms",
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(tls.as_object().cloned().unwrap());
        let mut source = lib
            .new_source("pg-tls-source", &config.to_string(), None)
            .await
            .unwrap();
        source.open().await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..100 {
            let batch = source.poll().await.unwrap();
            ids.extend(batch.iter().map(|m| {
                serde_json::from_slice::<Value>(m.payload()).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            }));
            if ids.len() >= 12 {
                break;
            }
        }
        assert_eq!(ids, (1..=12).collect::<Vec<i64>>(), "{tls}");
        assert_plugin_uses_tls(&pg);
        source.close().await.unwrap();
    }

    // A host name the certificate lacks: refused with the reason.
    let config = json!({
        "connection_string": format!(
            "host=db.wrong.example hostaddr=127.0.0.1 port={} user={SUPERUSER} password={PASSWORD} dbname=shop sslmode=verify-full sslrootcert='{}'",
            pg.port(),
            pki.ca_path()
        ),
        "table": "orders",
        "max_retries": 0,
    });
    let mut source = lib
        .new_source("pg-tls-source", &config.to_string(), None)
        .await
        .unwrap();
    let err = source.open().await.map(drop).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message()
            .contains("the server's certificate does not name the host `db.wrong.example`"),
        "{err}"
    );
    assert_no_password(&err);
}
