//! When to try CloudWatch again after a failed call: exponential backoff, reset by the first
//! success. One delivery task writes each stream, so there is no herd to spread and no jitter.

use std::time::Duration;

use tokio::time::Instant;

/// First wait after a failure: long enough not to spin on a refused connection, short enough that
/// a single dropped connection costs nothing a person would notice.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Longest wait: a down endpoint is asked twice a minute, so a recovery is noticed within 30 s.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Attempts before a batch is given up (counted as failed): 0.25 + 0.5 + … + 16 s ≈ 32 s of waiting
/// plus the calls themselves. A blip of a minute loses nothing; a longer outage frees the buffer
/// for newer events (a job's result matters more than old progress lines).
pub(super) const MAX_ATTEMPTS_PER_BATCH: u32 = 8;

/// Exponential backoff state.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    /// Whether a call may be made at `now`.
    pub(super) fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// When the next call may be made, if a failure made us wait.
    pub(super) fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Records a failed call at `now` and returns the wait before the next.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        let delay = delay_after(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(now + delay);
        delay
    }

    /// Records a success: the next failure starts from the first delay again.
    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = None;
    }
}

/// The wait after `failures` earlier consecutive failures.
fn delay_after(failures: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let delays: Vec<u128> = (0..10).map(|n| delay_after(n).as_millis()).collect();
        assert_eq!(
            delays,
            [
                250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000
            ]
        );
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn success_resets_the_wait() {
        let now = Instant::now();
        let mut backoff = Backoff::default();
        assert!(backoff.ready(now));
        backoff.failed(now);
        let second = backoff.failed(now);
        assert_eq!(second, Duration::from_millis(500));
        assert!(!backoff.ready(now));
        assert!(backoff.ready(now + second));
        backoff.succeeded();
        assert!(backoff.ready(now));
        assert_eq!(backoff.failed(now), FIRST_DELAY);
    }
}
