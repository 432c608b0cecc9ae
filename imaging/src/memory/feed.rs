//! The memory source's side of the pipeline: the LiME image produced chunk by chunk, in order, by
//! one thread. Reading memory is a copy by the kernel, not a device's latency, so one reader
//! keeps up with the hashers; more threads would only take more of the suspect's CPU.
//!
//! A piece of memory that does not read is re-read page by page; pages that still fail are
//! written as zeros and recorded as bad ranges (image offsets, counted in pages, `first_sector`
//! the physical page frame number), like a disk's bad sectors. Memory that no segment of
//! `/proc/kcore` maps is recorded the same way, with ENXIO.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::Memory;
use super::layout::{Span, small};
use super::lime;
use super::record::pages;
use crate::buffer::BufferPool;
use crate::error::{Error, Result};
use crate::ranges::BadRange;
use crate::reader::{Chunk, ChunkPlan};

/// How long the loop waits for a free buffer before looking at the stop flag again.
const POOL_POLL: Duration = Duration::from_millis(100);

/// Feeds the whole image to `chunks`, in order. Returns when every chunk was sent, the run stops,
/// or the pipeline hangs up.
pub(crate) fn feed(
    memory: &Memory,
    plan: ChunkPlan,
    pool: &BufferPool,
    stop: &AtomicBool,
    chunks: &Sender<Result<Chunk>>,
) {
    for index in 0..plan.count() {
        let mut buf = loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Some(buf) = pool.take_timeout(POOL_POLL) {
                break buf;
            }
        };
        let (offset, len) = (plan.offset(index), plan.len(index));
        let Ok(len) = usize::try_from(len) else {
            let _ = chunks.send(Err(Error::Internal("a chunk fits in memory")));
            return;
        };
        let bad = fill(memory, offset, &mut buf.as_mut_slice()[..len]);
        let mut chunk = Chunk::new(index, offset, len, buf);
        chunk.bad = bad;
        if chunks.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Fills `buf` with image bytes `[offset, offset + buf.len())`; returns what was zero-filled.
pub(crate) fn fill(memory: &Memory, offset: u64, buf: &mut [u8]) -> Vec<BadRange> {
    let page = u64::from(memory.page_size());
    let mut bad = Vec::new();
    let mut at = 0usize;
    for piece in memory.layout().pieces(offset, buf.len()) {
        let image_offset = offset + at as u64;
        match piece {
            Span::Header {
                start,
                end,
                from,
                len,
            } => {
                buf[at..at + len].copy_from_slice(&lime::header(start, end)[from..from + len]);
                at += len;
            }
            Span::Memory {
                address,
                file_offset,
                len,
            } => {
                let out = &mut buf[at..at + len];
                match file_offset {
                    None => {
                        out.fill(0);
                        bad.push(lost(image_offset, address, len as u64, page, libc::ENXIO));
                    }
                    Some(file_offset) => {
                        if read_exact_at(memory.file(), out, file_offset).is_err() {
                            read_by_page(
                                memory.file(),
                                out,
                                file_offset,
                                address,
                                image_offset,
                                page,
                                &mut bad,
                            );
                        }
                    }
                }
                at += len;
            }
        }
    }
    bad
}

/// Reads `out` page by page (pages of physical memory), zero-filling and recording those that fail.
fn read_by_page(
    file: &File,
    out: &mut [u8],
    file_offset: u64,
    address: u64,
    image_offset: u64,
    page: u64,
    bad: &mut Vec<BadRange>,
) {
    let mut done = 0u64;
    while done < out.len() as u64 {
        let here = address + done;
        let step = (page - here % page).min(out.len() as u64 - done);
        let slice = &mut out[small(done)..small(done + step)];
        if let Err(errno) = read_exact_at(file, slice, file_offset + done) {
            slice.fill(0);
            bad.push(lost(image_offset + done, here, step, page, errno));
        }
        done += step;
    }
}

/// Reads exactly `out.len()` bytes at `offset` (std retries an interrupted read); the errno of the
/// failure, ENODATA for a short read.
fn read_exact_at(file: &File, out: &mut [u8], offset: u64) -> std::result::Result<(), i32> {
    file.read_exact_at(out, offset).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => libc::ENODATA,
        _ => e.raw_os_error().unwrap_or(libc::EIO),
    })
}

/// The record of `len` bytes of memory at `address` (image offset `image_offset`) written as zeros.
fn lost(image_offset: u64, address: u64, len: u64, page: u64, errno: i32) -> BadRange {
    let (first_sector, sector_count) = pages(address, len, page);
    BadRange {
        offset: image_offset,
        length: len,
        first_sector,
        sector_count,
        sector_size: u32::try_from(page).unwrap_or(u32::MAX),
        errno,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_short_read_is_enodata_and_a_failed_one_its_own_errno() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[7u8; 100]).unwrap();
        let mut out = [0u8; 10];
        assert_eq!(read_exact_at(&file, &mut out, 90), Ok(()));
        assert_eq!(out, [7u8; 10]);
        assert_eq!(read_exact_at(&file, &mut out, 95), Err(libc::ENODATA));
        let dir = tempfile::tempdir().unwrap();
        let dir = File::open(dir.path()).unwrap();
        assert_eq!(read_exact_at(&dir, &mut out, 0), Err(libc::EISDIR));
    }
}
