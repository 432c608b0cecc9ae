//! The daemon's capture events for CloudWatch: one JSON object each, `"event"` naming it. Jobs are
//! named `job-N` and carry the volume, so a responder can follow one disk through the stream.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::child::ChildProgress;
use super::jobs::{Job, JobSource, JobTable};
use super::plan::{DaemonPlan, Work};
use crate::config::raw::OnComplete;
use crate::result::AcquisitionResult;

/// The watcher is armed (or, for a snapshot job, the job is about to start): what this agent
/// will do. `disk_root` is null for a snapshot job, `snapshot_id` for a disk one.
pub fn ready(plan: &DaemonPlan) -> Value {
    let (disk_root, snapshot_id) = match &plan.work {
        Work::AttachedDisks(watch) => (Some(&watch.disk_root), None),
        Work::Snapshot(id) => (None, Some(id.as_str())),
    };
    json!({
        "event": "agent_ready",
        "version": crate::VERSION_LINE,
        "disk_root": disk_root,
        "snapshot_id": snapshot_id,
        "destination": plan.destination_text(),
        "incident_id": plan.incident.as_str(),
        "source_volume_id": plan.source_volume_id.as_ref().map(ToString::to_string),
        "expected_volumes": plan.expected_volumes,
        "concurrency": plan.concurrency,
        "on_complete": plan.on_complete.as_str(),
    })
}

/// What a job reads, as event fields: the device (and its size when `with_size`), or the snapshot.
fn source_fields(job: &Job, with_size: bool) -> Value {
    match &job.source {
        JobSource::Disk(disk) if with_size => {
            json!({ "device": disk.device, "size_bytes": disk.size })
        }
        JobSource::Disk(disk) => json!({ "device": disk.device }),
        JobSource::Snapshot(id) => json!({ "snapshot_id": id.as_str() }),
    }
}

/// `event` with `fields` added.
fn with(mut event: Value, fields: Value) -> Value {
    if let (Value::Object(map), Value::Object(fields)) = (&mut event, fields) {
        map.extend(fields);
    }
    event
}

/// A disk was detected and queued.
pub fn detected(job: &Job, latency: Duration) -> Value {
    let event = json!({
        "event": "disk_detected",
        "job": job.id(),
        "volume": job.volume(),
        "evidence_name": job.name,
        "detection_ms": u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
    });
    let fields = match &job.source {
        JobSource::Disk(disk) => {
            json!({ "device": disk.device, "links": disk.links, "label": disk.label, "size_bytes": disk.size })
        }
        JobSource::Snapshot(_) => source_fields(job, false),
    };
    with(event, fields)
}

/// A disk was seen and refused.
pub fn refused(disk: &Path, link: &Path, reason: &str) -> Value {
    json!({
        "event": "disk_refused",
        "device": disk,
        "link": link,
        "reason": reason,
    })
}

/// A job's child started.
pub fn started(job: &Job, destination: &str) -> Value {
    let event = json!({
        "event": "job_started",
        "job": job.id(),
        "volume": job.volume(),
        "evidence_name": job.name,
        "destination": destination,
    });
    with(event, source_fields(job, true))
}

/// Progress of a running job.
pub fn progress(job: &Job, progress: &ChildProgress) -> Value {
    json!({
        "event": "progress",
        "job": job.id(),
        "volume": job.volume(),
        "bytes_done": progress.bytes_done,
        "size_bytes": progress.bytes_total,
        "percent": progress.percent,
        "mb_per_s": progress.mb_per_s,
        "eta_seconds": progress.eta_seconds,
    })
}

/// A job ended: its result (hashes, where the evidence is, bad ranges) or its error.
pub fn finished(job: &Job, result: &AcquisitionResult) -> Value {
    let event = json!({
        "event": if result.manifest.is_some() { "job_finished" } else { "job_failed" },
        "job": job.id(),
        "volume": job.volume(),
    });
    let event = with(event, source_fields(job, false));
    with(event, serde_json::to_value(result).unwrap_or(Value::Null))
}

/// Every job is done and the daemon stays up.
pub fn all_done(table: &JobTable, action: &str) -> Value {
    let (done, with_evidence) = table.done();
    json!({
        "event": "all_jobs_done",
        "jobs": done,
        "with_evidence": with_evidence,
        "failed": done - with_evidence,
        "action": action,
    })
}

/// The daemon stops: why, and what it does next.
pub fn stopping(table: &JobTable, reason: &str, action: OnComplete) -> Value {
    let (done, with_evidence) = table.done();
    json!({
        "event": "agent_stopping",
        "reason": reason,
        "jobs": done,
        "with_evidence": with_evidence,
        "failed": done - with_evidence,
        "action": action.as_str(),
    })
}

/// `watch` refused its configuration and exits with `exit`: it never armed its watcher and sent no
/// readiness, so the flow must not attach a volume; `reason` tells the operator what to fix.
pub fn config_refused(reason: &str, exit: crate::exit::Exit) -> Value {
    json!({
        "event": "config_refused",
        "version": crate::VERSION_LINE,
        "reason": reason,
        "exit_code": exit.code(),
    })
}
