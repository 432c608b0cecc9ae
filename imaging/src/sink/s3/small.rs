//! Small companion objects (sidecar, capture log, manifest): one conditional PutObject each,
//! checksummed.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest;
use tokio::runtime::Handle;

use super::exists::{is_refused_condition, refused_write};
use super::options::S3Options;
use super::s3_error;
use crate::error::Result;

/// How a companion object came to be in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stored {
    /// This call created it.
    Created {
        /// ETag S3 gave it.
        etag: Option<String>,
        /// Version ID, when the bucket is versioned.
        version_id: Option<String>,
    },
    /// The key already held exactly these bytes: the SDK retried a put whose first answer was lost
    /// after S3 had stored it. Nothing was replaced, and since it may not be this run's, a failed
    /// run must not delete it.
    AlreadyIdentical,
}

/// Puts a small companion object (sidecar, capture log, manifest) with its SHA-256 checked by S3,
/// only if the key does not exist yet (`If-None-Match: *`): evidence is created, never replaced.
/// A refused put is an [`Error::ObjectExists`](crate::Error::ObjectExists), unless the existing
/// object holds exactly `body`.
pub(super) fn put_small(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    options: &S3Options,
) -> Result<Stored> {
    let checksum = BASE64.encode(sha2::Sha256::digest(&body));
    // Content-MD5 too: Object Lock writes have long required it, and some S3-compatible servers
    // still do; the companions are small, so the extra digest costs nothing.
    let md5 = BASE64.encode(md5::Md5::digest(&body));
    let mut request = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .if_none_match("*")
        .checksum_sha256(checksum)
        .content_md5(md5)
        .set_expected_bucket_owner(options.expected_bucket_owner.clone())
        .set_object_lock_mode(options.lock_mode())
        .set_object_lock_retain_until_date(options.retain_until())
        .set_object_lock_legal_hold_status(options.legal_hold_status())
        .body(ByteStream::from(body.clone()));
    if let Some(kms) = &options.sse_kms_key_id {
        request = request
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(kms);
    }
    match runtime.block_on(request.send()) {
        Ok(put) => Ok(Stored::Created {
            etag: put.e_tag().map(str::to_owned),
            version_id: put.version_id().map(str::to_owned),
        }),
        Err(err) if is_refused_condition(&err) => {
            if holds(runtime, client, bucket, key, &body, options) {
                tracing::warn!(
                    bucket,
                    key,
                    "The object was already stored with exactly these bytes (a retried put); kept as it is."
                );
                Ok(Stored::AlreadyIdentical)
            } else {
                Err(refused_write(bucket, key))
            }
        }
        Err(err) => Err(s3_error("store", bucket, key, err)),
    }
}

/// Whether the object at `key` holds exactly `body` (a failed read counts as no).
fn holds(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    options: &S3Options,
) -> bool {
    runtime.block_on(async {
        let Ok(object) = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(options.expected_bucket_owner.clone())
            .send()
            .await
        else {
            return false;
        };
        // Never download a large object only to find it differs.
        if object.content_length() != i64::try_from(body.len()).ok() {
            return false;
        }
        object
            .body
            .collect()
            .await
            .is_ok_and(|bytes| bytes.into_bytes().as_ref() == body)
    })
}
