//! The snapshot's side of the pipeline: the volume walked block by block, in order, with many
//! fetches in flight.
//!
//! One thread runs this loop on the SDK's runtime. For each block index, in order, it first takes
//! a buffer from the pipeline's pool and only then decides what the block is: a hole (zeros, sent
//! at once, no request) or a listed block (a fetch task, up to `blocks_in_flight` at a time). As
//! with the device readers, taking the buffer before the index means the block the pipeline waits
//! for always holds one, so a slow block cannot starve the pool and stall the run. Memory is the
//! pool (each body streams into its block's buffer) and one list page: flat in the volume's size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::task::JoinSet;

use super::Snapshot;
use super::block;
use super::calls::{self, Layout};
use super::listing::{Listing, Lookup};
use crate::buffer::BufferPool;
use crate::error::{Error, Result};
use crate::reader::{Chunk, ChunkPlan};

/// How often the loop looks again at the pool and the stop flag while no fetch completes.
const POLL: Duration = Duration::from_millis(5);

/// Feeds the whole volume to `chunks`, or the first error. Returns when every block was sent, the
/// run stops, or the pipeline hangs up; unfinished fetches are then aborted.
pub(crate) fn feed(
    snapshot: &Snapshot,
    plan: ChunkPlan,
    pool: &BufferPool,
    stop: &AtomicBool,
    blocks_in_flight: usize,
    chunks: &Sender<Result<Chunk>>,
) {
    let walk = Walk {
        snapshot,
        plan,
        pool,
        stop,
        blocks_in_flight: blocks_in_flight.max(1),
        chunks,
    };
    if let Err(err) = snapshot.runtime.block_on(walk.run()) {
        let _ = chunks.send(Err(calls::mid_run(err)));
    }
}

struct Walk<'a> {
    snapshot: &'a Snapshot,
    plan: ChunkPlan,
    pool: &'a BufferPool,
    stop: &'a AtomicBool,
    blocks_in_flight: usize,
    chunks: &'a Sender<Result<Chunk>>,
}

impl Walk<'_> {
    async fn run(&self) -> Result<()> {
        let snapshot = self.snapshot;
        let layout = snapshot.layout;
        if self.plan.chunk_size != u64::from(layout.block_size) || self.plan.size != snapshot.size()
        {
            return Err(Error::Internal(
                "a snapshot is read in chunks of exactly its block size",
            ));
        }
        let count = self.plan.count();
        let mut listing = Listing::new(count);
        calls::next_page(&snapshot.ebs, &snapshot.id, layout, &mut listing, None).await?;
        let mut in_flight: JoinSet<Result<Chunk>> = JoinSet::new();
        let mut next = 0;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            while next < count && in_flight.len() < self.blocks_in_flight {
                let Some(mut buf) = self.pool.try_take() else {
                    break;
                };
                let (offset, len) = (self.plan.offset(next), self.plan.len(next));
                let len = usize::try_from(len).expect("a block fits in memory");
                match self.lookup(&mut listing, layout, next).await? {
                    Lookup::Hole => {
                        buf.as_mut_slice()[..len].fill(0);
                        if self
                            .chunks
                            .send(Ok(Chunk::new(next, offset, len, buf)))
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    Lookup::Listed(token) => {
                        let (ebs, id, index) = (snapshot.ebs.clone(), snapshot.id.clone(), next);
                        in_flight.spawn(async move {
                            block::fetch_into(
                                &ebs,
                                &id,
                                index,
                                &token,
                                &mut buf.as_mut_slice()[..len],
                            )
                            .await
                            .map(|()| Chunk::new(index, offset, len, buf))
                        });
                    }
                    Lookup::NeedPage(_) => unreachable!("lookup fetches pages"),
                }
                next += 1;
            }
            if next == count && in_flight.is_empty() {
                snapshot.note_listed(listing.listed());
                return Ok(());
            }
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    let chunk = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                    if self.chunks.send(Ok(chunk)).is_err() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// What block `index` is, fetching list pages as the walk reaches them.
    async fn lookup(&self, listing: &mut Listing, layout: Layout, index: u64) -> Result<Lookup> {
        loop {
            match listing.lookup(index) {
                Lookup::NeedPage(from) => {
                    let (ebs, id) = (&self.snapshot.ebs, &self.snapshot.id);
                    calls::next_page(ebs, id, layout, listing, Some(from)).await?;
                }
                found => return Ok(found),
            }
        }
    }
}
