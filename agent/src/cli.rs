//! Command-line interface. Parsing only: every value is checked here or in the command it feeds, before
//! anything is opened.

use std::path::PathBuf;

use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};

/// Images block devices as verifiable forensic evidence.
#[derive(Debug, Parser)]
#[command(name = "forensic-collector", version = crate::VERSION_LINE, about)]
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

/// `acquire` options.
#[derive(Debug, Args)]
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

    /// Incident ID recorded in the manifest.
    #[arg(long)]
    pub incident: Option<String>,

    /// Whole-image hashes, comma-separated: sha256, blake3, md5, sha1.
    #[arg(long = "hash", default_value = "sha256,blake3")]
    pub hashes: String,

    /// Size of each piecewise SHA-256 (e.g. 1GiB); 0 turns piecewise hashing off.
    #[arg(long, default_value = "1GiB")]
    pub piece_size: ByteSize,

    /// Bytes per read (a multiple of 4 KiB).
    #[arg(long, default_value = "1MiB")]
    pub chunk_size: ByteSize,

    /// Reads in flight. Snapshot-restored EBS volumes get faster with more.
    #[arg(long, default_value_t = imaging::pipeline::DEFAULT_QUEUE_DEPTH)]
    pub queue_depth: usize,

    /// Extra attempts for each unreadable sector before it is zero-filled.
    #[arg(long, default_value_t = imaging::pipeline::DEFAULT_SECTOR_RETRIES)]
    pub sector_retries: u32,

    /// Do not set the kernel read-only flag on the device (it is still opened read-only).
    #[arg(long)]
    pub no_kernel_read_only: bool,

    /// Seconds between progress log lines when no progress bar is shown.
    #[arg(long, default_value_t = 10)]
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
#[derive(Debug, Args)]
pub struct S3Args {
    /// Address buckets as ENDPOINT/BUCKET (S3-compatible servers) instead of BUCKET.ENDPOINT.
    #[arg(long)]
    pub s3_force_path_style: bool,

    /// Smallest multipart part (raised so the image fits in 10,000 parts).
    #[arg(long, default_value = "8MiB")]
    pub part_size: ByteSize,

    /// Parts uploading at once; memory is (this + 1) × part size.
    #[arg(long, default_value_t = 4)]
    pub parts_in_flight: usize,

    /// Memory for part buffers; caps the part size at this / (parts in flight + 1), so memory
    /// stays flat for any disk size. Images that need bigger parts are split into segments.
    #[arg(long, default_value = "160MiB")]
    pub part_memory: ByteSize,

    /// Largest object to create; bigger images are stored as numbered segment objects
    /// (`NAME.image.dd.001`, …) listed in the manifest [default: 5TiB, S3's classic limit].
    #[arg(long, default_value = "5TiB")]
    pub max_object_size: ByteSize,

    /// Attempts per S3 request before the upload is aborted. The SDK backs off exponentially with
    /// jitter between attempts, at most 4 s each, so the default 10 rides out about half a minute
    /// (at most 31 s of waiting) of throttling, 5xx answers or a restarting endpoint.
    #[arg(long, default_value_t = 10)]
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
