//! What a manifest's custody section must agree with: the rest of the manifest (the same tool and
//! examiner), the evidence's own file names, and time running forwards. Part of
//! `Manifest::validate`, so a record whose custody contradicts itself is refused before anything
//! relies on it.

use super::{Custody, SignatureRecord};
use crate::manifest::Manifest;
use crate::naming::{EvidenceFiles, EvidenceKind, SafeName};

/// Each problem of `custody` within `manifest`, as a sentence fragment naming the field.
pub(crate) fn problems(manifest: &Manifest, custody: &Custody) -> Vec<String> {
    let mut problems = Vec::new();
    let tool = &custody.tool;
    if tool.version != manifest.tool.version || tool.git_revision != manifest.tool.git_revision {
        problems.push(format!(
            "custody.tool ({} {}) is not the manifest's tool ({} {})",
            tool.version, tool.git_revision, manifest.tool.version, manifest.tool.git_revision
        ));
    }
    if !is_sha256(&tool.executable_sha256) {
        problems.push(format!(
            "custody.tool.executable_sha256 {:?} is not a SHA-256 in lower-case hex",
            tool.executable_sha256
        ));
    }
    if custody.examiner != manifest.case.examiner {
        problems.push(format!(
            "custody.examiner {:?} is not case.examiner {:?}",
            custody.examiner, manifest.case.examiner
        ));
    }
    let events = &custody.events;
    let steps = [
        ("detected_at", events.detected_at),
        ("started_at", Some(events.started_at)),
        ("last_byte_read_at", Some(events.last_byte_read_at)),
        ("image_confirmed_at", Some(events.image_confirmed_at)),
        ("manifest_written_at", Some(events.manifest_written_at)),
    ];
    let known: Vec<_> = steps
        .iter()
        .filter_map(|(name, at)| Some((*name, (*at)?)))
        .collect();
    for pair in known.windows(2) {
        let ((before, early), (after, late)) = (pair[0], pair[1]);
        if early > late {
            problems.push(format!(
                "custody.events.{after} ({late}) is before {before} ({early})"
            ));
        }
    }
    if let SignatureRecord::Signed {
        statement,
        signature,
        ..
    } = &custody.signature
    {
        check_file_names(manifest, statement, signature, &mut problems);
    }
    problems
}

/// A signed record names its statement and signature as the evidence's files are named: nothing
/// else beside the manifest is read as its statement.
fn check_file_names(
    manifest: &Manifest,
    statement: &str,
    signature: &str,
    problems: &mut Vec<String>,
) {
    let Ok(name) = SafeName::parse(&manifest.case.evidence_name, "evidence name") else {
        return; // `check_names` reports it.
    };
    let files = EvidenceFiles::of(EvidenceKind::Disk, &name);
    for (field, given, expected) in [
        ("statement", statement, &files.custody_statement),
        ("signature", signature, &files.custody_signature),
    ] {
        if given != expected {
            problems.push(format!(
                "custody.signature.{field} {given:?} is not {expected:?}"
            ));
        }
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use crate::manifest::sample;
    use serde_json::{Value, json};

    /// The validation problems of the local sample after `change`.
    fn problems(change: impl Fn(&mut Value)) -> String {
        let mut value = sample::local_json();
        change(&mut value);
        match sample::unchecked(value).validate() {
            Ok(()) => String::new(),
            Err(problems) => problems.to_string(),
        }
    }

    #[test]
    fn the_sample_custody_passes_and_schema_6_needs_it() {
        assert_eq!(problems(|_| {}), "");
        let missing = problems(|v| {
            v.as_object_mut().unwrap().remove("custody");
        });
        assert_eq!(missing, "custody is missing (schema version 6 records it)");
        let early = problems(|v| v["schema_version"] = 5.into());
        assert_eq!(
            early,
            "custody is recorded, which schema version 5 does not have"
        );
    }

    #[test]
    fn custody_must_name_the_manifests_tool_and_examiner() {
        let tool = problems(|v| v["custody"]["tool"]["version"] = "9.9.9".into());
        assert_eq!(
            tool,
            "custody.tool (9.9.9 unknown) is not the manifest's tool (0.1.0 unknown)"
        );
        let rev = problems(|v| v["custody"]["tool"]["git_revision"] = "abc".into());
        assert!(rev.starts_with("custody.tool (0.1.0 abc)"), "{rev}");
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            "zz".repeat(32),
            "ab".repeat(33),
        ] {
            let found =
                problems(|v| v["custody"]["tool"]["executable_sha256"] = bad.clone().into());
            assert!(found.contains("executable_sha256"), "{bad}: {found}");
        }
        let examiner = problems(|v| v["custody"]["examiner"] = "J".into());
        assert_eq!(
            examiner,
            "custody.examiner Some(\"J\") is not case.examiner None"
        );
    }

    #[test]
    fn custody_events_run_forwards() {
        let events = |v: &mut Value| v["custody"]["events"].clone();
        let mut value = sample::local_json();
        let base = events(&mut value);
        let shift = |field: &'static str, at: &'static str| {
            let base = base.clone();
            problems(move |v| {
                v["custody"]["events"] = base.clone();
                v["custody"]["events"][field] = at.into();
            })
        };
        assert_eq!(
            shift("detected_at", "2026-12-01T15:10:22.5Z"),
            "",
            "detected before the start"
        );
        assert_eq!(
            shift("detected_at", "2026-12-01T15:10:23Z"),
            "custody.events.started_at (2026-12-01 15:10:22.567922950 UTC) is before detected_at (2026-12-01 15:10:23 UTC)"
        );
        assert!(shift("last_byte_read_at", "2026-12-01T15:10:22Z").contains("last_byte_read_at"));
        assert!(
            shift("image_confirmed_at", "2026-12-01T15:10:22.59Z").contains("image_confirmed_at")
        );
        assert!(
            shift("manifest_written_at", "2026-12-01T15:10:22.6Z").contains("manifest_written_at")
        );
        assert_eq!(
            shift("manifest_written_at", "2026-12-01T15:10:22.626186564Z"),
            "",
            "equal times are in order"
        );
    }

    #[test]
    fn a_signed_record_names_the_evidences_own_statement_and_signature() {
        let signed = |statement: &str, signature: &str| {
            let (statement, signature) = (statement.to_owned(), signature.to_owned());
            problems(move |v| {
                v["custody"]["signature"] = json!({
                    "state": "signed", "key_arn": "arn:aws:kms:us-east-1:1:key/k",
                    "algorithm": "ECDSA_SHA_256", "statement": statement, "signature": signature,
                });
            })
        };
        assert_eq!(signed("s.custody.json", "s.custody.sig"), "");
        assert_eq!(
            signed("t.custody.json", "s.custody.sig"),
            "custody.signature.statement \"t.custody.json\" is not \"s.custody.json\""
        );
        assert_eq!(
            signed("s.custody.json", "../s.custody.sig"),
            "custody.signature.signature \"../s.custody.sig\" is not \"s.custody.sig\""
        );
        let mut forged = sample::local_json();
        forged["custody"]["signature"] = json!({"state": "forged"});
        let err = crate::Manifest::from_json(&forged.to_string(), std::path::Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `forged`"), "{err}");
    }
}
