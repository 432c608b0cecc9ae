//! Every setting of the agent, declared once: key, type, doc line, built-in default, accepted
//! range, who may set it and its `acquire` flag — one entry each in the `settings!` table below,
//! from which the serde tree (`RawConfig` and its sections), a `Spec` constant per key and the list
//! `ALL` are generated. `acquire`'s flags (`config::flags`), the config file, user data, the
//! environment, `config check`, the daemon's child job and docs/config.md all read it, and
//! `defaults_agree_everywhere` fails when any of them disagrees.
//!
//! Where the engine owns a default (read sizes in `imaging::PipelineConfig`, upload tuning in
//! `imaging::s3`), the table names the engine's constant instead of copying its number, so
//! `PipelineConfig::default()` and `S3Options::default()` agree by construction.
//!
//! Nothing read into the tree is trusted: `deny_unknown_fields` turns a typo into an error instead
//! of a setting that silently does nothing, and `typed::validate` checks every value. Every bound
//! must refuse at start-up a value that could not work, would exhaust memory, or would overflow a
//! clock (`Instant + Duration` panics): a typo must never abort the process halfway through an
//! acquisition. The engine bounds its read settings itself (`PipelineConfig::validate`).

use bytesize::ByteSize;
use imaging::PipelineConfig;
use imaging::s3::{S3Options, limits};
use serde::{Deserialize, Serialize};

use self::Initial::{Bool, Count, List, Size, Text, Unset};
use self::Unit::{Bytes, Number};
use self::Writers::{Any, Operator};
use super::values::{OnComplete, RawHashList, RawSize};
use crate::cloudwatch;

pub mod size;

const DAY_SECS: u64 = 24 * 60 * 60;

/// Who may set a key. EC2 user data is written by whoever launches the instance, and the
/// environment is fed from `/etc/environment`, which the original flow fills from user data: both
/// are job input, not the administrator's word. A key that runs a program or picks what on the
/// host is read or touched must therefore come from the root-owned config file or a command-line
/// flag. A refused key is an error (exit 5), never silently ignored: the launcher must learn that
/// its setting did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Any layer: the job context, and tuning whose every accepted value is harmless (bounded).
    Any,
    /// Only the config file and command-line flags; the text says why, for the refusal.
    Operator(&'static str),
}

/// A built-in default, in the shape the config file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    /// No default: the key is optional.
    Unset,
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Count(u64),
    /// A byte size, written as its exact IEC text (`1GiB`, `160MiB`, `0`).
    Size(u64),
    /// A string.
    Text(&'static str),
    /// A list of strings.
    List(&'static [&'static str]),
}

impl Initial {
    /// As a TOML value, or `None` when unset.
    pub fn to_toml(self) -> Option<toml::Value> {
        Some(match self {
            Unset => return None,
            Bool(b) => toml::Value::Boolean(b),
            Count(n) => toml::Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
            Size(n) => toml::Value::String(size_text(n)),
            Text(t) => toml::Value::String(t.to_owned()),
            List(items) => toml::Value::Array(items.iter().map(|i| (*i).into()).collect()),
        })
    }

    /// The number of a `Count` or `Size` default (0 otherwise).
    pub const fn number(self) -> u64 {
        match self {
            Count(n) | Size(n) => n,
            _ => 0,
        }
    }
}

/// `n` bytes as the largest IEC unit that divides it exactly: `1GiB`, `160MiB`, `4097`, `0`.
pub fn size_text(n: u64) -> String {
    const UNITS: [&str; 5] = ["TiB", "GiB", "MiB", "KiB", ""];
    for (i, unit) in UNITS.iter().enumerate() {
        let scale = 1u64 << (10 * (4 - i));
        if n.is_multiple_of(scale) && (n > 0 || unit.is_empty()) {
            return format!("{}{unit}", n / scale);
        }
    }
    n.to_string()
}

/// One setting: `section.key`, its default, its range, who may set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// `job`, `watch`, `imaging`, `s3`, `cloudwatch`.
    pub section: &'static str,
    /// The key inside the section.
    pub key: &'static str,
    /// The built-in default.
    pub default: Initial,
    /// The accepted range of a number the agent bounds itself.
    pub bound: Option<Bound>,
    /// Who may set it.
    pub writers: Writers,
    /// `acquire`'s flag for it (`--part-size`), when it has one: `config::flags` builds the flag,
    /// its help and its parsing from this entry, so a key is given a flag here and nowhere else.
    pub flag: Option<&'static str>,
    /// The entry's doc lines; the first sentence is the flag's help.
    pub doc: &'static [&'static str],
}

impl Spec {
    /// `value` if it is within the range (every value when the agent does not bound the key).
    pub fn check(&self, value: u64) -> Result<u64, String> {
        self.bound.map_or(Ok(value), |b| b.check(value))
    }
}

/// How a bound's numbers are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A byte size, shown as `8.0 MiB`.
    Bytes,
    /// A plain number.
    Number,
}

/// An inclusive range with the words to explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// What the value is, for messages: "part size".
    pub what: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// How to show the numbers.
    pub unit: Unit,
}

impl Bound {
    /// `value` if it is within the range, else a message naming value and range.
    pub fn check(&self, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            return Ok(value);
        }
        let show = |n: u64| match self.unit {
            Bytes => ByteSize(n).to_string(),
            Number => n.to_string(),
        };
        Err(format!(
            "{} {} must be between {} and {}",
            self.what,
            show(value),
            show(self.min),
            show(self.max)
        ))
    }
}

impl Bound {
    /// The range as `--help` and docs/config.md show it: `1-64`, `5 MiB-5 GiB`, `5 MiB-48.8 TiB`.
    pub fn range_text(&self) -> String {
        let show = |n: u64| match self.unit {
            Bytes => size_shown(n),
            Number => n.to_string(),
        };
        format!("{}-{}", show(self.min), show(self.max))
    }
}

/// `n` bytes as help and docs write them: `8 MiB`, `48.8 TiB`.
pub fn size_shown(n: u64) -> String {
    ByteSize(n).to_string().replace(".0 ", " ")
}

/// Ranges the engine enforces itself (`PipelineConfig::validate`, `check_examiner`), built from
/// its constants so `--help` and docs/config.md can show them without copying a number; the agent
/// does not check them a second time.
pub mod engine_ranges {
    use super::{Bound, Bytes, Number, range};
    use imaging::PipelineConfig;

    /// Reads in flight.
    pub const QUEUE_DEPTH: Bound = range(
        "queue depth",
        1,
        PipelineConfig::MAX_QUEUE_DEPTH as u64,
        Number,
    );
    /// Snapshot blocks in flight.
    pub const BLOCKS_IN_FLIGHT: Bound = range(
        "blocks in flight",
        1,
        PipelineConfig::MAX_QUEUE_DEPTH as u64,
        Number,
    );
    /// Extra attempts per unreadable sector.
    pub const SECTOR_RETRIES: Bound = range(
        "sector retries",
        0,
        PipelineConfig::MAX_SECTOR_RETRIES as u64,
        Number,
    );
    /// Bytes per read.
    pub const CHUNK_SIZE: Bound = range(
        "chunk size",
        PipelineConfig::MIN_CHUNK_SIZE as u64,
        PipelineConfig::MAX_CHUNK_SIZE as u64,
        Bytes,
    );
    /// Characters of the examiner's name.
    pub const EXAMINER_CHARS: Bound = range(
        "examiner (characters)",
        1,
        imaging::CaseInfo::MAX_EXAMINER_CHARS as u64,
        Number,
    );
}

/// `what` must be within `min..=max`, shown in `unit`.
const fn range(what: &'static str, min: u64, max: u64, unit: Unit) -> Bound {
    Bound {
        what,
        min,
        max,
        unit,
    }
}

/// Generates, from one entry per key, the serde struct of each section (field, type, doc line),
/// `RawConfig` holding them, a `Spec` constant per key (same doc line), `SECTIONS` and `ALL`.
macro_rules! settings {
    ($(
        $(#[doc = $sdoc:literal])*
        [$section:ident] $Struct:ident {
            $(
                $(#[doc = $doc:literal])*
                $(#[flag = $flag:literal])?
                $CONST:ident $field:ident: $ty:ty = $default:expr, $writers:expr $(, $bound:expr)?;
            )*
        }
    )*) => {
        /// The whole file (or any layer of it), every section present: layers are merged over the
        /// defaults before the tree is read, so no field needs a serde default.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawConfig {
            $(
                $(#[doc = $sdoc])*
                pub $section: $Struct,
            )*
        }
        $(
            $(#[doc = $sdoc])*
            #[derive(Debug, Clone, Serialize, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $Struct {
                $(
                    $(#[doc = $doc])*
                    pub $field: $ty,
                )*
            }
            $(
                $(#[doc = $doc])*
                pub const $CONST: Spec = Spec {
                    section: stringify!($section),
                    key: stringify!($field),
                    default: $default,
                    bound: settings!(@bound $($bound)?),
                    writers: $writers,
                    flag: settings!(@flag $($flag)?),
                    doc: &[$($doc),*],
                };
            )*
        )*
        /// Section names, in the order `config check` prints them.
        pub const SECTIONS: &[&str] = &[$(stringify!($section)),*];
        /// Every setting, by section in `SECTIONS` order.
        pub const ALL: &[Spec] = &[$($($CONST,)*)*];
    };
    (@bound) => { None };
    (@bound $bound:expr) => { Some($bound) };
    (@flag) => { None };
    (@flag $flag:literal) => { Some($flag) };
}

settings! {
    /// `[job]`: what this instance is for. The job context is what user data is for.
    [job] RawJob {
        /// Evidence bucket.
        BUCKET bucket: Option<String> = Unset, Any;
        /// Key prefix inside the bucket.
        PREFIX prefix: String = Text(""), Any;
        /// Incident ID: part of every key and recorded in the manifest.
        INCIDENT_ID incident_id: Option<String> = Unset, Any;
        /// The EBS volume this job is about.
        SOURCE_VOLUME_ID source_volume_id: Option<String> = Unset, Any;
        /// An EBS snapshot to image through the EBS direct APIs instead of attached disks: `watch`
        /// then runs one job for it and waits for no disk. Job input like the bucket, so any layer
        /// may name it: it is read with the instance role's permissions, never from the host, and
        /// only `snap-` and 8 or 17 lower-case hex digits pass (`typed::validate`), so the value
        /// cannot turn into a path or an argument of anything run as root.
        SNAPSHOT_ID snapshot_id: Option<String> = Unset, Any;
        /// Who collects the evidence: recorded in the manifest only, so any layer may say it.
        EXAMINER examiner: Option<String> = Unset, Any;
        /// The SQS queue `watch` takes jobs from instead of imaging attached disks (job-queue
        /// mode: the collectors the flow launches, docs/flow.md). Each message is one job with its
        /// own incident, snapshot and Step Functions task token; it is input, checked strictly
        /// (`queue::message`) and never run as anything but an `acquire` of a snapshot.
        QUEUE_URL queue_url: Option<String> = Unset, Any;
        /// In job-queue mode, the value of the `forensic-collector` tag a job's snapshot must
        /// carry, the tag the collector role's EBS permission is conditioned on: a job naming any
        /// other snapshot is refused before a block is read.
        SNAPSHOT_TAG snapshot_tag: Option<String> = Unset, Any;
        /// Seconds between a running job's heartbeats (Step Functions `SendTaskHeartbeat`, and the
        /// message's visibility extended to three of them). The state's `HeartbeatSeconds` must
        /// be larger; an hour is past any sensible state timeout between beats.
        HEARTBEAT_SECS heartbeat_secs: u64 = Count(60), Any,
            range("heartbeat interval (seconds)", 1, 3600, Number);
        /// Seconds the queue may stay empty before the collector's work is done (then
        /// `watch.on_complete`): the flow queues every job before its collectors boot, so five
        /// minutes without one means the incident's work is taken.
        QUEUE_IDLE_SECS queue_idle_secs: u64 = Count(300), Any,
            range("queue idle time (seconds)", 1, 30 * DAY_SECS, Number);
        /// Stop after this many volumes are imaged.
        EXPECTED_VOLUMES expected_volumes: Option<u32> = Unset, Any;
        /// Read the job context from EC2 user data. Decided before user data is read, so user
        /// data cannot switch itself off: its value is ignored (`config::set_aside_decided`).
        USE_IMDS use_imds: bool = Bool(true), Any;
        /// Seconds `watch` waits for IMDS to answer, retrying with backoff: on a fresh EC2
        /// instance it may answer only seconds after `network-online.target`. Two minutes ride
        /// out a slow boot; an hour is the most that is still "booting" rather than an instance
        /// without IMDS. 0 asks once. Decided before user data is read, like `use_imds` (user data's is ignored).
        IMDS_WAIT_SECS imds_wait_secs: u64 = Count(120), Any,
            range("IMDS wait (seconds)", 0, 3600, Number);
    }
    /// `[watch]`: how the daemon detects disks. Timing and the choice among three fixed endings
    /// are the launcher's (it can stop the instance through EC2 anyway); the program run and the
    /// devices watched are not.
    [watch] RawWatch {
        /// Where udev publishes disk links.
        DISK_ROOT disk_root: String = Text("/dev/disk"),
            Operator("it chooses which host devices are imaged (a directory of links to the host's own disks would ship them)");
        /// Quiet time (ms) after a link appears before the disk is examined: udev creates by-id,
        /// by-path and by-label links one after another; 300 ms covers the burst on a Nitro
        /// instance. A minute is the most that is still "settling" rather than a stalled daemon.
        SETTLE_MS settle_ms: u64 = Count(300), Any, range("settle time (ms)", 0, 60_000, Number);
        /// Disks imaged at once: one, because EBS throughput is per instance, so parallel reads
        /// mostly compete; each holds its own buffers, so beyond 8 they only compete for memory.
        CONCURRENCY concurrency: u32 = Count(1), Any, range("concurrency", 1, 8, Number);
        /// Seconds to wait for a disk (0 = forever): at most 30 days, far past any incident's
        /// attach time and far inside what a deadline `Instant` can hold.
        IDLE_TIMEOUT_SECS idle_timeout_secs: u64 = Count(0), Any,
            range("idle timeout (seconds)", 0, 30 * DAY_SECS, Number);
        /// What to do when done: power off, as the collector is single-use and a stopped
        /// instance costs nothing.
        ON_COMPLETE on_complete: OnComplete = Text("poweroff"), Any;
        /// The command `on_complete = "poweroff"` runs: through systemd, so units stop in order
        /// and the journal is flushed first.
        POWEROFF_COMMAND poweroff_command: Vec<String> = List(&["systemctl", "poweroff"]),
            Operator("it is a program the daemon runs as root");
    }
    /// `[imaging]`: reading and hashing. The engine's defaults, with their reasons, are in
    /// `imaging::PipelineConfig`, whose `validate` bounds every value.
    [imaging] RawImaging {
        /// Whole-image hashes, comma-separated: sha256, blake3, md5, sha1.
        #[flag = "hash"]
        HASHES hashes: RawHashList = List(&["sha256", "blake3"]), Any;
        /// Size of each piecewise hash; 0 turns piecewise hashing off.
        #[flag = "piece-size"]
        PIECE_SIZE piece_size: RawSize = Size(PipelineConfig::DEFAULT_PIECE_SIZE), Any;
        /// Piecewise hash algorithm: `blake3` (checked with `b3sum`) or `sha256` (dc3dd-style hash
        /// logs, at the cost of a second SHA-256 pass).
        #[flag = "piece-hash"]
        PIECE_HASH piece_hash: String = Text(PipelineConfig::DEFAULT_PIECE_ALGORITHM.name()), Any;
        /// Bytes per read, a multiple of the smallest; with the queue depth it sets the read
        /// buffers' memory, which the engine bounds.
        #[flag = "chunk-size"]
        CHUNK_SIZE chunk_size: RawSize = Size(PipelineConfig::DEFAULT_CHUNK_SIZE as u64), Any;
        /// Reads in flight; snapshot-restored EBS volumes get faster with more.
        #[flag = "queue-depth"]
        QUEUE_DEPTH queue_depth: u32 = Count(PipelineConfig::DEFAULT_QUEUE_DEPTH as u64), Any;
        /// GetSnapshotBlock requests in flight when the source is an EBS snapshot.
        #[flag = "blocks-in-flight"]
        BLOCKS_IN_FLIGHT blocks_in_flight: u32 =
            Count(imaging::Snapshot::DEFAULT_BLOCKS_IN_FLIGHT as u64), Any;
        /// Extra attempts for each unreadable sector before it is zero-filled and listed.
        #[flag = "sector-retries"]
        SECTOR_RETRIES sector_retries: u32 = Count(PipelineConfig::DEFAULT_SECTOR_RETRIES as u64), Any;
    }
    /// `[s3]`: the evidence bucket. Where and how evidence is stored belongs to the job (the
    /// launcher names the bucket); sizes and counts are bounded, so memory stays within budget.
    [s3] RawS3 {
        /// Address buckets as ENDPOINT/BUCKET (S3-compatible servers) instead of BUCKET.ENDPOINT.
        #[flag = "s3-force-path-style"]
        FORCE_PATH_STYLE force_path_style: bool = Bool(false), Any;
        /// Smallest multipart part, raised so the image fits in 10,000 parts; 0 means S3's smallest.
        #[flag = "part-size"]
        PART_SIZE part_size: RawSize = Size(0), Any,
            range("part size", limits::MIN_PART_SIZE, limits::MAX_PART_SIZE, Bytes);
        /// Parts uploading at once; unset, the upload follows the link (more parts while they add
        /// throughput, up to what the part memory holds). A fixed n needs (n + 1) × part size of
        /// memory; past 64 parallel requests throughput stops growing (see the engine's
        /// `MAX_PARTS_IN_FLIGHT`).
        #[flag = "parts-in-flight"]
        PARTS_IN_FLIGHT parts_in_flight: Option<u32> = Unset,
            Any, range("parts in flight", 1, S3Options::MAX_PARTS_IN_FLIGHT as u64, Number);
        /// Memory for part buffers, which caps the part size at this / (parts in flight + 1), so
        /// memory stays flat for any disk size. At least two of the smallest parts (one
        /// uploading, one filling), at most two of the largest, with which one object already
        /// holds S3's whole 48.8 TiB: more is a typo that would be allocated as the image grows.
        #[flag = "part-memory"]
        PART_MEMORY part_memory: RawSize = Size(S3Options::DEFAULT_PART_MEMORY), Any,
            range("part memory", 2 * limits::MIN_PART_SIZE, 2 * limits::MAX_PART_SIZE, Bytes);
        /// Largest object; bigger images are stored as numbered segment objects listed in the
        /// manifest. At least one part, at most
        /// what 10,000 parts of S3's largest size hold (48.8 TiB, about the 50 TB S3 accepts).
        #[flag = "max-object-size"]
        MAX_OBJECT_SIZE max_object_size: RawSize = Size(limits::MAX_OBJECT_SIZE), Any,
            range("maximum object size", limits::MIN_PART_SIZE, limits::MAX_PARTS * limits::MAX_PART_SIZE, Bytes);
        /// Attempts per S3 request before the upload is given up, with exponential backoff between
        /// them. The SDK backs off with jitter, at most `aws::S3_MAX_BACKOFF` each, so the default
        /// rides out about half a minute of throttling, 5xx answers or a restarting endpoint;
        /// beyond 100 the backoff turns an outage into hours.
        #[flag = "s3-max-attempts"]
        S3_MAX_ATTEMPTS max_attempts: u32 = Count(10), Any, range("S3 attempts", 1, 100, Number);
        /// Seconds to wait for a connection to S3 before the attempt fails and is retried. Ten
        /// ride out a slow proxy or VPC endpoint; a link that needs more (a satellite uplink, a
        /// congested inspection proxy) may raise it, and beyond five minutes a dead endpoint would
        /// hold every attempt that long.
        #[flag = "s3-connect-timeout"]
        S3_CONNECT_TIMEOUT_SECS connect_timeout_secs: u64 = Count(10), Any,
            range("S3 connect timeout (seconds)", 1, 300, Number);
        /// Encrypt every object with this KMS key (SSE-KMS): key ID, alias or ARN.
        #[flag = "sse-kms-key-id"]
        SSE_KMS_KEY_ID sse_kms_key_id: Option<String> = Unset, Any;
        /// Refuse to write unless the bucket belongs to this account ID.
        #[flag = "expected-bucket-owner"]
        EXPECTED_BUCKET_OWNER expected_bucket_owner: Option<String> = Unset, Any;
        /// `GOVERNANCE` or `COMPLIANCE`.
        OBJECT_LOCK_MODE object_lock_mode: Option<String> = Unset, Any;
        /// Retention in days from the upload: S3 accepts at most 100 years; more would also
        /// overflow the date arithmetic of the retain-until date.
        OBJECT_LOCK_RETAIN_DAYS object_lock_retain_days: Option<u32> = Unset, Any,
            range("Object Lock retention (days)", 1, 36_500, Number);
        /// Put an Object Lock legal hold on every object.
        #[flag = "legal-hold"]
        LEGAL_HOLD legal_hold: bool = Bool(false), Any;
        /// Refuse a bucket without Object Lock (implied by a retention or a legal hold).
        #[flag = "require-object-lock"]
        REQUIRE_OBJECT_LOCK require_object_lock: bool = Bool(false), Any;
    }
    /// `[cloudwatch]`: readiness and progress reports. The reporter's own defaults: the log group
    /// names of the flow this replaces, so its dashboards keep working.
    [cloudwatch] RawCloudWatch {
        /// Report to CloudWatch Logs at all.
        CW_ENABLED enabled: bool = Bool(true), Any;
        /// Log group of the "ready for a disk" message.
        READINESS_GROUP readiness_group: String = Text(cloudwatch::DEFAULT_READINESS_GROUP), Any;
        /// Log group of capture progress and results.
        CAPTURE_GROUP capture_group: String = Text(cloudwatch::DEFAULT_CAPTURE_GROUP), Any;
        /// The readiness message, 1 to `MAX_READINESS_MESSAGE_BYTES` bytes once trimmed.
        READINESS_MESSAGE readiness_message: String = Text(cloudwatch::DEFAULT_READINESS_MESSAGE), Any,
            range("readiness message (bytes)", 1, cloudwatch::MAX_READINESS_MESSAGE_BYTES as u64, Number);
        /// Seconds between progress events: one per hour is the least that still shows a capture
        /// is alive; zero would be a busy loop. 30 s keeps a long capture's event count low.
        PROGRESS_INTERVAL_SECS progress_interval_secs: u64 = Count(30), Any,
            range("progress interval (seconds)", 1, 3600, Number);
        /// Events buffered while CloudWatch is slow: ten PutLogEvents batches of events of a few
        /// KiB stay within tens of MiB.
        QUEUE_CAPACITY queue_capacity: u32 = Count(cloudwatch::DEFAULT_QUEUE_CAPACITY as u64), Any,
            range("queue capacity", 1, 100_000, Number);
        /// Seconds to flush at exit: at least one (the reporter refuses zero); at most ten
        /// minutes, well past systemd's default stop timeout (90 s), which would kill us first.
        FLUSH_TIMEOUT_SECS flush_timeout_secs: u64 = Count(cloudwatch::DEFAULT_FLUSH_TIMEOUT.as_secs()),
            Any, range("flush timeout (seconds)", 1, 600, Number);
    }
    /// `[custody]`: the signed chain-of-custody record (docs/custody.md).
    [custody] RawCustody {
        /// Sign a custody statement of every capture with this KMS asymmetric key (key ID, alias
        /// or ARN; `ECC_NIST_P256` or `RSA_*`, usage `SIGN_VERIFY`), stored beside the manifest;
        /// a capture that cannot sign fails. Unset, the manifest says "unsigned". The launcher's
        /// choice like the bucket: it names which key vouches for the evidence, and the role may
        /// use only the keys its policy grants `kms:Sign` on.
        #[flag = "sign-kms-key-id"]
        KMS_KEY_ID kms_key_id: Option<String> = Unset, Any;
    }
}

/// `acquire` run by hand logs progress more often than the daemon reports it: a person is
/// watching. Same range as [`PROGRESS_INTERVAL_SECS`]; not a config key.
pub const ACQUIRE_PROGRESS_INTERVAL_SECS: u64 = 10;

/// The setting `section.key`, if declared.
pub fn find(section: &str, key: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.section == section && s.key == key)
}

/// The setting `section.key` written as one string.
pub fn find_dotted(dotted: &str) -> Option<&'static Spec> {
    let (section, key) = dotted.split_once('.')?;
    find(section, key)
}

/// The range `--help` and docs/config.md show for `spec`: its own, else the engine's (which the
/// engine checks itself, see [`engine_ranges`]).
pub fn shown_range(spec: &Spec) -> Option<Bound> {
    spec.bound.or(match (spec.section, spec.key) {
        ("imaging", "queue_depth") => Some(engine_ranges::QUEUE_DEPTH),
        ("imaging", "blocks_in_flight") => Some(engine_ranges::BLOCKS_IN_FLIGHT),
        ("imaging", "sector_retries") => Some(engine_ranges::SECTOR_RETRIES),
        ("imaging", "chunk_size") => Some(engine_ranges::CHUNK_SIZE),
        ("job", "examiner") => Some(engine_ranges::EXAMINER_CHARS),
        _ => None,
    })
}

/// Who may set `section.key`. A key not declared is the operator's (fail closed).
pub fn writers(section: &str, key: &str) -> Writers {
    find(section, key).map_or(Operator("it is not a known key"), |s| s.writers)
}

/// Every default as one document (`[section] key = value`), unset keys left out.
pub fn defaults_table() -> toml::Table {
    let mut table: toml::Table = SECTIONS
        .iter()
        .map(|s| ((*s).to_owned(), toml::Value::Table(toml::Table::new())))
        .collect();
    for spec in ALL {
        if let (Some(value), Some(toml::Value::Table(body))) =
            (spec.default.to_toml(), table.get_mut(spec.section))
        {
            body.insert(spec.key.into(), value);
        }
    }
    table
}

/// Memory the S3 upload of one image needs for parts of `part_size`: `parts_in_flight` uploading
/// plus one being filled.
pub fn part_buffers(part_size: u64, parts_in_flight: u64) -> u64 {
    part_size.saturating_mul(parts_in_flight.saturating_add(1))
}

/// Part size and count must fit in `part_memory`: the planner raises the part size to at least
/// `part_size` whatever the budget says, so a larger product would silently exceed it.
pub fn check_part_budget(
    part_size: u64,
    parts_in_flight: u64,
    part_memory: u64,
) -> Result<(), String> {
    let needed = part_buffers(part_size, parts_in_flight);
    if needed <= part_memory {
        return Ok(());
    }
    Err(format!(
        "part memory {} cannot hold (parts in flight {parts_in_flight} + the one filling) × part size {} = {}; raise the part memory or lower the others",
        ByteSize(part_memory),
        ByteSize(part_size),
        ByteSize(needed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Each bound accepts its ends and refuses one step outside them.
    #[test]
    fn every_bound_accepts_its_ends_and_refuses_past_them() {
        let bounded: Vec<Bound> = ALL.iter().filter_map(|s| s.bound).collect();
        assert_eq!(bounded.len(), 17);
        for bound in bounded {
            assert!(bound.min <= bound.max, "{bound:?}");
            assert_eq!(bound.check(bound.min), Ok(bound.min), "{bound:?}");
            assert_eq!(bound.check(bound.max), Ok(bound.max), "{bound:?}");
            if bound.min > 0 {
                let err = bound.check(bound.min - 1).unwrap_err();
                assert!(err.starts_with(bound.what), "{err}");
            }
            let err = bound.check(bound.max + 1).unwrap_err();
            assert!(err.contains("must be between"), "{err}");
        }
    }

    fn b(spec: Spec) -> Bound {
        spec.bound.expect("bounded")
    }

    #[test]
    fn the_numbers_behind_each_bound() {
        assert_eq!(b(PART_SIZE).min, 5 * MIB);
        assert_eq!(b(PART_SIZE).max, 5 * GIB);
        assert_eq!(b(PARTS_IN_FLIGHT).max, 64);
        assert_eq!(b(PART_MEMORY).min, 10 * MIB);
        assert_eq!(b(PART_MEMORY).max, 10 * GIB);
        assert_eq!(b(MAX_OBJECT_SIZE).max, 10_000 * 5 * GIB);
        assert_eq!(b(S3_MAX_ATTEMPTS).max, 100);
        assert_eq!(b(OBJECT_LOCK_RETAIN_DAYS).max, 36_500);
        assert_eq!(b(PROGRESS_INTERVAL_SECS).min, 1);
        assert_eq!((b(HEARTBEAT_SECS).min, b(HEARTBEAT_SECS).max), (1, 3600));
        assert_eq!(
            (b(QUEUE_IDLE_SECS).min, b(QUEUE_IDLE_SECS).max),
            (1, 30 * 24 * 3600)
        );
        assert_eq!(b(PROGRESS_INTERVAL_SECS).max, 3600);
        assert_eq!(b(SETTLE_MS).max, 60_000);
        assert_eq!(b(IDLE_TIMEOUT_SECS).max, 2_592_000);
        assert_eq!(b(IMDS_WAIT_SECS).max, 3600);
        assert_eq!(b(CONCURRENCY).max, 8);
        assert_eq!(b(QUEUE_CAPACITY).max, 100_000);
        assert_eq!(b(FLUSH_TIMEOUT_SECS).min, 1);
        assert_eq!(b(FLUSH_TIMEOUT_SECS).max, 600);
    }

    #[test]
    fn messages_show_sizes_as_sizes() {
        let err = PART_SIZE.check(1 << 40).unwrap_err();
        assert!(err.contains("1.0 TiB") && err.contains("5.0 MiB"), "{err}");
        let err = CONCURRENCY.check(9).unwrap_err();
        assert_eq!(err, "concurrency 9 must be between 1 and 8");
        assert_eq!(CONCURRENCY.check(8), Ok(8));
    }

    #[test]
    fn part_buffers_must_fit_the_part_memory() {
        assert_eq!(part_buffers(8 * MIB, 4), 40 * MIB);
        check_part_budget(8 * MIB, 4, 40 * MIB).unwrap();
        let err = check_part_budget(8 * MIB, 4, 40 * MIB - 1).unwrap_err();
        assert!(err.contains("cannot hold"), "{err}");
        check_part_budget(8 * MIB, 19, 160 * MIB).unwrap();
        check_part_budget(8 * MIB, 20, 160 * MIB).unwrap_err();
        assert_eq!(part_buffers(u64::MAX, 4), u64::MAX);
    }

    /// The docs' text of a default: the TOML value, or `unset`.
    fn documented(spec: &Spec) -> String {
        spec.default
            .to_toml()
            .map_or_else(|| "unset".to_owned(), |v| format!("`{v}`"))
    }

    // Issue 10: docs/config.md's table says who may set each key and its default, as declared.
    #[test]
    fn the_documented_table_matches_the_declarations() {
        let docs = include_str!("../../../docs/config.md");
        for spec in ALL {
            let who = match spec.writers {
                Writers::Any => "any",
                Writers::Operator(_) => "file and flags only",
            };
            let row = format!(
                "| `{}.{}` | {who} | {} |",
                spec.section,
                spec.key,
                documented(spec)
            );
            assert!(docs.contains(&row), "docs/config.md lacks the row {row}");
        }
        let rows = docs
            .lines()
            .filter(|l| {
                l.starts_with("| `")
                    && (l.contains("` | any |") || l.contains("` | file and flags only |"))
            })
            .count();
        assert_eq!(rows, ALL.len(), "one row per key, no more");
        // Every range shown: the table's own, and the engine's for the keys it bounds itself.
        let shown: Vec<(Spec, Bound)> = ALL
            .iter()
            .filter_map(|s| shown_range(s).map(|b| (*s, b)))
            .collect();
        let engine = [
            QUEUE_DEPTH,
            BLOCKS_IN_FLIGHT,
            SECTOR_RETRIES,
            CHUNK_SIZE,
            EXAMINER,
        ];
        for spec in engine {
            assert!(spec.bound.is_none(), "{}: the engine bounds it", spec.key);
            assert!(shown_range(&spec).is_some(), "{}: no range shown", spec.key);
        }
        assert_eq!(
            shown.len(),
            ALL.iter().filter(|s| s.bound.is_some()).count() + engine.len()
        );
        for (spec, bound) in shown {
            {
                let accepted = accepted_values(docs, &spec);
                assert!(
                    shows_range(&accepted, &bound.range_text()),
                    "docs/config.md says `{}.{}` accepts {accepted:?}, not {}",
                    spec.section,
                    spec.key,
                    bound.range_text()
                );
            }
        }
    }

    /// The "accepted values" column of `spec`'s row in docs/config.md.
    fn accepted_values(docs: &str, spec: &Spec) -> String {
        let start = format!("| `{}.{}` |", spec.section, spec.key);
        let row = docs.lines().find(|l| l.starts_with(&start)).unwrap_or("");
        row.split('|').nth(4).unwrap_or("").trim().to_owned()
    }

    /// `text` names `range` whole: `1-64` is not shown by `1-640` or `11-64`.
    fn shows_range(text: &str, range: &str) -> bool {
        let digit_or_dot = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        text.match_indices(range).any(|(at, _)| {
            !digit_or_dot(text[..at].chars().next_back())
                && !digit_or_dot(text[at + range.len()..].chars().next())
        })
    }

    // Issue 10: the range text is the one `--help` and docs/config.md show, and a range is found
    // only whole.
    #[test]
    fn ranges_are_shown_as_docs_and_help_write_them() {
        assert_eq!(b(PARTS_IN_FLIGHT).range_text(), "1-64");
        assert_eq!(b(PART_SIZE).range_text(), "5 MiB-5 GiB");
        assert_eq!(b(PART_MEMORY).range_text(), "10 MiB-10 GiB");
        assert_eq!(b(MAX_OBJECT_SIZE).range_text(), "5 MiB-48.8 TiB");
        assert_eq!(b(SETTLE_MS).range_text(), "0-60000");
        assert!(shows_range("1-64; more", "1-64"));
        assert!(shows_range("1-64", "1-64"));
        assert!(!shows_range("1-640", "1-64"));
        assert!(!shows_range("11-64", "1-64"));
        assert!(!shows_range("0.1-64", "1-64"));
        assert!(!shows_range("1-64.5", "1-64"));
        assert!(!shows_range("", "1-64"));
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
        assert_eq!(writers("job", "examiner"), Writers::Any);
        assert!(matches!(
            writers("watch", "not_declared"),
            Writers::Operator(_)
        ));
        assert!(matches!(writers("nope", "bucket"), Writers::Operator(_)));
    }

    #[test]
    fn sizes_are_written_in_the_largest_exact_unit() {
        assert_eq!(size_text(0), "0");
        assert_eq!(size_text(1), "1");
        assert_eq!(size_text(1023), "1023");
        assert_eq!(size_text(1024), "1KiB");
        assert_eq!(size_text(4097), "4097");
        assert_eq!(size_text(1 << 20), "1MiB");
        assert_eq!(size_text(160 << 20), "160MiB");
        assert_eq!(size_text((1 << 30) + (1 << 20)), "1025MiB");
        assert_eq!(size_text(1 << 30), "1GiB");
        assert_eq!(size_text(5 << 40), "5TiB");
        assert_eq!(size_text(1 << 50), "1024TiB");
    }

    #[test]
    fn defaults_become_toml_values() {
        assert_eq!(Initial::Unset.to_toml(), None);
        assert_eq!(Initial::Bool(false).to_toml(), Some(false.into()));
        assert_eq!(Initial::Count(7).to_toml(), Some(7.into()));
        assert_eq!(Initial::Count(u64::MAX).to_toml(), Some(i64::MAX.into()));
        assert_eq!(Initial::Size(1 << 20).to_toml(), Some("1MiB".into()));
        assert_eq!(Initial::Text("x").to_toml(), Some("x".into()));
        assert_eq!(
            Initial::List(&["a", "b"]).to_toml(),
            Some(toml::Value::Array(vec!["a".into(), "b".into()]))
        );
        assert_eq!(Initial::Size(9).number(), 9);
        assert_eq!(Initial::Count(8).number(), 8);
        assert_eq!(Initial::Bool(true).number(), 0);
        let table = defaults_table();
        assert_eq!(table.len(), SECTIONS.len());
        assert_eq!(
            SECTIONS,
            ["job", "watch", "imaging", "s3", "cloudwatch", "custody"]
        );
        assert!(table["job"].get("bucket").is_none());
        assert_eq!(table["watch"]["settle_ms"], 300.into());
        assert_eq!(find("s3", "part_size"), Some(&PART_SIZE));
        assert_eq!(find("s3", "nope"), None);
        assert_eq!(find("job", "part_size"), None);
        assert_eq!(
            PART_SIZE.check(1),
            Err(PART_SIZE.bound.unwrap().check(1).unwrap_err())
        );
        assert_eq!(BUCKET.check(u64::MAX), Ok(u64::MAX));
    }

    /// `acquire` with no option, parsed by clap.
    fn acquire_with(extra: &[&str]) -> crate::cli::AcquireArgs {
        use clap::Parser;
        let mut argv = vec!["forensic-collector", "acquire", "/dev/null"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Acquire(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    // Issue 10: one default per setting. `acquire` without options, the config file's defaults
    // (validated), the engine's own defaults, and the job the daemon gives its children all agree;
    // docs/config.md is checked by `the_documented_table_matches_the_declarations`.
    #[test]
    fn defaults_agree_everywhere() {
        use crate::config::raw::RawConfig;
        use imaging::PipelineConfig;
        use imaging::s3::S3Options;

        let (cli, acquire) = acquire_with(&[]).checked().unwrap();
        let config = crate::config::typed::validate(&RawConfig::default()).unwrap();
        let engine_read = PipelineConfig::default();
        let cli_read = &acquire.imaging;
        for (what, read) in [("acquire", cli_read), ("config", &config.imaging)] {
            assert_eq!(read.chunk_size, engine_read.chunk_size, "{what} chunk size");
            assert_eq!(
                read.queue_depth, engine_read.queue_depth,
                "{what} queue depth"
            );
            assert_eq!(
                read.blocks_in_flight, engine_read.blocks_in_flight,
                "{what} blocks in flight"
            );
            assert_eq!(read.piece_size, engine_read.piece_size, "{what} piece size");
            assert_eq!(
                read.piece_algorithm, engine_read.piece_algorithm,
                "{what} piece hash"
            );
            assert_eq!(
                read.sector_retries, engine_read.sector_retries,
                "{what} retries"
            );
            assert_eq!(read.algorithms, engine_read.algorithms, "{what} hashes");
        }

        let engine = S3Options::default();
        let cli_s3 = crate::cmd::acquire::destination::upload_options(&acquire.s3, None);
        let c = &config.s3;
        let pairs = [
            (
                cli_s3.parts_in_flight.map_or(0, |n| n as u64),
                c.parts_in_flight.map_or(0, |n| n.get() as u64),
                engine.parts_in_flight.map_or(0, |n| n as u64),
                "parts in flight",
            ),
            (
                cli_s3.min_part_size,
                c.min_part_size,
                engine.min_part_size,
                "part size",
            ),
            (
                cli_s3.part_memory,
                c.part_memory,
                engine.part_memory,
                "part memory",
            ),
            (
                cli_s3.max_object_size,
                c.max_object_size,
                engine.max_object_size,
                "object size",
            ),
        ];
        for (acquire, config, engine, what) in pairs {
            assert_eq!(acquire, engine, "acquire {what}");
            assert_eq!(config, engine, "config {what}");
        }
        for (what, legal_hold, kms, retention) in [
            (
                "acquire",
                cli_s3.legal_hold,
                &cli_s3.sse_kms_key_id,
                cli_s3.retention.clone(),
            ),
            (
                "config",
                c.legal_hold,
                &c.sse_kms_key_id,
                c.retention(chrono::Utc::now()),
            ),
        ] {
            assert_eq!(legal_hold, engine.legal_hold, "{what} legal hold");
            assert_eq!(kms, &engine.sse_kms_key_id, "{what} KMS key");
            assert_eq!(retention, engine.retention, "{what} retention");
        }
        assert_eq!(acquire.s3.max_attempts, config.s3.max_attempts);
        assert_eq!(acquire.s3.force_path_style, config.s3.force_path_style);
        assert_eq!(
            acquire.s3.require_object_lock,
            config.s3.require_object_lock
        );
        assert_eq!(
            u64::from(acquire.s3.max_attempts.get()),
            S3_MAX_ATTEMPTS.default.number()
        );
        // The one deliberate difference, declared beside each other above.
        assert_eq!(cli.progress_interval, ACQUIRE_PROGRESS_INTERVAL_SECS);
        assert_eq!(
            config.cloudwatch.progress_interval.as_secs(),
            PROGRESS_INTERVAL_SECS.default.number()
        );
        assert!(
            PROGRESS_INTERVAL_SECS
                .check(ACQUIRE_PROGRESS_INTERVAL_SECS)
                .is_ok()
        );
    }
}
