//! The configuration as written: one serde struct tree with every key and its built-in default.
//!
//! Nothing here is trusted. `deny_unknown_fields` turns a typo into an error instead of a setting
//! that silently does nothing; values are checked afterwards by `validate` into the typed `Config`.
//! The defaults live only here (`Default` impls), so the example file, the docs and the
//! `config check` output all show the same numbers.

use crate::cloudwatch;
use serde::{Deserialize, Serialize};

/// Section names, in the order `config check` prints them.
pub const SECTIONS: [&str; 5] = ["job", "watch", "imaging", "s3", "cloudwatch"];

/// Keys of `[job]`: user data may give them at top level, without the table.
pub const JOB_KEYS: [&str; 6] = [
    "bucket",
    "prefix",
    "incident_id",
    "source_volume_id",
    "expected_volumes",
    "use_imds",
];

/// The whole file (or any layer of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[job]`: what to image and where it goes.
    pub job: RawJob,
    /// `[watch]`: how the daemon detects disks.
    pub watch: RawWatch,
    /// `[imaging]`: reading and hashing.
    pub imaging: RawImaging,
    /// `[s3]`: the evidence bucket.
    pub s3: RawS3,
    /// `[cloudwatch]`: readiness and progress reports.
    pub cloudwatch: RawCloudWatch,
}

/// `[job]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJob {
    /// Evidence bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Incident ID: part of every key and recorded in the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The EBS volume this job is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_volume_id: Option<String>,
    /// Stop after this many volumes are imaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_volumes: Option<u32>,
    /// Read the job context from EC2 user data.
    pub use_imds: bool,
}

impl Default for RawJob {
    fn default() -> Self {
        Self {
            bucket: None,
            prefix: String::new(),
            incident_id: None,
            source_volume_id: None,
            expected_volumes: None,
            use_imds: true,
        }
    }
}

/// What the daemon does once the expected volumes are imaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnComplete {
    /// Power the instance off: the collector is single-use, and a stopped instance costs nothing.
    Poweroff,
    /// Exit the process (systemd decides what follows).
    Exit,
    /// Keep watching for more disks.
    Stay,
}

impl OnComplete {
    /// The configuration's spelling, for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            OnComplete::Poweroff => "poweroff",
            OnComplete::Exit => "exit",
            OnComplete::Stay => "stay",
        }
    }
}

/// `[watch]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWatch {
    /// Where udev publishes disk links.
    pub disk_root: String,
    /// Quiet time after a link appears before the disk is examined.
    pub settle_ms: u64,
    /// Disks imaged at once.
    pub concurrency: u32,
    /// Seconds to wait for a disk; 0 waits forever.
    pub idle_timeout_secs: u64,
    /// What to do when done.
    pub on_complete: OnComplete,
    /// The command `on_complete = "poweroff"` runs.
    pub poweroff_command: Vec<String>,
}

impl Default for RawWatch {
    fn default() -> Self {
        Self {
            disk_root: "/dev/disk".into(),
            // udev creates by-id, by-path and by-label links one after another; 300 ms covers the
            // burst on a Nitro instance without delaying the job noticeably.
            settle_ms: 300,
            // One disk at a time: EBS throughput is per instance, so parallel reads mostly compete.
            concurrency: 1,
            idle_timeout_secs: 0,
            on_complete: OnComplete::Poweroff,
            // Through systemd, so units stop in order and the journal is flushed first.
            poweroff_command: vec!["systemctl".into(), "poweroff".into()],
        }
    }
}

/// A byte size: `"1GiB"`, `"0"`, or a plain integer of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    /// Bytes.
    Bytes(u64),
    /// Text for `bytesize` (`1GiB`, `8 MiB`).
    Text(String),
}

/// A list of hash names: `["sha256", "blake3"]` or `"sha256,blake3"` (handy in env variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawHashList {
    /// A TOML or JSON array.
    List(Vec<String>),
    /// Comma-separated.
    Csv(String),
}

/// `[imaging]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawImaging {
    /// Whole-image hashes.
    pub hashes: RawHashList,
    /// Piecewise SHA-256 size; 0 turns it off.
    pub piece_size: RawSize,
    /// Bytes per read.
    pub chunk_size: RawSize,
    /// Reads in flight.
    pub queue_depth: u32,
    /// Extra attempts per unreadable sector.
    pub sector_retries: u32,
}

impl Default for RawImaging {
    fn default() -> Self {
        Self {
            hashes: RawHashList::List(vec!["sha256".into(), "blake3".into()]),
            piece_size: RawSize::Text("1GiB".into()),
            chunk_size: RawSize::Text("1MiB".into()),
            // The engine's defaults, with their reasons, are in imaging::pipeline.
            queue_depth: u32::try_from(imaging::pipeline::DEFAULT_QUEUE_DEPTH).unwrap_or(32),
            sector_retries: imaging::pipeline::DEFAULT_SECTOR_RETRIES,
        }
    }
}

/// `[s3]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawS3 {
    /// Path-style addressing for S3-compatible servers.
    pub force_path_style: bool,
    /// Smallest multipart part; 0 = automatic.
    pub part_size: RawSize,
    /// Parts uploading at once.
    pub parts_in_flight: u32,
    /// Memory for part buffers; caps the part size.
    pub part_memory: RawSize,
    /// Largest object; bigger images become numbered segments.
    pub max_object_size: RawSize,
    /// Attempts per request.
    pub max_attempts: u32,
    /// SSE-KMS key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// Account that must own the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    /// `GOVERNANCE` or `COMPLIANCE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<String>,
    /// Retention in days from the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock_retain_days: Option<u32>,
    /// Legal hold on every object.
    pub legal_hold: bool,
    /// Refuse a bucket without Object Lock.
    pub require_object_lock: bool,
}

impl Default for RawS3 {
    fn default() -> Self {
        Self {
            force_path_style: false,
            part_size: RawSize::Text("0".into()),
            // As `acquire --parts-in-flight`: memory is (4 + 1) × part size.
            parts_in_flight: 4,
            // As `acquire --part-memory` and `--max-object-size`.
            part_memory: RawSize::Text("160MiB".into()),
            max_object_size: RawSize::Text("5TiB".into()),
            // As `acquire --s3-max-attempts`: about half a minute of backoff.
            max_attempts: 10,
            sse_kms_key_id: None,
            expected_bucket_owner: None,
            object_lock_mode: None,
            object_lock_retain_days: None,
            legal_hold: false,
            require_object_lock: false,
        }
    }
}

/// `[cloudwatch]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCloudWatch {
    /// Report to CloudWatch Logs at all.
    pub enabled: bool,
    /// Log group of the "ready for a disk" message.
    pub readiness_group: String,
    /// Log group of capture progress and results.
    pub capture_group: String,
    /// The readiness message.
    pub readiness_message: String,
    /// Seconds between progress events.
    pub progress_interval_secs: u64,
    /// Events buffered while CloudWatch is slow.
    pub queue_capacity: u32,
    /// Seconds to flush at exit.
    pub flush_timeout_secs: u64,
}

impl Default for RawCloudWatch {
    fn default() -> Self {
        Self {
            enabled: true,
            // The reporter's own defaults: the log group names of the flow this replaces, so its
            // dashboards keep working, and a buffer of one full PutLogEvents batch.
            readiness_group: cloudwatch::DEFAULT_READINESS_GROUP.into(),
            capture_group: cloudwatch::DEFAULT_CAPTURE_GROUP.into(),
            readiness_message: cloudwatch::DEFAULT_READINESS_MESSAGE.into(),
            progress_interval_secs: 30,
            queue_capacity: u32::try_from(cloudwatch::DEFAULT_QUEUE_CAPACITY).unwrap_or(u32::MAX),
            flush_timeout_secs: cloudwatch::DEFAULT_FLUSH_TIMEOUT.as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_are_exactly_the_job_fields() {
        for key in JOB_KEYS {
            let mut job = toml::Table::new();
            job.insert(key.into(), toml::Value::Boolean(true));
            let mut doc = toml::Table::new();
            doc.insert("job".into(), toml::Value::Table(job));
            let err = doc.try_into::<RawConfig>().err().map(|e| e.to_string());
            assert!(
                !err.unwrap_or_default().contains("unknown field"),
                "{key} is not a [job] field"
            );
        }
        let full = RawJob {
            bucket: Some(String::new()),
            incident_id: Some(String::new()),
            source_volume_id: Some(String::new()),
            expected_volumes: Some(1),
            ..RawJob::default()
        };
        let table = toml::Table::try_from(full).unwrap();
        assert_eq!(table.len(), JOB_KEYS.len());
    }
}
