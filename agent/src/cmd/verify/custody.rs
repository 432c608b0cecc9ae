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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use imaging::custody::{
        CustodyFacts, CustodyHost, CustodyTool, Signing, SigningAlgorithm, UnixUser,
    };
    use imaging::{
        CaseInfo, Context, DiscardSink, HostInfo, Input, PipelineConfig, Source, SourceOptions,
        SourceRecord, ToolInfo,
    };
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

    /// A real manifest of a small file, signed (with a fresh P-256 key) or not.
    struct Evidence {
        manifest: Manifest,
        files: CustodyFiles,
        key: PublicKey,
    }

    fn evidence(signed: bool) -> Evidence {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.img");
        std::fs::write(&path, vec![7u8; 8192]).unwrap();
        let source = Source::open(&path, &SourceOptions::default()).unwrap();
        let config = PipelineConfig::default();
        let outcome = imaging::run(
            Input::Device(&source),
            Box::<DiscardSink>::default(),
            &config,
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        let tool = ToolInfo {
            name: "forensic-collector".into(),
            version: "1".into(),
            git_revision: "r".into(),
        };
        let signature = if signed {
            SignatureRecord::Signed {
                key_arn: KEY_ARN.into(),
                algorithm: SigningAlgorithm::EcdsaSha256,
                statement: "e.custody.json".into(),
                signature: "e.custody.sig".into(),
            }
        } else {
            SignatureRecord::Unsigned
        };
        let custody = CustodyFacts {
            principal: None,
            unix_user: UnixUser { uid: 0, name: None },
            host: CustodyHost::default(),
            tool: CustodyTool {
                version: "1".into(),
                git_revision: "r".into(),
                executable_sha256: "ab".repeat(32),
            },
            examiner: None,
            settings: BTreeMap::new(),
            detected_at: None,
            signature,
        };
        let context = Context {
            tool,
            case: CaseInfo {
                incident_id: None,
                evidence_name: "e".into(),
                source_volume_id: None,
                examiner: None,
            },
            host: HostInfo {
                hostname: "h".into(),
                instance_id: None,
            },
            image_file_name: "e.image.dd".into(),
            peak_rss_bytes: None,
            custody,
        };
        let manifest = Manifest::new(context, SourceRecord::of_device(&source), &config, outcome);
        let record = manifest.to_json().into_bytes();
        let manifest = Manifest::from_slice(&record, Path::new("e.manifest.json")).unwrap();
        let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let spki = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
        let key = PublicKey::from_der(spki.as_ref()).unwrap();
        let (statement, signature) = if signed {
            let signing = Signing {
                manifest_file: "e.manifest.json",
                location: "/evidence/e.manifest.json",
                key_arn: KEY_ARN,
                algorithm: SigningAlgorithm::EcdsaSha256,
                signed_at: chrono::Utc::now(),
            };
            let bytes = Statement::new(&manifest, &record, &signing)
                .unwrap()
                .to_bytes();
            let sig = pair.sign(&SystemRandom::new(), &bytes).unwrap();
            (Beside::Bytes(bytes), Beside::Bytes(sig.as_ref().to_vec()))
        } else {
            (Beside::Absent, Beside::Absent)
        };
        Evidence {
            manifest,
            files: CustodyFiles {
                record,
                manifest_file: "e.manifest.json".into(),
                statement,
                signature,
            },
            key,
        }
    }

    /// `check` offline with `key` (or none): its lines and problems.
    fn checked(evidence: &Evidence, files: &CustodyFiles, key: Option<&PublicKey>) -> Report {
        let mut report = Report::default();
        let pem = Path::new("pub.pem");
        let key = key.map(|k| (pem, k.clone()));
        check(&evidence.manifest, files, key.as_ref(), &mut report).unwrap();
        report
    }

    #[test]
    fn a_signed_record_passes_offline_and_says_how() {
        let evidence = evidence(true);
        let report = checked(&evidence, &evidence.files, Some(&evidence.key));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let line = &report.lines[0];
        assert!(
            line.starts_with(&format!(
                "custody: OK signed by {KEY_ARN} (ECDSA_SHA_256) at "
            )),
            "{line}"
        );
        assert!(
            line.contains("signature checked offline with pub.pem"),
            "{line}"
        );
    }

    #[test]
    fn each_change_is_named() {
        let evidence = evidence(true);
        let with = |change: &dyn Fn(&mut CustodyFiles)| {
            let mut files = evidence.files.clone();
            change(&mut files);
            checked(&evidence, &files, Some(&evidence.key)).problems
        };
        let problems = with(&|f| f.record[5] ^= 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("custody: manifest SHA-256: "),
            "{problems:?}"
        );
        let problems = with(&|f| f.manifest_file = "x.manifest.json".into());
        assert!(
            problems[0].starts_with("custody: manifest file: "),
            "{problems:?}"
        );
        let problems = with(&|f| {
            if let Beside::Bytes(sig) = &mut f.signature {
                let last = sig.len() - 1;
                sig[last] ^= 1;
            }
        });
        assert_eq!(
            problems,
            [
                "custody: signature: the signature does not match the statement under this public key"
            ]
        );
        let problems = with(&|f| f.statement = Beside::Absent);
        assert_eq!(
            problems,
            ["custody: statement: MISSING (the manifest says it is signed)"]
        );
        let problems = with(&|f| f.signature = Beside::Unreadable("denied".into()));
        assert_eq!(problems, ["custody: signature: unreadable: denied"]);
        let problems = with(&|f| f.statement = Beside::Bytes(b"{}".to_vec()));
        assert!(
            problems[0].starts_with("custody: statement: not a custody statement"),
            "{problems:?}"
        );
        // A statement naming another key than the manifest: both disagreements and the signature.
        let problems = with(&|f| {
            if let Beside::Bytes(bytes) = &mut f.statement {
                let text = String::from_utf8(bytes.clone()).unwrap();
                *bytes = text
                    .replace(KEY_ARN, "arn:aws:kms:us-east-1:111122223333:key/z")
                    .into_bytes();
            }
        });
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "custody: key: the statement names arn:aws:kms:us-east-1:111122223333:key/z"
            ),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("custody: signature: "),
            "{problems:?}"
        );
        // Another key.
        let other = self::evidence(true).key;
        let problems = checked(&evidence, &evidence.files, Some(&other)).problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        let report = checked(&evidence, &evidence.files, Some(&other));
        assert!(
            report.lines[0].starts_with("custody: FAILED signature: "),
            "{:?}",
            report.lines
        );
    }

    #[test]
    fn an_unsigned_record_says_so_unless_a_signature_was_asked_for_or_lies_beside_it() {
        let evidence = evidence(false);
        let report = checked(&evidence, &evidence.files, None);
        assert_eq!(
            report.lines,
            ["custody: unsigned (no signing key was given at capture)"]
        );
        assert!(report.problems.is_empty());
        let report = checked(&evidence, &evidence.files, Some(&evidence.key));
        assert_eq!(
            report.problems,
            [
                "custody: UNSIGNED: the capture was not signed, and --public-key asks for a signature"
            ]
        );
        for (statement, signature) in [
            (Beside::Bytes(b"x".to_vec()), Beside::Absent),
            (Beside::Absent, Beside::Bytes(b"x".to_vec())),
        ] {
            let files = CustodyFiles {
                statement,
                signature,
                ..evidence.files.clone()
            };
            let problems = checked(&evidence, &files, None).problems;
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].contains("says unsigned, but a custody statement"),
                "{problems:?}"
            );
        }
        let files = CustodyFiles {
            signature: Beside::Unreadable("403".into()),
            ..evidence.files.clone()
        };
        let problems = checked(&evidence, &files, None).problems;
        assert!(
            problems[0].contains(
                "cannot tell whether a custody statement lies beside this unsigned manifest: 403"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn a_manifest_before_custody_has_none_to_check() {
        let mut evidence = evidence(false);
        evidence.manifest.custody = None;
        evidence.manifest.schema_version = 5;
        let report = checked(&evidence, &evidence.files, None);
        assert_eq!(
            report.lines,
            ["custody: none recorded (manifest schema version 5)"]
        );
        assert!(report.problems.is_empty());
        let report = checked(&evidence, &evidence.files, Some(&evidence.key));
        assert_eq!(
            report.problems,
            ["custody: no signature to check (the manifest records no custody)"]
        );
    }

    #[test]
    fn a_public_key_is_read_from_a_regular_pem_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, evidence(false).key.to_pem()).unwrap();
        assert!(read_key(&path).is_ok());
        std::fs::write(&path, "junk").unwrap();
        let err = read_key(&path).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(
            err.error.to_string().starts_with("--public-key "),
            "{}",
            err.error
        );
        assert_eq!(
            read_key(Path::new("/dev/zero")).unwrap_err().exit,
            Exit::Usage
        );
    }
}
