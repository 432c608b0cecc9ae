//! `acquire --task-token`: the run answers a Step Functions task itself, so a state machine can
//! start a capture it cannot watch (SSM Run Command on a suspect host) and wait for its result
//! with `.waitForTaskToken` — no polling, no Lambda. One answer at the very end: success with
//! where the evidence is when a manifest was stored, else failure named after the exit code
//! (`ForensicCollector.<exit>`, as the queue worker names its failures). No heartbeats are sent:
//! the waiting state bounds the run with its `TimeoutSeconds`.

use serde_json::json;

use crate::queue::answer::{self, Answer};
use crate::result::AcquisitionResult;

/// The answer to the task for a run that ended with `result`, on the instance `instance_id`
/// (else this host, by name).
pub fn answer_of(result: &AcquisitionResult, instance_id: Option<&str>) -> Answer {
    let host = instance_id.map_or_else(crate::sysinfo::hostname, str::to_owned);
    answer::of_result(result, &host, json!({ "instance_id": instance_id }))
}

/// Sends `answer` to `token` with the environment's credentials; a failure to send is logged
/// (the capture's own exit code stands: its evidence is stored or not either way).
pub fn send(token: &str, answer: &Answer) {
    let sent = crate::aws::runtime()
        .map_err(|f| f.error.to_string())
        .and_then(|runtime| {
            let (_, sfn, _) = crate::aws::queue_clients(runtime);
            crate::queue::calls::send_answer(runtime, &sfn, token, answer)
                .map_err(|e| format!("{e:?}"))
        });
    match sent {
        Ok(()) => tracing::info!("Step Functions task answered."),
        Err(e) => {
            tracing::error!(error = %e, "Could not answer the Step Functions task; the execution will wait until its timeout.")
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::exit::Exit;

    fn stored(exit: Exit) -> AcquisitionResult {
        let mut result = AcquisitionResult::failed(exit, String::new());
        result.error = None;
        result.status = "completed".into();
        result.manifest = Some("s3://b/p/IR-1/memory_evidence/i-1-memory.manifest.json".into());
        result.image = vec!["s3://b/p/IR-1/memory_evidence/i-1-memory.mem.lime".into()];
        result.hashes.insert("sha256".into(), "ab".repeat(32));
        result.bytes = 1 << 30;
        result
    }

    // Issue 22: a capture that stored its evidence answers success with where it is.
    #[test]
    fn stored_evidence_answers_success_with_its_manifest() {
        let Answer::Success(output) = answer_of(&stored(Exit::Ok), Some("i-0123456789abcdef0"))
        else {
            panic!("a stored capture is a success");
        };
        let v: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(
            v["manifest_url"],
            "s3://b/p/IR-1/memory_evidence/i-1-memory.manifest.json"
        );
        assert_eq!(v["image_sha256"], "ab".repeat(32));
        assert_eq!(v["instance_id"], "i-0123456789abcdef0");
        assert_eq!(v["exit_code"], 0);
        assert!(matches!(
            answer_of(&stored(Exit::CompletedWithErrors), None),
            Answer::Success(_)
        ));
    }

    // Anything else is a failure named after its exit, never a success without evidence.
    #[test]
    fn anything_else_answers_failure_named_after_the_exit() {
        let refused =
            AcquisitionResult::failed(Exit::KernelLockdown, "lockdown is confidentiality".into());
        match answer_of(&refused, Some("i-0123456789abcdef0")) {
            Answer::Failure { error, cause } => {
                assert_eq!(error, "ForensicCollector.KernelLockdown");
                assert!(
                    cause.contains("exit 15")
                        && cause.contains("i-0123456789abcdef0")
                        && cause.contains("confidentiality"),
                    "{cause}"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut no_manifest = stored(Exit::Ok);
        no_manifest.manifest = None;
        assert!(matches!(
            answer_of(&no_manifest, None),
            Answer::Failure { .. }
        ));
        let mut no_hash = stored(Exit::Ok);
        no_hash.hashes.clear();
        assert!(matches!(answer_of(&no_hash, None), Answer::Failure { .. }));
        assert!(matches!(
            answer_of(&stored(Exit::Destination), None),
            Answer::Failure { .. }
        ));
    }
}
