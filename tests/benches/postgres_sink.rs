//! PostgreSQL sink throughput against the practical limits, on one throwaway cluster.
//!
//! The same rows (about 200 bytes of JSON each, plus stream, topic, partition, offset,
//! message id and timestamp) go into identical tables (the table the sink creates:
//! metadata columns, a `jsonb` payload, the unique key) in batches of 1000, by:
//!
//! 1. the `postgres` sink through the real loader (`PluginLibrary::load`, `consume`);
//! 2. `psql -c "\copy ... FROM file"` of the same rows (the practical limit);
//! 3. 1000-row multi-row `INSERT ... VALUES (...), (...)` statements, prepared;
//! 4. direct binary COPY with the buffer built by hand (what the sink does), and with
//!    tokio-postgres' `BinaryCopyInWriter`: the choice of encoder.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench postgres_sink`
//! (`LD_PG_BENCH_ROWS=100000` for a quick run; default 1,000,000).

use std::{io::Write, time::Instant};

use bytes::{BufMut, BytesMut};
use futures::SinkExt;
use ld_connectord::plugin_host::PluginLibrary;
use ld_e2e_tests::pg::PgCluster;
use ld_plugin_api::{Message, Schema, SinkBatch};
use tokio_postgres::{
    binary_copy::BinaryCopyInWriter,
    types::{to_sql_checked, IsNull, ToSql, Type},
};

const BATCH: usize = 1000;
const STREAM: &str = "orders";
const TOPIC: &str = "completed";
const T0: u64 = 1_700_000_000_000_000;
const COLUMNS: &str =
    "ld_stream, ld_topic, ld_partition, ld_offset, ld_message_id, ld_timestamp, payload";

fn payload(n: usize) -> String {
    let mut p = format!(
        r#"{{"order_id":{n},"customer":"customer-{:06}","status":"completed","amount":{}.{:02},"currency":"EUR","items":[{{"sku":"sku-{:05}","qty":{}}}],"note":""#,
        n % 100_000,
        n % 997,
        n % 100,
        n % 50_000,
        n % 7 + 1
    );
    while p.len() < 198 {
        p.push((b'a' + (n + p.len()) as u8 % 26) as char);
    }
    p.push_str("\"}");
    p
}

fn uuid_text(id: u128) -> String {
    let h = format!("{id:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn timestamp_text(micros: u64) -> String {
    // PostgreSQL parses epoch seconds via to_timestamp only; give an ISO string.
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}+00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[derive(Debug)]
struct RawJsonb<'a>(&'a [u8]);

impl ToSql for RawJsonb<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u8(1);
        out.put_slice(self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
    to_sql_checked!();
}

#[derive(Debug)]
struct RawUuid(u128);

impl ToSql for RawUuid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_u128(self.0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }
    to_sql_checked!();
}

struct Figures {
    rows: usize,
    results: Vec<(&'static str, f64)>,
}

impl Figures {
    fn add(&mut self, name: &'static str, started: Instant) -> f64 {
        let rate = self.rows as f64 / started.elapsed().as_secs_f64();
        println!("{name:<48} {rate:>12.0} rows/s");
        self.results.push((name, rate));
        rate
    }
}

fn main() {
    let rows: usize = std::env::var("LD_PG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let rows = rows.div_ceil(BATCH) * BATCH;
    let Some(pg) = PgCluster::start() else { return };
    pg.create_database("bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let payloads: Vec<String> = (0..rows).map(payload).collect();
    let avg = payloads.iter().map(String::len).sum::<usize>() / rows;
    println!(
        "postgres sink benchmark: {rows} rows, {avg}-byte JSON payloads, batches of {BATCH}, PostgreSQL in {}",
        pg.bin().display()
    );
    let id_of = |n: usize| (n as u128 + 1) << 64 | 0x5eed;
    let mut figures = Figures {
        rows,
        results: Vec::new(),
    };
    let cache = tempfile::tempdir().unwrap();
    let lib = PluginLibrary::load(&ld_e2e_tests::plugin("postgres_sink"), cache.path())
        .expect("load the postgres sink");

    // 1. The sink through the loader; it creates the table all methods use the shape of.
    let config = serde_json::json!({
        "connection_string": pg.url("bench"),
        "target_table": "via_sink",
        "auto_create_table": true,
    })
    .to_string();
    let mut sink = rt.block_on(lib.new_sink("bench", &config)).unwrap();
    rt.block_on(sink.open()).unwrap();
    for table in ["via_copy", "via_insert", "via_buffer", "via_writer"] {
        pg.psql(
            "bench",
            &format!("CREATE TABLE {table} (LIKE via_sink INCLUDING ALL)"),
        );
    }
    let started = Instant::now();
    rt.block_on(async {
        for (b, chunk) in payloads.chunks(BATCH).enumerate() {
            let first = b * BATCH;
            let views: Vec<Message<'_>> = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let n = first + i;
                    Message::new(
                        id_of(n),
                        n as u64,
                        T0 + n as u64,
                        Schema::Json,
                        &[],
                        p.as_bytes(),
                    )
                })
                .collect();
            sink.consume(SinkBatch::new(STREAM, TOPIC, 0, &views))
                .await
                .unwrap();
        }
    });
    let sink_rate = figures.add("postgres sink (loader, binary COPY)", started);
    rt.block_on(sink.close()).unwrap();
    assert_eq!(
        pg.psql("bench", "SELECT count(*) FROM via_sink"),
        rows.to_string()
    );

    // 2. psql \copy of the same rows from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.tsv");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for (n, p) in payloads.iter().enumerate() {
            let escaped = p.replace('\\', "\\\\");
            writeln!(
                out,
                "{STREAM}\t{TOPIC}\t0\t{n}\t{}\t{}\t{escaped}",
                uuid_text(id_of(n)),
                timestamp_text(T0 + n as u64)
            )
            .unwrap();
        }
    }
    let started = Instant::now();
    let output = pg
        .psql_command("bench")
        .arg("-c")
        .arg(format!(
            "\\copy via_copy ({COLUMNS}) FROM '{}'",
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let copy_rate = figures.add("psql \\copy FROM file (text format)", started);
    assert_eq!(
        pg.psql(
            "bench",
            "SELECT count(*) FROM via_copy c JOIN via_sink s USING (ld_offset) \
             WHERE c.payload = s.payload AND c.ld_message_id = s.ld_message_id \
               AND c.ld_timestamp = s.ld_timestamp"
        ),
        rows.to_string(),
        "\\copy wrote the same rows"
    );

    // 3. 1000-row multi-row INSERTs, one statement (and transaction) per batch.
    let insert_rate = rt.block_on(async {
        let client = pg.connect("bench").await;
        let values: Vec<String> = (0..BATCH)
            .map(|r| {
                let b = r * 7;
                format!(
                    "(${}, ${}, ${}, ${}, ${}::text::uuid, ${}::text::timestamptz, ${}::text::jsonb)",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                )
            })
            .collect();
        let statement = client
            .prepare(&format!(
                "INSERT INTO via_insert ({COLUMNS}) VALUES {}",
                values.join(", ")
            ))
            .await
            .unwrap();
        let started = Instant::now();
        let partition = 0i32;
        for (b, chunk) in payloads.chunks(BATCH).enumerate() {
            let first = b * BATCH;
            let offsets: Vec<i64> = (0..chunk.len()).map(|i| (first + i) as i64).collect();
            let ids: Vec<String> = (0..chunk.len()).map(|i| uuid_text(id_of(first + i))).collect();
            let stamps: Vec<String> = (0..chunk.len())
                .map(|i| timestamp_text(T0 + (first + i) as u64))
                .collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(BATCH * 7);
            for i in 0..chunk.len() {
                params.push(&STREAM);
                params.push(&TOPIC);
                params.push(&partition);
                params.push(&offsets[i]);
                params.push(&ids[i]);
                params.push(&stamps[i]);
                params.push(&chunk[i]);
            }
            client.execute(&statement, &params).await.unwrap();
        }
        figures.add("multi-row INSERT, 1000 rows per statement", started)
    });

    // 4. Encoder choice: hand-built buffer vs BinaryCopyInWriter, direct (no plugin).
    rt.block_on(async {
        let mut client = pg.connect("bench").await;
        let started = Instant::now();
        let mut buf = BytesMut::new();
        for (b, chunk) in payloads.chunks(BATCH).enumerate() {
            let first = b * BATCH;
            buf.clear();
            buf.put_slice(b"PGCOPY\n\xff\r\n\0");
            buf.put_i64(0);
            for (i, p) in chunk.iter().enumerate() {
                let n = first + i;
                buf.put_i16(7);
                for s in [STREAM, TOPIC] {
                    buf.put_i32(s.len() as i32);
                    buf.put_slice(s.as_bytes());
                }
                buf.put_i32(4);
                buf.put_i32(0);
                buf.put_i32(8);
                buf.put_i64(n as i64);
                buf.put_i32(16);
                buf.put_u128(id_of(n));
                buf.put_i32(8);
                buf.put_i64((T0 + n as u64) as i64 - 946_684_800_000_000);
                buf.put_i32(p.len() as i32 + 1);
                buf.put_u8(1);
                buf.put_slice(p.as_bytes());
            }
            buf.put_i16(-1);
            let tx = client.transaction().await.unwrap();
            let sink = tx
                .copy_in::<_, bytes::Bytes>(&format!(
                    "COPY via_buffer ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await
                .unwrap();
            let mut sink = std::pin::pin!(sink);
            sink.send(buf.split().freeze()).await.unwrap();
            sink.as_mut().finish().await.unwrap();
            tx.commit().await.unwrap();
        }
        figures.add("direct binary COPY, hand-built buffer", started);

        let started = Instant::now();
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::INT8,
            Type::UUID,
            Type::TIMESTAMPTZ,
            Type::JSONB,
        ];
        for (b, chunk) in payloads.chunks(BATCH).enumerate() {
            let first = b * BATCH;
            let tx = client.transaction().await.unwrap();
            let sink = tx
                .copy_in(&format!(
                    "COPY via_writer ({COLUMNS}) FROM STDIN (FORMAT binary)"
                ))
                .await
                .unwrap();
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            for (i, p) in chunk.iter().enumerate() {
                let n = first + i;
                let stamp = std::time::UNIX_EPOCH + std::time::Duration::from_micros(T0 + n as u64);
                writer
                    .as_mut()
                    .write(&[
                        &STREAM,
                        &TOPIC,
                        &0i32,
                        &(n as i64),
                        &RawUuid(id_of(n)),
                        &stamp,
                        &RawJsonb(p.as_bytes()),
                    ])
                    .await
                    .unwrap();
            }
            writer.as_mut().finish().await.unwrap();
            tx.commit().await.unwrap();
        }
        figures.add("direct binary COPY, BinaryCopyInWriter", started);
    });

    println!();
    println!(
        "sink / \\copy          = {:.2}  (target >= 0.70)",
        sink_rate / copy_rate
    );
    println!(
        "sink / multi-row INSERT = {:.2}  (target >= 2.0)",
        sink_rate / insert_rate
    );
    let _ = &figures.results;
}
