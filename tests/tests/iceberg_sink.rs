//! random source -> embedded log -> iceberg sink in real `ld-connectord` processes,
//! read back by engines we did not write (pyiceberg and DuckDB's iceberg extension):
//! every message is one row in its partition, a `kill -9` mid-stream leaves no row
//! missing and none twice, records that do not fit follow `on_record_error`, an
//! unreachable catalog is retried until it is back, a missing table or bad name ends
//! `failed` with the reason, and the commit policy keeps the data files few.
//!
//! Skips (with a notice) when python3 lacks pyiceberg[sql-sqlite,pyarrow].

use std::time::{Duration, Instant};

use ld_e2e_tests::{
    daemon::{sink_config, source_config, Node, NodeOptions, Supervisor},
    iceberg::{assert_engine_rows, read_rest, MotoS3, ReadBack, RestCatalogServer},
    local::LocalRun,
};
use ld_protocol::InstanceStatus;
use serde_json::{json, Value};

const TABLE: &str = "shop.orders";

/// The table the random source's payloads fit: `{"id", "value", "text"}`, partitioned
/// by `truncate(1000, id)`.
fn create_table(value_type: &str) -> Value {
    json!({
        "schema": [
            {"name": "id", "type": "long", "required": true},
            {"name": "value", "type": value_type},
            {"name": "text", "type": "string"}],
        "partition_by": [{"column": "id", "transform": "truncate[1000]"}]
    })
}

fn pipeline(rb: &ReadBack, count: u64, rate: u64, sink: Value) -> LocalRun {
    let mut run = LocalRun::new(&["random_source", "iceberg_sink"]);
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "shop", "topic": "orders"}],
               "plugin_config": {"seed": 9, "count": count, "rate": rate, "batch_size": 1000, "payload_size": 200}}),
    );
    run.instance(
        "orders-iceberg",
        json!({"type": "sink", "key": "iceberg",
               "streams": [{"stream": "shop", "topics": ["orders"], "batch_length": 1000}],
               "plugin_config": rb.plugin_config(&[TABLE], sink)}),
    );
    run
}

#[test]
fn every_message_becomes_one_row_in_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rb) = ReadBack::available(dir.path(), "every_message_becomes_one_row") else {
        return;
    };
    const N: u64 = 5_000;
    let mut run = pipeline(
        &rb,
        N,
        0,
        json!({"create_table": create_table("double"), "commit_interval": "1s"}),
    );
    run.start();
    rb.wait_rows(TABLE, N, Duration::from_secs(90));
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());

    let result = rb.read(TABLE, &["--check-partitions", "--group-by", "id // 1000"]);
    eprintln!("read back: {}", compact(&result));
    for engine in ["pyiceberg", "duckdb"] {
        assert_engine_rows(&result, engine, N);
    }
    let py = &result["pyiceberg"];
    assert_eq!(py["min_id"], 0);
    assert_eq!(py["max_id"], N - 1);
    assert_eq!(py["partition_mismatches"], 0, "every row in its partition");
    let parts = py["partitions"].as_object().unwrap();
    assert_eq!(parts.len(), 5, "id_trunc = 0, 1000, .., 4000: {parts:?}");
    assert!(parts.values().all(|v| v == 1000), "{parts:?}");
    if result["duckdb"].get("groups").is_some() {
        let groups = result["duckdb"]["groups"].as_object().unwrap();
        assert_eq!(groups.len(), 5, "{groups:?}");
    }
    // Payload values round-trip: the row of id 7 holds the payload the source made.
    let row = rb.read(
        TABLE,
        &[
            "--engines",
            "pyiceberg",
            "--columns",
            "id,value,text",
            "--limit",
            "8",
        ],
    );
    let mut expected = String::new();
    ld_random_source::payload_of(9, 7, 200, &mut expected);
    let expected: Value = serde_json::from_str(&expected).unwrap();
    let got = &row["pyiceberg"]["rows"][7];
    assert_eq!(got["id"], 7);
    assert_eq!(got["text"], expected["text"]);
    assert_eq!(got["value"].as_f64(), expected["value"].as_f64());
    // The last snapshot records the last offset of shop/orders/0.
    let snapshots = py["snapshots"].as_array().unwrap();
    let last = &snapshots.last().unwrap()["summary"];
    assert_eq!(last["ld.instance"], "orders-iceberg");
    let offsets: Value = serde_json::from_str(last["ld.offsets"].as_str().unwrap()).unwrap();
    assert_eq!(offsets["shop"]["orders"]["0"], N - 1);
}

#[test]
fn kill9_mid_stream_leaves_no_row_missing_and_none_twice() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rb) = ReadBack::available(dir.path(), "kill9_mid_stream") else {
        return;
    };
    const N: u64 = 30_000;
    let mut run = pipeline(
        &rb,
        N,
        2_000, // 15 s of stream: the kill lands mid-stream even on a slow machine
        json!({"create_table": create_table("double"), "commit_interval": "500ms"}),
    );
    run.start();
    let at_kill = rb.wait_rows(TABLE, 6_000, Duration::from_secs(90));
    run.kill9();
    assert!(at_kill < N, "killed mid-stream");
    run.start();
    rb.wait_rows(TABLE, N, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(1500)); // a redelivered batch would land now
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    let result = rb.read(TABLE, &[]);
    eprintln!("read back: {}", compact(&result));
    for engine in ["pyiceberg", "duckdb"] {
        assert_engine_rows(&result, engine, N);
    }
    assert_eq!(result["pyiceberg"]["max_id"], N - 1);
}

/// The random source's `value` is a u64: as an Iceberg `long` about half of them do
/// not fit.
fn fits_long(n: u64) -> bool {
    let mut p = String::new();
    ld_random_source::payload_of(9, n, 200, &mut p);
    let v: Value = serde_json::from_str(&p).unwrap();
    v["value"].as_i64().is_some()
}

#[test]
fn records_that_do_not_fit_are_skipped_with_on_record_error_skip() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rb) = ReadBack::available(dir.path(), "records_that_do_not_fit_skip") else {
        return;
    };
    const N: u64 = 3_000;
    let fit = (0..N).filter(|n| fits_long(*n)).count() as u64;
    assert!(fit > 0 && fit < N);
    let mut run = pipeline(
        &rb,
        N,
        0,
        json!({"create_table": create_table("long"), "commit_interval": "500ms",
               "on_record_error": "skip"}),
    );
    run.start();
    rb.wait_rows(TABLE, fit, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(1000));
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    let result = rb.read(TABLE, &[]);
    for engine in ["pyiceberg", "duckdb"] {
        assert_engine_rows(&result, engine, fit);
    }
    let log = run.log();
    let line = log
        .lines()
        .find(|l| l.contains("skipped: message at offset"))
        .unwrap_or_else(|| panic!("no skip logged: {log}"));
    assert!(line.contains("`value`"), "names the field: {line}");
}

#[test]
fn an_unreachable_catalog_is_retried_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut rb) = ReadBack::available(dir.path(), "unreachable_catalog") else {
        return;
    };
    // The catalog lives in a directory that cannot be opened (a file is in its way):
    // open fails as transient and is retried; once the path is fixed it goes on.
    let blocked = dir.path().join("catalog-dir");
    std::fs::write(&blocked, b"not a directory").unwrap();
    rb.catalog_db = blocked.join("catalog.db");
    let mut run = pipeline(
        &rb,
        2_000,
        0,
        json!({"create_table": create_table("double"), "commit_interval": "500ms"}),
    );
    run.start();
    let started = Instant::now();
    while !run.log().contains("retry") && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = run.log();
    assert!(
        log.contains("transient") || log.contains("retry"),
        "the failure is retried: {log}"
    );
    assert!(!log.contains("instance failed"), "not failed: {log}");
    std::fs::remove_file(&blocked).unwrap();
    rb.wait_rows(TABLE, 2_000, Duration::from_secs(60));
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    assert_engine_rows(&rb.read(TABLE, &[]), "pyiceberg", 2_000);
}

#[test]
fn the_commit_policy_keeps_data_files_few() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rb) = ReadBack::available(dir.path(), "commit_policy") else {
        return;
    };
    // 20,000 messages in batches of 1000 as fast as possible, commit_rows 10,000,
    // unpartitioned: a snapshot per runtime batch (Iggy) would be 20 snapshots and 20
    // files; the policy gives 2 (one more if the interval fires in between).
    let mut create = create_table("double");
    create["partition_by"] = json!([]);
    const N: u64 = 20_000;
    let mut run = pipeline(
        &rb,
        N,
        0,
        json!({"create_table": create, "commit_interval": "30s", "commit_rows": 10_000}),
    );
    run.start();
    rb.wait_rows(TABLE, N, Duration::from_secs(90));
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    let result = rb.read(TABLE, &[]);
    assert_engine_rows(&result, "pyiceberg", N);
    let files = result["pyiceberg"]["data_files"].as_u64().unwrap();
    let snapshots = result["pyiceberg"]["snapshots"].as_array().unwrap().len();
    eprintln!("{N} rows: {files} data files, {snapshots} snapshots");
    assert!(files <= 3, "{files} data files");
    assert!(snapshots <= 3, "{snapshots} snapshots");
}

#[test]
fn a_missing_table_a_bad_name_or_a_bad_record_ends_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rb) = ReadBack::available(dir.path(), "failed_with_reason") else {
        return;
    };
    let supervisor = Supervisor::start();
    let node = Node::start(
        &supervisor,
        "node-ice",
        NodeOptions {
            plugins: vec!["random_source", "iceberg_sink"],
            ..NodeOptions::default()
        },
    );
    supervisor.wait_catalog("iceberg");
    let missing = supervisor.activate(
        "ice-missing",
        "iceberg",
        "sink",
        sink_config("numbers", rb.plugin_config(&["shop.nowhere"], json!({}))),
    );
    let bad_name = supervisor.activate(
        "ice-bad-name",
        "iceberg",
        "sink",
        sink_config("numbers", rb.plugin_config(&["no_namespace"], json!({}))),
    );
    let failed =
        supervisor.wait_status(missing.id, InstanceStatus::Failed, Duration::from_secs(30));
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("shop.nowhere does not exist"),
        "names the table and why: {reason}"
    );
    let failed =
        supervisor.wait_status(bad_name.id, InstanceStatus::Failed, Duration::from_secs(30));
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("plugin_config.tables[0]") && reason.contains("namespace.table"),
        "names the field and the fix: {reason}"
    );

    // on_record_error = fail: the first value that does not fit a long stops it.
    supervisor.activate(
        "gen",
        "random",
        "source",
        source_config(
            "numbers",
            json!({"seed": 9, "count": 2000, "payload_size": 200}),
        ),
    );
    let strict = supervisor.activate(
        "ice-strict",
        "iceberg",
        "sink",
        sink_config(
            "numbers",
            rb.plugin_config(
                &["shop.strict"],
                json!({"create_table": create_table("long")}),
            ),
        ),
    );
    let failed = supervisor.wait_status(strict.id, InstanceStatus::Failed, Duration::from_secs(60));
    let reason = failed.reason.unwrap_or_default();
    let first_bad = (0..2000).find(|n| !fits_long(*n)).unwrap();
    assert!(
        reason.contains(&format!("offset {first_bad} ")) && reason.contains("`value`"),
        "names the offset ({first_bad}) and the field: {reason}"
    );
    drop(node);
}

#[test]
fn s3_compatible_storage_holds_the_data_files() {
    // Labelled: the S3 server is moto (an S3 emulator from PyPI), not AWS or MinIO.
    let dir = tempfile::tempdir().unwrap();
    let Some(mut rb) = ReadBack::available(dir.path(), "s3_moto") else {
        return;
    };
    let Some(s3) = MotoS3::start("lake", "s3_moto") else {
        return;
    };
    rb.remote = Some(("s3://lake/warehouse".into(), s3.read_props()));
    const N: u64 = 3_000;
    let mut sink = s3.store_config();
    sink["warehouse"] = json!("s3://lake/warehouse");
    sink["create_table"] = create_table("double");
    sink["commit_interval"] = json!("500ms");
    let mut run = LocalRun::new(&["random_source", "iceberg_sink"]);
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "shop", "topic": "orders"}],
               "plugin_config": {"seed": 9, "count": N, "batch_size": 1000, "payload_size": 200}}),
    );
    let mut config = rb.plugin_config(&[TABLE], json!({}));
    for (k, v) in sink.as_object().unwrap() {
        config[k] = v.clone();
    }
    run.instance(
        "orders-iceberg",
        json!({"type": "sink", "key": "iceberg",
               "streams": [{"stream": "shop", "topics": ["orders"], "batch_length": 1000}],
               "plugin_config": config}),
    );
    run.start();
    let started = Instant::now();
    while rb.count(TABLE) < N {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "rows did not arrive: {}\n{}",
            rb.read(TABLE, &[]),
            run.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    let log = run.log();
    assert!(
        !log.contains("test-secret"),
        "the secret key is never logged"
    );
    let result = rb.read(TABLE, &["--check-partitions"]);
    assert_engine_rows(&result, "pyiceberg", N);
    let py = &result["pyiceberg"];
    assert_eq!(py["partition_mismatches"], 0);
    let paths = py["file_paths"].as_array().unwrap();
    assert!(
        paths
            .iter()
            .all(|p| p.as_str().unwrap().starts_with("s3://lake/warehouse/")),
        "{paths:?}"
    );
    assert!(
        !dir.path().join("warehouse").exists(),
        "nothing went to the local disk"
    );
}

#[test]
fn a_rest_catalog_that_comes_up_late_is_waited_for_then_written() {
    // The reference REST catalog server of Apache Iceberg (Java). The sink starts while
    // it is down: open fails as transient and is retried until the server is up.
    let dir = tempfile::tempdir().unwrap();
    if ReadBack::available(dir.path(), "rest_catalog").is_none() {
        return;
    }
    let Some(mut server) = RestCatalogServer::available("rest_catalog", dir.path()) else {
        return;
    };
    let warehouse = dir.path().join("rest-warehouse");
    std::fs::create_dir_all(&warehouse).unwrap();
    const N: u64 = 3_000;
    let mut run = LocalRun::new(&["random_source", "iceberg_sink"]);
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "shop", "topic": "orders"}],
               "plugin_config": {"seed": 9, "count": N, "batch_size": 1000, "payload_size": 200}}),
    );
    run.instance(
        "orders-iceberg",
        json!({"type": "sink", "key": "iceberg",
               "streams": [{"stream": "shop", "topics": ["orders"], "batch_length": 1000}],
               "plugin_config": {"tables": [TABLE], "catalog_type": "rest", "uri": server.uri(),
                                 "token": "not-checked-by-this-server-secret",
                                 "create_table": create_table("double"), "commit_interval": "500ms"}}),
    );
    run.start();
    std::thread::sleep(Duration::from_secs(2));
    let log = run.log();
    assert!(
        !log.contains("instance failed"),
        "not failed while down: {log}"
    );
    server.start(&warehouse);
    let started = Instant::now();
    loop {
        let r = read_rest(&server.uri(), TABLE);
        if r["pyiceberg"]["row_count"].as_u64() == Some(N) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "rows did not arrive: {r}\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ok, _) = run.terminate(Duration::from_secs(20));
    assert!(ok, "{}", run.log());
    assert!(
        !run.log().contains("not-checked-by-this-server-secret"),
        "the token is never logged"
    );
    assert_engine_rows(&read_rest(&server.uri(), TABLE), "pyiceberg", N);
}

fn compact(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(py) = v.get_mut("pyiceberg").and_then(Value::as_object_mut) {
        py.remove("file_paths");
        py.remove("ids");
        if let Some(s) = py.get_mut("snapshots").and_then(Value::as_array_mut) {
            let n = s.len();
            if n > 2 {
                s.drain(..n - 2);
            }
        }
    }
    v.to_string()
}
