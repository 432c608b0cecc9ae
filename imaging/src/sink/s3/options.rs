//! What the operator asks of the upload: tuning (parts in flight, memory, object size) and evidence
//! protection (SSE-KMS, expected bucket owner, Object Lock).

use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode};

use super::plan::{LayoutLimits, UploadLayout, limits};
use super::ramp::Ramp;

/// Default memory for part buffers: 160 MiB. With the pipeline's 36 MiB of read buffers and the
/// process's own ~35 MiB the collector stays under 256 MiB for any disk size; with 5 MiB parts it
/// lets the ramp reach 31 parts in flight, about what a link of 8 MB/s per connection needs to beat
/// `aws s3 cp` twice over.
pub(crate) const DEFAULT_PART_MEMORY: u64 = 160 << 20;

/// Most parts in flight, whether the ramp or the operator chooses: past 64 connections S3's own
/// advice (and our measurements) show no gain per instance, only more memory.
pub(crate) const MAX_PARTS_IN_FLIGHT: usize = 64;

/// Parts in flight the part size is planned for when the ramp decides: parts stay small enough
/// that 16 of them (plus the one filling) fit the memory budget, so a large disk does not pay for
/// big parts with an idle link; an image that would need bigger parts is split into segments.
pub(crate) const PLANNED_PARTS_IN_FLIGHT: usize = 16;

/// Evidence-protection and tuning options of the upload.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Parts uploading at once (memory: one part each, plus the one being filled); `None` lets
    /// the [`Ramp`] follow the link, up to what the part memory holds.
    pub parts_in_flight: Option<usize>,
    /// Smallest part size; raised to fit the object into 10,000 parts.
    pub min_part_size: u64,
    /// Memory for part buffers; caps the part size (see `LayoutLimits::from_budget`).
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

/// The upload's defaults and bounds, for a caller's settings table.
impl S3Options {
    /// Default memory for the part buffers: 160 MiB.
    pub const DEFAULT_PART_MEMORY: u64 = DEFAULT_PART_MEMORY;
    /// Most parts uploading at once: 64.
    pub const MAX_PARTS_IN_FLIGHT: usize = MAX_PARTS_IN_FLIGHT;
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

/// How one image is uploaded: what [`S3Options::plan`] answers, for the sink, the log and the docs.
#[derive(Debug, Clone)]
pub struct UploadPlan {
    /// Part size and segment objects.
    pub layout: UploadLayout,
    /// The limit on parts in flight: where it starts ([`Ramp::limit`]) and its most ([`Ramp::max`]).
    pub ramp: Ramp,
    /// Most memory the part buffers take: the parts in flight plus the one being filled.
    pub part_buffers: u64,
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
    pub(crate) fn layout_limits(&self) -> LayoutLimits {
        LayoutLimits::from_budget(
            self.min_part_size,
            self.part_memory,
            self.parts_in_flight
                .unwrap_or(PLANNED_PARTS_IN_FLIGHT)
                .max(1),
            self.max_object_size,
        )
    }

    /// How an image of `size` bytes would be uploaded with these options: the layout, the parts
    /// in flight and the memory their buffers may take at most.
    pub fn plan(&self, size: u64) -> crate::error::Result<UploadPlan> {
        let layout = UploadLayout::plan(size, self.layout_limits())?;
        let ramp = self.ramp(layout.part_size);
        Ok(UploadPlan {
            layout,
            part_buffers: layout.part_size * (ramp.max() as u64 + 1),
            ramp,
        })
    }

    /// The limit on parts in flight for parts of `part_size`: fixed if the operator set one, else
    /// a ramp bounded by the parts the memory budget holds besides the one being filled.
    pub(crate) fn ramp(&self, part_size: u64) -> Ramp {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    /// The defaults' plan for three disk sizes (issue 12), as docs/s3.md's table shows it.
    #[test]
    fn the_default_plan_for_16_gib_1_tib_and_16_tib() {
        let options = S3Options::default();
        let small = options.plan(16 * GIB).unwrap();
        assert_eq!(small.layout.part_size, 5 * MIB);
        assert_eq!(small.layout.segments, 1);
        assert_eq!((small.ramp.limit(), small.ramp.max()), (16, 31));
        assert_eq!(small.part_buffers, 160 * MIB);
        let large = options.plan(TIB).unwrap();
        assert_eq!(large.layout.part_size, 9 * MIB);
        assert_eq!(large.layout.segments, 12);
        assert_eq!((large.ramp.limit(), large.ramp.max()), (16, 16));
        assert_eq!(large.part_buffers, 153 * MIB);
        let huge = options.plan(16 * TIB).unwrap();
        assert_eq!(huge.layout.part_size, 9 * MIB);
        assert_eq!(huge.layout.segments, 187);
        assert_eq!(huge.part_buffers, 153 * MIB);
        for plan in [small, large, huge] {
            assert!(plan.part_buffers <= options.part_memory, "{plan:?}");
        }
    }

    #[test]
    fn a_fixed_count_is_kept_and_sizes_the_parts() {
        let options = S3Options {
            parts_in_flight: Some(4),
            ..S3Options::default()
        };
        let plan = options.plan(TIB).unwrap();
        // 160 MiB / (4 + 1): 32 MiB parts, 312.5 GiB per object.
        assert_eq!(plan.layout.part_size, 32 * MIB);
        assert_eq!(plan.layout.segments, 4);
        assert_eq!((plan.ramp.limit(), plan.ramp.max()), (4, 4));
        assert_eq!(plan.part_buffers, 160 * MIB);
    }

    #[test]
    fn the_ramp_is_bounded_by_the_memory_and_by_64() {
        let mut options = S3Options::default();
        assert_eq!(options.ramp(5 * MIB).max(), 31);
        assert_eq!(options.ramp(160 * MIB).max(), 1);
        assert_eq!(options.ramp(200 * MIB).max(), 1);
        options.part_memory = 10 * GIB;
        assert_eq!(options.ramp(5 * MIB).max(), MAX_PARTS_IN_FLIGHT);
    }
}
