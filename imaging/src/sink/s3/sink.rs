//! The S3 sink: the image streams from the pipeline into multipart uploads, one per segment object
//! (one in all for any image that fits the layout limits), with no local copy.

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::runtime::Handle;

use super::buffers::PartBuffers;
use super::multipart::{MultipartUpload, S3Object, take_crc32c};
use super::options::{S3Options, UploadPlan};
use super::owned::Ledger;
use super::plan::UploadLayout;
use super::protect::abort_other_uploads;
use super::ramp::Ramp;
use crate::error::{Error, Result};
use crate::sink::{Sink, SinkReceipt};

/// What S3 confirmed about the stored image: its objects in image order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Receipt {
    /// Bucket.
    pub bucket: String,
    /// One object, or the numbered segments of a split image; concatenated in order they are the
    /// image.
    pub objects: Vec<S3Object>,
}

/// Streams the image into S3.
pub(crate) struct S3Sink {
    runtime: Handle,
    client: Client,
    bucket: String,
    image_key: String,
    layout: UploadLayout,
    options: S3Options,
    /// The part being filled, and its CRC32C so far.
    current: Vec<u8>,
    current_crc: crc_fast::Digest,
    /// Bytes per part (a buffer's capacity may exceed it).
    part_len: usize,
    /// Where part buffers return once S3 has them.
    buffers: PartBuffers,
    /// How many parts may upload at once.
    ramp: Ramp,
    /// The segment being uploaded.
    upload: Option<MultipartUpload>,
    segment: u64,
    segment_written: u64,
    /// SHA-256 of the current segment, for split images only (an unsplit image's is the image's).
    segment_hash: Option<sha2::Sha256>,
    done: Vec<S3Object>,
    /// Where every completed object is recorded, for the companions' writer and the cleanup.
    ledger: Ledger,
    written: u64,
}

impl S3Sink {
    /// Plans the layout of an image of `size` bytes at `key` and starts the first upload. Every
    /// object completed is recorded in `ledger`.
    ///
    /// A rerun restarts rather than resumes: the image's whole-device hashes need every byte read
    /// again anyway, and parts sent by a process that died cannot be tied to this run's reads.
    /// Uploads of the same image left by an interrupted run are aborted once this one has won
    /// every image key (see `abort_other_uploads` for why not before).
    pub(crate) fn create(
        runtime: Handle,
        client: Client,
        bucket: &str,
        key: &str,
        size: u64,
        options: &S3Options,
        ledger: Ledger,
    ) -> Result<Self> {
        let UploadPlan {
            layout,
            ramp,
            part_buffers,
        } = options.plan(size)?;
        tracing::info!(
            part_bytes = layout.part_size,
            objects = layout.segments,
            parts_in_flight_start = ramp.limit(),
            parts_in_flight_max = ramp.max(),
            part_buffer_bytes = part_buffers,
            "Upload planned."
        );
        if layout.is_segmented() {
            tracing::info!(
                segments = layout.segments,
                segment_bytes = layout.segment_size,
                "The image is larger than one object may be; it is stored as numbered segments."
            );
        }
        let capacity = usize::try_from(layout.part_size)
            .map_err(|_| Error::InvalidSetting("part size too large".into()))?;
        let mut sink = Self {
            runtime,
            client,
            bucket: bucket.to_owned(),
            image_key: key.to_owned(),
            layout,
            options: options.clone(),
            current: Vec::with_capacity(capacity),
            part_len: capacity,
            current_crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi),
            buffers: PartBuffers::default(),
            ramp,
            upload: None,
            segment: 0,
            segment_written: 0,
            segment_hash: None,
            done: Vec::new(),
            ledger,
            written: 0,
        };
        sink.start_segment()?;
        Ok(sink)
    }

    fn start_segment(&mut self) -> Result<()> {
        let (offset, _) = self.layout.segment(self.segment);
        let key = self.layout.segment_key(&self.image_key, self.segment);
        self.upload = Some(MultipartUpload::start(
            &self.runtime,
            &self.client,
            &self.bucket,
            &key,
            offset,
            self.layout.part_size,
            &self.options,
        )?);
        self.segment_written = 0;
        self.segment_hash = self.layout.is_segmented().then(sha2::Sha256::new);
        Ok(())
    }

    fn ship_part(&mut self) -> Result<()> {
        let body = self.buffers.body(std::mem::take(&mut self.current));
        let crc = take_crc32c(&mut self.current_crc);
        open(&mut self.upload)?.send_part(body, crc, &mut self.ramp)?;
        // Only now, with room made: a finished part's buffer is back in the pool, so the parts in
        // flight plus the one filling never exceed what the plan counts.
        self.current = self.buffers.take(self.part_len);
        Ok(())
    }

    /// Completes the current segment's upload and records it.
    fn complete_segment(&mut self) -> Result<()> {
        if !self.current.is_empty() || open(&mut self.upload)?.is_empty() {
            self.ship_part()?;
        }
        let upload = self
            .upload
            .take()
            .ok_or(Error::Internal("S3 sink completed twice"))?;
        // Recorded in the ledger as soon as S3 completes it, so a failed proof deletes it too.
        let mut object = upload.complete(&self.ledger)?;
        object.sha256 = self.segment_hash.take().map(|h| hex::encode(h.finalize()));
        tracing::info!(key = %object.key, bytes = object.size_bytes, parts = object.part_plan.parts,
            "Image object stored and confirmed by S3.");
        self.done.push(object);
        Ok(())
    }

    fn fail(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
        self.done.clear();
        self.ledger
            .delete_all(&self.runtime, &self.client, &self.bucket, &self.options);
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (_, segment_len) = self.layout.segment(self.segment);
            let segment_room = segment_len - self.segment_written;
            let part_room = self.part_len - self.current.len();
            let take = data
                .len()
                .min(part_room)
                .min(usize::try_from(segment_room).unwrap_or(usize::MAX));
            if take == 0 {
                return Err(Error::Internal("more image bytes than the source size"));
            }
            let (head, rest) = data.split_at(take);
            self.current.extend_from_slice(head);
            self.current_crc.update(head);
            if let Some(hash) = &mut self.segment_hash {
                hash.update(head);
            }
            self.segment_written += take as u64;
            self.written += take as u64;
            data = rest;
            let segment_full = self.segment_written == segment_len;
            let last_segment = self.segment + 1 == self.layout.segments;
            if segment_full && !last_segment {
                self.complete_segment()?;
                self.segment += 1;
                self.start_segment()?;
            } else if self.current.len() == self.part_len {
                self.ship_part()?;
            }
        }
        Ok(())
    }
}

/// The segment's upload, unless it already ended.
fn open(upload: &mut Option<MultipartUpload>) -> Result<&mut MultipartUpload> {
    upload
        .as_mut()
        .ok_or(Error::Internal("S3 sink used after its upload ended"))
}

impl Sink for S3Sink {
    fn write(&mut self, _offset: u64, data: &[u8]) -> Result<()> {
        let result = self.write_inner(data);
        if result.is_err() {
            self.fail();
        }
        result
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReceipt> {
        if self.written != self.layout.size {
            self.fail();
            return Err(Error::Internal(
                "the S3 sink got fewer bytes than the image size",
            ));
        }
        if let Err(err) = self.complete_segment() {
            self.fail();
            return Err(err);
        }
        abort_other_uploads(
            &self.runtime,
            &self.client,
            &self.bucket,
            &self.image_key,
            &self.options,
        );
        let first = self.done.first().map(|o| o.key.clone()).unwrap_or_default();
        Ok(SinkReceipt {
            location: format!("s3://{}/{}", self.bucket, first),
            bytes: self.written,
            s3: Some(S3Receipt {
                bucket: self.bucket.clone(),
                objects: std::mem::take(&mut self.done),
            }),
        })
    }

    fn abort(mut self: Box<Self>) {
        self.fail();
    }
}
