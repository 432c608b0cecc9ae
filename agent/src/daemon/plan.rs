//! What the daemon was told to do, resolved once from the effective configuration: what it images
//! (attached disks, with the watcher's settings, or the job's one snapshot), the job rules, and the
//! acquisition job every child gets.

use std::path::PathBuf;
use std::time::Duration;

use imaging::S3Url;
use imaging::SafeName;
use imaging::SnapshotId;
use imaging::VolumeId;

use super::jobs::{Job, JobSource};
use crate::cli::AcquireArgs;
use crate::config::flags::SettingFlags;
use crate::config::raw::OnComplete;
use crate::config::{Config, JobContext};
use crate::detect::{AttachedDisk, WatchSettings};

/// What the daemon images.
#[derive(Debug, Clone)]
pub enum Work {
    /// Every disk attached while it watches, found by the device watcher with these settings.
    AttachedDisks(WatchSettings),
    /// The job's EBS snapshot (`job.snapshot_id`), read through the EBS direct APIs: one job, no
    /// disk awaited, no watcher armed.
    Snapshot(SnapshotId),
}

/// Everything the daemon loop needs.
#[derive(Debug, Clone)]
pub struct DaemonPlan {
    /// This binary, run once per job as `run-job` (an `acquire` whose job arrives on stdin).
    pub program: PathBuf,
    /// What it images.
    pub work: Work,
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
    /// job, as the flow we follow does (`IMAGE_NAME`); a snapshot job records it as the volume its
    /// snapshot copies, and is named after the snapshot.
    pub source_volume_id: Option<VolumeId>,
    /// The acquisition every child gets, before its device and name are filled in.
    template: AcquireArgs,
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
        let work = match &job.snapshot_id {
            Some(snapshot) => Work::Snapshot(snapshot.clone()),
            None => Work::AttachedDisks(WatchSettings {
                disk_root: config.watch.disk_root.clone(),
                settle_quiet: config.watch.settle,
                ..WatchSettings::default()
            }),
        };
        Self {
            program,
            work,
            concurrency: config.watch.concurrency.get(),
            expected_volumes: config.job.expected_volumes.map(|n| n.get()),
            idle_timeout: config.watch.idle_timeout,
            on_complete: config.watch.on_complete,
            flush_timeout: config.cloudwatch.flush_timeout,
            poweroff_command: config.watch.poweroff_command.clone(),
            destination: job.destination.clone(),
            incident: job.incident_id.clone(),
            source_volume_id: job.source_volume_id.clone(),
            template: template(config, job, instance_id),
            s3: config.s3.clone(),
        }
    }

    /// The plan whose children record `origins` (`section.key` → where its value came from, as
    /// `config::origins_of` gives them) in their manifests' custody section.
    #[must_use]
    pub fn with_origins(mut self, origins: std::collections::BTreeMap<String, String>) -> Self {
        self.template.setting_origins = origins;
        self
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

    /// The job that images the plan's snapshot, named after it, when the plan is a snapshot's.
    pub fn snapshot_job(&self) -> Option<(JobSource, String)> {
        match &self.work {
            Work::Snapshot(id) => Some((JobSource::Snapshot(id.clone()), id.to_string())),
            Work::AttachedDisks(_) => None,
        }
    }

    /// The acquisition `job` is: the template with its source, name, source volume and
    /// retention filled in. Sent to the child as JSON (`run-job`), not re-spelt as flags.
    pub fn child_job(&self, job: &Job) -> AcquireArgs {
        let mut args = self.template.clone();
        args.source = job.source.path();
        args.name = Some(job.name.clone());
        args.detected_at = Some(job.detected_at);
        // The job context's source volume belongs to the disk named after it (a single-volume
        // job); other disks of a multi-volume job are not copies of it. A snapshot job's
        // snapshot is a copy of the volume the launcher named, if it named one.
        args.source_volume_id = self
            .source_volume_id
            .as_ref()
            .filter(|source| {
                matches!(job.source, JobSource::Snapshot(_)) || job.name == source.as_str()
            })
            .map(ToString::to_string);
        // Retention is "days from the upload": counted when the job starts, not when the daemon
        // did (it may wait hours for the disk).
        if let Some(retention) = self.s3.retention(chrono::Utc::now()) {
            args.object_lock_mode = Some(retention.mode.as_str().to_owned());
            args.object_lock_retain_until = Some(
                retention
                    .retain_until
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        args
    }
}

/// What every child gets, from the checked configuration: destination, case, every setting that
/// `acquire` takes as a flag (all of them, from the configuration as validated), and the
/// machine-readable result the daemon reads. Every other field is named, so a new `acquire` option
/// does not compile until the daemon says what its children get.
fn template(config: &Config, job: &JobContext, instance_id: Option<String>) -> AcquireArgs {
    AcquireArgs {
        source: PathBuf::new(),
        out: PathBuf::new(),
        dest: Some(job.destination.to_string()),
        name: None,
        new_capture: false,
        incident: Some(job.incident_id.to_string()),
        examiner: config.job.examiner.clone(),
        no_kernel_read_only: false,
        progress_interval: config.cloudwatch.progress_interval.as_secs().max(1),
        source_volume_id: None,
        instance_id,
        result_json: true,
        task_token: None,
        object_lock_mode: None,
        object_lock_retain_until: None,
        settings: SettingFlags::of(&config.raw),
        detected_at: None,
        setting_origins: std::collections::BTreeMap::new(),
    }
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
            snapshot_id: None,
        };
        let mut plan = DaemonPlan::new(PathBuf::from("/usr/bin/fc"), &config, &job, None);
        plan.expected_volumes = expected;
        plan
    }

    fn disk(volume: Option<&str>, label: Option<&str>) -> AttachedDisk {
        AttachedDisk {
            device: PathBuf::from("/dev/nvme1n1"),
            dev: imaging::DeviceNumber::new(259, 1),
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
            source: JobSource::Disk(attached.clone()),
            name,
            state: super::super::jobs::JobState::Queued,
            detected_at: chrono::Utc::now(),
        };
        let named = plan.child_job(&job(plan.evidence_name(&attached, 0)));
        assert_eq!(named.source, PathBuf::from("/dev/nvme1n1"));
        assert_eq!(named.name.as_deref(), Some("vol-0123456789abcdef0"));
        assert_eq!(named.dest.as_deref(), Some("s3://evidence-bucket/cases"));
        assert!(named.result_json);
        assert_eq!(
            named.source_volume_id.as_deref(),
            Some("vol-0123456789abcdef0")
        );
        let other = plan.child_job(&job("vol-0aaaaaaaaaaaaaaaa".into()));
        assert_eq!(other.source_volume_id, None);
    }

    const VOLUME: &str = "vol-0123456789abcdef0";

    /// The plan for `raw`: a single-volume job, about `source` when the context names it, and
    /// about the snapshot `raw` names, if it names one.
    fn plan_of(raw: &RawConfig, source: Option<&str>, instance: Option<&str>) -> DaemonPlan {
        let config = crate::config::typed::validate(raw).unwrap();
        let context = JobContext {
            destination: "s3://evidence-bucket/cases".parse().unwrap(),
            incident_id: SafeName::parse("IR-1", "incident").unwrap(),
            source_volume_id: source.and_then(VolumeId::from_serial_or_id),
            snapshot_id: config.job.snapshot_id.clone(),
        };
        DaemonPlan::new(
            "/usr/bin/fc".into(),
            &config,
            &context,
            instance.map(str::to_owned),
        )
    }

    /// The child job of the disk named after `VOLUME`.
    fn child_of(plan: &DaemonPlan) -> AcquireArgs {
        plan.child_job(&Job {
            index: 0,
            source: JobSource::Disk(disk(None, None)),
            name: VOLUME.into(),
            state: super::super::jobs::JobState::Queued,
            detected_at: chrono::Utc::now(),
        })
    }

    /// Every configuration key that reaches a child, set to a value that is not its default.
    fn nothing_default() -> RawConfig {
        use crate::config::raw::{RawHashList, RawSize};
        let size = |text: &str| RawSize::Text(text.into());
        let mut raw = RawConfig::default();
        raw.job.examiner = Some("J. Doe".into());
        raw.imaging.hashes = RawHashList::List(vec!["sha256".into(), "md5".into(), "sha1".into()]);
        raw.imaging.piece_size = size("2GiB");
        raw.imaging.piece_hash = "sha256".into();
        raw.imaging.chunk_size = size("2MiB");
        raw.imaging.queue_depth = 8;
        raw.imaging.blocks_in_flight = 9;
        raw.imaging.sector_retries = 5;
        raw.s3.force_path_style = true;
        raw.s3.part_size = size("16MiB");
        raw.s3.parts_in_flight = Some(3);
        raw.s3.part_memory = size("256MiB");
        raw.s3.max_object_size = size("1TiB");
        raw.s3.max_attempts = 7;
        raw.s3.sse_kms_key_id = Some("alias/evidence".into());
        raw.s3.expected_bucket_owner = Some("111122223333".into());
        raw.s3.object_lock_mode = Some("GOVERNANCE".into());
        raw.s3.object_lock_retain_days = Some(30);
        raw.s3.legal_hold = true;
        raw.s3.require_object_lock = true;
        raw.cloudwatch.progress_interval_secs = 45;
        raw.custody.kms_key_id = Some("alias/custody".into());
        raw
    }

    /// Each leaf of `value` as `path = value`.
    fn leaves(value: &serde_json::Value, path: &str, out: &mut Vec<(String, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    leaves(inner, &format!("{path}.{key}"), out);
                }
            }
            leaf => out.push((path.to_owned(), leaf.clone())),
        }
    }

    // Issue 10: the job the daemon serialises for a child is what `acquire` parses from the same
    // choices, with every setting that reaches the child away from its default (so a template
    // that dropped one, or hard-coded its default, fails), and it survives JSON.
    #[test]
    fn the_daemons_child_job_is_acquire_with_the_configured_values() {
        let started = chrono::Utc::now();
        let child = child_of(&plan_of(
            &nothing_default(),
            Some(VOLUME),
            Some("i-0123456789abcdef0"),
        ));
        let ended = chrono::Utc::now();

        // Every field of the child job differs from the job a daemon with the default
        // configuration and no job context source volume or instance ID gives the same disk,
        // except those the daemon fixes for every child whatever the configuration says.
        let fixed = [
            ".source",
            ".out",
            ".dest",
            ".incident",
            ".name",
            ".new_capture",
            ".no_kernel_read_only",
            ".result_json",
            // A daemon's child answers no task itself: the queue worker does.
            ".task_token",
        ];
        let mut configured = Vec::new();
        leaves(&serde_json::to_value(&child).unwrap(), "", &mut configured);
        let mut default = Vec::new();
        leaves(
            &serde_json::to_value(child_of(&plan_of(&RawConfig::default(), None, None))).unwrap(),
            "",
            &mut default,
        );
        let default: std::collections::BTreeMap<_, _> = default.into_iter().collect();
        // The settings are the configuration's by construction (`SettingFlags::of`): checked
        // below against the configuration itself rather than against their defaults.
        for (path, value) in configured
            .iter()
            .filter(|(p, _)| !p.starts_with(".settings."))
        {
            if fixed.contains(&path.as_str()) {
                assert_eq!(Some(value), default.get(path), "{path} is the daemon's");
            } else {
                assert_ne!(
                    Some(value),
                    default.get(path),
                    "{path} is still its default in this test"
                );
            }
        }
        // Every setting `acquire` takes as a flag reaches the child, and the child reads the
        // daemon's own settings from them (retention aside: a child gets a date, counted above).
        let config = crate::config::typed::validate(&nothing_default()).unwrap();
        let (_, child_settings) = child.checked().expect("the child's job passes the check");
        assert_eq!(
            format!("{:?}", child_settings.imaging),
            format!("{:?}", config.imaging)
        );
        let without_retention = |s3: &crate::config::typed::S3| crate::config::typed::S3 {
            object_lock: None,
            ..s3.clone()
        };
        assert_eq!(
            format!("{:?}", without_retention(&child_settings.s3)),
            format!("{:?}", without_retention(&config.s3))
        );
        for spec in crate::config::settings::ALL
            .iter()
            .filter(|s| s.flag.is_some())
        {
            let path = format!(".settings.{}.{}", spec.section, spec.key);
            assert!(
                configured.iter().any(|(p, _)| *p == path),
                "{path} is not in the child's job"
            );
        }

        // Retention runs from the job's start; the rest is what the flags say.
        let until = child.object_lock_retain_until.clone().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&until).unwrap();
        let days = chrono::Days::new(30);
        let second = chrono::Duration::seconds(1);
        assert!(
            at >= started + days - second && at <= ended + days,
            "{until}"
        );
        let mut parsed = crate::cli::tests::parsed_argv(&[
            "/dev/nvme1n1",
            "--name",
            VOLUME,
            "--dest",
            "s3://evidence-bucket/cases",
            "--incident",
            "IR-1",
            "--examiner",
            "J. Doe",
            "--hash",
            "sha256,md5,sha1",
            "--piece-size",
            "2GiB",
            "--piece-hash",
            "sha256",
            "--chunk-size",
            "2MiB",
            "--queue-depth",
            "8",
            "--blocks-in-flight",
            "9",
            "--sector-retries",
            "5",
            "--s3-force-path-style",
            "--part-size",
            "16MiB",
            "--parts-in-flight",
            "3",
            "--part-memory",
            "256MiB",
            "--max-object-size",
            "1TiB",
            "--s3-max-attempts",
            "7",
            "--sse-kms-key-id",
            "alias/evidence",
            "--expected-bucket-owner",
            "111122223333",
            "--object-lock-mode",
            "GOVERNANCE",
            "--object-lock-retain-until",
            &until,
            "--legal-hold",
            "--require-object-lock",
            "--progress-interval",
            "45",
            "--source-volume-id",
            VOLUME,
            "--instance-id",
            "i-0123456789abcdef0",
            "--result-json",
        ])
        .unwrap();
        // Local output does not apply to an S3 job.
        parsed.out = std::path::PathBuf::new();
        // The settings are the same values, whichever way they are spelt.
        let (from_flags, flag_settings) = parsed.checked().unwrap();
        let (checked, child_settings) = child.checked().expect("the child's job passes the check");
        assert_eq!(checked, child);
        assert_eq!(
            AcquireArgs {
                settings: child.settings.clone(),
                detected_at: child.detected_at,
                ..from_flags
            },
            child
        );
        assert_eq!(
            format!("{:?}", child_settings.imaging),
            format!("{:?}", flag_settings.imaging)
        );
        assert_eq!(
            format!("{:?}", child_settings.s3),
            format!("{:?}", flag_settings.s3)
        );
        let json = serde_json::to_vec(&child).unwrap();
        let back = crate::cmd::acquire::read_job(json.as_slice()).unwrap();
        assert_eq!(back, child);
    }

    const SNAPSHOT: &str = "snap-0123456789abcdef0";

    // Issue 13: a job naming a snapshot images it: no watcher, one child job reading
    // `ebs-snapshot://…`, named after the snapshot, with what every child gets.
    #[test]
    fn a_job_naming_a_snapshot_plans_one_snapshot_job_and_no_watcher() {
        let mut raw = nothing_default();
        raw.job.snapshot_id = Some(SNAPSHOT.into());
        let plan = plan_of(&raw, Some(VOLUME), Some("i-0123456789abcdef0"));
        assert!(
            matches!(&plan.work, Work::Snapshot(id) if id.as_str() == SNAPSHOT),
            "{:?}",
            plan.work
        );
        let (source, name) = plan.snapshot_job().expect("a snapshot job");
        assert_eq!(name, SNAPSHOT);
        let child = plan.child_job(&Job {
            index: 0,
            source,
            name,
            state: super::super::jobs::JobState::Queued,
            detected_at: chrono::Utc::now(),
        });
        // As written: a path comparison would take `ebs-snapshot:/snap-…` for the same.
        assert_eq!(
            child.source.to_str(),
            Some("ebs-snapshot://snap-0123456789abcdef0")
        );
        assert_eq!(child.name.as_deref(), Some(SNAPSHOT));
        assert_eq!(child.dest.as_deref(), Some("s3://evidence-bucket/cases"));
        assert_eq!(child.incident.as_deref(), Some("IR-1"));
        assert!(child.result_json);
        // The snapshot is a copy of the volume the launcher named.
        assert_eq!(child.source_volume_id.as_deref(), Some(VOLUME));
        // Everything else is what a disk's child gets from the same configuration.
        let disk_child = child_of(&plan);
        assert_eq!(
            AcquireArgs {
                source: disk_child.source.clone(),
                name: disk_child.name.clone(),
                detected_at: disk_child.detected_at,
                ..child.clone()
            },
            disk_child
        );
        assert_eq!(child.checked().map(|(args, _)| args), Ok(child.clone()));
        let json = serde_json::to_vec(&child).unwrap();
        let back = crate::cmd::acquire::read_job(json.as_slice()).unwrap();
        assert_eq!(back, child);
        assert_eq!(back.source.to_str(), child.source.to_str());
    }

    #[test]
    fn without_a_snapshot_the_daemon_watches_the_configured_disk_root() {
        let mut raw = RawConfig::default();
        raw.watch.disk_root = "/run/test-disks".into();
        raw.watch.settle_ms = 700;
        let plan = plan_of(&raw, None, None);
        let Work::AttachedDisks(watch) = &plan.work else {
            panic!("{:?}", plan.work);
        };
        assert_eq!(watch.disk_root, PathBuf::from("/run/test-disks"));
        assert_eq!(watch.settle_quiet, std::time::Duration::from_millis(700));
        assert!(plan.snapshot_job().is_none());
    }
}
