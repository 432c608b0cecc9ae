//! Where evidence goes: a local directory or an S3 prefix. Both receive the same files in the same
//! order — image, sidecar, capture log, manifest last — through one interface, so `acquire` has one
//! code path. Locally every file is written in the run's own staging directory and only
//! [`Destination::publish`] gives them their final names, the sidecar only after the manifest.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use imaging::s3::{Cleanup, Retention, S3Evidence, S3Options};
use imaging::{EvidenceFiles, EvidenceKind, LocalClaim, LocalSink, S3Url, SafeName, Sink, Staging};
use imaging::{Manifest, Source};

use super::usage;
use crate::cli::AcquireArgs;
use crate::config::typed::S3;
use crate::exit::{Exit, Failure};

/// Most memory for S3 part buffers when the source is this host's memory: 48 MiB (with the
/// pipeline's 6 MiB of read buffers), whatever `s3.part_memory` allows a disk capture. A lower
/// setting is kept. Segment objects keep large memories within S3's 10,000 parts.
pub const MEMORY_PART_MEMORY: u64 = 48 << 20;

/// An evidence destination.
pub enum Destination {
    /// A local directory.
    Local(LocalTarget),
    /// An S3 prefix, with the client and runtime that talk to it.
    S3(Box<S3Target>),
}

/// A local output directory and, once prepared, this run's staging directory in it.
pub struct LocalTarget {
    dir: PathBuf,
    kind: EvidenceKind,
    staging: Option<Arc<Staging>>,
    /// This run's claim on its evidence name, for `--new-capture` (removed when dropped).
    claim: Option<LocalClaim>,
}

impl LocalTarget {
    fn staging(&self) -> Result<&Arc<Staging>, Failure> {
        self.staging
            .as_ref()
            .ok_or_else(|| imaging::Error::Internal("the output directory was not prepared").into())
    }
}

/// Everything needed to write to S3: the engine's view of the evidence set, and whether the
/// operator asked for Object Lock.
pub struct S3Target {
    evidence: S3Evidence,
    kind: EvidenceKind,
    require_object_lock: bool,
}

impl Destination {
    /// Builds the destination named by the arguments; S3 needs an incident ID for its key layout.
    /// `kind` says whether the evidence is a disk's or memory (its file names and S3 folder).
    pub fn from_args(
        args: &AcquireArgs,
        settings: &S3,
        incident: Option<&SafeName>,
        kind: EvidenceKind,
    ) -> Result<Self, Failure> {
        let Some(dest) = &args.dest else {
            return Ok(Self::Local(LocalTarget {
                dir: args.out.clone(),
                kind,
                staging: None,
                claim: None,
            }));
        };
        let url: S3Url = dest.parse()?;
        let retention = retention(args)?;
        let incident = incident.cloned().ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                anyhow!("--dest s3://… needs --incident (it is part of every key)"),
            )
        })?;
        let runtime = crate::aws::runtime()?;
        let client = crate::aws::s3_client(runtime, settings);
        // A retention asked for on the command line needs Object Lock as the configured one does.
        let require_object_lock = settings.require_object_lock || retention.is_some();
        let mut options = upload_options(settings, retention);
        if kind == EvidenceKind::Memory {
            // The host is the suspect and its RAM the evidence: part buffers stay small.
            options.part_memory = options.part_memory.min(MEMORY_PART_MEMORY);
        }
        Ok(Self::S3(Box::new(S3Target {
            evidence: S3Evidence::new(runtime.handle().clone(), client, url, incident, options)
                .with_kind(kind),
            kind,
            require_object_lock,
        })))
    }

    /// The files of evidence `name` at this destination (a disk's or memory's).
    pub fn files(&self, name: &SafeName) -> EvidenceFiles {
        let kind = match self {
            Self::Local(local) => local.kind,
            Self::S3(s3) => s3.kind,
        };
        EvidenceFiles::of(kind, name)
    }

    /// Where the evidence will be, for logs.
    pub fn describe(&self, files: &EvidenceFiles) -> String {
        self.describe_file(&files.image)
    }

    /// Where `file_name` of the evidence is stored: an absolute path (the directory resolved
    /// once it exists, so the name found in a log or a result opens the same file from anywhere)
    /// or an `s3://` URI.
    pub fn describe_file(&self, file_name: &str) -> String {
        match self {
            Self::Local(local) => {
                let dir = fs::canonicalize(&local.dir)
                    .or_else(|_| std::path::absolute(&local.dir))
                    .unwrap_or_else(|_| local.dir.clone());
                dir.join(file_name).display().to_string()
            }
            Self::S3(s3) => s3.evidence.uri(file_name),
        }
    }

    /// What of evidence `files` is already at the destination (a symlink counts), as the error
    /// that refuses it; `None` when the name is free.
    pub fn existing_evidence(
        &self,
        files: &EvidenceFiles,
    ) -> Result<Option<imaging::Error>, Failure> {
        match self {
            Self::Local(local) => Ok(files
                .all()
                .into_iter()
                .map(|name| local.dir.join(name))
                .find(|path| fs::symlink_metadata(path).is_ok())
                .map(|path| imaging::Error::AlreadyExists { path })),
            Self::S3(s3) => Ok(s3.evidence.existing(files)?),
        }
    }

    /// Refuses unsafe or conflicting destinations before anything is written, decides the evidence
    /// name (see [`Destination::choose_name`]) and, for a local directory, creates this run's
    /// staging directory in it. `device` is the opened device or file, if the source is one: the
    /// output must not be on it or be it. A snapshot is read over the network, and no local path
    /// can be it.
    pub fn prepare(
        &mut self,
        device: Option<&Source>,
        name: SafeName,
        new_capture: bool,
    ) -> Result<SafeName, Failure> {
        let dir = match self {
            Self::Local(local) => local.dir.clone(),
            Self::S3(s3) => {
                s3.evidence.require_object_lock(s3.require_object_lock)?;
                return self.choose_name(name, new_capture);
            }
        };
        if device.is_some_and(|source| source.holds_path(existing_ancestor(&dir))) {
            return Err(Failure::new(
                Exit::Output,
                anyhow!(
                    "output directory {} is on the source device itself; writing there would change the evidence",
                    dir.display()
                ),
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| {
            Failure::new(
                Exit::Output,
                anyhow!("cannot create output directory {}: {e}", dir.display()),
            )
        })?;
        let name = self.choose_name(name, new_capture)?;
        let files = self.files(&name);
        if let Some(source) = device {
            refuse_source_among_outputs(source, &dir, &files)?;
        }
        let staging = Staging::create(&dir, &files.name, &files.all())?;
        if let Self::Local(local) = self {
            local.staging = Some(Arc::new(staging));
        }
        Ok(name)
    }

    /// The name this capture is stored under: `name` itself, refused if any of its evidence is
    /// already there, unless `--new-capture` asks to step past existing evidence to the first
    /// free `<name>-2` … `<name>-99`. A free name is then claimed (see [`LocalClaim`] and
    /// [`S3Evidence::claim`]) before anything is read, so runs that start together each get a name
    /// of their own instead of all but one reading the whole source only to be refused. Publishing, which never
    /// replaces anything, stays the final guard (a run without `--new-capture` takes no claim).
    fn choose_name(&mut self, name: SafeName, new_capture: bool) -> Result<SafeName, Failure> {
        if !new_capture {
            self.refuse_existing(&self.files(&name))?;
            return Ok(name);
        }
        check_capture_room(&name)?;
        for number in 1..=MAX_CAPTURES {
            let candidate = if number == 1 {
                name.clone()
            } else {
                name.numbered(number).map_err(usage)?
            };
            let files = self.files(&candidate);
            if let Some(existing) = self.existing_evidence(&files)? {
                tracing::info!(existing = %existing,
                    "Evidence of this name exists; --new-capture tries the next name.");
                continue;
            }
            if !self.claim(&candidate)? {
                tracing::info!(name = %candidate,
                    "Another run is capturing under this name now; --new-capture tries the next name.");
                continue;
            }
            // A run without --new-capture takes no claim and may have stored this name meanwhile.
            if let Some(existing) = self.existing_evidence(&files)? {
                tracing::info!(existing = %existing,
                    "Evidence of this name appeared; --new-capture tries the next name.");
                self.release_claim();
                continue;
            }
            return Ok(candidate);
        }
        Err(Failure::new(
            Exit::Output,
            anyhow!(
                "evidence {name} and {name}-2 … {name}-{MAX_CAPTURES} all exist or are being captured; pass another --name"
            ),
        ))
    }

    /// Claims evidence `name` for this run; false when another run holds it.
    fn claim(&mut self, name: &SafeName) -> Result<bool, Failure> {
        match self {
            Self::Local(local) => {
                local.claim = LocalClaim::take(&local.dir, name.as_str())?;
                Ok(local.claim.is_some())
            }
            Self::S3(s3) => {
                let token = format!(
                    "host {} pid {} at {}",
                    crate::sysinfo::hostname(),
                    std::process::id(),
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                );
                Ok(s3.evidence.claim(name, &token)?)
            }
        }
    }

    fn release_claim(&mut self) {
        match self {
            Self::Local(local) => local.claim = None,
            Self::S3(s3) => s3.evidence.release_claim(),
        }
    }

    /// Refuses an evidence set of which any file or object (image, segment, sidecar, capture log,
    /// manifest) is already stored, before anything is read or written. Needs only the name, not
    /// the source. Locally this is advisory (files are created exclusively and published without
    /// replacing anything); on S3 the conditional writes are the guard and this check saves reading
    /// a whole disk only to be refused at the end.
    pub fn refuse_existing(&self, files: &EvidenceFiles) -> Result<(), Failure> {
        match self.existing_evidence(files)? {
            Some(existing) => Err(existing.into()),
            None => Ok(()),
        }
    }

    /// The sink for the image itself; `metadata` goes on the S3 object.
    pub fn image_sink(
        &mut self,
        files: &EvidenceFiles,
        size: u64,
        metadata: Vec<(String, String)>,
    ) -> Result<Box<dyn Sink>, Failure> {
        match self {
            Self::Local(local) => Ok(Box::new(LocalSink::create(
                Arc::clone(local.staging()?),
                &files.image,
            )?)),
            Self::S3(s3) => Ok(s3.evidence.image_sink(files, size, metadata)?),
        }
    }

    /// Tags the stored image object(s) on S3 with the hashes (see [`S3Evidence::tag_image`]); a
    /// failure is a warning, as the manifest, written next, is the authoritative record.
    pub fn label_image(&self, manifest: &Manifest) {
        if let Self::S3(s3) = self {
            s3.evidence.tag_image(manifest);
        }
    }

    /// Removes what this run stored before its manifest, when it stops after the image: the
    /// objects it created on S3 (the local staging directory goes when the destination is dropped).
    pub fn discard(&self) {
        if let Self::S3(s3) = self {
            s3.evidence.discard();
        }
    }

    /// What a failed run's cleanup did, for its last log line: which objects it removed and
    /// which it had to leave (by key), or that nothing local was published.
    pub fn cleanup_report(&self) -> String {
        match self {
            Self::Local(_) => {
                "nothing was published under a final name; the run's staging directory is removed as it ends (a warning follows if it cannot be)"
                    .to_owned()
            }
            Self::S3(s3) => cleanup_text(&s3.evidence.cleanup()),
        }
    }

    /// Gives the evidence its final names. Locally the files were written in the staging directory
    /// and are renamed now, never over an existing name: image, capture log, manifest, then the
    /// sidecar, which is what makes `sha256sum -c` say OK and so must not appear before the
    /// manifest. An S3 object is final when it is stored (conditionally), so there is nothing left
    /// to do; a failed S3 run removes its objects.
    pub fn publish(&self, files: &EvidenceFiles) -> Result<(), Failure> {
        match self {
            Self::Local(local) => {
                let staging = local.staging()?;
                let order = [
                    files.image.as_str(),
                    &files.capture_log,
                    &files.custody_statement,
                    &files.custody_signature,
                    &files.manifest,
                    &files.sidecar,
                ];
                let staged: Vec<&str> = order
                    .into_iter()
                    .filter(|name| staging.holds(name))
                    .collect();
                Ok(staging.publish(&staged)?)
            }
            Self::S3(_) => Ok(()),
        }
    }

    /// Stores a small companion file (sidecar, capture log, manifest) durably: locally in the
    /// staging directory until [`Destination::publish`]; in S3 only if the key is new.
    pub fn store(&self, file_name: &str, contents: &[u8]) -> Result<(), Failure> {
        match self {
            Self::Local(local) => Ok(local.staging()?.write_file(file_name, contents)?),
            Self::S3(s3) => s3.evidence.store(file_name, contents).map_err(|err| {
                tracing::error!(error = %err, cleanup = %cleanup_text(&s3.evidence.cleanup()),
                    "A companion object could not be stored; no manifest written.");
                err.into()
            }),
        }
    }
}

/// A failed S3 run's cleanup in words: no object completed (the open upload aborted), the keys it
/// removed, and above all the keys it could not remove, which must be deleted by hand before a
/// rerun of that name.
fn cleanup_text(cleanup: &Cleanup) -> String {
    let mut text = if cleanup.removed.is_empty() && cleanup.left.is_empty() {
        "no object of this run was left completed".to_owned()
    } else if cleanup.removed.is_empty() {
        "removed nothing".to_owned()
    } else {
        format!(
            "removed the {} object(s) this run had stored: {}",
            cleanup.removed.len(),
            cleanup.removed.join(", ")
        )
    };
    if !cleanup.left.is_empty() {
        text.push_str(&format!(
            "; COULD NOT remove {} object(s), still in the bucket with no manifest: {}",
            cleanup.left.len(),
            cleanup.left.join(", ")
        ));
    }
    text
}

/// How many captures of one evidence name `--new-capture` numbers (`<name>-2` … `<name>-99`) before
/// it asks the operator to choose a name: a hundred captures of one disk is a loop, not a case.
const MAX_CAPTURES: u32 = 99;

/// Refuses, up front, a name that `--new-capture` could not number: `<name>-99` must still be a
/// valid name (at most 128 characters).
pub fn check_capture_room(name: &SafeName) -> Result<(), Failure> {
    let suffix = format!("-{MAX_CAPTURES}");
    name.numbered(MAX_CAPTURES).map(drop).map_err(|_| {
        usage(format!(
            "evidence name {name} is {} characters; with --new-capture it may get a number up to {suffix}, so it must be at most {}",
            name.as_str().len(),
            imaging::SafeName::MAX_LEN - suffix.len()
        ))
    })
}

/// The engine's upload options for these settings and the run's retention.
pub fn upload_options(settings: &S3, retention: Option<Retention>) -> S3Options {
    S3Options {
        parts_in_flight: settings.parts_in_flight.map(std::num::NonZeroUsize::get),
        min_part_size: settings.min_part_size,
        part_memory: settings.part_memory,
        max_object_size: settings.max_object_size,
        sse_kms_key_id: settings.sse_kms_key_id.clone(),
        expected_bucket_owner: settings.expected_bucket_owner.clone(),
        metadata: Vec::new(),
        retention,
        legal_hold: settings.legal_hold,
    }
}

/// The Object Lock retention asked for on the command line, checked to lie in the future.
fn retention(args: &AcquireArgs) -> Result<Option<Retention>, Failure> {
    let (Some(mode), Some(until)) = (&args.object_lock_mode, &args.object_lock_retain_until) else {
        return Ok(None);
    };
    let retain_until = chrono::DateTime::parse_from_rfc3339(until)
        .map_err(|e| {
            Failure::new(
                Exit::Usage,
                anyhow!("--object-lock-retain-until {until:?}: {e}"),
            )
        })?
        .with_timezone(&chrono::Utc);
    if retain_until <= chrono::Utc::now() {
        return Err(Failure::new(
            Exit::Usage,
            anyhow!("--object-lock-retain-until {until} is in the past"),
        ));
    }
    let mode = crate::ids::object_lock_mode(mode).map_err(usage)?;
    Ok(Some(Retention { mode, retain_until }))
}

/// Refuses a source that is one of this run's output files, or a leftover of an older version's
/// partial files, under any name (symlink or hard link): imaging it would replace or delete it.
fn refuse_source_among_outputs(
    source: &Source,
    dir: &Path,
    files: &EvidenceFiles,
) -> Result<(), Failure> {
    let Ok(identity) = source.file_identity() else {
        return Ok(());
    };
    let legacy = [
        format!("{}.partial", files.image),
        format!(".{}.tmp", files.sidecar),
        format!(".{}.tmp", files.capture_log),
        format!(".{}.tmp", files.manifest),
    ];
    let names = files.all().into_iter().map(str::to_owned).chain(legacy);
    for name in names {
        let path = dir.join(&name);
        let same = [fs::symlink_metadata(&path), fs::metadata(&path)]
            .into_iter()
            .flatten()
            .any(|m| (m.dev(), m.ino()) == identity);
        if same {
            return Err(imaging::Error::SourceIsOutput {
                source_path: source.path().to_path_buf(),
                output: path,
            }
            .into());
        }
    }
    Ok(())
}

/// The directory itself, or the closest parent that exists (where `create_dir_all` would write).
fn existing_ancestor(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 19: the last line of a failed S3 run says what its cleanup removed and, above all,
    // what it could not.
    #[test]
    fn the_cleanup_report_names_what_was_removed_and_what_was_left() {
        let nothing = Cleanup::default();
        assert_eq!(
            cleanup_text(&nothing),
            "no object of this run was left completed"
        );
        let removed = Cleanup {
            removed: vec![
                "p/i/disk_evidence/x.image.dd".into(),
                "p/x.capture.log".into(),
            ],
            left: Vec::new(),
        };
        assert_eq!(
            cleanup_text(&removed),
            "removed the 2 object(s) this run had stored: p/i/disk_evidence/x.image.dd, p/x.capture.log"
        );
        let none_removed = Cleanup {
            removed: Vec::new(),
            left: vec!["b".into()],
        };
        assert_eq!(
            cleanup_text(&none_removed),
            "removed nothing; COULD NOT remove 1 object(s), still in the bucket with no manifest: b"
        );
        let left = Cleanup {
            removed: vec!["a".into()],
            left: vec!["b".into(), "c".into()],
        };
        assert_eq!(
            cleanup_text(&left),
            "removed the 1 object(s) this run had stored: a; COULD NOT remove 2 object(s), still in the bucket with no manifest: b, c"
        );
    }

    #[test]
    fn a_new_capture_name_must_leave_room_for_the_last_number() {
        let name = |n: usize| SafeName::parse(&"v".repeat(n), "name").unwrap();
        assert!(check_capture_room(&name(125)).is_ok());
        let err = check_capture_room(&name(126)).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        let text = err.error.to_string();
        assert!(text.contains("is 126 characters"), "{text}");
        assert!(text.contains("up to -99"), "{text}");
        assert!(text.contains("at most 125"), "{text}");
    }
}
