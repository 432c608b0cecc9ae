//! The acquisition pipeline: readers → reorder → hashers and sink, all overlapping.
//!
//! ```text
//!   reader ×queue_depth ──▶ reorder (this thread) ──▶ one thread per hash stage
//!        (pread, O_DIRECT)     (chunks in order)   └─▶ sink writer
//! ```
//! A hash stage is one whole-image algorithm, with the BLAKE3 pieces beside the whole-image BLAKE3,
//! and SHA-256 pieces in a stage of their own ([`HashStage::plan`] says why).
//! Every stage gets the same chunk through an `Arc`, so the bytes hashed are exactly the bytes
//! written. The buffer goes back to the fixed pool when the slowest consumer drops it; bounded
//! channels plus the fixed pool are the back-pressure, and the only memory the data path uses.
//! Any stage failing, or the cancel flag, stops everything; the sink is then aborted, so a failed run
//! leaves nothing that could be mistaken for a complete image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::buffer::{BUFFER_ALIGN, BufferPool};
use crate::device::Source;
use crate::error::{Error, Result};
use crate::hash::{HashAlgorithm, HashStage, Piece, StageDigests};
use crate::memory::{self, Memory};
use crate::ranges::{self, BadRange};
use crate::reader::{self, Chunk, ChunkPlan, ReaderShared};
use crate::sink::{Sink, SinkReceipt};
use crate::snapshot::{self, Snapshot};

/// Default read size: 1 MiB, the request size AWS recommends for initialising (first-reading) EBS
/// volumes restored from snapshots; larger requests are split by the NVMe driver anyway.
pub(crate) const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
/// Default reads in flight: 32, AWS's recommended I/O depth for initialising restored volumes, whose
/// throughput grows with outstanding requests (each first-touched block is fetched from S3). Measured
/// on a loop device over a FUSE file with 20 ms per request: 4 MiB × 8 gave 514 MB/s, 1 MiB × 32 gave
/// 581 MB/s, `dd bs=8M` 264 MB/s. Memory: (32 + 4) × 1 MiB of buffers.
pub(crate) const DEFAULT_QUEUE_DEPTH: usize = 32;
/// Default piece for piecewise hashes, as in dc3dd's common `hlog` practice: 1 GiB.
pub(crate) const DEFAULT_PIECE_SIZE: u64 = 1 << 30;
/// Default algorithm of the piecewise hashes: BLAKE3, which `b3sum` checks piece by piece and
/// which costs a quarter of a second SHA-256 pass (see [`crate::hash`]).
pub(crate) const DEFAULT_PIECE_ALGORITHM: HashAlgorithm = HashAlgorithm::Blake3;
/// Default extra attempts per bad sector before it is zero-filled.
pub(crate) const DEFAULT_SECTOR_RETRIES: u32 = 2;
/// Chunks that may wait in each consumer's queue. Small: it only smooths jitter between stages.
const CONSUMER_QUEUE: usize = 4;
/// How often the reorder stage looks at the cancel flag while no chunk arrives.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// Upper bound for queue depth: beyond this, threads cost more than they bring.
pub(crate) const MAX_QUEUE_DEPTH: usize = 256;
/// Smallest read: one aligned block, the unit of O_DIRECT.
pub(crate) const MIN_CHUNK_SIZE: usize = BUFFER_ALIGN;
/// Largest read: 64 MiB. The block layer splits any request at the device's `max_sectors_kb`
/// (128 KiB–2 MiB on NVMe and virtio), so bigger reads only make buffers bigger; and the pool holds
/// `queue_depth + 4` of them. A value far past this (`1TiB`) is a typo, and allocating it would
/// abort the process.
pub(crate) const MAX_CHUNK_SIZE: usize = 64 << 20;
/// Largest read-buffer pool, `(queue_depth + 4) × chunk_size`: 1 GiB. The default uses 36 MiB;
/// 1 GiB still allows e.g. 4 MiB × 252 or 16 MiB × 60, and keeps the collector well inside the
/// smallest instances it runs on while the S3 part buffers and the OS page cache need room too.
pub(crate) const MAX_BUFFER_MEMORY: usize = 1 << 30;
/// Smallest piecewise hash: 1 MiB. Each piece is a manifest entry (~150 bytes of JSON) kept in
/// memory until the end; at 1 MiB a 1 TiB disk already gives a million of them, and smaller pieces
/// localise damage no better than the bad-range list does.
pub(crate) const MIN_PIECE_SIZE: u64 = 1 << 20;
/// Most extra attempts per unreadable sector: 10. A sector that failed eleven reads will not
/// read on the twelfth, and each attempt can cost a device timeout (seconds to minutes), so a disk
/// with many bad sectors would otherwise take days.
pub(crate) const MAX_SECTOR_RETRIES: u32 = 10;

/// Chunks a memory capture keeps ahead of its consumers (in place of `queue_depth`): with the
/// consumers' queue, (2 + 4) × 1 MiB of buffers by default. One thread reads memory, so more
/// would only take the suspect's RAM.
pub(crate) const MEMORY_QUEUE_DEPTH: usize = 2;

/// Tunables of one acquisition.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Bytes per read (multiple of 4096).
    pub chunk_size: usize,
    /// Reads in flight (device and file sources).
    pub queue_depth: usize,
    /// GetSnapshotBlock requests in flight (snapshot sources; see
    /// [`Snapshot::DEFAULT_BLOCKS_IN_FLIGHT`]). Each holds one block buffer, as each
    /// device read holds one chunk buffer.
    pub blocks_in_flight: usize,
    /// Whole-image hashes.
    pub algorithms: Vec<HashAlgorithm>,
    /// Piecewise hash size; `None` turns piecewise hashing off.
    pub piece_size: Option<u64>,
    /// Algorithm of the piecewise hashes, one of [`HashAlgorithm::PIECE_CHOICES`].
    pub piece_algorithm: HashAlgorithm,
    /// Extra attempts per bad sector.
    pub sector_retries: u32,
}

/// The engine's defaults and bounds, for a caller's settings table (each constant's reason is
/// written beside its definition in `pipeline.rs`); [`PipelineConfig::validate`] enforces them.
impl PipelineConfig {
    /// Default bytes per read: 1 MiB.
    pub const DEFAULT_CHUNK_SIZE: usize = DEFAULT_CHUNK_SIZE;
    /// Default reads in flight: 32.
    pub const DEFAULT_QUEUE_DEPTH: usize = DEFAULT_QUEUE_DEPTH;
    /// Default piece of the piecewise hashes: 1 GiB.
    pub const DEFAULT_PIECE_SIZE: u64 = DEFAULT_PIECE_SIZE;
    /// Default algorithm of the piecewise hashes: BLAKE3.
    pub const DEFAULT_PIECE_ALGORITHM: HashAlgorithm = DEFAULT_PIECE_ALGORITHM;
    /// Default extra attempts per bad sector before it is zero-filled: 2.
    pub const DEFAULT_SECTOR_RETRIES: u32 = DEFAULT_SECTOR_RETRIES;
    /// Most reads (or snapshot blocks) in flight: 256.
    pub const MAX_QUEUE_DEPTH: usize = MAX_QUEUE_DEPTH;
    /// Smallest read: one aligned block (4 KiB), the unit of O_DIRECT.
    pub const MIN_CHUNK_SIZE: usize = MIN_CHUNK_SIZE;
    /// Largest read: 64 MiB.
    pub const MAX_CHUNK_SIZE: usize = MAX_CHUNK_SIZE;
    /// Largest read-buffer pool, `(queue_depth + 4) × chunk_size`: 1 GiB.
    pub const MAX_BUFFER_MEMORY: usize = MAX_BUFFER_MEMORY;
    /// Smallest piece of the piecewise hashes of new evidence: 1 MiB.
    pub const MIN_PIECE_SIZE: u64 = MIN_PIECE_SIZE;
    /// Most extra attempts per unreadable sector: 10.
    pub const MAX_SECTOR_RETRIES: u32 = MAX_SECTOR_RETRIES;
    /// Chunks a memory capture reads ahead: 2.
    pub const MEMORY_QUEUE_DEPTH: usize = MEMORY_QUEUE_DEPTH;
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            blocks_in_flight: crate::snapshot::DEFAULT_BLOCKS_IN_FLIGHT,
            algorithms: vec![HashAlgorithm::Sha256, HashAlgorithm::Blake3],
            piece_size: Some(DEFAULT_PIECE_SIZE),
            piece_algorithm: DEFAULT_PIECE_ALGORITHM,
            sector_retries: DEFAULT_SECTOR_RETRIES,
        }
    }
}

impl PipelineConfig {
    /// Rejects settings that cannot work or would not fit the memory budget, before anything is
    /// opened or allocated (see the `MAX_*`/`MIN_*` constants for each bound and its reason).
    pub fn validate(&self) -> Result<()> {
        if self.chunk_size == 0 || !self.chunk_size.is_multiple_of(BUFFER_ALIGN) {
            return Err(Error::InvalidSetting(format!(
                "chunk size {} must be a positive multiple of {BUFFER_ALIGN}",
                self.chunk_size
            )));
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidSetting(format!(
                "chunk size {} is larger than {MAX_CHUNK_SIZE} bytes (64 MiB)",
                self.chunk_size
            )));
        }
        if !(1..=MAX_QUEUE_DEPTH).contains(&self.queue_depth) {
            return Err(Error::InvalidSetting(format!(
                "queue depth {} must be between 1 and {MAX_QUEUE_DEPTH}",
                self.queue_depth
            )));
        }
        if !(1..=MAX_QUEUE_DEPTH).contains(&self.blocks_in_flight) {
            return Err(Error::InvalidSetting(format!(
                "blocks in flight {} must be between 1 and {MAX_QUEUE_DEPTH}",
                self.blocks_in_flight
            )));
        }
        // Both factors are bounded above, so the product cannot overflow.
        let pool = self.buffer_count() * self.chunk_size;
        if pool > MAX_BUFFER_MEMORY {
            return Err(Error::InvalidSetting(format!(
                "read buffers of (queue depth {} + {CONSUMER_QUEUE}) × chunk size {} = {pool} bytes exceed {MAX_BUFFER_MEMORY} bytes (1 GiB); lower the queue depth or the chunk size",
                self.queue_depth, self.chunk_size
            )));
        }
        if self.sector_retries > MAX_SECTOR_RETRIES {
            return Err(Error::InvalidSetting(format!(
                "sector retries {} must be at most {MAX_SECTOR_RETRIES}",
                self.sector_retries
            )));
        }
        if self.algorithms.is_empty() {
            return Err(Error::InvalidSetting(
                "at least one hash algorithm is needed".into(),
            ));
        }
        if self.piece_size == Some(0) {
            return Err(Error::InvalidSetting(
                "piece size must be positive (leave piecewise hashing off instead)".into(),
            ));
        }
        self.piece_algorithm.for_pieces()?;
        Ok(())
    }

    /// [`PipelineConfig::validate`] plus the policy for new evidence: pieces of at least
    /// [`PipelineConfig::MIN_PIECE_SIZE`]. Re-reading existing evidence (`verify`) takes the piece size its
    /// manifest records, whatever an earlier version allowed, so only new captures are held to it.
    pub fn validate_new_evidence(&self) -> Result<()> {
        self.validate()?;
        if let Some(piece) = self.piece_size
            && piece < MIN_PIECE_SIZE
        {
            return Err(Error::InvalidSetting(format!(
                "piece size {piece} must be at least {MIN_PIECE_SIZE} bytes (1 MiB), or off"
            )));
        }
        Ok(())
    }

    /// Buffers in the pool: one per outstanding read plus what the consumers may queue.
    pub fn buffer_count(&self) -> usize {
        self.queue_depth + CONSUMER_QUEUE
    }

    /// The settings a run of `input` reads with: a snapshot is read in chunks of exactly its
    /// block size, `blocks_in_flight` at a time, so its run is the device run's with those two
    /// in place of `chunk_size` and `queue_depth` (and the manifest records them as such).
    pub fn for_input(&self, input: Input<'_>) -> Self {
        match input {
            Input::Device(_) => self.clone(),
            Input::Memory(_) => Self {
                queue_depth: MEMORY_QUEUE_DEPTH.min(self.queue_depth),
                ..self.clone()
            },
            Input::Snapshot(snapshot) => Self {
                chunk_size: snapshot.block_size() as usize,
                queue_depth: self.blocks_in_flight,
                ..self.clone()
            },
        }
    }
}

/// Progress after each chunk leaves the reorder stage.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes handed to hashers and sink.
    pub bytes_done: u64,
    /// Source size.
    pub bytes_total: u64,
    /// Bytes zero-filled so far.
    pub bad_bytes: u64,
    /// Time since the first read.
    pub elapsed: Duration,
}

/// What a finished acquisition proved.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Bytes read, hashed and stored.
    pub bytes: u64,
    /// Whole-image digests.
    pub hashes: BTreeMap<HashAlgorithm, String>,
    /// Piecewise digests (empty when off).
    pub pieces: Vec<Piece>,
    /// Zero-filled ranges, merged and sorted.
    pub bad_ranges: Vec<BadRange>,
    /// Where the image is.
    pub receipt: SinkReceipt,
    /// Wall-clock start (UTC).
    pub started_at: DateTime<Utc>,
    /// Wall-clock time the last byte was read and hashed, before the sink finished.
    pub last_read_at: DateTime<Utc>,
    /// Wall-clock end, after the sink made the image durable.
    pub ended_at: DateTime<Utc>,
    /// Monotonic duration of the whole run.
    pub elapsed: Duration,
}

type Shared = Arc<Chunk>;

/// What a run reads.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// A block device or file, read by `queue_depth` O_DIRECT reader threads.
    Device(&'a Source),
    /// An EBS snapshot, read through the EBS direct APIs with `queue_depth` blocks in flight, in
    /// chunks of exactly its block size.
    Snapshot(&'a Snapshot),
    /// The host's physical memory, imaged as LiME by one reader thread with at most
    /// [`PipelineConfig::MEMORY_QUEUE_DEPTH`] chunks ahead of the slowest consumer: the host is the
    /// suspect, and its RAM is the evidence.
    Memory(&'a Memory),
}

impl Input<'_> {
    /// Bytes to image.
    pub fn size(&self) -> u64 {
        match self {
            Input::Device(source) => source.size(),
            Input::Snapshot(snapshot) => snapshot.size(),
            Input::Memory(memory) => memory.size(),
        }
    }
}

/// Runs one acquisition of `source` into `sink`. `cancel` is polled; `progress` is called from the
/// pipeline's coordinating thread after each chunk (keep it cheap).
pub fn run(
    input: Input<'_>,
    sink: Box<dyn Sink>,
    config: &PipelineConfig,
    progress: &(dyn Fn(&Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let config = &config.for_input(input);
    if let Err(err) = ready(input, config) {
        sink.abort();
        return Err(err);
    }
    let started_at = Utc::now();
    let clock = Instant::now();
    let plan = ChunkPlan {
        size: input.size(),
        chunk_size: config.chunk_size as u64,
    };
    let pool = BufferPool::new(config.buffer_count(), config.chunk_size);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);

    let (flow, sink_result) = thread::scope(|scope| {
        let (chunk_tx, chunk_rx) = crossbeam_channel::bounded(config.buffer_count());
        match input {
            Input::Device(source) => {
                let shared = ReaderShared {
                    source,
                    plan,
                    pool: &pool,
                    next: &next,
                    stop: &stop,
                    sector_retries: config.sector_retries,
                };
                for _ in 0..config.queue_depth {
                    let tx = chunk_tx.clone();
                    scope.spawn(move || reader::read_worker(&shared, &tx));
                }
            }
            Input::Snapshot(snapshot) => {
                let (pool, stop, tx) = (&pool, &stop, chunk_tx.clone());
                scope.spawn(move || {
                    snapshot::feed(snapshot, plan, pool, stop, config.blocks_in_flight, &tx);
                });
            }
            Input::Memory(memory) => {
                let (pool, stop, tx) = (&pool, &stop, chunk_tx.clone());
                scope.spawn(move || memory::feed(memory, plan, pool, stop, &tx));
            }
        }
        drop(chunk_tx);

        let mut outlets: Vec<Sender<Shared>> = Vec::new();
        let hashers = spawn_hashers(scope, config, &mut outlets);
        let sink_rx = outlet(&mut outlets);
        let writer = scope.spawn(move || write_all(sink, &sink_rx));

        let flow = reorder_and_dispatch(&chunk_rx, &outlets, plan, progress, cancel, clock);
        if flow.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(chunk_rx);
        drop(outlets);

        let (digests, pieces) = join_hashers(hashers);
        (flow.map(|bad| (digests, pieces, bad)), join(writer))
    });

    // A sink failure explains a stalled dispatch better than the dispatch error itself.
    let (sink, flow) = match (sink_result, flow) {
        (Err((sink, err)), _) | (Ok(sink), Err(err)) => {
            sink.abort();
            return Err(err);
        }
        (Ok(sink), Ok(flow)) => (sink, flow),
    };
    let ((hashes, pieces, bad), last_read_at) = (flow, Utc::now());
    let receipt = sink.finish()?;
    let mut bad_ranges = ranges::merge(bad);
    if let Input::Memory(memory) = input {
        memory.renumber(&mut bad_ranges);
    }
    Ok(Outcome {
        bytes: plan.size,
        hashes,
        pieces,
        bad_ranges,
        receipt,
        started_at,
        last_read_at,
        ended_at: Utc::now(),
        elapsed: clock.elapsed(),
    })
}

/// Refuses to start a run whose settings cannot work, or a device whose kernel read-only flag was
/// asked for and not yet applied.
fn ready(input: Input<'_>, config: &PipelineConfig) -> Result<()> {
    config.validate()?;
    if let Input::Device(source) = input
        && source.write_block_due()
    {
        return Err(Error::Internal(
            "the source's kernel read-only flag was not applied before reading",
        ));
    }
    Ok(())
}

/// Starts one thread per hash stage, each fed through its own outlet.
fn spawn_hashers<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    config: &PipelineConfig,
    outlets: &mut Vec<Sender<Shared>>,
) -> Vec<thread::ScopedJoinHandle<'scope, StageDigests>> {
    let pieces = config
        .piece_size
        .map(|piece_size| (config.piece_algorithm, piece_size));
    HashStage::plan(&config.algorithms, pieces)
        .into_iter()
        .map(|mut stage| {
            let rx = outlet(outlets);
            scope.spawn(move || {
                rx.iter().for_each(|chunk| stage.update(chunk.data()));
                stage.finish()
            })
        })
        .collect()
}

/// The whole-image digests and the pieces, once every hash stage has finished.
fn join_hashers(
    hashers: Vec<thread::ScopedJoinHandle<'_, StageDigests>>,
) -> (BTreeMap<HashAlgorithm, String>, Vec<Piece>) {
    let mut digests = BTreeMap::new();
    let mut pieces = Vec::new();
    for stage in hashers.into_iter().map(join) {
        digests.extend(stage.whole);
        pieces.extend(stage.pieces.into_iter().flatten());
    }
    (digests, pieces)
}

fn outlet(outlets: &mut Vec<Sender<Shared>>) -> Receiver<Shared> {
    let (tx, rx) = crossbeam_channel::bounded(CONSUMER_QUEUE);
    outlets.push(tx);
    rx
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The sink's thread: writes chunks in order; on failure hands the sink back so it can be aborted.
fn write_all(
    mut sink: Box<dyn Sink>,
    chunks: &Receiver<Shared>,
) -> std::result::Result<Box<dyn Sink>, (Box<dyn Sink>, Error)> {
    for chunk in chunks {
        if let Err(err) = sink.write(chunk.offset, chunk.data()) {
            return Err((sink, err));
        }
    }
    Ok(sink)
}

/// Puts chunks back in source order and hands each to every consumer. Returns the bad ranges seen.
fn reorder_and_dispatch(
    chunks: &Receiver<Result<Chunk>>,
    outlets: &[Sender<Shared>],
    plan: ChunkPlan,
    progress: &(dyn Fn(&Progress) + Sync),
    cancel: &AtomicBool,
    clock: Instant,
) -> Result<Vec<BadRange>> {
    let total = plan.count();
    let mut waiting: HashMap<u64, Chunk> = HashMap::new();
    let mut expected = 0u64;
    let mut bad = Vec::new();
    let mut done = 0u64;
    let mut bad_bytes = 0u64;
    while expected < total {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let chunk = match chunks.recv_timeout(CANCEL_POLL) {
            Ok(chunk) => chunk?,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Internal(
                    "reader threads stopped before the last chunk",
                ));
            }
        };
        waiting.insert(chunk.index, chunk);
        while let Some(mut chunk) = waiting.remove(&expected) {
            bad_bytes += ranges::total_bytes(&chunk.bad);
            bad.append(&mut chunk.bad);
            done += chunk.data().len() as u64;
            let chunk = Arc::new(chunk);
            for outlet in outlets {
                if outlet.send(Arc::clone(&chunk)).is_err() {
                    // A consumer stopped (the sink failed); its own error is reported by the caller.
                    return Err(Error::Cancelled);
                }
            }
            expected += 1;
            progress(&Progress {
                bytes_done: done,
                bytes_total: plan.size,
                bad_bytes,
                elapsed: clock.elapsed(),
            });
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the whole pipeline over `data` in a file, into a sink that keeps nothing.
    fn run_over(data: &[u8], config: &PipelineConfig) -> Result<Outcome> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("source.raw");
        std::fs::write(&path, data).expect("source written");
        let source = Source::open(&path, &crate::device::SourceOptions::default())?;
        let sink = Box::new(crate::sink::DiscardSink::default());
        run(
            Input::Device(&source),
            sink,
            config,
            &|_| {},
            &AtomicBool::new(false),
        )
    }

    // Issue 20: `run` was exercised only end to end; split into stages, each stage's part in the
    // outcome is checked here (every hash stage joined, settings checked before the first read).
    #[test]
    fn a_run_hashes_every_byte_in_every_stage_and_refuses_settings_that_cannot_work() {
        use sha2::Digest;
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let config = PipelineConfig {
            piece_size: Some(1 << 20),
            ..PipelineConfig::default()
        };
        let outcome = run_over(&data, &config).expect("run");
        assert_eq!(outcome.bytes, data.len() as u64);
        assert_eq!(
            outcome.hashes[&HashAlgorithm::Sha256],
            hex::encode(sha2::Sha256::digest(&data))
        );
        assert_eq!(
            outcome.hashes[&HashAlgorithm::Blake3],
            blake3::hash(&data).to_hex().to_string()
        );
        assert_eq!(outcome.pieces.len(), 3);
        assert!(outcome.bad_ranges.is_empty());
        let unworkable = PipelineConfig {
            queue_depth: 0,
            ..config
        };
        assert!(matches!(
            run_over(&data, &unworkable),
            Err(Error::InvalidSetting(_))
        ));
    }

    fn with(edit: impl FnOnce(&mut PipelineConfig)) -> Result<()> {
        let mut config = PipelineConfig::default();
        edit(&mut config);
        config.validate()
    }

    fn refused(edit: impl FnOnce(&mut PipelineConfig), needle: &str) {
        let err = with(edit).expect_err(needle).to_string();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        with(|_| {}).unwrap();
    }

    // Issue 9 item 6: each bound, accepted at its edge and refused one step past it.
    #[test]
    fn chunk_size_is_aligned_and_at_most_64_mib() {
        with(|c| c.chunk_size = BUFFER_ALIGN).unwrap();
        refused(|c| c.chunk_size = 0, "positive multiple");
        refused(|c| c.chunk_size = BUFFER_ALIGN + 512, "positive multiple");
        with(|c| {
            c.chunk_size = MAX_CHUNK_SIZE;
            c.queue_depth = 1;
        })
        .unwrap();
        refused(
            |c| {
                c.chunk_size = MAX_CHUNK_SIZE + BUFFER_ALIGN;
                c.queue_depth = 1;
            },
            "larger than",
        );
        refused(|c| c.chunk_size = 1 << 40, "larger than");
    }

    #[test]
    fn queue_depth_is_1_to_256() {
        with(|c| c.queue_depth = 1).unwrap();
        with(|c| c.queue_depth = MAX_QUEUE_DEPTH).unwrap();
        refused(|c| c.queue_depth = 0, "queue depth");
        refused(|c| c.queue_depth = MAX_QUEUE_DEPTH + 1, "queue depth");
    }

    #[test]
    fn read_buffers_fit_the_memory_budget() {
        // (252 + 4) × 4 MiB is exactly 1 GiB.
        with(|c| {
            c.queue_depth = 252;
            c.chunk_size = 4 << 20;
        })
        .unwrap();
        refused(
            |c| {
                c.queue_depth = 253;
                c.chunk_size = 4 << 20;
            },
            "exceed",
        );
        // The same budget with the largest chunk: 16 × 64 MiB = 1 GiB.
        with(|c| {
            c.queue_depth = 12;
            c.chunk_size = MAX_CHUNK_SIZE;
        })
        .unwrap();
        refused(
            |c| {
                c.queue_depth = 13;
                c.chunk_size = MAX_CHUNK_SIZE;
            },
            "exceed",
        );
    }

    #[test]
    fn blocks_in_flight_are_1_to_256() {
        with(|c| c.blocks_in_flight = 1).unwrap();
        with(|c| c.blocks_in_flight = MAX_QUEUE_DEPTH).unwrap();
        refused(|c| c.blocks_in_flight = 0, "blocks in flight 0");
        refused(
            |c| c.blocks_in_flight = MAX_QUEUE_DEPTH + 1,
            "blocks in flight 257",
        );
    }

    #[test]
    fn sector_retries_are_at_most_10() {
        with(|c| c.sector_retries = 0).unwrap();
        with(|c| c.sector_retries = MAX_SECTOR_RETRIES).unwrap();
        refused(
            |c| c.sector_retries = MAX_SECTOR_RETRIES + 1,
            "sector retries",
        );
    }

    #[test]
    fn new_evidence_has_pieces_off_or_of_at_least_1_mib() {
        let new = |piece_size| {
            PipelineConfig {
                piece_size,
                ..PipelineConfig::default()
            }
            .validate_new_evidence()
        };
        new(None).unwrap();
        new(Some(MIN_PIECE_SIZE)).unwrap();
        new(Some(u64::MAX)).unwrap();
        let err = new(Some(MIN_PIECE_SIZE - 1)).unwrap_err().to_string();
        assert!(err.contains("at least 1048576"), "{err}");
        assert!(new(Some(0)).is_err());
        let err = PipelineConfig {
            chunk_size: 0,
            ..PipelineConfig::default()
        }
        .validate_new_evidence()
        .unwrap_err();
        assert!(err.to_string().contains("chunk size"), "{err}");
    }

    #[test]
    fn re_reading_takes_any_positive_piece_size() {
        with(|c| c.piece_size = Some(MIN_PIECE_SIZE - 1)).unwrap();
        with(|c| c.piece_size = Some(1)).unwrap();
        refused(|c| c.piece_size = Some(0), "piece size must be positive");
    }

    // Issue 12: pieces are BLAKE3 by default, SHA-256 on request, nothing else.
    #[test]
    fn pieces_are_blake3_by_default_or_sha256() {
        assert_eq!(
            PipelineConfig::default().piece_algorithm,
            HashAlgorithm::Blake3
        );
        with(|c| c.piece_algorithm = HashAlgorithm::Sha256).unwrap();
        refused(
            |c| c.piece_algorithm = HashAlgorithm::Md5,
            "piece hash md5 is not one of blake3, sha256",
        );
        refused(
            |c| {
                c.piece_algorithm = HashAlgorithm::Sha1;
                c.piece_size = None;
            },
            "piece hash sha1",
        );
    }

    #[test]
    fn at_least_one_hash() {
        refused(|c| c.algorithms.clear(), "hash algorithm");
    }
}
