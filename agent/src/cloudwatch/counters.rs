//! The reporter's bookkeeping, shared lock-free between producers and the delivery task: how many
//! events are held (the bounded buffer is this count, not a channel), and what became of the rest.
//! Every emitted event ends in exactly one of `sent`, `dropped` or `failed`, or is still held.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What became of the capture events, for the caller at shutdown (or at any time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Accepted by CloudWatch.
    pub sent: u64,
    /// Never buffered: the buffer was full (or the reporter already shut down).
    pub dropped: u64,
    /// Buffered but not delivered: retries exhausted, refused by the service, or still held when
    /// the shutdown deadline passed.
    pub failed: u64,
    /// A readiness message was asked for and has not been delivered.
    pub readiness_pending: bool,
}

/// Shared counters. Relaxed ordering: these are tallies, nothing else is synchronised by them.
#[derive(Debug)]
pub(super) struct Counters {
    capacity: u64,
    held: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    readiness_pending: AtomicBool,
}

impl Counters {
    /// Counters for a buffer of `capacity` events.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: u64::try_from(capacity).unwrap_or(u64::MAX),
            held: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            readiness_pending: AtomicBool::new(false),
        }
    }

    /// Reserves room for one event, or counts it dropped when the buffer is full. Never waits.
    pub(super) fn admit(&self) -> bool {
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.held.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// An admitted event could not be queued after all (the reporter has shut down).
    pub(super) fn drop_admitted(&self) {
        self.release(1);
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` held events were accepted by CloudWatch.
    pub(super) fn sent(&self, n: usize) {
        self.release(n);
        self.sent.fetch_add(as_u64(n), Ordering::Relaxed);
    }

    /// `n` held events are given up.
    pub(super) fn failed(&self, n: usize) {
        self.release(n);
        self.failed.fetch_add(as_u64(n), Ordering::Relaxed);
    }

    /// Everything still held counts as failed: the caller stops waiting for the delivery task.
    pub(super) fn abandon(&self) -> DeliveryStats {
        let held = self.held.swap(0, Ordering::Relaxed);
        self.failed.fetch_add(held, Ordering::Relaxed);
        self.snapshot()
    }

    /// Events lost so far (dropped + failed): what `events_dropped` reports.
    pub(super) fn lost(&self) -> u64 {
        self.dropped
            .load(Ordering::Relaxed)
            .saturating_add(self.failed.load(Ordering::Relaxed))
    }

    /// Marks whether a readiness message waits for delivery.
    pub(super) fn set_readiness_pending(&self, pending: bool) {
        self.readiness_pending.store(pending, Ordering::Relaxed);
    }

    /// The tallies now.
    pub(super) fn snapshot(&self) -> DeliveryStats {
        DeliveryStats {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            readiness_pending: self.readiness_pending.load(Ordering::Relaxed),
        }
    }

    fn release(&self, n: usize) {
        let n = as_u64(n);
        // Saturating: `abandon` may already have zeroed what a late delivery task releases.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(n))
            });
    }
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let counters = Counters::new(3);
        let admitted = (0..10).filter(|_| counters.admit()).count();
        assert_eq!(admitted, 3);
        assert_eq!(counters.snapshot().dropped, 7);
        counters.sent(2);
        assert!(counters.admit(), "sending frees room");
        assert!(counters.admit());
        assert!(!counters.admit());
        assert_eq!(counters.lost(), 8);
    }

    #[test]
    fn abandoning_counts_held_events_as_failed() {
        let counters = Counters::new(10);
        for _ in 0..5 {
            assert!(counters.admit());
        }
        counters.sent(1);
        counters.failed(1);
        let stats = counters.abandon();
        assert_eq!((stats.sent, stats.dropped, stats.failed), (1, 0, 4));
        counters.sent(3); // a late release after abandon does not underflow
        assert!(counters.admit());
    }
}
