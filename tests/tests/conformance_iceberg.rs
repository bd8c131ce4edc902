//! The conformance suite of `ld_plugin_api::testing` (`check_sink`) run in process
//! against the `iceberg` sink on an embedded SQL (SQLite) catalog and a local warehouse,
//! reading the table back with pyiceberg (`ld_e2e_tests::iceberg::ReadBack`), an engine
//! we did not write.
//!
//! The sink is exactly once by design (the offsets it committed are in each snapshot's
//! summary and skipped on redelivery), so both targets promise
//! [`Redelivery::ExactlyOnce`]:
//!
//! - `commit_rows = 1`: every `flush` commits, so the batch redelivered after the crash
//!   is already in the table and the sink must leave it out (the `ld.offsets` path);
//! - the default commit policy (10 s / 100,000 rows): batches are held, the suite's
//!   closing `flush` must write them, and the batch redelivered after the crash was never
//!   committed (what `flush` did not call durable is delivered again and written once).
//!
//! Each target also gives an `unreachable_config`: a REST catalog on a closed port of
//! 127.0.0.1, so the suite checks that an unreachable catalog is a `transient` error and
//! that `close` after the failed `open` is safe. Skips (printing why) only when python3
//! lacks pyiceberg[sql-sqlite,pyarrow].

use std::time::Instant;

use ld_e2e_tests::daemon::free_port;
use ld_e2e_tests::iceberg::{assert_engine_rows, ReadBack};
use ld_iceberg_sink::IcebergSink;
use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
use serde_json::{json, Value};

const TABLE: &str = "conformance.numbers";

/// The table the suite's messages `{"n": N, "text": "message N"}` fit.
fn create_table() -> Value {
    json!({
        "schema": [
            {"name": "n", "type": "long", "required": true},
            {"name": "text", "type": "string"}],
    })
}

/// The sink writing into a fresh catalog and warehouse.
struct TableIn {
    rb: ReadBack,
    /// Extra `plugin_config` fields (the commit policy).
    extra: Value,
}

impl SinkTarget for TableIn {
    type Sink = IcebergSink;

    fn config(&self) -> Value {
        let mut extra = self.extra.clone();
        extra["create_table"] = create_table();
        self.rb.plugin_config(&[TABLE], extra)
    }

    fn invalid_config(&self) -> Value {
        // No namespace: refused by the plugin, not serde.
        self.rb
            .plugin_config(&["numbers"], json!({"create_table": create_table()}))
    }

    fn unreachable_config(&self) -> Option<Value> {
        Some(json!({
            "tables": [TABLE],
            "catalog_type": "rest",
            "uri": format!("http://127.0.0.1:{}", free_port()),
            "create_table": create_table(),
        }))
    }

    async fn stored(&self) -> Vec<u64> {
        let rb = self.rb.clone();
        let read = tokio::task::spawn_blocking(move || {
            rb.read(
                TABLE,
                &["--engines", "pyiceberg", "--id-column", "n", "--with-ids"],
            )
        })
        .await
        .expect("read_table.py");
        let py = &read["pyiceberg"];
        if let Some(error) = py.get("error") {
            let error = error.as_str().unwrap_or_default();
            assert!(
                error.contains("NoSuchTable") || error.contains("NoSuchNamespace"),
                "pyiceberg cannot read {TABLE}: {error}"
            );
            return Vec::new();
        }
        let ids = py["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no ids in {py}"));
        assert_eq!(
            py["row_count"].as_u64(),
            Some(ids.len() as u64),
            "a row without n: {py}"
        );
        ids.iter()
            .map(|n| n.as_u64().unwrap_or_else(|| panic!("n = {n}")))
            .collect()
    }

    fn redelivery(&self) -> Redelivery {
        Redelivery::ExactlyOnce
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_sink_conforms() {
    for (policy, extra) in [
        ("commit every batch", json!({"commit_rows": 1})),
        ("default commit policy", json!({})),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let Some(rb) = ReadBack::available(dir.path(), "iceberg_sink_conforms") else {
            return;
        };
        let started = Instant::now();
        let target = TableIn {
            rb: rb.clone(),
            extra,
        };
        let report = check_sink(&target).await;
        ld_e2e_tests::print_report(&format!("iceberg sink, {policy}"), &report, started);
        assert_eq!(report.passed.len(), 4, "{report}");
        assert!(report.skipped.is_empty(), "{report}");

        // DuckDB (when installed) agrees: 100 rows, 100 distinct n.
        let rb2 = rb.clone();
        let result = tokio::task::spawn_blocking(move || rb2.read(TABLE, &["--id-column", "n"]))
            .await
            .unwrap();
        assert_engine_rows(&result, "pyiceberg", 100);
        assert_engine_rows(&result, "duckdb", 100);
        // Two snapshots, one per delivered batch: with `commit_rows = 1` the redelivered
        // batch was in the table before the crash and added no snapshot (it was left
        // out); with the default policy it was never committed before the crash and is
        // in the snapshot of the closing flush. The newer one (pyiceberg lists them in
        // no particular order) records the last offset.
        let snapshots = result["pyiceberg"]["snapshots"].as_array().unwrap();
        assert_eq!(snapshots.len(), 2, "{policy}: {snapshots:?}");
        let last = snapshots
            .iter()
            .map(|s| &s["summary"])
            .find(|s| s["total-records"] == "100")
            .unwrap_or_else(|| panic!("{policy}: no snapshot of 100 rows: {snapshots:?}"));
        assert_eq!(last["ld.instance"], "test-sink", "{last}");
        let offsets: Value = serde_json::from_str(last["ld.offsets"].as_str().unwrap()).unwrap();
        assert_eq!(offsets["test-stream"]["test-topic"]["0"], 99, "{offsets}");
    }
}
