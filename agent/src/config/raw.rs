//! The configuration as written: one serde struct tree, each field a key with its type and doc
//! line. Defaults, ranges and who may set each key are declared once in `settings`.
//!
//! Nothing here is trusted. `deny_unknown_fields` turns a typo into an error instead of a setting
//! that silently does nothing; values are checked afterwards by `validate` into the typed `Config`.
//! Every layer is merged over the defaults before it is read (`layers`), so no field needs a serde
//! default of its own.

use serde::{Deserialize, Serialize};

use super::settings;

impl Default for RawConfig {
    /// The built-in defaults (`settings::ALL`).
    fn default() -> Self {
        toml::Value::Table(settings::defaults_table())
            .try_into()
            .unwrap_or_else(|e| unreachable!("the defaults fit the struct tree: {e}"))
    }
}

/// The whole file (or any layer of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    /// Who collects the evidence, recorded in the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub examiner: Option<String>,
    /// Stop after this many volumes are imaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_volumes: Option<u32>,
    /// Read the job context from EC2 user data.
    pub use_imds: bool,
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

/// `[s3]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// `[cloudwatch]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{ALL, SECTIONS};

    /// The field names of `section`, from serde's own "expected one of" list.
    fn fields(section: &str) -> Vec<String> {
        let mut doc = settings::defaults_table();
        if let Some(toml::Value::Table(body)) = doc.get_mut(section) {
            body.insert("no_such_key".into(), 1.into());
        }
        let message = toml::Value::Table(doc)
            .try_into::<RawConfig>()
            .unwrap_err()
            .message()
            .to_owned();
        let list = message
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("no field list in {message}"));
        list.split(',')
            .map(|f| f.trim().trim_matches(|c| c == '`' || c == '\n').to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    // Issue 10: each key is one field here and one entry in `settings::ALL`, no more.
    #[test]
    fn every_field_has_one_spec() {
        for section in SECTIONS {
            let mut declared: Vec<&str> = ALL
                .iter()
                .filter(|s| s.section == section)
                .map(|s| s.key)
                .collect();
            let mut actual = fields(section);
            declared.sort_unstable();
            actual.sort_unstable();
            assert_eq!(declared, actual, "[{section}]");
        }
        assert!(ALL.iter().all(|s| SECTIONS.contains(&s.section)));
    }

    #[test]
    fn the_defaults_fit_the_struct_tree() {
        let raw = RawConfig::default();
        assert!(raw.job.use_imds);
        assert_eq!(raw.watch.on_complete, OnComplete::Poweroff);
        assert_eq!(raw.job.bucket, None);
        assert_eq!(raw.s3.part_memory, RawSize::Text("160MiB".into()));
    }
}
