//! The conformance suite of `ld_plugin_api::testing` (`check_source`) run in process
//! against the `postgres` source, on a real PostgreSQL (`ld_e2e_tests::pg`), in both
//! modes: `polling` (state: the last id read) and `cdc` (state: the LSN; the slot moves
//! on `committed`), each resuming after a crash with no repeat and no gap, and following
//! on after a clean restart.
//!
//! Apart from `conformance_postgres.rs` (the sink) because each plugin crate's
//! `export_plugin!` defines the same exported root-module symbol, so two plugin crates
//! cannot be linked into one test binary.
//!
//! Each target also gives an `unreachable_config` on a closed port of 127.0.0.1, so the
//! suite checks that an unreachable server is a `transient` error and that `close` after
//! the failed `open` is safe. Skips (printing why) only when the machine has no
//! PostgreSQL binaries.

use std::time::{Duration, Instant};

use ld_e2e_tests::pg::PgCluster;
use ld_plugin_api::testing::{
    conformance::{check_source, SourceTarget},
    TestMessage,
};
use ld_postgres_source::PostgresSource;
use serde_json::{json, Value};

const DB: &str = "conformance";
/// Far more than a passing run takes (about 1 s per mode).
const SUITE_LIMIT: Duration = Duration::from_secs(120);

/// How the source reads: a table by its id, or the database's changes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Polling,
    Cdc,
}

/// The source reading a table of the test cluster that [`SourceTarget::produce`] fills
/// with rows `id = N`.
struct SourceFrom<'a> {
    pg: &'a PgCluster,
    mode: Mode,
    table: &'static str,
    slot: &'static str,
}

impl SourceFrom<'_> {
    /// Creates the table (and for CDC the slot, so that rows inserted before the first
    /// `open` are in it: the suite produces before it builds the source).
    fn prepare(&self) {
        self.pg.psql(
            DB,
            &format!(
                "CREATE TABLE {} (id bigint PRIMARY KEY, label text NOT NULL)",
                self.table
            ),
        );
        if self.mode == Mode::Cdc {
            self.pg.psql(
                DB,
                &format!(
                    "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
                    self.slot
                ),
            );
        }
    }
}

impl SourceTarget for SourceFrom<'_> {
    type Source = PostgresSource;

    fn config(&self) -> Value {
        match self.mode {
            Mode::Polling => json!({
                "connection_string": self.pg.url(DB),
                "table": self.table,
                "tracking_column": "id",
                "batch_size": 7,
                "poll_interval": "20ms",
            }),
            Mode::Cdc => json!({
                "connection_string": self.pg.url(DB),
                "mode": "cdc",
                "slot_name": self.slot,
                "tables": [self.table],
                "batch_size": 7,
                "poll_interval": "20ms",
            }),
        }
    }

    fn invalid_config(&self) -> Value {
        let mut config = self.config();
        config["batch_size"] = json!(0);
        config
    }

    fn unreachable_config(&self) -> Option<Value> {
        let mut config = self.config();
        config["connection_string"] = json!(ld_e2e_tests::pg::unreachable_url(DB));
        Some(config)
    }

    async fn produce(&self, from: u64, to: u64) {
        let client = self.pg.connect(DB).await;
        let insert = format!(
            "INSERT INTO {} (id, label) VALUES ($1::bigint, 'row ' || $1::bigint::text)",
            self.table
        );
        match self.mode {
            // One statement: polling sees the rows in id order either way.
            Mode::Polling => {
                client
                    .execute(
                        &format!(
                            "INSERT INTO {} (id, label) SELECT i, 'row ' || i FROM generate_series($1::bigint, $2::bigint) i",
                            self.table
                        ),
                        &[&(from as i64), &(to as i64)],
                    )
                    .await
                    .expect("insert rows");
            }
            // One transaction per row: CDC batches hold whole transactions, so this
            // gives batches of `batch_size` changes and a crash between them.
            Mode::Cdc => {
                for id in from..=to {
                    client
                        .execute(&insert, &[&(id as i64)])
                        .await
                        .expect("insert a row");
                }
            }
        }
    }

    fn number(&self, message: &TestMessage) -> u64 {
        let value: Value = message.json().expect("a JSON message");
        let row = match self.mode {
            Mode::Polling => &value,
            Mode::Cdc => {
                assert_eq!(value["operation"], "insert", "{value}");
                &value["new"]
            }
        };
        row["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {value}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_conforms() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database(DB);

    for (mode, table, slot) in [
        (Mode::Polling, "polled", "unused"),
        (Mode::Cdc, "changed", "ld_conformance"),
    ] {
        let target = SourceFrom {
            pg: &pg,
            mode,
            table,
            slot,
        };
        target.prepare();
        let started = Instant::now();
        // The suite waits for records without a limit of its own (a source that skips
        // records would make it wait for ever): a hang becomes a failure here.
        let report = tokio::time::timeout(SUITE_LIMIT, check_source(&target))
            .await
            .unwrap_or_else(|_| {
                panic!("{mode:?}: the source suite did not end within {SUITE_LIMIT:?}")
            });
        ld_e2e_tests::print_report(&format!("postgres source, {mode:?}"), &report, started);
        assert_eq!(report.passed.len(), 4, "{report}");
        assert!(report.skipped.is_empty(), "{report}");
    }
}
