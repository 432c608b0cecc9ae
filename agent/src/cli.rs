//! Command-line interface. Parsing only: every value is checked here or in the command it feeds, before
//! anything is opened.

use std::path::PathBuf;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::config::settings::{self, Spec};

/// Images block devices as verifiable forensic evidence.
#[derive(Debug, Parser)]
#[command(name = "forensic-collector", version = crate::VERSION_LINE, about,
    after_help = crate::exit::Exit::help_text())]
pub struct Cli {
    /// Log as JSON lines (the default under systemd, where JOURNAL_STREAM is set).
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Image a block device (or a file) once: hashes, image, sidecar and manifest into a directory.
    Acquire(Box<AcquireArgs>),
    /// Re-hash an image and compare it with its manifest.
    Verify(VerifyArgs),
    /// Inspect the daemon's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run as the collector daemon: watch for attached volumes, image each to S3, report to
    /// CloudWatch Logs, then exit, stay or power off (the systemd service).
    Watch(WatchArgs),
    /// `acquire` with its arguments as one JSON object on stdin (the `watch` daemon's children):
    /// the daemon serialises the `AcquireArgs` it built from the checked configuration instead of
    /// spelling every flag again. Always prints the result line on stdout.
    #[command(hide = true)]
    RunJob,
}

/// `watch` options; each overrides the same key of the configuration (see docs/config.md).
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Config file [default: $FORENSIC_COLLECTOR_CONFIG, else /etc/forensic-collector/config.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Root of the udev disk links (`watch.disk_root`) [default: /dev/disk].
    #[arg(long)]
    pub disk_root: Option<PathBuf>,

    /// What to do when the work is done (`watch.on_complete`) [default: poweroff].
    #[arg(long, value_parser = ["poweroff", "exit", "stay"])]
    pub on_complete: Option<String>,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the config file, EC2 user data and environment as `watch` would, validate, and print
    /// every key with its source; `--json` prints JSON.
    Check(ConfigCheckArgs),
}

/// `config check` options.
#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Config file [default: $FORENSIC_COLLECTOR_CONFIG, else /etc/forensic-collector/config.toml].
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Exit 0 even without a bucket or incident ID (checking an image before any job exists).
    #[arg(long)]
    pub allow_missing_job: bool,
}

/// `acquire` options. Also the job the daemon hands each child as JSON (`run-job`), so a new option
/// is one field here and one line where the daemon fills it (the compiler asks for it).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireArgs {
    /// Block device (e.g. /dev/nvme1n1) or regular file to image.
    pub source: PathBuf,

    /// Directory for the image, its sidecar, capture log and manifest (created if missing).
    #[arg(long, default_value = "evidence", conflicts_with = "dest")]
    pub out: PathBuf,

    /// Stream to S3 instead: `s3://BUCKET/PREFIX`; objects go under PREFIX/<incident>/disk_evidence/.
    #[arg(long)]
    pub dest: Option<String>,

    /// S3 destination settings.
    #[command(flatten)]
    pub s3: S3Args,

    /// Evidence name used for every output file [default: EBS volume ID, else device or file name].
    #[arg(long)]
    pub name: Option<String>,

    /// When evidence of this name is already at the destination, store this capture under the first
    /// free name `<name>-2` … `<name>-99` instead of refusing. Existing evidence is never replaced.
    #[arg(long)]
    pub new_capture: bool,

    /// Incident ID recorded in the manifest.
    #[arg(long)]
    pub incident: Option<String>,

    /// Who collects the evidence, recorded in the manifest (1-128 characters, no control
    /// characters).
    #[arg(long, value_parser = examiner)]
    pub examiner: Option<String>,

    /// Whole-image hashes, comma-separated: sha256, blake3, md5, sha1.
    #[arg(long = "hash", default_value_t = list_default(&settings::HASHES))]
    pub hashes: String,

    /// Size of each piecewise SHA-256 (e.g. 1GiB, at least 1MiB); 0 turns piecewise hashing off.
    #[arg(long, default_value_t = size_default(&settings::PIECE_SIZE))]
    #[serde(with = "bytes")]
    pub piece_size: ByteSize,

    /// Bytes per read (a multiple of 4 KiB, up to 64 MiB; read buffers stay within 1 GiB).
    #[arg(long, default_value_t = size_default(&settings::CHUNK_SIZE))]
    #[serde(with = "bytes")]
    pub chunk_size: ByteSize,

    /// Reads in flight (1-256). Snapshot-restored EBS volumes get faster with more.
    #[arg(long, default_value_t = settings::QUEUE_DEPTH.default_as())]
    pub queue_depth: usize,

    /// Extra attempts (0-10) for each unreadable sector before it is zero-filled.
    #[arg(long, default_value_t = settings::SECTOR_RETRIES.default_as())]
    pub sector_retries: u32,

    /// Do not set the kernel read-only flag on the device (it is still opened read-only).
    #[arg(long)]
    pub no_kernel_read_only: bool,

    /// Seconds between progress log lines when no progress bar is shown (1-3600).
    #[arg(long, default_value_t = settings::ACQUIRE_PROGRESS_INTERVAL_SECS, value_parser = progress_interval)]
    pub progress_interval: u64,

    /// The suspect's original EBS volume, when the source is a copy made from its snapshot:
    /// recorded in the manifest and on the S3 objects.
    #[arg(long)]
    pub source_volume_id: Option<String>,

    /// EC2 instance ID of the collecting host, recorded in the manifest (the `watch` daemon passes
    /// the one IMDS gave it).
    #[arg(long)]
    pub instance_id: Option<String>,

    /// Print one JSON line on stdout at the end: status, exit code, hashes, where the evidence is,
    /// bad ranges (or the error). For callers such as the `watch` daemon and SSM Run Command.
    #[arg(long)]
    pub result_json: bool,
}

/// S3 options of `acquire --dest`.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Args {
    /// Address buckets as ENDPOINT/BUCKET (S3-compatible servers) instead of BUCKET.ENDPOINT.
    #[arg(long)]
    pub s3_force_path_style: bool,

    /// Smallest multipart part, 8 MiB-5 GiB (raised so the image fits in 10,000 parts).
    #[arg(long, default_value_t = ByteSize(imaging::sink::s3::limits::MIN_PART_SIZE), value_parser = part_size)]
    #[serde(with = "bytes")]
    pub part_size: ByteSize,

    /// Parts uploading at once (1-64); memory is (this + 1) × part size.
    #[arg(long, default_value_t = settings::PARTS_IN_FLIGHT.default_as(), value_parser = parts_in_flight)]
    pub parts_in_flight: usize,

    /// Memory for part buffers (16 MiB-10 GiB); caps the part size at this / (parts in flight + 1), so memory
    /// stays flat for any disk size. Images that need bigger parts are split into segments.
    #[arg(long, default_value_t = size_default(&settings::PART_MEMORY), value_parser = part_memory)]
    #[serde(with = "bytes")]
    pub part_memory: ByteSize,

    /// Largest object to create; bigger images are stored as numbered segment objects
    /// (`NAME.image.dd.001`, …) listed in the manifest (S3's classic limit).
    #[arg(long, default_value_t = size_default(&settings::MAX_OBJECT_SIZE), value_parser = max_object_size)]
    #[serde(with = "bytes")]
    pub max_object_size: ByteSize,

    /// Attempts per S3 request before the upload is aborted. The SDK backs off exponentially with
    /// jitter between attempts, at most 4 s each, so the default 10 rides out about half a minute
    /// (at most 31 s of waiting) of throttling, 5xx answers or a restarting endpoint.
    #[arg(long, default_value_t = settings::S3_MAX_ATTEMPTS.default_as(), value_parser = s3_max_attempts)]
    pub s3_max_attempts: u32,

    /// Encrypt with this KMS key (SSE-KMS).
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,

    /// Object Lock retention mode for every object written (needs --object-lock-retain-until).
    #[arg(long, value_parser = ["governance", "compliance"], requires = "object_lock_retain_until")]
    pub object_lock_mode: Option<String>,

    /// End of the Object Lock retention, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
    #[arg(long, requires = "object_lock_mode")]
    pub object_lock_retain_until: Option<String>,

    /// Put an Object Lock legal hold on every object written.
    #[arg(long)]
    pub legal_hold: bool,

    /// Refuse a bucket that does not have Object Lock enabled (implied by the lock options).
    #[arg(long)]
    pub require_object_lock: bool,

    /// Refuse to write unless the bucket belongs to this account ID.
    #[arg(long)]
    pub expected_bucket_owner: Option<String>,
}

/// `verify` options.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The manifest written by `acquire`: a local path (the image is looked up beside it) or
    /// `s3://BUCKET/KEY.manifest.json` (the image object it names is streamed back).
    pub manifest: String,

    /// Address buckets as ENDPOINT/BUCKET (S3-compatible servers).
    #[arg(long)]
    pub s3_force_path_style: bool,
}

impl AcquireArgs {
    /// The checks clap's value parsers make, for a job that arrived as JSON (`run-job`) and so
    /// never went through them: a child refuses exactly what `acquire` refuses.
    pub fn check(&self) -> Result<(), String> {
        let s3 = &self.s3;
        settings::PART_SIZE.check(s3.part_size.as_u64())?;
        settings::PART_MEMORY.check(s3.part_memory.as_u64())?;
        settings::MAX_OBJECT_SIZE.check(s3.max_object_size.as_u64())?;
        settings::PARTS_IN_FLIGHT.check(s3.parts_in_flight as u64)?;
        settings::S3_MAX_ATTEMPTS.check(u64::from(s3.s3_max_attempts))?;
        settings::PROGRESS_INTERVAL_SECS.check(self.progress_interval)?;
        if let Some(name) = &self.examiner {
            examiner(name)?;
        }
        match (&s3.object_lock_mode, &s3.object_lock_retain_until) {
            (None, None) => Ok(()),
            (Some(mode), Some(_)) if ["governance", "compliance"].contains(&mode.as_str()) => {
                Ok(())
            }
            _ => Err(
                "object lock needs a mode (governance or compliance) and a retain-until date"
                    .into(),
            ),
        }
    }
}

/// Byte sizes travel in the JSON job as plain integers: exact, and no unit text to parse.
mod bytes {
    use bytesize::ByteSize;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(size: &ByteSize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(size.as_u64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        u64::deserialize(d).map(ByteSize)
    }
}

// Defaults and value parsers come from `config::settings`, so `acquire`, the config file and the
// daemon's child share one default and one range per setting, and a bad value is a usage error
// (exit 2) before anything is opened. The read settings (chunk, queue, pieces, retries) are the
// engine's and are checked by `PipelineConfig::validate`, also before the source is opened.

fn size_default(spec: &Spec) -> ByteSize {
    ByteSize(spec.default.number())
}

fn list_default(spec: &Spec) -> String {
    match spec.default {
        settings::Initial::List(items) => items.join(","),
        _ => String::new(),
    }
}

fn bounded_size(text: &str, spec: &Spec) -> Result<ByteSize, String> {
    let size = text.trim().parse::<ByteSize>()?;
    spec.check(size.as_u64()).map(ByteSize)
}

fn bounded_number(text: &str, spec: &Spec) -> Result<u64, String> {
    let n = text
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("{text:?} is not a whole number: {e}"))?;
    spec.check(n)
}

fn part_size(text: &str) -> Result<ByteSize, String> {
    bounded_size(text, &settings::PART_SIZE)
}

fn part_memory(text: &str) -> Result<ByteSize, String> {
    bounded_size(text, &settings::PART_MEMORY)
}

fn max_object_size(text: &str) -> Result<ByteSize, String> {
    bounded_size(text, &settings::MAX_OBJECT_SIZE)
}

fn parts_in_flight(text: &str) -> Result<usize, String> {
    let n = bounded_number(text, &settings::PARTS_IN_FLIGHT)?;
    usize::try_from(n).map_err(|e| e.to_string())
}

fn s3_max_attempts(text: &str) -> Result<u32, String> {
    let n = bounded_number(text, &settings::S3_MAX_ATTEMPTS)?;
    u32::try_from(n).map_err(|e| e.to_string())
}

fn progress_interval(text: &str) -> Result<u64, String> {
    bounded_number(text, &settings::PROGRESS_INTERVAL_SECS)
}

fn examiner(text: &str) -> Result<String, String> {
    imaging::manifest::check_examiner(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire(args: &[&str]) -> Result<AcquireArgs, String> {
        let mut argv = vec!["forensic-collector", "acquire", "/dev/null"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Acquire(args) => Ok(*args),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    #[test]
    fn defaults_are_within_their_bounds() {
        let args = acquire(&[]).unwrap();
        assert_eq!(args.s3.part_size.as_u64(), 8 << 20);
        assert_eq!(args.s3.parts_in_flight, 4);
        assert_eq!(args.s3.part_memory.as_u64(), 160 << 20);
        assert_eq!(args.s3.max_object_size.as_u64(), 5 << 40);
        assert_eq!(args.s3.s3_max_attempts, 10);
        assert_eq!(args.progress_interval, 10);
    }

    // Issue 9 item 6: out-of-range S3 and progress values are usage errors, both sides.
    #[test]
    fn s3_and_progress_values_are_bounded_on_both_sides() {
        let cases: [(&str, &str, &str, &str, &str); 6] = [
            ("--part-size", "8MiB", "5GiB", "8388607", "5368709121"),
            ("--part-memory", "16MiB", "10GiB", "16777215", "10737418241"),
            (
                "--max-object-size",
                "8MiB",
                "50000GiB",
                "8388607",
                "53687091200001",
            ),
            ("--parts-in-flight", "1", "64", "0", "65"),
            ("--s3-max-attempts", "1", "100", "0", "101"),
            ("--progress-interval", "1", "3600", "0", "3601"),
        ];
        for (flag, low, high, too_low, too_high) in cases {
            for ok in [low, high] {
                acquire(&[flag, ok]).unwrap_or_else(|e| panic!("{flag} {ok}: {e}"));
            }
            for bad in [too_low, too_high] {
                let err = acquire(&[flag, bad]).unwrap_err();
                assert!(err.contains("must be between"), "{flag} {bad}: {err}");
            }
        }
        let err = acquire(&["--part-size", "1TiB"]).unwrap_err();
        assert!(err.contains("part size 1.0 TiB"), "{err}");
        assert!(acquire(&["--parts-in-flight", "many"]).is_err());
    }

    #[test]
    fn a_terabyte_chunk_parses_and_is_left_to_the_engine() {
        // The engine bounds the read settings (before the source is opened); parsing keeps them.
        let args = acquire(&["--chunk-size", "1TiB"]).unwrap();
        assert_eq!(args.chunk_size.as_u64(), 1 << 40);
    }
}
