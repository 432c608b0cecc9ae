//! How an emitted JSON value becomes a log event: stamped with the time, serialised, fitted into
//! one event. What the events say is the daemon's business (`daemon::events`).

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::batch::LogEvent;
use super::truncate;

/// Turns an emitted JSON value into a log event at `now`: adds `"timestamp"` to an object that has
/// none, serialises it, and fits it into one event.
pub(super) fn stamp(mut value: Value, now: SystemTime) -> LogEvent {
    let at: DateTime<Utc> = now.into();
    if let Value::Object(map) = &mut value {
        map.entry("timestamp")
            .or_insert_with(|| Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true)));
    }
    let text = value.to_string();
    LogEvent {
        timestamp_ms: at.timestamp_millis(),
        message: truncate::fit_json(&value, text),
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(super) fn millis(now: SystemTime) -> i64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .try_into()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(seconds * 1000 + 250)
    }

    #[test]
    fn stamping_adds_a_timestamp_unless_present() {
        let stamped = stamp(json!({"event": "x"}), at(1_800_000_000));
        assert_eq!(stamped.timestamp_ms, 1_800_000_000_250);
        let parsed: Value = serde_json::from_str(&stamped.message).expect("JSON");
        assert_eq!(parsed["timestamp"], "2027-01-15T08:00:00.250Z");
        let kept = stamp(json!({"event": "x", "timestamp": "then"}), at(1));
        let parsed: Value = serde_json::from_str(&kept.message).expect("JSON");
        assert_eq!(parsed["timestamp"], "then");
        let scalar = stamp(json!("text"), at(1));
        assert_eq!(scalar.message, "\"text\"");
    }

    #[test]
    fn clock_before_the_epoch_is_zero() {
        assert_eq!(millis(SystemTime::UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(millis(at(2)), 2250);
    }
}
