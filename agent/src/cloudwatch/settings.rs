//! Where and how the reporter writes: log group and stream names, the readiness text, the buffer
//! size and the per-call timeout, with the defaults of the design we follow and the service's
//! naming rules checked before anything is sent.

use std::time::Duration;

/// The readiness group of the original design; its attaching Lambda reads this group.
pub const DEFAULT_READINESS_GROUP: &str = "ForensicDiskReadiness";
/// The capture group of the original design.
pub const DEFAULT_CAPTURE_GROUP: &str = "ForensicDiskCapture";
/// The readiness text. The original flow's attaching Lambda compares the stream's latest event with
/// `incron is running`, byte for byte: configure that text to keep it working unchanged.
pub const DEFAULT_READINESS_MESSAGE: &str = "forensic-collector ready";
/// Longest readiness message, in bytes: well inside one log event (256 KiB), and far more than
/// any watcher compares. The settings table shows it as `cloudwatch.readiness_message`'s range.
pub const MAX_READINESS_MESSAGE_BYTES: usize = 1024;
/// Events held while CloudWatch is slow or down: about three days of progress lines at the
/// default one per 30 s (`cloudwatch.progress_interval_secs`; a day at one per 10 s) plus every job event, a few MB of small JSON.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// One PutLogEvents call (with the group and stream creation before it) may take this long. A
/// healthy call takes well under a second; ten leave room for a slow network without letting a
/// silent endpoint hold the buffer for long.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest log group or stream name the service accepts.
const MAX_NAME_LEN: usize = 512;

/// Reporter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    /// Log group for the readiness message.
    pub readiness_group: String,
    /// Log group for capture events (JSON).
    pub capture_group: String,
    /// Log stream in both groups: the instance ID, so each collector has its own.
    pub stream: String,
    /// Plain text sent when the watcher is armed; the attaching Lambda compares it exactly.
    pub readiness_message: String,
    /// Capture events held (queued, batching or being retried) before new ones are dropped.
    pub queue_capacity: usize,
    /// Bound on each call to CloudWatch (one batch's creation of group and stream, and its
    /// PutLogEvents).
    pub flush_timeout: Duration,
}

impl ReportSettings {
    /// The design's defaults for `stream` (the instance ID).
    pub fn new(stream: impl Into<String>) -> Self {
        Self {
            readiness_group: DEFAULT_READINESS_GROUP.to_owned(),
            capture_group: DEFAULT_CAPTURE_GROUP.to_owned(),
            stream: stream.into(),
            readiness_message: DEFAULT_READINESS_MESSAGE.to_owned(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }

    /// Checks names against CloudWatch's rules and the other values for sense, so a typo is
    /// reported at startup instead of as failed deliveries later.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check_group("readiness_group", &self.readiness_group)?;
        check_group("capture_group", &self.capture_group)?;
        check_stream(&self.stream)?;
        let length = self.readiness_message.len();
        if length == 0 || length > MAX_READINESS_MESSAGE_BYTES {
            return Err(SettingsError::ReadinessMessage { length });
        }
        if self.queue_capacity == 0 {
            return Err(SettingsError::QueueCapacity);
        }
        if self.flush_timeout.is_zero() {
            return Err(SettingsError::FlushTimeout);
        }
        Ok(())
    }
}

/// A setting the service or the reporter cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A log group name breaks the service's rules.
    #[error("{key} {name:?} is not a valid log group name: {reason}")]
    GroupName {
        /// Which setting.
        key: &'static str,
        /// The value given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The stream name breaks the service's rules.
    #[error("stream {name:?} is not a valid log stream name: {reason}")]
    StreamName {
        /// The value given.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The readiness message is empty or longer than its limit.
    #[error("readiness_message must be 1 to {MAX_READINESS_MESSAGE_BYTES} bytes, not {length}")]
    ReadinessMessage {
        /// Its length in bytes.
        length: usize,
    },
    /// No room for even one event.
    #[error("queue_capacity must be at least 1")]
    QueueCapacity,
    /// Every call would time out at once.
    #[error("flush_timeout must be longer than zero")]
    FlushTimeout,
}

/// Checks a log group name against CloudWatch's rules; `key` names the setting in the error.
pub fn check_group(key: &'static str, name: &str) -> Result<(), SettingsError> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some("it must be 1 to 512 characters")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/#".contains(c))
    {
        Some("only letters, digits and . _ - / # are allowed")
    } else {
        None
    };
    reason.map_or(Ok(()), |reason| {
        Err(SettingsError::GroupName {
            key,
            name: name.to_owned(),
            reason,
        })
    })
}

fn check_stream(name: &str) -> Result<(), SettingsError> {
    let reason = if name.is_empty() || name.len() > MAX_NAME_LEN {
        Some("it must be 1 to 512 characters")
    } else if name.contains([':', '*']) {
        Some("':' and '*' are not allowed")
    } else {
        None
    };
    reason.map_or(Ok(()), |reason| {
        Err(SettingsError::StreamName {
            name: name.to_owned(),
            reason,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design_and_are_valid() {
        let settings = ReportSettings::new("i-0123456789abcdef0");
        assert_eq!(settings.readiness_group, "ForensicDiskReadiness");
        assert_eq!(settings.capture_group, "ForensicDiskCapture");
        assert_eq!(settings.readiness_message, "forensic-collector ready");
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let base = ReportSettings::new("i-0123456789abcdef0");
        let cases: [(ReportSettings, &str); 6] = [
            (
                ReportSettings {
                    capture_group: "Forensic Capture".into(),
                    ..base.clone()
                },
                "capture_group \"Forensic Capture\"",
            ),
            (
                ReportSettings {
                    readiness_group: String::new(),
                    ..base.clone()
                },
                "readiness_group \"\"",
            ),
            (
                ReportSettings {
                    stream: "i-1:2".into(),
                    ..base.clone()
                },
                "stream \"i-1:2\"",
            ),
            (
                ReportSettings {
                    readiness_message: String::new(),
                    ..base.clone()
                },
                "readiness_message",
            ),
            (
                ReportSettings {
                    queue_capacity: 0,
                    ..base.clone()
                },
                "queue_capacity",
            ),
            (
                ReportSettings {
                    flush_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "flush_timeout",
            ),
        ];
        for (settings, expected) in cases {
            let message = settings.validate().expect_err("invalid").to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
