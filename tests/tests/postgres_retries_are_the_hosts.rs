//! The PostgreSQL plugins do not retry on their own: retrying is the host's job. A
//! failure comes back at once, classified (transient for an unreachable server). What a
//! plugin still does by itself: a connection found closed before a call is replaced, and
//! one that the server ends during a call (as in a restart) is reconnected once, at
//! once, and the call made again, so that no batch fails for that. The configs are Iggy's
//! `plugin_config` of each plugin.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ld_connectord::plugin_host::PluginLibrary;
use ld_e2e_tests::{pg::PgCluster, plugin};
use ld_plugin_api::{ErrorKind, Message, Schema, SinkBatch};
use serde_json::{json, Value};

fn library(name: &str, cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin(name), cache.path()).unwrap()
}

fn payloads(first: u64, count: u64) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|i| format!(r#"{{"n":{i}}}"#).into_bytes())
        .collect()
}

fn views(first: u64, payloads: &[Vec<u8>]) -> Vec<Message<'_>> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offset = first + i as u64;
            Message::new(u128::from(offset) + 1, offset, 1, Schema::Json, &[], p)
        })
        .collect()
}

/// Ends every backend this instance opened, as a server restart would.
fn end_backends(pg: &PgCluster, instance: &str) -> u32 {
    let ended = pg.psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'ld-connectord {instance}'"
        ),
    );
    ended.trim().parse().unwrap()
}

fn closed_port_url() -> (String, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (
        format!("postgres://postgres:S3cretPw@127.0.0.1:{port}/shop"),
        port,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_at_once_as_transient() {
    let cache = tempfile::tempdir().unwrap();
    let (url, port) = closed_port_url();

    // Iggy's max_retries and retry_delay are accepted, and change nothing.
    let sink_lib = library("postgres_sink", &cache);
    let mut sink = sink_lib
        .new_sink(
            "s",
            &json!({"connection_string": url, "target_table": "orders",
                    "max_retries": 5, "retry_delay": "2s"})
            .to_string(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        err.message().starts_with(&format!(
            "cannot connect to postgres@127.0.0.1:{port}/shop:"
        )),
        "{err}"
    );
    // The old in-plugin loop waited 2 s + 4 s + ... here before answering.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retry inside the sink: {:?}",
        started.elapsed()
    );

    let source_lib = library("postgres_source", &cache);
    let mut source = source_lib
        .new_source(
            "s",
            &json!({"connection_string": url, "table": "orders"}).to_string(),
            None,
        )
        .await
        .unwrap();
    let started = Instant::now();
    let err = source.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retry inside the source (its default was 3 retries from 1 s): {:?}",
        started.elapsed()
    );
}

/// The pid of a backend of `instance` that waits for a lock, other than `except`;
/// `None` after a few seconds.
async fn waiting_on_a_lock(pg: &PgCluster, instance: &str, except: Option<&str>) -> Option<String> {
    for _ in 0..100 {
        let pids = pg.psql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'ld-connectord {instance}' \
                 AND wait_event_type = 'Lock'"
            ),
        );
        if let Some(pid) = pids
            .lines()
            .map(str::trim)
            .find(|p| !p.is_empty() && Some(*p) != except)
        {
            return Some(pid.to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// While a call of the plugin waits for a lock held by `db`, the server ends the
/// plugin's backend (as a restart would, in the middle of the call). Returns whether
/// the plugin came back on a new connection (waiting for the lock again) before `db`
/// let go of the lock.
async fn end_the_backend_mid_call(
    pg: &PgCluster,
    db: &tokio_postgres::Client,
    instance: &str,
) -> bool {
    let first = waiting_on_a_lock(pg, instance, None)
        .await
        .expect("the call waits for the lock");
    assert_eq!(
        pg.psql("postgres", &format!("SELECT pg_terminate_backend({first})")),
        "t"
    );
    let again = waiting_on_a_lock(pg, instance, Some(&first)).await;
    db.batch_execute("COMMIT").await.unwrap();
    again.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_replaces_a_closed_connection_and_reconnects_once_mid_batch() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = library("postgres_sink", &cache);
    // `plugin_config` of Iggy's core/connectors/sinks/postgres_sink/config.toml, with
    // the test's server and table.
    let config = json!({
        "connection_string": pg.url("shop"),
        "target_table": "iggy_messages",
        "batch_size": 100,
        "max_connections": 10,
        "auto_create_table": true,
        "include_metadata": true,
        "include_checksum": true,
        "include_origin_timestamp": true,
        "payload_format": "bytea",
    });
    let mut sink = lib.new_sink("pg-sink", &config.to_string()).await.unwrap();
    sink.open().await.unwrap();
    let first = payloads(0, 50);
    sink.consume(SinkBatch::new("s", "t", 0, &views(0, &first)))
        .await
        .unwrap();

    assert_eq!(end_backends(&pg, "pg-sink"), 1);
    let second = payloads(50, 50);
    sink.consume(SinkBatch::new("s", "t", 0, &views(50, &second)))
        .await
        .expect("a new connection, and the batch is written");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM iggy_messages"), "100");
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT pg_typeof(payload) FROM iggy_messages LIMIT 1"
        ),
        "bytea",
        "Iggy's payload_format is honoured"
    );

    // Ended in the middle of a batch: one reconnect, and the batch is written.
    let db = pg.connect("shop").await;
    db.batch_execute("BEGIN; LOCK TABLE iggy_messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let third = payloads(100, 10);
    let third = views(100, &third);
    let (written, came_back) = tokio::join!(
        sink.consume(SinkBatch::new("s", "t", 0, &third)),
        end_the_backend_mid_call(&pg, &db, "pg-sink"),
    );
    written.expect("written after one reconnect");
    assert!(came_back, "the sink reconnected while the lock was held");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM iggy_messages"), "110");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_replaces_a_closed_connection_and_reconnects_once_mid_poll() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text); \
         INSERT INTO users (name) SELECT 'u' || i FROM generate_series(1, 30) i",
    );
    let cache = tempfile::tempdir().unwrap();
    let lib = library("postgres_source", &cache);
    // Iggy's postgres_source config.toml shape, with one table (polling reads one).
    let config = json!({
        "connection_string": pg.url("shop"),
        "mode": "polling",
        "tables": ["users"],
        "poll_interval": "20ms",
        "batch_size": 10,
        "tracking_column": "id",
        "initial_offset": "5",
        "max_connections": 10,
        "snake_case_columns": false,
        "include_metadata": true,
    });
    let mut source = lib
        .new_source("pg-source", &config.to_string(), None)
        .await
        .unwrap();
    source.open().await.unwrap();
    let ids = |batch: &ld_plugin_api::ffi::RawSourceBatch| -> Vec<i64> {
        batch
            .iter()
            .map(|m| {
                serde_json::from_slice::<Value>(m.payload()).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    let batch = source.poll().await.unwrap();
    assert_eq!(
        ids(&batch),
        (6..=15).collect::<Vec<_>>(),
        "after initial_offset"
    );

    assert_eq!(end_backends(&pg, "pg-source"), 1);
    let batch = source
        .poll()
        .await
        .expect("a new connection, and the rows are read");
    assert_eq!(ids(&batch), (16..=25).collect::<Vec<_>>());

    // Ended in the middle of a read: one reconnect, and the rows are read.
    let db = pg.connect("shop").await;
    db.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (read, came_back) = tokio::join!(
        source.poll(),
        end_the_backend_mid_call(&pg, &db, "pg-source"),
    );
    assert_eq!(
        ids(&read.expect("read after one reconnect")),
        (26..=30).collect::<Vec<_>>()
    );
    assert!(came_back, "the source reconnected while the lock was held");
}
