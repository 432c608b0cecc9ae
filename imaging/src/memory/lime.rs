//! The LiME format (Linux Memory Extractor, `lime` format version 1): each range of physical
//! memory is a 32-byte header followed by the range's bytes, so an image is self-describing and
//! Volatility, Rekall and `avml-convert` read it without a separate map. A header is
//!
//! ```text
//!   u32 magic  0x4C694D45 ("EMiL" little-endian)   u32 version 1
//!   u64 start  first physical address               u64 end   LAST physical address (inclusive)
//!   [u8; 8]    reserved, zero
//! ```
//! all little-endian. The inclusive end is LiME's; everything else in this crate uses exclusive
//! ends, and the conversion happens only here.

use std::io::{Read, Seek, SeekFrom};

/// Bytes of one header.
const HEADER_BYTES: usize = 32;
/// The same, as an image offset.
pub(crate) const HEADER_LEN: u64 = HEADER_BYTES as u64;
/// `EMiL` read as a little-endian `u32`.
const MAGIC: u32 = 0x4C69_4D45;
/// The only format version written and read.
const VERSION: u32 = 1;

/// The header of the range `[start, end)` (`end` exclusive, `end > start`).
pub(crate) fn header(start: u64, end: u64) -> [u8; HEADER_BYTES] {
    debug_assert!(end > start, "a LiME range holds at least one byte");
    let mut out = [0u8; HEADER_BYTES];
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&start.to_le_bytes());
    out[16..24].copy_from_slice(&(end - 1).to_le_bytes());
    out
}

/// Reads a header: the range `[start, end)` it announces, or why these bytes are not one.
pub(crate) fn parse_header(bytes: &[u8; HEADER_BYTES]) -> Result<(u64, u64), String> {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let quad = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if word(0) != MAGIC {
        return Err(format!(
            "magic {:#010x} is not LiME's {MAGIC:#010x}",
            word(0)
        ));
    }
    if word(4) != VERSION {
        return Err(format!("LiME version {} (only {VERSION} is read)", word(4)));
    }
    if bytes[24..].iter().any(|&b| b != 0) {
        return Err("the reserved bytes are not zero".to_owned());
    }
    let (start, last) = (quad(8), quad(16));
    if last < start {
        return Err(format!(
            "range end {last:#x} is before its start {start:#x}"
        ));
    }
    let end = last
        .checked_add(1)
        .ok_or_else(|| "range end is past the last address".to_owned())?;
    Ok((start, end))
}

/// Walks an image as its bytes go by (in any slicing), checking that it is a sequence of
/// well-formed LiME ranges in ascending, non-overlapping order that ends exactly at a range's end.
/// `verify` feeds it the bytes it hashes, so a stored image's structure is checked in the same
/// single read, from a file or from S3.
#[derive(Debug, Default)]
pub struct LimeWalker {
    /// Bytes of the header being read.
    header: Vec<u8>,
    /// Data bytes left in the current range.
    data_left: u64,
    /// Image offset of the next byte.
    offset: u64,
    /// Ranges found, `[start, end)`.
    ranges: Vec<(u64, u64)>,
    /// The first problem; nothing more is checked after it.
    problem: Option<String>,
}

impl LimeWalker {
    /// A walker at the image's first byte.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the image.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.problem.is_none() {
            if self.data_left > 0 {
                let take =
                    usize::try_from(self.data_left).map_or(bytes.len(), |l| l.min(bytes.len()));
                self.data_left -= take as u64;
                self.offset += take as u64;
                bytes = &bytes[take..];
                continue;
            }
            let want = HEADER_BYTES - self.header.len();
            let take = want.min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() == HEADER_BYTES {
                self.end_header();
            }
        }
    }

    fn end_header(&mut self) {
        let at = self.offset;
        let header: [u8; HEADER_BYTES] = self.header.as_slice().try_into().expect("a whole header");
        self.header.clear();
        self.offset += HEADER_LEN;
        match parse_header(&header) {
            Err(why) => self.problem = Some(format!("no LiME header at image offset {at}: {why}")),
            Ok((start, end)) => {
                if let Some(&(_, previous_end)) = self.ranges.last()
                    && start < previous_end
                {
                    self.problem = Some(format!(
                        "the LiME range at image offset {at} starts at {start:#x}, before the previous range's end {previous_end:#x}"
                    ));
                    return;
                }
                self.data_left = end - start;
                self.ranges.push((start, end));
            }
        }
    }

    /// The ranges of a complete, well-formed image, or the first thing wrong with it.
    pub fn finish(self) -> Result<Vec<(u64, u64)>, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if !self.header.is_empty() {
            return Err(format!(
                "the image ends inside a LiME header ({} of {HEADER_LEN} bytes at image offset {})",
                self.header.len(),
                self.offset
            ));
        }
        if self.data_left > 0 {
            return Err(format!(
                "the image ends {} bytes before the end of its last LiME range",
                self.data_left
            ));
        }
        if self.ranges.is_empty() {
            return Err("the image holds no LiME range".to_owned());
        }
        Ok(self.ranges)
    }
}

/// The ranges of the LiME image `file` of `size` bytes, read header by header (32 bytes per
/// range, the memory skipped): what [`LimeWalker`] finds in a whole read, for an image that is
/// already hashed through another read.
pub fn read_ranges<R: Read + Seek>(mut file: R, size: u64) -> Result<Vec<(u64, u64)>, String> {
    let mut walker = LimeWalker::new();
    let mut header = [0u8; HEADER_BYTES];
    let mut at = 0u64;
    while at < size {
        let take = usize::try_from(size - at).map_or(HEADER_BYTES, |left| left.min(HEADER_BYTES));
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut header[..take]))
            .map_err(|e| format!("cannot read the image at offset {at}: {e}"))?;
        walker.feed(&header[..take]);
        if walker.problem.is_some() || take < HEADER_BYTES {
            break;
        }
        // Skip the range's bytes: the walker counts them as seen.
        let skip = walker.data_left.min(size - at - HEADER_LEN);
        walker.data_left -= skip;
        walker.offset += skip;
        at += HEADER_LEN + skip;
    }
    walker.finish()
}

#[cfg(test)]
#[path = "lime_tests.rs"]
mod tests;
