//! One error type for the engine. Every variant names the path and, where it matters, the byte offset
//! that failed, because an examiner reading a failed capture log needs to know exactly where it stopped.

use std::io;
use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop an acquisition. Media errors on individual sectors are *not* errors: the
/// reader zero-fills and records them, and the run completes with status `completed_with_errors`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The source path could not be opened or inspected.
    #[error("cannot open source {path}: {source}")]
    OpenSource {
        /// The source path as given.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// The source exists but is neither a block device nor a regular file (a directory, a socket…).
    #[error("source {path} is not a block device or a regular file")]
    UnsupportedSource {
        /// The source path as given.
        path: PathBuf,
    },
    /// The source has no bytes (an empty file, a 0-byte device, a `/proc` file that reports size
    /// 0): imaging it would give an empty image that looks like a completed capture.
    #[error("source {path} has size 0; there is nothing to image")]
    EmptySource {
        /// The source path as given.
        path: PathBuf,
    },
    /// The source is one of the files this run would create, publish or remove: imaging it would
    /// destroy it.
    #[error(
        "source {source_path} is the output file {output}; refusing to image a file this run would replace"
    )]
    SourceIsOutput {
        /// The source path as given.
        source_path: PathBuf,
        /// The output file it is (or links to).
        output: PathBuf,
    },
    /// An ioctl or sysfs query about the device failed.
    #[error("cannot query {what} of {path}: {source}")]
    DeviceQuery {
        /// The device.
        path: PathBuf,
        /// Which property (e.g. "size (BLKGETSIZE64)").
        what: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// The device went away (detached, hot-unplugged, FUSE server gone) while it was being read.
    #[error("source {path} vanished at offset {offset}: {source}")]
    SourceVanished {
        /// The device.
        path: PathBuf,
        /// First byte that could not be read.
        offset: u64,
        /// What the kernel said.
        source: io::Error,
    },
    /// A read failed in a way that is not a media error and not a vanished device.
    #[error("read of {path} failed at offset {offset}: {source}")]
    Read {
        /// The device.
        path: PathBuf,
        /// Offset of the failed read.
        offset: u64,
        /// What the kernel said.
        source: io::Error,
    },
    /// The image destination refused a write (unwritable, full, gone).
    #[error("cannot write {path} at offset {offset}: {source}")]
    SinkWrite {
        /// The destination.
        path: PathBuf,
        /// Offset in the image.
        offset: u64,
        /// What the kernel said.
        source: io::Error,
    },
    /// The image destination could not be created, finished or removed.
    #[error("cannot {action} {path}: {source}")]
    SinkIo {
        /// What was being done ("create", "sync", "rename").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// Refusing to overwrite evidence that is already there.
    #[error("refusing to overwrite existing evidence {path}")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Refusing to overwrite an S3 object of the evidence that is already there (found before
    /// the run, or a conditional write refused because another run created it first).
    #[error("refusing to overwrite existing evidence {location}: {detail}")]
    ObjectExists {
        /// `s3://bucket/key` of the existing object.
        location: String,
        /// What is known about it (left by an earlier run, or created concurrently).
        detail: String,
    },
    /// The manifest could not be written or read.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A hash algorithm name that we do not know.
    #[error("unknown hash algorithm {0:?} (known: sha256, blake3, md5, sha1)")]
    UnknownAlgorithm(String),
    /// Configuration that cannot work (zero chunk size, unaligned piece size…).
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// An S3 request failed after the SDK's retries.
    #[error("cannot {action} {location}: {message}")]
    S3 {
        /// What was being done.
        action: &'static str,
        /// `s3://bucket/key`.
        location: String,
        /// The SDK's error with its context.
        message: String,
    },
    /// A stored object does not match what we sent.
    #[error("{location} does not match: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// Where.
        location: String,
        /// Our value.
        expected: String,
        /// The stored value.
        actual: String,
    },
    /// An EBS snapshot could not be read through the EBS direct APIs: it does not exist, the
    /// role may not read it, it is not usable (still pending, a block size we cannot take), or a
    /// block failed after every retry (a transport error, or bytes that never matched their
    /// checksum).
    #[error("snapshot {snapshot_id}: {message}")]
    Snapshot {
        /// The snapshot (`snap-…`).
        snapshot_id: String,
        /// Which of the source error classes this is.
        failure: SnapshotFailure,
        /// What failed, with the service's own words.
        message: String,
    },
    /// Physical memory cannot be read (see [`MemoryFailure`]).
    #[error("memory: {message}")]
    Memory {
        /// Which refusal this is.
        failure: MemoryFailure,
        /// What was found, with every reader tried.
        message: String,
    },
    /// A broken invariant inside the engine; a bug, reported instead of a panic.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// Stopped by a signal or by the caller; nothing written counts as evidence.
    #[error("acquisition cancelled")]
    Cancelled,
}

/// Why a snapshot could not be read, in the terms of the source exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFailure {
    /// No such snapshot (or not shared with this account).
    NotFound,
    /// The role may not describe, list or read it.
    Denied,
    /// It exists but cannot be imaged (not completed, a layout we do not take).
    Unusable,
    /// Reading a block failed after the retries.
    Read,
    /// It was there when the run began and is gone now (deleted mid-run).
    Vanished,
}

/// Why physical memory could not be read, in the terms of the source exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFailure {
    /// Not root, or without CAP_SYS_RAWIO.
    NotPermitted,
    /// Kernel lockdown forbids it.
    Lockdown,
    /// No reader exists on this host (no /proc/kcore, /dev/crash or /dev/mem).
    NoSource,
    /// Readers exist but none reads RAM (or /proc/iomem cannot be used).
    Unreadable,
}

/// Coarse classes of [`Error`], stable enough for a binary to map to documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The source does not exist.
    SourceMissing,
    /// No permission to open or query the source.
    SourcePermission,
    /// The source is something we cannot image.
    SourceUnusable,
    /// The kernel's lockdown forbids reading the source (physical memory).
    KernelLockdown,
    /// The source went away mid-read.
    SourceVanished,
    /// Reading failed for another reason.
    SourceRead,
    /// The destination is full.
    OutputFull,
    /// The destination failed otherwise (permission, missing directory, existing evidence).
    Output,
    /// The remote destination (S3) refused or failed.
    Destination,
    /// Invalid settings.
    Usage,
    /// Cancelled by signal.
    Cancelled,
    /// A bug.
    Internal,
}

impl Error {
    /// Classifies the error so that callers can choose an exit code without matching every variant.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::OpenSource { source, .. } | Error::DeviceQuery { source, .. } => {
                match source.kind() {
                    io::ErrorKind::NotFound => ErrorKind::SourceMissing,
                    io::ErrorKind::PermissionDenied => ErrorKind::SourcePermission,
                    _ => ErrorKind::SourceUnusable,
                }
            }
            Error::UnsupportedSource { .. } | Error::EmptySource { .. } => {
                ErrorKind::SourceUnusable
            }
            Error::SourceVanished { .. } => ErrorKind::SourceVanished,
            Error::Read { .. } => ErrorKind::SourceRead,
            Error::SinkWrite { source, .. } | Error::SinkIo { source, .. }
                if is_no_space(source) =>
            {
                ErrorKind::OutputFull
            }
            Error::SinkWrite { .. }
            | Error::SinkIo { .. }
            | Error::AlreadyExists { .. }
            | Error::ObjectExists { .. }
            | Error::Manifest { .. } => ErrorKind::Output,
            Error::UnknownAlgorithm(_)
            | Error::InvalidSetting(_)
            | Error::SourceIsOutput { .. } => ErrorKind::Usage,
            Error::S3 { .. } | Error::ChecksumMismatch { .. } => ErrorKind::Destination,
            Error::Snapshot { failure, .. } => match failure {
                SnapshotFailure::NotFound => ErrorKind::SourceMissing,
                SnapshotFailure::Denied => ErrorKind::SourcePermission,
                SnapshotFailure::Unusable => ErrorKind::SourceUnusable,
                SnapshotFailure::Read => ErrorKind::SourceRead,
                SnapshotFailure::Vanished => ErrorKind::SourceVanished,
            },
            Error::Memory { failure, .. } => match failure {
                MemoryFailure::NotPermitted => ErrorKind::SourcePermission,
                MemoryFailure::Lockdown => ErrorKind::KernelLockdown,
                MemoryFailure::NoSource => ErrorKind::SourceMissing,
                MemoryFailure::Unreadable => ErrorKind::SourceUnusable,
            },
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

fn is_no_space(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)
    )
}
