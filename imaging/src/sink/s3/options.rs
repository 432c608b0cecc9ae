//! What the operator asks of the upload: tuning (parts in flight, memory, object size) and evidence
//! protection (SSE-KMS, expected bucket owner, Object Lock).

use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};

use super::plan::{LayoutLimits, limits};
use super::ramp::Ramp;

/// Default memory for part buffers: 160 MiB. With the pipeline's 36 MiB of read buffers and the
/// process's own ~35 MiB the collector stays under 256 MiB for any disk size; with 5 MiB parts it
/// lets the ramp reach 31 parts in flight, about what a link of 8 MB/s per connection needs to beat
/// `aws s3 cp` twice over.
pub const DEFAULT_PART_MEMORY: u64 = 160 << 20;

/// Most parts in flight, whether the ramp or the operator chooses: past 64 connections S3's own
/// advice (and our measurements) show no gain per instance, only more memory.
pub const MAX_PARTS_IN_FLIGHT: usize = 64;

/// Parts in flight the part size is planned for when the ramp decides: parts stay small enough
/// that 16 of them (plus the one filling) fit the memory budget, so a large disk does not pay for
/// big parts with an idle link; an image that would need bigger parts is split into segments.
pub const PLANNED_PARTS_IN_FLIGHT: usize = 16;

/// Evidence-protection and tuning options of the upload.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Parts uploading at once (memory: one part each, plus the one being filled); `None` lets
    /// the [`Ramp`] follow the link, up to what the part memory holds.
    pub parts_in_flight: Option<usize>,
    /// Smallest part size; raised to fit the object into 10,000 parts.
    pub min_part_size: u64,
    /// Memory for part buffers; caps the part size (see [`LayoutLimits::from_budget`]).
    pub part_memory: u64,
    /// Largest object to create; bigger images become numbered segment objects.
    pub max_object_size: u64,
    /// SSE-KMS key ID or ARN; `None` leaves the bucket default.
    pub sse_kms_key_id: Option<String>,
    /// `x-amz-expected-bucket-owner`: fail rather than write into someone else's bucket.
    pub expected_bucket_owner: Option<String>,
    /// User metadata on the image object (incident, volume, …).
    pub metadata: Vec<(String, String)>,
    /// Object Lock retention put on every object written.
    pub retention: Option<Retention>,
    /// Put a legal hold on every object written.
    pub legal_hold: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            parts_in_flight: None,
            min_part_size: limits::MIN_PART_SIZE,
            part_memory: DEFAULT_PART_MEMORY,
            max_object_size: limits::MAX_OBJECT_SIZE,
            sse_kms_key_id: None,
            expected_bucket_owner: None,
            metadata: Vec::new(),
            retention: None,
            legal_hold: false,
        }
    }
}

/// Object Lock retention: until when, and how strictly, the evidence cannot be deleted or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `GOVERNANCE` (privileged users may lift it) or `COMPLIANCE` (nobody may).
    pub mode: ObjectLockMode,
    /// End of the retention period.
    pub retain_until: chrono::DateTime<chrono::Utc>,
}

impl S3Options {
    /// Whether anything written needs the bucket to have Object Lock enabled.
    pub fn needs_object_lock(&self) -> bool {
        self.retention.is_some() || self.legal_hold
    }

    /// The layout limits these options imply.
    pub fn layout_limits(&self) -> LayoutLimits {
        LayoutLimits::from_budget(
            self.min_part_size,
            self.part_memory,
            self.parts_in_flight
                .unwrap_or(PLANNED_PARTS_IN_FLIGHT)
                .max(1),
            self.max_object_size,
        )
    }

    /// The limit on parts in flight for parts of `part_size`: fixed if the operator set one, else
    /// a ramp bounded by the parts the memory budget holds besides the one being filled.
    pub fn ramp(&self, part_size: u64) -> Ramp {
        match self.parts_in_flight {
            Some(n) => Ramp::fixed(n),
            None => {
                let fit = (self.part_memory / part_size.max(1)).saturating_sub(1);
                Ramp::adaptive(
                    usize::try_from(fit)
                        .unwrap_or(usize::MAX)
                        .clamp(1, MAX_PARTS_IN_FLIGHT),
                )
            }
        }
    }

    pub(super) fn lock_mode(&self) -> Option<ObjectLockMode> {
        self.retention.as_ref().map(|r| r.mode.clone())
    }

    pub(super) fn retain_until(&self) -> Option<aws_sdk_s3::primitives::DateTime> {
        self.retention
            .as_ref()
            .map(|r| aws_sdk_s3::primitives::DateTime::from_secs(r.retain_until.timestamp()))
    }

    pub(super) fn legal_hold_status(&self) -> Option<ObjectLockLegalHoldStatus> {
        self.legal_hold.then_some(ObjectLockLegalHoldStatus::On)
    }
}
