//! The queue worker's capture events for CloudWatch, beside the daemon's (`daemon::events`, whose
//! progress and result events a queued job reuses): ready, a job taken or refused, stopping.

use serde_json::{Value, json};

use super::calls::Received;
use super::message::{MessageRefusal, QueuedJob};
use super::worker::QueuePlan;
use crate::config::raw::OnComplete;
use crate::daemon::Job;
use crate::result::AcquisitionResult;

/// Jobs answered by the end.
pub struct Counts {
    /// Answered with evidence.
    pub succeeded: usize,
    /// Answered with a failure.
    pub failed: usize,
    /// Refused before running.
    pub refused: usize,
}

/// The worker polls its queue.
pub fn ready(plan: &QueuePlan) -> Value {
    json!({
        "event": "agent_ready",
        "version": crate::VERSION_LINE,
        "queue_url": plan.queue.url.as_str(),
        "destination": plan.destination.to_string(),
        "snapshot_tag": plan.queue.snapshot_tag,
        "queue_idle_secs": plan.queue.idle.as_secs(),
        "on_complete": plan.config.watch.on_complete.as_str(),
    })
}

/// A job was taken from the queue and its imaging starts.
pub fn taken(message: &Received, queued: &QueuedJob, job: &Job) -> Value {
    json!({
        "event": "job_taken",
        "job": job.id(),
        "message_id": message.id,
        "receive_count": message.receive_count,
        "execution_arn": queued.execution_arn,
        "incident_id": queued.incident.as_str(),
        "evidence_name": job.name,
        "volume": job.volume(),
    })
}

/// A message was refused and deleted without running.
pub fn refused(message: &Received, refusal: &MessageRefusal) -> Value {
    json!({
        "event": "job_refused",
        "message_id": message.id,
        "receive_count": message.receive_count,
        "reason": refusal.reason,
        "reported_to_execution": refusal.token.is_some(),
    })
}

/// A job ended before its child started (a volume job whose volume never appeared).
pub fn failed_unstarted(
    message: &Received,
    queued: &QueuedJob,
    result: &AcquisitionResult,
) -> Value {
    json!({
        "event": "job_failed",
        "message_id": message.id,
        "execution_arn": queued.execution_arn,
        "evidence_name": queued.evidence_name.as_str(),
        "exit_code": result.exit_code,
        "error": result.error,
    })
}

/// The worker stops: why, and what it does next.
pub fn stopping(counts: &Counts, reason: &str, action: OnComplete) -> Value {
    json!({
        "event": "agent_stopping",
        "reason": reason,
        "jobs": counts.succeeded + counts.failed,
        "with_evidence": counts.succeeded,
        "failed": counts.failed,
        "refused": counts.refused,
        "action": action.as_str(),
    })
}
