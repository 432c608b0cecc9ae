//! The custody statement: the few facts a signature binds, in canonical bytes.
//!
//! It names the manifest by its SHA-256 and size (so any change to the record, custody section
//! included, breaks it), the image by its SHA-256, BLAKE3 and size (so the chain reaches the
//! bytes without re-reading them), the evidence and where the manifest was stored, and the key and
//! time of signing. It is signed as it is stored (`<name>.custody.json`), under KMS's 4,096-byte
//! limit for a RAW message, so the signature is checkable with `openssl dgst -sha256 -verify` on the
//! file itself.
//!
//! Canonical bytes: compact JSON, keys in sorted order (the fields below are declared in that
//! order), integers and strings only. For such a document serde_json's output is exactly the JSON
//! Canonicalization Scheme's (RFC 8785): the same escapes and no floats to format. A statement read
//! back must be byte for byte what its own fields serialise to, so a second spelling of the same
//! facts (spaces, reordered or duplicated keys, escapes) is refused rather than trusted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::SigningAlgorithm;
use crate::hash::HashAlgorithm;
use crate::manifest::Manifest;

/// Identifies statements written by this tool.
const SCHEMA: &str = "forensic-collector/custody-statement";
/// Version of the statement's layout.
const SCHEMA_VERSION: u32 = 1;

/// What a signature vouches for. Fields in sorted key order (the canonical form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// How it is signed.
    pub algorithm: SigningAlgorithm,
    /// The evidence name (`case.evidence_name`).
    pub evidence_name: String,
    /// The image.
    pub image: StatementImage,
    /// The signing key's ARN.
    pub key_arn: String,
    /// Where the manifest was stored (`s3://…` or `file://…`), when it was signed. Informational:
    /// evidence is copied (downloaded to an examiner's machine) and stays the same evidence.
    pub location: String,
    /// The manifest.
    pub manifest: StatementFile,
    /// Always `forensic-collector/custody-statement`.
    pub schema: String,
    /// Layout version (1).
    pub schema_version: u32,
    /// When it was signed, RFC 3339 UTC to the microsecond.
    pub signed_at: String,
}

/// The image as the statement names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementImage {
    /// BLAKE3 of the image, when the run computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// File name, relative to the manifest.
    pub file: String,
    /// SHA-256 of the image.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// A file as the statement names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFile {
    /// File name, beside the statement.
    pub file: String,
    /// SHA-256 of its exact bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// Everything a statement is made from besides the manifest.
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    /// The manifest's file name.
    pub manifest_file: &'a str,
    /// Where the manifest is stored.
    pub location: &'a str,
    /// The signing key's ARN.
    pub key_arn: &'a str,
    /// The algorithm.
    pub algorithm: SigningAlgorithm,
    /// The signing time.
    pub signed_at: DateTime<Utc>,
}

impl Statement {
    /// KMS signs a RAW message of at most 4,096 bytes.
    pub const MAX_BYTES: usize = 4096;

    /// The statement for `manifest`, whose exact stored bytes are `manifest_bytes`. `None` when the
    /// manifest has no SHA-256 (`verify` refuses such a record anyway).
    pub fn new(manifest: &Manifest, manifest_bytes: &[u8], signing: &Signing<'_>) -> Option<Self> {
        let hashes = &manifest.image.hashes;
        Some(Self {
            algorithm: signing.algorithm,
            evidence_name: manifest.case.evidence_name.clone(),
            image: StatementImage {
                blake3: hashes.get(&HashAlgorithm::Blake3).cloned(),
                file: manifest.image.file_name.clone(),
                sha256: hashes.get(&HashAlgorithm::Sha256)?.clone(),
                size_bytes: manifest.image.size_bytes,
            },
            key_arn: signing.key_arn.to_owned(),
            location: signing.location.to_owned(),
            manifest: StatementFile {
                file: signing.manifest_file.to_owned(),
                sha256: sha256_hex(manifest_bytes),
                size_bytes: manifest_bytes.len() as u64,
            },
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            signed_at: signing
                .signed_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        })
    }

    /// The canonical bytes: what is stored and signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored statement: at most [`Statement::MAX_BYTES`], this schema, and in canonical
    /// form.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > Self::MAX_BYTES {
            return Err(format!(
                "{} bytes, over the {} a signed statement can have",
                bytes.len(),
                Self::MAX_BYTES
            ));
        }
        let statement: Self =
            serde_json::from_slice(bytes).map_err(|e| format!("not a custody statement: {e}"))?;
        if statement.schema != SCHEMA || statement.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema {:?} version {}, not {SCHEMA:?} version {SCHEMA_VERSION}",
                statement.schema, statement.schema_version
            ));
        }
        if statement.to_bytes() != bytes {
            return Err("not in canonical form (compact JSON, sorted keys, one spelling)".into());
        }
        Ok(statement)
    }

    /// What in this statement disagrees with `manifest` (stored as `manifest_bytes` under the name
    /// `manifest_file`), one line each; empty when it names exactly that manifest and its image.
    pub fn disagreements(
        &self,
        manifest: &Manifest,
        manifest_bytes: &[u8],
        manifest_file: &str,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut differ = |what: &str, stated: &str, actual: &str| {
            if stated != actual {
                problems.push(format!(
                    "{what}: the statement says {stated}, it is {actual}"
                ));
            }
        };
        differ(
            "manifest SHA-256",
            &self.manifest.sha256,
            &sha256_hex(manifest_bytes),
        );
        differ(
            "manifest size",
            &self.manifest.size_bytes.to_string(),
            &manifest_bytes.len().to_string(),
        );
        differ("manifest file", &self.manifest.file, manifest_file);
        differ(
            "evidence name",
            &self.evidence_name,
            &manifest.case.evidence_name,
        );
        differ("image file", &self.image.file, &manifest.image.file_name);
        differ(
            "image size",
            &self.image.size_bytes.to_string(),
            &manifest.image.size_bytes.to_string(),
        );
        let hashes = &manifest.image.hashes;
        let recorded = |alg| hashes.get(&alg).map_or("none", String::as_str);
        differ(
            "image SHA-256",
            &self.image.sha256,
            recorded(HashAlgorithm::Sha256),
        );
        differ(
            "image BLAKE3",
            self.image.blake3.as_deref().unwrap_or("none"),
            recorded(HashAlgorithm::Blake3),
        );
        problems
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Keys of a JSON value's objects, recursively sorted: what RFC 8785 orders them by (code points of
/// ASCII keys). Tests hold [`Statement::to_bytes`] to it.
#[cfg(test)]
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::sample;

    fn signing() -> Signing<'static> {
        Signing {
            manifest_file: "s.manifest.json",
            location: "s3://bucket/p/i/disk_evidence/s.manifest.json",
            key_arn: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            algorithm: SigningAlgorithm::EcdsaSha256,
            signed_at: DateTime::parse_from_rfc3339("2026-12-07T14:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn made() -> (crate::Manifest, Vec<u8>, Statement) {
        let manifest = sample::local();
        let bytes = manifest.to_json().into_bytes();
        let statement = Statement::new(&manifest, &bytes, &signing()).unwrap();
        (manifest, bytes, statement)
    }

    #[test]
    fn a_statement_names_the_manifest_and_image_it_was_made_from() {
        let (manifest, bytes, statement) = made();
        assert_eq!(statement.manifest.sha256, sha256_hex(&bytes));
        assert_eq!(statement.manifest.size_bytes, bytes.len() as u64);
        assert_eq!(statement.image.sha256, sample::sha256(&sample::bytes()));
        assert_eq!(
            statement.image.blake3.as_deref(),
            manifest
                .image
                .hashes
                .get(&HashAlgorithm::Blake3)
                .map(String::as_str)
        );
        assert_eq!(statement.image.size_bytes, manifest.image.size_bytes);
        assert_eq!(statement.signed_at, "2026-12-07T14:00:00.500000Z");
        assert!(
            statement
                .disagreements(&manifest, &bytes, "s.manifest.json")
                .is_empty()
        );
        let mut no_sha = manifest.clone();
        no_sha.image.hashes.remove(&HashAlgorithm::Sha256);
        assert!(Statement::new(&no_sha, &bytes, &signing()).is_none());
    }

    #[test]
    fn the_bytes_are_canonical_and_read_back_only_in_that_form() {
        let (_, _, statement) = made();
        let bytes = statement.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            serde_json::to_vec(&sorted(value)).unwrap(),
            bytes,
            "sorted keys"
        );
        assert!(!bytes.contains(&b' ') && !bytes.contains(&b'\n'), "compact");
        assert!(bytes.len() < Statement::MAX_BYTES);
        assert_eq!(Statement::parse(&bytes).unwrap(), statement);

        let text = String::from_utf8(bytes.clone()).unwrap();
        let spaced = text.replacen(":", ": ", 1);
        assert!(
            Statement::parse(spaced.as_bytes())
                .unwrap_err()
                .contains("canonical")
        );
        let newline = format!("{text}\n");
        assert!(
            Statement::parse(newline.as_bytes())
                .unwrap_err()
                .contains("canonical")
        );
        let reordered = serde_json::to_vec(&serde_json::json!({
            "schema_version": 1, "algorithm": "ECDSA_SHA_256",
        }))
        .unwrap();
        assert!(Statement::parse(&reordered).is_err());
        let extra = text.replacen('{', "{\"x\":1,", 1);
        assert!(
            Statement::parse(extra.as_bytes())
                .unwrap_err()
                .contains("not a custody statement")
        );
        let other = text.replace(SCHEMA, "other/schema");
        assert!(
            Statement::parse(other.as_bytes())
                .unwrap_err()
                .contains("other/schema")
        );
        let version = text.replace("\"schema_version\":1", "\"schema_version\":2");
        assert!(
            Statement::parse(version.as_bytes())
                .unwrap_err()
                .contains("version 2")
        );
        let null_blake3 = text.replacen("\"blake3\":", "\"blake3\":null,\"x\":", 1);
        assert!(Statement::parse(null_blake3.as_bytes()).is_err());
    }

    #[test]
    fn an_oversized_statement_is_refused_and_the_limit_is_kms_s() {
        let (_, _, mut statement) = made();
        let room = Statement::MAX_BYTES - statement.to_bytes().len();
        statement.location.push_str(&"x".repeat(room));
        assert_eq!(statement.to_bytes().len(), Statement::MAX_BYTES);
        assert!(Statement::parse(&statement.to_bytes()).is_ok());
        statement.location.push('x');
        let err = Statement::parse(&statement.to_bytes()).unwrap_err();
        assert!(err.contains("4097 bytes, over the 4096"), "{err}");
    }

    #[test]
    fn every_disagreement_is_named() {
        let (manifest, bytes, statement) = made();
        let problems = |change: &dyn Fn(&mut Statement)| {
            let mut s = statement.clone();
            change(&mut s);
            s.disagreements(&manifest, &bytes, "s.manifest.json")
        };
        type Change<'a> = &'a dyn Fn(&mut Statement);
        let cases: [(&str, Change); 8] = [
            ("manifest SHA-256", &|s| s.manifest.sha256 = "00".into()),
            ("manifest size", &|s| s.manifest.size_bytes += 1),
            ("manifest file", &|s| {
                s.manifest.file = "t.manifest.json".into()
            }),
            ("evidence name", &|s| s.evidence_name = "t".into()),
            ("image file", &|s| s.image.file = "t.image.dd".into()),
            ("image size", &|s| s.image.size_bytes -= 1),
            ("image SHA-256", &|s| s.image.sha256 = "00".into()),
            ("image BLAKE3", &|s| s.image.blake3 = None),
        ];
        for (what, change) in cases {
            let found = problems(change);
            assert_eq!(found.len(), 1, "{what}: {found:?}");
            assert!(found[0].starts_with(&format!("{what}: ")), "{found:?}");
        }
        let mut changed = bytes.clone();
        changed[10] ^= 1;
        let found = statement.disagreements(&manifest, &changed, "s.manifest.json");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("manifest SHA-256: "), "{found:?}");
        let found = statement.disagreements(&manifest, &bytes, "renamed.json");
        assert_eq!(
            found,
            vec!["manifest file: the statement says s.manifest.json, it is renamed.json"]
        );
        let mut other = manifest.clone();
        other.image.hashes.remove(&HashAlgorithm::Blake3);
        let found = statement.disagreements(&other, &bytes, "s.manifest.json");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].ends_with(", it is none"), "{found:?}");
    }
}
