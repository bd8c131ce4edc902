//! The behaviour every connector must show, checked in one call per plugin:
//! [`check_sink`] and [`check_source`]. Describe where your plugin writes or reads with
//! a [`SinkTarget`] or [`SourceTarget`]; each check that fails panics with its name and
//! what was wrong, so a failing check fails the `#[tokio::test]` that ran it.
//!
//! What is checked:
//!
//! | check | sinks | sources |
//! | --- | --- | --- |
//! | a wrong config is an `invalid_config` error, from `new` or `open` | yes | yes |
//! | an unreachable system is a `transient` error (when the target gives such a config) | yes | yes |
//! | `close` after a failed `open` (or first call) is safe (no panic) | yes | yes |
//! | what `flush` says is durable is stored (by default: each batch `consume` accepted; skipped when the target cannot read back) | yes | - |
//! | a batch delivered again after a crash is stored as [`Redelivery`] promises | yes | - |
//! | after a crash, the saved state resumes right after the last committed message: no repeat, no gap | - | yes |
//! | after a clean restart, new records follow on | - | yes |

use std::{collections::BTreeMap, future::Future};

use super::{SinkHarness, SourceHarness, TestBatch, TestMessage};
use crate::{ErrorKind, PluginError, Sink, Source};

/// What a sink under test writes to, for [`check_sink`].
///
/// The suite writes JSON messages `{"n": N, "text": "message N"}` with message id `N`
/// (and offset `N - 1`), N from 1 on.
pub trait SinkTarget: Sync {
    /// The sink type.
    type Sink: Sink;

    /// A `plugin_config` writing to a destination that is empty when the check starts
    /// (a fresh table, index, directory).
    fn config(&self) -> serde_json::Value;

    /// A `plugin_config` the plugin must refuse as invalid (a wrong type, a missing
    /// field, a value out of range).
    fn invalid_config(&self) -> serde_json::Value;

    /// A `plugin_config` pointing at a system that cannot be reached (a closed port),
    /// or `None` when the sink has no external system.
    fn unreachable_config(&self) -> Option<serde_json::Value>;

    /// The `n` of every message stored in the destination of [`Self::config`], as
    /// often as it is stored.
    fn stored(&self) -> impl Future<Output = Vec<u64>> + Send;

    /// What a batch delivered again after a crash leaves. For a sink that holds
    /// batches, the redelivered batch reaches the sink's own deduplication only when
    /// the config makes each batch durable at once (e.g. a commit per batch); with a
    /// held batch the crash simply loses it before it was written.
    fn redelivery(&self) -> Redelivery;

    /// Whether [`Self::stored`] can read the destination back. A sink whose output
    /// cannot be read (it only counts, or writes where a test cannot look) says `false`:
    /// the checks of what is stored are skipped, the others still run.
    fn can_read_back(&self) -> bool {
        true
    }
}

/// What a sink promises when the host delivers a batch again (after a crash between
/// the write and the offset commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Each message is stored once however often it is delivered (upserts, document
    /// ids derived from the offset, a sink that tracks what it committed).
    ExactlyOnce,
    /// A message delivered twice may be stored twice (appends).
    AtLeastOnce,
}

/// What a source under test reads, for [`check_source`].
pub trait SourceTarget: Sync {
    /// The source type.
    type Source: Source;

    /// A `plugin_config` reading what [`Self::produce`] makes available, from the
    /// start.
    fn config(&self) -> serde_json::Value;

    /// A `plugin_config` the plugin must refuse as invalid.
    fn invalid_config(&self) -> serde_json::Value;

    /// A `plugin_config` pointing at a system that cannot be reached, or `None` when
    /// the source has no external system.
    fn unreachable_config(&self) -> Option<serde_json::Value>;

    /// Makes records numbered `from..=to` available to the source (rows inserted,
    /// files written). A generator whose messages are numbered by themselves does
    /// nothing here. The first call comes before the source is built: a source that
    /// sees only changes made after it starts (a replication slot) needs its target to
    /// create that starting point first.
    fn produce(&self, from: u64, to: u64) -> impl Future<Output = ()> + Send;

    /// The record number (from 1) a message of the source carries.
    fn number(&self, message: &TestMessage) -> u64;

    /// How many records the resume check reads (half before the crash, the rest
    /// after), then 50 more after a clean restart. Lower it for a source that waits
    /// between polls.
    fn records(&self) -> u64 {
        200
    }
}

/// The checks that passed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Each passed check, by name.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with why (e.g. no unreachable config).
    pub skipped: Vec<(&'static str, &'static str)>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for check in &self.passed {
            writeln!(f, "ok    {check}")?;
        }
        for (check, why) in &self.skipped {
            writeln!(f, "skip  {check}: {why}")?;
        }
        Ok(())
    }
}

fn fail(check: &str, what: impl std::fmt::Display) -> ! {
    panic!("conformance check `{check}` failed: {what}")
}

/// The suite's messages `from..=to`: `{"n": N, "text": "message N"}` at offset `N - 1`.
pub fn numbered_batch(from: u64, to: u64) -> TestBatch {
    TestBatch::json(
        (from..=to).map(|n| serde_json::json!({"n": n, "text": format!("message {n}")})),
    )
    .starting_at(from - 1)
}

/// Runs every sink check against `target`; panics naming the first that fails.
///
/// ```no_run
/// use ld_plugin_api::testing::conformance::{check_sink, Redelivery, SinkTarget};
/// # use ld_plugin_api::{InstanceContext, PluginError, Sink, SinkBatch};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)] struct FileConfig { path: String }
/// # struct FileSink;
/// # impl Sink for FileSink {
/// #     type Config = FileConfig;
/// #     fn new(_: FileConfig, _: &InstanceContext) -> Result<Self, PluginError> { Ok(FileSink) }
/// #     async fn consume(&mut self, _: SinkBatch<'_>) -> Result<(), PluginError> { Ok(()) }
/// # }
///
/// struct InTempFile(std::path::PathBuf);
///
/// impl SinkTarget for InTempFile {
///     type Sink = FileSink;
///     fn config(&self) -> serde_json::Value { serde_json::json!({"path": self.0}) }
///     fn invalid_config(&self) -> serde_json::Value { serde_json::json!({"path": 7}) }
///     fn unreachable_config(&self) -> Option<serde_json::Value> { None }
///     async fn stored(&self) -> Vec<u64> {
///         let text = std::fs::read_to_string(&self.0).unwrap_or_default();
///         text.lines().map(|l| l.parse().unwrap()).collect()
///     }
///     fn redelivery(&self) -> Redelivery { Redelivery::AtLeastOnce }
/// }
///
/// #[tokio::test]
/// async fn file_sink_conforms() {
///     let dir = tempfile::tempdir().unwrap();
///     let report = check_sink(&InTempFile(dir.path().join("out"))).await;
///     println!("{report}");
/// }
/// # fn main() {}
/// ```
pub async fn check_sink<T: SinkTarget>(target: &T) -> Report {
    let mut report = Report::default();
    let passed = refuses_invalid_config(
        "sink: a wrong config is invalid_config",
        SinkHarness::new::<T::Sink>(target.invalid_config()),
    )
    .await;
    report.passed.push(passed.name(
        "sink: a wrong config is invalid_config (from new)",
        "sink: a wrong config is invalid_config (from open); close after a failed open is safe",
    ));

    match target.unreachable_config() {
        None => report.skipped.push((
            "sink: an unreachable system is transient",
            "the target has no unreachable config",
        )),
        Some(config) => {
            let check = "sink: an unreachable system is transient";
            unreachable_is_transient(check, SinkHarness::new::<T::Sink>(config)).await;
            report
                .passed
                .push("sink: an unreachable system is transient; close after the failure is safe");
        }
    }

    if !target.can_read_back() {
        for check in [
            "sink: what flush says is durable is stored",
            "sink: a batch delivered again after a crash",
        ] {
            report
                .skipped
                .push((check, "the target cannot read the destination back"));
        }
        return report;
    }

    let check = "sink: what flush says is durable is stored";
    let mut h = SinkHarness::new::<T::Sink>(target.config())
        .unwrap_or_else(|e| fail(check, format!("`new`: {e}")));
    h.open()
        .await
        .unwrap_or_else(|e| fail(check, format!("`open`: {e}")));
    let first = numbered_batch(1, 50);
    let rejected = h
        .consume(&first)
        .await
        .unwrap_or_else(|e| fail(check, format!("`consume`: {e}")));
    if !rejected.is_empty() {
        fail(
            check,
            format!("valid JSON messages were rejected: {rejected:?}"),
        );
    }
    if h.durable() < h.consumed() {
        // A sink that holds batches: stopping (a closing flush, then close) must write
        // them. The checks go on with a new instance, as after a restart.
        h.close()
            .await
            .unwrap_or_else(|e| fail(check, format!("closing `flush` or `close`: {e}")));
        if h.durable() < h.consumed() {
            fail(
                check,
                format!("a closing flush left batch {} not durable", h.consumed()),
            );
        }
        h.crash_and_restart()
            .await
            .unwrap_or_else(|e| fail(check, format!("a new instance: {e}")));
    }
    let stored = counts(target.stored().await);
    for n in 1..=50 {
        if !stored.contains_key(&n) {
            fail(check, format!("message {n} is durable but not stored"));
        }
    }
    report.passed.push(check);

    let check = "sink: a batch delivered again after a crash";
    let second = numbered_batch(51, 100);
    h.consume(&second)
        .await
        .unwrap_or_else(|e| fail(check, format!("`consume`: {e}")));
    h.crash_and_restart()
        .await
        .unwrap_or_else(|e| fail(check, format!("restart: {e}")));
    h.consume(&second)
        .await
        .unwrap_or_else(|e| fail(check, format!("`consume` again: {e}")));
    h.close()
        .await
        .unwrap_or_else(|e| fail(check, format!("`close`: {e}")));
    let stored = counts(target.stored().await);
    for n in 1..=100 {
        match (stored.get(&n).copied().unwrap_or(0), target.redelivery()) {
            (0, _) => fail(check, format!("message {n} is not stored")),
            (1, _) | (_, Redelivery::AtLeastOnce) => {}
            (times, Redelivery::ExactlyOnce) => fail(
                check,
                format!("message {n} is stored {times} times (the target promises exactly once)"),
            ),
        }
    }
    if let Some(n) = stored.keys().find(|n| !(1..=100).contains(*n)) {
        fail(check, format!("message {n} is stored but was never sent"));
    }
    report.passed.push(match target.redelivery() {
        Redelivery::ExactlyOnce => "sink: a batch delivered again after a crash is stored once",
        Redelivery::AtLeastOnce => "sink: a batch delivered again after a crash loses nothing",
    });
    report
}

/// Runs every source check against `target`; panics naming the first that fails.
pub async fn check_source<T: SourceTarget>(target: &T) -> Report {
    let mut report = Report::default();
    let passed = refuses_invalid_config(
        "source: a wrong config is invalid_config",
        SourceHarness::new::<T::Source>(target.invalid_config()),
    )
    .await;
    report.passed.push(passed.name(
        "source: a wrong config is invalid_config (from new)",
        "source: a wrong config is invalid_config (from open); close after a failed open is safe",
    ));

    match target.unreachable_config() {
        None => report.skipped.push((
            "source: an unreachable system is transient",
            "the target has no unreachable config",
        )),
        Some(config) => {
            let check = "source: an unreachable system is transient";
            unreachable_is_transient(check, SourceHarness::new::<T::Source>(config)).await;
            report.passed.push(
                "source: an unreachable system is transient; close after the failure is safe",
            );
        }
    }

    let total = target.records().max(2);
    let check = "source: after a crash the saved state resumes with no repeat and no gap";
    target.produce(1, total).await;
    let mut h = SourceHarness::new::<T::Source>(target.config())
        .unwrap_or_else(|e| fail(check, format!("`new`: {e}")));
    h.open()
        .await
        .unwrap_or_else(|e| fail(check, format!("`open`: {e}")));
    let before: Vec<u64> = h
        .take(total as usize / 2)
        .await
        .unwrap_or_else(|e| fail(check, format!("polling: {e}")))
        .iter()
        .map(|m| target.number(m))
        .collect();
    expect_run(check, "before the crash", &before, 1);
    let last = *before.last().expect("taken");
    if last < total {
        // Polled but never committed: may come again, must not be skipped.
        h.poll()
            .await
            .unwrap_or_else(|e| fail(check, format!("polling: {e}")));
    }
    h.crash_and_restart()
        .await
        .unwrap_or_else(|e| fail(check, format!("restart from the saved state: {e}")));
    let after: Vec<u64> = h
        .take((total - last) as usize)
        .await
        .unwrap_or_else(|e| fail(check, format!("polling after the restart: {e}")))
        .iter()
        .map(|m| target.number(m))
        .collect();
    expect_run(check, "after the crash", &after, last + 1);
    report.passed.push(check);

    let check = "source: after a clean restart new records follow on";
    let end = *after.last().unwrap_or(&last);
    h.restart()
        .await
        .unwrap_or_else(|e| fail(check, format!("restart: {e}")));
    target.produce(end + 1, end + 50).await;
    let next: Vec<u64> = h
        .take(50)
        .await
        .unwrap_or_else(|e| fail(check, format!("polling: {e}")))
        .iter()
        .map(|m| target.number(m))
        .collect();
    expect_run(check, "after the restart", &next, end + 1);
    h.close()
        .await
        .unwrap_or_else(|e| fail(check, format!("`close`: {e}")));
    report.passed.push(check);
    report
}

/// A sink or source harness, for the checks both sides share.
trait Lifecycle {
    async fn open(&mut self) -> Result<(), PluginError>;
    /// The first call that needs the external system after `open`: a sink's `consume`
    /// of one message, a source's `poll`.
    async fn first_call(&mut self) -> Result<(), PluginError>;
    async fn close(&mut self) -> Result<(), PluginError>;
}

impl Lifecycle for SinkHarness {
    async fn open(&mut self) -> Result<(), PluginError> {
        SinkHarness::open(self).await
    }
    async fn first_call(&mut self) -> Result<(), PluginError> {
        self.consume(&numbered_batch(1, 1)).await.map(drop)
    }
    async fn close(&mut self) -> Result<(), PluginError> {
        SinkHarness::close(self).await
    }
}

impl Lifecycle for SourceHarness {
    async fn open(&mut self) -> Result<(), PluginError> {
        SourceHarness::open(self).await
    }
    async fn first_call(&mut self) -> Result<(), PluginError> {
        self.poll().await.map(drop)
    }
    async fn close(&mut self) -> Result<(), PluginError> {
        SourceHarness::close(self).await
    }
}

/// With an unreachable system, `open` or the first call after it fails with a
/// `transient` error, and `close` after it does not panic.
async fn unreachable_is_transient<H: Lifecycle>(check: &str, built: Result<H, PluginError>) {
    let mut harness =
        built.unwrap_or_else(|e| fail(check, format!("`new` refused the config: {e}")));
    let error = match harness.open().await {
        Err(e) => e,
        Ok(()) => match harness.first_call().await {
            Err(e) => e,
            Ok(()) => fail(check, "`open` and the first call after it succeeded"),
        },
    };
    expect_kind(check, &error, ErrorKind::Transient);
    close_is_safe(check, harness.close().await);
}

/// Where a wrong config was refused.
enum RefusedBy {
    New,
    Open,
}

impl RefusedBy {
    fn name(self, by_new: &'static str, by_open: &'static str) -> &'static str {
        match self {
            RefusedBy::New => by_new,
            RefusedBy::Open => by_open,
        }
    }
}

/// A wrong config fails `new` or `open` with `invalid_config`, and `close` after a
/// failed `open` does not panic.
async fn refuses_invalid_config<H: Lifecycle>(
    check: &str,
    built: Result<H, PluginError>,
) -> RefusedBy {
    let mut harness = match built {
        Err(e) => {
            expect_kind(check, &e, ErrorKind::InvalidConfig);
            return RefusedBy::New;
        }
        Ok(h) => h,
    };
    match harness.open().await {
        Err(e) => expect_kind(check, &e, ErrorKind::InvalidConfig),
        Ok(()) => fail(check, "`new` and `open` accepted it"),
    }
    close_is_safe(check, harness.close().await);
    RefusedBy::Open
}

fn expect_kind(check: &str, error: &PluginError, kind: ErrorKind) {
    if error.kind() != kind {
        fail(
            check,
            format!("the error is {:?}, not {:?}: {error}", error.kind(), kind),
        );
    }
}

fn close_is_safe(check: &str, closed: Result<(), PluginError>) {
    if let Err(e) = closed {
        if e.kind() == ErrorKind::Panicked {
            fail(check, format!("`close` after a failed call panicked: {e}"));
        }
    }
}

/// `numbers` is `first, first + 1, ...` without a repeat or a gap.
fn expect_run(check: &str, when: &str, numbers: &[u64], first: u64) {
    for (i, n) in numbers.iter().enumerate() {
        let want = first + i as u64;
        if *n != want {
            fail(
                check,
                format!(
                    "{when}, message {} is record {n}, expected record {want}",
                    i + 1
                ),
            );
        }
    }
}

fn counts(numbers: Vec<u64>) -> BTreeMap<u64, u32> {
    let mut out = BTreeMap::new();
    for n in numbers {
        *out.entry(n).or_insert(0) += 1;
    }
    out
}
