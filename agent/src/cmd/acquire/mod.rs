//! `forensic-collector acquire`: one source, one image, one manifest, in a local directory or an S3 prefix.
//!
//! Order of writes is the evidence contract: image → SHA-256 sidecar → capture log → manifest, each
//! created exclusively in the run's own staging directory (locally) and published under its final
//! name only once the manifest is durable (image, log, manifest, then the sidecar), never over an
//! existing name. So the manifest's presence means the rest is complete. Any failure removes what
//! the run wrote and writes no manifest; a rerun is then possible.
//!
//! Everything that can refuse the run — arguments, the destination, existing evidence, a source that
//! is one of the outputs — is checked before the device gets its kernel read-only flag, so a refused
//! run leaves the device as it found it.
//!
//! The source is a device, a file or an EBS snapshot (`source`); from the opened source on, the
//! run is the same for all of them.
//!
//! `run-job` (hidden; the `watch` daemon's child) is this same command with its arguments read as
//! one JSON job from stdin (`read_job`) instead of flags, so the daemon never re-spells them.
//!
//! A run that stored evidence ends with one log line naming its manifest whole (an absolute path or
//! an `s3://` URL), the one argument `verify` needs.

mod custody;
pub mod destination;
mod source;
pub mod task;

pub use source::memory_source;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use imaging::VolumeId;
use imaging::{CaseInfo, Context, HostInfo, Manifest, Status};
use imaging::{EvidenceFiles, EvidenceKind, SafeName};
use imaging::{Outcome, PipelineConfig, Sink};

use crate::cli::AcquireArgs;
use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::logging::CaptureLog;
use crate::progress::ProgressDisplay;
use crate::result::AcquisitionResult;
use crate::sysinfo;
use destination::Destination;
use source::Opened;

/// Runs an acquisition and returns how the process should exit. The arguments, from flags or a
/// `run-job` JSON job, are checked here first, by one function, before anything is opened.
pub fn run(
    args: &AcquireArgs,
    json: bool,
    capture: &CaptureLog,
    cancel: &AtomicBool,
) -> Result<Exit, Failure> {
    let (args, settings) = args.checked().map_err(usage)?;
    let args = &args;
    let (prepared, sink) = prepare(args, settings)?;
    let outcome = read(&prepared, sink, args, json, cancel)?;
    let context = Context {
        tool: sysinfo::tool_info(),
        case: prepared.case.clone(),
        host: HostInfo {
            hostname: sysinfo::hostname(),
            instance_id: prepared.instance_id.clone(),
        },
        image_file_name: prepared.files.image.clone(),
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        custody: prepared.custody.facts.clone(),
    };
    let mut record = prepared.source.record();
    if let Some(memory) = record.memory.as_mut() {
        memory.ami_id.clone_from(&prepared.ami_id);
    }
    let manifest = Manifest::new(context, record, &prepared.config, outcome);
    finish(&prepared, &manifest, args, capture, cancel)
}

/// What an acquisition has decided and opened before its first byte is read.
struct Prepared {
    /// The read settings, adapted to the source.
    config: PipelineConfig,
    destination: Destination,
    /// Opened, and write-blocked if it is a device.
    source: Opened,
    /// The evidence set's names, under the name this run claimed.
    files: EvidenceFiles,
    /// The case as the manifest records it.
    case: CaseInfo,
    /// The collecting instance: as given, or (memory) as IMDS says.
    instance_id: Option<String>,
    /// The instance's AMI (memory captures, when IMDS answers).
    ami_id: Option<String>,
    /// The custody facts, and the key that signs the statement, if one was asked for.
    custody: custody::CustodyPlan,
}

/// The names the arguments give, each checked before anything is opened.
struct GivenNames {
    incident: Option<SafeName>,
    source_volume: Option<VolumeId>,
    evidence: Option<SafeName>,
}

impl GivenNames {
    fn parse(args: &AcquireArgs) -> Result<Self, Failure> {
        let incident = safe_name(args.incident.as_deref(), "incident ID")?;
        let source_volume = args
            .source_volume_id
            .as_deref()
            .map(|id| {
                VolumeId::from_serial_or_id(id).ok_or_else(|| {
                    usage(format!("--source-volume-id {id:?} is not an EBS volume ID"))
                })
            })
            .transpose()?;
        let evidence = safe_name(args.name.as_deref(), "evidence name")?;
        if let Some(name) = evidence.as_ref().filter(|_| args.new_capture) {
            destination::check_capture_room(name)?;
        }
        Ok(Self {
            incident,
            source_volume,
            evidence,
        })
    }
}

/// `text`, when given, as a safe name; a usage error names `what` it is.
fn safe_name(text: Option<&str>, what: &str) -> Result<Option<SafeName>, Failure> {
    text.map(|t| SafeName::parse(t, what))
        .transpose()
        .map_err(usage)
}

/// With the arguments and their settings checked (`run`): parses the names they give, opens the
/// destination and the source, decides the evidence name, creates the image's sink and
/// write-blocks the device — everything before the first read.
fn prepare(args: &AcquireArgs, settings: Config) -> Result<(Prepared, Box<dyn Sink>), Failure> {
    let given = GivenNames::parse(args)?;
    // Arguments are checked before the source is opened, and everything else before the device is
    // write-blocked: a typo must not touch the evidence.
    // Opening the destination and the source creates nothing but may wait on AWS (a snapshot's
    // first block is read to prove the role may, with retries): a signal meanwhile ends the run at
    // once rather than after the retries.
    let starting = crate::signals::start_up();
    let kind = match source::memory_source(&args.source.to_string_lossy()) {
        Ok(Some(_)) => EvidenceKind::Memory,
        _ => EvidenceKind::Disk,
    };
    if kind == EvidenceKind::Memory {
        // Before the first thread of the run starts: threads inherit it (`priority`).
        for failed in crate::priority::lower() {
            tracing::warn!(failed = %failed, "Could not lower the capture's priority.");
        }
    }
    // A key that cannot sign refuses the run before anything is created or read (after the
    // priority is lowered: the AWS runtime's threads inherit it).
    let signer = custody::signer(&settings)?;
    let mut destination =
        Destination::from_args(args, &settings.s3, given.incident.as_ref(), kind)?;
    let mut source = Opened::open(args)?;
    drop(starting);
    // An empty source (a 0-byte device, a `/proc` file) would give an empty image that looks like
    // a completed capture. A rule for new evidence: `verify` still reads an image cut to nothing,
    // and reports the mismatch.
    if source.size() == 0 {
        return Err(imaging::Error::EmptySource {
            path: args.source.clone(),
        }
        .into());
    }
    // IMDS is asked when the run is on AWS anyway (memory on a suspect, S3, a snapshot, a key):
    // off EC2 a local capture would wait seconds for an answer that never comes.
    let on_aws = kind == EvidenceKind::Memory || custody::uses_aws(args, signer.is_some());
    let instance = if on_aws { instance_data() } else { None };
    let (instance_id, ami_id) = match kind {
        EvidenceKind::Memory => (
            args.instance_id
                .clone()
                .or_else(|| instance.as_ref().and_then(|i| i.instance_id.clone())),
            instance.as_ref().and_then(|i| i.ami_id.clone()),
        ),
        EvidenceKind::Disk => (args.instance_id.clone(), None),
    };
    let name = match given.evidence {
        Some(name) => name,
        None => source.default_name(instance_id.as_deref())?,
    };
    // The suspect's volume: as given, else as the snapshot says.
    let source_volume = given.source_volume.or_else(|| source.origin_volume());
    let name = destination.prepare(source.device(), name, args.new_capture)?;
    let files = destination.files(&name);
    let metadata = object_metadata(
        &source,
        &name,
        given.incident.as_ref(),
        source_volume.as_ref(),
    );
    // Before the image's sink exists: a failure here leaves nothing to abort.
    let custody = custody::prepare(
        args,
        signer,
        &files,
        instance.as_ref(),
        instance_id.as_deref(),
    )?;
    let sink = destination.image_sink(&files, source.size(), metadata)?;
    source.write_block();
    source.report(&name, args.source_volume_id.is_some());
    let config = settings.imaging.for_input(source.input());
    let case = CaseInfo {
        incident_id: given.incident.map(|i| i.to_string()),
        evidence_name: name.to_string(),
        source_volume_id: source_volume.as_ref().map(ToString::to_string),
        examiner: args.examiner.clone(),
    };
    let prepared = Prepared {
        config,
        destination,
        source,
        files,
        case,
        instance_id,
        ami_id,
        custody,
    };
    Ok((prepared, sink))
}

/// What IMDS says of this instance, asked once, briefly (`imds::fetch`), unless
/// `AWS_EC2_METADATA_DISABLED` says it is off; off EC2, `None`. A memory capture's instance and
/// AMI (run on a suspect by SSM, nobody passes them) and every run's custody host come from it.
fn instance_data() -> Option<crate::imds::InstanceData> {
    let disabled = std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    let runtime = crate::aws::runtime().ok()?;
    match runtime.block_on(crate::imds::fetch(None)) {
        Ok(data) => Some(data),
        Err(e) => {
            tracing::info!(reason = %e, "No instance metadata: the manifest records no instance, AMI or region.");
            None
        }
    }
}

/// Reads the source into `sink` through the engine, showing progress; a failed or interrupted read
/// is logged with what its cleanup did.
fn read(
    prepared: &Prepared,
    sink: Box<dyn Sink>,
    args: &AcquireArgs,
    json: bool,
    cancel: &AtomicBool,
) -> Result<Outcome, Failure> {
    let Prepared {
        config,
        destination,
        source,
        files,
        ..
    } = prepared;
    let reporter = ProgressDisplay::new(
        source.size(),
        json,
        Duration::from_secs(args.progress_interval.max(1)),
    );
    tracing::info!(
        source = %source.describe(),
        bytes = source.size(),
        image = %destination.describe(files),
        queue_depth = config.queue_depth,
        chunk_size = config.chunk_size,
        "Acquisition started."
    );
    let outcome = imaging::run(
        source.input(),
        sink,
        config,
        &|p| reporter.update(p),
        cancel,
    );
    reporter.finish();
    outcome.map_err(|err| {
        let cleanup = destination.cleanup_report();
        if matches!(err, imaging::Error::Cancelled) {
            tracing::error!(cleanup = %cleanup, "Acquisition interrupted: no manifest written.");
        } else {
            tracing::error!(error = %err, cleanup = %cleanup, "Acquisition failed: no manifest written.");
        }
        Failure::from(err)
    })
}

/// Stores the companions and the manifest, says where the record is, and turns the manifest's
/// status into the exit.
fn finish(
    prepared: &Prepared,
    manifest: &Manifest,
    args: &AcquireArgs,
    capture: &CaptureLog,
    cancel: &AtomicBool,
) -> Result<Exit, Failure> {
    let Prepared {
        destination, files, ..
    } = prepared;
    log_result(manifest);
    write_companions(prepared, manifest, capture, cancel)?;
    let manifest_at = destination.describe_file(&files.manifest);
    // The last line of every run that stored evidence: where its record is, whole, so it can be
    // handed to `verify` or to a colleague as it stands.
    tracing::info!(manifest = %manifest_at, "Evidence stored; `forensic-collector verify` checks it against this manifest.");
    let result = AcquisitionResult::from_manifest(manifest, manifest_at);
    if let Some(token) = &args.task_token {
        task::send(
            token,
            &task::answer_of(&result, prepared.instance_id.as_deref()),
        );
    }
    if args.result_json {
        result.print();
    }
    Ok(match manifest.acquisition.status {
        Status::Completed => Exit::Ok,
        Status::CompletedWithErrors => Exit::CompletedWithErrors,
    })
}

/// User metadata on the S3 image object, so the object alone says what it is: the case, the
/// suspect's volume (given, or the imaged device itself) and the volume actually attached.
fn object_metadata(
    source: &Opened,
    name: &SafeName,
    incident: Option<&SafeName>,
    source_volume: Option<&VolumeId>,
) -> Vec<(String, String)> {
    let mut metadata = vec![("evidence-name".to_owned(), name.to_string())];
    if let Some(incident) = incident {
        metadata.push(("incident-id".to_owned(), incident.to_string()));
    }
    let attached = source.attached_volume();
    if let Some(volume) = source_volume.or(attached) {
        metadata.push(("source-volume-id".to_owned(), volume.to_string()));
    }
    if let Some(volume) = attached {
        metadata.push(("attached-volume-id".to_owned(), volume.to_string()));
    }
    metadata
}

/// Largest JSON job read from stdin: a job is a few hundred bytes; this bounds a runaway writer.
const MAX_JOB_BYTES: u64 = 64 << 10;

/// The acquisition job the `watch` daemon writes to a child's stdin (`run-job`): `AcquireArgs` as
/// JSON, checked by `run` as the same flags are. Its result line is always printed.
pub fn read_job(input: impl Read) -> Result<AcquireArgs, Failure> {
    let mut text = String::new();
    input
        .take(MAX_JOB_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("cannot read the job from stdin: {e}")))?;
    if text.len() as u64 > MAX_JOB_BYTES {
        return Err(usage(format!(
            "the job on stdin is over {MAX_JOB_BYTES} bytes"
        )));
    }
    let mut args: AcquireArgs = serde_json::from_str(&text)
        .map_err(|e| usage(format!("the job on stdin is not an acquisition job: {e}")))?;
    args.result_json = true;
    Ok(args)
}

pub(crate) fn usage(message: String) -> Failure {
    Failure::new(Exit::Usage, anyhow!(message))
}

fn log_result(manifest: &Manifest) {
    let acq = &manifest.acquisition;
    let hashes: Vec<String> = manifest
        .image
        .hashes
        .iter()
        .map(|(alg, digest)| format!("{alg}={digest}"))
        .collect();
    if manifest.bad_ranges.is_empty() {
        tracing::info!(bytes = acq.bytes_read, seconds = format_args!("{:.2}", acq.duration_seconds),
            mb_per_s = format_args!("{:.1}", acq.throughput_mb_per_s), hashes = %hashes.join(" "),
            "Acquisition completed.");
    } else {
        tracing::warn!(bytes = acq.bytes_read, bad_bytes = acq.bad_bytes, bad_ranges = manifest.bad_ranges.len(),
            hashes = %hashes.join(" "),
            "Acquisition completed with unreadable sectors; they are zero-filled in the image and listed in the manifest.");
    }
}

/// Sidecar, capture log, the signed custody statement and its signature (when a key was given),
/// then the manifest last (the S3 order); then the evidence is published.
fn write_companions(
    prepared: &Prepared,
    manifest: &Manifest,
    capture: &CaptureLog,
    cancel: &AtomicBool,
) -> Result<(), Failure> {
    let Prepared {
        destination, files, ..
    } = prepared;
    // A signal after the last byte was read (an operator's Ctrl-C, the daemon dying) still stops
    // the run before anything else is stored: what is stored so far is removed, no manifest.
    let go_on = || {
        if cancel.load(Ordering::SeqCst) {
            destination.discard();
            tracing::error!(cleanup = %destination.cleanup_report(),
                "Acquisition interrupted: no manifest written.");
            return Err(Failure::from(imaging::Error::Cancelled));
        }
        Ok(())
    };
    go_on()?;
    destination.label_image(manifest);
    if let Some(text) = manifest.sha256sum_text() {
        destination.store(&files.sidecar, text.as_bytes())?;
    }
    tracing::info!(manifest = %files.manifest, "Writing manifest.");
    destination.store(&files.capture_log, &capture.contents())?;
    go_on()?;
    let record = manifest.to_json().into_bytes();
    prepared
        .custody
        .sign_and_store(destination, files, manifest, &record)?;
    go_on()?;
    destination.store(&files.manifest, &record)?;
    destination.publish(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn job(extra: &[&str]) -> AcquireArgs {
        let mut argv = vec![
            "forensic-collector",
            "acquire",
            "/dev/null",
            "--result-json",
        ];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Acquire(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    /// A JSON job as `run-job` takes it: read, then checked as `run` checks it first.
    fn run_job(json: &[u8]) -> Result<AcquireArgs, Failure> {
        checked_job(json).map(|(args, _)| args)
    }

    /// The job and the settings it makes, checked.
    fn checked_job(json: &[u8]) -> Result<(AcquireArgs, crate::config::Config), Failure> {
        read_job(json).and_then(|args| args.checked().map_err(usage))
    }

    fn refused(json: &str) -> String {
        run_job(json.as_bytes()).unwrap_err().error.to_string()
    }

    // Issue 10: a JSON job is checked as the same flags would be.
    #[test]
    fn a_json_job_is_checked_like_flags() {
        let ok = job(&["--examiner", "J. Doe"]);
        let mut quiet = ok.clone();
        quiet.result_json = false;
        let back = run_job(serde_json::to_vec(&quiet).unwrap().as_slice()).unwrap();
        assert_eq!(back, ok, "the result line is always asked for");

        let mut value = serde_json::to_value(&ok).unwrap();
        value["settings"]["s3.parts_in_flight"] = 65.into();
        assert!(refused(&value.to_string()).contains("parts in flight 65"));
        let mut value = serde_json::to_value(&ok).unwrap();
        value["examiner"] = "a\nb".into();
        assert!(refused(&value.to_string()).contains("examiner"));
        let mut value = serde_json::to_value(&ok).unwrap();
        value["object_lock_mode"] = "governance".into();
        assert!(refused(&value.to_string()).contains("object lock"));
        let mut value = serde_json::to_value(&ok).unwrap();
        value["settings"]["watch.poweroff_command"] = serde_json::json!(["/bin/sh"]);
        assert!(refused(&value.to_string()).contains("not a setting acquire takes"));
        let mut value = serde_json::to_value(&ok).unwrap();
        value["surprise"] = 1.into();
        assert!(refused(&value.to_string()).contains("not an acquisition job"));
        let mut value = serde_json::to_value(&ok).unwrap();
        value["object_lock_mode"] = "forever".into();
        value["object_lock_retain_until"] = "2030-01-01T00:00:00Z".into();
        assert!(refused(&value.to_string()).contains("not an Object Lock mode"));
        value["object_lock_mode"] = "COMPLIANCE".into();
        let locked = run_job(value.to_string().as_bytes()).unwrap();
        assert_eq!(locked.object_lock_mode.as_deref(), Some("COMPLIANCE"));
        let limit = usize::try_from(MAX_JOB_BYTES).unwrap();
        assert!(refused(&" ".repeat(limit + 1)).contains("over"));
        assert!(refused(&" ".repeat(limit)).contains("not an acquisition job"));
        let err = read_job(&b"{}"[..]).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
    }

    /// `run` on `args`: what it refuses before opening anything (the source does not exist, so a
    /// run that got past the checks fails another way).
    fn run_refusal(args: &AcquireArgs) -> Failure {
        let mut args = args.clone();
        args.source = "/nonexistent/forensic-collector-test-source".into();
        run(
            &args,
            false,
            &CaptureLog::default(),
            &AtomicBool::new(false),
        )
        .unwrap_err()
    }

    // Issue 10: one check for both paths. Every bounded flag's table (the one `acquire`'s flags
    // are tested with) gives the same answer through a `run-job` JSON job, and `run` itself
    // refuses the out-of-range values with the usage code before anything is opened.
    #[test]
    fn run_job_refuses_what_acquire_refuses() {
        use crate::cli::tests::{BOUNDED_FLAGS, parsed, with_room};
        for (flag, low, high, too_low, too_high) in BOUNDED_FLAGS {
            for ok in [low, high] {
                let args = parsed(&with_room(flag, ok)).unwrap();
                let json = serde_json::to_vec(&args).unwrap();
                run_job(&json).unwrap_or_else(|e| panic!("{flag} {ok}: {}", e.error));
                assert_ne!(run_refusal(&args).exit, Exit::Usage, "{flag} {ok}");
            }
            for bad in [too_low, too_high] {
                let args = parsed(&with_room(flag, bad)).unwrap();
                let json = serde_json::to_vec(&args).unwrap();
                let err = run_job(&json).unwrap_err();
                assert_eq!(err.exit, Exit::Usage, "{flag} {bad}");
                assert!(
                    err.error.to_string().contains("must be between"),
                    "{flag} {bad}: {}",
                    err.error
                );
                let err = run_refusal(&args);
                assert_eq!(err.exit, Exit::Usage, "{flag} {bad}");
                assert!(
                    err.error.to_string().contains("must be between"),
                    "{flag} {bad}: {}",
                    err.error
                );
            }
        }
    }

    // Issue 12: `--piece-hash` is blake3 (default) or sha256; anything else is refused with the
    // choices by `run`, with the usage code, from flags and a JSON job alike.
    #[test]
    fn the_piece_hash_is_blake3_or_sha256() {
        use imaging::HashAlgorithm;
        let piece = |args: &AcquireArgs| args.checked().unwrap().1.imaging.piece_algorithm;
        assert_eq!(piece(&job(&[])), HashAlgorithm::Blake3);
        assert_eq!(
            piece(&job(&["--piece-hash", "sha256"])),
            HashAlgorithm::Sha256
        );
        let md5 = job(&["--piece-hash", "md5"]);
        let json = serde_json::to_vec(&md5).unwrap();
        assert!(checked_job(&json).is_err());
        let err = run_refusal(&md5);
        assert_eq!(err.exit, Exit::Usage);
        assert!(
            err.error
                .to_string()
                .contains("piece hash \"md5\" is not one of blake3, sha256"),
            "{}",
            err.error
        );
    }

    // Issue 10: `acquire --examiner " J "` and a JSON job saying the same record the same `J`.
    #[test]
    fn the_examiner_is_trimmed_on_both_paths() {
        let (flags, _) = job(&["--examiner", " J "]).checked().unwrap();
        assert_eq!(flags.examiner.as_deref(), Some("J"));
        let mut unchecked = job(&[]);
        unchecked.examiner = Some(" J ".into());
        let json = serde_json::to_vec(&unchecked).unwrap();
        assert_eq!(run_job(&json).unwrap(), flags);
        unchecked.examiner = Some("a\u{202e}b".into());
        assert_eq!(run_refusal(&unchecked).exit, Exit::Usage);
    }
}
