//! The job-queue loop: poll the queue, check the message, image its snapshot in a child process
//! (the daemon's `run-job`, so exit codes and evidence rules are the one-shot command's), beat
//! while it runs, answer the execution, and only then delete the message. When the queue stays
//! empty for `job.queue_idle_secs`, the work is done (`watch.on_complete`).
//!
//! A job's message stays invisible to other collectors while this one runs it (three heartbeats,
//! renewed at each). If this collector dies, the message reappears and another takes it; that run
//! uses `--new-capture` semantics, so it stores `NAME-2` beside whatever the dead run left (a claim
//! object, an upload S3's lifecycle rule aborts), never colliding with it (docs/flow.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imaging::S3Url;

use super::answer::{self, Answer};
use super::attach::{self, NotAttached};
use super::calls::{Calls, Received, TaskCallError};
use super::events;
use super::message::{self, MessageRefusal, QueuedJob, QueuedSource};
use crate::config::raw::OnComplete;
use crate::config::typed::QueueSection;
use crate::config::{Config, JobContext};
use crate::daemon::{self, ChildEvent, DaemonPlan, Job, JobState, Reports, RunningChild};
use crate::detect::WatchSettings;
use crate::exit::{Exit, Failure};
use crate::result::AcquisitionResult;

/// How often a running job's child is looked at.
const TICK: Duration = Duration::from_millis(200);
/// How long a volume job for another collector stays hidden after this one passed it over: the
/// volume queue is polled only by the flow's dedicated volume collectors, so a second is enough for
/// the right one to get it, and a wrong receive costs the job only that.
const PASS_OVER: Duration = Duration::from_secs(1);
/// SQS's longest long poll.
pub(super) const LONG_POLL: Duration = Duration::from_secs(20);
/// Longest pause after a failed poll (doubling from one second).
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(30);

/// What a queue worker was told to do.
#[derive(Debug, Clone)]
pub struct QueuePlan {
    /// This binary, run once per job as `run-job`.
    pub program: PathBuf,
    /// The checked configuration: each job's acquisition is the daemon's template of it.
    pub config: Config,
    /// Where evidence goes; a job naming another destination is refused.
    pub destination: S3Url,
    /// The queue and its timings.
    pub queue: QueueSection,
    /// This instance, from IMDS.
    pub instance_id: Option<String>,
    /// Where each setting came from, for the custody record (`config::origins_of`).
    pub origins: std::collections::BTreeMap<String, String>,
}

impl QueuePlan {
    /// Who answers: the instance ID, else the host name.
    fn collector(&self) -> String {
        self.instance_id
            .clone()
            .unwrap_or_else(crate::sysinfo::hostname)
    }

    /// How long a taken message stays hidden: three heartbeats, so one late beat loses nothing.
    fn visibility(&self) -> Duration {
        self.queue.heartbeat * 3
    }
}

/// Runs the worker until the queue stays empty (or a signal) and returns the exit status.
pub fn run(plan: &QueuePlan, reports: &Reports, cancel: &AtomicBool) -> Result<Exit, Failure> {
    let calls = Calls::new(crate::aws::runtime()?, plan.queue.url.clone());
    reports.readiness();
    reports.emit(events::ready(plan));
    tracing::info!(queue = %plan.queue.url, destination = %plan.destination,
        idle_secs = plan.queue.idle.as_secs(), "Taking jobs from the queue; readiness signalled.");
    let mut worker = Worker {
        plan,
        reports,
        calls,
        tally: Tally::default(),
        last_job: Instant::now(),
        poll_error: None,
    };
    let ending = worker.serve(cancel);
    worker.finish(&ending)
}

/// Why the loop ended.
enum QueueEnding {
    /// The queue stayed empty for the idle time.
    Idle,
    /// Polling failed for the whole idle time: the last error.
    Unreachable(String),
    /// SIGINT/SIGTERM.
    Interrupted,
}

/// Jobs answered so far.
#[derive(Debug, Default)]
struct Tally {
    succeeded: usize,
    failed: usize,
    refused: usize,
    worst_exit: u8,
}

struct Worker<'a> {
    plan: &'a QueuePlan,
    reports: &'a Reports,
    calls: Calls,
    tally: Tally,
    last_job: Instant,
    poll_error: Option<String>,
}

impl Worker<'_> {
    fn serve(&mut self, cancel: &AtomicBool) -> QueueEnding {
        let mut failures = 0u32;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return QueueEnding::Interrupted;
            }
            let idle_for = self.last_job.elapsed();
            let stays = self.plan.config.watch.on_complete == OnComplete::Stay;
            if idle_for >= self.plan.queue.idle && !stays {
                return self
                    .poll_error
                    .take()
                    .map_or(QueueEnding::Idle, QueueEnding::Unreachable);
            }
            // A worker that stays polls in full long polls; one that ends waits no longer than
            // its idle time has left.
            let left = if stays {
                LONG_POLL
            } else {
                self.plan
                    .queue
                    .idle
                    .saturating_sub(idle_for)
                    .max(Duration::from_secs(1))
            };
            match self.calls.receive(left, self.plan.visibility(), cancel) {
                Ok(Some(message)) => {
                    failures = 0;
                    self.poll_error = None;
                    self.take(&message, cancel);
                }
                Ok(None) => self.poll_error = None,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = %error, failures, "Cannot poll the job queue; retrying.");
                    let pause = Duration::from_secs(1 << failures.min(5)).min(MAX_POLL_BACKOFF);
                    pause_unless_cancelled(pause.min(left), cancel);
                    self.poll_error = Some(error);
                }
            }
        }
    }

    /// One message: refused, passed over (a volume attached elsewhere), or run and answered.
    fn take(&mut self, message: &Received, cancel: &AtomicBool) {
        let job = match message::parse(&message.body, &self.plan.destination) {
            Ok(job) => job,
            Err(refusal) => return self.refuse(message, &refusal),
        };
        if let QueuedSource::Volume { instance, .. } = &job.source
            && self.plan.instance_id.as_deref() != Some(instance.as_str())
        {
            // The flow attached that volume to another collector: leave the job to it, visible
            // again at once but for this collector's next poll.
            tracing::info!(message = %message.id, attached_to = %instance,
                "A volume job for another collector; left in the queue.");
            let _ = self.calls.set_visibility(&message.receipt, PASS_OVER);
            return;
        }
        if let Err(reason) = self.admit(&job) {
            let refusal = MessageRefusal {
                token: Some(job.token),
                reason,
            };
            return self.refuse(message, &refusal);
        }
        self.last_job = Instant::now();
        self.run_job(message, &job, cancel);
        self.last_job = Instant::now();
    }

    /// Checks what the message cannot prove: that its snapshot carries the tag the collector role
    /// may read. (A volume job's volume is the flow's, attached to this very instance.)
    fn admit(&self, job: &QueuedJob) -> Result<(), String> {
        let QueuedSource::Snapshot(snapshot) = &job.source else {
            return Ok(());
        };
        let wanted = &self.plan.queue.snapshot_tag;
        match self.calls.snapshot_tag(snapshot) {
            Ok(Some(value)) if value == *wanted => Ok(()),
            Ok(found) => Err(format!(
                "snapshot {snapshot} is not tagged {}={wanted} (found {found:?}): not one this collector may read",
                super::calls::SNAPSHOT_TAG_KEY
            )),
            Err(error) => Err(format!("cannot read snapshot {snapshot}'s tags: {error}")),
        }
    }

    fn refuse(&mut self, message: &Received, refusal: &MessageRefusal) {
        self.tally.refused += 1;
        tracing::warn!(message = %message.id, reason = %refusal.reason,
            reported = refusal.token.is_some(), "Job message refused; deleted, never run.");
        self.reports.emit(events::refused(message, refusal));
        if let Some(token) = &refusal.token {
            let answer = answer::refused(&refusal.reason, &self.plan.collector());
            if let Err(error) = self.calls.answer(token, &answer) {
                tracing::warn!(error = ?error, "Cannot report the refusal to its execution.");
            }
        }
        if let Err(error) = self.calls.delete(&message.receipt) {
            tracing::warn!(error = %error, "Cannot delete the refused message.");
        }
    }

    fn run_job(&mut self, message: &Received, queued: &QueuedJob, cancel: &AtomicBool) {
        let source = match &queued.source {
            QueuedSource::Snapshot(id) => daemon::JobSource::Snapshot(id.clone()),
            QueuedSource::Volume { volume, .. } => {
                match self.attached(message, queued, volume, cancel) {
                    Ok(disk) => daemon::JobSource::Disk(disk),
                    Err(NotAttached::Stopped) => return,
                    Err(NotAttached::Failed(reason)) => {
                        let result = AcquisitionResult::failed(Exit::SourceMissing, reason);
                        return self.conclude(message, queued, None, &result);
                    }
                }
            }
        };
        let job = self.job(queued, source);
        let acquire = self.acquisition(queued, &job);
        let (events_tx, child_events) = crossbeam_channel::unbounded();
        tracing::info!(message = %message.id, receive_count = message.receive_count,
            execution = %queued.execution_arn, source = %job.source, name = %job.name,
            "Job taken; imaging started.");
        self.reports.emit(events::taken(message, queued, &job));
        let mut child = match RunningChild::spawn(&self.plan.program, &acquire, 0, events_tx) {
            Ok(child) => child,
            Err(error) => {
                let result = AcquisitionResult::failed(
                    Exit::Internal,
                    format!("cannot start the imaging process: {error}"),
                );
                return self.conclude(message, queued, Some(&job), &result);
            }
        };
        let mut next_beat = Instant::now() + self.plan.queue.heartbeat;
        let result = loop {
            if let Some(result) = child.try_finish() {
                break result;
            }
            if cancel.load(Ordering::Relaxed) {
                return self.abandon(message, &mut child, "interrupted");
            }
            while let Ok(ChildEvent::Progress(_, progress)) = child_events.try_recv() {
                self.reports.emit(daemon::events::progress(&job, &progress));
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + self.plan.queue.heartbeat;
                if let Err(gone) = self.beat(message, queued) {
                    tracing::warn!(reason = %gone, "The execution no longer waits for this job; stopping it.");
                    self.abandon(message, &mut child, "the execution stopped waiting");
                    let _ = self.calls.delete(&message.receipt);
                    return;
                }
            }
            std::thread::sleep(TICK);
        };
        self.conclude(message, queued, Some(&job), &result);
    }

    /// The job as the daemon's reports name it.
    fn job(&self, queued: &QueuedJob, source: daemon::JobSource) -> Job {
        Job {
            index: self.tally.succeeded + self.tally.failed,
            source,
            name: queued.evidence_name.to_string(),
            state: JobState::Running,
            detected_at: chrono::Utc::now(),
        }
    }

    /// The child's acquisition: the daemon's template for this job's incident and source, with
    /// the job's name and examiner, and a new name when the job's is taken (a redelivered job).
    fn acquisition(&self, queued: &QueuedJob, job: &Job) -> crate::cli::AcquireArgs {
        let context = JobContext {
            destination: self.plan.destination.clone(),
            incident_id: queued.incident.clone(),
            source_volume_id: queued.source_volume_id.clone(),
            snapshot_id: match &job.source {
                daemon::JobSource::Snapshot(id) => Some(id.clone()),
                daemon::JobSource::Disk(_) => None,
            },
        };
        let plan = DaemonPlan::new(
            self.plan.program.clone(),
            &self.plan.config,
            &context,
            self.plan.instance_id.clone(),
        )
        .with_origins(self.plan.origins.clone());
        let mut acquire = plan.child_job(job);
        // The daemon names a disk's source volume only when the evidence is named after it; a
        // queued job's message says which suspect volume its source copies.
        acquire.source_volume_id = queued.source_volume_id.as_ref().map(ToString::to_string);
        acquire.new_capture = true;
        if queued.examiner.is_some() {
            acquire.examiner.clone_from(&queued.examiner);
        }
        acquire
    }

    /// The disk of a volume job's volume, beating while it is awaited.
    fn attached(
        &self,
        message: &Received,
        queued: &QueuedJob,
        volume: &imaging::VolumeId,
        cancel: &AtomicBool,
    ) -> Result<crate::detect::AttachedDisk, NotAttached> {
        let settings = WatchSettings {
            disk_root: self.plan.config.watch.disk_root.clone(),
            settle_quiet: self.plan.config.watch.settle,
            ..WatchSettings::default()
        };
        let mut next_beat = Instant::now() + self.plan.queue.heartbeat;
        let found = attach::wait_for(volume, settings, attach::ATTACH_WAIT, || {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            if Instant::now() < next_beat {
                return true;
            }
            next_beat = Instant::now() + self.plan.queue.heartbeat;
            self.beat(message, queued).is_ok()
        });
        if matches!(found, Err(NotAttached::Stopped)) {
            // Interrupted: the job goes back to the queue; the execution gone: nobody waits.
            let visible_again = if cancel.load(Ordering::Relaxed) {
                self.calls.set_visibility(&message.receipt, Duration::ZERO)
            } else {
                self.calls.delete(&message.receipt)
            };
            if let Err(error) = visible_again {
                tracing::warn!(error = %error, "Cannot release or delete the message.");
            }
        }
        found
    }

    /// A heartbeat and the message's visibility renewed; `Err` when the execution is gone.
    fn beat(&self, message: &Received, queued: &QueuedJob) -> Result<(), String> {
        match self.calls.heartbeat(&queued.token) {
            Err(TaskCallError::Gone(reason)) => return Err(reason),
            Err(TaskCallError::Other(error)) => {
                tracing::warn!(error = %error, "Heartbeat not delivered; the job goes on.");
            }
            Ok(()) => {}
        }
        if let Err(error) = self
            .calls
            .set_visibility(&message.receipt, self.plan.visibility())
        {
            tracing::warn!(error = %error, "Cannot extend the message's visibility.");
        }
        Ok(())
    }

    /// Stops the child (it aborts its upload and removes what it stored) and shows the message
    /// again at once, for another collector, when the stop is ours rather than the execution's.
    fn abandon(&mut self, message: &Received, child: &mut RunningChild, why: &str) {
        child.terminate();
        let deadline = Instant::now() + daemon::CHILD_STOP_GRACE;
        while Instant::now() < deadline {
            if child.try_finish().is_some() {
                break;
            }
            std::thread::sleep(TICK);
        }
        child.kill();
        let _ = child.try_finish();
        tracing::warn!(message = %message.id, why, "Job abandoned; its partial evidence removed.");
        let _ = self.calls.set_visibility(&message.receipt, Duration::ZERO);
    }

    /// Answers the execution, then deletes the message: an answer that cannot be sent (other than
    /// to an execution that is gone) leaves the message to come back for another collector.
    fn conclude(
        &mut self,
        message: &Received,
        queued: &QueuedJob,
        job: Option<&Job>,
        result: &AcquisitionResult,
    ) {
        let answer = answer::of(queued, &self.plan.collector(), result);
        match &answer {
            Answer::Success(_) => self.tally.succeeded += 1,
            Answer::Failure { .. } => self.tally.failed += 1,
        }
        self.tally.worst_exit = worse(self.tally.worst_exit, result.exit_code);
        self.reports.emit(match job {
            Some(job) => daemon::events::finished(job, result),
            None => events::failed_unstarted(message, queued, result),
        });
        let sent = self.calls.answer(&queued.token, &answer);
        tracing::info!(message = %message.id, status = %result.status, exit_code = result.exit_code,
            manifest = result.manifest.as_deref().unwrap_or("-"), answered = ?sent, "Job ended.");
        match sent {
            Ok(()) | Err(TaskCallError::Gone(_)) => {
                if let Err(error) = self.calls.delete(&message.receipt) {
                    tracing::warn!(error = %error, "Cannot delete the answered message.");
                }
            }
            Err(TaskCallError::Other(error)) => {
                tracing::error!(error = %error, "Cannot answer the execution; the message stays for a retry.");
            }
        }
    }

    fn finish(self, ending: &QueueEnding) -> Result<Exit, Failure> {
        let (exit, reason) = match ending {
            QueueEnding::Idle => (
                daemon::exit_of(self.tally.worst_exit),
                "the job queue stayed empty",
            ),
            QueueEnding::Unreachable(_) => (
                Exit::JobContextUnavailable,
                "the job queue cannot be polled",
            ),
            QueueEnding::Interrupted => (Exit::Interrupted, "interrupted"),
        };
        if let QueueEnding::Unreachable(error) = ending {
            tracing::error!(error = %error, "The job queue could not be polled for the whole idle time.");
        }
        let action = match ending {
            QueueEnding::Interrupted => OnComplete::Exit,
            _ => self.plan.config.watch.on_complete,
        };
        self.reports
            .emit(events::stopping(&self.tally_fields(), reason, action));
        tracing::info!(
            reason,
            action = action.as_str(),
            "Stopping: flushing reports."
        );
        let _ = self
            .reports
            .clone()
            .shutdown(Instant::now() + self.plan.config.cloudwatch.flush_timeout);
        if action == OnComplete::Poweroff {
            daemon::power_off(&self.plan.config.watch.poweroff_command)?;
        }
        Ok(exit)
    }

    fn tally_fields(&self) -> events::Counts {
        events::Counts {
            succeeded: self.tally.succeeded,
            failed: self.tally.failed,
            refused: self.tally.refused,
        }
    }
}

/// The worse of two exit codes: a failure outranks unreadable sectors, which outrank success.
fn worse(a: u8, b: u8) -> u8 {
    if daemon::severity(b) > daemon::severity(a) {
        b
    } else {
        a
    }
}

/// Sleeps `pause`, waking early when `cancel` is set.
fn pause_unless_cancelled(pause: Duration, cancel: &AtomicBool) {
    let end = Instant::now() + pause;
    while Instant::now() < end && !cancel.load(Ordering::Relaxed) {
        std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_exit_is_a_failure_then_unreadable_sectors_then_success() {
        assert_eq!(worse(0, 3), 3);
        assert_eq!(worse(3, 0), 3);
        assert_eq!(worse(3, 20), 20);
        assert_eq!(worse(20, 3), 20);
        assert_eq!(worse(30, 20), 30);
        assert_eq!(worse(0, 0), 0);
    }
}
