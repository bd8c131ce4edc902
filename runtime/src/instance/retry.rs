//! The one retry of the runtime: a call that fails in a way the caller calls transient
//! is tried again after an exponential backoff with jitter, until it works, the
//! attempts run out, or the caller cancels. Plugin calls, stream appends and commits,
//! and instance restarts all go through [`retry!`](crate::retry).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Attempts in all (the first call included) before giving up.
    pub max_attempts: u32,
    /// An attempt that lasted at least this long was healthy: the count starts afresh
    /// (for restarts, where an attempt is a whole run).
    pub healthy_after: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            max_attempts: 10,
            healthy_after: None,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): doubling from
    /// `initial` up to `max`, then a random point in its upper half, so instances that
    /// failed together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let half = exp / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }
}

/// What the caller makes of one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transient: worth another attempt.
    Retry,
    /// Permanent: give up at once.
    Fail,
}

/// Judges failures, and hears about each wait (to log it, count it, or show it in the
/// instance's status). Any `FnMut(&E) -> Verdict` is a classifier.
pub trait Classify<E> {
    /// Whether the failure is worth another attempt.
    fn classify(&mut self, error: &E) -> Verdict;
    /// The call failed for the `attempt`-th time and is tried again after `delay`.
    fn retrying(&mut self, error: &E, attempt: u32, delay: Duration) {
        let _ = (error, attempt, delay);
    }
}

impl<E, F: FnMut(&E) -> Verdict> Classify<E> for F {
    fn classify(&mut self, error: &E) -> Verdict {
        self(error)
    }
}

/// Why a retried call gave up.
#[derive(Debug, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// `cancel` fired while waiting to try again.
    Cancelled,
    /// The failure was permanent.
    Permanent(E),
    /// Every attempt failed; the last failure.
    Exhausted {
        /// The last failure.
        error: E,
        /// Attempts made.
        attempts: u32,
    },
}

/// What to do after one attempt.
#[derive(Debug)]
pub enum Next<T, E> {
    /// It worked.
    Done(T),
    /// Try again (the backoff has been waited out).
    Again,
    /// Stop trying.
    GaveUp(GaveUp<E>),
}

/// The state of one retried call: which attempt it is, and the decision after each.
/// Use it through [`retry!`](crate::retry), which runs the attempts.
pub struct Retry<'a, C> {
    policy: &'a RetryPolicy,
    classify: C,
    cancel: &'a CancellationToken,
    attempt: u32,
    began: tokio::time::Instant,
}

impl<'a, C> Retry<'a, C> {
    /// A call about to make its first attempt.
    pub fn new(policy: &'a RetryPolicy, classify: C, cancel: &'a CancellationToken) -> Self {
        Self {
            policy,
            classify,
            cancel,
            attempt: 0,
            began: tokio::time::Instant::now(),
        }
    }

    /// Starts the next attempt; returns its number (from 1).
    pub fn begin(&mut self) -> u32 {
        self.attempt += 1;
        self.began = tokio::time::Instant::now();
        self.attempt
    }

    /// Judges the attempt's outcome; for a transient failure, waits out the backoff
    /// (or the cancel) before answering [`Next::Again`].
    pub async fn judge<T, E>(&mut self, outcome: Result<T, E>) -> Next<T, E>
    where
        C: Classify<E>,
    {
        let error = match outcome {
            Ok(value) => return Next::Done(value),
            Err(error) => error,
        };
        if self.classify.classify(&error) == Verdict::Fail {
            return Next::GaveUp(GaveUp::Permanent(error));
        }
        if self
            .policy
            .healthy_after
            .is_some_and(|h| self.began.elapsed() >= h)
        {
            self.attempt = 1;
        }
        if self.attempt >= self.policy.max_attempts {
            return Next::GaveUp(GaveUp::Exhausted {
                error,
                attempts: self.attempt,
            });
        }
        let delay = self.policy.delay(self.attempt);
        self.classify.retrying(&error, self.attempt, delay);
        tokio::select! {
            _ = self.cancel.cancelled() => Next::GaveUp(GaveUp::Cancelled),
            _ = tokio::time::sleep(delay) => Next::Again,
        }
    }

    /// The classifier, to read what it gathered.
    pub fn classifier(&mut self) -> &mut C {
        &mut self.classify
    }
}

/// `retry!(policy, classify, cancel, |attempt| op)`: evaluates the future `op` until it
/// succeeds; transient failures (as `classify` judges them) are tried again after the
/// policy's backoff. Evaluates to `Result<T, GaveUp<E>>`. The wait, not the call, is
/// cancellable: a call in progress is the caller's to bound (e.g. with a deadline).
///
/// A macro rather than a function taking a closure, so `op` may borrow the caller's
/// state mutably on each attempt and the task stays `Send`.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use ld_connectord::instance::{GaveUp, RetryPolicy, Verdict};
/// let policy = RetryPolicy { initial: std::time::Duration::from_millis(1), ..Default::default() };
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let got: Result<u32, GaveUp<&str>> =
///     ld_connectord::retry!(&policy, |_: &&str| Verdict::Retry, &cancel, |attempt| async move {
///         if attempt < 3 { Err("not yet") } else { Ok(attempt) }
///     });
/// assert_eq!(got, Ok(3));
/// # });
/// ```
#[macro_export]
macro_rules! retry {
    ($policy:expr, $classify:expr, $cancel:expr, |$attempt:ident| $op:expr) => {{
        let policy = $policy;
        let mut retry = $crate::instance::Retry::new(&policy, $classify, $cancel);
        loop {
            let $attempt = retry.begin();
            match retry.judge($op.await).await {
                $crate::instance::Next::Done(value) => break Ok(value),
                $crate::instance::Next::Again => {}
                $crate::instance::Next::GaveUp(why) => break Err(why),
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
            max_attempts,
            healthy_after: None,
        }
    }

    #[test]
    fn delays_double_with_jitter_and_are_capped() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: 5,
            healthy_after: None,
        };
        for _ in 0..100 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(p.delay(30) <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let got: Result<_, GaveUp<u32>> =
            crate::retry!(&quick(5), |_: &u32| Verdict::Retry, &cancel, |n| async {
                calls += 1;
                if n < 4 {
                    Err(n)
                } else {
                    Ok("done")
                }
            });
        assert_eq!(got, Ok("done"));
        assert_eq!(calls, 4);
    }

    #[tokio::test]
    async fn permanent_failures_end_at_once() {
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let got: Result<(), _> =
            crate::retry!(&quick(5), |_: &&str| Verdict::Fail, &cancel, |_n| async {
                calls += 1;
                Err("bad config")
            });
        assert_eq!(got, Err(GaveUp::Permanent("bad config")));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn attempts_run_out_with_the_last_error() {
        let cancel = CancellationToken::new();
        let got: Result<(), _> = crate::retry!(
            &quick(3),
            |_: &u32| Verdict::Retry,
            &cancel,
            |n| async move { Err(n) }
        );
        assert_eq!(
            got,
            Err(GaveUp::Exhausted {
                error: 3,
                attempts: 3
            })
        );
    }

    #[tokio::test]
    async fn cancel_ends_the_wait() {
        let cancel = CancellationToken::new();
        let policy = RetryPolicy {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            max_attempts: 5,
            healthy_after: None,
        };
        let waiting = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let got: Result<(), _> =
                    crate::retry!(&policy, |_: &()| Verdict::Retry, &cancel, |_n| async {
                        Err::<(), ()>(())
                    });
                got
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        cancel.cancel();
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ends when cancelled")
            .unwrap();
        assert_eq!(got, Err(GaveUp::Cancelled));
    }

    #[tokio::test]
    async fn a_healthy_attempt_starts_the_count_afresh() {
        let cancel = CancellationToken::new();
        let policy = RetryPolicy {
            healthy_after: Some(Duration::from_millis(30)),
            ..quick(2)
        };
        // Attempts 1..=4 each run long enough to count as healthy, so two attempts
        // in all would not be enough without the reset; the fifth succeeds.
        let mut runs = 0;
        let got: Result<_, GaveUp<()>> =
            crate::retry!(&policy, |_: &()| Verdict::Retry, &cancel, |_n| async {
                runs += 1;
                if runs < 5 {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    Err(())
                } else {
                    Ok(runs)
                }
            });
        assert_eq!(got, Ok(5));
    }

    #[tokio::test]
    async fn the_classifier_hears_each_wait() {
        struct Seen(Vec<(u32, u32)>);
        impl Classify<u32> for &mut Seen {
            fn classify(&mut self, _: &u32) -> Verdict {
                Verdict::Retry
            }
            fn retrying(&mut self, error: &u32, attempt: u32, _: Duration) {
                self.0.push((*error, attempt));
            }
        }
        let mut seen = Seen(Vec::new());
        let cancel = CancellationToken::new();
        let _: Result<(), _> =
            crate::retry!(
                &quick(3),
                &mut seen,
                &cancel,
                |n| async move { Err(n * 10) }
            );
        assert_eq!(seen.0, vec![(10, 1), (20, 2)]);
    }
}
