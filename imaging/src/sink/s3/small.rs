//! Small companion objects (sidecar, capture log, manifest): one PutObject each, checksummed.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest;
use tokio::runtime::Handle;

use super::options::S3Options;
use super::s3_error;
use crate::error::Result;

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
