//! The validated configuration: typed values that cannot hold a bad setting.
//!
//! `validate` is the only way from the raw tree to `Config`. Rules are the engine's own wherever
//! it has them (bucket names via `S3Url`, names via `SafeName`, volume IDs via `VolumeId`, hashes
//! via `HashAlgorithm`, read sizes via `PipelineConfig::validate`), so the daemon and `acquire`
//! accept exactly the same values.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use imaging::HashAlgorithm;
use imaging::PipelineConfig;
use imaging::S3Url;
use imaging::SafeName;
use imaging::SnapshotId;
use imaging::VolumeId;

use super::raw::{OnComplete, RawConfig, RawHashList, RawSize};
use super::settings::{self, Spec};

mod destinations;
mod queue;

pub use destinations::{CloudWatch, ObjectLock, S3};
pub use queue::QueueSection;

/// A key that failed validation and why; the loader adds where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `section.key`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn invalid(key: impl ToString, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// `value` of `spec`'s key if its range holds it.
fn within(spec: &Spec, value: u64) -> Result<u64, Invalid> {
    spec.check(value)
        .map_err(|e| invalid(format_args!("{}.{}", spec.section, spec.key), e))
}

/// As [`within`], as the non-zero type the typed configuration holds (such ranges start at 1).
fn nonzero<T: TryFrom<NonZeroU64>>(spec: &Spec, value: u64) -> Result<T, Invalid> {
    NonZeroU64::new(within(spec, value)?)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                format_args!("{}.{}", spec.section, spec.key),
                "must be at least 1",
            )
        })
}

/// An optional text key parsed by `parse`, whose error names `key`.
fn optional<T, E: Into<String>>(
    key: &str,
    value: Option<&String>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, Invalid> {
    value
        .map(|v| parse(v).map_err(|e| invalid(key, e)))
        .transpose()
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[job]`.
    pub job: JobSection,
    /// `[watch]`.
    pub watch: Watch,
    /// `[imaging]`: the engine's settings, validated by the engine.
    pub imaging: PipelineConfig,
    /// `[s3]`.
    pub s3: S3,
    /// `[cloudwatch]`.
    pub cloudwatch: CloudWatch,
    /// `[custody]`: the key that signs custody statements, when one is set (a KMS key ID, alias
    /// or ARN, checked by `ids::kms_key_id`).
    pub sign_kms_key_id: Option<String>,
    /// The tree it was validated from: what the daemon hands its children, who check it again
    /// (`config::flags::SettingFlags::of`).
    pub raw: RawConfig,
}

/// `[job]`: what this instance is for. Optional here; `JobContext` is the required form.
#[derive(Debug, Clone)]
pub struct JobSection {
    /// `s3://bucket/prefix`, when a bucket is set.
    pub destination: Option<S3Url>,
    /// Incident ID.
    pub incident_id: Option<SafeName>,
    /// The volume this job is about (a hint for detection and the manifest).
    pub source_volume_id: Option<VolumeId>,
    /// The snapshot `watch` images instead of waiting for attached disks.
    pub snapshot_id: Option<SnapshotId>,
    /// Who collects, recorded in the manifest.
    pub examiner: Option<String>,
    /// Stop after this many volumes.
    pub expected_volumes: Option<NonZeroU32>,
    /// Job-queue mode (`job.queue_url`): jobs come from the queue, not from this section.
    pub queue: Option<QueueSection>,
    /// `job.use_imds`, from the sources before user data (user data's is ignored); IMDS is also
    /// skipped when `AWS_EC2_METADATA_DISABLED=true` (`Effective::imds_skipped`). How long to wait
    /// for IMDS is no field here: it is used, and range-checked, before user data is read
    /// (`config::imds_wait`).
    pub use_imds: bool,
}

/// `[watch]`.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Root of the udev links (`/dev/disk`); a parameter so tests can point it elsewhere.
    pub disk_root: PathBuf,
    /// Quiet time after a link appears.
    pub settle: Duration,
    /// Disks imaged at once, 1..=8.
    pub concurrency: NonZeroUsize,
    /// How long to wait for a disk; `None` waits forever.
    pub idle_timeout: Option<Duration>,
    /// What to do when done.
    pub on_complete: OnComplete,
    /// Program and arguments run to power off (never empty).
    pub poweroff_command: Vec<String>,
}

/// Checks every key of `raw` and builds the typed configuration.
pub fn validate(raw: &RawConfig) -> Result<Config, Invalid> {
    // The daemon hands `raw` to its children as TOML values (`flags::SettingFlags::of`): a tree
    // that would not convert (a number past TOML's 64-bit signed range) is refused here, never
    // sent as something else.
    toml::Value::try_from(raw).map_err(|e| invalid("configuration", e.to_string()))?;
    Ok(Config {
        job: job(raw)?,
        watch: watch(raw)?,
        imaging: imaging(raw)?,
        s3: destinations::s3(raw)?,
        cloudwatch: destinations::cloudwatch(raw)?,
        sign_kms_key_id: optional(
            "custody.kms_key_id",
            raw.custody.kms_key_id.as_ref(),
            crate::ids::kms_key_id,
        )?,
        raw: raw.clone(),
    })
}

fn job(raw: &RawConfig) -> Result<JobSection, Invalid> {
    let job = &raw.job;
    // A prefix key may be written as a folder (`/forensics/`): one leading '/' is dropped here,
    // one trailing by `S3Url`. Any other empty segment (`//forensics`, `a//b`) is refused there.
    let prefix = job.prefix.strip_prefix('/').unwrap_or(&job.prefix);
    format!("s3://bucket-name/{prefix}")
        .parse::<S3Url>()
        .map_err(|e| invalid("job.prefix", e.to_string()))?;
    let destination = optional("job.bucket", job.bucket.as_ref(), |bucket| {
        if bucket.contains('/') {
            return Err("a bucket name has no '/' (put the rest in job.prefix)".to_owned());
        }
        format!("s3://{bucket}/{prefix}").parse::<S3Url>().map_err(|_| {
            format!("{bucket:?} is not an S3 bucket name: 3-63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit")
        })
    })?;
    let expected_volumes = job
        .expected_volumes
        .map(|n| {
            NonZeroU32::new(n).ok_or_else(|| {
                invalid(
                    "job.expected_volumes",
                    "must be at least 1 (leave it out to image every disk)",
                )
            })
        })
        .transpose()?;
    let snapshot_id = optional(
        "job.snapshot_id",
        job.snapshot_id.as_ref(),
        str::parse::<SnapshotId>,
    )?;
    // A snapshot job images that one snapshot and waits for no disk, so more volumes would never
    // come: refused rather than waited for.
    if snapshot_id.is_some() && expected_volumes.is_some_and(|n| n.get() > 1) {
        return Err(invalid(
            "job.expected_volumes",
            "a job with job.snapshot_id images that one snapshot; leave job.expected_volumes out or set it to 1",
        ));
    }
    Ok(JobSection {
        destination,
        incident_id: optional("job.incident_id", job.incident_id.as_ref(), |id| {
            SafeName::parse(id, "incident ID")
        })?,
        source_volume_id: optional(
            "job.source_volume_id",
            job.source_volume_id.as_ref(),
            str::parse::<VolumeId>,
        )?,
        snapshot_id,
        examiner: optional(
            "job.examiner",
            job.examiner.as_ref(),
            imaging::check_examiner,
        )?,
        expected_volumes,
        queue: queue::queue(raw)?,
        use_imds: job.use_imds,
    })
}

fn watch(raw: &RawConfig) -> Result<Watch, Invalid> {
    let w = &raw.watch;
    let disk_root = PathBuf::from(&w.disk_root);
    if !disk_root.is_absolute() {
        return Err(invalid(
            "watch.disk_root",
            format!("{:?} must be an absolute path", w.disk_root),
        ));
    }
    if w.poweroff_command
        .first()
        .is_none_or(|p| p.trim().is_empty())
    {
        return Err(invalid(
            "watch.poweroff_command",
            "must name a program, e.g. [\"systemctl\", \"poweroff\"]",
        ));
    }
    let idle_timeout_secs = within(&settings::IDLE_TIMEOUT_SECS, w.idle_timeout_secs)?;
    Ok(Watch {
        poweroff_command: w.poweroff_command.clone(),
        disk_root,
        settle: Duration::from_millis(within(&settings::SETTLE_MS, w.settle_ms)?),
        concurrency: nonzero(&settings::CONCURRENCY, w.concurrency.into())?,
        idle_timeout: (idle_timeout_secs > 0).then(|| Duration::from_secs(idle_timeout_secs)),
        on_complete: w.on_complete,
    })
}

/// Parses a size key: an integer of bytes or size text, refusing one that does not fit 64 bits
/// (`settings::size`, the parser of the size flags too).
fn size(key: &str, raw: &RawSize) -> Result<u64, Invalid> {
    match raw {
        RawSize::Bytes(n) => Ok(*n),
        RawSize::Text(text) => settings::size::parse_size(text.trim()).map_err(|e| invalid(key, e)),
    }
}

/// `[imaging]`: read as the engine's settings, and checked by the engine.
fn imaging(raw: &RawConfig) -> Result<PipelineConfig, Invalid> {
    let i = &raw.imaging;
    let list = match &i.hashes {
        RawHashList::List(names) => names.join(","),
        RawHashList::Csv(text) => text.clone(),
    };
    let algorithms =
        HashAlgorithm::parse_list(&list).map_err(|e| invalid("imaging.hashes", e.to_string()))?;
    let chunk_size = size("imaging.chunk_size", &i.chunk_size)?;
    let chunk_size = usize::try_from(chunk_size)
        .map_err(|_| invalid("imaging.chunk_size", format!("{chunk_size} is too large")))?;
    let piece_size = size("imaging.piece_size", &i.piece_size)?;
    let piece_algorithm = HashAlgorithm::parse_piece(&i.piece_hash)
        .map_err(|e| invalid("imaging.piece_hash", e.to_string()))?;
    let queue_depth =
        usize::try_from(i.queue_depth).map_err(|_| invalid("imaging.queue_depth", "too large"))?;
    let blocks_in_flight = usize::try_from(i.blocks_in_flight)
        .map_err(|_| invalid("imaging.blocks_in_flight", "too large"))?;
    let config = PipelineConfig {
        chunk_size,
        queue_depth,
        blocks_in_flight,
        algorithms,
        piece_size: Some(piece_size).filter(|&p| p > 0),
        piece_algorithm,
        sector_retries: i.sector_retries,
    };
    engine_checks(&config)?;
    Ok(config)
}

/// The engine's own check, first of each value alone (over the engine's defaults) so the error can
/// name the key, then of the combination: the read-buffer pool, chunk size × queue depth.
fn engine_checks(config: &PipelineConfig) -> Result<(), Invalid> {
    let check = |key: &'static str, config: PipelineConfig| {
        config
            .validate_new_evidence()
            .map_err(|e| invalid(key, e.to_string()))
    };
    let base = PipelineConfig::default();
    let alone: [(&'static str, PipelineConfig); 5] = [
        (
            "imaging.chunk_size",
            PipelineConfig {
                chunk_size: config.chunk_size,
                queue_depth: 1,
                ..base.clone()
            },
        ),
        (
            "imaging.queue_depth",
            PipelineConfig {
                queue_depth: config.queue_depth,
                chunk_size: imaging::PipelineConfig::MIN_CHUNK_SIZE,
                ..base.clone()
            },
        ),
        (
            "imaging.blocks_in_flight",
            PipelineConfig {
                blocks_in_flight: config.blocks_in_flight,
                ..base.clone()
            },
        ),
        (
            "imaging.piece_size",
            PipelineConfig {
                piece_size: config.piece_size,
                ..base.clone()
            },
        ),
        (
            "imaging.sector_retries",
            PipelineConfig {
                sector_retries: config.sector_retries,
                ..base.clone()
            },
        ),
    ];
    for (key, alone) in alone {
        check(key, alone)?;
    }
    check("imaging.chunk_size", config.clone())
}

#[cfg(test)]
mod tests;
