//! random source -> embedded log -> postgres sink in a real `ld-connectord local`
//! process against a real PostgreSQL: every message is a row, and a `kill -9` mid-stream
//! leaves no row missing and no row twice.

use std::time::{Duration, Instant};

use ld_e2e_tests::{local::LocalRun, pg::PgCluster};
use serde_json::json;

fn count(pg: &PgCluster, sql: &str) -> u64 {
    pg.psql("postgres", sql).parse().unwrap_or(0)
}

fn wait_rows(pg: &PgCluster, table: &str, at_least: u64, limit: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let exists = pg.psql(
            "postgres",
            &format!("SELECT to_regclass('public.{table}') IS NOT NULL"),
        );
        let n = if exists == "t" {
            count(pg, &format!("SELECT count(*) FROM {table}"))
        } else {
            0
        };
        if n >= at_least {
            return n;
        }
        assert!(
            started.elapsed() < limit,
            "only {n} of {at_least} rows after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pipeline(pg: &PgCluster, count: u64, rate: u64, table: &str) -> LocalRun {
    let mut run = LocalRun::new(&["random_source", "postgres_sink"]);
    run.instance(
        "gen",
        json!({"type": "source", "key": "random",
               "streams": [{"stream": "shop", "topic": "orders"}],
               "plugin_config": {"seed": 9, "count": count, "rate": rate, "batch_size": 1000, "payload_size": 200}}),
    );
    run.instance(
        "orders-pg-sink",
        json!({"type": "sink", "key": "postgres",
               "streams": [{"stream": "shop", "topics": ["orders"], "batch_length": 1000}],
               "plugin_config": {"connection_string": pg.url("postgres"), "target_table": table,
                                 "auto_create_table": true, "payload_format": "jsonb", "include_metadata": true}}),
    );
    run
}

#[test]
fn every_message_becomes_one_row_with_its_metadata() {
    let Some(pg) = PgCluster::start() else { return };
    let mut run = pipeline(&pg, 5_000, 0, "orders_all");
    run.start();
    wait_rows(&pg, "orders_all", 5_000, Duration::from_secs(60));
    let (ok, _) = run.terminate(Duration::from_secs(15));
    assert!(ok, "{}", run.log());
    assert_eq!(count(&pg, "SELECT count(*) FROM orders_all"), 5_000);
    // Payload ids 0..5000 once each, at offsets 0..5000 of shop/orders.
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT (payload->>'id')::int) FROM orders_all"
        ),
        5_000
    );
    assert_eq!(
        pg.psql("postgres", "SELECT min(ld_offset) || '-' || max(ld_offset) FROM orders_all WHERE ld_stream = 'shop' AND ld_topic = 'orders'"),
        "0-4999"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM orders_all WHERE (payload->>'id')::bigint <> ld_offset"
        ),
        0
    );
}

#[test]
fn kill9_mid_stream_leaves_no_row_missing_and_none_twice() {
    let Some(pg) = PgCluster::start() else { return };
    const COUNT: u64 = 30_000;
    let mut run = pipeline(&pg, COUNT, 15_000, "orders_crash");
    run.start();
    let at_kill = wait_rows(&pg, "orders_crash", 6_000, Duration::from_secs(60));
    run.kill9();
    assert!(at_kill < COUNT, "killed mid-stream");
    run.start();
    wait_rows(&pg, "orders_crash", COUNT, Duration::from_secs(120));
    // Let a redelivered batch land, if one is coming.
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _) = run.terminate(Duration::from_secs(15));
    assert!(ok, "{}", run.log());
    assert_eq!(
        count(&pg, "SELECT count(*) FROM orders_crash"),
        COUNT,
        "no duplicate row"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT (payload->>'id')::int) FROM orders_crash"
        ),
        COUNT,
        "no message missing"
    );
}
