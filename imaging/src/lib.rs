//! Forensic imaging engine: read a source once, hash exactly what is written, prove it in a manifest.
//!
//! # The API
//! An acquisition is a [`Source`] (a device or file, opened with [`SourceOptions`]) or a
//! [`Snapshot`] (an EBS snapshot), read by [`run`] with a [`PipelineConfig`] into a [`Sink`]:
//! a [`LocalSink`] in a run's [`Staging`] directory, an S3 upload from [`s3::S3Evidence`], or a
//! [`DiscardSink`] when only the hashes matter. [`run`] returns an [`Outcome`] (hashes, pieces,
//! bad ranges, where the image is), which [`Manifest::new`] turns into the evidence record;
//! [`Manifest::read`] reads one back, bounded and validated. Names are [`SafeName`]s and the files
//! of one evidence set [`EvidenceFiles`]; every failure is an [`Error`] whose [`ErrorKind`] a
//! caller maps to its exit codes. The engine's defaults and bounds are associated constants of the
//! types they bound (`PipelineConfig::MAX_QUEUE_DEPTH`, `S3Options::DEFAULT_PART_MEMORY`, …). All
//! else is private; S3-specific names live in the one public module, [`s3`].
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::AtomicBool;
//!
//! use imaging::{
//!     CaseInfo, Context, EvidenceFiles, HostInfo, Input, LocalSink, Manifest, PipelineConfig,
//!     SafeName, Source, SourceOptions, SourceRecord, Staging, ToolInfo,
//! };
//!
//! # fn main() -> imaging::Result<()> {
//! # let work = tempfile::tempdir().unwrap();
//! # let (disk, out) = (work.path().join("disk.raw"), work.path().join("evidence"));
//! # std::fs::write(&disk, vec![7u8; 1 << 20]).unwrap();
//! # std::fs::create_dir(&out).unwrap();
//! // A file here; a block device is opened the same way (and write-blocked by the kernel).
//! let source = Source::open(&disk, &SourceOptions::default())?;
//! let name = SafeName::parse("disk-1", "evidence name").expect("a valid name");
//! let files = EvidenceFiles::new(&name);
//! let staging = Arc::new(Staging::create(&out, &files.name, &files.all())?);
//! let sink = LocalSink::create(Arc::clone(&staging), &files.image)?;
//! let config = PipelineConfig::default();
//! let never = AtomicBool::new(false);
//! let outcome = imaging::run(Input::Device(&source), Box::new(sink), &config, &|_| {}, &never)?;
//!
//! let context = Context {
//!     tool: ToolInfo { name: "example".into(), version: "1".into(), git_revision: "-".into() },
//!     case: CaseInfo {
//!         incident_id: None,
//!         evidence_name: name.to_string(),
//!         source_volume_id: None,
//!         examiner: None,
//!     },
//!     host: HostInfo { hostname: "lab".into(), instance_id: None },
//!     image_file_name: files.image.clone(),
//!     peak_rss_bytes: None,
//! };
//! let manifest = Manifest::new(context, SourceRecord::of_device(&source), &config, outcome);
//! staging.write_file(&files.manifest, manifest.to_json().as_bytes())?;
//! staging.publish(&[files.image.as_str(), &files.manifest])?; // the manifest after the image
//!
//! let stored = Manifest::read(&out.join(&files.manifest))?;
//! assert_eq!(stored.image.size_bytes, 1 << 20);
//! assert_eq!(stored.image.hashes, manifest.image.hashes);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! The data path runs left to right through these private modules:
//! - `device`: opens the source (block device or file) read-only with O_DIRECT, asks the kernel for
//!   its size and sector sizes, sets the block-device read-only flag, and detects live (mounted)
//!   acquisition.
//! - `snapshot`: an EBS snapshot as the source, read through the EBS direct APIs (no volume):
//!   blocks listed and fetched many at a time, each checked against its SHA-256 from EBS, holes as zeros.
//! - `memory`: the host's physical memory as the source (`/proc/kcore`, `/dev/crash` or
//!   `/dev/mem`, the `System RAM` ranges of `/proc/iomem`), imaged in the LiME format.
//! - `identity`: what the source is: model, serial, EBS volume ID, loop backing file (from sysfs).
//! - `sysfs`: block device numbers (`major:minor`) and the sysfs directory of each.
//! - `buffer`: the fixed pool of aligned buffers. Memory is flat in device size because nothing
//!   else allocates per chunk.
//! - `reader`: several O_DIRECT reads in flight, and the bad-sector policy (retry sector by sector,
//!   zero-fill, record).
//! - `hash`: SHA-256, BLAKE3, MD5, SHA-1 and piecewise hashes.
//! - `pipeline`: wires reader → hashers → sink with back-pressure and cancellation.
//! - `sink`: where the image goes, behind one trait: `LocalSink` writes a file in the run's
//!   staging directory, `sink::s3` streams multipart uploads (one object or numbered segments) and
//!   keeps the evidence set in the bucket, `DiscardSink` keeps nothing (`verify` wants only the
//!   hashes).
//! - `manifest`: the evidence record: built from a finished run, its JSON schema, and the bounded,
//!   validating reader `verify` uses. Where and when it is stored is the caller's (the agent's
//!   destinations); see `sink::staging` for the local publish order.
//! - `naming`: evidence names and the file names derived from them.
//! - [`custody`] (public): the manifest's chain-of-custody section, the signed custody statement's
//!   canonical bytes, and checking its signature offline against a public key.
//! - `ranges`: merging bad sectors into byte ranges.
//! - `regular_file`: bounded reads of files an operator names (manifests, sidecars, config).
//! - `error`: the error type, classified into kinds that callers map to exit codes.
//!
//! `unsafe` appears in three places: `buffer` (aligned allocation), `device` (the block-device
//! ioctls) and `sink::staging` (the `renameat2` system call, which nix wraps for glibc only). Each block carries a `// SAFETY:` comment; the workspace lints deny one without.
//! `unreachable_pub` is on, so an item is either part of the API above or `pub(crate)` at most.

// No function over 80 lines (clippy.toml): the lib build checks every non-test function; a test
// build exempts only the tests, whose tables of cases read better whole.
#![cfg_attr(test, allow(clippy::too_many_lines))]
#![warn(unreachable_pub)]

mod buffer;
pub mod custody;
mod device;
mod error;
mod hash;
mod identity;
mod manifest;
mod memory;
mod naming;
mod pipeline;
mod ranges;
mod reader;
mod regular_file;
mod sink;
mod snapshot;
mod sysfs;

pub use device::{LiveUse, ReadOnlyFlag, Source, SourceKind, SourceOptions, SystemPaths};
pub use error::{Error, ErrorKind, MemoryFailure, Result, SnapshotFailure};
pub use hash::{HashAlgorithm, Hasher, Piece, PieceHasher};
pub use identity::{Identity, VolumeId};
pub use manifest::{
    AcquisitionRecord, CaseInfo, Context, HostInfo, ImageRecord, Manifest, Piecewise, SourceRecord,
    Status, ToolInfo, check_examiner,
};
pub use memory::lime::{LimeWalker, read_ranges as read_lime_ranges};
pub use memory::{Memory, MemoryRange, MemoryReader, MemoryRecord};
pub use naming::{EvidenceFiles, EvidenceKind, SafeName};
pub use pipeline::{Input, Outcome, PipelineConfig, Progress, run};
pub use ranges::BadRange;
pub use regular_file::{
    open as open_regular_file, read as read_regular_file, read_opened as read_opened_file,
};
pub use sink::{DiscardSink, LocalClaim, LocalSink, S3Url, Sink, SinkReceipt, Staging};
pub use snapshot::{Snapshot, SnapshotId, SnapshotRecord};
pub use sysfs::DeviceNumber;

/// The S3 destination's own vocabulary: where an evidence set goes in a bucket and what a run
/// stored there ([`s3::S3Evidence`]), the upload's tuning and evidence protection
/// ([`s3::S3Options`], [`s3::Retention`]) and how it would be laid out ([`s3::UploadPlan`]),
/// S3's own limits, what a stored image is made of ([`s3::S3Receipt`]), and two answers of S3 read
/// the same way everywhere ([`s3::is_missing_object`], [`s3::real_version`]).
pub mod s3 {
    pub use crate::sink::s3::{
        Cleanup, PartPlan, Ramp, Retention, S3Evidence, S3Object, S3Options, S3Receipt,
        UploadLayout, UploadPlan, is_missing_object, limits, real_version,
    };
}
