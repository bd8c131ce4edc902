//! Boundary overhead of the host -> sink consume path.
//!
//! Batches of 1000 messages of 100 bytes go into the stdout sink with printing off (a
//! no-op sink), once through the real loader and the FFI boundary, and once by calling
//! the same sink code directly in-process. The difference is what the boundary costs.
//!
//! Run: `cargo bench -p ld-e2e-tests --bench consume_path`

use std::time::{Duration, Instant};

use ld_connectord::plugin_host::PluginLibrary;
use ld_plugin_api::{InstanceContext, Message, Schema, Sink, SinkBatch};

const BATCH: usize = 1000;
const PAYLOAD: usize = 100;
const BATCHES_PER_ROUND: usize = 20_000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let buffer: Vec<u8> = (0..BATCH * PAYLOAD)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let lib = PluginLibrary::load(&ld_e2e_tests::plugin("stdout_sink"), cache.path())
        .expect("load the stdout sink");
    let config = r#"{"print_payload": false}"#;
    let mut ffi_sink = rt.block_on(lib.new_sink("bench", config)).unwrap();
    rt.block_on(ffi_sink.open()).unwrap();
    let mut direct_sink = ld_stdout_sink::StdoutSink::new(
        serde_json::from_str(config).unwrap(),
        &InstanceContext::new("bench"),
    )
    .unwrap();

    // The host's per-batch work: message views over one buffer (no copy), then the call.
    let mut views: Vec<Message<'_>> = Vec::with_capacity(BATCH);
    let mut ffi_ns = Vec::new();
    let mut direct_ns = Vec::new();
    for round in 0..ROUNDS {
        let start = Instant::now();
        rt.block_on(async {
            for b in 0..BATCHES_PER_ROUND {
                fill_views(&mut views, &buffer, b);
                ffi_sink
                    .consume(SinkBatch::new("bench", "t", 0, &views))
                    .await
                    .unwrap();
                // The host asks for rejected messages after each batch (0.1.2).
                assert!(ffi_sink.rejected().unwrap().is_empty());
            }
        });
        let ffi = per_message(start.elapsed());

        let start = Instant::now();
        rt.block_on(async {
            for b in 0..BATCHES_PER_ROUND {
                fill_views(&mut views, &buffer, b);
                direct_sink
                    .consume(SinkBatch::new("bench", "t", 0, &views))
                    .await
                    .unwrap();
                assert!(direct_sink.rejected().is_empty());
            }
        });
        let direct = per_message(start.elapsed());
        if round > 0 {
            // Round 0 warms caches and the plugin's runtime.
            ffi_ns.push(ffi);
            direct_ns.push(direct);
        }
    }
    let ffi = median(ffi_ns);
    let direct = median(direct_ns);
    println!("consume path, {BATCH} x {PAYLOAD} B per batch, medians of {} rounds of {BATCHES_PER_ROUND} batches:", ROUNDS - 1);
    println!("  through the plugin boundary: {ffi:.2} ns/message (views + FFI consume and its future + FFI rejected)");
    println!("  same sink called in-process: {direct:.2} ns/message (views + call)");
    println!(
        "  boundary overhead:           {:.3} ns/message (target: at most 5 ns)",
        (ffi - direct).max(0.0)
    );
    println!(
        "  throughput through the boundary: {:.1} M messages/s",
        1e3 / ffi
    );
}

/// The host's per-batch work before the call: message views over one buffer, no copy.
fn fill_views<'a>(views: &mut Vec<Message<'a>>, buffer: &'a [u8], batch: usize) {
    views.clear();
    let base = (batch * BATCH) as u64;
    views.extend((0..BATCH).map(|i| {
        Message::new(
            u128::from(base) + i as u128 + 1,
            base + i as u64,
            0,
            Schema::Raw,
            &[],
            &buffer[i * PAYLOAD..(i + 1) * PAYLOAD],
        )
    }));
}

fn per_message(elapsed: Duration) -> f64 {
    elapsed.as_nanos() as f64 / (BATCHES_PER_ROUND * BATCH) as f64
}
