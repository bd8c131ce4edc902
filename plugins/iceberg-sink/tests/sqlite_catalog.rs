//! The sink against a real SQL catalog on a temporary SQLite file, calling the `Sink`
//! methods directly: commit policy, partitions, exactly-once skip on redelivery, record
//! errors, missing tables, and a second writer committing in between.

use std::time::Duration;

use iceberg::{Catalog, CatalogBuilder, TableIdent};
use iceberg_catalog_sql::SqlCatalogBuilder;
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use ld_iceberg_sink::{IcebergSink, IcebergSinkConfig, Offsets};
use ld_plugin_api::{
    ErrorKind as PluginErrorKind, InstanceContext, Message, Schema, Sink, SinkBatch,
};
use serde_json::json;

fn config(dir: &std::path::Path, extra: serde_json::Value) -> IcebergSinkConfig {
    let mut base = json!({
        "tables": ["shop.orders"],
        "uri": dir.join("catalog.db").to_str().unwrap(),
        "warehouse": dir.join("warehouse").to_str().unwrap(),
        "commit_interval": "1h",
        "create_table": {
            "schema": [
                {"name": "id", "type": "long", "required": true},
                {"name": "region", "type": "string"},
                {"name": "amount", "type": "double"}],
            "partition_by": [{"column": "region"}]
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    serde_json::from_value(base).unwrap()
}

fn payloads(from: u64, to: u64) -> Vec<String> {
    (from..to)
        .map(|n| {
            let region = ["eu", "us", "ap"][n as usize % 3];
            json!({"id": n, "region": region, "amount": n as f64 / 2.0}).to_string()
        })
        .collect()
}

async fn send(
    sink: &mut IcebergSink,
    first_offset: u64,
    payloads: &[String],
) -> Result<(), ld_plugin_api::PluginError> {
    let msgs: Vec<Message<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Message::new(
                i as u128 + 1,
                first_offset + i as u64,
                0,
                Schema::Json,
                &[],
                p.as_bytes(),
            )
        })
        .collect();
    sink.consume(SinkBatch::new("shop", "orders", 0, &msgs))
        .await
}

async fn catalog(dir: &std::path::Path) -> impl Catalog {
    SqlCatalogBuilder::default()
        .with_storage_factory(std::sync::Arc::new(OpenDalResolvingStorageFactory::new()))
        .load(
            "default",
            [
                (
                    "uri".to_string(),
                    format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display()),
                ),
                (
                    "warehouse".to_string(),
                    format!("file://{}", dir.join("warehouse").display()),
                ),
                ("sql_bind_style".to_string(), "QMark".to_string()),
            ]
            .into(),
        )
        .await
        .unwrap()
}

/// (total rows, data files, snapshots) of the table's current snapshot.
async fn table_counts(dir: &std::path::Path) -> (u64, u64, usize, Offsets) {
    let c = catalog(dir).await;
    let t = c
        .load_table(&TableIdent::from_strs(["shop", "orders"]).unwrap())
        .await
        .unwrap();
    let m = t.metadata();
    let offsets = Offsets::from_table(m, "it").unwrap();
    let Some(s) = m.current_snapshot() else {
        return (0, 0, 0, offsets);
    };
    let p = &s.summary().additional_properties;
    let rows = p.get("total-records").map_or(0, |v| v.parse().unwrap());
    let files = p.get("total-data-files").map_or(0, |v| v.parse().unwrap());
    let snapshots = m.snapshots().len();
    (rows, files, snapshots, offsets)
}

#[tokio::test]
async fn buffers_commits_by_policy_and_skips_what_the_table_holds() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = InstanceContext::new("it");
    let mut sink = IcebergSink::new(config(dir.path(), json!({"commit_rows": 250})), &ctx).unwrap();
    sink.open().await.unwrap();
    // 2 batches of 100: below commit_rows, nothing durable yet.
    send(&mut sink, 0, &payloads(0, 100)).await.unwrap();
    assert_eq!(sink.flush(1, false).await.unwrap(), 0);
    send(&mut sink, 100, &payloads(100, 200)).await.unwrap();
    assert_eq!(sink.flush(2, false).await.unwrap(), 0);
    assert_eq!(table_counts(dir.path()).await.0, 0, "nothing committed yet");
    // The third crosses 250 rows: one snapshot, all three batches durable.
    send(&mut sink, 200, &payloads(200, 300)).await.unwrap();
    assert_eq!(sink.flush(3, false).await.unwrap(), 3);
    let (rows, files, snapshots, offsets) = table_counts(dir.path()).await;
    assert_eq!((rows, snapshots), (300, 1));
    assert_eq!(files, 3, "one file per partition (eu, us, ap)");
    assert_eq!(offsets.get("shop", "orders", 0), Some(299));
    // A fourth batch, committed at close.
    send(&mut sink, 300, &payloads(300, 350)).await.unwrap();
    assert_eq!(sink.flush(4, false).await.unwrap(), 3);
    assert_eq!(sink.flush(4, true).await.unwrap(), 4);
    sink.close().await.unwrap();
    assert_eq!(table_counts(dir.path()).await.0, 350);

    // A restart redelivers offsets 200..400 (the host had committed only up to 199):
    // 200..349 are in the table already and are skipped.
    let mut sink = IcebergSink::new(config(dir.path(), json!({})), &ctx).unwrap();
    sink.open().await.unwrap();
    send(&mut sink, 200, &payloads(200, 400)).await.unwrap();
    assert_eq!(sink.flush(1, true).await.unwrap(), 1);
    sink.close().await.unwrap();
    assert_eq!(sink.stats().already_held, 150);
    let (rows, _, snapshots, offsets) = table_counts(dir.path()).await;
    assert_eq!(rows, 400, "no duplicate, none missing");
    assert_eq!(snapshots, 3);
    assert_eq!(offsets.get("shop", "orders", 0), Some(399));
}

#[tokio::test]
async fn commit_interval_makes_batches_durable_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = InstanceContext::new("it");
    let mut sink = IcebergSink::new(
        config(dir.path(), json!({"commit_interval": "300ms"})),
        &ctx,
    )
    .unwrap();
    sink.open().await.unwrap();
    send(&mut sink, 0, &payloads(0, 10)).await.unwrap();
    assert_eq!(sink.flush(1, false).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(sink.flush(1, false).await.unwrap(), 1);
    assert_eq!(table_counts(dir.path()).await.0, 10);
}

#[tokio::test]
async fn a_record_that_does_not_fit_fails_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = InstanceContext::new("it");
    let bad = vec![
        json!({"id": 1, "region": "eu"}).to_string(),
        json!({"id": "two", "region": "eu"}).to_string(),
        json!({"id": 3, "region": "eu"}).to_string(),
    ];
    let mut sink = IcebergSink::new(config(dir.path(), json!({})), &ctx).unwrap();
    sink.open().await.unwrap();
    let err = send(&mut sink, 40, &bad).await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Fatal);
    let text = err.to_string();
    assert!(
        text.contains("offset 41") && text.contains("`id`"),
        "{text}"
    );
    // Nothing of the failed batch was kept.
    assert_eq!(sink.flush(0, true).await.unwrap(), 0);
    assert_eq!(table_counts(dir.path()).await.0, 0);

    let mut sink =
        IcebergSink::new(config(dir.path(), json!({"on_record_error": "skip"})), &ctx).unwrap();
    sink.open().await.unwrap();
    send(&mut sink, 40, &bad).await.unwrap();
    assert_eq!(sink.flush(1, true).await.unwrap(), 1);
    assert_eq!(sink.stats().skipped, 1);
    let (rows, _, _, offsets) = table_counts(dir.path()).await;
    assert_eq!(rows, 2);
    assert_eq!(offsets.get("shop", "orders", 0), Some(42));
}

#[tokio::test]
async fn a_missing_table_or_bad_name_fails_at_open_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = InstanceContext::new("it");
    let mut c = config(dir.path(), json!({}));
    c.create_table = None;
    let mut sink = IcebergSink::new(c, &ctx).unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Fatal);
    assert!(
        err.to_string().contains("shop.orders does not exist"),
        "{err}"
    );

    let err = match IcebergSink::new(config(dir.path(), json!({"tables": ["orders"]})), &ctx) {
        Ok(_) => panic!("accepted a table name without namespace"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), PluginErrorKind::InvalidConfig);
    assert!(err.to_string().contains("plugin_config.tables[0]"), "{err}");
}

#[tokio::test]
async fn an_unreachable_catalog_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = InstanceContext::new("it");
    // A catalog file whose directory is a regular file: cannot be opened.
    std::fs::write(dir.path().join("blocked"), b"").unwrap();
    let mut c = config(dir.path(), json!({}));
    c.uri = dir.path().join("blocked/catalog.db").display().to_string();
    let mut sink = IcebergSink::new(c, &ctx).unwrap();
    let err = sink.open().await.unwrap_err();
    assert_eq!(err.kind(), PluginErrorKind::Transient, "{err}");
}

#[tokio::test]
async fn another_writer_in_between_is_walked_past() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink =
        IcebergSink::new(config(dir.path(), json!({})), &InstanceContext::new("it")).unwrap();
    sink.open().await.unwrap();
    send(&mut sink, 0, &payloads(0, 50)).await.unwrap();
    sink.flush(1, true).await.unwrap();
    // Another instance appends later to the same table from another stream.
    let mut other = IcebergSink::new(
        config(dir.path(), json!({})),
        &InstanceContext::new("other"),
    )
    .unwrap();
    other.open().await.unwrap();
    send(&mut other, 0, &payloads(1000, 1010)).await.unwrap();
    other.flush(1, true).await.unwrap();
    // Our restart still finds its own offsets behind the other writer's snapshot.
    let mut again =
        IcebergSink::new(config(dir.path(), json!({})), &InstanceContext::new("it")).unwrap();
    again.open().await.unwrap();
    assert_eq!(
        again
            .committed_offsets("shop.orders")
            .unwrap()
            .get("shop", "orders", 0),
        Some(49)
    );
    send(&mut again, 0, &payloads(0, 60)).await.unwrap();
    again.flush(1, true).await.unwrap();
    assert_eq!(table_counts(dir.path()).await.0, 70);
    // Meanwhile a stale copy of "it" that buffered 40..60 commits: the guard reloads,
    // sees its offsets moved, and writes nothing twice.
    send(&mut sink, 40, &payloads(40, 60)).await.unwrap();
    sink.flush(2, true).await.unwrap();
    assert_eq!(table_counts(dir.path()).await.0, 70);
}
