//! The custody check of `verify`: the statement beside the manifest must name exactly this
//! manifest (its SHA-256 and size) and its image (whose hashes the rest of `verify` proves against
//! the bytes), and its signature must be the key's — checked offline against `--public-key`, else
//! by KMS `Verify`. Each failure is named: the manifest, the image, the statement or the signature.
//!
//! An unsigned record passes as unsigned, and says so; asked for a signature (`--public-key`), it
//! fails. A manifest that says "unsigned" while a statement lies beside it fails: that is what a
//! rewritten record that dropped its signature looks like.

use std::path::Path;

use imaging::Manifest;
use imaging::custody::{PublicKey, SignatureRecord, Statement};

use super::compare::Report;
use crate::exit::{Exit, Failure};

/// A small file beside the manifest, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Beside {
    /// There is none.
    Absent,
    /// Its bytes.
    Bytes(Vec<u8>),
    /// It could not be read (not a regular file, too large, S3 failed).
    Unreadable(String),
}

/// What the custody check reads: the manifest's exact bytes and name, and the files beside it.
#[derive(Debug, Clone)]
pub(super) struct CustodyFiles {
    /// The manifest as stored.
    pub record: Vec<u8>,
    /// Its file name.
    pub manifest_file: String,
    /// `<name>.custody.json`.
    pub statement: Beside,
    /// `<name>.custody.sig`.
    pub signature: Beside,
}

/// Largest signature read: an RSA-4096 signature is 512 bytes, an ECDSA one about 72.
pub(super) const MAX_SIGNATURE_BYTES: u64 = 1024;

/// Checks the custody record, adding its lines and problems to `report`. Fails (exit 31) only when
/// KMS could not be asked; a bad `--public-key` is a usage error.
pub(super) fn check(
    manifest: &Manifest,
    read: &CustodyFiles,
    key: Option<&(&Path, PublicKey)>,
    report: &mut Report,
) -> Result<(), Failure> {
    let Some(custody) = &manifest.custody else {
        report.lines.push(format!(
            "custody: none recorded (manifest schema version {})",
            manifest.schema_version
        ));
        if key.is_some() {
            report
                .problems
                .push("custody: no signature to check (the manifest records no custody)".into());
        }
        return Ok(());
    };
    let SignatureRecord::Signed {
        key_arn, algorithm, ..
    } = &custody.signature
    else {
        return unsigned(read, key.is_some(), report);
    };
    let (statement, signature) = match (
        present(&read.statement, "statement"),
        present(&read.signature, "signature"),
    ) {
        (Ok(statement), Ok(signature)) => (statement, signature),
        (Err(problem), _) | (_, Err(problem)) => return fail(report, &problem),
    };
    let parsed = match Statement::parse(statement) {
        Ok(parsed) => parsed,
        Err(why) => return fail(report, &format!("statement: {why}")),
    };
    let mut disagreements = parsed.disagreements(manifest, &read.record, &read.manifest_file);
    if parsed.key_arn != *key_arn || parsed.algorithm != *algorithm {
        disagreements.push(format!(
            "key: the statement names {} ({}), the manifest {key_arn} ({algorithm})",
            parsed.key_arn, parsed.algorithm
        ));
    }
    let how = match check_signature(key, &parsed, statement, signature)? {
        Ok(how) => how,
        Err(problem) => return fail_all(report, disagreements, &problem),
    };
    if !disagreements.is_empty() {
        return fail_all(report, disagreements, "");
    }
    report.lines.push(format!(
        "custody: OK signed by {} ({}) at {}; signature {how}; statement names this manifest \
         (sha256 {}) and image (sha256 {})",
        parsed.key_arn,
        parsed.algorithm,
        parsed.signed_at,
        parsed.manifest.sha256,
        parsed.image.sha256
    ));
    Ok(())
}

/// The bytes of a custody file the manifest says exist, or the problem naming it.
fn present<'a>(beside: &'a Beside, what: &str) -> Result<&'a [u8], String> {
    match beside {
        Beside::Bytes(bytes) => Ok(bytes),
        Beside::Absent => Err(format!("{what}: MISSING (the manifest says it is signed)")),
        Beside::Unreadable(why) => Err(format!("{what}: unreadable: {why}")),
    }
}

/// The signature checked offline against `key`, else by KMS: how it was checked, or the problem.
/// Fails only when KMS could not be asked.
fn check_signature(
    key: Option<&(&Path, PublicKey)>,
    parsed: &Statement,
    statement: &[u8],
    signature: &[u8],
) -> Result<Result<String, String>, Failure> {
    if let Some((path, key)) = key {
        return Ok(match key.verify(parsed.algorithm, statement, signature) {
            Ok(()) => Ok(format!("checked offline with {}", path.display())),
            Err(why) => Err(format!("signature: {why}")),
        });
    }
    let runtime = crate::aws::runtime()?;
    let (_, kms) = crate::aws::custody_clients(runtime);
    let valid = crate::custody::kms::verify_online(
        runtime,
        &kms,
        &parsed.key_arn,
        parsed.algorithm,
        statement,
        signature,
    )?;
    Ok(if valid {
        Ok("checked online by KMS Verify".to_owned())
    } else {
        Err("signature: KMS Verify says it is not the key's signature of this statement".to_owned())
    })
}

/// An unsigned record: passes as such unless a signature was asked for, or a statement or
/// signature lies beside it.
fn unsigned(read: &CustodyFiles, required: bool, report: &mut Report) -> Result<(), Failure> {
    // S3 answers a missing key with 403 to a caller that may not list the bucket: an unreadable
    // file is not proof of one, and not proof of none either.
    if let Some(why) = [&read.statement, &read.signature]
        .into_iter()
        .find_map(|file| match file {
            Beside::Unreadable(why) => Some(why),
            _ => None,
        })
    {
        return fail(
            report,
            &format!(
                "cannot tell whether a custody statement lies beside this unsigned manifest: {why} \
                 (an examiner needs s3:ListBucket to learn that a file is absent)"
            ),
        );
    }
    if read.statement != Beside::Absent || read.signature != Beside::Absent {
        return fail(
            report,
            "the manifest says unsigned, but a custody statement or signature lies beside it",
        );
    }
    if required {
        return fail(
            report,
            "UNSIGNED: the capture was not signed, and --public-key asks for a signature",
        );
    }
    report
        .lines
        .push("custody: unsigned (no signing key was given at capture)".into());
    Ok(())
}

fn fail(report: &mut Report, problem: &str) -> Result<(), Failure> {
    fail_all(report, Vec::new(), problem)
}

/// Reports each of `problems` and `last` (when not empty) as a custody failure.
fn fail_all(report: &mut Report, problems: Vec<String>, last: &str) -> Result<(), Failure> {
    let all = problems
        .into_iter()
        .chain((!last.is_empty()).then(|| last.to_owned()));
    for problem in all {
        report.lines.push(format!("custody: FAILED {problem}"));
        report.problems.push(format!("custody: {problem}"));
    }
    Ok(())
}

/// `--public-key`: a PEM public key in a regular file.
pub(super) fn read_key(path: &Path) -> Result<(&Path, PublicKey), Failure> {
    let usage = |why: String| {
        Failure::new(
            Exit::Usage,
            anyhow::anyhow!("--public-key {}: {why}", path.display()),
        )
    };
    let bytes = imaging::read_regular_file(path, 64 << 10).map_err(|e| usage(e.to_string()))?;
    PublicKey::from_pem(&bytes)
        .map(|key| (path, key))
        .map_err(usage)
}
