//! Command-line interface. Parsing only: every value is checked here or in the command it feeds, before
//! anything is opened.

use std::path::PathBuf;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};
use imaging::SnapshotId;
use serde::{Deserialize, Serialize};

use crate::config::raw::OnComplete;
use crate::config::settings::size::parse_byte_size;
use crate::config::settings::{self, Spec, engine_ranges};
use crate::ids;
use imaging::HashAlgorithm;
use imaging::PipelineConfig as pipeline;

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
    /// Config file [default: /etc/forensic-collector/config.toml]. Only this flag chooses another
    /// file: `FORENSIC_COLLECTOR_CONFIG` is refused (the environment may not choose what root reads).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// `--disk-root`: overrides `watch.disk_root`; its help names the declared default.
    #[arg(long, help = default_help("Root of the udev disk links (`watch.disk_root`)", &settings::DISK_ROOT))]
    pub disk_root: Option<PathBuf>,

    /// `--on-complete`: overrides `watch.on_complete`; the choices are `OnComplete`'s.
    #[arg(long, value_enum, help = default_help("What to do when the work is done (`watch.on_complete`)", &settings::ON_COMPLETE))]
    pub on_complete: Option<OnComplete>,
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
    /// Config file [default: /etc/forensic-collector/config.toml]. Only this flag chooses another
    /// file: `FORENSIC_COLLECTOR_CONFIG` is refused (the environment may not choose what root reads).
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
    /// Block device (e.g. /dev/nvme1n1), regular file, or EBS snapshot
    /// (`ebs-snapshot://snap-…`, read through the EBS direct APIs) to image.
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

    /// `--examiner`: who collects the evidence, recorded in the manifest (trimmed).
    #[arg(long, help = format!("Who collects the evidence, recorded in the manifest ({} characters, \
        no control characters; surrounding spaces are dropped)", engine_ranges::EXAMINER_CHARS.range_text()))]
    pub examiner: Option<String>,

    /// Whole-image hashes, comma-separated: sha256, blake3, md5, sha1.
    #[arg(long = "hash", default_value_t = list_default(&settings::HASHES))]
    pub hashes: String,

    /// Size of each piecewise hash (e.g. 1GiB, at least 1MiB); 0 turns piecewise hashing off.
    #[arg(long, default_value_t = size_default(&settings::PIECE_SIZE), value_parser = parse_byte_size)]
    #[serde(with = "bytes")]
    pub piece_size: ByteSize,

    /// Piecewise hash: blake3 (check a piece with `b3sum`) or sha256 (dc3dd-style hash logs, at
    /// the cost of a second SHA-256 pass).
    #[arg(long, default_value = text_default(&settings::PIECE_HASH),
        value_parser = clap::builder::PossibleValuesParser::new(HashAlgorithm::PIECE_CHOICES.map(HashAlgorithm::name)))]
    pub piece_hash: String,

    /// `--chunk-size`: bytes per read; the engine's range.
    #[arg(long, default_value_t = size_default(&settings::CHUNK_SIZE), value_parser = parse_byte_size,
        help = range_help(&format!("Bytes per read (a multiple of {}; read buffers stay within {})",
            settings::size_shown(engine_ranges::CHUNK_SIZE.min), settings::size_shown(pipeline::MAX_BUFFER_MEMORY as u64)),
            Some(engine_ranges::CHUNK_SIZE)))]
    #[serde(with = "bytes")]
    pub chunk_size: ByteSize,

    /// `--queue-depth`: reads in flight; the engine's range.
    #[arg(long, default_value_t = settings::QUEUE_DEPTH.default_as(),
        help = range_help("Reads in flight. Snapshot-restored EBS volumes get faster with more",
            Some(engine_ranges::QUEUE_DEPTH)))]
    pub queue_depth: usize,

    /// `--blocks-in-flight`: snapshot blocks fetched at once; the engine's range.
    #[arg(long, default_value_t = settings::BLOCKS_IN_FLIGHT.default_as(),
        help = range_help("GetSnapshotBlock requests in flight when the source is ebs-snapshot://…",
            Some(engine_ranges::BLOCKS_IN_FLIGHT)))]
    pub blocks_in_flight: usize,

    /// `--sector-retries`: extra attempts per unreadable sector; the engine's range.
    #[arg(long, default_value_t = settings::SECTOR_RETRIES.default_as(),
        help = range_help("Extra attempts for each unreadable sector before it is zero-filled",
            Some(engine_ranges::SECTOR_RETRIES)))]
    pub sector_retries: u32,

    /// Do not set the kernel read-only flag on the device (it is still opened read-only).
    #[arg(long)]
    pub no_kernel_read_only: bool,

    /// `--progress-interval`: seconds between progress log lines; its help shows the range of
    /// `settings::PROGRESS_INTERVAL_SECS`.
    #[arg(long, default_value_t = settings::ACQUIRE_PROGRESS_INTERVAL_SECS,
        help = range_help("Seconds between progress log lines when no progress bar is shown", settings::PROGRESS_INTERVAL_SECS.bound))]
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

    /// `--part-size`: the smallest multipart part; range in `settings::PART_SIZE`.
    #[arg(long, default_value_t = ByteSize(imaging::s3::limits::MIN_PART_SIZE), value_parser = parse_byte_size,
        help = range_help("Smallest multipart part (raised so the image fits in 10,000 parts)", settings::PART_SIZE.bound))]
    #[serde(with = "bytes")]
    pub part_size: ByteSize,

    /// `--parts-in-flight`: parts uploading at once; range in `settings::PARTS_IN_FLIGHT`.
    #[arg(long, help = range_help("Parts uploading at once. Unset, the upload follows the link: more parts \
            while they add throughput, up to what the part memory holds; a fixed n needs (n + 1) × part size of memory",
            settings::PARTS_IN_FLIGHT.bound))]
    pub parts_in_flight: Option<usize>,

    /// `--part-memory`: memory for part buffers; range in `settings::PART_MEMORY`.
    #[arg(long, default_value_t = size_default(&settings::PART_MEMORY), value_parser = parse_byte_size,
        help = range_help("Memory for part buffers; caps the part size at this / (parts in flight + 1), so memory \
            stays flat for any disk size. Images that need bigger parts are split into segments", settings::PART_MEMORY.bound))]
    #[serde(with = "bytes")]
    pub part_memory: ByteSize,

    /// `--max-object-size`: the largest object; range in `settings::MAX_OBJECT_SIZE`.
    #[arg(long, default_value_t = size_default(&settings::MAX_OBJECT_SIZE), value_parser = parse_byte_size,
        help = range_help("Largest object to create; bigger images are stored as numbered segment objects \
            (`NAME.image.dd.001`, …) listed in the manifest (S3's classic limit)", settings::MAX_OBJECT_SIZE.bound))]
    #[serde(with = "bytes")]
    pub max_object_size: ByteSize,

    /// `--s3-max-attempts`: attempts per S3 request; range in `settings::S3_MAX_ATTEMPTS`.
    #[arg(long, default_value_t = settings::S3_MAX_ATTEMPTS.default_as(),
        help = range_help("Attempts per S3 request before the upload is aborted. The SDK backs off exponentially with \
            jitter between attempts, at most 4 s each, so the default 10 rides out about half a minute \
            (at most 31 s of waiting) of throttling, 5xx answers or a restarting endpoint", settings::S3_MAX_ATTEMPTS.bound))]
    pub s3_max_attempts: u32,

    /// Encrypt with this KMS key (SSE-KMS).
    #[arg(long)]
    pub sse_kms_key_id: Option<String>,

    /// Object Lock retention mode for every object written (needs --object-lock-retain-until).
    #[arg(long, value_parser = OBJECT_LOCK_MODES, requires = "object_lock_retain_until")]
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

/// The Object Lock modes `--object-lock-mode` takes: one list for clap and for a JSON job.
const OBJECT_LOCK_MODES: [&str; 2] = ["governance", "compliance"];

impl AcquireArgs {
    /// The one check of every bounded or ruled value, for `acquire` flags and a `run-job` JSON job
    /// alike (clap only parses types): `acquire::run` calls it before anything is opened, so a
    /// child refuses exactly what `acquire` refuses. Returns the arguments as they are used:
    /// the examiner trimmed as the manifest records it.
    pub fn checked(&self) -> Result<Self, String> {
        let mut args = self.clone();
        // A snapshot source names a valid snapshot ID; other sources are paths, opened later.
        SnapshotId::from_source(&args.source.to_string_lossy())?;
        let s3 = &args.s3;
        settings::PART_SIZE.check(s3.part_size.as_u64())?;
        settings::PART_MEMORY.check(s3.part_memory.as_u64())?;
        settings::MAX_OBJECT_SIZE.check(s3.max_object_size.as_u64())?;
        if let Some(n) = s3.parts_in_flight {
            settings::PARTS_IN_FLIGHT.check(n as u64)?;
        }
        // As the configuration does: the planner raises parts to `--part-size` whatever the
        // memory says, so a budget that cannot hold them would be exceeded, not obeyed.
        settings::check_part_budget(
            s3.part_size.as_u64(),
            s3.parts_in_flight.map_or(1, |n| n as u64),
            s3.part_memory.as_u64(),
        )?;
        settings::S3_MAX_ATTEMPTS.check(u64::from(s3.s3_max_attempts))?;
        settings::PROGRESS_INTERVAL_SECS.check(args.progress_interval)?;
        match (&s3.object_lock_mode, &s3.object_lock_retain_until) {
            (None, None) => {}
            (Some(mode), Some(_)) if OBJECT_LOCK_MODES.contains(&mode.as_str()) => {}
            _ => {
                return Err(
                    "object lock needs a mode (governance or compliance) and a retain-until date"
                        .into(),
                );
            }
        }
        args.examiner = args
            .examiner
            .as_deref()
            .map(imaging::check_examiner)
            .transpose()?;
        // The rest of the text that reaches the manifest, an S3 header or object metadata: the
        // configuration's rule for each (`crate::ids`), so flags, a JSON job and the config take
        // the same values; the destination is parsed as the configuration's is (`S3Url`).
        args.instance_id = checked_text(
            args.instance_id.as_deref(),
            "--instance-id",
            ids::instance_id,
        )?;
        args.s3.expected_bucket_owner = checked_text(
            args.s3.expected_bucket_owner.as_deref(),
            "--expected-bucket-owner",
            ids::account_id,
        )?;
        args.s3.sse_kms_key_id = checked_text(
            args.s3.sse_kms_key_id.as_deref(),
            "--sse-kms-key-id",
            ids::kms_key_id,
        )?;
        if let Some(dest) = &args.dest {
            dest.parse::<imaging::S3Url>()
                .map_err(|e| format!("--dest: {e}"))?;
        }
        // Recorded in the manifest and the capture log, whose lines a newline would split.
        let source = args.source.to_string_lossy();
        if let Some(c) = source.chars().find(|c| c.is_control()) {
            return Err(format!(
                "source {source:?} contains the control character U+{:04X}",
                u32::from(c)
            ));
        }
        Ok(args)
    }
}

/// `value` as `check` accepts it, or the error naming `flag`.
fn checked_text(
    value: Option<&str>,
    flag: &str,
    check: fn(&str) -> Result<String, String>,
) -> Result<Option<String>, String> {
    value
        .map(|v| check(v).map_err(|e| format!("{flag}: {e}")))
        .transpose()
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

// Defaults, ranges and the help text that shows them come from `config::settings`, so `acquire`,
// the config file and the daemon's child share one default and one range per setting. The ranges
// are checked by `AcquireArgs::checked` (a usage error, exit 2, before anything is opened); the
// read settings (chunk, queue, pieces, retries) are the engine's and are checked by
// `PipelineConfig::validate`, also before the source is opened.

fn size_default(spec: &Spec) -> ByteSize {
    ByteSize(spec.default.number())
}

fn text_default(spec: &Spec) -> &'static str {
    match spec.default {
        settings::Initial::Text(text) => text,
        _ => "",
    }
}

fn list_default(spec: &Spec) -> String {
    match spec.default {
        settings::Initial::List(items) => items.join(","),
        _ => String::new(),
    }
}

/// `text` and `bound`, a `Spec`'s range or the engine's: `Parts uploading at once [range: 1-64]`.
fn range_help(text: &str, bound: Option<settings::Bound>) -> String {
    match bound {
        Some(bound) => format!("{text} [range: {}]", bound.range_text()),
        None => text.to_owned(),
    }
}

/// `text` and the default `spec` declares, for a flag whose default is the config's:
/// `Root of the udev disk links [default: /dev/disk]`.
fn default_help(text: &str, spec: &Spec) -> String {
    match spec.default {
        settings::Initial::Text(value) => format!("{text} [default: {value}]"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `acquire /dev/null ARGS` as clap parses it, unchecked.
    pub(crate) fn parsed(args: &[&str]) -> Result<AcquireArgs, String> {
        let mut argv = vec!["/dev/null"];
        argv.extend_from_slice(args);
        parsed_argv(&argv)
    }

    /// `acquire ARGV` as clap parses it, unchecked.
    pub(crate) fn parsed_argv(args: &[&str]) -> Result<AcquireArgs, String> {
        let mut argv = vec!["forensic-collector", "acquire"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Acquire(args) => Ok(*args),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    /// `acquire /dev/null ARGS` parsed and checked, as `acquire::run` sees it.
    fn acquire(args: &[&str]) -> Result<AcquireArgs, String> {
        parsed(args)?.checked()
    }

    /// Each bounded flag: its ends, and one step past each (Issue 9 item 6). Also run through
    /// `run-job` by `cmd::acquire`'s tests.
    pub(crate) const BOUNDED_FLAGS: [(&str, &str, &str, &str, &str); 6] = [
        ("--part-size", "5MiB", "5GiB", "5242879", "5368709121"),
        ("--part-memory", "10MiB", "10GiB", "10485759", "10737418241"),
        (
            "--max-object-size",
            "5MiB",
            "50000GiB",
            "5242879",
            "53687091200001",
        ),
        ("--parts-in-flight", "1", "64", "0", "65"),
        ("--s3-max-attempts", "1", "100", "0", "101"),
        ("--progress-interval", "1", "3600", "0", "3601"),
    ];

    #[test]
    fn defaults_are_within_their_bounds() {
        let args = acquire(&[]).unwrap();
        assert_eq!(args.s3.part_size.as_u64(), 5 << 20);
        assert_eq!(args.s3.parts_in_flight, None);
        assert_eq!(args.s3.part_memory.as_u64(), 160 << 20);
        assert_eq!(args.s3.max_object_size.as_u64(), 5 << 40);
        assert_eq!(args.s3.s3_max_attempts, 10);
        assert_eq!(args.progress_interval, 10);
    }

    // Issue 9 item 6: out-of-range S3 and progress values are usage errors, both sides.
    #[test]
    fn s3_and_progress_values_are_bounded_on_both_sides() {
        for (flag, low, high, too_low, too_high) in BOUNDED_FLAGS {
            for ok in [low, high] {
                acquire(&with_room(flag, ok)).unwrap_or_else(|e| panic!("{flag} {ok}: {e}"));
            }
            for bad in [too_low, too_high] {
                let err = acquire(&with_room(flag, bad)).unwrap_err();
                assert!(err.contains("must be between"), "{flag} {bad}: {err}");
            }
        }
        let err = acquire(&["--part-size", "1TiB"]).unwrap_err();
        assert!(err.contains("part size 1.0 TiB"), "{err}");
        assert!(acquire(&["--parts-in-flight", "many"]).is_err());
    }

    // Issue 13: `ebs-snapshot://` must name a snapshot ID; anything else there is a usage error
    // before anything is opened or asked of AWS. Other sources stay paths.
    #[test]
    fn a_snapshot_source_names_a_valid_snapshot_id() {
        let source = |text: &str| {
            let mut args = parsed(&[]).unwrap();
            args.source = text.into();
            args.checked().map(|a| a.source)
        };
        let id = "ebs-snapshot://snap-0123456789abcdef0";
        assert_eq!(source(id), Ok(id.into()));
        assert_eq!(source("/dev/nvme1n1"), Ok("/dev/nvme1n1".into()));
        for bad in [
            "ebs-snapshot://",
            "ebs-snapshot://snap-xyz",
            "ebs-snapshot://vol-0123456789abcdef0",
            "ebs-snapshot://snap-0123456789abcdef0/",
            "ebs-snapshot://SNAP-0123456789abcdef0",
        ] {
            let err = source(bad).unwrap_err();
            assert!(err.contains("not an EBS snapshot ID"), "{bad}: {err}");
        }
    }

    /// `flag value`, with part memory enough for any part size and count the flag allows (the
    /// budget is checked too, see `the_part_budget_is_checked_on_flags_as_in_the_configuration`).
    pub(crate) fn with_room<'a>(flag: &'a str, value: &'a str) -> Vec<&'a str> {
        let mut args = vec![flag, value];
        if flag != "--part-memory" {
            args.extend(["--part-memory", "10GiB"]);
        }
        args
    }

    // Issue 12 review: flags and `run-job` refuse parts the part memory cannot hold, as the
    // configuration does (the planner would otherwise raise parts past the budget).
    #[test]
    fn the_part_budget_is_checked_on_flags_as_in_the_configuration() {
        let err = acquire(&["--part-size", "1GiB"]).unwrap_err();
        assert!(err.contains("cannot hold"), "{err}");
        acquire(&["--part-size", "1GiB", "--part-memory", "2GiB"]).unwrap();
        // 31 parts of 5 MiB plus the one filling are the default 160 MiB; 32 are not.
        acquire(&["--parts-in-flight", "31"]).unwrap();
        let err = acquire(&["--parts-in-flight", "32"]).unwrap_err();
        assert!(err.contains("cannot hold"), "{err}");
    }

    // Issue 19: `bytesize` saturated sizes past 64 bits (`--piece-size 16EiB` was recorded as
    // 18446744073709551615, `--max-object-size 100EiB` shown as 16.0 EiB); clap now refuses them,
    // naming the flag (a usage error, exit 2).
    #[test]
    fn a_size_past_64_bits_is_refused_naming_its_flag() {
        for flag in [
            "--piece-size",
            "--chunk-size",
            "--part-size",
            "--part-memory",
            "--max-object-size",
        ] {
            for size in ["16EiB", "100EiB", "18446744073709551616"] {
                let err = parsed(&[flag, size]).unwrap_err();
                assert!(
                    err.contains(flag) && err.contains("too large"),
                    "{flag} {size}: {err}"
                );
            }
        }
        let args = parsed(&["--piece-size", "15EiB"]).unwrap();
        assert_eq!(args.piece_size.as_u64(), 15 << 60);
    }

    #[test]
    fn a_terabyte_chunk_parses_and_is_left_to_the_engine() {
        // The engine bounds the read settings (before the source is opened); parsing keeps them.
        let args = acquire(&["--chunk-size", "1TiB"]).unwrap();
        assert_eq!(args.chunk_size.as_u64(), 1 << 40);
    }

    // Issue 10: the examiner is checked once and stored as the manifest records it, trimmed.
    #[test]
    fn the_examiner_is_checked_and_stored_trimmed() {
        assert_eq!(
            acquire(&["--examiner", "  J. Doe "])
                .unwrap()
                .examiner
                .as_deref(),
            Some("J. Doe")
        );
        assert_eq!(acquire(&[]).unwrap().examiner, None);
        assert!(
            acquire(&["--examiner", "a\nb"])
                .unwrap_err()
                .contains("examiner")
        );
        assert!(
            acquire(&["--examiner", "  "])
                .unwrap_err()
                .contains("examiner")
        );
    }

    // Issue 19: `acquire` took what the configuration refuses (`--expected-bucket-owner abc`),
    // what reaches the manifest with a newline in it (`--instance-id`), and destinations S3
    // refuses only once the upload starts (exit 30, not 2). One rule each, as the config's.
    #[test]
    fn text_flags_are_held_to_the_configurations_rules() {
        let refused = |args: &[&str], needle: &str| {
            let err = acquire(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        };
        refused(
            &["--expected-bucket-owner", "abc"],
            "--expected-bucket-owner",
        );
        refused(&["--expected-bucket-owner", "12345678901"], "12-digit");
        refused(
            &["--instance-id", "i-0123456789abcdef0\nforged"],
            "--instance-id",
        );
        refused(&["--instance-id", "host-1"], "EC2 instance ID");
        refused(&["--sse-kms-key-id", "alias/a\nb"], "--sse-kms-key-id");
        refused(
            &["--dest", "s3://evidence/cases\nforged"],
            "control character",
        );
        refused(&["--dest", "s3://evidence//cases"], "empty");
        let mut args = parsed(&[]).unwrap();
        args.source = "/dev/sdb\nforged".into();
        assert!(args.checked().unwrap_err().contains("control character"));

        let args = acquire(&[
            "--expected-bucket-owner",
            "123456789012",
            "--instance-id",
            "i-0123456789abcdef0",
            "--sse-kms-key-id",
            " alias/evidence ",
            "--dest",
            "s3://evidence/cases/",
        ])
        .unwrap();
        assert_eq!(
            args.s3.expected_bucket_owner.as_deref(),
            Some("123456789012")
        );
        assert_eq!(args.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(args.s3.sse_kms_key_id.as_deref(), Some("alias/evidence"));
    }

    // Issue 10: an object lock needs both a known mode and a date, whichever way it arrives.
    #[test]
    fn an_object_lock_needs_a_known_mode_and_a_date() {
        let mut args = acquire(&[]).unwrap();
        args.s3.object_lock_mode = Some("governance".into());
        assert!(args.checked().unwrap_err().contains("object lock"));
        args.s3.object_lock_retain_until = Some("2030-01-01T00:00:00Z".into());
        assert_eq!(args.checked(), Ok(args.clone()));
        args.s3.object_lock_mode = Some("forever".into());
        assert!(args.checked().unwrap_err().contains("object lock"));
        args.s3.object_lock_mode = None;
        assert!(args.checked().unwrap_err().contains("object lock"));
    }

    fn help(command: &str) -> String {
        use clap::CommandFactory;
        Cli::command()
            .find_subcommand_mut(command)
            .expect("subcommand")
            .render_help()
            .to_string()
    }

    // Issue 10: `--help` shows each range and config default as `settings` declares it, and
    // `--on-complete` offers `OnComplete`'s values.
    #[test]
    fn help_shows_the_declared_ranges_and_defaults() {
        let acquire = help("acquire");
        for bound in [
            settings::PART_SIZE.bound.unwrap(),
            settings::PART_MEMORY.bound.unwrap(),
            settings::MAX_OBJECT_SIZE.bound.unwrap(),
            settings::PARTS_IN_FLIGHT.bound.unwrap(),
            settings::S3_MAX_ATTEMPTS.bound.unwrap(),
            settings::PROGRESS_INTERVAL_SECS.bound.unwrap(),
            engine_ranges::QUEUE_DEPTH,
            engine_ranges::BLOCKS_IN_FLIGHT,
            engine_ranges::SECTOR_RETRIES,
            engine_ranges::CHUNK_SIZE,
        ] {
            let range = format!("[range: {}]", bound.range_text());
            assert!(acquire.contains(&range), "{range} missing from:\n{acquire}");
        }
        let examiner = format!("({} characters", engine_ranges::EXAMINER_CHARS.range_text());
        assert!(
            acquire.contains(&examiner),
            "{examiner} missing from:\n{acquire}"
        );
        let watch = help("watch");
        for default in ["[default: /dev/disk]", "[default: poweroff]"] {
            assert!(watch.contains(default), "{default} missing from:\n{watch}");
        }
        assert!(watch.contains("poweroff, exit, stay"), "{watch}");
        assert_eq!(
            range_help("x", settings::CONCURRENCY.bound),
            "x [range: 1-8]"
        );
        assert_eq!(range_help("x", settings::BUCKET.bound), "x");
        assert_eq!(
            default_help("x", &settings::ON_COMPLETE),
            "x [default: poweroff]"
        );
        assert_eq!(default_help("x", &settings::SETTLE_MS), "x");
        let parsed = Cli::try_parse_from(["fc", "watch", "--on-complete", "stay"]).unwrap();
        match parsed.command {
            Command::Watch(args) => assert_eq!(args.on_complete, Some(OnComplete::Stay)),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["fc", "watch", "--on-complete", "reboot"]).is_err());
    }
}
