//! When a newly seen disk is ready: its size is known and stable, and udev has stopped adding links.
//!
//! Pure timing logic over samples the caller takes, so it is tested with a hand-made clock. A disk
//! is settled when (a) its size is non-zero and was the same in two reads at least `size_poll`
//! apart, and (b) no link event for it arrived during the last `quiet` period. Waiting is bounded by
//! `limit`: a disk that never settles is given up on, never waited for forever.

use std::time::{Duration, Instant};

/// The timing rules, from [`super::WatchSettings`].
#[derive(Debug, Clone, Copy)]
pub(super) struct SettleRules {
    /// Time without link events before a disk counts as settled.
    pub quiet: Duration,
    /// Minimum time between the two size reads that must agree.
    pub size_poll: Duration,
    /// Longest wait for a disk to settle.
    pub limit: Duration,
}

/// Where a disk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SettleState {
    /// Ready to report, with this size in bytes.
    Settled { size: u64 },
    /// Not yet; look again at this instant.
    Waiting { until: Instant },
    /// It did not settle within the limit; the last size read.
    GaveUp { size: u64 },
}

/// Timing state of one disk between its first link event and its report.
#[derive(Debug, Clone)]
pub(super) struct Settling {
    first_seen: Instant,
    last_link_event: Instant,
    /// The last size read that differed from the one before, and when it was read.
    size_sample: Option<(u64, Instant)>,
}

impl Settling {
    /// Starts with the first link event at `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            first_seen: now,
            last_link_event: now,
            size_sample: None,
        }
    }

    /// When the first link event arrived.
    pub(super) fn first_seen(&self) -> Instant {
        self.first_seen
    }

    /// Another link for this disk appeared: the quiet period starts again.
    pub(super) fn link_event(&mut self, now: Instant) {
        self.last_link_event = self.last_link_event.max(now);
    }

    /// Takes a size read at `now` into account and says where the disk stands.
    pub(super) fn check(&mut self, now: Instant, size: u64, rules: &SettleRules) -> SettleState {
        let sampled_at = match self.size_sample {
            Some((previous, at)) if previous == size => at,
            _ => {
                self.size_sample = Some((size, now));
                now
            }
        };
        let size_due = sampled_at + rules.size_poll;
        let quiet_due = self.last_link_event + rules.quiet;
        if size > 0 && now >= size_due && now >= quiet_due {
            return SettleState::Settled { size };
        }
        let give_up_at = self.first_seen + rules.limit;
        if now >= give_up_at {
            return SettleState::GaveUp { size };
        }
        let mut until = size_due.max(quiet_due);
        if until <= now {
            // Only the size is missing (still zero): read it again after one poll interval.
            until = now + rules.size_poll;
        }
        SettleState::Waiting {
            until: until.min(give_up_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SettleRules = SettleRules {
        quiet: Duration::from_millis(300),
        size_poll: Duration::from_millis(100),
        limit: Duration::from_secs(5),
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_stable_disk_settles_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut s = Settling::new(t0);
        assert_eq!(
            s.check(t0, 4096, &RULES),
            SettleState::Waiting {
                until: t0 + ms(300)
            }
        );
        assert_eq!(
            s.check(t0 + ms(300), 4096, &RULES),
            SettleState::Settled { size: 4096 }
        );
    }

    #[test]
    fn a_new_link_restarts_the_quiet_period() {
        let t0 = Instant::now();
        let mut s = Settling::new(t0);
        s.check(t0, 4096, &RULES);
        s.link_event(t0 + ms(200));
        assert_eq!(
            s.check(t0 + ms(300), 4096, &RULES),
            SettleState::Waiting {
                until: t0 + ms(500)
            }
        );
        assert_eq!(
            s.check(t0 + ms(500), 4096, &RULES),
            SettleState::Settled { size: 4096 }
        );
        assert_eq!(s.first_seen(), t0);
    }

    #[test]
    fn a_changing_size_must_hold_still_for_one_poll_interval() {
        let t0 = Instant::now();
        let mut s = Settling::new(t0);
        s.check(t0, 4096, &RULES);
        assert_eq!(
            s.check(t0 + ms(300), 8192, &RULES),
            SettleState::Waiting {
                until: t0 + ms(400)
            }
        );
        assert_eq!(
            s.check(t0 + ms(400), 8192, &RULES),
            SettleState::Settled { size: 8192 }
        );
    }

    #[test]
    fn a_zero_size_keeps_polling_and_then_gives_up() {
        let t0 = Instant::now();
        let mut s = Settling::new(t0);
        s.check(t0, 0, &RULES);
        assert_eq!(
            s.check(t0 + ms(1000), 0, &RULES),
            SettleState::Waiting {
                until: t0 + ms(1100)
            }
        );
        assert_eq!(
            s.check(t0 + ms(4950), 0, &RULES),
            SettleState::Waiting {
                until: t0 + ms(5000)
            }
        );
        assert_eq!(
            s.check(t0 + ms(5000), 0, &RULES),
            SettleState::GaveUp { size: 0 }
        );
    }
}
