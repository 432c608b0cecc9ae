//! `forensic-collector watch`: load the configuration (file, IMDSv2 user data — waiting for IMDS
//! at boot —, environment, flags), require a job context, start CloudWatch reporting, and run the
//! daemon loop: on attached disks, or on the job's snapshot when it names one (`job.snapshot_id`);
//! or, with `job.queue_url`, the job-queue worker (`queue`), whose jobs come from the flow's queue.
//! A refused configuration is reported to CloudWatch before the exit (`refusal`).
//!
//! # Layout
//! - `refusal`: reporting a refused configuration with what can still be read of it.

pub mod refusal;

use std::sync::atomic::AtomicBool;

use anyhow::anyhow;

use crate::cli::WatchArgs;
use crate::cloudwatch::{ReportSettings, Reporter};
use crate::config::typed::QueueSection;
use crate::config::{self, ConfigRefusal, Effective, Flag, JobContext, Layers, LoadOptions};
use crate::daemon::Reports;
use crate::daemon::{self, DaemonPlan};
use crate::exit::{Exit, Failure};
use crate::queue::QueuePlan;
use imaging::S3Url;

/// Runs `watch` and returns how the process should exit.
pub fn run(args: &WatchArgs, cancel: &AtomicBool) -> Result<Exit, Failure> {
    let mut options = LoadOptions::from_process(args.config.clone());
    if let Some(root) = &args.disk_root {
        options
            .flags
            .push(Flag::new("watch.disk_root", root.display(), "--disk-root"));
    }
    if let Some(action) = &args.on_complete {
        options.flags.push(Flag::new(
            "watch.on_complete",
            action.as_str(),
            "--on-complete",
        ));
    }
    options.wait_for_imds = true;
    let (effective, work) = accept(&options).map_err(|refused| {
        refusal::report(&refused.error, &refused.partial, refused.instance_id);
        Failure::new(refused.error.exit(), refused.error)
    })?;
    let config = &effective.config;
    let program = std::env::current_exe()
        .map_err(|e| Failure::new(Exit::Internal, anyhow!("cannot find this program: {e}")))?;
    let job_context = match &work {
        Assignment::Jobs(job) => Some(job),
        Assignment::Queue { .. } => None,
    };
    log_loaded(&effective, job_context);
    let reports = reports(&effective)?;
    match work {
        Assignment::Jobs(job) => {
            let plan = DaemonPlan::new(program, config, &job, effective.instance_id.clone())
                .with_origins(crate::config::origins_of(&effective.settings));
            daemon::run(&plan, &reports, cancel)
        }
        Assignment::Queue { queue, destination } => {
            let plan = QueuePlan {
                program,
                config: config.clone(),
                destination,
                queue,
                instance_id: effective.instance_id.clone(),
                origins: crate::config::origins_of(&effective.settings),
            };
            crate::queue::run(&plan, &reports, cancel)
        }
    }
}

/// What the configuration gives `watch` to do.
enum Assignment {
    /// The daemon's job: attached disks, or the job's snapshot.
    Jobs(JobContext),
    /// Job-queue mode: each message brings its own job, for this destination.
    Queue {
        queue: QueueSection,
        destination: S3Url,
    },
}

/// One line saying what was loaded and from where.
fn log_loaded(effective: &Effective, job: Option<&JobContext>) {
    let config = &effective.config;
    tracing::info!(
        destination = config.job.destination.as_ref().map(ToString::to_string),
        queue_url = config.job.queue.as_ref().map(|q| q.url.to_string()),
        incident = job.map(|j| j.incident_id.to_string()),
        source_volume_id = job.and_then(|j| j.source_volume_id.as_ref().map(ToString::to_string)),
        snapshot_id = job.and_then(|j| j.snapshot_id.as_ref().map(ToString::to_string)),
        instance_id = effective.instance_id.as_deref().unwrap_or("-"),
        user_data = effective
            .user_data
            .map_or_else(|| "none".to_owned(), |f| format!("{f:?}").to_lowercase()),
        file = effective
            .file
            .as_deref()
            .map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
        "Configuration loaded."
    );
}

/// Where events go: CloudWatch under the instance ID (or host name), or nowhere when disabled.
fn reports(effective: &Effective) -> Result<Reports, Failure> {
    let config = &effective.config;
    if !config.cloudwatch.enabled {
        tracing::warn!("CloudWatch reporting is disabled (cloudwatch.enabled = false).");
        return Ok(Reports::new(None));
    }
    let stream = effective
        .instance_id
        .clone()
        .unwrap_or_else(crate::sysinfo::hostname);
    let mut settings = ReportSettings::new(stream);
    settings.readiness_group = config.cloudwatch.readiness_group.clone();
    settings.capture_group = config.cloudwatch.capture_group.clone();
    settings.readiness_message = config.cloudwatch.readiness_message.clone();
    settings.queue_capacity = config.cloudwatch.queue_capacity.get();
    settings.flush_timeout = config.cloudwatch.flush_timeout;
    // The configured names were checked with the configuration; this also checks the stream
    // (instance ID or host name) before anything is sent.
    settings
        .validate()
        .map_err(|e| Failure::new(Exit::Config, e))?;
    let client = crate::aws::cloudwatch_client(crate::aws::runtime()?);
    Ok(Reports::new(Some(Reporter::start(client, settings))))
}

/// The effective configuration and what it gives `watch` to do, or why they are refused.
fn accept(options: &LoadOptions) -> Result<(Effective, Assignment), Box<ConfigRefusal>> {
    let effective = config::load_salvaging(options)?;
    // Validation refuses a queue without a bucket (`typed::queue`).
    if let (Some(queue), Some(destination)) = (
        &effective.config.job.queue,
        &effective.config.job.destination,
    ) {
        let work = Assignment::Queue {
            queue: queue.clone(),
            destination: destination.clone(),
        };
        return Ok((effective, work));
    }
    match effective.require_job() {
        Ok(job) => Ok((effective, Assignment::Jobs(job))),
        Err(error) => {
            let mut partial = Layers::default();
            partial.apply(effective.settings);
            Err(Box::new(ConfigRefusal {
                error,
                partial,
                instance_id: effective.instance_id,
            }))
        }
    }
}
