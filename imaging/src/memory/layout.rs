//! Where each byte of a LiME image comes from: a header this crate writes, or physical memory at
//! a reader's file offset (or nothing, for memory no reader maps). The image is laid out once,
//! before the first read, so its size is known and the pipeline can cut it into chunks like any
//! other source; filling a chunk is then a walk over this plan.

use super::kcore::Extent;
use super::lime;

/// One RAM range of the image: its header at `image_offset`, its bytes right after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlacedRange {
    /// First physical address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Image offset of the range's LiME header.
    pub image_offset: u64,
    /// The range cut by what maps it, in address order, covering it exactly.
    pub extents: Vec<Extent>,
}

impl PlacedRange {
    /// Image offset of the range's first byte of memory.
    pub(crate) fn data_offset(&self) -> u64 {
        self.image_offset + lime::HEADER_LEN
    }

    /// Image offset one past the range's last byte.
    pub(crate) fn image_end(&self) -> u64 {
        self.data_offset() + (self.end - self.start)
    }
}

/// A piece of the image to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// `len` bytes of header bytes `header[from..from + len]` of the range starting at `start`.
    Header {
        start: u64,
        end: u64,
        from: usize,
        len: usize,
    },
    /// `len` bytes of memory at physical `address`, at the reader's `file_offset` (`None`: unmapped).
    Memory {
        address: u64,
        file_offset: Option<u64>,
        len: usize,
    },
}

/// The whole image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LimeLayout {
    /// The ranges in image order (ascending addresses).
    pub ranges: Vec<PlacedRange>,
}

impl LimeLayout {
    /// Places `ranges` (each with its extents) one after the other.
    pub(crate) fn new(ranges: Vec<((u64, u64), Vec<Extent>)>) -> Self {
        let mut offset = 0;
        let ranges = ranges
            .into_iter()
            .map(|((start, end), extents)| {
                let placed = PlacedRange {
                    start,
                    end,
                    image_offset: offset,
                    extents,
                };
                offset = placed.image_end();
                placed
            })
            .collect();
        Self { ranges }
    }

    /// Image size: every range's header and bytes.
    pub(crate) fn size(&self) -> u64 {
        self.ranges.last().map_or(0, PlacedRange::image_end)
    }

    /// The pieces that make image bytes `[offset, offset + len)`, in order, their lengths summing
    /// to `len` (clipped at the image's end).
    pub(crate) fn pieces(&self, offset: u64, len: usize) -> Vec<Span> {
        let end = offset.saturating_add(len as u64).min(self.size());
        let mut out = Vec::new();
        let first = self.ranges.partition_point(|r| r.image_end() <= offset);
        let mut at = offset;
        for range in &self.ranges[first..] {
            if at >= end {
                break;
            }
            if at < range.data_offset() {
                let from = at - range.image_offset;
                let stop = range.data_offset().min(end);
                out.push(Span::Header {
                    start: range.start,
                    end: range.end,
                    from: small(from),
                    len: small(stop - at),
                });
                at = stop;
            }
            for extent in &range.extents {
                let extent_image = range.data_offset() + (extent.start - range.start);
                let extent_end = extent_image + extent.len;
                if at >= end || at >= extent_end {
                    continue;
                }
                let skip = at - extent_image;
                let stop = extent_end.min(end);
                out.push(Span::Memory {
                    address: extent.start + skip,
                    file_offset: extent.file_offset.map(|o| o + skip),
                    len: small(stop - at),
                });
                at = stop;
            }
        }
        out
    }
}

/// A length or offset inside one chunk (at most `usize` by construction) as a `usize`.
pub(crate) fn small(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ranges: `[0x1000, 0x3000)` read at file offset 0x1000, and `[0x8000, 0x9000)` unmapped.
    fn two_ranges() -> LimeLayout {
        LimeLayout::new(vec![
            (
                (0x1000, 0x3000),
                vec![Extent {
                    start: 0x1000,
                    len: 0x2000,
                    file_offset: Some(0x1000),
                }],
            ),
            (
                (0x8000, 0x9000),
                vec![Extent {
                    start: 0x8000,
                    len: 0x1000,
                    file_offset: None,
                }],
            ),
        ])
    }

    #[test]
    fn ranges_are_placed_header_then_bytes_one_after_another() {
        let layout = two_ranges();
        let offsets: Vec<_> = layout.ranges.iter().map(|r| r.image_offset).collect();
        assert_eq!(offsets, [0, 32 + 0x2000]);
        assert_eq!(layout.size(), 64 + 0x3000);
    }

    #[test]
    fn pieces_starting_at_a_ranges_first_byte_of_memory_hold_no_header() {
        let layout = two_ranges();
        assert_eq!(
            layout.pieces(32, 0x10),
            [Span::Memory {
                address: 0x1000,
                file_offset: Some(0x1000),
                len: 0x10
            }]
        );
        let second = 32 + 0x2000 + 32;
        assert_eq!(
            layout.pieces(second, 0x2000),
            [Span::Memory {
                address: 0x8000,
                file_offset: None,
                len: 0x1000
            }]
        );
    }

    #[test]
    fn pieces_across_a_range_end_take_the_next_header_part_by_part() {
        let layout = two_ranges();
        assert_eq!(
            layout.pieces(0x2000 + 16, 32),
            [
                Span::Memory {
                    address: 0x2ff0,
                    file_offset: Some(0x2ff0),
                    len: 16
                },
                Span::Header {
                    start: 0x8000,
                    end: 0x9000,
                    from: 0,
                    len: 16
                }
            ]
        );
        assert_eq!(
            layout.pieces(0x2000 + 32 + 16, 20),
            [
                Span::Header {
                    start: 0x8000,
                    end: 0x9000,
                    from: 16,
                    len: 16
                },
                Span::Memory {
                    address: 0x8000,
                    file_offset: None,
                    len: 4
                }
            ]
        );
    }
}
