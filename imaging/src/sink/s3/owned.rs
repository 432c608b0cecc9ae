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

use super::options::S3Options;
use super::protect::cleanup_retries;
use super::s3_error;
use crate::error::{Error, Result};

/// One object this run created: its key and the ETag S3 gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedObject {
    /// Key.
    pub key: String,
    /// ETag returned by the write; `None` when the server sent none (then deletion is by key).
    pub etag: Option<String>,
    /// Version ID returned by the write, on a versioned bucket.
    pub version_id: Option<String>,
}

/// The objects a run created, shared between the image sink and the companions' writer, and what
/// became of them when the run failed: which the cleanup removed and which it had to leave, so the
/// run's last words say what is actually left in the bucket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger(Arc<Mutex<Entries>>);

#[derive(Debug, Default)]
struct Entries {
    owned: Vec<OwnedObject>,
    removed: Vec<String>,
    left: Vec<String>,
}

/// What a failed run's cleanup did: the keys it deleted and the keys it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Objects this run created and then deleted.
    pub removed: Vec<String>,
    /// Objects this run created that are still there (Object Lock, no permission, endpoint
    /// gone, or replaced by another writer).
    pub left: Vec<String>,
}

impl Ledger {
    /// Records an object this run created.
    pub(crate) fn record(&self, object: OwnedObject) {
        self.entries().owned.push(object);
    }

    /// Everything recorded so far and not yet deleted.
    pub(crate) fn objects(&self) -> Vec<OwnedObject> {
        self.entries().owned.clone()
    }

    /// What the cleanups so far removed and left.
    pub(crate) fn cleanup(&self) -> Cleanup {
        let entries = self.entries();
        Cleanup {
            removed: entries.removed.clone(),
            left: entries.left.clone(),
        }
    }

    /// Deletes every object recorded so far (see `delete_object`), each once, and notes the
    /// outcome for [`Ledger::cleanup`].
    pub(crate) fn delete_all(
        &self,
        runtime: &Handle,
        client: &Client,
        bucket: &str,
        options: &S3Options,
    ) {
        self.remove_each(|object| delete_object(runtime, client, bucket, object, options));
    }

    /// Takes every recorded object out and hands it to `delete`, which says whether it is gone.
    fn remove_each(&self, mut delete: impl FnMut(&OwnedObject) -> bool) {
        let owned = std::mem::take(&mut self.entries().owned);
        for object in owned {
            let removed = delete(&object);
            let mut entries = self.entries();
            if removed {
                entries.removed.push(object.key);
            } else {
                entries.left.push(object.key);
            }
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Fails unless every object in `objects` still carries the ETag this run's write gave it.
pub(super) fn still_ours(
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

/// Deletes one object a failed run created itself (an earlier segment, or the image and
/// companions when a later step failed), so no partial evidence is left that could be taken for
/// evidence or block a rerun; true when it is gone. The deletion names the object's version, or
/// carries its ETag (`If-Match`): an object another writer has replaced since is left alone. Best
/// effort with few attempts (see `cleanup_retries`): under Object Lock, without `s3:DeleteObject`
/// or with the endpoint gone the object stays, with an error in the log; without a manifest it
/// never looks complete.
fn delete_object(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    object: &OwnedObject,
    options: &S3Options,
) -> bool {
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
        Ok(_) => {
            tracing::warn!(
                bucket,
                key,
                version_id = object.version_id.as_deref().unwrap_or("-"),
                "Deleted an object of the failed run."
            );
            true
        }
        Err(err) => {
            tracing::error!(bucket, key, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "Could not delete an object of the failed run (or another writer replaced it); it is still in the bucket, with no manifest from this run.");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(key: &str) -> OwnedObject {
        OwnedObject {
            key: key.into(),
            etag: Some("\"e1-2\"".into()),
            version_id: None,
        }
    }

    // Issue 19: the run's last words list what its cleanup removed and what it left, and
    // nothing is deleted twice.
    #[test]
    fn the_ledger_is_shared_and_its_cleanup_says_what_was_removed_and_left() {
        let ledger = Ledger::default();
        let companion_writer = ledger.clone();
        ledger.record(owned("a/x.image.dd.001"));
        companion_writer.record(owned("a/x.image.dd.sha256"));
        companion_writer.record(owned("a/x.capture.log"));
        assert_eq!(ledger.objects().len(), 3);
        let mut asked = Vec::new();
        companion_writer.remove_each(|object| {
            asked.push(object.key.clone());
            object.key != "a/x.image.dd.sha256"
        });
        assert_eq!(
            asked,
            ["a/x.image.dd.001", "a/x.image.dd.sha256", "a/x.capture.log"]
        );
        assert!(ledger.objects().is_empty());
        ledger.remove_each(|object| panic!("{} deleted twice", object.key));
        assert_eq!(
            ledger.cleanup(),
            Cleanup {
                removed: vec!["a/x.image.dd.001".into(), "a/x.capture.log".into()],
                left: vec!["a/x.image.dd.sha256".into()],
            }
        );
    }
}
