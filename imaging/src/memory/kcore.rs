//! `/proc/kcore`: the kernel's memory as an ELF core file. Each `PT_LOAD` program header maps a
//! piece of kernel virtual memory to a file offset; for the direct map of RAM (and the kernel
//! text) the kernel also fills in `p_paddr`, the physical address, and sets it to all ones for
//! the rest (vmalloc, modules, vmemmap). So a physical range of RAM is read from the file at
//! `p_offset + (address - p_paddr)` of a segment that covers it. AVML instead takes the lowest
//! segment's virtual address as the direct map's base; `p_paddr` says it outright, on x86_64 and
//! arm64 alike.
//!
//! Parsing uses the `elf` crate, which reads only the header and the program headers.

use std::io::{Read, Seek};

use elf::ElfStream;
use elf::abi::PT_LOAD;
use elf::endian::AnyEndian;

use super::iomem::PhysRange;

/// A piece of physical memory and where the file holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// First physical address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// File offset of `start`.
    pub file_offset: u64,
}

/// A piece of one RAM range: read from `file_offset` on, or unmapped (no segment covers it; it is
/// written as zeros and recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First physical address.
    pub start: u64,
    /// Bytes.
    pub len: u64,
    /// Where a reader finds `start`, when anywhere.
    pub file_offset: Option<u64>,
}

/// The physical segments of the kcore `file` (its header and program headers are read; the
/// rest is not touched), sorted by start; none is empty.
pub(crate) fn segments<R: Read + Seek>(file: R) -> Result<Vec<Segment>, String> {
    let elf = ElfStream::<AnyEndian, R>::open_stream(file)
        .map_err(|e| format!("not an ELF core file: {e}"))?;
    let mut found: Vec<Segment> = elf
        .segments()
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_paddr != u64::MAX)
        .filter_map(|p| {
            let len = p.p_filesz.min(p.p_memsz);
            if len == 0 {
                return None;
            }
            Some(Segment {
                start: p.p_paddr,
                end: p.p_paddr.checked_add(len)?,
                file_offset: p.p_offset,
            })
        })
        .collect();
    found.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    if found.is_empty() {
        return Err("no program header gives a physical address (p_paddr)".to_owned());
    }
    Ok(found)
}

/// `range` cut into extents by `segments` (sorted by start): where segments overlap (the kernel
/// text lies inside the direct map) the one reaching furthest is used; gaps are unmapped.
pub(crate) fn extents(range: PhysRange, segments: &[Segment]) -> Vec<Extent> {
    let (mut at, end) = range;
    let mut out = Vec::new();
    while at < end {
        let covering = segments
            .iter()
            .filter(|s| s.start <= at && at < s.end)
            .max_by_key(|s| s.end);
        match covering {
            Some(s) => {
                let stop = s.end.min(end);
                out.push(Extent {
                    start: at,
                    len: stop - at,
                    file_offset: Some(s.file_offset + (at - s.start)),
                });
                at = stop;
            }
            None => {
                let stop = segments
                    .iter()
                    .map(|s| s.start)
                    .filter(|&start| start > at)
                    .min()
                    .map_or(end, |start| start.min(end));
                out.push(Extent {
                    start: at,
                    len: stop - at,
                    file_offset: None,
                });
                at = stop;
            }
        }
    }
    out
}

/// `range` as one extent of a device addressed by physical address (`/dev/mem`, `/dev/crash`).
pub(crate) fn identity_extent(range: PhysRange) -> Extent {
    Extent {
        start: range.0,
        len: range.1 - range.0,
        file_offset: Some(range.0),
    }
}
