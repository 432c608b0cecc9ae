//! Capture events: what the capture log group tells a responder about each job, as one JSON object
//! per log event with an `event` tag (`job_started`, `progress`, `job_finished`, …). Fields are
//! plain strings and numbers so the daemon can fill them from imaging's `Outcome` and manifest
//! without this module knowing either.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use imaging::pipeline::Progress;
use serde::Serialize;
use serde_json::Value;

use super::batch::LogEvent;
use super::truncate;
use crate::progress::Rates;

/// A byte range of the source, e.g. one that could not be read and was zero-filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// One capture event. Serialised with `"event": "<variant in snake_case>"`; the reporter adds
/// `"timestamp"` (RFC 3339, UTC, milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CaptureEvent {
    /// A volume was accepted and imaging begins.
    JobStarted {
        /// Job identifier (also in the evidence's names).
        job: String,
        /// EBS volume ID, or the device name when there is none.
        volume: String,
        /// Block device imaged, e.g. `/dev/nvme1n1`.
        device: String,
        /// Source size in bytes.
        size_bytes: u64,
        /// Where the evidence goes, e.g. `s3://bucket/incident/`.
        destination: String,
    },
    /// Periodic progress of a running job.
    Progress {
        /// Job identifier.
        job: String,
        /// EBS volume ID.
        volume: String,
        /// Bytes read, hashed and stored.
        bytes_done: u64,
        /// Source size in bytes.
        size_bytes: u64,
        /// Percent done.
        percent: f64,
        /// Average MB/s (10^6 bytes) so far.
        mb_per_s: f64,
        /// Seconds left at the average speed.
        eta_seconds: u64,
        /// Bytes zero-filled so far because they could not be read.
        bad_bytes: u64,
    },
    /// A job completed: the evidence is stored and verified by its hashes.
    JobFinished {
        /// Job identifier.
        job: String,
        /// EBS volume ID.
        volume: String,
        /// Bytes imaged.
        bytes: u64,
        /// SHA-256 of the image, hex.
        sha256: String,
        /// BLAKE3 of the image, hex.
        blake3: String,
        /// Where the image is.
        image_uri: String,
        /// Where the manifest is.
        manifest_uri: String,
        /// Wall-clock duration of the job in seconds.
        duration_seconds: f64,
        /// Unreadable ranges that were zero-filled (empty when every sector was read).
        bad_ranges: Vec<ByteRange>,
    },
    /// A job stopped without complete evidence.
    JobFailed {
        /// Job identifier.
        job: String,
        /// EBS volume ID.
        volume: String,
        /// The error chain as text.
        error: String,
        /// The process exit code this failure maps to (see `exit`).
        exit_code: u8,
    },
    /// A device was seen but not imaged (in use, the host's own disk, not an EBS volume, …).
    Refused {
        /// EBS volume ID, or the device name when there is none.
        volume: String,
        /// Block device seen.
        device: String,
        /// Why it was refused.
        reason: String,
    },
}

impl CaptureEvent {
    /// A progress event from the pipeline's progress snapshot.
    pub fn progress(job: &str, volume: &str, progress: &Progress) -> Self {
        let rates = Rates::of(progress);
        Self::Progress {
            job: job.to_owned(),
            volume: volume.to_owned(),
            bytes_done: progress.bytes_done,
            size_bytes: progress.bytes_total,
            percent: rates.percent,
            mb_per_s: rates.mb_per_s,
            eta_seconds: rates.eta_seconds,
            bad_bytes: progress.bad_bytes,
        }
    }

    /// The event as a JSON object.
    pub fn to_json(&self) -> Value {
        // Serialising these plain fields cannot fail; non-finite floats become null.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

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
    fn events_serialise_with_a_snake_case_tag() {
        let event = CaptureEvent::JobFailed {
            job: "j1".into(),
            volume: "vol-0123456789abcdef0".into(),
            error: "source vanished".into(),
            exit_code: 13,
        };
        assert_eq!(
            event.to_json(),
            json!({"event": "job_failed", "job": "j1", "volume": "vol-0123456789abcdef0",
                   "error": "source vanished", "exit_code": 13})
        );
        let finished = CaptureEvent::JobFinished {
            job: "j1".into(),
            volume: "vol-1".into(),
            bytes: 1024,
            sha256: "ab".into(),
            blake3: "cd".into(),
            image_uri: "s3://b/i.raw".into(),
            manifest_uri: "s3://b/manifest.json".into(),
            duration_seconds: 1.5,
            bad_ranges: vec![ByteRange {
                offset: 512,
                length: 512,
            }],
        }
        .to_json();
        assert_eq!(finished["event"], "job_finished");
        assert_eq!(
            finished["bad_ranges"],
            json!([{"offset": 512, "length": 512}])
        );
    }

    #[test]
    fn progress_carries_percent_speed_and_eta() {
        let event = CaptureEvent::progress(
            "j1",
            "vol-1",
            &Progress {
                bytes_done: 250_000_000,
                bytes_total: 1_000_000_000,
                bad_bytes: 512,
                elapsed: Duration::from_secs(5),
            },
        )
        .to_json();
        assert_eq!(event["event"], "progress");
        assert_eq!(event["percent"], 25.0);
        assert_eq!(event["mb_per_s"], 50.0);
        assert_eq!(event["eta_seconds"], 15);
        assert_eq!(event["bad_bytes"], 512);
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
