//! Where the image bytes go. One trait, so the pipeline has one code path whatever the destination:
//! [`LocalSink`] writes a file, [`S3Sink`] streams multipart uploads (see [`s3`]), and
//! [`DiscardSink`] keeps nothing, for `verify`, which re-reads an image through the same pipeline
//! only for its hashes. A local image is written inside the run's private [`Staging`] directory,
//! which also holds the companion files until they are published together, the sidecar only after
//! the manifest; on S3 each object is stored only if absent, the manifest last.

pub(crate) mod claim;
pub(crate) mod local;
pub(crate) mod s3;
pub(crate) mod staging;

pub use claim::LocalClaim;
pub use local::LocalSink;
pub use s3::S3Url;
pub use staging::Staging;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A destination for the image. Chunks arrive in order and contiguous, from one dedicated thread.
pub trait Sink: Send {
    /// Appends the next chunk of the image, which starts at byte `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<()>;

    /// Makes everything durable and moves the image to its final name. Only after this returns
    /// may anyone write a manifest that points at the image.
    fn finish(self: Box<Self>) -> Result<SinkReceipt>;

    /// Removes what was written: an interrupted image must not be mistaken for evidence.
    fn abort(self: Box<Self>);
}

/// Where a finished image is, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkReceipt {
    /// `file:///…` or `s3://…`.
    pub location: String,
    /// Bytes stored.
    pub bytes: u64,
    /// What S3 confirmed, for S3 destinations.
    pub s3: Option<s3::S3Receipt>,
}

/// Keeps nothing: for verification, where only the hashes of what is read matter.
#[derive(Debug, Default)]
pub struct DiscardSink {
    bytes: u64,
}

impl Sink for DiscardSink {
    fn write(&mut self, _offset: u64, data: &[u8]) -> Result<()> {
        self.bytes += data.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<SinkReceipt> {
        Ok(SinkReceipt {
            location: "discard:".to_owned(),
            bytes: self.bytes,
            s3: None,
        })
    }

    fn abort(self: Box<Self>) {}
}
