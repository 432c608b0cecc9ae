//! When to ask IMDS again: which failures may pass by themselves, and the pauses between attempts
//! within a bounded wait. Pure functions, so the schedule and the sorting are tested without a
//! clock or a server.
//!
//! The pauses come from `backon`'s exponential schedule with jitter (each pause is its step plus
//! up to 100 % more, at random), so collectors booted together do not ask in lockstep. The SDK's
//! own IMDS retries cannot express a wait of minutes: its schedule is fixed (1 s doubling to
//! 20 s), it does not retry refused connections, and its operation timeout would apply to each of
//! the three requests separately. So the SDK keeps its one quick retry per request, and
//! [`super::fetch_waiting`] loops around whole fetches with a deadline.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// First pause: IMDS usually answers within a second or two of the network coming up, so the
/// first retries come quickly.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Longest step before jitter: an IMDS that comes up is noticed within 2 × 5 s, and a 120 s wait
/// makes about fifteen attempts rather than hundreds.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Which exchange of the IMDSv2 flow failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `PUT /latest/api/token`.
    Token,
    /// `GET` of a metadata path with the token.
    Get,
}

/// What a failure means for the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// IMDS answered that the path does not exist (no user data): not an error.
    Absent,
    /// IMDS is not up yet or hiccupped: ask again.
    Retry,
    /// IMDS (or whatever listens there) answered and will answer the same again.
    Final,
}

/// Sorts a failed exchange by its HTTP status (`None`: no answer at all — refused, reset or timed
/// out), following IMDS's documented codes:
/// - no answer, 5xx (503: "the request could not be completed"): not up yet → retry;
/// - 401 on a GET: the token is unknown, e.g. IMDS restarted and forgot it; the next attempt
///   fetches a new one → retry;
/// - 404 on a GET: no such item (no user data) → absent; on the token PUT it means this is no
///   IMDSv2 → final;
/// - 403: IMDS is turned off for this instance or refuses the caller; 400: a malformed request;
///   a 2xx that fails (a token without its TTL header): not IMDSv2 → final, as waiting changes
///   none of them.
pub fn classify(stage: Stage, status: Option<u16>) -> Verdict {
    match status {
        None | Some(401 | 500..=599) => Verdict::Retry,
        Some(404) if stage == Stage::Get => Verdict::Absent,
        Some(_) => Verdict::Final,
    }
}

/// The schedule's pauses, endless (the wait bounds them): 0.5 s doubling to 5 s, each plus up to
/// 100 % jitter. `seed` fixes the jitter, for tests.
pub fn delays(seed: Option<u64>) -> impl Iterator<Item = Duration> {
    let builder = ExponentialBuilder::new()
        .with_min_delay(FIRST_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    match seed {
        Some(seed) => builder.with_jitter_seed(seed).build(),
        None => builder.build(),
    }
}

/// The pause before the next attempt: the schedule's `delay`, shortened so the last attempt falls
/// on the `bound` of the wait; `None` once `elapsed` (since the first attempt) has reached it.
pub fn next_pause(delay: Duration, elapsed: Duration, bound: Duration) -> Option<Duration> {
    let left = bound.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    Some(delay.min(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn no_answer_server_errors_and_a_forgotten_token_are_retried() {
        for stage in [Stage::Token, Stage::Get] {
            for status in [None, Some(500), Some(503), Some(599), Some(401)] {
                assert_eq!(
                    classify(stage, status),
                    Verdict::Retry,
                    "{stage:?} {status:?}"
                );
            }
        }
    }

    #[test]
    fn a_missing_item_is_absent_only_on_a_get() {
        assert_eq!(classify(Stage::Get, Some(404)), Verdict::Absent);
        assert_eq!(classify(Stage::Token, Some(404)), Verdict::Final);
    }

    #[test]
    fn refusals_and_answers_that_are_not_imdsv2_are_final() {
        for stage in [Stage::Token, Stage::Get] {
            for status in [200, 299, 400, 402, 403, 405, 499, 600] {
                assert_eq!(
                    classify(stage, Some(status)),
                    Verdict::Final,
                    "{stage:?} {status}"
                );
            }
        }
    }

    #[test]
    fn pauses_grow_from_half_a_second_and_are_capped_with_jitter() {
        for seed in 0..50 {
            let pauses: Vec<Duration> = delays(Some(seed)).take(12).collect();
            let steps = [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0];
            for (pause, step) in pauses.iter().zip(steps) {
                let step = Duration::from_secs_f64(step);
                assert!(*pause >= step, "seed {seed}: {pause:?} below {step:?}");
                assert!(
                    *pause < step * 2,
                    "seed {seed}: {pause:?} past {step:?} + 100 %"
                );
            }
            assert!(pauses.iter().all(|p| *p < MAX_DELAY * 2));
        }
        let jittered = (0..20)
            .map(|seed| delays(Some(seed)).next())
            .collect::<std::collections::BTreeSet<_>>();
        assert!(
            jittered.len() > 10,
            "jitter spreads the first pause: {jittered:?}"
        );
        assert!(
            delays(None).nth(1000).is_some(),
            "the schedule itself never ends"
        );
    }

    #[test]
    fn the_last_pause_lands_on_the_bound_and_none_follows() {
        let bound = 120 * SECOND;
        assert_eq!(next_pause(3 * SECOND, 10 * SECOND, bound), Some(3 * SECOND));
        assert_eq!(
            next_pause(9 * SECOND, 118 * SECOND, bound),
            Some(2 * SECOND)
        );
        assert_eq!(
            next_pause(2 * SECOND, 118 * SECOND, bound),
            Some(2 * SECOND)
        );
        assert_eq!(next_pause(SECOND, 120 * SECOND, bound), None);
        assert_eq!(next_pause(SECOND, 121 * SECOND, bound), None);
        assert_eq!(next_pause(SECOND, Duration::ZERO, Duration::ZERO), None);
    }

    /// The whole wait, played with a clock that only pauses move (attempts take no time): the
    /// total never passes the bound, the last attempt is at the bound, and a 2-minute wait makes
    /// a modest number of attempts.
    #[test]
    fn a_whole_wait_stays_within_its_bound() {
        for (bound_secs, most_attempts) in [(0, 1), (3, 5), (120, 32), (3600, 800)] {
            let bound = Duration::from_secs(bound_secs);
            for seed in 0..20 {
                let mut elapsed = Duration::ZERO;
                let mut attempts = 1;
                for delay in delays(Some(seed)) {
                    let Some(pause) = next_pause(delay, elapsed, bound) else {
                        break;
                    };
                    elapsed += pause;
                    attempts += 1;
                }
                assert_eq!(
                    elapsed, bound,
                    "seed {seed}: the last attempt is at the bound"
                );
                assert!(
                    attempts <= most_attempts,
                    "{bound_secs} s, seed {seed}: {attempts} attempts"
                );
                if bound_secs >= 3 {
                    assert!(attempts >= 3, "{bound_secs} s: only {attempts} attempts");
                }
            }
        }
    }
}
