//! The task's result, made from the child's result line: what the execution's Map item receives.
//! A capture that stored evidence (complete, or complete with unreadable sectors listed) is a
//! success carrying the manifest's URL and the image's SHA-256; anything else is a failure named
//! after the exit code, so the flow's Catch and its audit record say why in the same words as the
//! README's exit-code table.

use serde_json::json;

use super::message::{QueuedJob, QueuedSource};
use crate::exit::Exit;
use crate::result::AcquisitionResult;

/// Step Functions accepts a failure cause of at most 32,768 characters.
const MAX_CAUSE_CHARS: usize = 32_768;
/// The error name of a job refused before it ran.
pub const REFUSED: &str = "ForensicCollector.JobRefused";

/// What is sent to the job's task token.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `SendTaskSuccess` with this JSON output.
    Success(String),
    /// `SendTaskFailure`.
    Failure {
        /// `ForensicCollector.<exit name>`.
        error: String,
        /// Why, in words.
        cause: String,
    },
}

/// The answer for `job`, run by `collector` with `result`.
pub fn of(job: &QueuedJob, collector: &str, result: &AcquisitionResult) -> Answer {
    let (snapshot, volume) = match &job.source {
        QueuedSource::Snapshot(id) => (Some(id.to_string()), None),
        QueuedSource::Volume { volume, .. } => (None, Some(volume.to_string())),
    };
    let about = json!({
        "incident_id": job.incident.as_str(),
        "snapshot_id": snapshot,
        "volume_id": volume,
        "collector": collector,
    });
    of_result(result, collector, about)
}

/// The answer to a run that ended with `result` on `host`: success when it stored evidence (its
/// manifest's URL, the image's SHA-256 and what the caller adds in `about`, a JSON object), else
/// the failure named after its exit code. The queue worker and `acquire --task-token` both answer
/// with it, so a flow reads the same fields from either.
pub fn of_result(result: &AcquisitionResult, host: &str, about: serde_json::Value) -> Answer {
    let stored = matches!(
        Exit::from_code(result.exit_code),
        Some(Exit::Ok | Exit::CompletedWithErrors)
    );
    match (&result.manifest, result.hashes.get("sha256")) {
        (Some(manifest), Some(sha256)) if stored => {
            let mut output = json!({
                "outcome": result.status,
                "exit_code": result.exit_code,
                "evidence_name": result.evidence_name,
                "manifest_url": manifest,
                "image": result.image,
                "image_sha256": sha256,
                "bytes": result.bytes,
                "bad_ranges": result.bad_ranges.len(),
            });
            if let (Some(output), serde_json::Value::Object(about)) =
                (output.as_object_mut(), about)
            {
                output.extend(about);
            }
            Answer::Success(output.to_string())
        }
        _ => {
            let exit = Exit::from_code(result.exit_code).unwrap_or(Exit::Internal);
            let error = result.error.as_deref().unwrap_or("no evidence was stored");
            failure(exit, &format!("on {host}: {error}"))
        }
    }
}

/// The failure of a run that ended with `exit`: `ForensicCollector.<exit>`, the cause `exit N
/// (meaning) WHERE: WHY` with `detail` as `WHERE: WHY`.
pub fn failure(exit: Exit, detail: &str) -> Answer {
    Answer::Failure {
        error: error_name(exit),
        cause: clip(&format!(
            "exit {} ({}) {detail}",
            exit.code(),
            exit.meaning()
        )),
    }
}

/// The answer to a job refused before it ran.
pub fn refused(reason: &str, collector: &str) -> Answer {
    Answer::Failure {
        error: REFUSED.to_owned(),
        cause: clip(&format!("refused by {collector}: {reason}")),
    }
}

/// `ForensicCollector.Destination`: the exit's name, stable like its code.
fn error_name(exit: Exit) -> String {
    format!("ForensicCollector.{exit:?}")
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_CAUSE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;

    fn job(source: QueuedSource) -> QueuedJob {
        QueuedJob {
            token: "t".to_owned(),
            execution_arn: "arn:aws:states:r:1:execution:m:e".to_owned(),
            incident: imaging::SafeName::parse("INC-1", "incident").expect("name"),
            evidence_name: imaging::SafeName::parse("vol-1", "name").expect("name"),
            source,
            source_volume_id: None,
            examiner: None,
        }
    }

    fn snapshot() -> QueuedSource {
        QueuedSource::Snapshot("snap-0123456789abcdef0".parse().expect("id"))
    }

    fn stored(exit: Exit) -> AcquisitionResult {
        let mut result = AcquisitionResult::failed(exit, String::new());
        result.status = "completed".to_owned();
        result.error = None;
        result.evidence_name = Some("vol-1".to_owned());
        result.manifest = Some("s3://b/p/INC-1/disk_evidence/vol-1.manifest.json".to_owned());
        result.image = vec!["s3://b/p/INC-1/disk_evidence/vol-1.image.dd".to_owned()];
        result.bytes = 1 << 20;
        result.hashes = BTreeMap::from([("sha256".to_owned(), "ab".repeat(32))]);
        result
    }

    #[test]
    fn stored_evidence_is_a_success_with_the_manifest_and_the_sha256() {
        for exit in [Exit::Ok, Exit::CompletedWithErrors] {
            let Answer::Success(output) = of(&job(snapshot()), "i-1", &stored(exit)) else {
                panic!("{exit:?} is a success");
            };
            let output: Value = serde_json::from_str(&output).expect("json");
            assert_eq!(
                output["manifest_url"],
                "s3://b/p/INC-1/disk_evidence/vol-1.manifest.json"
            );
            assert_eq!(output["image_sha256"], "ab".repeat(32));
            assert_eq!(output["exit_code"], exit.code());
            assert_eq!(output["snapshot_id"], "snap-0123456789abcdef0");
            assert_eq!(output["volume_id"], Value::Null);
            assert_eq!(output["collector"], "i-1");
            assert_eq!(output["bytes"], 1 << 20);
            assert_eq!(output["incident_id"], "INC-1");
        }
        let volume = QueuedSource::Volume {
            volume: "vol-0bbbbbbbbbbbbbbbb".parse().expect("id"),
            instance: "i-0123456789abcdef0".to_owned(),
        };
        let Answer::Success(output) = of(&job(volume), "i-1", &stored(Exit::Ok)) else {
            panic!("a success");
        };
        let output: Value = serde_json::from_str(&output).expect("json");
        assert_eq!(output["volume_id"], "vol-0bbbbbbbbbbbbbbbb");
        assert_eq!(output["snapshot_id"], Value::Null);
    }

    #[test]
    fn a_failed_run_is_a_failure_named_after_its_exit_code() {
        let result = AcquisitionResult::failed(Exit::Output, "evidence exists".to_owned());
        let Answer::Failure { error, cause } = of(&job(snapshot()), "i-1", &result) else {
            panic!("a failure");
        };
        assert_eq!(error, "ForensicCollector.Output");
        assert!(
            cause.contains("exit 20") && cause.contains("evidence exists") && cause.contains("i-1"),
            "{cause}"
        );
        // A result that claims success but lacks the manifest or the SHA-256 proves nothing.
        let mut no_manifest = stored(Exit::Ok);
        no_manifest.manifest = None;
        assert!(matches!(
            of(&job(snapshot()), "i", &no_manifest),
            Answer::Failure { .. }
        ));
        let mut no_sha = stored(Exit::Ok);
        no_sha.hashes.clear();
        assert!(matches!(
            of(&job(snapshot()), "i", &no_sha),
            Answer::Failure { .. }
        ));
        let mut odd = stored(Exit::Destination);
        odd.exit_code = Exit::Destination.code();
        let Answer::Failure { error, .. } = of(&job(snapshot()), "i", &odd) else {
            panic!("exit 30 is a failure whatever else the line says");
        };
        assert_eq!(error, "ForensicCollector.Destination");
        let unknown = AcquisitionResult {
            exit_code: 99,
            ..AcquisitionResult::failed(Exit::Internal, String::new())
        };
        let Answer::Failure { error, cause } = of(&job(snapshot()), "i", &unknown) else {
            panic!("a failure");
        };
        assert_eq!(error, "ForensicCollector.Internal");
        assert!(cause.contains("exit 1 "), "{cause}");
        let silent = AcquisitionResult {
            error: None,
            ..AcquisitionResult::failed(Exit::Internal, String::new())
        };
        let Answer::Failure { cause, .. } = of(&job(snapshot()), "i", &silent) else {
            panic!("a failure");
        };
        assert!(cause.contains("no evidence was stored"), "{cause}");
    }

    #[test]
    fn causes_are_clipped_to_what_step_functions_accepts() {
        let Answer::Failure { error, cause } = refused(&"x".repeat(40_000), "i-1") else {
            panic!("a failure");
        };
        assert_eq!(error, REFUSED);
        assert_eq!(cause.chars().count(), MAX_CAUSE_CHARS);
        assert!(cause.starts_with("refused by i-1: x"));
    }
}
