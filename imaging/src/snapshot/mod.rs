//! An EBS snapshot as the source, read through the EBS direct APIs: no volume is created,
//! attached or hydrated.
//!
//! ListSnapshotBlocks names the blocks that hold data (512 KiB each); GetSnapshotBlock returns one
//! with the SHA-256 EBS recorded for it. Blocks never written are not listed and read as zeros on
//! a volume restored from the snapshot, so the image gets zeros there without a request: the
//! image is byte for byte what such a volume would read, and its size is the volume's.
//!
//! - [`id`]: snapshot IDs and the `ebs-snapshot://` source syntax.
//! - `calls`: the EBS and EC2 requests, and what their errors mean for the run.
//! - `listing`: the block list walked page by page, checked as it comes.
//! - `block`: one block fetched, checked against its checksum, retried.
//! - `feed`: the walk that hands blocks to the pipeline, many fetches in flight.
//!
//! [`Snapshot::open`] does every check that can refuse the run before anything is written: the
//! ID, that the snapshot exists and may be listed, its layout, and (by fetching its first listed
//! block) that blocks may be read.

mod block;
mod calls;
mod feed;
pub(crate) mod id;
mod listing;

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

pub use id::SnapshotId;

use crate::error::{Result, SnapshotFailure};
use calls::Layout;
use listing::Listing;

pub(crate) use feed::feed;

/// Default GetSnapshotBlock requests in flight: 64, as awslabs/coldsnap uses. Each request is
/// one 512 KiB block with a round trip of tens of milliseconds, so throughput is in-flight
/// requests × block size / latency (64 × 0.5 MiB / 50 ms ≈ 640 MiB/s) until the API's per-snapshot
/// request rate caps it.
pub(crate) const DEFAULT_BLOCKS_IN_FLIGHT: usize = 64;

/// The sector size recorded for a snapshot source: the 512-byte logical sector a volume restored
/// from it presents (bad ranges are counted in sectors; a snapshot run has none, it fails instead).
pub(crate) const SNAPSHOT_SECTOR_SIZE: u32 = 512;

/// The volume ID DescribeSnapshots gives a snapshot made by CopySnapshot.
pub(crate) const COPIED_SNAPSHOT_VOLUME: &str = "vol-ffffffff";

/// What the manifest records about a snapshot source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// Its volume size in GiB (the image is this many GiB).
    pub volume_size_gib: u64,
    /// Bytes per block, as ListSnapshotBlocks reports it.
    pub block_size: u32,
    /// Blocks that hold data: each was fetched and checked against its SHA-256 from EBS. The
    /// rest of the image is zeros, as on a volume restored from the snapshot.
    pub blocks_listed: u64,
    /// The volume it was taken of (DescribeSnapshots; `vol-ffffffff` for a copied snapshot,
    /// which names no volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// When it was started: the moment its data is from (DescribeSnapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// The owning account (DescribeSnapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Its description (DescribeSnapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it is encrypted (DescribeSnapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Why DescribeSnapshots gave nothing, when it did not (the fields above are then absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub describe_error: Option<String>,
}

/// Constants a caller shows or checks (the reasons are beside their definitions).
impl Snapshot {
    /// Default snapshot blocks fetched at once: 64.
    pub const DEFAULT_BLOCKS_IN_FLIGHT: usize = DEFAULT_BLOCKS_IN_FLIGHT;
    /// The volume ID DescribeSnapshots gives a copied snapshot (`vol-ffffffff`): no volume.
    pub const COPIED_SNAPSHOT_VOLUME: &'static str = COPIED_SNAPSHOT_VOLUME;
}

/// A snapshot opened for imaging: it exists, may be read, and has a layout the pipeline takes.
pub struct Snapshot {
    id: SnapshotId,
    ebs: aws_sdk_ebs::Client,
    runtime: Handle,
    layout: Layout,
    described: std::result::Result<calls::Described, String>,
    listed: AtomicU64,
}

impl Snapshot {
    /// Checks `id` against the service and prepares to read it. Refuses (before anything is
    /// written): a snapshot that does not exist or may not be listed or read, one DescribeSnapshots
    /// reports as not completed, and a layout we cannot take.
    pub fn open(
        id: SnapshotId,
        ebs: aws_sdk_ebs::Client,
        ec2: &aws_sdk_ec2::Client,
        runtime: Handle,
    ) -> Result<Self> {
        let refuse = |failure, message| calls::snapshot_error(&id, failure, message);
        let described = runtime.block_on(calls::describe(ec2, &id));
        match &described {
            Ok(facts) => {
                if let Some(state) = facts.state.as_deref().filter(|s| *s != "completed") {
                    return Err(refuse(
                        SnapshotFailure::Unusable,
                        format!("its state is {state:?}; only a completed snapshot can be read"),
                    ));
                }
            }
            Err(why) => tracing::warn!(snapshot = %id, reason = %why,
                "DescribeSnapshots gave nothing: the manifest will not record the snapshot's volume and start time."),
        }
        let first = runtime.block_on(calls::list_page(&ebs, &id, None))?;
        let layout = first.layout;
        check_layout(layout).map_err(|why| refuse(SnapshotFailure::Unusable, why))?;
        let snapshot = Self {
            id,
            ebs,
            runtime,
            layout,
            described,
            listed: AtomicU64::new(0),
        };
        snapshot.probe(first)?;
        Ok(snapshot)
    }

    /// Fetches the first listed block, if any, so a role that may list but not read blocks
    /// (`ebs:GetSnapshotBlock`, or `kms:Decrypt` on an encrypted snapshot's key) is refused before
    /// anything is written. Walks past empty pages, as the run would.
    fn probe(&self, first: calls::Page) -> Result<()> {
        let mut listing = Listing::new(self.size() / u64::from(self.layout.block_size));
        calls::accept_page(&self.id, self.layout, &mut listing, first)?;
        let block = loop {
            match listing.next_listed() {
                None => return Ok(()),
                Some(Ok(block)) => break block,
                Some(Err(from)) => {
                    let page =
                        self.runtime
                            .block_on(calls::list_page(&self.ebs, &self.id, Some(from)))?;
                    calls::accept_page(&self.id, self.layout, &mut listing, page)?;
                }
            }
        };
        let mut buf = vec![0; self.layout.block_size as usize];
        self.runtime.block_on(block::fetch_into(
            &self.ebs,
            &self.id,
            block.index,
            &block.token,
            &mut buf,
        ))
    }

    /// The snapshot.
    pub fn id(&self) -> &SnapshotId {
        &self.id
    }

    /// The volume's size in bytes: the image's size.
    pub fn size(&self) -> u64 {
        self.layout.volume_size_gib << 30
    }

    /// Bytes per block: the pipeline reads in chunks of exactly this.
    pub fn block_size(&self) -> u32 {
        self.layout.block_size
    }

    /// The volume the snapshot was taken of, when DescribeSnapshots said so. A snapshot made by
    /// CopySnapshot reports the placeholder [`Snapshot::COPIED_SNAPSHOT_VOLUME`], which names no volume
    /// (AWS: "an arbitrary volume ID that should not be used for any purpose"): `None` then. The
    /// manifest's `source.snapshot.volume_id` still records what DescribeSnapshots said.
    pub fn volume_id(&self) -> Option<&str> {
        self.described
            .as_ref()
            .ok()?
            .volume_id
            .as_deref()
            .filter(|id| *id != COPIED_SNAPSHOT_VOLUME)
    }

    fn note_listed(&self, listed: u64) {
        self.listed.store(listed, Ordering::Relaxed);
    }

    /// What the manifest records (after a run: with the count of listed blocks).
    pub fn record(&self) -> SnapshotRecord {
        let facts = self.described.as_ref().ok().cloned().unwrap_or_default();
        SnapshotRecord {
            snapshot_id: self.id.clone(),
            volume_size_gib: self.layout.volume_size_gib,
            block_size: self.layout.block_size,
            blocks_listed: self.listed.load(Ordering::Relaxed),
            volume_id: facts.volume_id,
            start_time: facts.start_time,
            owner_id: facts.owner_id,
            description: facts.description,
            encrypted: facts.encrypted,
            describe_error: self.described.as_ref().err().cloned(),
        }
    }
}

/// Largest volume EBS makes: 64 TiB.
const MAX_VOLUME_GIB: u64 = 64 << 10;

/// The EBS direct APIs' block: 512 KiB, the only size they use.
pub(crate) const EBS_BLOCK_SIZE: u32 = 512 << 10;

/// Why a layout cannot be read, or `Ok`. Only EBS's own 512 KiB block is taken: a size chosen by
/// a server would become the pipeline's chunk, and what the read buffers and block indices can
/// hold was worked out for 512 KiB (a 64 MiB block × 68 buffers would pass 1 GiB; 4 KiB blocks
/// of a 64 TiB volume would pass the API's 32-bit index). Checked before anything is written.
fn check_layout(layout: Layout) -> std::result::Result<(), String> {
    let block = layout.block_size;
    if block != EBS_BLOCK_SIZE {
        return Err(format!(
            "its block size {block} is not the EBS direct APIs' {EBS_BLOCK_SIZE}"
        ));
    }
    if !(1..=MAX_VOLUME_GIB).contains(&layout.volume_size_gib) {
        return Err(format!(
            "its volume size {} GiB is not between 1 GiB and {MAX_VOLUME_GIB} GiB",
            layout.volume_size_gib
        ));
    }
    Ok(())
}

impl SnapshotRecord {
    /// Whether this record describes a snapshot the engine would have imaged: the layout rules it
    /// applies before reading (`check_layout`: EBS's 512 KiB block, a volume size EBS makes),
    /// and no more listed blocks than the volume holds. A manifest that says otherwise
    /// (`block_size: 0`, `blocks_listed: 10^12`) was not written by a run of this engine.
    pub fn check(&self) -> std::result::Result<(), String> {
        check_layout(Layout {
            volume_size_gib: self.volume_size_gib,
            block_size: self.block_size,
        })?;
        // Both checked above: at most 64 TiB, and a non-zero block.
        let blocks = (self.volume_size_gib << 30) / u64::from(self.block_size);
        if self.blocks_listed > blocks {
            return Err(format!(
                "{} blocks listed, more than the {blocks} blocks of a {} GiB volume",
                self.blocks_listed, self.volume_size_gib
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BUFFER_ALIGN;
    use crate::pipeline::MAX_CHUNK_SIZE;

    #[test]
    fn only_the_ebs_block_and_real_volume_sizes_are_taken() {
        let layout = |volume_size_gib, block_size| Layout {
            volume_size_gib,
            block_size,
        };
        assert_eq!(check_layout(layout(1, 524_288)), Ok(()));
        assert_eq!(check_layout(layout(MAX_VOLUME_GIB, 524_288)), Ok(()));
        for bad_block in [0, 512, 4096, 524_287, 524_289, 1 << 20, 64 << 20] {
            let err = check_layout(layout(1, bad_block)).unwrap_err();
            assert!(err.contains("block size"), "{bad_block}: {err}");
        }
        for bad_size in [0, MAX_VOLUME_GIB + 1] {
            let err = check_layout(layout(bad_size, 524_288)).unwrap_err();
            assert!(err.contains("volume size"), "{bad_size}: {err}");
        }
        // What the pipeline and the API can take with that block, for the largest volume.
        let blocks = (MAX_VOLUME_GIB << 30) / u64::from(EBS_BLOCK_SIZE);
        assert!(i32::try_from(blocks - 1).is_ok());
        assert!(EBS_BLOCK_SIZE as usize <= MAX_CHUNK_SIZE);
        assert!((EBS_BLOCK_SIZE as usize).is_multiple_of(BUFFER_ALIGN));
    }

    // Issue 19: a manifest's snapshot record is held to the rules a run applies, so
    // `block_size: 0` or `blocks_listed: 10^12` is no snapshot this engine imaged.
    #[test]
    fn a_record_is_held_to_the_layout_a_run_applies() {
        let record = |block_size, blocks_listed| SnapshotRecord {
            snapshot_id: "snap-0123456789abcdef0".parse().unwrap(),
            volume_size_gib: 1,
            block_size,
            blocks_listed,
            volume_id: None,
            start_time: None,
            owner_id: None,
            description: None,
            encrypted: None,
            describe_error: None,
        };
        assert_eq!(record(EBS_BLOCK_SIZE, 0).check(), Ok(()));
        assert_eq!(record(EBS_BLOCK_SIZE, 2048).check(), Ok(()));
        let err = record(EBS_BLOCK_SIZE, 2049).check().unwrap_err();
        assert_eq!(
            err,
            "2049 blocks listed, more than the 2048 blocks of a 1 GiB volume"
        );
        assert!(record(EBS_BLOCK_SIZE, 1_000_000_000_000).check().is_err());
        for bad_block in [0, 4096, 64 << 20] {
            let err = record(bad_block, 1).check().unwrap_err();
            assert!(err.contains("block size"), "{bad_block}: {err}");
        }
        let mut huge = record(EBS_BLOCK_SIZE, 1);
        huge.volume_size_gib = u64::MAX;
        assert!(huge.check().unwrap_err().contains("volume size"));
    }
}
