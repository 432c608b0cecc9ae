//! One job message from the queue, read strictly: it is input from whoever can send to the queue,
//! so only the flow's own shape passes (docs/flow.md, "The job message"). A message that is not
//! one of ours, too large, of another version, with a field we do not know, or naming a
//! destination other than this collector's is refused and never run; when its task token can be
//! read, the refusal is reported to the execution waiting on it.

use imaging::{S3Url, SafeName, SnapshotId, VolumeId};
use serde::Deserialize;

/// The `type` every job message carries.
pub const JOB_TYPE: &str = "forensic-collector.job";
/// The one message version this collector reads.
pub const JOB_VERSION: u64 = 1;
/// Largest body read: a job is a few hundred bytes plus a task token (at most 2,048 characters).
pub const MAX_BODY_BYTES: usize = 16 << 10;
/// Step Functions task tokens are 1 to 2,048 characters.
const MAX_TOKEN_CHARS: usize = 2048;
/// Longest execution ARN accepted (Step Functions ARNs are far shorter).
const MAX_ARN_CHARS: usize = 2048;

/// The message as sent: every field named, nothing else accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    version: u64,
    task_token: String,
    execution_arn: String,
    incident_id: String,
    evidence_name: String,
    destination: String,
    #[serde(default)]
    snapshot_id: Option<String>,
    #[serde(default)]
    volume_id: Option<String>,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    source_volume_id: Option<String>,
    #[serde(default)]
    examiner: Option<String>,
}

/// What a job images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedSource {
    /// A snapshot, read through the EBS direct APIs.
    Snapshot(SnapshotId),
    /// A volume the flow attached to the collector `instance` (the fallback path).
    Volume {
        /// The attached volume.
        volume: VolumeId,
        /// The collector it is attached to.
        instance: String,
    },
}

/// A job that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// The token of the execution's waiting state: heartbeats and the result go to it.
    pub token: String,
    /// The execution that sent the job, for the reports.
    pub execution_arn: String,
    /// The incident, part of every key.
    pub incident: SafeName,
    /// The evidence name.
    pub evidence_name: SafeName,
    /// What to image.
    pub source: QueuedSource,
    /// The suspect's volume the source copies, recorded in the manifest.
    pub source_volume_id: Option<VolumeId>,
    /// Who collects, recorded in the manifest.
    pub examiner: Option<String>,
}

/// Why a message is refused, and the token to report it to when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRefusal {
    /// The task token, when the body is a JSON object with a plausible one.
    pub token: Option<String>,
    /// What is wrong, for the report and the execution.
    pub reason: String,
}

/// Reads `body` as a job for the collector whose evidence goes to `destination`.
pub fn parse(body: &str, destination: &S3Url) -> Result<QueuedJob, MessageRefusal> {
    if body.len() > MAX_BODY_BYTES {
        return Err(MessageRefusal {
            token: None,
            reason: format!(
                "the message is {} bytes, more than a job's {MAX_BODY_BYTES}",
                body.len()
            ),
        });
    }
    let token = readable_token(body);
    let refuse = |reason: String| MessageRefusal {
        token: token.clone(),
        reason,
    };
    let wire: Wire = serde_json::from_str(body)
        .map_err(|e| refuse(format!("not a forensic-collector job message: {e}")))?;
    if wire.kind != JOB_TYPE {
        return Err(refuse(format!(
            "type {:?} is not {JOB_TYPE:?}: not a job of ours",
            wire.kind
        )));
    }
    if wire.version != JOB_VERSION {
        return Err(refuse(format!(
            "job message version {} is not the version this collector reads ({JOB_VERSION})",
            wire.version
        )));
    }
    check_token(&wire.task_token).map_err(&refuse)?;
    check_arn(&wire.execution_arn).map_err(&refuse)?;
    let named = wire
        .destination
        .parse::<S3Url>()
        .map_err(|e| refuse(format!("destination: {e}")))?;
    if named != *destination {
        return Err(refuse(format!(
            "destination {named} is not this collector's ({destination})"
        )));
    }
    Ok(QueuedJob {
        source: source(&wire).map_err(&refuse)?,
        incident: SafeName::parse(&wire.incident_id, "incident ID").map_err(&refuse)?,
        evidence_name: SafeName::parse(&wire.evidence_name, "evidence name").map_err(&refuse)?,
        source_volume_id: wire
            .source_volume_id
            .as_deref()
            .map(str::parse::<VolumeId>)
            .transpose()
            .map_err(|e| refuse(format!("source_volume_id: {e}")))?,
        examiner: wire
            .examiner
            .as_deref()
            .map(imaging::check_examiner)
            .transpose()
            .map_err(|e| refuse(format!("examiner: {e}")))?,
        token: wire.task_token,
        execution_arn: wire.execution_arn,
    })
}

/// The source: a snapshot, or a volume attached to a named collector, never both.
fn source(wire: &Wire) -> Result<QueuedSource, String> {
    match (&wire.snapshot_id, &wire.volume_id, &wire.instance_id) {
        (Some(snapshot), None, None) => snapshot
            .parse::<SnapshotId>()
            .map(QueuedSource::Snapshot)
            .map_err(|e| format!("snapshot_id: {e}")),
        (None, Some(volume), Some(instance)) => Ok(QueuedSource::Volume {
            volume: volume
                .parse::<VolumeId>()
                .map_err(|e| format!("volume_id: {e}"))?,
            instance: crate::ids::instance_id(instance).map_err(|e| format!("instance_id: {e}"))?,
        }),
        (None, Some(_), None) => {
            Err("a volume job names the collector it is attached to (instance_id)".to_owned())
        }
        (None, None, _) => Err("a job names a snapshot_id or a volume_id".to_owned()),
        _ => Err("a job names a snapshot_id or a volume_id with instance_id, not both".to_owned()),
    }
}

/// The body's task token when it is a JSON object whose `task_token` is a plausible one: a
/// refusal is reported to it so the execution fails at once instead of at its timeout.
fn readable_token(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let token = value.get("task_token")?.as_str()?;
    check_token(token).ok().map(|()| token.to_owned())
}

fn check_token(token: &str) -> Result<(), String> {
    let printable = token.bytes().all(|b| b.is_ascii_graphic());
    if (1..=MAX_TOKEN_CHARS).contains(&token.len()) && printable {
        Ok(())
    } else {
        Err(format!(
            "task_token is not a Step Functions task token (1 to {MAX_TOKEN_CHARS} printable characters)"
        ))
    }
}

fn check_arn(arn: &str) -> Result<(), String> {
    let shaped = arn.starts_with("arn:") && arn.contains(":states:") && arn.contains(":execution:");
    if shaped && arn.len() <= MAX_ARN_CHARS && arn.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "execution_arn {:?} is not a Step Functions execution ARN",
            arn.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests;
