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

/// Who may set a key. Declared beside each section's struct (`WRITERS`), checked for every
/// setting as it is read (`layers::Setting`), and printed as the table in docs/config.md.
///
/// EC2 user data is written by whoever launches the instance, and the environment is fed from
/// `/etc/environment`, which the original flow fills from user data: both are job input, not the
/// administrator's word. A key that runs a program or picks what on the host is read or touched
/// must therefore come from the root-owned config file or a command-line flag. A refused key is
/// an error (exit 5), never silently ignored: the launcher must learn that its setting did not
/// apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Any layer: the job context, and tuning whose every accepted value is harmless (bounded by
    /// `validate`).
    Any,
    /// Only the config file and command-line flags; the text says why, for the refusal.
    Operator(&'static str),
}

/// `(key, who may set it)` for one section, in declaration order.
pub type WriterTable = &'static [(&'static str, Writers)];

/// Why `watch.disk_root` is the operator's: it chooses which devices count as attached disks.
const PICKS_DEVICES: &str = "it chooses which host devices are imaged (a directory of links to the host's own disks would ship them)";

/// Who may set `section.key`. A key not declared is the operator's (fail closed): a new key is
/// open to user data only once someone has said so beside its struct.
pub fn writers(section: &str, key: &str) -> Writers {
    writer_tables()
        .into_iter()
        .find(|(name, _)| *name == section)
        .and_then(|(_, table)| table.iter().find(|(name, _)| *name == key))
        .map_or(Writers::Operator("it is not a known key"), |(_, w)| *w)
}

/// Every section with its table, in `SECTIONS` order.
pub fn writer_tables() -> [(&'static str, WriterTable); 5] {
    [
        ("job", RawJob::WRITERS),
        ("watch", RawWatch::WRITERS),
        ("imaging", RawImaging::WRITERS),
        ("s3", RawS3::WRITERS),
        ("cloudwatch", RawCloudWatch::WRITERS),
    ]
}

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

impl RawJob {
    /// The job context is what user data is for.
    pub const WRITERS: WriterTable = &[
        ("bucket", Writers::Any),
        ("prefix", Writers::Any),
        ("incident_id", Writers::Any),
        ("source_volume_id", Writers::Any),
        ("expected_volumes", Writers::Any),
        // Decided before user data is read, so user data setting it changes nothing; harmless.
        ("use_imds", Writers::Any),
    ];
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

impl RawWatch {
    /// Timing and the choice among three fixed endings are the launcher's (it can stop the
    /// instance through EC2 anyway); the program run and the devices watched are not.
    pub const WRITERS: WriterTable = &[
        ("disk_root", Writers::Operator(PICKS_DEVICES)),
        ("settle_ms", Writers::Any),
        ("concurrency", Writers::Any),
        ("idle_timeout_secs", Writers::Any),
        ("on_complete", Writers::Any),
        (
            "poweroff_command",
            Writers::Operator("it is a program the daemon runs as root"),
        ),
    ];
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

impl RawImaging {
    /// Read and hash tuning, every value bounded by the engine's `PipelineConfig::validate`.
    pub const WRITERS: WriterTable = &[
        ("hashes", Writers::Any),
        ("piece_size", Writers::Any),
        ("chunk_size", Writers::Any),
        ("queue_depth", Writers::Any),
        ("sector_retries", Writers::Any),
    ];
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

impl RawS3 {
    /// Where and how evidence is stored belongs to the job (the launcher names the bucket);
    /// sizes and counts are bounded in `validate`, so memory stays within its budget.
    pub const WRITERS: WriterTable = &[
        ("force_path_style", Writers::Any),
        ("part_size", Writers::Any),
        ("parts_in_flight", Writers::Any),
        ("part_memory", Writers::Any),
        ("max_object_size", Writers::Any),
        ("max_attempts", Writers::Any),
        ("sse_kms_key_id", Writers::Any),
        ("expected_bucket_owner", Writers::Any),
        ("object_lock_mode", Writers::Any),
        ("object_lock_retain_days", Writers::Any),
        ("legal_hold", Writers::Any),
        ("require_object_lock", Writers::Any),
    ];
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

impl RawCloudWatch {
    /// Reporting names and timings; bounded in `validate`.
    pub const WRITERS: WriterTable = &[
        ("enabled", Writers::Any),
        ("readiness_group", Writers::Any),
        ("capture_group", Writers::Any),
        ("readiness_message", Writers::Any),
        ("progress_interval_secs", Writers::Any),
        ("queue_capacity", Writers::Any),
        ("flush_timeout_secs", Writers::Any),
    ];
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

    /// The field names of `section`, from serde's own "expected one of" list.
    fn fields(section: &str) -> Vec<String> {
        let doc: toml::Table = format!("[{section}]\nno_such_key = 1\n").parse().unwrap();
        let message = doc
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

    #[test]
    fn every_key_declares_who_may_set_it() {
        for (section, table) in writer_tables() {
            let mut declared: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            let mut actual = fields(section);
            declared.sort_unstable();
            actual.sort_unstable();
            assert_eq!(declared, actual, "[{section}] WRITERS");
        }
        assert_eq!(
            writer_tables().map(|(s, _)| s),
            SECTIONS,
            "every section has a table"
        );
    }

    /// docs/config.md's "Who may set each key" table says what `WRITERS` says, key by key.
    #[test]
    fn the_documented_table_matches_the_declarations() {
        let docs = include_str!("../../../docs/config.md");
        let mut rows = 0;
        for (section, table) in writer_tables() {
            for (key, who) in table {
                let expected = match who {
                    Writers::Any => "any",
                    Writers::Operator(_) => "file and flags only",
                };
                let row = format!("| `{section}.{key}` | {expected} |");
                assert!(docs.contains(&row), "docs/config.md lacks the row {row}");
                rows += 1;
            }
        }
        let documented = docs
            .lines()
            .filter(|l| {
                l.starts_with("| `")
                    && (l.contains("` | any |") || l.contains("` | file and flags only |"))
            })
            .count();
        assert_eq!(documented, rows, "one row per key, no more");
    }

    #[test]
    fn program_and_path_keys_are_the_operators() {
        for (section, key) in [("watch", "poweroff_command"), ("watch", "disk_root")] {
            assert!(
                matches!(writers(section, key), Writers::Operator(_)),
                "{section}.{key}"
            );
        }
        assert_eq!(writers("job", "bucket"), Writers::Any);
        assert!(matches!(
            writers("watch", "not_declared"),
            Writers::Operator(_)
        ));
        assert!(matches!(writers("nope", "bucket"), Writers::Operator(_)));
    }
}
