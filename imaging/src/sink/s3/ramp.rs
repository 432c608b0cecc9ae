//! How many parts upload at once, found from what the link gives rather than fixed in advance.
//!
//! One connection to S3 carries tens of MB/s; throughput comes from parallel requests (S3's own
//! performance advice; the AWS CRT client sizes its connection count from a target throughput). A
//! constant tuned on one network is too few on another and wasted memory on a third, so the upload
//! starts with [`START`] parts in flight and probes upwards: after every round (as many completed
//! parts as the current limit) it compares the round's throughput with the best seen so far. A
//! round at least [`GAIN`] faster than that best doubles the limit, up to the memory bound;
//! anything less means the link, the server or the source is saturated, and the limit stays,
//! since more parallel parts would only hold more memory. A later round that does run faster (the
//! link improved) resumes the climb. Doubling, as TCP's slow start does, because the climb is paid
//! in parts sent below the link's capacity: from 16 to 31 takes one round, where steps of half
//! again took several, most of a small disk. The limit never drops: each part in flight is already paid
//! for in the memory budget, and S3's throttling answers are retried by the SDK.

use std::time::{Duration, Instant};

/// Parts in flight before anything is measured: 16 (`aws s3 cp` keeps 10). The climb is paid in
/// parts sent below the link's capacity, and a start of 8 cost a 512 MiB image a whole round at
/// half the link: 103.8 MB/s instead of 106–111 at 8 MB/s per connection (tests/bench/README.md).
/// 16 parts of 5 MiB are 80 MiB, within the default part memory on any link.
pub(crate) const START: usize = 16;

/// The throughput gain a round must show over the best so far for the limit to grow: 10 %, well
/// above the round-to-round noise of a steady link (a few per cent) and well below the ~50 % a
/// round gains when the link had room for the extra parts.
pub(crate) const GAIN: f64 = 1.10;

/// Rounds shorter than this are too short to compare (loopback, tiny parts); they are merged
/// into the next one.
const MIN_ROUND: Duration = Duration::from_millis(200);

/// The adaptive limit on parts in flight.
#[derive(Debug, Clone)]
pub struct Ramp {
    limit: usize,
    max: usize,
    best: f64,
    round_start: Option<Instant>,
    round_parts: usize,
    round_bytes: u64,
}

impl Ramp {
    /// A limit that adapts between [`START`] (or `max`, if smaller) and `max`.
    pub(crate) fn adaptive(max: usize) -> Self {
        let max = max.max(1);
        Self {
            limit: START.min(max),
            max,
            best: 0.0,
            round_start: None,
            round_parts: 0,
            round_bytes: 0,
        }
    }

    /// A constant limit: the operator chose the number of parts in flight. It starts at its
    /// maximum, so there is nowhere to climb.
    pub(crate) fn fixed(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            ..Self::adaptive(limit)
        }
    }

    /// Parts that may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most parts in flight this upload may reach.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Marks when the first part was handed out, where the first round starts.
    pub(crate) fn started(&mut self, now: Instant) {
        self.round_start.get_or_insert(now);
    }

    /// Records a part of `bytes` acknowledged at `now`; returns the limit from now on.
    pub(crate) fn part_done(&mut self, bytes: u64, now: Instant) -> usize {
        let start = *self.round_start.get_or_insert(now);
        self.round_parts += 1;
        self.round_bytes += bytes;
        let elapsed = now.saturating_duration_since(start);
        if self.round_parts < self.limit || elapsed < MIN_ROUND {
            return self.limit;
        }
        let rate = self.round_bytes as f64 / elapsed.as_secs_f64();
        if rate >= self.best * GAIN {
            self.best = rate;
            self.limit = (self.limit * 2).min(self.max);
        }
        self.round_start = Some(now);
        self.round_parts = 0;
        self.round_bytes = 0;
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: u64 = 5 << 20;

    /// Drives `ramp` for `rounds` rounds over a simulated link whose aggregate rate with `n` parts
    /// in flight is `rate(n)`, on a virtual clock that starts at `now`; returns the limits seen
    /// after each round.
    fn simulate_from(
        ramp: &mut Ramp,
        now: &mut Instant,
        rounds: usize,
        rate: impl Fn(usize) -> f64,
    ) -> Vec<usize> {
        ramp.started(*now);
        let mut seen = Vec::new();
        for _ in 0..rounds {
            let limit = ramp.limit();
            // `limit` parts complete over the round at the link's aggregate rate for `limit`.
            let round = Duration::from_secs_f64(limit as f64 * PART as f64 / rate(limit));
            for i in 1..=limit {
                let at = *now + round.mul_f64(i as f64 / limit as f64);
                ramp.part_done(PART, at);
            }
            *now += round;
            seen.push(ramp.limit());
        }
        seen
    }

    fn simulate(ramp: &mut Ramp, rounds: usize, rate: impl Fn(usize) -> f64) -> Vec<usize> {
        simulate_from(ramp, &mut Instant::now(), rounds, rate)
    }

    #[test]
    fn starts_at_16_or_the_maximum_if_smaller() {
        assert_eq!(Ramp::adaptive(31).limit(), START);
        assert_eq!(Ramp::adaptive(3).limit(), 3);
        assert_eq!(Ramp::adaptive(0).limit(), 1);
        assert_eq!(Ramp::adaptive(31).max(), 31);
    }

    #[test]
    fn climbs_to_the_memory_bound_while_each_connection_adds_throughput() {
        // A capped link: 8 MB/s per connection, no shared bottleneck.
        let mut ramp = Ramp::adaptive(100);
        let seen = simulate(&mut ramp, 4, |n| n as f64 * 8e6);
        assert_eq!(seen, vec![32, 64, 100, 100]);
        // The default memory holds 31 parts of 5 MiB besides the one filling.
        let mut ramp = Ramp::adaptive(31);
        let seen = simulate(&mut ramp, 3, |n| n as f64 * 8e6);
        assert_eq!(seen, vec![31, 31, 31]);
    }

    #[test]
    fn holds_where_the_link_saturates() {
        // Each connection adds 8 MB/s up to a shared 100 MB/s: the 16 it starts with already fill
        // it, so the 32 of the first (unmeasured) step gain nothing and the limit stays there.
        let mut ramp = Ramp::adaptive(64);
        let seen = simulate(&mut ramp, 6, |n| (n as f64 * 8e6).min(100e6));
        assert_eq!(seen, vec![32, 32, 32, 32, 32, 32]);
        // At 150 MB/s shared, 32 still gains 17 % over 16, so the ramp tries 64 (one step past
        // what the link needs, the price of probing), which gains nothing: it stays there.
        let mut ramp = Ramp::adaptive(64);
        let seen = simulate(&mut ramp, 5, |n| (n as f64 * 8e6).min(150e6));
        assert_eq!(seen, vec![32, 64, 64, 64, 64]);
    }

    #[test]
    fn resumes_the_climb_when_the_link_improves() {
        let mut ramp = Ramp::adaptive(100);
        let mut now = Instant::now();
        simulate_from(&mut ramp, &mut now, 4, |n| (n as f64 * 4e6).min(60e6));
        assert_eq!(ramp.limit(), 32);
        let seen = simulate_from(&mut ramp, &mut now, 3, |n| n as f64 * 4e6);
        assert_eq!(seen, vec![64, 100, 100]);
    }

    #[test]
    fn short_rounds_are_merged_before_comparing() {
        let mut ramp = Ramp::adaptive(64);
        let now = Instant::now();
        ramp.started(now);
        // A round's worth of parts in 16 ms: far too short to judge, so no step yet.
        for i in 1..=START as u64 {
            ramp.part_done(PART, now + Duration::from_millis(i));
        }
        assert_eq!(ramp.limit(), START);
        // The round closes once it has lasted MIN_ROUND.
        ramp.part_done(PART, now + MIN_ROUND);
        assert_eq!(ramp.limit(), 2 * START);
    }

    #[test]
    fn a_gain_under_10_percent_is_noise_and_holds() {
        // 1 % more per doubling: a saturated link's jitter, not room for more parts.
        let mut ramp = Ramp::adaptive(64);
        let seen = simulate(&mut ramp, 4, |n| 100e6 * (1.0 + n as f64 / 1000.0));
        assert_eq!(seen, vec![32, 32, 32, 32]);
    }

    #[test]
    fn a_fixed_limit_never_moves() {
        let mut ramp = Ramp::fixed(16);
        assert_eq!(ramp.limit(), 16);
        let seen = simulate(&mut ramp, 4, |n| n as f64 * 8e6);
        assert_eq!(seen, vec![16; 4]);
        assert_eq!(Ramp::fixed(0).limit(), 1);
        // Above the adaptive start too (the mutant that let `fixed` start at 16 survived).
        assert_eq!(Ramp::fixed(24).limit(), 24);
        assert_eq!(Ramp::fixed(24).max(), 24);
    }

    #[test]
    fn a_slower_round_after_a_step_does_not_lower_the_limit() {
        let mut ramp = Ramp::adaptive(64);
        let mut now = Instant::now();
        simulate_from(&mut ramp, &mut now, 1, |n| n as f64 * 8e6);
        assert_eq!(ramp.limit(), 32);
        let seen = simulate_from(&mut ramp, &mut now, 2, |_| 10e6);
        assert_eq!(seen, vec![32, 32]);
    }
}
