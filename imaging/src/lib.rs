#![warn(unreachable_pub)]
//! Forensic imaging engine: read a source once, hash exactly what is written, prove it in a manifest.
//!
//! The data path runs left to right through these modules:
//!
//! # Layout
//! - [`device`]: opens the source (block device or file) read-only with O_DIRECT, asks the kernel for its
//!   size and sector sizes, sets the block-device read-only flag, and detects live (mounted) acquisition.
//! - [`snapshot`]: an EBS snapshot as the source, read through the EBS direct APIs (no volume):
//!   blocks listed and fetched many at a time, each checked against its SHA-256 from EBS, holes as zeros.
//! - [`identity`]: what the source is: model, serial, EBS volume ID, loop backing file (from sysfs).
//! - [`sysfs`]: block device numbers (`major:minor`) and the sysfs directory of each.
//! - [`buffer`]: the fixed pool of aligned buffers. Memory is flat in device size because nothing
//!   else allocates per chunk.
//! - [`reader`]: several O_DIRECT reads in flight, and the bad-sector policy (retry sector by sector,
//!   zero-fill, record).
//! - [`hash`]: SHA-256, BLAKE3, MD5, SHA-1 and piecewise hashes.
//! - [`pipeline`]: wires reader → hashers → sink with back-pressure and cancellation.
//! - [`sink`]: where the image goes, behind one trait: [`sink::LocalSink`] writes a file in the run's
//!   staging directory, [`sink::S3Sink`] streams multipart uploads (one object or numbered segments),
//!   [`sink::DiscardSink`] keeps nothing (`verify` wants only the hashes).
//! - [`manifest`]: the evidence record: built from a finished run, its JSON schema, and the bounded,
//!   validating reader `verify` uses. Where and when it is stored is the caller's (the agent's
//!   destinations); see `sink::staging` for the local publish order.
//! - [`naming`]: evidence names and the file names derived from them.
//! - [`ranges`]: merging bad sectors into byte ranges.
//! - [`regular_file`]: bounded reads of files an operator names (manifests, sidecars, config).
//! - [`error`]: the error type, classified into kinds that callers map to exit codes.
//!
//! `unsafe` appears in two places: [`buffer`] (aligned allocation) and [`device`] (the block-device
//! ioctls). Each block carries a `// SAFETY:` comment; the workspace lints deny one without.

mod buffer;
mod device;
mod error;
mod hash;
mod identity;
mod manifest;
mod naming;
mod pipeline;
mod ranges;
mod reader;
mod regular_file;
mod sink;
mod snapshot;
mod sysfs;

pub use device::{LiveUse, ReadOnlyFlag, Source, SourceKind, SourceOptions, SystemPaths};
pub use error::{Error, ErrorKind, Result, SnapshotFailure};
pub use hash::{HashAlgorithm, Hasher, Piece, PieceHasher};
pub use identity::{Identity, VolumeId};
pub use manifest::{
    AcquisitionRecord, CaseInfo, Context, HostInfo, ImageRecord, Manifest, Piecewise, SourceRecord,
    Status, ToolInfo, check_examiner,
};
pub use naming::{EvidenceFiles, SafeName};
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
