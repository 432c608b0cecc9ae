//! One multipart upload: parts go out in tokio tasks with their CRC32C, as many at a time as the
//! [`Ramp`] allows; completion recomputes the composite checksum and checks it against what S3
//! reports.
//!
//! Why CRC32C and not SHA-256 per part: S3 checks the part checksum against the bytes it received
//! and refuses the part on a mismatch, which is what proves that S3 stored what we hashed; a CRC
//! does that as well as a digest (transmission damage is not adversarial: our SHA-256 and BLAKE3 of
//! the image are the cryptographic record) at a hundredth of the CPU, where a per-part SHA-256 was a
//! second full SHA-256 pass over the image. CRC32C rather than S3's newer full-object CRC64NVME
//! because CRC32C composite checksums are what every S3-compatible server we test against computes
//! back (moto 5.1 has no CRC64NVME and would answer a SHA-256 in its place), so the confirmation
//! path runs in the tests and not only on AWS.

use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::exists::{is_no_such_upload, is_refused_condition, is_transient, refused_write};
use super::options::S3Options;
use super::owned::{Ledger, OwnedObject};
use super::plan::PartPlan;
use super::protect::{cleanup_retries, ensure_object_lock};
use super::ramp::Ramp;
use super::{real_version, s3_error};
use crate::error::{Error, Result};

/// What S3 confirmed about one stored object of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Object {
    /// Key.
    pub key: String,
    /// Offset of the object's first byte in the image.
    pub offset: u64,
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Part layout.
    pub part_plan: PartPlan,
    /// ETag of the completed object.
    pub etag: Option<String>,
    /// Version ID, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Our composite checksum: `base64(crc32c(part CRC32Cs, big-endian))-N`, as S3 computes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_crc32c: Option<String>,
    /// The composite SHA-256 (`base64(sha256(part digests))-N`) that manifests written before
    /// CRC32C part checksums carry; read, never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    /// The checksum the server returned for the object, which matched ours; `None` when the server
    /// keeps no checksums and so could not confirm the upload.
    pub server_checksum: Option<String>,
    /// SHA-256 (hex) of this object's bytes, for segments of a split image; an unsplit image's is
    /// the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

type UploadedPart = (CompletedPart, u32);

/// What S3 answered for a completed object (or what HEAD found, when the answer was lost).
struct Completed {
    etag: Option<String>,
    version_id: Option<String>,
}

/// A per-request override of one attempt: the completion is retried by `complete_upload` itself.
fn single_attempt() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
}

/// Wait before completion attempt `attempt + 1`: 1, 2, 4 s, then 4 s, as the SDK's own backoff
/// (at most 4 s, see `aws::s3_client`).
fn completion_backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_secs(1 << attempt.saturating_sub(1).min(2))
}

/// One part: still uploading, or accepted by S3 (with its CRC32C for the composite check).
enum PartUpload {
    Running(JoinHandle<Result<UploadedPart>>),
    Done(Box<UploadedPart>),
}

/// An open multipart upload of one object.
pub(super) struct MultipartUpload {
    runtime: Handle,
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    offset: u64,
    part_size: u64,
    options: S3Options,
    uploads: Vec<PartUpload>,
    /// Parts handed out and not yet finished (acknowledged, failed or aborted).
    running: usize,
    /// Each part task reports here when it ends, with its size if S3 accepted it (else 0) and when.
    finished_tx: mpsc::UnboundedSender<(u64, Instant)>,
    finished_rx: mpsc::UnboundedReceiver<(u64, Instant)>,
    sent: u64,
    /// The CRC32C of each part, in order, once every part was accepted (`complete_upload`).
    parts: Vec<u32>,
}

/// Reports a part task's end when dropped: on success, failure, panic or abort alike, so the
/// count of running parts can never wait for a task that is gone.
struct Finished {
    tx: mpsc::UnboundedSender<(u64, Instant)>,
    bytes: u64,
}

impl Drop for Finished {
    fn drop(&mut self) {
        // Stamped here, not when the sink thread gets to it: reports can wait while the source
        // is slow, and the ramp's rates must be the link's.
        let _ = self.tx.send((self.bytes, Instant::now()));
    }
}

/// The checksum S3 expects for a CRC32C: its four big-endian bytes in base64.
fn crc32c_base64(crc: u32) -> String {
    BASE64.encode(crc.to_be_bytes())
}

/// The composite checksum of parts with these CRC32Cs, as S3 reports it: the CRC32C of their
/// concatenated big-endian bytes, in base64, then `-` and the part count.
fn composite_crc32c(parts: &[u32]) -> String {
    let bytes: Vec<u8> = parts.iter().flat_map(|c| c.to_be_bytes()).collect();
    format!(
        "{}-{}",
        crc32c_base64(crc_fast::crc32_iscsi(&bytes)),
        parts.len()
    )
}

/// Takes the CRC32C out of `digest` and resets it (crc-fast returns every width in a `u64`; a
/// 32-bit CRC's high half is zero).
pub(super) fn take_crc32c(digest: &mut crc_fast::Digest) -> u32 {
    u32::try_from(digest.finalize_reset() & u64::from(u32::MAX)).unwrap_or_default()
}

impl MultipartUpload {
    /// CreateMultipartUpload with CRC32C part checksums, SSE-KMS, Object Lock and metadata.
    pub(super) fn start(
        runtime: &Handle,
        client: &Client,
        bucket: &str,
        key: &str,
        offset: u64,
        part_size: u64,
        options: &S3Options,
    ) -> Result<Self> {
        let mut request = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .content_type("application/octet-stream")
            .set_expected_bucket_owner(options.expected_bucket_owner.clone())
            .set_object_lock_mode(options.lock_mode())
            .set_object_lock_retain_until_date(options.retain_until())
            .set_object_lock_legal_hold_status(options.legal_hold_status());
        if let Some(kms) = &options.sse_kms_key_id {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        for (name, value) in &options.metadata {
            request = request.metadata(name, value);
        }
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let created = runtime
            .block_on(request.send())
            .map_err(|e| s3_error("start multipart upload of", bucket, key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or(Error::Internal(
                "CreateMultipartUpload returned no upload ID",
            ))?
            .to_owned();
        tracing::debug!(bucket, key, upload_id, "Multipart upload started.");
        Ok(Self {
            runtime: runtime.clone(),
            client: client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            offset,
            part_size,
            options: options.clone(),
            uploads: Vec::new(),
            running: 0,
            finished_tx,
            finished_rx,
            sent: 0,
            parts: Vec::new(),
        })
    }

    /// Takes the reports of parts that ended, and feeds the acknowledged ones to `ramp`.
    fn note_finished(&mut self, (bytes, at): (u64, Instant), ramp: &mut Ramp) {
        self.running = self.running.saturating_sub(1);
        if bytes > 0 {
            ramp.part_done(bytes, at);
        }
    }

    /// Waits until fewer parts than the ramp's limit are running (back-pressure on the pipeline).
    fn wait_for_room(&mut self, ramp: &mut Ramp) -> Result<()> {
        while let Ok(report) = self.finished_rx.try_recv() {
            self.note_finished(report, ramp);
        }
        while self.running >= ramp.limit() {
            let report = self
                .runtime
                .block_on(self.finished_rx.recv())
                .ok_or(Error::Internal("part upload reports closed"))?;
            self.note_finished(report, ramp);
        }
        Ok(())
    }

    /// Hands a filled part and its CRC32C (taken as the bytes were copied in, from the same chunks
    /// the hashers got) to an upload task, once the ramp has room for it (back-pressure).
    pub(super) fn send_part(&mut self, body: Bytes, crc32c: u32, ramp: &mut Ramp) -> Result<()> {
        ramp.started(Instant::now());
        self.wait_for_room(ramp)?;
        self.collect_finished()?;
        let finished = Finished {
            tx: self.finished_tx.clone(),
            bytes: 0,
        };
        self.running += 1;
        let part_number =
            i32::try_from(self.uploads.len() + 1).map_err(|_| Error::Internal("too many parts"))?;
        self.sent += body.len() as u64;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number)
            .set_expected_bucket_owner(self.options.expected_bucket_owner.clone());
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        self.uploads
            .push(PartUpload::Running(self.runtime.spawn(async move {
                // Moves the whole guard in: naming only its field would capture just the field,
                // and the guard would report the part finished as soon as it was spawned.
                let mut finished = finished;
                let checksum = crc32c_base64(crc32c);
                let len = body.len() as u64;
                // The part's CRC32C header, which S3 verifies, already guards the payload, so SigV4
                // need not hash the same bytes again.
                let response = request
                    .checksum_crc32_c(&checksum)
                    .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                    .body(ByteStream::from(body))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| s3_error("upload a part of", &bucket, &key, e))?;
                if response.checksum_crc32_c().is_some_and(|c| c != checksum) {
                    return Err(Error::Internal(
                        "S3 acknowledged a part with a different CRC32C",
                    ));
                }
                let part = CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(response.e_tag().map(str::to_owned))
                    .checksum_crc32_c(checksum)
                    .build();
                finished.bytes = len;
                Ok((part, crc32c))
            })));
        Ok(())
    }

    /// Whether no part has been sent yet.
    pub(super) fn is_empty(&self) -> bool {
        self.uploads.is_empty()
    }

    /// Waits for `upload` if it is still running; a failed part fails the upload.
    fn settle(&self, upload: PartUpload) -> Result<UploadedPart> {
        match upload {
            PartUpload::Done(part) => Ok(*part),
            PartUpload::Running(handle) => self
                .runtime
                .block_on(handle)
                .map_err(|_| Error::Internal("part upload task panicked"))?,
        }
    }

    /// Takes the results of finished uploads, so a failed part stops the run early instead of
    /// after the rest of the disk has been uploaded for nothing.
    fn collect_finished(&mut self) -> Result<()> {
        for index in 0..self.uploads.len() {
            if matches!(&self.uploads[index], PartUpload::Running(h) if h.is_finished()) {
                let placeholder = PartUpload::Done(Box::new((CompletedPart::builder().build(), 0)));
                let upload = std::mem::replace(&mut self.uploads[index], placeholder);
                self.uploads[index] = PartUpload::Done(Box::new(self.settle(upload)?));
            }
        }
        Ok(())
    }

    /// Waits for every part, completes the upload and proves the object: S3's composite checksum
    /// must equal ours and its size the bytes sent. Then Object Lock is made sure of.
    ///
    /// The object is recorded in `ledger` the moment S3 has completed it, before it is proven: a
    /// completed upload can no longer be aborted, so if the proof fails the object is one this
    /// run created and must delete (conditionally, see `owned`), not an upload to abort.
    pub(super) fn complete(mut self, ledger: &Ledger) -> Result<S3Object> {
        let completed = match self.complete_upload() {
            Ok(completed) => completed,
            Err(err) => {
                self.abort();
                return Err(err);
            }
        };
        ledger.record(OwnedObject {
            key: self.key.clone(),
            etag: completed.etag.clone(),
            version_id: real_version(completed.version_id.as_deref()),
        });
        self.prove(&completed)
    }

    /// Waits for every part and completes the upload; the composite checksum of the parts sent is
    /// kept for `prove`.
    ///
    /// The completion is sent one attempt at a time (not through the SDK's retries), because the
    /// answer to a retry means something else once an earlier attempt may have been carried out:
    /// S3 can complete the upload and the answer be lost (a reset, a timeout while S3 assembles a
    /// large object, a 200 with an error inside). The retry is then refused (`If-None-Match`) or
    /// finds no upload, and the object is this run's own: left alone it blocked every rerun. So a
    /// refusal after such a failure looks at the object, and takes it as this run's when it holds
    /// exactly this run's bytes (size and composite CRC32C, see `adopt_if_ours`).
    fn complete_upload(&mut self) -> Result<Completed> {
        let mut parts = Vec::with_capacity(self.uploads.len());
        let mut crcs = Vec::with_capacity(self.uploads.len());
        for upload in std::mem::take(&mut self.uploads) {
            let (part, crc) = self.settle(upload)?;
            crcs.push(crc);
            parts.push(part);
        }
        self.parts = crcs;
        let attempts = self
            .client
            .config()
            .retry_config()
            .map_or(1, |retry| retry.max_attempts())
            .max(1);
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let mut answer_lost = false;
        for attempt in 1..=attempts {
            let sent = self.runtime.block_on(
                self.client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&self.upload_id)
                    // Evidence is created, never replaced: S3 refuses the completion if the key
                    // exists, so of two runs racing for it exactly one wins.
                    .if_none_match("*")
                    .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts.clone()))
                            .build(),
                    )
                    .customize()
                    .config_override(single_attempt())
                    .send(),
            );
            let err = match sent {
                Ok(done) => {
                    return Ok(Completed {
                        etag: done.e_tag().map(str::to_owned),
                        version_id: done.version_id().map(str::to_owned),
                    });
                }
                Err(err) => err,
            };
            let finished = is_refused_condition(&err) || is_no_such_upload(&err);
            if finished
                && answer_lost
                && let Some(ours) = self.adopt_if_ours()?
            {
                return Ok(ours);
            }
            if is_refused_condition(&err) {
                return Err(refused_write(bucket, key));
            }
            if !is_transient(&err) || attempt == attempts {
                return Err(s3_error("complete the upload of", bucket, key, err));
            }
            tracing::warn!(bucket, key, attempt, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Completing the upload failed or its answer was lost; asking again.");
            answer_lost = true;
            std::thread::sleep(completion_backoff(attempt));
        }
        Err(Error::Internal(
            "the completion loop ended without an answer",
        ))
    }

    /// After a completion whose answer was lost was refused on retry: the object at the key, if
    /// it holds exactly this run's bytes (its size and S3's composite CRC32C of the very parts this
    /// run sent). Only a run that uploaded the same bytes in the same part layout could have
    /// stored that object, and a rival capture of the same unchanged disk is told apart later:
    /// whichever run stores a companion second finds its objects no longer its own, and neither
    /// writes a manifest over the other's bytes (see `owned`).
    fn adopt_if_ours(&self) -> Result<Option<Completed>> {
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let head = self.head(None)?;
        let ours = composite_crc32c(&self.parts);
        let same_size = head.content_length() == i64::try_from(self.sent).ok();
        let same_bytes = head.checksum_crc32_c().is_some_and(|theirs| {
            compare_composite(bucket, key, &ours, self.parts.len(), Some(theirs)).is_ok()
        });
        if !(same_size && same_bytes) {
            return Ok(None);
        }
        tracing::warn!(
            bucket,
            key,
            "The upload was completed by an attempt whose answer was lost; the object holds exactly this run's bytes and is taken as its own."
        );
        Ok(Some(Completed {
            etag: head.e_tag().map(str::to_owned),
            version_id: head.version_id().map(str::to_owned),
        }))
    }

    /// HeadObject of the key (at `version`, if given) with its checksum.
    fn head(&self, version: Option<String>) -> Result<HeadObjectOutput> {
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        self.runtime
            .block_on(
                self.client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version)
                    .checksum_mode(ChecksumMode::Enabled)
                    .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                    .send(),
            )
            .map_err(|e| s3_error("check", bucket, key, e))
    }

    /// Proves the completed object is the bytes sent: S3's composite checksum equals ours and its
    /// size the bytes sent; then makes sure of Object Lock.
    fn prove(&self, completed: &Completed) -> Result<S3Object> {
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let count = self.parts.len();
        let ours = composite_crc32c(&self.parts);
        let version = real_version(completed.version_id.as_deref());
        let head = self.head(version.clone())?;
        let server_checksum =
            compare_composite(bucket, key, &ours, count, head.checksum_crc32_c())?;
        if head.content_length() != Some(i64::try_from(self.sent).unwrap_or(i64::MAX)) {
            return Err(Error::ChecksumMismatch {
                location: format!("s3://{bucket}/{key}"),
                expected: format!("{} bytes", self.sent),
                actual: format!("{:?} bytes", head.content_length()),
            });
        }
        if self.options.needs_object_lock() {
            ensure_object_lock(
                &self.runtime,
                &self.client,
                bucket,
                key,
                version,
                &head,
                &self.options,
            )?;
        }
        Ok(S3Object {
            key: key.to_owned(),
            offset: self.offset,
            size_bytes: self.sent,
            part_plan: PartPlan {
                part_size: self.part_size,
                parts: count as u64,
            },
            etag: completed.etag.clone(),
            version_id: completed.version_id.clone(),
            checksum_crc32c: Some(ours),
            checksum_sha256: None,
            server_checksum,
            sha256: None,
        })
    }

    /// Stops the running parts and aborts the upload, so no orphaned parts are left to bill.
    pub(super) fn abort(&self) {
        for upload in &self.uploads {
            if let PartUpload::Running(handle) = upload {
                handle.abort();
            }
        }
        let aborted = self.runtime.block_on(
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                .customize()
                .config_override(cleanup_retries())
                .send(),
        );
        if aborted.is_ok() {
            tracing::warn!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id,
                "Aborted the multipart upload of the failed run; its parts are removed and no object was created.");
        }
        if let Err(err) = aborted {
            tracing::error!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not abort the multipart upload; it must be aborted by hand or by a lifecycle rule.");
        }
    }
}

/// S3 reports a composite checksum as `digest-N`; some S3-compatible servers omit `-N`, and some
/// keep none at all (s3s-fs): then the object is accepted on size alone, with a warning and
/// `server_checksum: None` in the manifest. A checksum that differs is always fatal.
fn compare_composite(
    bucket: &str,
    key: &str,
    ours: &str,
    count: usize,
    theirs: Option<&str>,
) -> Result<Option<String>> {
    match theirs {
        None => {
            tracing::warn!(
                bucket,
                key,
                "The server returned no CRC32C for the completed object; it cannot confirm the image, the manifest says so."
            );
            Ok(None)
        }
        Some(theirs)
            if theirs == ours || ours.strip_suffix(&format!("-{count}")) == Some(theirs) =>
        {
            Ok(Some(theirs.to_owned()))
        }
        Some(theirs) => Err(Error::ChecksumMismatch {
            location: format!("s3://{bucket}/{key}"),
            expected: ours.to_owned(),
            actual: theirs.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_attempts_wait_as_the_sdk_would() {
        let waits: Vec<u64> = (1..=5).map(|a| completion_backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 4, 4]);
        let single = single_attempt().build();
        assert_eq!(
            single.retry_config().map(RetryConfig::max_attempts),
            Some(1)
        );
    }

    #[test]
    fn crc32c_checksums_are_what_s3_computes() {
        // The CRC-32C check value (RFC 3720): crc32c("123456789") = 0xE3069283.
        let crc = crc_fast::crc32_iscsi(b"123456789");
        assert_eq!(crc, 0xE306_9283);
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        digest.update(b"12345");
        digest.update(b"6789");
        assert_eq!(take_crc32c(&mut digest), crc);
        digest.update(b"123456789");
        assert_eq!(
            take_crc32c(&mut digest),
            crc,
            "taking the CRC resets the digest"
        );
        assert_eq!(crc32c_base64(crc), "4waSgw==");
        // A composite is the CRC32C of the parts' big-endian CRCs, then the count (values from
        // Python's `crc32c` package, which moto uses to compute S3's answer).
        assert_eq!(composite_crc32c(&[crc]), "pzJFoA==-1");
        assert_eq!(composite_crc32c(&[crc, 0]), "IJLT7g==-2");
        assert_eq!(composite_crc32c(&[0, crc]), "Y3287Q==-2");
    }

    #[test]
    fn composite_checksums_match_with_or_without_the_part_count() {
        let ours = "AAAA-3";
        assert_eq!(
            compare_composite("b", "k", ours, 3, Some("AAAA-3")).unwrap(),
            Some("AAAA-3".to_owned())
        );
        assert_eq!(
            compare_composite("b", "k", ours, 3, Some("AAAA")).unwrap(),
            Some("AAAA".to_owned())
        );
        assert_eq!(compare_composite("b", "k", ours, 3, None).unwrap(), None);
        assert!(compare_composite("b", "k", ours, 3, Some("BBBB-3")).is_err());
        assert!(compare_composite("b", "k", ours, 3, Some("AAAA-2")).is_err());
    }
}
