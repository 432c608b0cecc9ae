//! The S3 sink: the image streams from the pipeline into a multipart upload, with no local copy.
//!
//! Each part carries its own SHA-256 checksum, which S3 verifies on receipt; on completion S3 returns
//! the composite checksum (SHA-256 of the part digests, `-N`), which we recompute and compare, so the
//! object is proven to hold exactly the bytes we hashed. A part is kept in memory until S3 has
//! accepted it, so the SDK's retries resend it without reading the device again; `parts_in_flight`
//! bounds that memory at `(parts_in_flight + 1) × part_size`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled,
    ObjectLockLegalHoldStatus, ObjectLockMode, ServerSideEncryption,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::sink::{Sink, SinkReceipt};

/// S3's limits on multipart uploads.
pub mod limits {
    /// Smallest part S3 accepts (but for the last); we never go below 8 MiB, where per-request
    /// overhead stops mattering.
    pub const MIN_PART_SIZE: u64 = 8 << 20;
    /// Largest part S3 accepts.
    pub const MAX_PART_SIZE: u64 = 5 << 30;
    /// Most parts in one upload.
    pub const MAX_PARTS: u64 = 10_000;
}

/// An `s3://bucket/prefix` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    bucket: String,
    prefix: String,
}

impl S3Url {
    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key of `name` under the prefix (`prefix/name`, or `name` without a prefix).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl FromStr for S3Url {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidSetting(format!("{text:?} is not an s3://bucket/prefix URL: {why}"))
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(bad(
                "the bucket name must be 3-63 lower-case letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|seg| seg == "." || seg == "..") || prefix.contains("//") {
            return Err(bad(
                "the prefix must not contain empty, '.' or '..' segments",
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Part size and count for an object of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    /// Bytes per part (the last may be shorter).
    pub part_size: u64,
    /// Number of parts.
    pub parts: u64,
}

impl PartPlan {
    /// The smallest whole-MiB part size (at least `min_part`) that fits `size` into 10,000 parts.
    pub fn for_size(size: u64, min_part: u64) -> Result<Self> {
        let needed = size.div_ceil(limits::MAX_PARTS).next_multiple_of(1 << 20);
        let part_size = needed.max(min_part).max(1);
        if part_size > limits::MAX_PART_SIZE {
            return Err(Error::InvalidSetting(format!(
                "{size} bytes do not fit in {} parts of at most {} bytes",
                limits::MAX_PARTS,
                limits::MAX_PART_SIZE
            )));
        }
        Ok(Self {
            part_size,
            parts: size.div_ceil(part_size).max(1),
        })
    }
}

/// Evidence-protection and tuning options of the upload.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Parts uploading at once (memory: one part each, plus the one being filled).
    pub parts_in_flight: usize,
    /// Smallest part size; raised to fit the object into 10,000 parts.
    pub min_part_size: u64,
    /// SSE-KMS key ID or ARN; `None` leaves the bucket default.
    pub sse_kms_key_id: Option<String>,
    /// `x-amz-expected-bucket-owner`: fail rather than write into someone else's bucket.
    pub expected_bucket_owner: Option<String>,
    /// User metadata on the image object (incident, volume, …).
    pub metadata: Vec<(String, String)>,
    /// Object Lock retention put on every object written.
    pub retention: Option<Retention>,
    /// Put a legal hold on every object written.
    pub legal_hold: bool,
}

/// Object Lock retention: until when, and how strictly, the evidence cannot be deleted or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `GOVERNANCE` (privileged users may lift it) or `COMPLIANCE` (nobody may).
    pub mode: ObjectLockMode,
    /// End of the retention period.
    pub retain_until: chrono::DateTime<chrono::Utc>,
}

impl S3Options {
    /// Whether anything written needs the bucket to have Object Lock enabled.
    pub fn needs_object_lock(&self) -> bool {
        self.retention.is_some() || self.legal_hold
    }

    fn lock_mode(&self) -> Option<ObjectLockMode> {
        self.retention.as_ref().map(|r| r.mode.clone())
    }

    fn retain_until(&self) -> Option<aws_sdk_s3::primitives::DateTime> {
        self.retention
            .as_ref()
            .map(|r| aws_sdk_s3::primitives::DateTime::from_secs(r.retain_until.timestamp()))
    }

    fn legal_hold_status(&self) -> Option<ObjectLockLegalHoldStatus> {
        self.legal_hold.then_some(ObjectLockLegalHoldStatus::On)
    }
}

/// Refuses a bucket without Object Lock when the configuration requires it: evidence that the
/// configuration promises to be immutable must not silently land somewhere it is not.
pub fn require_object_lock(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    options: &S3Options,
) -> Result<()> {
    let config = runtime.block_on(
        client
            .get_object_lock_configuration()
            .bucket(bucket)
            .set_expected_bucket_owner(options.expected_bucket_owner.clone())
            .send(),
    );
    let enabled = config
        .as_ref()
        .ok()
        .and_then(|c| c.object_lock_configuration())
        .and_then(|c| c.object_lock_enabled())
        == Some(&ObjectLockEnabled::Enabled);
    if enabled {
        return Ok(());
    }
    let detail = match config {
        Err(err) => aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
        Ok(_) => "Object Lock is not enabled".to_owned(),
    };
    Err(Error::S3 {
        action: "use bucket",
        location: format!("s3://{bucket}"),
        message: format!(
            "the configuration requires Object Lock and the bucket does not have it ({detail})"
        ),
    })
}

/// What S3 confirmed about the stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Receipt {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// ETag of the completed object.
    pub etag: Option<String>,
    /// Version ID, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Part layout.
    pub part_plan: PartPlan,
    /// Our composite checksum (`base64(sha256(part digests))-N`).
    pub checksum_sha256: String,
    /// The checksum the server returned for the object, which matched ours; `None` when the server
    /// keeps no checksums and so could not confirm the upload.
    pub server_checksum: Option<String>,
}

type UploadedPart = (CompletedPart, [u8; 32]);

/// One part: still uploading, or accepted by S3 (with its SHA-256 digest for the composite check).
enum PartUpload {
    Running(JoinHandle<Result<UploadedPart>>),
    Done(Box<UploadedPart>),
}

/// Streams the image into one multipart upload.
pub struct S3Sink {
    runtime: Handle,
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    plan: PartPlan,
    expected_bucket_owner: Option<String>,
    lock: S3Options,
    current: Vec<u8>,
    uploads: Vec<PartUpload>,
    slots: Arc<Semaphore>,
    written: u64,
}

impl S3Sink {
    /// Starts the multipart upload of an image of `size` bytes to `key`, first aborting uploads of the
    /// same key left behind by an interrupted run (crash, `kill -9`, power loss).
    ///
    /// A rerun restarts rather than resumes: the image's whole-device hashes need every byte read
    /// again anyway, and parts sent by a process that died cannot be tied to this run's reads.
    pub fn create(
        runtime: Handle,
        client: Client,
        bucket: &str,
        key: &str,
        size: u64,
        options: &S3Options,
    ) -> Result<Self> {
        let plan = PartPlan::for_size(size, options.min_part_size.max(5 << 20))?;
        abort_stale_uploads(&runtime, &client, bucket, key, options);
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
        let capacity = usize::try_from(plan.part_size)
            .map_err(|_| Error::InvalidSetting("part size too large".into()))?;
        Ok(Self {
            runtime,
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            plan,
            expected_bucket_owner: options.expected_bucket_owner.clone(),
            lock: options.clone(),
            current: Vec::with_capacity(capacity),
            uploads: Vec::new(),
            slots: Arc::new(Semaphore::new(options.parts_in_flight.max(1))),
            written: 0,
        })
    }

    /// Hands the filled part to an upload task, waiting for a free slot first (back-pressure).
    fn ship_part(&mut self) -> Result<()> {
        self.collect_finished()?;
        let capacity = self.current.capacity();
        let body = Bytes::from(std::mem::replace(
            &mut self.current,
            Vec::with_capacity(capacity),
        ));
        let permit = self
            .runtime
            .block_on(Arc::clone(&self.slots).acquire_owned())
            .map_err(|_| Error::Internal("upload slots closed"))?;
        let part_number =
            i32::try_from(self.uploads.len() + 1).map_err(|_| Error::Internal("too many parts"))?;
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(part_number)
            .set_expected_bucket_owner(self.expected_bucket_owner.clone());
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
                let response = request
                    .checksum_sha256(&checksum)
                    .content_length(i64::try_from(body.len()).unwrap_or(i64::MAX))
                    .body(ByteStream::from(body))
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

    /// Waits for `upload` if it is still running; a failed part fails the sink.
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

    fn complete(&mut self) -> Result<S3Receipt> {
        if !self.current.is_empty() || self.uploads.is_empty() {
            self.ship_part()?;
        }
        let mut parts = Vec::with_capacity(self.uploads.len());
        let mut digests = sha2::Sha256::new();
        for upload in std::mem::take(&mut self.uploads) {
            let (part, digest) = self.settle(upload)?;
            digests.update(digest);
            parts.push(part);
        }
        let count = parts.len();
        let ours = format!("{}-{count}", BASE64.encode(digests.finalize()));
        let completed = self
            .runtime
            .block_on(
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(&self.upload_id)
                    .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| s3_error("complete the upload of", &self.bucket, &self.key, e))?;
        let head = self
            .runtime
            .block_on(
                self.client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    // "null" is what unversioned buckets report; it is not a version to ask for.
                    .set_version_id(
                        completed
                            .version_id()
                            .filter(|v| *v != "null")
                            .map(str::to_owned),
                    )
                    .checksum_mode(ChecksumMode::Enabled)
                    .send(),
            )
            .map_err(|e| s3_error("check", &self.bucket, &self.key, e))?;
        // S3 reports a composite checksum as `digest-N`; some S3-compatible servers omit `-N`, and
        // some keep none at all (s3s-fs): then the object is accepted on size alone, with a warning
        // and `server_checksum: None` in the manifest. A checksum that differs is always fatal.
        let theirs = head.checksum_sha256();
        let server_checksum = match theirs {
            None => {
                tracing::warn!(bucket = %self.bucket, key = %self.key,
                    "The server returned no SHA-256 for the completed object; it cannot confirm the image, the manifest says so.");
                None
            }
            Some(theirs)
                if theirs == ours || ours.strip_suffix(&format!("-{count}")) == Some(theirs) =>
            {
                Some(theirs.to_owned())
            }
            Some(theirs) => {
                return Err(Error::ChecksumMismatch {
                    location: format!("s3://{}/{}", self.bucket, self.key),
                    expected: ours,
                    actual: theirs.to_owned(),
                });
            }
        };
        if head.content_length() != Some(i64::try_from(self.written).unwrap_or(i64::MAX)) {
            return Err(Error::ChecksumMismatch {
                location: format!("s3://{}/{}", self.bucket, self.key),
                expected: format!("{} bytes", self.written),
                actual: format!("{:?} bytes", head.content_length()),
            });
        }
        if self.lock.needs_object_lock() {
            let version = completed
                .version_id()
                .filter(|v| *v != "null")
                .map(str::to_owned);
            ensure_object_lock(
                &self.runtime,
                &self.client,
                &self.bucket,
                &self.key,
                version,
                &head,
                &self.lock,
            )?;
        }
        Ok(S3Receipt {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            etag: completed.e_tag().map(str::to_owned),
            version_id: completed.version_id().map(str::to_owned),
            part_plan: PartPlan {
                part_size: self.plan.part_size,
                parts: count as u64,
            },
            checksum_sha256: ours,
            server_checksum,
        })
    }

    fn abort_upload(&self) {
        let aborted = self.runtime.block_on(
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .set_expected_bucket_owner(self.expected_bucket_owner.clone())
                .send(),
        );
        if let Err(err) = aborted {
            tracing::error!(bucket = %self.bucket, key = %self.key, upload_id = %self.upload_id,
                error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not abort the multipart upload; it must be aborted by hand or by a lifecycle rule.");
        }
    }
}

impl Sink for S3Sink {
    fn write(&mut self, _offset: u64, mut data: &[u8]) -> Result<()> {
        self.written += data.len() as u64;
        while !data.is_empty() {
            let room = self.current.capacity() - self.current.len();
            let (head, rest) = data.split_at(room.min(data.len()));
            self.current.extend_from_slice(head);
            data = rest;
            if self.current.len() == self.current.capacity() {
                self.ship_part()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReceipt> {
        match self.complete() {
            Ok(receipt) => Ok(SinkReceipt {
                location: format!("s3://{}/{}", receipt.bucket, receipt.key),
                bytes: self.written,
                s3: Some(receipt),
            }),
            Err(err) => {
                self.abort_upload();
                Err(err)
            }
        }
    }

    fn abort(self: Box<Self>) {
        for upload in &self.uploads {
            if let PartUpload::Running(handle) = upload {
                handle.abort();
            }
        }
        self.abort_upload();
    }
}

/// Makes sure a completed multipart object carries the retention and legal hold asked for. S3
/// applies them from CreateMultipartUpload; servers that drop them there get them set explicitly,
/// so the evidence is never left unprotected without an error.
fn ensure_object_lock(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<String>,
    head: &aws_sdk_s3::operation::head_object::HeadObjectOutput,
    options: &S3Options,
) -> Result<()> {
    if let Some(retention) = &options.retention
        && head.object_lock_mode() != Some(&retention.mode)
    {
        let wanted = aws_sdk_s3::types::ObjectLockRetention::builder()
            .mode(retention.mode.as_str().into())
            .set_retain_until_date(options.retain_until())
            .build();
        runtime
            .block_on(
                client
                    .put_object_retention()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version.clone())
                    .retention(wanted)
                    .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                    .send(),
            )
            .map_err(|e| s3_error("set Object Lock retention on", bucket, key, e))?;
    }
    if options.legal_hold
        && head.object_lock_legal_hold_status() != Some(&ObjectLockLegalHoldStatus::On)
    {
        let hold = aws_sdk_s3::types::ObjectLockLegalHold::builder()
            .status(ObjectLockLegalHoldStatus::On)
            .build();
        runtime
            .block_on(
                client
                    .put_object_legal_hold()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(version)
                    .legal_hold(hold)
                    .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                    .send(),
            )
            .map_err(|e| s3_error("set an Object Lock legal hold on", bucket, key, e))?;
    }
    Ok(())
}

/// Aborts every in-progress multipart upload of exactly `key`. Best effort: a server without
/// ListMultipartUploads (s3s-fs answers NotImplemented) or a role without
/// `s3:ListBucketMultipartUploads` gets a warning, not a failed acquisition.
fn abort_stale_uploads(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    options: &S3Options,
) {
    let listed = runtime.block_on(
        client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(key)
            .set_expected_bucket_owner(options.expected_bucket_owner.clone())
            .send(),
    );
    let listed = match listed {
        Ok(listed) => listed,
        Err(err) => {
            tracing::warn!(bucket, key, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Cannot list multipart uploads; uploads left by an interrupted run, if any, are not cleaned up.");
            return;
        }
    };
    for upload in listed.uploads() {
        let (Some(stale_key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        if stale_key != key {
            continue;
        }
        let aborted = runtime.block_on(
            client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                .send(),
        );
        match aborted {
            Ok(_) => tracing::warn!(bucket, key, upload_id, initiated = ?upload.initiated(),
                "Aborted a multipart upload of this image left by an interrupted run; starting over."),
            Err(err) => {
                tracing::warn!(bucket, key, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not abort a multipart upload left by an interrupted run.")
            }
        }
    }
}

/// Puts a small companion object (sidecar, capture log, manifest) with its SHA-256 checked by S3.
pub fn put_small(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    options: &S3Options,
) -> Result<Option<String>> {
    let checksum = BASE64.encode(sha2::Sha256::digest(&body));
    // Content-MD5 too: Object Lock writes have long required it, and some S3-compatible servers
    // still do; the companions are small, so the extra digest costs nothing.
    let md5 = BASE64.encode(md5::Md5::digest(&body));
    let mut request = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .checksum_sha256(checksum)
        .content_md5(md5)
        .set_expected_bucket_owner(options.expected_bucket_owner.clone())
        .set_object_lock_mode(options.lock_mode())
        .set_object_lock_retain_until_date(options.retain_until())
        .set_object_lock_legal_hold_status(options.legal_hold_status())
        .body(ByteStream::from(body));
    if let Some(kms) = &options.sse_kms_key_id {
        request = request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms);
    }
    let put = runtime
        .block_on(request.send())
        .map_err(|e| s3_error("store", bucket, key, e))?;
    Ok(put.version_id().map(str::to_owned))
}

fn s3_error<E: std::error::Error + Send + Sync + 'static>(
    action: &'static str,
    bucket: &str,
    key: &str,
    err: E,
) -> Error {
    Error::S3 {
        action,
        location: format!("s3://{bucket}/{key}"),
        message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn s3_urls_parse_and_reject_junk() {
        let url: S3Url = "s3://evidence-bucket/cases/2026/".parse().unwrap();
        assert_eq!(url.bucket(), "evidence-bucket");
        assert_eq!(url.key("x.dd"), "cases/2026/x.dd");
        assert_eq!("s3://abc".parse::<S3Url>().unwrap().key("x"), "x");
        for bad in [
            "http://b/p",
            "s3://",
            "s3://ab",
            "s3://Bad_Bucket/p",
            "s3://bucket/../x",
            "s3://bucket/a//b",
        ] {
            assert!(bad.parse::<S3Url>().is_err(), "{bad}");
        }
    }

    #[test]
    fn part_plan_grows_for_large_volumes_and_refuses_what_cannot_fit() {
        assert_eq!(
            PartPlan::for_size(100 << 20, limits::MIN_PART_SIZE)
                .unwrap()
                .part_size,
            8 << 20
        );
        let tib = PartPlan::for_size(1 << 40, limits::MIN_PART_SIZE).unwrap();
        assert_eq!(tib.part_size, 105 << 20);
        assert!(tib.parts <= limits::MAX_PARTS);
        assert!(PartPlan::for_size(64 << 40, limits::MIN_PART_SIZE).is_err());
    }

    proptest! {
        #[test]
        fn every_plannable_size_fits_in_10000_parts(size in 0u64..(48u64 << 40)) {
            let plan = PartPlan::for_size(size, limits::MIN_PART_SIZE).unwrap();
            prop_assert!(plan.parts <= limits::MAX_PARTS);
            prop_assert!(plan.part_size >= limits::MIN_PART_SIZE);
            prop_assert!(plan.part_size <= limits::MAX_PART_SIZE);
            prop_assert!(plan.parts * plan.part_size >= size);
            prop_assert_eq!(plan.part_size % (1 << 20), 0);
        }
    }
}
