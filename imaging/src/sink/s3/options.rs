//! What the operator asks of the upload: tuning (parts in flight, memory, object size) and evidence
//! protection (SSE-KMS, expected bucket owner, Object Lock).

use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};

use super::plan::{LayoutLimits, limits};

/// Default memory for part buffers: 4 parts in flight plus one filling, 32 MiB each. With the
/// pipeline's 36 MiB of read buffers the process stays far below 256 MiB for any disk size, and a
/// 32 MiB part keeps one object up to 312 GiB before the image is split into segments.
pub const DEFAULT_PART_MEMORY: u64 = 160 << 20;

/// Default parts uploading at once: one TCP connection to S3 carries tens of MB/s, so a few
/// parallel parts keep an EBS read fed; each costs one part buffer (see [`DEFAULT_PART_MEMORY`]).
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 4;

/// Evidence-protection and tuning options of the upload.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Parts uploading at once (memory: one part each, plus the one being filled).
    pub parts_in_flight: usize,
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
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
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
            self.parts_in_flight.max(1),
            self.max_object_size,
        )
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
