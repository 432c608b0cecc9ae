//! A claim on an evidence name under an S3 prefix, so that runs asking for a new capture
//! (`--new-capture`) that start together pick different names before either reads a byte.
//!
//! The S3 twin of `sink::claim`: a small object `.<name>.claim` beside the evidence, created with
//! `If-None-Match: *`, so of several runs exactly one creates it and the others move on to the
//! next number at once, instead of each reading the whole source and all but one being refused
//! at CompleteMultipartUpload. No evidence key can collide with it (names never start with `.`).
//! It carries no Object Lock retention or legal hold of ours (it is no evidence, and must be
//! removable), and is deleted, only while it still carries our ETag, when the run ends. A run
//! killed with SIGKILL (or by a second signal, which exits at once) leaves it behind, which costs a
//! later new capture one number.

use aws_sdk_s3::Client;
use tokio::runtime::Handle;

use super::options::S3Options;
use super::protect::cleanup_retries;
use super::small::{Stored, put_small};
use crate::error::{Error, Result};

pub(super) use crate::sink::claim::claim_file_name;

/// This run's claim on an evidence name: the claim object's key and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct S3Claim {
    key: String,
    etag: Option<String>,
}

/// Claims an evidence name by creating the object `key`; `None` when another run holds it.
/// `token` must be unique to this run: a put the SDK retried after S3 had stored it then counts as
/// ours, and a rival's claim never does.
pub(super) fn claim_name(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    key: &str,
    token: &str,
    options: &S3Options,
) -> Result<Option<S3Claim>> {
    let unprotected = S3Options {
        retention: None,
        legal_hold: false,
        ..options.clone()
    };
    let body = format!("forensic-collector claims this evidence name: {token}\n").into_bytes();
    match put_small(runtime, client, bucket, key, body, &unprotected) {
        Ok(Stored::Created { etag, .. }) => Ok(Some(S3Claim {
            key: key.to_owned(),
            etag,
        })),
        // Our own retried put: S3 had stored it before the first answer was lost.
        Ok(Stored::AlreadyIdentical) => Ok(Some(S3Claim {
            key: key.to_owned(),
            etag: None,
        })),
        Err(Error::ObjectExists { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Deletes the claim object while it still carries our ETag; a failure is a warning (the name is
/// taken by its evidence, or a later new capture skips it).
pub(super) fn release(
    runtime: &Handle,
    client: &Client,
    bucket: &str,
    claim: &S3Claim,
    options: &S3Options,
) {
    let deleted = runtime.block_on(
        client
            .delete_object()
            .bucket(bucket)
            .key(&claim.key)
            .set_if_match(claim.etag.clone())
            .set_expected_bucket_owner(options.expected_bucket_owner.clone())
            .customize()
            .config_override(cleanup_retries())
            .send(),
    );
    if let Err(err) = deleted {
        tracing::warn!(bucket, key = %claim.key, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
            "Could not remove this run's claim on its evidence name; it is no evidence, remove it by hand.");
    }
}
