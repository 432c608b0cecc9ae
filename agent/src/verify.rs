//! `forensic-collector verify`: re-read an image and prove it still matches its manifest — every
//! whole-image hash, every piece (so damage is located, not just detected), the size, and the
//! `sha256sum` sidecar.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::anyhow;
use imaging::device::{Source, SourceOptions};
use imaging::manifest::Manifest;
use imaging::naming::SafeName;
use imaging::pipeline::{self, PipelineConfig};
use imaging::sink::DiscardSink;

use crate::cli::VerifyArgs;
use crate::exit::{Exit, Failure};
use crate::progress::Reporter;

/// Verifies and returns `Exit::Ok` on a full match, `Exit::VerifyMismatch` otherwise.
pub fn run(args: &VerifyArgs, json: bool, cancel: &AtomicBool) -> Result<Exit, Failure> {
    let manifest = Manifest::read(&args.manifest)?;
    let dir = args
        .manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    SafeName::parse(&manifest.image.file_name, "image file name").map_err(|e| {
        Failure::new(
            Exit::Usage,
            anyhow!("manifest {}: {e}", args.manifest.display()),
        )
    })?;
    let image = dir.join(&manifest.image.file_name);
    let source = Source::open(
        &image,
        &SourceOptions {
            set_read_only: false,
            ..SourceOptions::default()
        },
    )?;

    let mut problems = Vec::new();
    if source.size() != manifest.image.size_bytes {
        problems.push(format!(
            "size is {} bytes, manifest says {}",
            source.size(),
            manifest.image.size_bytes
        ));
    }
    let config = PipelineConfig {
        algorithms: manifest.image.hashes.keys().copied().collect(),
        piece_size: manifest.image.piecewise.as_ref().map(|p| p.piece_size),
        ..PipelineConfig::default()
    };
    let reporter = Reporter::new(source.size(), json, Duration::from_secs(10));
    let outcome = pipeline::run(
        &source,
        Box::<DiscardSink>::default(),
        &config,
        &|p| reporter.update(p),
        cancel,
    );
    reporter.finish();
    let outcome = outcome?;

    for (algorithm, expected) in &manifest.image.hashes {
        let actual = outcome.hashes.get(algorithm).map_or("", String::as_str);
        if actual == expected {
            println!("{algorithm}: OK {actual}");
        } else {
            println!("{algorithm}: MISMATCH expected {expected} got {actual}");
            problems.push(format!("{algorithm} differs"));
        }
    }
    if let Some(piecewise) = &manifest.image.piecewise {
        let bad: Vec<u64> = piecewise
            .pieces
            .iter()
            .zip(
                outcome
                    .pieces
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .filter(|(want, got)| {
                got.is_none_or(|got| got.digest != want.digest || got.length != want.length)
            })
            .map(|(want, _)| want.index)
            .collect();
        if bad.is_empty() && outcome.pieces.len() == piecewise.pieces.len() {
            println!(
                "pieces: OK {} x {} bytes",
                piecewise.pieces.len(),
                piecewise.piece_size
            );
        } else {
            println!("pieces: MISMATCH in pieces {bad:?}");
            problems.push(format!("{} pieces differ", bad.len()));
        }
    }
    if let Some(problem) = check_sidecar(dir, &manifest) {
        problems.push(problem);
    }

    if problems.is_empty() {
        tracing::info!(image = %image.display(), "Verification passed: the image matches its manifest.");
        Ok(Exit::Ok)
    } else {
        tracing::error!(image = %image.display(), problems = ?problems, "Verification FAILED: the image does not match its manifest.");
        Ok(Exit::VerifyMismatch)
    }
}

/// The sidecar, when present, must say exactly what the manifest says.
fn check_sidecar(dir: &Path, manifest: &Manifest) -> Option<String> {
    let expected = manifest.sha256sum_line()?;
    let path = dir.join(format!("{}.sha256", manifest.image.file_name));
    match fs::read_to_string(&path) {
        Ok(text) if text == expected => {
            println!("sidecar: OK {}", path.display());
            None
        }
        Ok(_) => Some(format!(
            "sidecar {} disagrees with the manifest",
            path.display()
        )),
        Err(_) => {
            println!("sidecar: absent");
            None
        }
    }
}
