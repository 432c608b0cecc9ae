//! Chain of custody: who captured the evidence, where, when, with which build, and the signed
//! statement that binds the manifest and the image to a KMS key.
//!
//! Hashes prove the bytes did not change after the capture; they do not prove who captured them or
//! that the manifest was not rewritten later by someone who may write to the bucket. The manifest's
//! `custody` section ([`Custody`]) records the first; a small **statement** ([`Statement`]) names the
//! manifest's and the image's digests and is signed with a KMS asymmetric key, which answers the
//! second: a rewritten manifest no longer matches the statement, and a rewritten statement no longer
//! matches its signature. The signature is over the statement's exact bytes, so an examiner checks it
//! with `openssl dgst -sha256 -verify` and the key's public half, with no tool of ours.
//!
//! # Layout
//! - this file: the manifest's custody section.
//! - [`check`]: what a manifest's custody section must agree with (part of `Manifest::validate`).
//! - [`statement`]: the statement's canonical bytes, and how it is checked against a manifest.
//! - [`signature`]: the two signing algorithms and their offline check against a public key.

pub(crate) mod check;
mod signature;
mod statement;

pub use signature::{PublicKey, SignatureError, SigningAlgorithm};
pub use statement::{Signing, Statement, StatementFile, StatementImage};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest's `custody` section (schema 6 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custody {
    /// The AWS principal the run's calls were made as (STS `GetCallerIdentity`); `None` when the run
    /// made no AWS call (a local capture without a signing key) or STS did not answer.
    pub principal: Option<Principal>,
    /// The local account the process ran as.
    pub unix_user: UnixUser,
    /// The host that ran the capture.
    pub host: CustodyHost,
    /// The build that ran.
    pub tool: CustodyTool,
    /// Who collected the evidence, as `case.examiner` says.
    pub examiner: Option<String>,
    /// Where each setting of the run came from (`section.key` → `default`, `file …`, `user data
    /// (json)`, `env …`, `flag --…`), as `config check` prints it.
    pub settings: BTreeMap<String, String>,
    /// When each step happened.
    pub events: CustodyEvents,
    /// Whether a statement was signed, and with what.
    pub signature: SignatureRecord,
}

/// An AWS principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// Its ARN (an assumed role's session ARN names the role and the session).
    pub arn: String,
    /// Its account.
    pub account: String,
    /// Its unique ID (`AROA…:session`).
    pub user_id: String,
}

/// The local account the process ran as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixUser {
    /// Effective user ID.
    pub uid: u32,
    /// Its name, when the password database has one.
    pub name: Option<String>,
}

/// The host that ran the capture, from IMDSv2 when it answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyHost {
    /// Host name.
    pub hostname: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// EC2 region.
    pub region: Option<String>,
    /// EC2 instance ID.
    pub instance_id: Option<String>,
    /// The AMI the instance was launched from.
    pub ami_id: Option<String>,
    /// EC2 instance type.
    pub instance_type: Option<String>,
}

/// The build that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyTool {
    /// Version, as `tool.version`.
    pub version: String,
    /// Git revision, as `tool.git_revision`.
    pub git_revision: String,
    /// SHA-256 of the executable that ran (`/proc/self/exe`), lower-case hex: the exact binary,
    /// comparable with a package's or a release's published digest.
    pub executable_sha256: String,
}

/// When each step of the capture happened (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyEvents {
    /// When the `watch` daemon saw the disk (absent for a capture started by hand).
    pub detected_at: Option<DateTime<Utc>>,
    /// When reading began.
    pub started_at: DateTime<Utc>,
    /// When the last byte was read and hashed.
    pub last_byte_read_at: DateTime<Utc>,
    /// When the destination confirmed the whole image (S3 completed the upload; the local file was
    /// synced).
    pub image_confirmed_at: DateTime<Utc>,
    /// The S3 version ID of each image object, in order, when the bucket is versioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_version_ids: Vec<String>,
    /// When this manifest was composed, just before it was signed and stored.
    pub manifest_written_at: DateTime<Utc>,
}

/// Whether the run signed a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignatureRecord {
    /// No signing key was given: nothing but the bucket's own protections vouches for this record.
    Unsigned,
    /// A statement beside the manifest is signed with this key.
    Signed {
        /// The key's ARN, as KMS named it when it signed.
        key_arn: String,
        /// The signing algorithm.
        algorithm: SigningAlgorithm,
        /// The statement's file name, beside the manifest.
        statement: String,
        /// The signature's file name, beside the manifest.
        signature: String,
    },
}

/// Everything the custody section holds but the times of the run's steps, which the engine
/// measures: gathered by the caller before the run (`Context::custody`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyFacts {
    /// As [`Custody::principal`].
    pub principal: Option<Principal>,
    /// As [`Custody::unix_user`].
    pub unix_user: UnixUser,
    /// As [`Custody::host`].
    pub host: CustodyHost,
    /// As [`Custody::tool`].
    pub tool: CustodyTool,
    /// As [`Custody::examiner`].
    pub examiner: Option<String>,
    /// As [`Custody::settings`].
    pub settings: BTreeMap<String, String>,
    /// As [`CustodyEvents::detected_at`].
    pub detected_at: Option<DateTime<Utc>>,
    /// As [`Custody::signature`].
    pub signature: SignatureRecord,
}

/// The times of a run's steps, as the engine measured them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTimes {
    /// Reading began.
    pub started_at: DateTime<Utc>,
    /// The last byte was read and hashed.
    pub last_byte_read_at: DateTime<Utc>,
    /// The destination confirmed the image.
    pub image_confirmed_at: DateTime<Utc>,
    /// The image objects' S3 version IDs.
    pub image_version_ids: Vec<String>,
}

impl CustodyFacts {
    /// The custody section of a manifest composed now, after a run that took `times`.
    pub fn into_custody(self, times: StepTimes) -> Custody {
        Custody {
            principal: self.principal,
            unix_user: self.unix_user,
            host: self.host,
            tool: self.tool,
            examiner: self.examiner,
            settings: self.settings,
            events: CustodyEvents {
                detected_at: self.detected_at,
                started_at: times.started_at,
                last_byte_read_at: times.last_byte_read_at,
                image_confirmed_at: times.image_confirmed_at,
                image_version_ids: times.image_version_ids,
                manifest_written_at: Utc::now(),
            },
            signature: self.signature,
        }
    }
}

impl SignatureRecord {
    /// Whether a statement was signed.
    pub fn is_signed(&self) -> bool {
        matches!(self, Self::Signed { .. })
    }
}

/// Unsigned facts of a hand-started local run by `tool`, for tests that build manifests.
#[cfg(test)]
pub(crate) fn test_facts(tool: &crate::ToolInfo) -> CustodyFacts {
    CustodyFacts {
        principal: None,
        unix_user: UnixUser {
            uid: 0,
            name: Some("root".into()),
        },
        host: CustodyHost::default(),
        tool: CustodyTool {
            version: tool.version.clone(),
            git_revision: tool.git_revision.clone(),
            executable_sha256: "ab".repeat(32),
        },
        examiner: None,
        settings: BTreeMap::new(),
        detected_at: None,
        signature: SignatureRecord::Unsigned,
    }
}
