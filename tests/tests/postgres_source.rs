//! The PostgreSQL source through the real loader against a real PostgreSQL: polling
//! delivers every row exactly once across a restart from the saved state, and CDC
//! delivers inserts, updates and deletes in order, moving the slot only once the host
//! acknowledged a batch.

use std::sync::Arc;

use ld_connectord::plugin_host::{PluginLibrary, SourceHandle};
use ld_e2e_tests::{pg::PgCluster, plugin};
use ld_plugin_api::{ffi::RawSourceBatch, ErrorKind};
use serde_json::{json, Value};

fn library(cache: &tempfile::TempDir) -> Arc<PluginLibrary> {
    PluginLibrary::load(&plugin("postgres_source"), cache.path()).unwrap()
}

async fn open_source(
    lib: &Arc<PluginLibrary>,
    config: &Value,
    state: Option<Vec<u8>>,
) -> SourceHandle {
    let mut source = lib
        .new_source("pg-source", &config.to_string(), state)
        .await
        .unwrap();
    source.open().await.unwrap();
    source
}

fn events(batch: &RawSourceBatch) -> Vec<Value> {
    batch
        .iter()
        .map(|m| serde_json::from_slice(m.payload()).unwrap())
        .collect()
}

/// Polls until a non-empty batch comes (or panics after a while).
async fn next_batch(source: &mut SourceHandle) -> RawSourceBatch {
    for _ in 0..100 {
        let batch = source.poll().await.unwrap();
        if !batch.is_empty() {
            return batch;
        }
    }
    panic!("no batch came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_delivers_every_row_once_across_a_restart() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item text, qty int); \
         INSERT INTO orders (item, qty) SELECT 'item-' || i, i FROM generate_series(1, 25) i",
    );
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let config = json!({
        "connection_string": pg.url("shop"),
        "table": "orders",
        "tracking_column": "id",
        "batch_size": 10,
        "poll_interval": "20ms",
    });
    let mut source = open_source(&lib, &config, None).await;
    let mut seen: Vec<i64> = Vec::new();
    let mut saved: Option<Vec<u8>> = None;
    for expected in [10, 10, 5] {
        let mut batch = next_batch(&mut source).await;
        assert_eq!(batch.len(), expected);
        let rows = events(&batch);
        assert_eq!(rows[0]["item"], format!("item-{}", rows[0]["id"]));
        seen.extend(rows.iter().map(|r| r["id"].as_i64().unwrap()));
        saved = batch.take_state();
    }
    assert_eq!(
        serde_json::from_slice::<Value>(saved.as_ref().unwrap()).unwrap(),
        json!({"last_value": "25"})
    );
    // Nothing new: an empty batch after the poll interval, carrying no state.
    let mut empty = source.poll().await.unwrap();
    assert!(empty.is_empty());
    assert!(empty.take_state().is_none());

    // Rows inserted while running arrive.
    pg.psql(
        "shop",
        "INSERT INTO orders (item, qty) SELECT 'item-' || i, i FROM generate_series(26, 32) i",
    );
    let mut batch = next_batch(&mut source).await;
    seen.extend(events(&batch).iter().map(|r| r["id"].as_i64().unwrap()));
    let committed_state = batch.take_state();
    // One more batch is read but its state never saved: the host crashed first.
    pg.psql(
        "shop",
        "INSERT INTO orders (item, qty) SELECT 'item-' || i, i FROM generate_series(33, 40) i",
    );
    let lost = next_batch(&mut source).await;
    assert_eq!(lost.len(), 8);
    drop(source);

    // Restart with the last saved state: the unsaved batch comes again, nothing else.
    pg.psql(
        "shop",
        "INSERT INTO orders (item, qty) SELECT 'item-' || i, i FROM generate_series(41, 45) i",
    );
    let mut source = open_source(&lib, &config, committed_state).await;
    while seen.len() < 45 {
        let batch = next_batch(&mut source).await;
        seen.extend(events(&batch).iter().map(|r| r["id"].as_i64().unwrap()));
    }
    assert_eq!(
        seen,
        (1..=45).collect::<Vec<i64>>(),
        "every row once, in order"
    );
    let mut after = source.poll().await.unwrap();
    assert!(after.is_empty(), "no row repeated");
    assert!(after.take_state().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_a_missing_table_fails_at_open() {
    let Some(pg) = PgCluster::start() else { return };
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let mut source = lib
        .new_source(
            "s",
            &json!({"connection_string": pg.url("postgres"), "table": "nope"}).to_string(),
            None,
        )
        .await
        .unwrap();
    let err = source.open().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fatal);
    assert_eq!(err.message(), "table \"public.nope\" does not exist");
    pg.psql("postgres", "CREATE TABLE yes (n int)");
    let mut source = lib
        .new_source(
            "s",
            &json!({"connection_string": pg.url("postgres"), "table": "yes"}).to_string(),
            None,
        )
        .await
        .unwrap();
    let err = source.open().await.unwrap_err();
    assert!(
        err.message()
            .starts_with("table \"public.yes\" has no column \"id\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_delivers_insert_update_delete_in_order_and_acknowledges_on_commit() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, note text, paid boolean); \
         CREATE TABLE other (n int)",
    );
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let config = json!({
        "connection_string": pg.url("shop"),
        "mode": "cdc",
        "slot_name": "ld_test",
        "tables": ["orders"],
        "poll_interval": "20ms",
    });
    // Opening creates the slot: changes from now on are captured.
    let mut source = open_source(&lib, &config, None).await;
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'ld_test'"
        ),
        "test_decoding"
    );
    pg.psql("shop", "INSERT INTO orders VALUES (1, 'it''s new', false)");
    pg.psql("shop", "INSERT INTO other VALUES (7)"); // filtered out by `tables`
    pg.psql(
        "shop",
        "UPDATE orders SET note = 'paid', paid = true WHERE id = 1",
    );
    pg.psql("shop", "DELETE FROM orders WHERE id = 1");

    let mut got: Vec<Value> = Vec::new();
    let mut first_state = None;
    while got.len() < 3 {
        let mut batch = next_batch(&mut source).await;
        got.extend(events(&batch));
        first_state = first_state.or(batch.take_state());
    }
    assert_eq!(got.len(), 3, "{got:?}");
    let strip = |v: &Value| {
        let mut v = v.clone();
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("lsn").unwrap().is_string());
        assert!(o.remove("xid").unwrap().is_i64());
        v
    };
    assert_eq!(
        strip(&got[0]),
        json!({"table": "public.orders", "operation": "insert",
               "new": {"id": 1, "note": "it's new", "paid": false}, "old_key": null})
    );
    assert_eq!(
        strip(&got[1]),
        json!({"table": "public.orders", "operation": "update",
               "new": {"id": 1, "note": "paid", "paid": true}, "old_key": null})
    );
    assert_eq!(
        strip(&got[2]),
        json!({"table": "public.orders", "operation": "delete",
               "new": null, "old_key": {"id": 1}})
    );
    let first_lsn = serde_json::from_slice::<Value>(first_state.as_ref().unwrap()).unwrap();
    assert!(first_lsn["lsn"].as_str().unwrap().contains('/'));
    assert!(source.poll().await.unwrap().is_empty(), "nothing more");

    // Restart before `committed`: the slot did not move, no state was saved, so the
    // same three changes come again.
    drop(source);
    let mut source = open_source(&lib, &config, None).await;
    let mut again: Vec<Value> = Vec::new();
    let mut state = None;
    let mut batches = 0;
    while again.len() < 3 {
        let mut batch = next_batch(&mut source).await;
        again.extend(events(&batch));
        state = batch.take_state();
        batches += 1;
    }
    assert_eq!(again, got, "redelivered before commit");
    // The host appends the batches and acknowledges them.
    for seq in 1..=batches {
        source.committed(seq).await.unwrap();
    }
    assert!(source.poll().await.unwrap().is_empty());

    // A new change after the acknowledged ones.
    pg.psql("shop", "INSERT INTO orders VALUES (2, 'later', true)");
    // Restart after `committed`, with the saved state: only the new change comes.
    drop(source);
    let mut source = open_source(&lib, &config, state).await;
    let batch = next_batch(&mut source).await;
    let events = events(&batch);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["new"]["id"], 2);
    assert!(source.poll().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_resumes_from_saved_state_when_the_host_stopped_before_acknowledging() {
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("shop");
    pg.psql("shop", "CREATE TABLE t (id int PRIMARY KEY)");
    let cache = tempfile::tempdir().unwrap();
    let lib = library(&cache);
    let config = json!({
        "connection_string": pg.url("shop"),
        "mode": "cdc",
        "slot_name": "ld_resume",
        "batch_size": 2,
        "poll_interval": "20ms",
    });
    let mut source = open_source(&lib, &config, None).await;
    for i in 1..=5 {
        pg.psql("shop", &format!("INSERT INTO t VALUES ({i})"));
    }
    // Wait until all five transactions are decodable, so the first poll cannot see only
    // some of them (peek does not consume).
    for _ in 0..200 {
        let commits = pg.psql(
            "shop",
            "SELECT count(*) FROM pg_logical_slot_peek_changes('ld_resume', NULL, NULL) WHERE data LIKE 'COMMIT%'",
        );
        if commits.parse::<u32>().unwrap_or(0) >= 5 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Batches hold whole transactions; batch_size 2 gives 2, 2, 1.
    let mut first = next_batch(&mut source).await;
    assert_eq!(first.len(), 2);
    let saved = first.take_state();
    let second = next_batch(&mut source).await;
    assert_eq!(second.len(), 2);
    drop(source); // the state of batch 1 was saved, `committed` never called

    let mut source = open_source(&lib, &config, saved).await;
    let mut ids = Vec::new();
    while ids.len() < 3 {
        let batch = next_batch(&mut source).await;
        ids.extend(
            events(&batch)
                .iter()
                .map(|e| e["new"]["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(
        ids,
        vec![3, 4, 5],
        "resumes after the saved batch, nothing repeated"
    );
}
