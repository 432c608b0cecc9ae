//! The S3 destination: the image streams from the pipeline into multipart uploads, with no local
//! copy.
//!
//! Each part carries its own CRC32C, which S3 verifies on receipt; on completion S3 returns the
//! composite checksum (CRC32C of the parts' CRC32Cs, `-N`), which we recompute and compare, so every
//! object is proven to hold exactly the bytes we hashed. A part is kept in memory until S3 has
//! accepted it, so the SDK's retries resend it without reading the device again; memory is bounded
//! by `(parts_in_flight + 1) × part_size`, where the number in flight follows the link
//! ([`ramp`]), and the part size by a memory budget. An image that does not fit one object under
//! those limits is stored as numbered segment objects.
//!
//! # Layout
//! - `plan`: part size and segments for an image size.
//! - `options`: tuning and evidence protection asked for.
//! - `multipart`: one multipart upload and its checksum proof.
//! - `sink`: the [`Sink`](crate::sink::Sink) that feeds segments from the pipeline.
//! - `exists`: evidence already in the bucket, and refused conditional writes.
//! - `owned`: the objects this run created, checked before use and the only ones it deletes.
//! - `protect`: Object Lock, leftovers of interrupted runs, tags.
//! - `small`: the companion objects.
//! - `claim`: a claim on an evidence name, so racing new captures pick different names.

mod buffers;
mod claim;
mod evidence;
mod exists;
mod multipart;
mod options;
mod owned;
mod plan;
mod protect;
mod ramp;
mod sink;
mod small;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use evidence::S3Evidence;
pub use exists::is_missing_object;
pub use multipart::S3Object;
pub use options::{Retention, S3Options, UploadPlan};
pub use owned::Cleanup;
#[cfg(test)]
pub(crate) use plan::LayoutLimits;
pub(crate) use plan::segment_key;
pub use plan::{PartPlan, UploadLayout, limits};
pub use ramp::Ramp;
pub use sink::S3Receipt;
pub(crate) use sink::S3Sink;

/// An `s3://bucket/prefix` URL: where evidence goes (a prefix), or one object (`verify`'s
/// manifest), with the bucket name and key checked once, here, for every caller.
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

    /// The prefix, without leading or trailing `/`; empty at the bucket's root. For a URL that
    /// names an object, its key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A URL naming one object, split into its folder's URL and the object's name:
    /// `s3://b/c/d/m.json` → (`s3://b/c/d`, `m.json`). `None` for a bare bucket.
    pub fn split_object(&self) -> Option<(S3Url, &str)> {
        if self.prefix.is_empty() {
            return None;
        }
        let (folder, name) = self.prefix.rsplit_once('/').unwrap_or(("", &self.prefix));
        let folder = Self {
            bucket: self.bucket.clone(),
            prefix: folder.to_owned(),
        };
        Some((folder, name))
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
        // One trailing '/' is how a folder is written (`s3://b/cases/`); anything else empty —
        // `s3://b//a` as much as `a//b` — is a segment S3 keeps and a reader would not expect.
        let written = prefix;
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !written.is_empty()
            && prefix
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(bad(
                "the prefix must not contain empty, '.' or '..' segments",
            ));
        }
        // A newline or other control character would reach S3 (which refuses it only when the
        // upload starts) and every log line naming the key.
        if let Some(c) = prefix.chars().find(|c| c.is_control()) {
            return Err(bad(&format!(
                "the prefix contains the control character U+{:04X}",
                u32::from(c)
            )));
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

/// A version ID that names a version: servers answer `null` (the literal) for objects of an
/// unversioned bucket, which is no version to ask for, compare or delete by.
pub fn real_version(version_id: Option<&str>) -> Option<String> {
    version_id.filter(|v| *v != "null").map(str::to_owned)
}

pub(crate) fn s3_error<E: std::error::Error + Send + Sync + 'static>(
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

    #[test]
    fn the_null_version_of_an_unversioned_bucket_is_no_version() {
        assert_eq!(real_version(Some("null")), None);
        assert_eq!(real_version(None), None);
        assert_eq!(real_version(Some("3HL4kqtJ")), Some("3HL4kqtJ".to_owned()));
    }

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
            // Issue 19: an empty first segment was trimmed away, a control character kept.
            "s3://bucket//a",
            "s3://bucket//",
            "s3://bucket/a//",
            "s3://bucket/a\nb",
            "s3://bucket/a\rb/c",
            "s3://bucket/a\u{7f}",
        ] {
            assert!(bad.parse::<S3Url>().is_err(), "{bad}");
        }
    }

    // Issue 10: `verify` parsed `s3://` URLs its own way; it now splits an object URL here.
    #[test]
    fn an_object_url_splits_into_its_folder_and_name() {
        let url: S3Url = "s3://evidence/cases/IR-1/m.json".parse().unwrap();
        assert_eq!(url.prefix(), "cases/IR-1/m.json");
        let (folder, name) = url.split_object().unwrap();
        assert_eq!(name, "m.json");
        assert_eq!(folder.bucket(), "evidence");
        assert_eq!(folder.key("x.dd"), "cases/IR-1/x.dd");
        let at_root: S3Url = "s3://evidence/m.json".parse().unwrap();
        let (root, name) = at_root.split_object().unwrap();
        assert_eq!((root.prefix(), name), ("", "m.json"));
        assert_eq!(root.key("x.dd"), "x.dd");
        assert!(
            "s3://evidence/"
                .parse::<S3Url>()
                .unwrap()
                .split_object()
                .is_none()
        );
    }
}
