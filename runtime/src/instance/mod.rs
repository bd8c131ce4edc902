//! Instance tasks: one tokio task per source or sink instance, moving batches between
//! its plugin and the stream with at-least-once delivery.

mod metrics;
mod retry;
mod sink_task;
mod source_task;
mod start;

use std::time::Duration;

use ld_plugin_api::PluginError;

pub use metrics::{Histogram, InstanceMetrics, BUCKETS};
pub use retry::RetryPolicy;
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

/// What to do after one attempt of a plugin call.
pub(crate) enum Step<T> {
    /// It worked.
    Done(T),
    /// A transient failure: wait this long, then try again.
    Retry(std::time::Duration),
    /// Give up.
    Fail(TaskError),
}

/// Counts the attempts of one plugin call and judges each outcome: transient failures
/// are retried with backoff up to the policy's limit; anything else ends the call.
pub(crate) struct Attempts<'a> {
    policy: &'a CallPolicy,
    call: &'static str,
    metrics: &'a InstanceMetrics,
    attempt: u32,
}

impl<'a> Attempts<'a> {
    pub(crate) fn new(
        policy: &'a CallPolicy,
        call: &'static str,
        metrics: &'a InstanceMetrics,
    ) -> Self {
        Self {
            policy,
            call,
            metrics,
            attempt: 0,
        }
    }

    /// Runs one attempt with the call deadline and judges it.
    pub(crate) async fn attempt<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, PluginError>>,
    ) -> Step<T> {
        self.attempt += 1;
        let error = match tokio::time::timeout(self.policy.call_timeout, call).await {
            Ok(Ok(value)) => return Step::Done(value),
            Ok(Err(error)) => error,
            Err(_) => {
                self.metrics.error();
                return Step::Fail(TaskError::Timeout {
                    call: self.call,
                    after: self.policy.call_timeout,
                });
            }
        };
        self.metrics.error();
        let attempt = self.attempt;
        if !error.is_retryable() || attempt >= self.policy.retry.max_attempts {
            let error = if error.is_retryable() {
                PluginError::new(
                    error.kind(),
                    format!("{} (gave up after {attempt} attempts)", error.message()),
                )
            } else {
                error
            };
            return Step::Fail(TaskError::Plugin {
                call: self.call,
                error,
            });
        }
        let delay = self.policy.retry.delay(attempt);
        tracing::warn!(%error, attempt, retry_in = ?delay, "{} failed; retrying", self.call);
        Step::Retry(delay)
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
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<bool, TaskError> {
    let mut attempts = Attempts::new(policy, "open", metrics);
    loop {
        match attempts.attempt(plugin.open()).await {
            Step::Done(()) => break,
            Step::Fail(e) => return Err(e),
            Step::Retry(delay) => {
                if !pause(delay, cancel).await {
                    return Ok(false);
                }
            }
        }
    }
    metrics.mark_opened();
    Ok(true)
}

/// Sleeps for `delay`; `false` when `cancel` fired first.
pub(crate) async fn pause(
    delay: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
