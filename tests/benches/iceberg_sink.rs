//! Iceberg sink throughput into a SQL-catalog (SQLite) table, against the limits, in one
//! run:
//!
//! 1. the sink in-process: a generator appends ~200-byte JSON payloads of 6 fields to the
//!    embedded log while `run_sink` reads them and hands them to the real `iceberg`
//!    plugin (loaded through `PluginLibrary`), default commit policy (`commit_rows`
//!    100,000); timed until the closing flush committed the last row;
//! 2. the same rows as Arrow batches (decoded beforehand, not timed) written straight to
//!    one Parquet file with the `parquet` crate (ZSTD): the limit (target: the sink at
//!    least 70% of it);
//! 3. pyiceberg appending the same rows (as Arrow, decoded beforehand) to a SQL-catalog
//!    table in 100,000-row appends, when python3 has pyiceberg (ratio reported).
//!
//! It also reports data files per million rows.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench iceberg_sink` (`LD_ICEBERG_BENCH_ROWS` to
//! change the 1,000,000 rows; `LD_BENCH_ROUNDS` the 3 rounds).

use std::{
    io::Write,
    path::Path,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use ld_connectord::{
    config::SinkStream,
    instance::{run_sink, CallPolicy, InstanceMetrics, SinkTask},
    plugin_host::PluginLibrary,
    stream::{
        embedded::{Durability, EmbeddedLog, EmbeddedSettings},
        MessageBatch, StreamBackend, TopicRef,
    },
};
use ld_plugin_api::Schema;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 1000;

/// Row `n`: 6 fields, about 200 bytes.
fn payload(n: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(
        out,
        r#"{{"order_id":{n},"customer":"customer-{:06}","status":"{}","amount":{}.{:02},"currency":"EUR","note":""#,
        n % 100_000,
        ["completed", "pending", "shipped"][(n % 3) as usize],
        n % 997,
        n % 100
    );
    while out.len() < 198 {
        out.push((b'a' + ((n as usize + out.len()) % 26) as u8) as char);
    }
    out.push_str("\"}");
}

fn plugin_config(dir: &Path) -> String {
    serde_json::json!({
        "tables": ["bench.orders"],
        "uri": dir.join("catalog.db").to_str().unwrap(),
        "warehouse": dir.join("warehouse").to_str().unwrap(),
        "create_table": {"schema": [
            {"name": "order_id", "type": "long", "required": true},
            {"name": "customer", "type": "string"},
            {"name": "status", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "currency", "type": "string"},
            {"name": "note", "type": "string"}]}
    })
    .to_string()
}

fn data_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}

/// Returns (rows/s, data files).
async fn sink_run(rows: u64, cache: &Path) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = ld_connectord::engine::open_db(&dir.path().join("state")).unwrap();
    let log = EmbeddedLog::open(
        db,
        EmbeddedSettings {
            durability: Durability::Interval(Duration::from_millis(100)),
            ..EmbeddedSettings::default()
        },
    )
    .unwrap();
    let backend: Arc<dyn StreamBackend> = Arc::new(log);
    let lib = PluginLibrary::load(&ld_e2e_tests::plugin("iceberg_sink"), cache).unwrap();
    let plugin = lib
        .new_sink("bench", &plugin_config(dir.path()))
        .await
        .unwrap();
    let batches: Vec<MessageBatch> = {
        let mut p = String::new();
        (0..rows.div_ceil(BATCH as u64))
            .map(|b| {
                let mut batch = MessageBatch::with_capacity(BATCH, BATCH * 200);
                for n in b * BATCH as u64..((b + 1) * BATCH as u64).min(rows) {
                    payload(n, &mut p);
                    batch.push(u128::from(n) + 1, 0, 0, Schema::Json, [], p.as_bytes());
                }
                batch
            })
            .collect()
    };
    let metrics = Arc::new(InstanceMetrics::default());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let producer_backend = backend.clone();
    let producer = tokio::spawn(async move {
        let mut producer = producer_backend
            .producer(&TopicRef::new("bench", "orders"))
            .await
            .unwrap();
        for b in &batches {
            producer.append(b).await.unwrap();
        }
    });
    let sink = tokio::spawn(run_sink(
        SinkTask {
            instance_key: "bench".into(),
            streams: vec![SinkStream {
                stream: "bench".into(),
                topics: vec!["orders".into()],
                schema: Schema::Json,
                batch_length: BATCH as u32,
                poll_interval: Duration::from_millis(5),
                consumer_group: None,
                durability: Default::default(),
            }],
            transforms: vec![],
            errors: Default::default(),
            plugin,
            backend,
            policy: CallPolicy::default(),
            metrics: metrics.clone(),
        },
        stop.clone(),
    ));
    while metrics.messages.load(Ordering::Relaxed) < rows {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.cancel(); // the closing flush commits what is buffered
    sink.await.unwrap().unwrap();
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    producer.await.unwrap();
    (rate, data_files(&dir.path().join("warehouse")))
}

fn arrow_batches(rows: u64) -> Vec<arrow_array::RecordBatch> {
    use arrow_schema::{DataType, Field, Schema as ArrowSchema};
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("currency", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    let mut decoder = arrow_json::ReaderBuilder::new(schema)
        .with_batch_size(BATCH)
        .build_decoder()
        .unwrap();
    let mut out = Vec::new();
    let mut p = String::new();
    for n in 0..rows {
        payload(n, &mut p);
        decoder.decode(p.as_bytes()).unwrap();
        decoder.decode(b"\n").unwrap();
        if (n + 1) % BATCH as u64 == 0 {
            out.extend(decoder.flush().unwrap());
        }
    }
    out.extend(decoder.flush().unwrap());
    out
}

/// The same Arrow batches straight to one Parquet file (ZSTD). Returns rows/s.
fn parquet_run(batches: &[arrow_array::RecordBatch]) -> f64 {
    use parquet::{
        arrow::ArrowWriter,
        basic::{Compression, ZstdLevel},
        file::properties::WriterProperties,
    };
    let dir = tempfile::tempdir().unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let started = Instant::now();
    let file = std::fs::File::create(dir.path().join("direct.parquet")).unwrap();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
    rows as f64 / started.elapsed().as_secs_f64()
}

/// pyiceberg appending the same rows; `None` when it is not installed.
fn pyiceberg_run(rows: u64) -> Option<(f64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("rows.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&jsonl).unwrap());
    let mut p = String::new();
    for n in 0..rows {
        payload(n, &mut p);
        f.write_all(p.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("iceberg/pyiceberg_append.py");
    let out = std::process::Command::new(ld_e2e_tests::iceberg::python())
        .arg(script)
        .arg("--jsonl")
        .arg(&jsonl)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "pyiceberg run skipped: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["rows_per_s"].as_f64()?, v["data_files"].as_u64()?))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rows: u64 = std::env::var("LD_ICEBERG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("LD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    println!(
        "iceberg sink, {rows} rows of ~200 B JSON into 6 columns, SQL catalog (SQLite), batches of {BATCH}; medians of {rounds} rounds"
    );
    let batches = arrow_batches(rows);
    let (mut sink, mut direct, mut py, mut files, mut py_files) =
        (Vec::new(), Vec::new(), Vec::new(), 0, None);
    let mut decode_and_write = Vec::new();
    for _ in 0..rounds {
        // The same limit with the JSON decoding the sink does included.
        let started = Instant::now();
        let decoded = arrow_batches(rows);
        let decode_secs = started.elapsed().as_secs_f64();
        let write_rate = parquet_run(&decoded);
        decode_and_write.push(rows as f64 / (decode_secs + rows as f64 / write_rate));
        let (rate, f) = rt.block_on(sink_run(rows, cache.path()));
        sink.push(rate);
        files = f;
        direct.push(parquet_run(&batches));
        if let Some((rate, f)) = pyiceberg_run(rows) {
            py.push(rate);
            py_files = Some(f);
        }
    }
    let (sink, direct) = (median(sink), median(direct));
    println!("  iceberg sink (log -> sink -> table): {sink:>10.0} rows/s");
    println!("  Arrow -> Parquet (parquet crate):    {direct:>10.0} rows/s");
    println!(
        "  sink / direct Parquet: {:.0}% (target: at least 70%)",
        100.0 * sink / direct
    );
    let dw = median(decode_and_write);
    println!("  JSON -> Arrow (arrow-json) -> Parquet: {dw:>10.0} rows/s");
    println!(
        "  sink / (JSON decode + Parquet): {:.0}%",
        100.0 * sink / dw
    );
    if py.is_empty() {
        println!("  pyiceberg: not installed (pip install \"pyiceberg[sql-sqlite,pyarrow]\")");
    } else {
        let py = median(py);
        println!("  pyiceberg append (100k rows each):   {py:>10.0} rows/s");
        println!("  sink / pyiceberg: {:.2}x", sink / py);
    }
    let per_million = files as f64 * 1e6 / rows as f64;
    println!("  data files: {files} for {rows} rows = {per_million:.1} per million rows (sink)");
    if let Some(f) = py_files {
        println!(
            "  data files: {f} for {rows} rows = {:.1} per million rows (pyiceberg)",
            f as f64 * 1e6 / rows as f64
        );
    }
}
