//! One multipart upload: parts go out in tokio tasks with their SHA-256, at most `parts_in_flight`
//! at a time; completion recomputes the composite checksum and checks it against what S3 reports.

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::exists::{is_refused_condition, refused_write};
use super::options::S3Options;
use super::plan::PartPlan;
use super::protect::{cleanup_retries, ensure_object_lock};
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
    /// Our composite checksum (`base64(sha256(part digests))-N`).
    pub checksum_sha256: String,
    /// The checksum the server returned for the object, which matched ours; `None` when the server
    /// keeps no checksums and so could not confirm the upload.
    pub server_checksum: Option<String>,
    /// SHA-256 (hex) of this object's bytes, for segments of a split image; an unsplit image's is
    /// the image's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

type UploadedPart = (CompletedPart, [u8; 32]);

/// One part: still uploading, or accepted by S3 (with its SHA-256 digest for the composite check).
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
    slots: Arc<Semaphore>,
    sent: u64,
}

impl MultipartUpload {
    /// CreateMultipartUpload with SHA-256 part checksums, SSE-KMS, Object Lock and metadata.
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
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
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
            slots: Arc::new(Semaphore::new(options.parts_in_flight.max(1))),
            sent: 0,
        })
    }

    /// Hands a filled part to an upload task, waiting for a free slot first (back-pressure).
    pub(super) fn send_part(&mut self, body: Bytes) -> Result<()> {
        self.collect_finished()?;
        let permit = self
            .runtime
            .block_on(Arc::clone(&self.slots).acquire_owned())
            .map_err(|_| Error::Internal("upload slots closed"))?;
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
                let _permit = permit;
                let hashed = body.clone();
                let digest: [u8; 32] =
                    tokio::task::spawn_blocking(move || sha2::Sha256::digest(&hashed).into())
                        .await
                        .map_err(|_| Error::Internal("part hashing panicked"))?;
                let checksum = BASE64.encode(digest);
                // The part's SHA-256 checksum header, which S3 verifies, already guards the payload,
                // so SigV4 need not hash the same bytes a second time.
                let response = request
                    .checksum_sha256(&checksum)
                    .content_length(i64::try_from(body.len()).unwrap_or(i64::MAX))
                    .body(ByteStream::from(body))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| s3_error("upload a part of", &bucket, &key, e))?;
                if response.checksum_sha256().is_some_and(|c| c != checksum) {
                    return Err(Error::Internal(
                        "S3 acknowledged a part with a different SHA-256",
                    ));
                }
                let part = CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(response.e_tag().map(str::to_owned))
                    .checksum_sha256(checksum)
                    .build();
                Ok((part, digest))
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
                let placeholder =
                    PartUpload::Done(Box::new((CompletedPart::builder().build(), [0; 32])));
                let upload = std::mem::replace(&mut self.uploads[index], placeholder);
                self.uploads[index] = PartUpload::Done(Box::new(self.settle(upload)?));
            }
        }
        Ok(())
    }

    /// Waits for every part, completes the upload and proves the object: S3's composite checksum
    /// must equal ours and its size the bytes sent. Then Object Lock is made sure of.
    pub(super) fn complete(mut self) -> Result<S3Object> {
        let result = self.complete_inner();
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn complete_inner(&mut self) -> Result<S3Object> {
        let mut parts = Vec::with_capacity(self.uploads.len());
        let mut digests = sha2::Sha256::new();
        for upload in std::mem::take(&mut self.uploads) {
            let (part, digest) = self.settle(upload)?;
            digests.update(digest);
            parts.push(part);
        }
        let count = parts.len();
        let ours = format!("{}-{count}", BASE64.encode(digests.finalize()));
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let completed = self
            .runtime
            .block_on(
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
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| {
                if is_refused_condition(&e) {
                    refused_write(bucket, key)
                } else {
                    s3_error("complete the upload of", bucket, key, e)
                }
            })?;
        let version = real_version(completed.version_id());
        let head = self
            .runtime
            .block_on(
                self.client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version.clone())
                    .checksum_mode(ChecksumMode::Enabled)
                    .set_expected_bucket_owner(self.options.expected_bucket_owner.clone())
                    .send(),
            )
            .map_err(|e| s3_error("check", bucket, key, e))?;
        let server_checksum = compare_composite(bucket, key, &ours, count, head.checksum_sha256())?;
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
            etag: completed.e_tag().map(str::to_owned),
            version_id: completed.version_id().map(str::to_owned),
            checksum_sha256: ours,
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
                "The server returned no SHA-256 for the completed object; it cannot confirm the image, the manifest says so."
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
