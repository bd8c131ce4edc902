//! Slowing down repeated failed authentication from one address.
//!
//! Each client address may fail authentication `limit` times within a sliding window (a
//! minute by default); after that every call from it that needs a key answers 429 with
//! `Retry-After` (the seconds until its oldest failure leaves the window), *without*
//! looking at the key, so a guessed key cannot be confirmed while blocked. Successful calls
//! do not count. The table is pruned as it grows, so a flood of addresses cannot grow it
//! without bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked before stale entries are pruned.
const PRUNE_AT: usize = 4096;
/// Most addresses tracked at once; beyond it the oldest entries are dropped.
const MAX_TRACKED: usize = 65_536;

/// Failure counts per client address.
pub struct AuthFailures {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
}

impl AuthFailures {
    /// Allows `limit` failures per `window` per address; 0 disables the limit.
    pub fn new(limit: u32, window: Duration) -> Self {
        AuthFailures {
            limit: limit as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` when `addr` is blocked now. `None` stands for an unknown
    /// address (a router mounted without connect info): all such callers share one count.
    pub fn blocked(&self, addr: Option<IpAddr>) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let times = failures.get_mut(&addr)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit {
            return None;
        }
        let oldest = *times.front().expect("non-empty");
        Some(self.window.saturating_sub(now.duration_since(oldest)))
    }

    /// Records a failed authentication from `addr`.
    pub fn record(&self, addr: Option<IpAddr>) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= PRUNE_AT && !failures.contains_key(&addr) {
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let times = failures.entry(addr).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }
}

/// Whole seconds to announce in `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_and_recovers() {
        let limiter = AuthFailures::new(3, Duration::from_millis(200));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.blocked(a).is_none());
            limiter.record(a);
        }
        let wait = limiter.blocked(a).expect("blocked");
        assert!(wait <= Duration::from_millis(200));
        assert!(limiter.blocked(b).is_none(), "other addresses are not");
        std::thread::sleep(Duration::from_millis(220));
        assert!(limiter.blocked(a).is_none(), "the window passed");
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn zero_disables() {
        let limiter = AuthFailures::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            limiter.record(None);
        }
        assert!(limiter.blocked(None).is_none());
    }
}
