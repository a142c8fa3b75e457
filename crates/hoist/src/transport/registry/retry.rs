//! When and how long to wait before trying a registry request again.
//!
//! Connection errors, `429 Too Many Requests` and `5xx` are retried up to `--retry-times` times with
//! exponential backoff (200 ms doubling, at most 10 s, or the registry's `Retry-After` when shorter than
//! a minute). Other statuses are answers, not accidents, and are not retried.

use std::time::Duration;

/// How many times to retry and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub times: u32,
    /// The first wait; doubles each time.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl RetryPolicy {
    /// A policy with `times` retries and the default waits.
    pub fn new(times: u32) -> Self {
        RetryPolicy {
            times,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }

    /// The wait before retry number `attempt` (0 for the first retry), honouring `Retry-After` seconds.
    pub fn delay(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        if let Some(s) = retry_after.filter(|s| *s <= 60) {
            return Duration::from_secs(s);
        }
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The tries of one operation under a [`RetryPolicy`]: the one retry loop's counter, used by every
/// request ([`super::client`]) and every resume, re-sent chunk and new upload session above them
/// ([`super::pull`], [`super::push`]), so that all count, wait and log alike.
#[derive(Debug, Clone, Copy)]
pub struct Attempts {
    policy: RetryPolicy,
    done: u32,
}

impl Attempts {
    /// No retry made yet under `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Attempts { policy, done: 0 }
    }

    /// True when the policy's retries are spent.
    pub fn is_exhausted(&self) -> bool {
        self.done >= self.policy.times
    }

    /// Another try of `what`: false when the retries are spent; otherwise logs it at info level
    /// (`-v`), waits the policy's delay (or `retry_after` seconds, see [`RetryPolicy::delay`]),
    /// counts it and returns true.
    pub fn again(&mut self, what: impl std::fmt::Display, retry_after: Option<u64>) -> bool {
        if self.is_exhausted() {
            return false;
        }
        let wait = self.policy.delay(self.done, retry_after);
        self.done += 1;
        tracing::info!(
            "retrying {what} in {wait:?} (retry {} of {})",
            self.done,
            self.policy.times
        );
        std::thread::sleep(wait);
        true
    }
}

/// True for statuses worth another try: 408, 429 and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// True for transport errors worth another try (connection refused or reset, timeouts, a response cut
/// short); false for errors in building the request.
pub(crate) fn is_retryable_error(err: &reqwest::Error) -> bool {
    if err.is_builder() || err.is_redirect() || err.is_decode() {
        return false;
    }
    // A refused certificate or failed handshake will fail the same way next time.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return false;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return false;
        }
        cur = e.source();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::new(5);
        assert_eq!(p.delay(0, None), Duration::from_millis(200));
        assert_eq!(p.delay(1, None), Duration::from_millis(400));
        assert_eq!(p.delay(10, None), Duration::from_secs(10));
        assert_eq!(p.delay(40, None), Duration::from_secs(10));
        assert_eq!(p.delay(0, Some(3)), Duration::from_secs(3));
        assert_eq!(p.delay(0, Some(3600)), Duration::from_millis(200));
    }

    #[test]
    fn attempts_count_to_the_policy() {
        let mut a = Attempts::new(RetryPolicy {
            times: 2,
            base: Duration::ZERO,
            max: Duration::ZERO,
        });
        assert!(!a.is_exhausted());
        assert!(a.again("x", None));
        assert!(a.again("x", None));
        assert!(a.is_exhausted());
        assert!(!a.again("x", None));
        assert!(!Attempts::new(RetryPolicy::new(0)).again("x", None));
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 416] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
