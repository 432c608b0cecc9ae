//! The accepted range of every numeric setting of the agent, shared by the configuration's
//! validation and the command line (`cli.rs`), so `config check`, `watch` and `acquire` accept
//! exactly the same values. The engine's own read settings (chunk size, queue depth, piece size,
//! sector retries) are bounded by `imaging::pipeline::PipelineConfig::validate`.
//!
//! Every value must be refused at start-up if it could not work, would exhaust memory, or would
//! overflow a clock (`Instant + Duration` panics): a typo must never abort the process halfway
//! through an acquisition.

use bytesize::ByteSize;
use imaging::sink::s3::limits;

const DAY_SECS: u64 = 24 * 60 * 60;

/// How a bound's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A byte size, shown as `8.0 MiB`.
    Bytes,
    /// A plain number.
    Count,
}

/// An inclusive range with the words to explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// What the value is, for messages: "part size".
    pub what: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// How to show the numbers.
    pub unit: Unit,
}

impl Bound {
    /// `value` if it is within the range, else a message naming value and range.
    pub fn check(&self, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            return Ok(value);
        }
        let show = |n: u64| match self.unit {
            Unit::Bytes => ByteSize(n).to_string(),
            Unit::Count => n.to_string(),
        };
        Err(format!(
            "{} {} must be between {} and {}",
            self.what,
            show(value),
            show(self.min),
            show(self.max)
        ))
    }
}

/// Multipart part size: S3's own limits (the last part may be smaller).
pub const PART_SIZE: Bound = Bound {
    what: "part size",
    min: limits::MIN_PART_SIZE,
    max: limits::MAX_PART_SIZE,
    unit: Unit::Bytes,
};

/// Parts uploading at once: memory is (n + 1) × part size, and 64 × 8 MiB is already half a GiB;
/// on loopback and on EC2 more parallel requests stopped adding throughput well before that.
pub const PARTS_IN_FLIGHT: Bound = Bound {
    what: "parts in flight",
    min: 1,
    max: 64,
    unit: Unit::Count,
};

/// Memory for part buffers: at least two of the smallest parts (one uploading, one filling), at
/// most two of the largest (10 GiB) — enough for S3's largest part while the next one fills, with
/// which one object already holds S3's whole 48.8 TiB; more buys nothing, and a value past this is
/// a typo that would be allocated as the image grows.
pub const PART_MEMORY: Bound = Bound {
    what: "part memory",
    min: 2 * limits::MIN_PART_SIZE,
    max: 2 * limits::MAX_PART_SIZE,
    unit: Unit::Bytes,
};

/// Largest object: at least one part; at most what 10,000 parts of S3's largest size can hold
/// (48.8 TiB, about the 50 TB S3 accepts today).
pub const MAX_OBJECT_SIZE: Bound = Bound {
    what: "maximum object size",
    min: limits::MIN_PART_SIZE,
    max: limits::MAX_PARTS * limits::MAX_PART_SIZE,
    unit: Unit::Bytes,
};

/// Attempts per S3 request: beyond 100 the SDK's exponential backoff turns an outage into hours.
pub const S3_MAX_ATTEMPTS: Bound = Bound {
    what: "S3 attempts",
    min: 1,
    max: 100,
    unit: Unit::Count,
};

/// Object Lock retention in days: S3 accepts at most 100 years; more would also overflow the date
/// arithmetic that computes the retain-until date.
pub const OBJECT_LOCK_RETAIN_DAYS: Bound = Bound {
    what: "Object Lock retention (days)",
    min: 1,
    max: 36_500,
    unit: Unit::Count,
};

/// Seconds between progress reports: a report per hour is the least that still shows a capture is
/// alive; zero would be a busy loop.
pub const PROGRESS_INTERVAL_SECS: Bound = Bound {
    what: "progress interval (seconds)",
    min: 1,
    max: 3600,
    unit: Unit::Count,
};

/// Quiet time after a disk link appears, in milliseconds: udev's burst takes well under a second;
/// a minute is the most that is still "settling" rather than a stalled daemon.
pub const SETTLE_MS: Bound = Bound {
    what: "settle time (ms)",
    min: 0,
    max: 60_000,
    unit: Unit::Count,
};

/// Seconds to wait for a disk (0 = forever): at most 30 days, far past any incident's attach time
/// and far inside what a deadline `Instant` can hold.
pub const IDLE_TIMEOUT_SECS: Bound = Bound {
    what: "idle timeout (seconds)",
    min: 0,
    max: 30 * DAY_SECS,
    unit: Unit::Count,
};

/// Disks imaged at once: each holds its own read buffers and part buffers, and EBS throughput is
/// per instance, so beyond 8 they only compete for memory.
pub const CONCURRENCY: Bound = Bound {
    what: "concurrency",
    min: 1,
    max: 8,
    unit: Unit::Count,
};

/// CloudWatch events buffered while the service is slow: ten PutLogEvents batches. Events are up
/// to a few KiB, so this stays within tens of MiB.
pub const QUEUE_CAPACITY: Bound = Bound {
    what: "queue capacity",
    min: 1,
    max: 100_000,
    unit: Unit::Count,
};

/// Seconds allowed to flush reports at exit: at least one (the reporter refuses zero); at most ten
/// minutes, well past systemd's default stop timeout (90 s), which would kill us first.
pub const FLUSH_TIMEOUT_SECS: Bound = Bound {
    what: "flush timeout (seconds)",
    min: 1,
    max: 600,
    unit: Unit::Count,
};

/// Memory the S3 upload of one image needs for parts of `part_size`: `parts_in_flight` uploading
/// plus one being filled.
pub fn part_buffers(part_size: u64, parts_in_flight: u64) -> u64 {
    part_size.saturating_mul(parts_in_flight.saturating_add(1))
}

/// Part size and count must fit in `part_memory`: the planner raises the part size to at least
/// `part_size` whatever the budget says, so a larger product would silently exceed it.
pub fn check_part_budget(
    part_size: u64,
    parts_in_flight: u64,
    part_memory: u64,
) -> Result<(), String> {
    let needed = part_buffers(part_size, parts_in_flight);
    if needed <= part_memory {
        return Ok(());
    }
    Err(format!(
        "part memory {} cannot hold (parts in flight {parts_in_flight} + 1) × part size {} = {}; raise the part memory or lower the others",
        ByteSize(part_memory),
        ByteSize(part_size),
        ByteSize(needed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Each bound accepts its ends and refuses one step outside them.
    #[test]
    fn every_bound_accepts_its_ends_and_refuses_past_them() {
        for bound in [
            PART_SIZE,
            PARTS_IN_FLIGHT,
            PART_MEMORY,
            MAX_OBJECT_SIZE,
            S3_MAX_ATTEMPTS,
            OBJECT_LOCK_RETAIN_DAYS,
            PROGRESS_INTERVAL_SECS,
            SETTLE_MS,
            IDLE_TIMEOUT_SECS,
            CONCURRENCY,
            QUEUE_CAPACITY,
            FLUSH_TIMEOUT_SECS,
        ] {
            assert!(bound.min <= bound.max, "{bound:?}");
            assert_eq!(bound.check(bound.min), Ok(bound.min), "{bound:?}");
            assert_eq!(bound.check(bound.max), Ok(bound.max), "{bound:?}");
            if bound.min > 0 {
                let err = bound.check(bound.min - 1).unwrap_err();
                assert!(err.starts_with(bound.what), "{err}");
            }
            let err = bound.check(bound.max + 1).unwrap_err();
            assert!(err.contains("must be between"), "{err}");
        }
    }

    #[test]
    fn the_numbers_behind_each_bound() {
        assert_eq!(PART_SIZE.min, 8 * MIB);
        assert_eq!(PART_SIZE.max, 5 * GIB);
        assert_eq!(PARTS_IN_FLIGHT.max, 64);
        assert_eq!(PART_MEMORY.min, 16 * MIB);
        assert_eq!(PART_MEMORY.max, 10 * GIB);
        assert_eq!(MAX_OBJECT_SIZE.max, 10_000 * 5 * GIB);
        assert_eq!(S3_MAX_ATTEMPTS.max, 100);
        assert_eq!(OBJECT_LOCK_RETAIN_DAYS.max, 36_500);
        assert_eq!(PROGRESS_INTERVAL_SECS.min, 1);
        assert_eq!(PROGRESS_INTERVAL_SECS.max, 3600);
        assert_eq!(SETTLE_MS.max, 60_000);
        assert_eq!(IDLE_TIMEOUT_SECS.max, 2_592_000);
        assert_eq!(CONCURRENCY.max, 8);
        assert_eq!(QUEUE_CAPACITY.max, 100_000);
        assert_eq!(FLUSH_TIMEOUT_SECS.min, 1);
        assert_eq!(FLUSH_TIMEOUT_SECS.max, 600);
    }

    #[test]
    fn messages_show_sizes_as_sizes() {
        let err = PART_SIZE.check(1 << 40).unwrap_err();
        assert!(err.contains("1.0 TiB") && err.contains("8.0 MiB"), "{err}");
        let err = CONCURRENCY.check(9).unwrap_err();
        assert_eq!(err, "concurrency 9 must be between 1 and 8");
        assert_eq!(CONCURRENCY.check(8), Ok(8));
    }

    #[test]
    fn part_buffers_must_fit_the_part_memory() {
        assert_eq!(part_buffers(8 * MIB, 4), 40 * MIB);
        check_part_budget(8 * MIB, 4, 40 * MIB).unwrap();
        let err = check_part_budget(8 * MIB, 4, 40 * MIB - 1).unwrap_err();
        assert!(err.contains("cannot hold"), "{err}");
        check_part_budget(8 * MIB, 19, 160 * MIB).unwrap();
        check_part_budget(8 * MIB, 20, 160 * MIB).unwrap_err();
        assert_eq!(part_buffers(u64::MAX, 4), u64::MAX);
    }
}
