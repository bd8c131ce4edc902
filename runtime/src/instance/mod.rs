//! Instance tasks: one tokio task per source or sink instance, moving batches between
//! its plugin and the stream with at-least-once delivery.

pub mod dead_letter;
mod metrics;
mod retry;
mod shared_checkpoint;
mod sink_task;
mod source_task;
mod start;

use std::time::Duration;

use ld_plugin_api::PluginError;
use tokio_util::sync::CancellationToken;

pub use metrics::{Histogram, InstanceMetrics, BUCKETS, ERROR_KINDS};
pub use retry::{Classify, GaveUp, Next, Retry, RetryPolicy, Verdict};
pub use shared_checkpoint::{
    LeasedCheckpoints, SharedCheckpointError, SharedCheckpoints, SharedState,
};
pub use sink_task::{run_sink, SinkTask};
pub use source_task::{run_source, SourceTask};
pub use start::{start_instance, InstanceSpec, RunningInstance, StartError, TaskContext};

use crate::{state::StateError, stream::StreamError, transform::ApplyError};

/// Why an instance task stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The plugin failed (after retries, for transient failures).
    #[error("{call} failed: {error}")]
    Plugin {
        /// The plugin call.
        call: &'static str,
        /// What the plugin said.
        error: PluginError,
    },
    /// A plugin call did not finish in time.
    #[error("{call} did not finish within {after:?}")]
    Timeout {
        /// The plugin call.
        call: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The stream side failed.
    #[error("stream: {0}")]
    Stream(#[from] StreamError),
    /// A transform could not process a message.
    #[error("{0}")]
    Transform(#[from] ApplyError),
    /// The local state store failed.
    #[error("{0}")]
    State(#[from] StateError),
    /// The config does not fit this task.
    #[error("config: {0}")]
    Config(String),
    /// Another node holds the source's lease now; this node must not run it.
    #[error("{0}")]
    Fenced(String),
    /// The sink plugin rejected a message and the instance tolerates no such error.
    #[error("the sink rejected the message at offset {offset} of {topic} partition {partition}: {reason} (errors.tolerance is \"none\"; with \"all\" and a dead_letter topic such messages are set aside and the rest flows)")]
    Rejected {
        /// Where the message came from.
        topic: crate::stream::TopicRef,
        /// Its partition.
        partition: u32,
        /// Its offset.
        offset: u64,
        /// What the plugin said.
        reason: String,
    },
}

/// Deadlines and retries of an instance task's calls.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Longest a single plugin call may take before it is abandoned.
    pub call_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}

/// The kind of a plugin's error, as the errors metric counts it.
pub(crate) fn plugin_error_kind(error: &PluginError) -> &'static str {
    match error.kind() {
        ld_plugin_api::ErrorKind::InvalidConfig => "plugin_invalid_config",
        _ if error.is_retryable() => "plugin_transient",
        _ => "plugin_fatal",
    }
}

impl TaskError {
    /// The kind of failure, as the errors metric counts it
    /// ([`ERROR_KINDS`]).
    pub fn metric_kind(&self) -> &'static str {
        match self {
            TaskError::Plugin { error, .. } => plugin_error_kind(error),
            TaskError::Timeout { .. } => "timeout",
            TaskError::Stream(_) => "stream",
            TaskError::Transform(_) => "transform",
            TaskError::Rejected { .. } => "rejected",
            TaskError::State(_) => "state",
            TaskError::Config(_) | TaskError::Fenced(_) => "other",
        }
    }

    /// Whether another attempt may succeed: a plugin's retryable error, or a stream
    /// that is unavailable for now.
    pub fn is_transient(&self) -> bool {
        match self {
            TaskError::Plugin { error, .. } => error.is_retryable(),
            TaskError::Stream(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The reason of a failure that persisted, with the number of attempts.
    fn gave_up(self, attempts: u32) -> TaskError {
        match self {
            TaskError::Plugin { call, error } => TaskError::Plugin {
                call,
                error: PluginError::new(
                    error.kind(),
                    format!("{} (gave up after {attempts} attempts)", error.message()),
                ),
            },
            other => TaskError::Config(format!("{other} (gave up after {attempts} attempts)")),
        }
    }
}

/// Classifies the failures of an instance task's calls, counts them, and shows the
/// last one in the instance's status while it is retried.
pub(crate) struct TaskRetry<'a> {
    call: &'static str,
    metrics: &'a InstanceMetrics,
    retried: bool,
}

impl Classify<TaskError> for &mut TaskRetry<'_> {
    fn classify(&mut self, error: &TaskError) -> Verdict {
        self.metrics.error(error.metric_kind());
        if error.is_transient() {
            Verdict::Retry
        } else {
            Verdict::Fail
        }
    }

    fn retrying(&mut self, error: &TaskError, attempt: u32, delay: Duration) {
        self.retried = true;
        self.metrics.retried();
        tracing::warn!(%error, attempt, retry_in = ?delay, "{} failed; retrying", self.call);
        self.metrics
            .set_trouble(Some(format!("retrying {} after: {error}", self.call)));
    }
}

/// Retries of a stream call (append, offset commit) that found the stream backend
/// unavailable: short waits, so that a stream server that is back is used again within
/// seconds; when they run out the run ends, and the instance waits for the stream (see
/// `daemon::manager`).
pub const STREAM_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(2),
    max_attempts: 10,
    healthy_after: None,
};

/// Runs one call of an instance task (`$op`, a future evaluated afresh for each
/// attempt) with the retries of `$retry` (a `&RetryPolicy`): `Ok(Some(value))`, `Ok(None)` when `$cancel`
/// fired while waiting to retry, or the failure with its attempts.
macro_rules! with_retries {
    ($call:expr, $retry:expr, $metrics:expr, $cancel:expr, $op:expr) => {{
        let mut judge = $crate::instance::TaskRetry::new($call, $metrics);
        let result = $crate::retry!($retry, &mut judge, $cancel, |_attempt| $op);
        judge.finish(result)
    }};
}
pub(crate) use with_retries;

impl<'a> TaskRetry<'a> {
    pub(crate) fn new(call: &'static str, metrics: &'a InstanceMetrics) -> Self {
        Self {
            call,
            metrics,
            retried: false,
        }
    }

    /// Clears the status' retry reason and turns the outcome into the task's terms.
    pub(crate) fn finish<T>(
        self,
        result: Result<T, GaveUp<TaskError>>,
    ) -> Result<Option<T>, TaskError> {
        if self.retried {
            self.metrics.set_trouble(None);
        }
        match result {
            Ok(value) => Ok(Some(value)),
            Err(GaveUp::Cancelled) => Ok(None),
            Err(GaveUp::Permanent(error)) => Err(error),
            Err(GaveUp::Exhausted { error, attempts }) => Err(error.gave_up(attempts)),
        }
    }
}

/// One plugin call under the call deadline; a call that overruns it is not retried
/// (the plugin may be hung).
pub(crate) async fn deadline<T>(
    call: &'static str,
    policy: &CallPolicy,
    fut: impl std::future::Future<Output = Result<T, PluginError>>,
) -> Result<T, TaskError> {
    match tokio::time::timeout(policy.call_timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(TaskError::Plugin { call, error }),
        Err(_) => Err(TaskError::Timeout {
            call,
            after: policy.call_timeout,
        }),
    }
}

/// A plugin instance that can be opened (both handle types).
pub(crate) trait OpenPlugin {
    /// See [`crate::plugin_host::SinkHandle::open`].
    fn open(&mut self) -> impl std::future::Future<Output = Result<(), PluginError>> + Send;
}

impl OpenPlugin for crate::plugin_host::SinkHandle {
    fn open(&mut self) -> impl std::future::Future<Output = Result<(), PluginError>> + Send {
        crate::plugin_host::SinkHandle::open(self)
    }
}

impl OpenPlugin for crate::plugin_host::SourceHandle {
    fn open(&mut self) -> impl std::future::Future<Output = Result<(), PluginError>> + Send {
        crate::plugin_host::SourceHandle::open(self)
    }
}

/// Opens the plugin, retrying transient failures with backoff, and marks the instance
/// opened; `Ok(false)` when `cancel` fired while waiting to retry.
pub(crate) async fn open_plugin(
    plugin: &mut impl OpenPlugin,
    policy: &CallPolicy,
    metrics: &InstanceMetrics,
    cancel: &CancellationToken,
) -> Result<bool, TaskError> {
    let opened = with_retries!(
        "open",
        &policy.retry,
        metrics,
        cancel,
        deadline("open", policy, plugin.open())
    )?;
    if opened.is_some() {
        metrics.mark_opened();
    }
    Ok(opened.is_some())
}
