//! What the manifest records of a memory capture (`source.memory`, schema 5 on).

use serde::{Deserialize, Serialize};

use super::MemoryReader;
use crate::ranges::BadRange;

/// Words of `consistency`: memory changes while it is read, so the image is a smear of the
/// interval between `acquisition.started_at` and `acquisition.ended_at`, never one instant.
pub(crate) const SMEAR: &str = "smear";

/// The memory source of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Which interface was read: `kcore` (`/proc/kcore`), `crash` (`/dev/crash`) or `mem` (`/dev/mem`).
    pub reader: MemoryReader,
    /// `uname -r` of the captured kernel.
    pub kernel_release: String,
    /// The exact `Linux version …` line of `/proc/version`: what an examiner matches to a
    /// Volatility symbol table (and what its `banners` plugin finds in the image).
    pub banner: String,
    /// `/proc/sys/kernel/random/boot_id`: which boot of the host the image is of.
    pub boot_id: Option<String>,
    /// `uname -m` (`x86_64`, `aarch64`).
    pub machine: String,
    /// The kernel's page size; bad ranges of a memory image count pages of this size.
    pub page_size: u32,
    /// The instance's AMI, when the instance metadata service answered.
    pub ami_id: Option<String>,
    /// Always `smear`: the image is memory as each page was when it was read, between the
    /// acquisition's start and end — not a single instant.
    pub consistency: String,
    /// The `System RAM` ranges of `/proc/iomem`, in image order: one LiME header each.
    pub ranges: Vec<MemoryRange>,
}

/// One range of physical memory in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRange {
    /// First physical address.
    pub start: u64,
    /// One past the last (the LiME header holds `end - 1`).
    pub end: u64,
    /// Image offset of the range's LiME header; its bytes follow the 32-byte header.
    pub image_offset: u64,
    /// Bytes read from memory; the rest of the range was unreadable, written as zeros and listed
    /// in `bad_ranges`.
    pub bytes_read: u64,
}

/// Longest text field kept (the banner is about 200 bytes; a release about 40).
const MAX_TEXT: usize = 1024;

impl MemoryRecord {
    /// Whether this record describes a LiME image of `size` bytes exactly: ranges in ascending
    /// order without overlap, each placed right after the previous one's bytes, none read beyond
    /// its length; the fixed words and bounded texts this program writes.
    pub(crate) fn check(&self, size: u64) -> Result<(), String> {
        if self.consistency != SMEAR {
            return Err(format!(
                "consistency is {:?}, not {SMEAR:?}",
                self.consistency
            ));
        }
        if !self.page_size.is_power_of_two() || self.page_size < 512 {
            return Err(format!(
                "page_size {} is not a power of two of at least 512",
                self.page_size
            ));
        }
        for (what, text) in [
            ("banner", &self.banner),
            ("kernel_release", &self.kernel_release),
            ("machine", &self.machine),
        ] {
            if text.len() > MAX_TEXT {
                return Err(format!("{what} is longer than {MAX_TEXT} bytes"));
            }
        }
        if self.ranges.is_empty() {
            return Err("no range is recorded".to_owned());
        }
        let mut offset = 0u64;
        let mut previous_end = 0u64;
        for (index, range) in self.ranges.iter().enumerate() {
            let at = format!("ranges[{index}]");
            if range.end <= range.start {
                return Err(format!(
                    "{at} ends at {:#x}, not after its start {:#x}",
                    range.end, range.start
                ));
            }
            if index > 0 && range.start < previous_end {
                return Err(format!(
                    "{at} starts at {:#x}, before the previous range's end {previous_end:#x}",
                    range.start
                ));
            }
            if range.image_offset != offset {
                return Err(format!(
                    "{at} is at image offset {}, not {offset} (right after the range before)",
                    range.image_offset
                ));
            }
            let len = range.end - range.start;
            if range.bytes_read > len {
                return Err(format!(
                    "{at} read {} bytes of a {len}-byte range",
                    range.bytes_read
                ));
            }
            offset = offset
                .checked_add(super::lime::HEADER_LEN + len)
                .ok_or_else(|| format!("{at} ends past the largest image"))?;
            previous_end = range.end;
        }
        if offset != size {
            return Err(format!(
                "the ranges and their headers make {offset} bytes, not the image's {size}"
            ));
        }
        Ok(())
    }

    /// Sets each bad range's page numbers from the physical addresses it covers: merging pieces
    /// of a range that chunk boundaries cut would otherwise count a page split between two chunks
    /// twice.
    pub(crate) fn renumber(&self, bad: &mut [BadRange]) {
        for range in bad {
            if let Some((first, count)) =
                self.pages_of(range.offset, range.length, u64::from(range.sector_size))
            {
                range.first_sector = first;
                range.sector_count = count;
            }
        }
    }

    /// The physical pages (first page frame number, count) of `len` image bytes at `offset`, in
    /// pages of `page` bytes, when those bytes are memory of one range (not a header).
    pub(crate) fn pages_of(&self, offset: u64, len: u64, page: u64) -> Option<(u64, u64)> {
        if len == 0 || page == 0 {
            return None;
        }
        let range = self.ranges.iter().find(|r| {
            let data = r.image_offset + super::lime::HEADER_LEN;
            offset >= data
                && offset
                    .checked_add(len)
                    .is_some_and(|end| end <= data + (r.end - r.start))
        })?;
        let address = range.start + (offset - range.image_offset - super::lime::HEADER_LEN);
        let (first, last) = (address / page, (address + len - 1) / page);
        Some((first, last - first + 1))
    }

    /// Sets each range's `bytes_read` from the run's zero-filled ranges (image offsets).
    pub(crate) fn count_read(&mut self, bad: &[BadRange]) {
        for range in &mut self.ranges {
            let data = range.image_offset + super::lime::HEADER_LEN;
            let data_end = data + (range.end - range.start);
            let lost: u64 = bad
                .iter()
                .map(|b| b.end().min(data_end).saturating_sub(b.offset.max(data)))
                .sum();
            range.bytes_read = (range.end - range.start) - lost;
        }
    }
}
