//! Reading the source: several O_DIRECT reads in flight, and what to do when sectors will not read.
//!
//! Queue depth matters on EBS: a volume created from a snapshot fetches each block from S3 the first
//! time it is read, so its throughput grows with the number of outstanding requests, while `dd` keeps
//! exactly one. We run `queue_depth` reader threads, each doing a blocking `pread` of a whole chunk;
//! a thread first takes a free buffer and only then claims the next chunk number, so the chunk the
//! hashers wait for always holds a buffer and the pipeline cannot deadlock on an empty pool.
//!
//! Bad-sector policy: a chunk whose read fails with a media error is re-read sector by sector, each
//! sector up to `1 + sector_retries` times. Sectors that still fail are zero-filled and recorded as
//! [`BadRange`]s. Errors that mean the device is gone stop the run instead: zero-filling a detached
//! disk would produce a complete-looking image of nothing.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::buffer::{BufferPool, PooledBuf};
use crate::device::Source;
use crate::error::{Error, Result};
use crate::ranges::{self, BadRange};

/// How long a reader waits for a free buffer before looking at the stop flag again.
const POOL_POLL: Duration = Duration::from_millis(100);

/// How the source is cut into chunks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPlan {
    /// Source size in bytes.
    pub size: u64,
    /// Bytes per chunk (a multiple of the sector size).
    pub chunk_size: u64,
}

impl ChunkPlan {
    /// Number of chunks, the last possibly short.
    pub(crate) fn count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    /// Offset of chunk `index`.
    pub(crate) fn offset(&self, index: u64) -> u64 {
        index * self.chunk_size
    }

    /// Length of chunk `index`.
    pub(crate) fn len(&self, index: u64) -> u64 {
        self.chunk_size.min(self.size - self.offset(index))
    }
}

/// A chunk read from the source, in a pooled buffer that returns to the pool when the last holder drops it.
pub(crate) struct Chunk {
    /// Chunk number in the plan.
    pub index: u64,
    /// Offset of the first byte.
    pub offset: u64,
    len: usize,
    buf: PooledBuf,
    /// Sectors of this chunk that were zero-filled.
    pub bad: Vec<BadRange>,
}

impl Chunk {
    /// A chunk of `len` bytes at `offset` that read whole (no zero-filled sectors).
    pub(crate) fn new(index: u64, offset: u64, len: usize, buf: PooledBuf) -> Self {
        Self {
            index,
            offset,
            len,
            buf,
            bad: Vec::new(),
        }
    }

    /// Exactly the bytes of this chunk (zeros where sectors were bad).
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf.as_slice()[..self.len]
    }
}

/// What a reader thread shares with its siblings.
#[derive(Clone, Copy)]
pub(crate) struct ReaderShared<'a> {
    /// The open source.
    pub source: &'a Source,
    /// The chunk plan.
    pub plan: ChunkPlan,
    /// Buffers.
    pub pool: &'a BufferPool,
    /// Next chunk to claim.
    pub next: &'a AtomicU64,
    /// Set when the run must stop (error elsewhere, or cancellation).
    pub stop: &'a AtomicBool,
    /// Extra attempts per bad sector.
    pub sector_retries: u32,
}

/// Body of one reader thread: claim chunks until there are none left, the run stops, or the consumer goes away.
pub(crate) fn read_worker(shared: &ReaderShared<'_>, chunks: &Sender<Result<Chunk>>) {
    let count = shared.plan.count();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(mut buf) = shared.pool.take_timeout(POOL_POLL) else {
            continue;
        };
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            return;
        }
        let offset = shared.plan.offset(index);
        let len = usize::try_from(shared.plan.len(index)).expect("chunk length fits in memory");
        let result = read_chunk(
            shared.source,
            offset,
            &mut buf.as_mut_slice()[..],
            len,
            shared.sector_retries,
        )
        .map(|bad| Chunk {
            index,
            offset,
            len,
            buf,
            bad,
        });
        let failed = result.is_err();
        if chunks.send(result).is_err() || failed {
            return;
        }
    }
}

/// How a failed read should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFailure {
    /// The medium could not deliver these sectors; other sectors may be fine.
    Media,
    /// The device is gone.
    Vanished,
    /// Anything else: stop.
    Other,
}

fn classify(err: &io::Error) -> ReadFailure {
    match err.raw_os_error() {
        // NVMe reports unrecovered read errors as ENODATA, SCSI/virtio as EIO; EILSEQ and EREMOTEIO
        // come from some transports (dm-integrity, target errors).
        Some(libc::EIO | libc::ENODATA | libc::EILSEQ | libc::EREMOTEIO) => ReadFailure::Media,
        Some(
            libc::ENXIO
            | libc::ENODEV
            | libc::ENOTCONN
            | libc::ECONNABORTED
            | libc::ESHUTDOWN
            | libc::ESTALE,
        ) => ReadFailure::Vanished,
        _ => ReadFailure::Other,
    }
}

/// Reads `len` bytes at `offset` into `buf`, salvaging sector by sector on media errors.
/// Returns the zero-filled ranges (empty when the chunk read cleanly).
pub(crate) fn read_chunk(
    source: &Source,
    offset: u64,
    buf: &mut [u8],
    len: usize,
    sector_retries: u32,
) -> Result<Vec<BadRange>> {
    match pread_full(source, offset, buf, len) {
        Ok(()) => Ok(Vec::new()),
        Err(err) => match classify(&err) {
            ReadFailure::Media => salvage(source, offset, buf, len, sector_retries),
            ReadFailure::Vanished => Err(vanished(source, offset, err)),
            ReadFailure::Other => Err(read_failed(source, offset, err)),
        },
    }
}

/// Re-reads a failed chunk one sector at a time.
fn salvage(
    source: &Source,
    offset: u64,
    buf: &mut [u8],
    len: usize,
    sector_retries: u32,
) -> Result<Vec<BadRange>> {
    let sector_size = source.logical_sector_size();
    let sector = sector_size as usize;
    let mut bad = Vec::new();
    let mut last_err = None;
    for start in (0..len).step_by(sector) {
        let this_len = sector.min(len - start);
        let at = offset + start as u64;
        let target = &mut buf[start..];
        let mut attempt = 0;
        loop {
            match pread_full(source, at, target, this_len) {
                Ok(()) => break,
                Err(err) if classify(&err) == ReadFailure::Media && attempt < sector_retries => {
                    attempt += 1;
                }
                Err(err) if classify(&err) == ReadFailure::Media => {
                    target[..this_len].fill(0);
                    let errno = err.raw_os_error().unwrap_or(libc::EIO);
                    bad.push(BadRange::sector(at, this_len as u64, sector_size, errno));
                    last_err = Some(err);
                    break;
                }
                Err(err) if classify(&err) == ReadFailure::Vanished => {
                    return Err(vanished(source, at, err));
                }
                Err(err) => return Err(read_failed(source, at, err)),
            }
        }
    }
    let all_bad = ranges::total_bytes(&bad) == len as u64;
    if all_bad && !source.still_present() {
        let err = last_err.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EIO));
        return Err(vanished(source, offset, err));
    }
    Ok(ranges::merge(bad))
}

fn read_failed(source: &Source, offset: u64, err: io::Error) -> Error {
    Error::Read {
        path: source.path().to_path_buf(),
        offset,
        source: err,
    }
}

fn vanished(source: &Source, offset: u64, err: io::Error) -> Error {
    Error::SourceVanished {
        path: source.path().to_path_buf(),
        offset,
        source: err,
    }
}

/// `pread` until `len` bytes are in `buf`. O_DIRECT needs the request length aligned, so the request is
/// rounded up to the sector size (the buffer has room); a file that ends inside that rounding returns
/// exactly its remaining bytes. A source that ends earlier than its recorded size has shrunk.
fn pread_full(source: &Source, offset: u64, buf: &mut [u8], len: usize) -> io::Result<()> {
    let sector = source.logical_sector_size() as usize;
    let mut done = 0;
    while done < len {
        let want = (len - done).next_multiple_of(sector).min(buf.len() - done);
        match source
            .file()
            .read_at(&mut buf[done..done + want], offset + done as u64)
        {
            Ok(0) => return Err(io::Error::from_raw_os_error(libc::ENXIO)),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunk_plan_covers_the_source_exactly(size in 0u64..1 << 40, chunk_pow in 9u32..24) {
            let plan = ChunkPlan { size, chunk_size: 1 << chunk_pow };
            let count = plan.count();
            if size == 0 {
                prop_assert_eq!(count, 0);
            } else {
                let last = count - 1;
                prop_assert_eq!(plan.offset(last) + plan.len(last), size);
                prop_assert!(plan.len(last) > 0 && plan.len(last) <= plan.chunk_size);
                prop_assert_eq!(plan.len(0), plan.chunk_size.min(size));
            }
        }
    }

    #[test]
    fn errors_are_classified_as_media_vanished_or_other() {
        let of = |errno| classify(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EIO), ReadFailure::Media);
        assert_eq!(of(libc::ENODATA), ReadFailure::Media);
        assert_eq!(of(libc::ENXIO), ReadFailure::Vanished);
        assert_eq!(of(libc::ENOTCONN), ReadFailure::Vanished);
        assert_eq!(of(libc::EACCES), ReadFailure::Other);
    }
}
