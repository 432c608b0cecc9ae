//! What this run created in the bucket, so that it removes only its own objects when it fails and
//! writes no manifest over objects that are no longer its own.
//!
//! On S3 a conditional write makes a key this run's alone. Two extra guards cover servers whose
//! conditional writes are not atomic (moto checks and then writes, so two completions racing for
//! one key can both succeed and the later one replaces the earlier): deletions carry the object's
//! ETag (`If-Match`), so a loser never removes the winner's object, and before each companion is
//! stored the image objects are checked to be unchanged, so no manifest describes bytes another
//! run put there. Two captures of one unchanged disk have the same ETags, so on a versioned bucket
//! (every Object Lock bucket is) the version ID is what tells this run's object from a rival's:
//! the check compares it and the deletion names it.

use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_s3::Client;
use tokio::runtime::Handle;

use super::multipart::S3Object;
use super::options::S3Options;
use super::protect::cleanup_retries;
use super::{real_version, s3_error};
use crate::error::{Error, Result};

/// One object this run created: its key and the ETag S3 gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedObject {
    /// Key.
    pub key: String,
    /// ETag returned by the write; `None` when the server sent none (then deletion is by key).
    pub etag: Option<String>,
    /// Version ID returned by the write, on a versioned bucket.
    pub version_id: Option<String>,
}

impl From<&S3Object> for OwnedObject {
    fn from(object: &S3Object) -> Self {
        Self {
            key: object.key.clone(),
            etag: object.etag.clone(),
            version_id: real_version(object.version_id.as_deref()),
        }
    }
}

/// The objects a run created, shared between the image sink and the companions' writer.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Vec<OwnedObject>>>);

impl Ledger {
    /// Records an object this run created.
    pub fn record(&self, object: OwnedObject) {
        self.entries().push(object);
    }

    /// Everything recorded so far.
    pub fn objects(&self) -> Vec<OwnedObject> {
        self.entries().clone()
    }

    /// Takes every entry out (they are being deleted).
    pub fn take(&self) -> Vec<OwnedObject> {
        std::mem::take(&mut *self.entries())
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<OwnedObject>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Fails unless every object in `objects` still carries the ETag this run's write gave it.
pub fn still_ours(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    objects: &[OwnedObject],
    options: &S3Options,
) -> Result<()> {
    for object in objects {
        let Some(ours) = &object.etag else {
            continue;
        };
        let head = runtime
            .block_on(
                client
                    .head_object()
                    .bucket(bucket)
                    .key(&object.key)
                    .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                    .send(),
            )
            .map_err(|e| s3_error("check", bucket, &object.key, e))?;
        let replaced_version = object
            .version_id
            .as_deref()
            .is_some_and(|version| head.version_id() != Some(version));
        // (`version_id` is a real one, see `real_version`; a versioned bucket reports it on HEAD.)
        if head.e_tag() != Some(ours.as_str()) || replaced_version {
            return Err(Error::ObjectExists {
                location: format!("s3://{bucket}/{}", object.key),
                detail: format!(
                    "another writer replaced this run's object (ETag {ours}, now {:?}); no manifest is written for it",
                    head.e_tag().unwrap_or("none")
                ),
            });
        }
    }
    Ok(())
}

/// Deletes objects a failed run created itself (earlier segments, or the image and companions when
/// a later write failed), so no partial evidence is left that could be taken for evidence or block
/// a rerun. Each deletion carries the object's ETag (`If-Match`): an object another writer has
/// replaced since is left alone. Best effort with few attempts (see `cleanup_retries`): under
/// Object Lock, without `s3:DeleteObject` or with the endpoint gone the objects stay, with an error
/// in the log; without a manifest they never look complete.
pub fn delete_objects(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    objects: &[OwnedObject],
    options: &S3Options,
) {
    for object in objects {
        let key = object.key.as_str();
        let deleted = runtime.block_on(
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                // A version names exactly this run's object; without one, the ETag guards it.
                .set_version_id(object.version_id.clone())
                .set_if_match(object.etag.clone().filter(|_| object.version_id.is_none()))
                .set_expected_bucket_owner(options.expected_bucket_owner.clone())
                .customize()
                .config_override(cleanup_retries())
                .send(),
        );
        match deleted {
            Ok(_) => tracing::warn!(bucket, key, "Deleted an object of the failed run."),
            Err(err) => {
                tracing::error!(bucket, key, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not delete an object of the failed run (or another writer replaced it); it has no manifest from this run.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_is_shared_and_emptied_by_take() {
        let ledger = Ledger::default();
        let companion_writer = ledger.clone();
        ledger.record(OwnedObject {
            key: "a/x.image.dd.001".into(),
            etag: Some("\"e1-2\"".into()),
            version_id: None,
        });
        companion_writer.record(OwnedObject {
            key: "a/x.image.dd.sha256".into(),
            etag: None,
            version_id: Some("v1".into()),
        });
        assert_eq!(ledger.objects().len(), 2);
        let taken = companion_writer.take();
        assert_eq!(taken[0].key, "a/x.image.dd.001");
        assert!(
            ledger.objects().is_empty(),
            "what is deleted is never deleted twice"
        );
    }
}
