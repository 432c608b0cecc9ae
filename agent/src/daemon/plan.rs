//! What the daemon was told to do, resolved once from the effective configuration: the watcher's
//! settings, the job rules, and the `acquire` arguments every child gets.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use imaging::identity::VolumeId;
use imaging::naming::SafeName;
use imaging::sink::s3::S3Url;

use super::jobs::Job;
use crate::config::raw::OnComplete;
use crate::config::{Config, JobContext};
use crate::detect::{AttachedDisk, WatchSettings};

/// Everything the daemon loop needs.
#[derive(Debug, Clone)]
pub struct DaemonPlan {
    /// This binary, run once per job as `acquire`.
    pub program: PathBuf,
    /// Device watcher settings.
    pub watch: WatchSettings,
    /// Disks imaged at once.
    pub concurrency: usize,
    /// Stop once this many volumes are imaged.
    pub expected_volumes: Option<u32>,
    /// Stop after this long without a new disk or a job ending.
    pub idle_timeout: Option<Duration>,
    /// What to do when done.
    pub on_complete: OnComplete,
    /// Time allowed for the last reports.
    pub flush_timeout: Duration,
    /// Command run for `on_complete = "poweroff"`.
    pub poweroff_command: Vec<String>,
    /// Where evidence goes.
    pub destination: S3Url,
    /// Incident ID (part of every key).
    pub incident: SafeName,
    /// The suspect's original volume, from the job context: names the evidence of a single-volume
    /// job, as the flow we follow does (`IMAGE_NAME`).
    pub source_volume_id: Option<VolumeId>,
    /// Arguments every child gets after `acquire SOURCE`.
    common_args: Vec<OsString>,
    /// S3 settings, for what is counted per job (Object Lock retention runs from the upload).
    s3: crate::config::typed::S3,
}

impl DaemonPlan {
    /// Resolves the plan from the validated configuration and its job context.
    pub fn new(
        program: PathBuf,
        config: &Config,
        job: &JobContext,
        instance_id: Option<String>,
    ) -> Self {
        let mut watch = WatchSettings {
            disk_root: config.watch.disk_root.clone(),
            ..WatchSettings::default()
        };
        watch.settle_quiet = config.watch.settle;
        Self {
            program,
            watch,
            concurrency: config.watch.concurrency.get(),
            expected_volumes: config.job.expected_volumes.map(|n| n.get()),
            idle_timeout: config.watch.idle_timeout,
            on_complete: config.watch.on_complete,
            flush_timeout: config.cloudwatch.flush_timeout,
            poweroff_command: config.watch.poweroff_command.clone(),
            destination: job.destination.clone(),
            incident: job.incident_id.clone(),
            source_volume_id: job.source_volume_id.clone(),
            common_args: common_args(config, job, instance_id.as_deref()),
            s3: config.s3.clone(),
        }
    }

    /// `s3://bucket/prefix/<incident>/disk_evidence/`, for events.
    pub fn destination_text(&self) -> String {
        let key = self
            .destination
            .key(&format!("{}/disk_evidence/", self.incident));
        format!("s3://{}/{key}", self.destination.bucket())
    }

    /// The evidence name of the `ordinal`-th disk (0-based): the source volume ID from the job
    /// context for the first disk of a single-volume job, else the attached volume's ID, else its
    /// label or device name, made unique with the ordinal when it is neither.
    pub fn evidence_name(&self, disk: &AttachedDisk, ordinal: usize) -> String {
        let single = self.expected_volumes.is_none_or(|n| n <= 1);
        if let Some(source) = &self.source_volume_id
            && single
            && ordinal == 0
        {
            return source.to_string();
        }
        if let Some(volume) = &disk.volume_id {
            return volume.to_string();
        }
        let base = disk
            .label
            .clone()
            .or_else(|| {
                disk.device
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .and_then(|n| SafeName::sanitise(&n))
            .map_or_else(|| "disk".to_owned(), |n| n.to_string());
        format!("{base}-{}", ordinal + 1)
    }

    /// `acquire DEVICE --name NAME …` for `job`.
    pub fn child_args(&self, job: &Job) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "acquire".into(),
            job.disk.device.clone().into_os_string(),
            "--name".into(),
            job.name.clone().into(),
        ];
        // The job context's source volume belongs to the disk named after it (a single-volume
        // job); other disks of a multi-volume job are not copies of it.
        if let Some(source) = &self.source_volume_id
            && job.name == source.as_str()
        {
            args.extend(["--source-volume-id".into(), source.to_string().into()]);
        }
        // Retention is "days from the upload": counted when the job starts, not when the daemon
        // did (it may wait hours for the disk).
        if let Some(retention) = self.s3.options(chrono::Utc::now()).retention {
            args.extend([
                "--object-lock-mode".into(),
                retention.mode.as_str().to_lowercase().into(),
                "--object-lock-retain-until".into(),
                retention
                    .retain_until
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .into(),
            ]);
        }
        args.extend(self.common_args.iter().cloned());
        args
    }
}

/// The `acquire` arguments that carry the configuration: destination, imaging and S3 settings, and
/// the machine-readable output the daemon reads.
fn common_args(config: &Config, job: &JobContext, instance_id: Option<&str>) -> Vec<OsString> {
    let mut args: Vec<String> = vec![
        "--dest".into(),
        job.destination.to_string(),
        "--incident".into(),
        job.incident_id.to_string(),
        "--json".into(),
        "--result-json".into(),
        "--progress-interval".into(),
        config
            .cloudwatch
            .progress_interval
            .as_secs()
            .max(1)
            .to_string(),
    ];
    let imaging = &config.imaging;
    let hashes: Vec<&str> = imaging.algorithms.iter().map(|a| a.name()).collect();
    args.extend([
        "--hash".into(),
        hashes.join(","),
        "--piece-size".into(),
        imaging.piece_size.unwrap_or(0).to_string(),
        "--chunk-size".into(),
        imaging.chunk_size.to_string(),
        "--queue-depth".into(),
        imaging.queue_depth.to_string(),
        "--sector-retries".into(),
        imaging.sector_retries.to_string(),
    ]);
    let s3 = &config.s3;
    args.extend([
        "--part-size".into(),
        s3.min_part_size.to_string(),
        "--parts-in-flight".into(),
        s3.parts_in_flight.to_string(),
        "--part-memory".into(),
        s3.part_memory.to_string(),
        "--max-object-size".into(),
        s3.max_object_size.to_string(),
        "--s3-max-attempts".into(),
        s3.max_attempts.to_string(),
    ]);
    if s3.force_path_style {
        args.push("--s3-force-path-style".into());
    }
    if let Some(key) = &s3.sse_kms_key_id {
        args.extend(["--sse-kms-key-id".into(), key.clone()]);
    }
    if let Some(owner) = &s3.expected_bucket_owner {
        args.extend(["--expected-bucket-owner".into(), owner.clone()]);
    }
    if s3.legal_hold {
        args.push("--legal-hold".into());
    }
    if s3.require_object_lock {
        args.push("--require-object-lock".into());
    }
    if let Some(instance) = instance_id {
        args.extend(["--instance-id".into(), instance.to_owned()]);
    }
    args.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use super::*;
    use crate::config::raw::RawConfig;
    use crate::config::typed::{Config, validate};

    fn plan(expected: Option<u32>, source: Option<&str>) -> DaemonPlan {
        let config: Config = validate(&RawConfig::default()).expect("defaults are valid");
        let job = JobContext {
            destination: "s3://evidence-bucket/cases".parse().unwrap(),
            incident_id: SafeName::parse("IR-1", "incident").unwrap(),
            source_volume_id: source.and_then(VolumeId::from_serial_or_id),
        };
        let mut plan = DaemonPlan::new(PathBuf::from("/usr/bin/fc"), &config, &job, None);
        plan.expected_volumes = expected;
        plan
    }

    fn disk(volume: Option<&str>, label: Option<&str>) -> AttachedDisk {
        AttachedDisk {
            device: PathBuf::from("/dev/nvme1n1"),
            dev: (259, 1),
            links: Vec::new(),
            label: label.map(str::to_owned),
            volume_id: volume.and_then(VolumeId::from_serial_or_id),
            size: 1 << 30,
            first_seen: Instant::now(),
        }
    }

    #[test]
    fn evidence_is_named_after_the_source_volume_only_for_a_single_volume_job() {
        let attached = disk(Some("vol0aaaaaaaaaaaaaaaa"), None);
        let single = plan(Some(1), Some("vol-0123456789abcdef0"));
        assert_eq!(single.evidence_name(&attached, 0), "vol-0123456789abcdef0");
        assert_eq!(single.evidence_name(&attached, 1), "vol-0aaaaaaaaaaaaaaaa");
        let several = plan(Some(2), Some("vol-0123456789abcdef0"));
        assert_eq!(several.evidence_name(&attached, 0), "vol-0aaaaaaaaaaaaaaaa");
        let unnamed = plan(None, None);
        assert_eq!(
            unnamed.evidence_name(&disk(None, Some("DATA 1")), 2),
            "DATA_1-3"
        );
        assert_eq!(unnamed.evidence_name(&disk(None, None), 0), "nvme1n1-1");
    }

    #[test]
    fn children_get_the_destination_and_the_source_volume_only_when_named_after_it() {
        let plan = plan(Some(1), Some("vol-0123456789abcdef0"));
        let attached = disk(Some("vol0aaaaaaaaaaaaaaaa"), None);
        let job = |name: String| Job {
            index: 0,
            disk: attached.clone(),
            name,
            state: super::super::jobs::JobState::Queued,
        };
        let args = |job: &Job| -> Vec<String> {
            plan.child_args(job)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let named = args(&job(plan.evidence_name(&attached, 0)));
        assert_eq!(
            named[..4],
            ["acquire", "/dev/nvme1n1", "--name", "vol-0123456789abcdef0"]
        );
        let at = named.iter().position(|a| a == "--dest").unwrap();
        assert_eq!(named[at + 1], "s3://evidence-bucket/cases");
        assert!(named.iter().any(|a| a == "--result-json"));
        assert!(named.iter().any(|a| a == "--source-volume-id"));
        let other = args(&job("vol-0aaaaaaaaaaaaaaaa".into()));
        assert!(!other.iter().any(|a| a == "--source-volume-id"));
    }
}
