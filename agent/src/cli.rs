//! Command-line interface. Parsing only: every value is checked here or in the command it feeds, before
//! anything is opened.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use imaging::SnapshotId;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::flags::SettingFlags;
use crate::config::raw::OnComplete;
use crate::config::settings::{self, Spec, engine_ranges};
use crate::ids;

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
    /// The signed custody record's keys (docs/custody.md).
    #[command(subcommand)]
    Custody(CustodyCommand),
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

/// `custody` subcommands.
#[derive(Debug, Subcommand)]
pub enum CustodyCommand {
    /// Write the public half of a KMS signing key as PEM (`kms:GetPublicKey`), for
    /// `verify --public-key` and openssl on a machine without AWS access.
    ExportKey(ExportKeyArgs),
}

/// `custody export-key` options.
#[derive(Debug, Args)]
pub struct ExportKeyArgs {
    /// The key: ID, alias or ARN.
    #[arg(long)]
    pub kms_key_id: String,

    /// Write the PEM to this new file (never over an existing one); without it, to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
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

/// `acquire` options. Also the job the daemon hands each child as JSON (`run-job`). A setting the
/// configuration has too gets its flag from the settings table (`settings`, below); an option of
/// `acquire` alone is one field here and one line where the daemon fills it (the compiler asks).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireArgs {
    /// Block device (e.g. /dev/nvme1n1), regular file, EBS snapshot (`ebs-snapshot://snap-…`,
    /// read through the EBS direct APIs), or this host's physical memory (`memory://`, imaged as
    /// LiME from /proc/kcore, /dev/crash or /dev/mem; `memory://kcore` etc. names one) to image.
    pub source: PathBuf,

    /// Directory for the image, its sidecar, capture log and manifest (created if missing).
    #[arg(long, default_value = "evidence", conflicts_with = "dest")]
    pub out: PathBuf,

    /// Stream to S3 instead: `s3://BUCKET/PREFIX`; objects go under PREFIX/<incident>/disk_evidence/
    /// (memory: memory_evidence/).
    #[arg(long)]
    pub dest: Option<String>,

    /// Object Lock retention mode for every object written (needs --object-lock-retain-until).
    #[arg(long, value_parser = lock_mode, requires = "object_lock_retain_until")]
    pub object_lock_mode: Option<String>,

    /// End of the Object Lock retention, RFC 3339 (e.g. 2027-01-01T00:00:00Z).
    #[arg(long, requires = "object_lock_mode")]
    pub object_lock_retain_until: Option<String>,

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

    /// A Step Functions task token: at the end, answer the task with SendTaskSuccess (where the
    /// evidence is) or SendTaskFailure (`ForensicCollector.<exit>`), with this host's credentials
    /// (`states:SendTaskSuccess`/`SendTaskFailure`). For a state machine that starts the capture
    /// through SSM Run Command and waits with `.waitForTaskToken`.
    #[arg(long)]
    #[serde(default)]
    pub task_token: Option<String>,

    /// The settings `acquire` shares with the configuration (reading, hashing, S3 upload), one flag
    /// per key declared with a flag in `config::settings`, checked as the configuration is.
    #[command(flatten)]
    pub settings: SettingFlags,

    /// When the `watch` daemon saw the disk (its child jobs only): the custody record's first
    /// event.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<chrono::DateTime<chrono::Utc>>,

    /// Where each setting came from (`section.key` → `file …`, `user data (json)`, …), as the
    /// `watch` daemon's configuration says (its child jobs only): the custody record's
    /// `settings`. A command line's own are its flags over the defaults.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub setting_origins: std::collections::BTreeMap<String, String>,
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

    /// Check the custody statement's signature offline with this public key (PEM, from
    /// `custody export-key` or `aws kms get-public-key`) instead of asking KMS; an unsigned
    /// record then fails.
    #[arg(long, value_name = "PEM")]
    pub public_key: Option<PathBuf>,
}

/// `--object-lock-mode`: a mode as the configuration takes it (`ids::object_lock_mode`).
fn lock_mode(text: &str) -> Result<String, String> {
    ids::object_lock_mode(text).map(|_| text.to_owned())
}

impl AcquireArgs {
    /// The one check of every bounded or ruled value, for `acquire` flags and a `run-job` JSON job
    /// alike (clap only parses types): `acquire::run` calls it before anything is opened, so a
    /// child refuses exactly what `acquire` refuses. Returns the arguments as they are used (the
    /// examiner trimmed as the manifest records it) and the settings they make, checked as the
    /// configuration is (`config::flags`).
    pub fn checked(&self) -> Result<(Self, Config), String> {
        let mut args = self.clone();
        // A snapshot source names a valid snapshot ID; other sources are paths, opened later.
        SnapshotId::from_source(&args.source.to_string_lossy())?;
        crate::cmd::acquire::memory_source(&args.source.to_string_lossy())?;
        settings::PROGRESS_INTERVAL_SECS.check(args.progress_interval)?;
        match (&args.object_lock_mode, &args.object_lock_retain_until) {
            (None, None) => {}
            (Some(mode), Some(_)) => {
                ids::object_lock_mode(mode)?;
            }
            _ => return Err("object lock needs a mode and a retain-until date".into()),
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
        let config = args.settings.config()?;
        Ok((args, config))
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

// The settings `acquire` shares with the configuration get their flags, help, defaults and ranges
// from `config::settings` through `config::flags`; the few flags spelt here show a declared
// default or range with these two helpers.

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
        Ok(parsed(args)?.checked()?.0)
    }

    /// The settings `acquire /dev/null ARGS` makes, checked.
    fn settings_of(args: &[&str]) -> Result<Config, String> {
        Ok(parsed(args)?.checked()?.1)
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
        let s3 = settings_of(&[]).unwrap().s3;
        assert_eq!(s3.min_part_size, 5 << 20);
        assert_eq!(s3.parts_in_flight, None);
        assert_eq!(s3.part_memory, 160 << 20);
        assert_eq!(s3.max_object_size, 5 << 40);
        assert_eq!(s3.max_attempts.get(), 10);
        assert_eq!(acquire(&[]).unwrap().progress_interval, 10);
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
            args.checked().map(|(a, _)| a.source)
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
    // 18446744073709551615, `--max-object-size 100EiB` shown as 16.0 EiB); they are refused,
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
                let err = acquire(&[flag, size]).unwrap_err();
                assert!(
                    err.contains(flag) && err.contains("too large"),
                    "{flag} {size}: {err}"
                );
            }
        }
        let imaging = settings_of(&["--piece-size", "15EiB"]).unwrap().imaging;
        assert_eq!(imaging.piece_size, Some(15 << 60));
    }

    #[test]
    fn a_terabyte_chunk_parses_and_is_left_to_the_engine() {
        // The engine bounds the read settings (before the source is opened); parsing keeps them.
        let err = acquire(&["--chunk-size", "1TiB"]).unwrap_err();
        assert!(err.starts_with("--chunk-size: "), "{err}");
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

        let (args, settings) = parsed(&[
            "--expected-bucket-owner",
            "123456789012",
            "--instance-id",
            "i-0123456789abcdef0",
            "--sse-kms-key-id",
            " alias/evidence ",
            "--dest",
            "s3://evidence/cases/",
        ])
        .unwrap()
        .checked()
        .unwrap();
        assert_eq!(
            settings.s3.expected_bucket_owner.as_deref(),
            Some("123456789012")
        );
        assert_eq!(args.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(
            settings.s3.sse_kms_key_id.as_deref(),
            Some("alias/evidence")
        );
    }

    // Issue 10: an object lock needs both a known mode and a date, whichever way it arrives.
    #[test]
    fn an_object_lock_needs_a_known_mode_and_a_date() {
        let mut args = acquire(&[]).unwrap();
        args.object_lock_mode = Some("governance".into());
        assert!(args.checked().unwrap_err().contains("object lock"));
        args.object_lock_retain_until = Some("2030-01-01T00:00:00Z".into());
        assert_eq!(args.checked().map(|(a, _)| a), Ok(args.clone()));
        args.object_lock_mode = Some("COMPLIANCE".into());
        assert_eq!(args.checked().map(|(a, _)| a), Ok(args.clone()));
        args.object_lock_mode = Some("forever".into());
        assert!(
            args.checked()
                .unwrap_err()
                .contains("not an Object Lock mode")
        );
        args.object_lock_mode = None;
        assert!(args.checked().unwrap_err().contains("object lock"));
        assert!(
            parsed(&[
                "--object-lock-mode",
                "forever",
                "--object-lock-retain-until",
                "x"
            ])
            .is_err()
        );
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
