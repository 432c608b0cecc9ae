//! `[s3]` and `[cloudwatch]`: where evidence and reports go. Limits are S3's and CloudWatch Logs'
//! own, checked here so a bad value fails at start-up rather than after an hour of imaging.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use aws_sdk_s3::types::ObjectLockMode;
use bytesize::ByteSize;
use imaging::s3::{Retention, limits};

use super::{Invalid, invalid, nonzero, optional, size, within};
use crate::config::raw::{RawConfig, RawS3};
use crate::config::settings;

/// `[s3]`.
#[derive(Debug, Clone)]
pub struct S3 {
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Smallest part (raised so the image fits 10,000 parts).
    pub min_part_size: u64,
    /// Parts uploading at once; `None` follows the link.
    pub parts_in_flight: Option<NonZeroUsize>,
    /// Memory for part buffers (caps the part size).
    pub part_memory: u64,
    /// Largest object; bigger images become numbered segments.
    pub max_object_size: u64,
    /// Attempts per request.
    pub max_attempts: NonZeroU32,
    /// Wait for a connection before an attempt fails.
    pub connect_timeout: Duration,
    /// SSE-KMS key.
    pub sse_kms_key_id: Option<String>,
    /// Account that must own the bucket (12 digits).
    pub expected_bucket_owner: Option<String>,
    /// Object Lock retention for every object.
    pub object_lock: Option<ObjectLock>,
    /// Legal hold on every object.
    pub legal_hold: bool,
    /// Refuse a bucket without Object Lock (implied by `object_lock` and `legal_hold`).
    pub require_object_lock: bool,
}

/// Object Lock retention: a mode and a number of days counted from the upload.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLock {
    /// Governance or compliance.
    pub mode: ObjectLockMode,
    /// Days from the upload.
    pub retain_days: NonZeroU32,
}

impl S3 {
    /// The Object Lock retention of an upload starting at `now` ("days from the upload"). The
    /// other upload options reach the engine through the child's job (`daemon::plan`), built by
    /// `destination::upload_options` as `acquire`'s flags are.
    pub fn retention(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Retention> {
        self.object_lock.as_ref().map(|lock| Retention {
            mode: lock.mode.clone(),
            retain_until: now + chrono::Days::new(u64::from(lock.retain_days.get())),
        })
    }
}

/// `[cloudwatch]`.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    /// Report at all.
    pub enabled: bool,
    /// Log group of the readiness message.
    pub readiness_group: String,
    /// Log group of capture progress.
    pub capture_group: String,
    /// The readiness message.
    pub readiness_message: String,
    /// Between progress events.
    pub progress_interval: Duration,
    /// Events buffered while CloudWatch is slow.
    pub queue_capacity: NonZeroUsize,
    /// Time allowed to flush at exit.
    pub flush_timeout: Duration,
}

pub(super) fn s3(raw: &RawConfig) -> Result<S3, Invalid> {
    let s = &raw.s3;
    let min_part_size = match size("s3.part_size", &s.part_size)? {
        0 => limits::MIN_PART_SIZE,
        p => within(&settings::PART_SIZE, p)?,
    };
    let parts_in_flight: Option<NonZeroUsize> = s
        .parts_in_flight
        .map(|n| nonzero(&settings::PARTS_IN_FLIGHT, n.into()))
        .transpose()?;
    let part_memory = within(
        &settings::PART_MEMORY,
        size("s3.part_memory", &s.part_memory)?,
    )?;
    // The ramp needs room for one part uploading besides the one filling; a fixed count for its n.
    let least = parts_in_flight.map_or(1, |n| n.get() as u64);
    settings::check_part_budget(min_part_size, least, part_memory)
        .map_err(|e| invalid("s3.part_memory", e))?;
    let max_object_size = within(
        &settings::MAX_OBJECT_SIZE,
        size("s3.max_object_size", &s.max_object_size)?,
    )?;
    if max_object_size < min_part_size {
        return Err(invalid(
            "s3.max_object_size",
            format!(
                "{} is smaller than one part ({})",
                ByteSize(max_object_size),
                ByteSize(min_part_size)
            ),
        ));
    }
    let sse_kms_key_id = optional(
        "s3.sse_kms_key_id",
        s.sse_kms_key_id.as_ref(),
        crate::ids::kms_key_id,
    )?;
    let expected_bucket_owner = optional(
        "s3.expected_bucket_owner",
        s.expected_bucket_owner.as_ref(),
        crate::ids::account_id,
    )?;
    let object_lock = object_lock(s)?;
    Ok(S3 {
        force_path_style: s.force_path_style,
        min_part_size,
        parts_in_flight,
        part_memory,
        max_object_size,
        max_attempts: nonzero(&settings::S3_MAX_ATTEMPTS, s.max_attempts.into())?,
        connect_timeout: Duration::from_secs(within(
            &settings::S3_CONNECT_TIMEOUT_SECS,
            s.connect_timeout_secs,
        )?),
        sse_kms_key_id,
        expected_bucket_owner,
        require_object_lock: s.require_object_lock || object_lock.is_some() || s.legal_hold,
        object_lock,
        legal_hold: s.legal_hold,
    })
}

/// `s3.object_lock_mode` and `s3.object_lock_retain_days`: both or neither.
fn object_lock(s: &RawS3) -> Result<Option<ObjectLock>, Invalid> {
    Ok(match (&s.object_lock_mode, s.object_lock_retain_days) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "s3.object_lock_retain_days",
                "is required with s3.object_lock_mode",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "s3.object_lock_mode",
                "is required with s3.object_lock_retain_days",
            ));
        }
        (Some(mode), Some(days)) => Some(ObjectLock {
            mode: crate::ids::object_lock_mode(mode)
                .map_err(|e| invalid("s3.object_lock_mode", e))?,
            retain_days: nonzero(&settings::OBJECT_LOCK_RETAIN_DAYS, days.into())?,
        }),
    })
}

/// A log group name, checked by the reporter's own rules.
fn log_group(key: &'static str, name: &str) -> Result<String, Invalid> {
    crate::cloudwatch::check_group(key, name)
        .map(|()| name.to_owned())
        .map_err(|e| invalid(key, e.to_string()))
}

pub(super) fn cloudwatch(raw: &RawConfig) -> Result<CloudWatch, Invalid> {
    let c = &raw.cloudwatch;
    let message = c.readiness_message.trim();
    if let Some(bound) = settings::READINESS_MESSAGE
        .bound
        .filter(|b| b.check(message.len() as u64).is_err())
    {
        return Err(invalid(
            "cloudwatch.readiness_message",
            format!("must be {} to {} bytes", bound.min, bound.max),
        ));
    }
    Ok(CloudWatch {
        enabled: c.enabled,
        readiness_group: log_group("cloudwatch.readiness_group", &c.readiness_group)?,
        capture_group: log_group("cloudwatch.capture_group", &c.capture_group)?,
        readiness_message: message.to_owned(),
        progress_interval: Duration::from_secs(within(
            &settings::PROGRESS_INTERVAL_SECS,
            c.progress_interval_secs,
        )?),
        queue_capacity: nonzero(&settings::QUEUE_CAPACITY, c.queue_capacity.into())?,
        flush_timeout: Duration::from_secs(within(
            &settings::FLUSH_TIMEOUT_SECS,
            c.flush_timeout_secs,
        )?),
    })
}
