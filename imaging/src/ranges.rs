//! Bad-sector bookkeeping: single unreadable sectors merged into the exact byte ranges an examiner
//! needs to know were zero-filled.

use serde::{Deserialize, Serialize};

/// A run of consecutive unreadable sectors that were written to the image as zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRange {
    /// First byte of the range in the source (and the image).
    pub offset: u64,
    /// Length in bytes (a whole number of sectors, except at the end of an odd-sized file).
    pub length: u64,
    /// First logical sector, in units of `sector_size`.
    pub first_sector: u64,
    /// Number of sectors.
    pub sector_count: u64,
    /// The logical sector size used for the numbers above.
    pub sector_size: u32,
    /// The OS error of the last failed attempt (EIO = 5, ENODATA = 61 on NVMe).
    pub errno: i32,
}

impl BadRange {
    /// One unreadable sector (or the short tail of a file) at `offset`.
    pub fn sector(offset: u64, length: u64, sector_size: u32, errno: i32) -> Self {
        Self {
            offset,
            length,
            first_sector: offset / u64::from(sector_size),
            sector_count: 1,
            sector_size,
            errno,
        }
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// Sorts ranges and merges those that touch and share an errno, so the manifest lists each run once.
pub(crate) fn merge(mut ranges: Vec<BadRange>) -> Vec<BadRange> {
    ranges.sort_by_key(|r| r.offset);
    let mut merged: Vec<BadRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if last.end() == range.offset && last.errno == range.errno => {
                last.length += range.length;
                last.sector_count += range.sector_count;
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// Total bytes covered by `ranges`.
pub(crate) fn total_bytes(ranges: &[BadRange]) -> u64 {
    ranges.iter().map(|r| r.length).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn adjacent_sectors_merge_and_gaps_do_not() {
        let sectors = vec![
            BadRange::sector(2048 * 512, 512, 512, 5),
            BadRange::sector(10 * 512, 512, 512, 5),
            BadRange::sector(11 * 512, 512, 512, 5),
            BadRange::sector(13 * 512, 512, 512, 5),
        ];
        let merged = merge(sectors);
        assert_eq!(merged.len(), 3);
        assert_eq!((merged[0].first_sector, merged[0].sector_count), (10, 2));
        assert_eq!(merged[0].length, 1024);
        assert_eq!(merged[1].first_sector, 13);
        assert_eq!(merged[2].first_sector, 2048);
    }

    #[test]
    fn different_errors_stay_separate() {
        let merged = merge(vec![
            BadRange::sector(0, 512, 512, 5),
            BadRange::sector(512, 512, 512, 61),
        ]);
        assert_eq!(merged.len(), 2);
    }

    proptest! {
        #[test]
        fn merging_keeps_every_byte_exactly_once(sectors in proptest::collection::btree_set(0u64..4096, 0..200)) {
            let ranges: Vec<_> = sectors.iter().map(|&s| BadRange::sector(s * 512, 512, 512, 5)).collect();
            let merged = merge(ranges);
            prop_assert_eq!(total_bytes(&merged), sectors.len() as u64 * 512);
            for pair in merged.windows(2) {
                prop_assert!(pair[0].end() < pair[1].offset, "merged ranges must not touch");
            }
            for range in &merged {
                for s in range.first_sector..range.first_sector + range.sector_count {
                    prop_assert!(sectors.contains(&s));
                }
            }
        }
    }
}
