//! The PostgreSQL sink through the real loader against a real PostgreSQL: every message
//! becomes one row with the right payload and metadata, a redelivered batch adds no
//! duplicates, and a bad config fails at `open` with a reason a person understands.

use std::sync::Arc;

use ld_connectord::plugin_host::{PluginLibrary, SinkHandle};
use ld_e2e_tests::{pg::PgCluster, plugin};
use ld_plugin_api::{ffi::ConnectorType, ErrorKind, Message, Schema, SinkBatch};

const T0: u64 = 1_700_000_000_123_456; // micros since the Unix epoch

fn library(cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin("postgres_sink"), cache.path()).unwrap()
}

async fn open_sink(lib: &Arc<PluginLibrary>, config: serde_json::Value) -> SinkHandle {
    let mut sink = lib.new_sink("pg-sink", &config.to_string()).await.unwrap();
    sink.open().await.unwrap();
    sink
}

/// Payloads `{"n":i,...}` for offsets `first..first + count`.
fn payloads(first: u64, count: u64) -> Vec<Vec<u8>> {
    (first..first + count)
        .map(|i| format!(r#"{{"n":{i},"name":"item-{i}","tags":["a","b"]}}"#).into_bytes())
        .collect()
}

fn views(first: u64, payloads: &[Vec<u8>]) -> Vec<Message<'_>> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offset = first + i as u64;
            Message::new(
                u128::from(offset) << 64 | 0xabc,
                offset,
                T0 + offset,
                Schema::Json,
                &[],
                p,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_becomes_one_row_with_its_payload_and_metadata() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    assert_eq!(lib.meta().key, "postgres");
    let db = pg.connect("shop").await;

    for format in ["jsonb", "bytea", "text"] {
        let table = format!("orders_{format}");
        let mut sink = open_sink(
            &lib,
            serde_json::json!({
                "connection_string": pg.url("shop"),
                "target_table": table,
                "auto_create_table": true,
                "payload_format": format,
            }),
        )
        .await;
        let first = payloads(0, 500);
        let second = payloads(500, 250);
        sink.consume(SinkBatch::new("orders", "completed", 2, &views(0, &first)))
            .await
            .unwrap();
        sink.consume(SinkBatch::new(
            "orders",
            "completed",
            2,
            &views(500, &second),
        ))
        .await
        .unwrap();
        sink.close().await.unwrap();

        let count: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 750, "{format}: one row per message");
        let rows = db
            .query(
                &format!(
                    "SELECT ld_stream, ld_topic, ld_partition, ld_offset, ld_message_id::text, \
                            (extract(epoch FROM ld_timestamp) * 1000000)::bigint, \
                            pg_typeof(payload)::text, payload::text \
                     FROM {table} WHERE ld_offset IN (0, 7, 749) ORDER BY ld_offset"
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        for (row, offset) in rows.iter().zip([0u64, 7, 749]) {
            assert_eq!(row.get::<_, String>(0), "orders");
            assert_eq!(row.get::<_, String>(1), "completed");
            assert_eq!(row.get::<_, i32>(2), 2);
            assert_eq!(row.get::<_, i64>(3), offset as i64);
            let id = format!("{:032x}", u128::from(offset) << 64 | 0xabc);
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                &id[0..8],
                &id[8..12],
                &id[12..16],
                &id[16..20],
                &id[20..32]
            );
            assert_eq!(row.get::<_, String>(4), uuid, "message id as uuid");
            assert_eq!(row.get::<_, i64>(5), (T0 + offset) as i64, "timestamp");
            assert_eq!(row.get::<_, String>(6), format);
            let stored: String = row.get(7);
            let original = String::from_utf8(payloads(offset, 1).remove(0)).unwrap();
            match format {
                "jsonb" => {
                    let a: serde_json::Value = serde_json::from_str(&stored).unwrap();
                    let b: serde_json::Value = serde_json::from_str(&original).unwrap();
                    assert_eq!(a, b, "jsonb payload at offset {offset}");
                }
                "text" => assert_eq!(stored, original),
                _ => {
                    let hex: String = original.bytes().map(|b| format!("{b:02x}")).collect();
                    assert_eq!(stored, format!("\\x{hex}"), "bytea payload");
                }
            }
        }
        // The JSON is queryable as JSON.
        if format == "jsonb" {
            let n: i64 = db
                .query_one(
                    "SELECT sum((payload->>'n')::bigint)::bigint FROM orders_jsonb",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(n, (0..750).sum::<i64>());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metadata_only_the_payload_is_written() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("plain");
    pg.psql(
        "plain",
        "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, payload json, \
         written_at timestamptz NOT NULL DEFAULT now())",
    );
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let mut sink = open_sink(
        &lib,
        serde_json::json!({
            "connection_string": pg.url("plain"),
            "target_table": "public.events",
            "include_metadata": false,
        }),
    )
    .await;
    let data = payloads(0, 10);
    sink.consume(SinkBatch::new("s", "t", 0, &views(0, &data)))
        .await
        .unwrap();
    assert_eq!(pg.psql("plain", "SELECT count(*) FROM events"), "10");
    assert_eq!(
        pg.psql(
            "plain",
            "SELECT payload->>'name' FROM events ORDER BY id LIMIT 1"
        ),
        "item-0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_adds_no_duplicate_rows() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("dedup");
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let config = serde_json::json!({
        "connection_string": pg.url("dedup"),
        "target_table": "orders",
        "auto_create_table": true,
    });
    let mut sink = open_sink(&lib, config.clone()).await;
    let data = payloads(100, 200);
    let batch = views(100, &data);
    sink.consume(SinkBatch::new("orders", "completed", 0, &batch))
        .await
        .unwrap();
    assert_eq!(pg.psql("dedup", "SELECT count(*) FROM orders"), "200");

    // The host crashed before committing the offsets: the same batch comes again, to a
    // fresh instance, and so does a batch that overlaps it and goes further.
    sink.consume(SinkBatch::new("orders", "completed", 0, &batch))
        .await
        .unwrap();
    drop(sink);
    let mut restarted = open_sink(&lib, config).await;
    restarted
        .consume(SinkBatch::new("orders", "completed", 0, &batch))
        .await
        .unwrap();
    let overlap = payloads(250, 100);
    restarted
        .consume(SinkBatch::new(
            "orders",
            "completed",
            0,
            &views(250, &overlap),
        ))
        .await
        .unwrap();
    assert_eq!(
        pg.psql(
            "dedup",
            "SELECT count(*), count(DISTINCT ld_offset), min(ld_offset), max(ld_offset) FROM orders"
        ),
        "250|250|100|349"
    );
    // Same offsets on another partition or topic are other messages.
    restarted
        .consume(SinkBatch::new("orders", "completed", 1, &batch))
        .await
        .unwrap();
    restarted
        .consume(SinkBatch::new("orders", "refunded", 0, &batch))
        .await
        .unwrap();
    assert_eq!(pg.psql("dedup", "SELECT count(*) FROM orders"), "650");
}

fn open_error_config(url: String, table: &str) -> String {
    serde_json::json!({
        "connection_string": url,
        "target_table": table,
        "max_retries": 1,
        "retry_delay": "10ms",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_fail_at_open_with_a_clear_reason() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);

    // A table that does not exist, and may not be created.
    let mut sink = lib
        .new_sink("s", &open_error_config(pg.url("shop"), "orders"))
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert_eq!(
        err.message(),
        "table \"public.orders\" does not exist (set auto_create_table = true to create it)"
    );

    // A wrong password: fatal, names the cause, never echoes the password.
    let mut sink = lib
        .new_sink(
            "s",
            &open_error_config(pg.url_with_password("shop", "Wr0ngPassw0rd"), "orders"),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message()
            .contains("password authentication failed for user \"postgres\""),
        "{err}"
    );
    assert!(
        err.message().contains("127.0.0.1"),
        "names the server: {err}"
    );
    assert!(!err.message().contains("Wr0ngPassw0rd"), "{err}");

    // A database that does not exist: fatal.
    let mut sink = lib
        .new_sink("s", &open_error_config(pg.url("nowhere"), "orders"))
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message()
            .contains("database \"nowhere\" does not exist"),
        "{err}"
    );
    assert!(!err.message().contains(ld_e2e_tests::pg::PASSWORD), "{err}");

    // An unreachable server: transient (it may come back; the host retries with backoff),
    // after the sink's own retries.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:S3cretPw@127.0.0.1:{closed_port}/shop");
    let mut sink = lib
        .new_sink("s", &open_error_config(url, "orders"))
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        err.message().starts_with(&format!(
            "cannot connect to postgres@127.0.0.1:{closed_port}/shop:"
        )),
        "{err}"
    );
    assert!(err.message().contains("refused"), "{err}");
    assert!(!err.message().contains("S3cretPw"), "{err}");

    // A table whose payload column has the wrong type.
    pg.psql("shop", "CREATE TABLE wrong (payload integer)");
    let mut sink = lib
        .new_sink(
            "s",
            &serde_json::json!({
                "connection_string": pg.url("shop"),
                "target_table": "wrong",
                "include_metadata": false,
            })
            .to_string(),
        )
        .await
        .unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal);
    assert_eq!(
        err.message(),
        "table \"public.wrong\": column \"payload\" has type integer, but payload_format = jsonb needs jsonb or json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_before_the_instance_starts() {
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    // The JSON Schema in the plugin info comes from the config struct.
    let schema = &lib.meta().sink.as_ref().expect("a sink").config_schema;
    assert_eq!(
        schema["required"],
        serde_json::json!(["connection_string", "target_table"])
    );
    assert_eq!(
        schema["properties"]["payload_format"]["default"],
        serde_json::json!("jsonb"),
        "{schema}"
    );
    assert!(lib.meta().source.is_none());
    let err = lib
        .validate_config(
            ConnectorType::Sink,
            r#"{"connection_string": "postgres://u:p@h/d", "target_table": "t", "payload_format": "xml"}"#,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().starts_with("plugin_config.payload_format:"),
        "{err}"
    );
    let err = lib
        .validate_config(ConnectorType::Sink, r#"{"target_table": "t"}"#)
        .unwrap_err();
    assert!(err.message().contains("connection_string"), "{err}");
    let err = lib
        .new_sink(
            "s",
            r#"{"connection_string": "postgres://u:hunter2@h/d", "target_table": "a.b.c"}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().starts_with("plugin_config.target_table:"),
        "{err}"
    );
    let err = lib
        .new_sink(
            "s",
            r#"{"connection_string": "postgres://u:hunter2@h:port/d", "target_table": "t"}"#,
        )
        .await
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("plugin_config.connection_string:"),
        "{err}"
    );
    assert!(!err.message().contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_the_column_refuses_is_a_fatal_error_naming_the_row() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let mut sink = open_sink(
        &lib,
        serde_json::json!({
            "connection_string": pg.url("shop"),
            "target_table": "orders",
            "auto_create_table": true,
        }),
    )
    .await;
    let data = vec![b"{}".to_vec(), b"not json".to_vec()];
    let err = sink
        .consume(SinkBatch::new("s", "t", 0, &views(0, &data)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal, "{err}");
    assert!(
        err.message().contains("invalid input syntax for type json"),
        "{err}"
    );
    assert!(err.message().contains("line 2"), "names the row: {err}");
    // Nothing of the batch was written: one transaction.
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "0");
}
