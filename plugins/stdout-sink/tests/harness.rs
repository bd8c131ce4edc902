//! The stdout sink driven in process with `ld_plugin_api::testing`.
//!
//! What it prints goes to the process's standard output, which a test cannot read back
//! in its own process. The tests that look at the output therefore run themselves again
//! in a child process of this test binary whose stdout is a file (`run_in_child`): the
//! printed lines are asserted, and the conformance suite reads what is "stored" from that
//! file. The other tests count only (`print_payload = false`), so `cargo test` prints
//! nothing.

use std::{
    collections::BTreeMap,
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
use ld_plugin_api::testing::{SinkHarness, TestBatch};
use ld_plugin_api::ErrorKind;
use ld_stdout_sink::StdoutSink;
use serde_json::{json, Value};

/// Set in the child process to the name of the test it runs.
const CHILD: &str = "LD_STDOUT_SINK_TEST_CHILD";
/// Set in the child process to the file its stdout is.
const STDOUT_FILE: &str = "LD_STDOUT_SINK_TEST_STDOUT";
/// Printed by the child before the sink prints (libtest may have begun a line).
const BEGIN: &str = "\n=== sink output begins ===\n";
/// Printed by the child after the sink printed.
const END: &str = "=== sink output ends ===\n";

/// Whether this process is the child run of `test`.
fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}

/// Writes `marker` to stdout, after what was written so far.
fn mark(marker: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(marker.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// What was printed after the begin marker in `stdout`.
fn after_begin(stdout: &str) -> &str {
    stdout
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("no begin marker in the child's stdout:\n{stdout}"))
        .1
}

/// Runs `test` alone in a child process of this test binary, with stdout a file, and
/// returns what it printed between the markers.
fn run_in_child(test: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout");
    let file = std::fs::File::create(&path).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .env(STDOUT_FILE, &path)
        .stdout(file)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = std::fs::read_to_string(&path).unwrap();
    assert!(
        child.status.success(),
        "the child run of {test} failed\n--- stdout:\n{stdout}\n--- stderr:\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran exactly the test: {stdout}"
    );
    after_begin(&stdout)
        .split_once(END)
        .unwrap_or_else(|| panic!("no end marker in the child's stdout:\n{stdout}"))
        .0
        .to_string()
}

#[test]
fn config_errors_are_invalid_config_naming_the_field() {
    let cases = [
        (
            json!({"print_payload": "yes"}),
            "plugin_config.print_payload: ",
        ),
        (
            json!({"print_metadata": 1}),
            "plugin_config.print_metadata: ",
        ),
        (json!(7), "plugin_config: invalid type"),
    ];
    for (config, expected) in cases {
        let err = SinkHarness::new::<StdoutSink>(config.clone()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{config}: {err}");
        assert!(err.message().starts_with(expected), "{config}: {err}");
    }
    let err = SinkHarness::new::<StdoutSink>(json!({"print_paylod": false})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().contains("unknown field `print_paylod`"),
        "{err}"
    );
    // Every field has a default; Iggy's config is read as it is.
    SinkHarness::new::<StdoutSink>(json!({})).unwrap();
    SinkHarness::new::<StdoutSink>(json!({"print_payload": false})).unwrap();
}

#[tokio::test]
async fn each_accepted_batch_is_durable_and_committed() {
    let mut sink = SinkHarness::new::<StdoutSink>(json!({"print_payload": false})).unwrap();
    sink.open().await.unwrap();
    let first = TestBatch::json((1..=3).map(|n| json!({"n": n})));
    assert_eq!(sink.consume(&first).await.unwrap(), [], "nothing rejected");
    assert_eq!((sink.consumed(), sink.durable()), (1, 1));
    assert_eq!(
        sink.committed_offset("test-stream", "test-topic", 0),
        Some(3)
    );
    let other = TestBatch::bytes([[0u8, 0xff]])
        .on("s", "t", 2)
        .starting_at(9);
    assert_eq!(sink.consume(&other).await.unwrap(), []);
    assert_eq!(sink.committed_offset("s", "t", 2), Some(10));
    let empty = TestBatch::text(Vec::<&str>::new());
    sink.consume(&empty).await.unwrap();
    assert_eq!((sink.consumed(), sink.durable()), (3, 3));
    sink.close().await.unwrap();
}

#[tokio::test]
async fn prints_one_line_per_message_with_metadata_on_request() {
    const TEST: &str = "prints_one_line_per_message_with_metadata_on_request";
    if is_child(TEST) {
        mark(BEGIN);
        let mut sink = SinkHarness::new::<StdoutSink>(json!({"print_metadata": true})).unwrap();
        sink.open().await.unwrap();
        let json = TestBatch::json([json!({"a": 1, "b": "x"})])
            .on("orders", "created", 3)
            .starting_at(41);
        sink.consume(&json).await.unwrap();
        sink.consume(&TestBatch::bytes([[0u8, 0xff, 0x10]]))
            .await
            .unwrap();
        sink.consume(&TestBatch::text(["héllo", "two words"]).starting_at(7))
            .await
            .unwrap();
        sink.close().await.unwrap();

        let mut plain = SinkHarness::new::<StdoutSink>(json!({})).unwrap();
        plain.open().await.unwrap();
        plain
            .consume(&TestBatch::text(["plain line"]))
            .await
            .unwrap();
        plain.close().await.unwrap();

        let mut quiet = SinkHarness::new::<StdoutSink>(json!({"print_payload": false})).unwrap();
        quiet.open().await.unwrap();
        quiet
            .consume(&TestBatch::text(["never printed"]))
            .await
            .unwrap();
        quiet.close().await.unwrap();
        mark(END);
        return;
    }
    assert_eq!(
        run_in_child(TEST),
        "[orders/created/3 offset=41 id=42] {\"a\":1,\"b\":\"x\"}\n\
         [test-stream/test-topic/0 offset=0 id=1] 00ff10\n\
         [test-stream/test-topic/0 offset=7 id=8] héllo\n\
         [test-stream/test-topic/0 offset=8 id=9] two words\n\
         plain line\n"
    );
}

/// The stdout sink "stores" into the child process's stdout file.
struct StdoutFile(PathBuf);

impl SinkTarget for StdoutFile {
    type Sink = StdoutSink;
    fn config(&self) -> Value {
        json!({})
    }
    fn invalid_config(&self) -> Value {
        json!({"print_payload": "yes"})
    }
    fn unreachable_config(&self) -> Option<Value> {
        None
    }
    async fn stored(&self) -> Vec<u64> {
        let stdout = std::fs::read_to_string(&self.0).unwrap();
        stored_numbers(after_begin(&stdout))
    }
    fn redelivery(&self) -> Redelivery {
        Redelivery::AtLeastOnce
    }
}

/// The `n` of each printed suite message, skipping the lines libtest prints.
fn stored_numbers(printed: &str) -> Vec<u64> {
    printed
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|v| v["n"].as_u64().expect("a suite message"))
        .collect()
}

#[tokio::test]
async fn conforms_with_stdout_in_a_file() {
    const TEST: &str = "conforms_with_stdout_in_a_file";
    if is_child(TEST) {
        mark(BEGIN);
        let path = PathBuf::from(std::env::var(STDOUT_FILE).unwrap());
        let report = check_sink(&StdoutFile(path)).await;
        mark(END);
        assert_eq!(report.passed.len(), 3, "{report}");
        return;
    }
    let mut times = BTreeMap::new();
    for n in stored_numbers(&run_in_child(TEST)) {
        *times.entry(n).or_insert(0) += 1;
    }
    // Each message once, and the batch delivered again after the crash twice: the
    // at-least-once the README describes.
    let expected: BTreeMap<u64, i32> = (1..=100).map(|n| (n, if n > 50 { 2 } else { 1 })).collect();
    assert_eq!(times, expected);
}
