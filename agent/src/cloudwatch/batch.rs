//! PutLogEvents rules as pure functions: how many events, how many bytes, what order and what time
//! span one call may carry, and which events CloudWatch would refuse for their age. The delivery
//! task only asks [`next_batch`] for the next call's events, so every limit is tested here, without
//! a network.

use std::collections::VecDeque;

use aws_sdk_cloudwatchlogs::types::RejectedLogEventsInfo;

/// Events per PutLogEvents call (service limit).
pub(super) const MAX_BATCH_EVENTS: usize = 10_000;
/// Bytes per PutLogEvents call, counted as each message's UTF-8 bytes plus
/// [`EVENT_OVERHEAD_BYTES`] (service limit).
pub(super) const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch adds to every message when it counts a batch's size.
pub(super) const EVENT_OVERHEAD_BYTES: usize = 26;
/// One event, message plus overhead (service limit: 256 KiB). Counting the overhead inside the
/// limit costs 26 bytes and is safe whichever way the service counts.
pub(super) const MAX_EVENT_BYTES: usize = 262_144;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Time one call's events may span (service limit: "not more than 24 hours"; we keep them strictly
/// within it).
pub(super) const MAX_BATCH_SPAN_MS: i64 = 24 * HOUR_MS;
/// Oldest event the service accepts is 14 days; a minute of margin covers the clock difference
/// between this instance and CloudWatch and the time a call spends in flight.
pub(super) const MAX_AGE_MS: i64 = 14 * 24 * HOUR_MS - MINUTE_MS;
/// Newest event the service accepts is 2 hours ahead; the same minute of margin.
pub(super) const MAX_AHEAD_MS: i64 = 2 * HOUR_MS - MINUTE_MS;

/// One log event as CloudWatch stores it: milliseconds since the Unix epoch and a message that
/// already fits [`MAX_EVENT_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogEvent {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub(super) timestamp_ms: i64,
    /// The text, UTF-8, never empty.
    pub(super) message: String,
}

impl LogEvent {
    /// Bytes this event adds to a batch.
    pub(super) fn cost(&self) -> usize {
        self.message.len() + EVENT_OVERHEAD_BYTES
    }
}

/// The events of one call, and how many were set aside because the service would refuse them.
#[derive(Debug, Default)]
pub(super) struct Cut {
    /// In chronological order, within every limit; empty only when nothing sendable was pending.
    pub(super) events: Vec<LogEvent>,
    /// Events taken off the queue that are too old or too far ahead to be accepted.
    pub(super) out_of_window: usize,
}

/// True when the service would accept an event with this timestamp at `now_ms`.
pub(super) fn in_window(timestamp_ms: i64, now_ms: i64) -> bool {
    timestamp_ms >= now_ms.saturating_sub(MAX_AGE_MS)
        && timestamp_ms <= now_ms.saturating_add(MAX_AHEAD_MS)
}

/// Takes the next call's events from the front of `pending`: at most [`MAX_BATCH_EVENTS`] events
/// and [`MAX_BATCH_BYTES`], sorted by time (stable, so equal times keep their queue order),
/// spanning less than [`MAX_BATCH_SPAN_MS`]. Events outside the service's time window are removed
/// and counted. What does not fit stays at the front of `pending`, so it goes in the next call.
pub(super) fn next_batch(pending: &mut VecDeque<LogEvent>, now_ms: i64) -> Cut {
    let mut cut = Cut::default();
    let mut bytes = 0usize;
    while cut.events.len() < MAX_BATCH_EVENTS {
        let Some(front) = pending.front() else { break };
        if !in_window(front.timestamp_ms, now_ms) {
            pending.pop_front();
            cut.out_of_window += 1;
            continue;
        }
        if bytes + front.cost() > MAX_BATCH_BYTES {
            break;
        }
        bytes += front.cost();
        if let Some(event) = pending.pop_front() {
            cut.events.push(event);
        }
    }
    cut.events.sort_by_key(|e| e.timestamp_ms);
    if let Some(first) = cut.events.first().map(|e| e.timestamp_ms) {
        let end = first.saturating_add(MAX_BATCH_SPAN_MS);
        let keep = cut.events.partition_point(|e| e.timestamp_ms < end);
        for event in cut.events.drain(keep..).rev() {
            pending.push_front(event);
        }
    }
    cut
}

/// Which events of an accepted call the service refused anyway (too old, expired, too new), from
/// its `rejectedLogEventsInfo`: indices below `before` and from `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Rejected {
    before: usize,
    from: Option<usize>,
}

impl Rejected {
    /// From the three indices the service reports (each optional, inclusive as documented).
    pub(super) fn new(
        too_old_end: Option<i32>,
        expired_end: Option<i32>,
        too_new_start: Option<i32>,
    ) -> Self {
        let end = |index: Option<i32>| {
            index
                .and_then(|i| usize::try_from(i).ok())
                .map_or(0, |i| i + 1)
        };
        Self {
            before: end(too_old_end).max(end(expired_end)),
            from: too_new_start.and_then(|i| usize::try_from(i).ok()),
        }
    }

    /// From the SDK's response field.
    pub(super) fn from_info(info: Option<&RejectedLogEventsInfo>) -> Self {
        info.map_or_else(Self::default, |info| {
            Self::new(
                info.too_old_log_event_end_index(),
                info.expired_log_event_end_index(),
                info.too_new_log_event_start_index(),
            )
        })
    }

    /// Whether the event at `index` was refused.
    pub(super) fn contains(&self, index: usize) -> bool {
        index < self.before || self.from.is_some_and(|from| index >= from)
    }

    /// How many of the first `len` events were refused.
    pub(super) fn count(&self, len: usize) -> usize {
        (0..len).filter(|&i| self.contains(i)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    fn event(timestamp_ms: i64, size: usize) -> LogEvent {
        LogEvent {
            timestamp_ms,
            message: "x".repeat(size.max(1)),
        }
    }

    fn drain(mut pending: VecDeque<LogEvent>) -> (Vec<Vec<LogEvent>>, usize) {
        let mut batches = Vec::new();
        let mut refused = 0;
        while !pending.is_empty() {
            let cut = next_batch(&mut pending, NOW);
            refused += cut.out_of_window;
            if !cut.events.is_empty() {
                batches.push(cut.events);
            }
        }
        (batches, refused)
    }

    #[test]
    fn ten_thousand_and_one_events_take_two_calls() {
        let pending = (0..10_001).map(|i| event(NOW + i, 10)).collect();
        let (batches, refused) = drain(pending);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10_000, 1]);
        assert_eq!(refused, 0);
    }

    #[test]
    fn byte_limit_counts_twenty_six_bytes_per_event() {
        // 4 × (250,000 + 26) = 1,000,104 fits; a fifth would not.
        let pending = (0..5).map(|i| event(NOW + i, 250_000)).collect();
        let (batches, _) = drain(pending);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 1]);
        // Exactly at the limit: 2 × (524,262 + 26) = 1,048,576.
        let pending = (0..3).map(|i| event(NOW + i, 524_262)).collect();
        let (batches, _) = drain(pending);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1]);
    }

    #[test]
    fn out_of_order_events_are_sorted_stably() {
        let pending = VecDeque::from(vec![
            LogEvent {
                timestamp_ms: NOW + 5,
                message: "b".into(),
            },
            LogEvent {
                timestamp_ms: NOW + 1,
                message: "a".into(),
            },
            LogEvent {
                timestamp_ms: NOW + 5,
                message: "c".into(),
            },
        ]);
        let (batches, _) = drain(pending);
        let order: Vec<&str> = batches[0].iter().map(|e| e.message.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn a_batch_never_spans_more_than_a_day() {
        let day = MAX_BATCH_SPAN_MS;
        // Exactly 24 h apart is already too far: NOW - 2 days and NOW - 1 day part.
        let stamps = [NOW - 2 * day, NOW - day - 1, NOW - day, NOW - 1];
        let pending = stamps.iter().map(|&t| event(t, 1)).collect();
        let (batches, _) = drain(pending);
        let spans: Vec<Vec<i64>> = batches
            .iter()
            .map(|b| b.iter().map(|e| e.timestamp_ms).collect())
            .collect();
        assert_eq!(
            spans,
            [vec![NOW - 2 * day, NOW - day - 1], vec![NOW - day, NOW - 1]]
        );
    }

    #[test]
    fn events_outside_the_service_window_are_counted_not_sent() {
        let pending = VecDeque::from(vec![
            event(NOW - 15 * 24 * HOUR_MS, 1),
            event(NOW, 1),
            event(NOW + 3 * HOUR_MS, 1),
        ]);
        let (batches, refused) = drain(pending);
        assert_eq!(refused, 2);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0][0].timestamp_ms, NOW);
    }

    #[test]
    fn rejected_info_marks_both_ends() {
        let rejected = Rejected::new(Some(1), None, Some(4));
        let refused: Vec<usize> = (0..6).filter(|&i| rejected.contains(i)).collect();
        assert_eq!(refused, [0, 1, 4, 5]);
        assert_eq!(rejected.count(6), 4);
        assert_eq!(Rejected::new(Some(0), Some(2), None).count(5), 3);
        assert_eq!(Rejected::from_info(None).count(10), 0);
        assert_eq!(Rejected::new(Some(-1), None, Some(-3)).count(3), 0);
    }

    fn arbitrary_events() -> impl Strategy<Value = Vec<(i64, usize)>> {
        let size = prop_oneof![
            20 => 1usize..200,
            1 => 100_000usize..=(MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES),
        ];
        let offset = prop_oneof![
            10 => -HOUR_MS..HOUR_MS,
            1 => -16 * 24 * HOUR_MS..4 * HOUR_MS,
        ];
        prop::collection::vec((offset, size), 0..400)
    }

    proptest! {
        #[test]
        fn every_batch_respects_the_limits_and_nothing_is_lost(spec in arbitrary_events()) {
            let input: Vec<LogEvent> = spec
                .iter()
                .enumerate()
                .map(|(i, &(offset, size))| LogEvent {
                    timestamp_ms: NOW + offset,
                    message: format!("{i:06}{}", "x".repeat(size)),
                })
                .collect();
            let expected_refused = input.iter().filter(|e| !in_window(e.timestamp_ms, NOW)).count();
            let (batches, refused) = drain(input.iter().cloned().collect());
            prop_assert_eq!(refused, expected_refused);
            let mut delivered = Vec::new();
            for batch in &batches {
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.len() <= MAX_BATCH_EVENTS);
                prop_assert!(batch.iter().map(LogEvent::cost).sum::<usize>() <= MAX_BATCH_BYTES);
                prop_assert!(batch.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
                let span = batch[batch.len() - 1].timestamp_ms - batch[0].timestamp_ms;
                prop_assert!(span < MAX_BATCH_SPAN_MS);
                prop_assert!(batch.iter().all(|e| in_window(e.timestamp_ms, NOW)));
                delivered.extend(batch.iter().map(|e| e.message.clone()));
            }
            let mut sent = delivered.clone();
            sent.sort();
            let mut wanted: Vec<String> = input
                .iter()
                .filter(|e| in_window(e.timestamp_ms, NOW))
                .map(|e| e.message.clone())
                .collect();
            wanted.sort();
            prop_assert_eq!(sent, wanted);
        }
    }

    proptest! {
        // Each case builds up to 25,000 events: fewer cases keep the suite quick.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn many_small_events_fill_calls_to_the_count_limit(count in 10_001usize..25_000) {
            let pending = (0..count).map(|i| event(NOW, 1 + i % 50)).collect();
            let (batches, _) = drain(pending);
            let full = |b: &Vec<LogEvent>| {
                let bytes: usize = b.iter().map(LogEvent::cost).sum();
                b.len() == MAX_BATCH_EVENTS || bytes + 76 > MAX_BATCH_BYTES
            };
            prop_assert!(batches[..batches.len() - 1].iter().all(full));
            prop_assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), count);
        }
    }
}
