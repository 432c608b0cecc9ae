//! Guarding the evidence in the bucket: Object Lock required and enforced, leftovers of interrupted
//! runs aborted, segments of a failed run removed, and the finished image labelled with its hashes.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockLegalHoldStatus, Tag, Tagging};
use tokio::runtime::Handle;

use super::options::S3Options;
use super::plan::is_segment_key;
use super::{real_version, s3_error};
use crate::error::{Error, Result};

/// Attempts for a cleanup request (aborting an upload, deleting a failed run's object). The run has
/// already failed, often because the endpoint is gone; retrying the cleanup with the full budget
/// only delays the report by as long again (measured: 127 s instead of about 60 against a dead
/// endpoint). What is left has no manifest, and a later run or a lifecycle rule removes it.
pub(super) const CLEANUP_ATTEMPTS: u32 = 2;

/// A per-request override that gives cleanup requests [`CLEANUP_ATTEMPTS`].
pub(super) fn cleanup_retries() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default()
        .retry_config(RetryConfig::standard().with_max_attempts(CLEANUP_ATTEMPTS))
}

/// Refuses a bucket without Object Lock when the configuration requires it: evidence that the
/// configuration promises to be immutable must not silently land somewhere it is not.
pub(super) fn require_object_lock(
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

/// Makes sure a completed multipart object carries the retention and legal hold asked for. S3
/// applies them from CreateMultipartUpload; servers that drop them there get them set explicitly,
/// so the evidence is never left unprotected without an error.
pub(super) fn ensure_object_lock(
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

/// Aborts every other in-progress multipart upload of the image at `key` or one of its segments,
/// once this run has completed them all.
///
/// Only after winning, never before: at the start of a run an open upload of the same key may
/// belong to a run still in progress (a second `acquire`, a restarted daemon's job), not to a
/// crashed one, and they cannot be told apart. Aborting it then would kill a legitimate capture.
/// Once this run owns every image key (its conditional completions succeeded), any other upload of
/// them can only end refused, so aborting it loses nothing: an interrupted run's leftovers are
/// cleaned up here, and a concurrent loser fails at once instead of after its whole disk.
///
/// Best effort: a server without ListMultipartUploads (s3s-fs answers NotImplemented) or a role
/// without `s3:ListBucketMultipartUploads` gets a warning, not a failed acquisition.
pub(super) fn abort_other_uploads(
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
                "Cannot list multipart uploads; uploads of this image left by an interrupted run, if any, are not cleaned up.");
            return;
        }
    };
    for upload in listed.uploads() {
        let (Some(stale_key), Some(upload_id)) = (upload.key(), upload.upload_id()) else {
            continue;
        };
        if !is_image_key(stale_key, key) {
            continue;
        }
        let aborted = runtime.block_on(
            client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(stale_key)
                .upload_id(upload_id)
                .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                .send(),
        );
        match aborted {
            Ok(_) => {
                tracing::warn!(bucket, key = stale_key, upload_id, initiated = ?upload.initiated(),
                "Aborted another multipart upload of this image (left by an interrupted run, or a concurrent run that could only be refused).")
            }
            Err(err) => {
                tracing::warn!(bucket, key, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not abort another multipart upload of this image.")
            }
        }
    }
}

/// Whether `candidate` is the image key itself or one of its numbered segments (`key.001`, …).
fn is_image_key(candidate: &str, key: &str) -> bool {
    candidate == key || is_segment_key(candidate, key)
}

/// Tags an object with its hashes and case. Object metadata is fixed when an upload starts, before
/// the hashes exist; tags can be added afterwards, so the object alone names its digests.
pub(super) fn tag_object(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: &[(String, String)],
    options: &S3Options,
) -> Result<()> {
    let tag_set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidSetting(format!("bad object tag: {e}")))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(|e| Error::InvalidSetting(format!("bad object tags: {e}")))?;
    runtime
        .block_on(
            client
                .put_object_tagging()
                .bucket(bucket)
                .key(key)
                .set_version_id(real_version(version_id))
                .tagging(tagging)
                .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                .send(),
        )
        .map_err(|e| s3_error("tag", bucket, key, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_uploads_of_the_image_and_its_segments_are_recognised() {
        assert!(is_image_key("a/x.image.dd", "a/x.image.dd"));
        assert!(is_image_key("a/x.image.dd.001", "a/x.image.dd"));
        assert!(is_image_key("a/x.image.dd.1234", "a/x.image.dd"));
        assert!(!is_image_key("a/x.image.dd.sha256", "a/x.image.dd"));
        assert!(!is_image_key("a/x.image.dd2", "a/x.image.dd"));
        assert!(!is_image_key("a/x.image.dd.01", "a/x.image.dd"));
    }
}
