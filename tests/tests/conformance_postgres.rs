//! The conformance suite of `ld_plugin_api::testing` (`check_sink`) run in process
//! against the `postgres` sink, reading back through a real PostgreSQL
//! (`ld_e2e_tests::pg`):
//!
//! - with `include_metadata` (the default): the unique key on (stream, topic, partition,
//!   offset) absorbs a redelivered batch, so the target promises
//!   [`Redelivery::ExactlyOnce`];
//! - without metadata: plain appends, [`Redelivery::AtLeastOnce`].
//!
//! The source's suite is in `conformance_postgres_source.rs`: each plugin crate's
//! `export_plugin!` defines the same exported root-module symbol, so two plugin crates
//! cannot be linked into one test binary.
//!
//! Each target also gives an `unreachable_config` on a closed port of 127.0.0.1, so the
//! suite checks that an unreachable server is a `transient` error and that `close` after
//! the failed `open` is safe. Skips (printing why) only when the machine has no
//! PostgreSQL binaries.

use std::time::Instant;

use ld_e2e_tests::pg::PgCluster;
use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
use ld_postgres_sink::PostgresSink;
use serde_json::{json, Value};

const DB: &str = "conformance";

/// The sink writing into a fresh table of the test cluster.
struct SinkInto<'a> {
    pg: &'a PgCluster,
    table: &'static str,
    include_metadata: bool,
}

impl SinkTarget for SinkInto<'_> {
    type Sink = PostgresSink;

    fn config(&self) -> Value {
        json!({
            "connection_string": self.pg.url(DB),
            "target_table": self.table,
            "auto_create_table": true,
            "payload_format": "jsonb",
            "include_metadata": self.include_metadata,
        })
    }

    fn invalid_config(&self) -> Value {
        // Three parts: not `table` or `schema.table` (refused by the plugin, not serde).
        json!({
            "connection_string": self.pg.url(DB),
            "target_table": "a.b.c",
        })
    }

    fn unreachable_config(&self) -> Option<Value> {
        Some(json!({
            "connection_string": ld_e2e_tests::pg::unreachable_url(DB),
            "target_table": self.table,
            "auto_create_table": true,
        }))
    }

    async fn stored(&self) -> Vec<u64> {
        let client = self.pg.connect(DB).await;
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table])
            .await
            .expect("look up the table")
            .get(0);
        if !exists {
            return Vec::new();
        }
        client
            .query(
                &format!("SELECT (payload->>'n')::bigint FROM {}", self.table),
                &[],
            )
            .await
            .expect("read the table back")
            .iter()
            .map(|row| row.get::<_, i64>(0) as u64)
            .collect()
    }

    fn redelivery(&self) -> Redelivery {
        if self.include_metadata {
            Redelivery::ExactlyOnce
        } else {
            Redelivery::AtLeastOnce
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sink_conforms() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database(DB);

    let started = Instant::now();
    let target = SinkInto {
        pg: &pg,
        table: "exactly_once",
        include_metadata: true,
    };
    let report = check_sink(&target).await;
    ld_e2e_tests::print_report("postgres sink, include_metadata = true", &report, started);
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
    assert!(
        report
            .passed
            .contains(&"sink: a batch delivered again after a crash is stored once"),
        "{report}"
    );

    let started = Instant::now();
    let target = SinkInto {
        pg: &pg,
        table: "appends",
        include_metadata: false,
    };
    let report = check_sink(&target).await;
    ld_e2e_tests::print_report("postgres sink, include_metadata = false", &report, started);
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
    // Without metadata the redelivered batch is appended again: the README says so.
    let twice = pg.psql(
        DB,
        "SELECT count(*) FROM appends WHERE (payload->>'n')::int BETWEEN 51 AND 100",
    );
    assert_eq!(
        twice, "100",
        "messages 51..=100 twice, as the README promises"
    );
}
