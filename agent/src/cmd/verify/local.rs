//! Verifying a local image: the manifest file names the image file beside it, which is re-read
//! through the same pipeline (O_DIRECT reads, hashers) that made it.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use imaging::{DiscardSink, Input, Manifest, PipelineConfig, Source, SourceOptions};

use imaging::custody::Statement;

use super::compare::{Measured, Sidecar};
use super::custody::{self, Beside};
use super::{Checked, unusable};
use crate::exit::{Exit, Failure};
use crate::progress::ProgressDisplay;

/// Reads the manifest at `path` (refusing an unusable one) and re-reads the image beside it.
pub(super) fn measure(path: &Path, json: bool, cancel: &AtomicBool) -> Result<Checked, Failure> {
    // Read once as bytes: the manifest is parsed from, and its custody statement names, exactly
    // these.
    let record = imaging::read_regular_file(path, Manifest::MAX_RECORD_BYTES)
        .map_err(|e| unusable(anyhow::anyhow!("manifest {}: {e}", path.display())))?;
    let manifest = Manifest::from_slice(&record, path).map_err(unusable)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let custody = custody_files(dir, path, &manifest, record);
    // A safe name (checked by the manifest's validation): it stays in `dir`.
    let image = dir.join(&manifest.image.file_name);
    // The error names the image as the manifest's, so "source" in it is not read as the disk.
    let source = Source::open(
        &image,
        &SourceOptions {
            set_read_only: false,
            ..SourceOptions::default()
        },
    )
    .map_err(|e| {
        let exit = Exit::from(e.kind());
        Failure::new(
            exit,
            anyhow::anyhow!("the image the manifest {} names: {e}", path.display()),
        )
    })?;
    let config = PipelineConfig {
        algorithms: manifest.image.hashes.keys().copied().collect(),
        piece_size: manifest.image.piecewise.as_ref().map(|p| p.piece_size),
        // The manifest's own algorithm: BLAKE3 or, in older evidence, SHA-256 (its validation
        // refused any other).
        piece_algorithm: manifest
            .image
            .piecewise
            .as_ref()
            .map_or(PipelineConfig::DEFAULT_PIECE_ALGORITHM, |p| p.algorithm),
        ..PipelineConfig::default()
    };
    let reporter = ProgressDisplay::new(source.size(), json, Duration::from_secs(10));
    let outcome = imaging::run(
        Input::Device(&source),
        Box::<DiscardSink>::default(),
        &config,
        &|p| reporter.update(p),
        cancel,
    );
    reporter.finish();
    let outcome = outcome?;
    let sidecar = read_sidecar(&dir.join(format!("{}.sha256", manifest.image.file_name)));
    // A memory image's headers, read one by one (the bytes between were just hashed).
    let lime = manifest.source.memory.as_ref().map(|_| {
        imaging::open_regular_file(&image, u64::MAX)
            .map_err(|e| format!("cannot open {}: {e}", image.display()))
            .and_then(|(file, _)| imaging::read_lime_ranges(file, source.size()))
    });
    Ok(Checked {
        measured: Measured {
            size: source.size(),
            hashes: outcome.hashes,
            pieces: outcome.pieces,
            sidecar,
            object_problems: Vec::new(),
            lime,
        },
        image: image.display().to_string(),
        manifest,
        custody,
    })
}

/// The manifest's bytes and the custody statement and signature beside it, named after its
/// evidence (a safe name, so they stay in `dir`).
fn custody_files(
    dir: &Path,
    path: &Path,
    manifest: &Manifest,
    record: Vec<u8>,
) -> custody::CustodyFiles {
    let beside = |suffix: &str, limit: u64| {
        let file = dir.join(format!("{}.{suffix}", manifest.case.evidence_name));
        match imaging::read_regular_file(&file, limit) {
            Ok(bytes) => Beside::Bytes(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Beside::Absent,
            Err(e) => Beside::Unreadable(format!("{}: {e}", file.display())),
        }
    };
    custody::CustodyFiles {
        record,
        manifest_file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        statement: beside("custody.json", Statement::MAX_BYTES as u64 + 1),
        signature: beside("custody.sig", custody::MAX_SIGNATURE_BYTES),
    }
}

/// The sidecar at `path`: absent, its text, or why it could not be read (a FIFO or a device
/// planted under its name, or a file too large to be one).
fn read_sidecar(path: &Path) -> Sidecar {
    match imaging::read_regular_file(path, Manifest::MAX_RECORD_BYTES) {
        Ok(bytes) => Sidecar::Text(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Sidecar::Absent,
        Err(e) => Sidecar::Unreadable(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_are_read_only_from_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.image.dd.sha256");
        assert_eq!(read_sidecar(&path), Sidecar::Absent);
        std::fs::write(&path, "abc  s.image.dd\n").unwrap();
        assert_eq!(
            read_sidecar(&path),
            Sidecar::Text("abc  s.image.dd\n".into())
        );
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(
            matches!(read_sidecar(&path), Sidecar::Unreadable(why) if why.contains("not a regular file"))
        );
    }
}
