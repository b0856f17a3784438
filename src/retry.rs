//! Which failures are worth another attempt, and how long to wait before it.
//!
//! This is the only retry layer: the AWS SDK's own retries are switched off in
//! `store::s3`, so the attempts a user configures are the attempts made. Delays
//! follow "exponential backoff with full jitter" (a uniform draw below a
//! doubling ceiling, as AWS's architecture blog recommends), and a server's
//! `Retry-After` replaces the draw, capped by the longest delay.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use serde::{Deserialize, Serialize};

/// Exponential backoff with full jitter for transient failures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts: u32,
    /// Ceiling of the first delay; each retry doubles it.
    pub base_delay: Duration,
    /// Largest delay, and the most a server's Retry-After is honoured.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// An error that knows whether trying again could help.
pub trait Transient {
    /// True for failures that may pass on their own: timeouts, resets, 5xx, throttling.
    fn is_transient(&self) -> bool;

    /// How long the server asked us to wait, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
/// Returns the last result and the number of attempts made.
pub async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    op: F,
) -> (Result<T, E>, u32)
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let attempts = AtomicU32::new(0);
    let mut op = op;
    let result = (|| {
        attempts.fetch_add(1, Ordering::Relaxed);
        op()
    })
    .retry(*policy)
    .when(|e: &E| e.is_transient())
    .adjust(|e: &E, delay| delay.map(|d| e.retry_after().map_or(d, |ra| ra.min(policy.max_delay))))
    .notify(|e: &E, delay| {
        crate::metrics::get().retried(what);
        tracing::debug!(
            attempt = attempts.load(Ordering::Relaxed),
            delay_ms = delay.as_millis() as u64,
            error = %e,
            "{what}: transient failure, retrying"
        );
    })
    .await;
    (result, attempts.load(Ordering::Relaxed))
}

impl BackoffBuilder for RetryPolicy {
    type Backoff = FullJitter;

    fn build(self) -> FullJitter {
        FullJitter {
            policy: self,
            retries: 0,
            rng: fastrand::Rng::new(),
        }
    }
}

/// Delays for retry n (from 0): uniform in `[0, min(max, base * 2^n)]`.
#[derive(Debug)]
pub struct FullJitter {
    policy: RetryPolicy,
    retries: u32,
    rng: fastrand::Rng,
}

impl Iterator for FullJitter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retries + 1 >= self.policy.attempts {
            return None;
        }
        let ceiling = self
            .policy
            .base_delay
            .saturating_mul(1u32 << self.retries.min(20))
            .min(self.policy.max_delay);
        self.retries += 1;
        Some(ceiling.mul_f64(self.rng.f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, base_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn delays_stay_under_a_doubling_ceiling() {
        let delays: Vec<_> = policy(6, 100, 1000).build().collect();
        assert_eq!(delays.len(), 5, "6 attempts means 5 retries");
        for (n, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis((100u64 << n).min(1000));
            assert!(*d <= ceiling, "retry {n}: {d:?} > {ceiling:?}");
        }
    }

    #[test]
    fn zero_base_delay_means_no_waiting() {
        assert!(policy(4, 0, 0).build().all(|d| d.is_zero()));
    }

    #[derive(Debug)]
    struct Flaky {
        transient: bool,
        retry_after: Option<Duration>,
    }
    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "flaky")
        }
    }
    impl Transient for Flaky {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let mut calls = 0;
        let (result, attempts) = with_retry(&policy(5, 0, 0), "test", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Flaky {
                        transient: true,
                        retry_after: None,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let (result, attempts) = with_retry(&policy(5, 0, 0), "test", || async {
            Err::<(), _>(Flaky {
                transient: false,
                retry_after: None,
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1);
    }

    #[tokio::test]
    async fn gives_up_after_the_configured_attempts() {
        let (result, attempts) = with_retry(&policy(3, 0, 0), "test", || async {
            Err::<(), _>(Flaky {
                transient: true,
                retry_after: None,
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_up_to_the_cap() {
        let start = tokio::time::Instant::now();
        let (_, attempts) = with_retry(&policy(2, 0, 5_000), "test", || async {
            Err::<(), _>(Flaky {
                transient: true,
                retry_after: Some(Duration::from_secs(60)),
            })
        })
        .await;
        assert_eq!(attempts, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
