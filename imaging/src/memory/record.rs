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

/// The pages (first page frame number, count) that `len` bytes of memory at physical `address`
/// touch, in pages of `page` bytes (`len` and `page` not zero): a page partly covered counts.
pub(crate) fn pages(address: u64, len: u64, page: u64) -> (u64, u64) {
    let (first, last) = (address / page, (address + len - 1) / page);
    (first, last - first + 1)
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
            if range.start < previous_end {
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
        Some(pages(address, len, page))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::lime::HEADER_LEN;

    /// A record of `ranges` (`[start, end)`), each read whole and placed right after the one before.
    fn record_of(ranges: &[(u64, u64)]) -> MemoryRecord {
        let mut offset = 0;
        MemoryRecord {
            reader: MemoryReader::Kcore,
            kernel_release: "6.1.0-28-amd64".to_owned(),
            banner: "Linux version 6.1.0-28-amd64".to_owned(),
            boot_id: None,
            machine: "x86_64".to_owned(),
            page_size: 4096,
            ami_id: None,
            consistency: SMEAR.to_owned(),
            ranges: ranges
                .iter()
                .map(|&(start, end)| {
                    let range = MemoryRange {
                        start,
                        end,
                        image_offset: offset,
                        bytes_read: end - start,
                    };
                    offset += HEADER_LEN + (end - start);
                    range
                })
                .collect(),
        }
    }

    /// The image size `record` describes when it is right.
    fn size_of(record: &MemoryRecord) -> u64 {
        record
            .ranges
            .iter()
            .map(|r| HEADER_LEN + (r.end - r.start))
            .sum()
    }

    fn checked(record: &MemoryRecord) -> Result<(), String> {
        record.check(size_of(record))
    }

    #[test]
    fn a_record_of_ranges_placed_one_after_another_passes() {
        let record = record_of(&[(0x1000, 0x9fc00), (0x10_0000, 0x20_0000)]);
        assert_eq!(checked(&record), Ok(()));
        assert!(
            record
                .check(size_of(&record) + 1)
                .unwrap_err()
                .contains("not the image's")
        );
    }

    #[test]
    fn the_page_size_is_a_power_of_two_of_at_least_512() {
        for (page_size, passes) in [
            (512, true),
            (4096, true),
            (65536, true),
            (256, false),
            (0, false),
            (4095, false),
            (3 * 512, false),
        ] {
            let mut record = record_of(&[(0x1000, 0x2000)]);
            record.page_size = page_size;
            let result = checked(&record);
            assert_eq!(result.is_ok(), passes, "{page_size}: {result:?}");
            if !passes {
                assert!(result.unwrap_err().contains("page_size"));
            }
        }
    }

    #[test]
    fn texts_of_up_to_1024_bytes_pass_and_longer_ones_do_not() {
        for (len, passes) in [(MAX_TEXT, true), (MAX_TEXT + 1, false)] {
            let mut record = record_of(&[(0x1000, 0x2000)]);
            record.banner = "b".repeat(len);
            let result = checked(&record);
            assert_eq!(result.is_ok(), passes, "{len}: {result:?}");
            if !passes {
                assert!(result.unwrap_err().contains("banner is longer"));
            }
        }
        let mut record = record_of(&[(0x1000, 0x2000)]);
        record.machine = "m".repeat(MAX_TEXT + 1);
        assert!(checked(&record).unwrap_err().contains("machine"));
    }

    #[test]
    fn ranges_may_touch_but_not_overlap_or_go_backwards() {
        let touching = record_of(&[(0x1000, 0x2000), (0x2000, 0x3000), (0x8000, 0x9000)]);
        assert_eq!(checked(&touching), Ok(()));
        for ranges in [
            [(0x1000, 0x2000), (0x1fff, 0x3000), (0x8000, 0x9000)],
            [(0x1000, 0x2000), (0x2000, 0x3000), (0x1000, 0x1800)],
        ] {
            let err = checked(&record_of(&ranges)).unwrap_err();
            assert!(err.contains("before the previous range's end"), "{err}");
        }
        let first_at_zero = record_of(&[(0, 0x1000), (0x1000, 0x2000)]);
        assert_eq!(checked(&first_at_zero), Ok(()));
    }

    #[test]
    fn a_record_that_is_not_this_programs_is_refused() {
        let mut other = record_of(&[(0x1000, 0x2000)]);
        other.consistency = "atomic".to_owned();
        assert!(checked(&other).unwrap_err().contains("consistency"));
        let none = record_of(&[]);
        assert!(checked(&none).unwrap_err().contains("no range"));
        let mut empty = record_of(&[(0x1000, 0x2000)]);
        empty.ranges[0].end = 0x1000;
        assert!(checked(&empty).unwrap_err().contains("not after its start"));
        let mut misplaced = record_of(&[(0x1000, 0x2000), (0x3000, 0x4000)]);
        misplaced.ranges[1].image_offset += 1;
        assert!(checked(&misplaced).unwrap_err().contains("image offset"));
        let mut overread = record_of(&[(0x1000, 0x2000)]);
        overread.ranges[0].bytes_read = 0x1001;
        assert!(checked(&overread).unwrap_err().contains("read 4097 bytes"));
    }

    #[test]
    fn pages_of_memory_bytes_count_every_page_they_touch() {
        let record = record_of(&[(0x1000, 0x9000), (0x10_0000, 0x10_4000)]);
        let data = HEADER_LEN;
        // One whole page, the first of the range.
        assert_eq!(record.pages_of(data, 0x1000, 0x1000), Some((1, 1)));
        // A range ending mid-page counts the partial page.
        assert_eq!(record.pages_of(data + 0x800, 0x1000, 0x1000), Some((1, 2)));
        // One byte, the last of the range.
        assert_eq!(record.pages_of(data + 0x7fff, 1, 0x1000), Some((8, 1)));
        // The second range: after the first's header and bytes, and its own header.
        let second = 2 * HEADER_LEN + 0x8000;
        assert_eq!(
            record.pages_of(second + 0x2000, 0x2000, 0x1000),
            Some((0x102, 2))
        );
    }

    #[test]
    fn pages_of_nothing_or_of_a_header_are_none() {
        let record = record_of(&[(0x1000, 0x9000), (0x10_0000, 0x10_4000)]);
        let data = HEADER_LEN;
        assert_eq!(record.pages_of(data, 0, 0x1000), None);
        assert_eq!(record.pages_of(data, 0x1000, 0), None);
        assert_eq!(record.pages_of(0, 0x10, 0x1000), None);
        // Bytes running past the range's end into the next header.
        assert_eq!(record.pages_of(data + 0x7000, 0x1001, 0x1000), None);
        assert_eq!(record.pages_of(u64::MAX, 2, 0x1000), None);
    }

    #[test]
    fn bad_ranges_are_renumbered_by_the_pages_they_cover() {
        let record = record_of(&[(0x1000, 0x9000)]);
        let mut bad = [BadRange {
            offset: HEADER_LEN + 0x800,
            length: 0x1000,
            first_sector: 99,
            sector_count: 99,
            sector_size: 4096,
            errno: libc::EIO,
        }];
        record.renumber(&mut bad);
        assert_eq!((bad[0].first_sector, bad[0].sector_count), (1, 2));
    }

    #[test]
    fn each_range_counts_the_bytes_not_zero_filled() {
        let mut record = record_of(&[(0x1000, 0x9000), (0x10_0000, 0x10_4000)]);
        let second = 2 * HEADER_LEN + 0x8000;
        let bad = |offset, length| BadRange {
            offset,
            length,
            first_sector: 0,
            sector_count: 1,
            sector_size: 4096,
            errno: libc::EIO,
        };
        record.count_read(&[
            bad(HEADER_LEN + 0x1000, 0x1000),
            bad(HEADER_LEN + 0x3000, 0x800),
            bad(second, 0x4000),
        ]);
        let read: Vec<_> = record.ranges.iter().map(|r| r.bytes_read).collect();
        assert_eq!(read, [0x8000 - 0x1800, 0]);
    }
}
