//! The loop behind `forensic-collector watch` (the command itself is `cmd::watch`): the agent on
//! the collector instance. It arms the device watcher, tells the attaching flow it is ready, turns
//! every attached disk into a job, images the disks with bounded concurrency (each in a child
//! process running `run-job`: `acquire` with its job as JSON on stdin), reports to CloudWatch,
//! and when the work is done flushes its reports and exits, stays, or powers the instance off.
//!
//! A job that names a snapshot (`job.snapshot_id`, [`Work::Snapshot`]) takes the same path with one
//! job known from the start: no watcher is armed, the one child reads the snapshot through the EBS
//! direct APIs, and the work is done when it ends.
//!
//! # Layout
//! - `jobs`: the job table (dedupe, queue, outcomes).
//! - `child`: one job's child process, its progress and result.
//! - `plan`: what the daemon was told to do (from the effective configuration).
//! - `events`: the capture events it reports; `reports`: where they go.

mod child;

pub(crate) mod events;
mod jobs;
mod plan;
pub(crate) mod reports;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use crossbeam_channel::{Receiver, select};

use crate::config::raw::OnComplete;
use crate::detect::{Refusal, WatchError, WatchEvent, Watcher};
use crate::exit::{Exit, Failure};

pub use child::{ChildEvent, ChildProgress, RunningChild};
pub use jobs::{Job, JobSource, JobState, JobTable, severity};
pub use plan::{DaemonPlan, Work};
pub use reports::Reports;

/// How often the loop looks at its children and timers when no event arrives.
const TICK: Duration = Duration::from_millis(200);
/// How long the watcher thread blocks per call, so it notices the stop flag quickly.
const WATCH_POLL: Duration = Duration::from_millis(250);
/// How long children get to abort their uploads after SIGTERM before they are killed.
pub(crate) const CHILD_STOP_GRACE: Duration = Duration::from_secs(60);

/// Runs the daemon until its work is done (or a signal stops it) and returns the exit status.
pub fn run(plan: &DaemonPlan, reporter: &Reports, cancel: &AtomicBool) -> Result<Exit, Failure> {
    let watcher = match &plan.work {
        Work::AttachedDisks(settings) => Some(Watcher::arm(settings.clone()).map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!("cannot watch for attached disks: {e}"),
            )
        })?),
        Work::Snapshot(_) => None,
    };
    reporter.readiness();
    reporter.emit(events::ready(plan));
    match &plan.work {
        Work::AttachedDisks(settings) => tracing::info!(disk_root = %settings.disk_root.display(),
            concurrency = plan.concurrency, "Watching for attached volumes; readiness signalled."),
        Work::Snapshot(id) => tracing::info!(snapshot_id = %id,
            "Imaging the job's snapshot; no disk is awaited; readiness signalled."),
    }

    let stop = Arc::new(AtomicBool::new(false));
    // No watcher, no events: a channel that never delivers keeps the loop one loop.
    let (watch_events, watcher_thread) = match watcher {
        Some(watcher) => {
            let (events, thread) = spawn_watcher(watcher, Arc::clone(&stop));
            (events, Some(thread))
        }
        None => (crossbeam_channel::never(), None),
    };
    let (child_tx, child_events) = crossbeam_channel::unbounded();
    let mut table = JobTable::default();
    if let Some((source, name)) = plan.snapshot_job() {
        table.add(source, name);
    }
    let mut state = Loop {
        plan,
        reporter,
        table,
        children: Vec::new(),
        last_activity: Instant::now(),
        staying: false,
    };

    let outcome = loop {
        if cancel.load(Ordering::Relaxed) {
            state.stop_children();
            break Ending::Interrupted;
        }
        select! {
            recv(watch_events) -> event => match event {
                Ok(Ok(event)) => state.on_watch_event(event),
                Ok(Err(err)) => break Ending::WatchFailed(err.to_string()),
                Err(_) => break Ending::WatchFailed("the watcher stopped".to_owned()),
            },
            recv(child_events) -> event => {
                if let Ok(ChildEvent::Progress(job, progress)) = event {
                    state.on_progress(job, &progress);
                }
            },
            default(TICK) => {},
        }
        state.start_jobs(&child_tx);
        state.reap_children();
        if let Some(ending) = state.ending() {
            break ending;
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(thread) = watcher_thread {
        let _ = thread.join();
    }
    state.finish(outcome)
}

/// Why the loop ended.
enum Ending {
    /// The work is done (expected count reached, idle timeout, or every job ended).
    Done,
    /// Idle timeout with no disk at all.
    NothingAttached,
    /// SIGINT/SIGTERM.
    Interrupted,
    /// The watcher failed.
    WatchFailed(String),
}

/// The loop's state.
struct Loop<'a> {
    plan: &'a DaemonPlan,
    reporter: &'a Reports,
    table: JobTable,
    children: Vec<RunningChild>,
    last_activity: Instant,
    staying: bool,
}

impl Loop<'_> {
    fn on_watch_event(&mut self, event: WatchEvent) {
        self.last_activity = Instant::now();
        match event {
            WatchEvent::Attached(disk) => {
                let latency = disk.first_seen.elapsed();
                let name = self.plan.evidence_name(&disk, self.table.taken());
                let device = disk.device.display().to_string();
                match self.table.add(JobSource::Disk(disk), name) {
                    Some(index) => {
                        let job = self.table.get(index).expect("just added");
                        tracing::info!(job = %job.id(), device = %device, volume = %job.volume(),
                            name = %job.name, detection_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                            "Attached disk detected; queued for imaging.");
                        self.reporter.emit(events::detected(job, latency));
                    }
                    None => tracing::info!(device = %device,
                        "Disk already imaged or being imaged; not taken again."),
                }
            }
            WatchEvent::Refused { disk, link, reason } => {
                // The host's own disks (root, swap) are refused at every start: expected, not a
                // warning. Anything else refused may be the evidence an operator waits for.
                if matches!(reason, Refusal::InUse(_)) {
                    tracing::info!(device = %disk.display(), link = %link.display(), reason = %reason,
                        "Disk in use by this host; not imaged.");
                } else {
                    tracing::warn!(device = %disk.display(), link = %link.display(), reason = %reason,
                        "Attached disk refused.");
                }
                self.reporter
                    .emit(events::refused(&disk, &link, &reason.to_string()));
            }
        }
    }

    fn on_progress(&self, index: usize, progress: &ChildProgress) {
        if let Some(job) = self.table.get(index) {
            self.reporter.emit(events::progress(job, progress));
        }
    }

    fn start_jobs(&mut self, events: &crossbeam_channel::Sender<ChildEvent>) {
        while let Some(job) = self.table.next_to_start(self.plan.concurrency) {
            let job = job.clone();
            let acquire = self.plan.child_job(&job);
            match RunningChild::spawn(&self.plan.program, &acquire, job.index, events.clone()) {
                Ok(child) => {
                    tracing::info!(job = %job.id(), source = %job.source,
                        name = %job.name, "Imaging started.");
                    self.reporter
                        .emit(events::started(&job, &self.plan.destination_text()));
                    self.children.push(child);
                }
                Err(err) => {
                    let result = crate::result::AcquisitionResult::failed(
                        Exit::Internal,
                        format!("cannot start the imaging process: {err}"),
                    );
                    self.record(job.index, result);
                }
            }
        }
    }

    fn reap_children(&mut self) {
        let mut finished = Vec::new();
        self.children.retain_mut(|child| match child.try_finish() {
            Some(result) => {
                finished.push((child.job(), result));
                false
            }
            None => true,
        });
        for (index, result) in finished {
            self.record(index, result);
        }
    }

    fn record(&mut self, index: usize, result: crate::result::AcquisitionResult) {
        self.last_activity = Instant::now();
        let Some(job) = self.table.finish(index, result.clone()) else {
            return;
        };
        if result.manifest.is_some() {
            tracing::info!(job = %job.id(), name = %job.name, status = %result.status,
                image = %result.image.join(" "), "Imaging finished; evidence stored.");
        } else {
            tracing::error!(job = %job.id(), name = %job.name, exit_code = result.exit_code,
                error = result.error.as_deref().unwrap_or("-"), "Imaging failed; no evidence stored.");
        }
        self.reporter.emit(events::finished(job, &result));
    }

    /// Whether the work is done: nothing queued or running, and the snapshot's job ended, or the
    /// expected number of volumes imaged, or (without an expected number) the idle timeout passed,
    /// or (without either) at least one job ended.
    fn ending(&mut self) -> Option<Ending> {
        if self.table.pending() > 0 {
            return None;
        }
        let (done, _) = self.table.done();
        let idle = self
            .plan
            .idle_timeout
            .is_some_and(|t| self.last_activity.elapsed() >= t);
        let complete = match (&self.plan.work, self.plan.expected_volumes) {
            // Its one job was there from the start; nothing else can come.
            (Work::Snapshot(_), _) => done > 0,
            (Work::AttachedDisks(_), Some(expected)) => done >= expected as usize || idle,
            (Work::AttachedDisks(_), None) if self.plan.idle_timeout.is_some() => idle,
            (Work::AttachedDisks(_), None) => done > 0,
        };
        if !complete {
            return None;
        }
        if done == 0 {
            return Some(Ending::NothingAttached);
        }
        if self.plan.on_complete == OnComplete::Stay {
            if !self.staying {
                self.staying = true;
                tracing::info!(
                    jobs = done,
                    "All jobs done; staying up (on_complete = stay)."
                );
                self.reporter.emit(events::all_done(&self.table, "stay"));
            }
            return None;
        }
        Some(Ending::Done)
    }

    /// SIGTERM to every child, then wait (bounded) for them to abort their uploads and exit.
    fn stop_children(&mut self) {
        for child in &self.children {
            child.terminate();
        }
        let deadline = Instant::now() + CHILD_STOP_GRACE;
        while !self.children.is_empty() && Instant::now() < deadline {
            self.reap_children();
            std::thread::sleep(Duration::from_millis(50));
        }
        for child in &mut self.children {
            child.kill();
        }
        self.reap_children();
    }

    fn finish(self, ending: Ending) -> Result<Exit, Failure> {
        let (exit, reason) = match &ending {
            Ending::Done => (exit_of(self.table.worst_exit()), "done"),
            Ending::NothingAttached => (
                Exit::SourceMissing,
                "no disk attached before the idle timeout",
            ),
            Ending::Interrupted => (Exit::Interrupted, "interrupted"),
            Ending::WatchFailed(_) => (Exit::Internal, "the watcher failed"),
        };
        if let Ending::WatchFailed(err) = &ending {
            tracing::error!(error = %err, "The device watcher failed; stopping.");
        }
        let action = match ending {
            Ending::Done => self.plan.on_complete,
            _ => OnComplete::Exit,
        };
        self.reporter
            .emit(events::stopping(&self.table, reason, action));
        tracing::info!(
            reason,
            action = action.as_str(),
            "Stopping: flushing reports."
        );
        if let Some(stats) = self
            .reporter
            .clone()
            .shutdown(Instant::now() + self.plan.flush_timeout)
        {
            tracing::info!(
                sent = stats.sent,
                dropped = stats.dropped,
                failed = stats.failed,
                readiness_pending = stats.readiness_pending,
                "Reports flushed."
            );
        }
        if action == OnComplete::Poweroff {
            power_off(&self.plan.poweroff_command)?;
        }
        Ok(exit)
    }
}

/// Runs the watcher on its own thread (its calls block), forwarding events until `stop`.
fn spawn_watcher(
    mut watcher: Watcher,
    stop: Arc<AtomicBool>,
) -> (
    Receiver<Result<WatchEvent, WatchError>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match watcher.next_event(Instant::now() + WATCH_POLL) {
                Ok(Some(event)) => {
                    if tx.send(Ok(event)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    let _ = tx.send(Err(err));
                    return;
                }
            }
        }
    });
    (rx, thread)
}

/// The documented exit for a job's exit code.
pub(crate) fn exit_of(code: u8) -> Exit {
    Exit::from_code(code).unwrap_or(Exit::Internal)
}

/// Powers the instance off through systemd (or the configured command), after the reports are
/// flushed: the evidence is in S3 and the collector must not keep running and billing.
pub(crate) fn power_off(command: &[String]) -> Result<(), Failure> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    tracing::info!(command = ?command, "Powering off.");
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .map_err(|e| Failure::new(Exit::Internal, anyhow!("cannot run {program}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Internal,
            anyhow!("{} failed: {status}", command.join(" ")),
        ))
    }
}
