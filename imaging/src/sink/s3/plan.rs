//! How an image of a given size is laid out in S3: part size, and how many segment objects.
//!
//! Two limits pull against each other. S3 allows at most 10,000 parts per upload, so a big object
//! needs big parts; but every part is held in memory until S3 accepts it, so big parts mean memory
//! that grows with the disk. We cap the part size from a memory budget and, when the image would
//! not fit into 10,000 such parts (or exceeds the maximum object size), split it into numbered
//! segment objects instead. Memory then stays flat for any disk size.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// S3's limits on multipart uploads and objects.
pub mod limits {
    /// Smallest part S3 accepts (but for the last): 5 MiB. Small parts let more of them fly in the
    /// same memory, and the ramp adds parts while that adds throughput; at 5 MiB a part on a link
    /// of 8 MB/s per connection takes 0.65 s, so one 20 ms round trip per part costs 3 %.
    pub const MIN_PART_SIZE: u64 = 5 << 20;
    /// Largest part S3 accepts.
    pub const MAX_PART_SIZE: u64 = 5 << 30;
    /// Most parts in one upload.
    pub const MAX_PARTS: u64 = 10_000;
    /// Largest object S3 has always accepted (5 TiB). Newer S3 regions accept more; the limit is a
    /// setting so it can be raised (or lowered, in tests) without a new build.
    pub const MAX_OBJECT_SIZE: u64 = 5 << 40;
}

/// Part size and count of one uploaded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    /// Bytes per part (the last may be shorter).
    pub part_size: u64,
    /// Number of parts.
    pub parts: u64,
}

/// The limits an upload layout must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayoutLimits {
    /// Smallest part size to use (raised when the image needs bigger parts).
    pub min_part_size: u64,
    /// Largest part size to use: what the memory budget allows per part.
    pub max_part_size: u64,
    /// Largest object to create; bigger images are split into segments.
    pub max_object_size: u64,
}

impl LayoutLimits {
    /// Limits for a memory budget shared by `parts_in_flight` uploading parts plus the one being
    /// filled: the part size is capped at `budget / (parts_in_flight + 1)`, in whole MiB.
    pub(crate) fn from_budget(
        min_part_size: u64,
        memory_budget: u64,
        parts_in_flight: usize,
        max_object_size: u64,
    ) -> Self {
        let slots = parts_in_flight as u64 + 1;
        let max_part_size = (memory_budget / slots / (1 << 20) * (1 << 20))
            .clamp(limits::MIN_PART_SIZE, limits::MAX_PART_SIZE);
        Self {
            min_part_size: min_part_size.max(limits::MIN_PART_SIZE),
            max_part_size: max_part_size.max(min_part_size),
            max_object_size,
        }
    }
}

/// The layout of one image in S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLayout {
    /// Image size in bytes.
    pub size: u64,
    /// Bytes per part.
    pub part_size: u64,
    /// Bytes per segment object (a multiple of `part_size`; the last segment may be shorter).
    pub segment_size: u64,
    /// Number of objects: 1 for an unsplit image.
    pub segments: u64,
}

impl UploadLayout {
    /// The smallest whole-MiB part size within the limits that fits the image into one object of
    /// 10,000 parts; if even the largest allowed part is too small, or the image exceeds the
    /// maximum object size, the image is split into as few segments as the limits allow.
    pub(crate) fn plan(size: u64, limits_: LayoutLimits) -> Result<Self> {
        let LayoutLimits {
            min_part_size,
            max_part_size,
            max_object_size,
        } = limits_;
        let min_part = min_part_size.max(1);
        let max_part = max_part_size.min(max_object_size / (1 << 20) * (1 << 20));
        if max_part < min_part {
            return Err(Error::InvalidSetting(format!(
                "the maximum object size ({max_object_size} bytes) is smaller than one part ({min_part} bytes)"
            )));
        }
        let needed = size.div_ceil(limits::MAX_PARTS).next_multiple_of(1 << 20);
        let part_size = needed.clamp(min_part, max_part);
        if part_size > limits::MAX_PART_SIZE {
            return Err(Error::InvalidSetting(format!(
                "part size {part_size} exceeds S3's {} bytes",
                limits::MAX_PART_SIZE
            )));
        }
        let capacity = max_object_size.min(part_size * limits::MAX_PARTS) / part_size * part_size;
        let segments = size.div_ceil(capacity).max(1);
        Ok(Self {
            size,
            part_size,
            segment_size: if segments == 1 {
                size.max(1).next_multiple_of(part_size)
            } else {
                capacity
            },
            segments,
        })
    }

    /// Whether the image is split into several objects.
    pub(crate) fn is_segmented(&self) -> bool {
        self.segments > 1
    }

    /// Byte offset and length of segment `index` (0-based).
    pub(crate) fn segment(&self, index: u64) -> (u64, u64) {
        let offset = index * self.segment_size;
        (
            offset,
            self.segment_size.min(self.size.saturating_sub(offset)),
        )
    }

    /// The object key of segment `index` for an image stored at `image_key` (see
    /// [`segment_key`]).
    pub(crate) fn segment_key(&self, image_key: &str, index: u64) -> String {
        segment_key(image_key, index, self.segments)
    }
}

/// The object key of segment `index` of `segments` for an image stored at `image_key`: the key
/// itself when unsplit, else `image_key.001`, `.002`, … (1-based, zero-padded to at least 3 digits,
/// the convention of split raw images, so `cat` in name order reassembles the image). The one
/// naming rule, for the sink that stores segments and the manifest check that expects them.
pub(crate) fn segment_key(image_key: &str, index: u64, segments: u64) -> String {
    if segments <= 1 {
        return image_key.to_owned();
    }
    let width = segments.to_string().len().max(3);
    format!("{image_key}.{:0width$}", index + 1)
}

/// Whether `candidate` is a numbered segment of the image at `key` (`key.001`, `key.1234`): the
/// inverse of [`segment_key`], for finding segments another run stored.
pub(super) fn is_segment_key(candidate: &str, key: &str) -> bool {
    candidate
        .strip_prefix(key)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|n| n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    fn default_limits() -> LayoutLimits {
        LayoutLimits::from_budget(
            limits::MIN_PART_SIZE,
            160 * MIB,
            16,
            limits::MAX_OBJECT_SIZE,
        )
    }

    #[test]
    fn small_images_are_one_object_of_minimum_parts() {
        let layout = UploadLayout::plan(100 * MIB, default_limits()).unwrap();
        assert_eq!(layout.part_size, 5 * MIB);
        assert_eq!(layout.segments, 1);
        assert_eq!(layout.segment_key("a/x.image.dd", 0), "a/x.image.dd");
    }

    #[test]
    fn the_memory_budget_caps_parts_and_large_disks_are_split() {
        let limits = default_limits();
        // 160 MiB for 16 parts in flight plus one filling: 9 MiB parts, 87.9 GiB objects.
        assert_eq!(limits.max_part_size, 9 * MIB);
        let layout = UploadLayout::plan(TIB, limits).unwrap();
        assert_eq!(layout.part_size, 9 * MIB);
        assert_eq!(layout.segment_size, 10_000 * 9 * MIB);
        assert_eq!(layout.segments, 12);
        assert_eq!(layout.segment_key("x.image.dd", 11), "x.image.dd.012");
        let (offset, len) = layout.segment(11);
        assert_eq!(offset + len, TIB);
        // A generous budget keeps a 1 TiB disk in one object.
        let big = LayoutLimits::from_budget(limits::MIN_PART_SIZE, 5 * GIB / 4 * 5, 4, 5 * TIB);
        assert_eq!(UploadLayout::plan(TIB, big).unwrap().segments, 1);
    }

    #[test]
    fn a_small_maximum_object_size_splits_on_part_boundaries() {
        let limits = LayoutLimits {
            min_part_size: 8 * MIB,
            max_part_size: 32 * MIB,
            max_object_size: 20 * MIB,
        };
        let layout = UploadLayout::plan(40 * MIB + 1536, limits).unwrap();
        assert_eq!(layout.part_size, 8 * MIB);
        assert_eq!(layout.segment_size, 16 * MIB);
        assert_eq!(layout.segments, 3);
        assert_eq!(layout.segment(2), (32 * MIB, 8 * MIB + 1536));
        let too_small = LayoutLimits {
            max_object_size: 4 * MIB,
            ..limits
        };
        assert!(UploadLayout::plan(40 * MIB, too_small).is_err());
    }

    // The sink keeps a per-segment SHA-256 only for a segmented image: one object is not one.
    #[test]
    fn an_image_is_segmented_only_when_it_spans_several_objects() {
        let one = UploadLayout::plan(100 * MIB, default_limits()).unwrap();
        assert!(!one.is_segmented());
        let two = UploadLayout::plan(10_000 * 9 * MIB + 1, default_limits()).unwrap();
        assert_eq!(two.segments, 2);
        assert!(two.is_segmented());
        let empty = UploadLayout::plan(0, default_limits()).unwrap();
        assert!(!empty.is_segmented());
    }

    // S3 accepts a part of exactly 5 GiB: the refusal starts one byte later, not at the limit.
    #[test]
    fn parts_of_s3s_largest_size_are_planned_and_larger_ones_refused() {
        let largest = LayoutLimits {
            min_part_size: limits::MAX_PART_SIZE,
            max_part_size: limits::MAX_PART_SIZE,
            max_object_size: 50 * TIB,
        };
        let layout = UploadLayout::plan(TIB, largest).unwrap();
        assert_eq!(layout.part_size, limits::MAX_PART_SIZE);
        assert_eq!(layout.segments, 1);
        let larger = LayoutLimits {
            min_part_size: limits::MAX_PART_SIZE + MIB,
            max_part_size: limits::MAX_PART_SIZE + MIB,
            ..largest
        };
        let err = UploadLayout::plan(TIB, larger).unwrap_err().to_string();
        assert!(err.contains("exceeds S3's 5368709120 bytes"), "{err}");
    }

    proptest! {
        #[test]
        fn every_layout_covers_the_image_within_s3_limits(
            size in 0u64..(64 * TIB),
            budget_mib in 40u64..4096,
            in_flight in 1usize..16,
            max_object in prop::sample::select(vec![64 * MIB, 5 * GIB, TIB, 5 * TIB, 50 * TIB]),
        ) {
            let limits = LayoutLimits::from_budget(limits::MIN_PART_SIZE, budget_mib * MIB, in_flight, max_object);
            let layout = UploadLayout::plan(size, limits).unwrap();
            prop_assert!(layout.part_size >= limits::MIN_PART_SIZE);
            prop_assert!(layout.part_size <= limits.max_part_size);
            prop_assert_eq!(layout.part_size % MIB, 0);
            prop_assert_eq!(layout.segment_size % layout.part_size, 0);
            prop_assert!(layout.segment_size / layout.part_size <= limits::MAX_PARTS);
            prop_assert!(layout.segments == 1 || layout.segment_size <= max_object);
            prop_assert!(layout.segments * layout.segment_size >= size);
            prop_assert!((layout.segments - 1) * layout.segment_size < size.max(1));
            // Memory: parts in flight plus the one filling stay within the budget (or the 5 MiB floor).
            prop_assert!(layout.part_size * (in_flight as u64 + 1) <= (budget_mib * MIB).max(limits::MIN_PART_SIZE * (in_flight as u64 + 1)));
        }
    }
}
