//! `forensic-collector verify`: re-read an image and prove it still matches its manifest — every
//! whole-image hash, every piece (so damage is located, not just detected), the size, and the
//! `sha256sum` sidecar, and for a memory image its LiME structure. Local images are re-read through the imaging pipeline; S3 images are
//! streamed back object by object.
//!
//! `verify` passes only what it checked. Both paths obtain their manifest through the engine's one
//! reader ([`imaging::Manifest::read`] / `from_slice`), which refuses a record that is
//! unreadable, oversized or inconsistent — no SHA-256, a piece list or an object list that does not
//! describe exactly the image — before a byte of the image is read (exit 7); then both hand what
//! they measured to the one comparison in [`compare`].
//!
//! # Layout
//! - [`local`]: a manifest file, and the image file beside it.
//! - [`s3`]: a manifest object, and the image objects it lists under its own prefix.
//! - [`compare`]: what was measured against what the manifest records, check by check.
//! - [`custody`]: the signed custody statement against the manifest, and its signature (offline
//!   with `--public-key`, else by KMS).

mod compare;
mod custody;
mod local;
mod s3;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use imaging::Manifest;

use crate::cli::VerifyArgs;
use crate::exit::{Exit, Failure};
use compare::Measured;

/// A manifest and what re-reading its image found.
struct Checked {
    manifest: Manifest,
    /// The manifest's exact bytes, its file name, and the custody files beside it.
    custody: custody::CustodyFiles,
    measured: Measured,
    /// Where the image was read, for the log.
    image: String,
}

/// Verifies and returns `Exit::Ok` on a full match, `Exit::VerifyMismatch` otherwise.
pub fn run(args: &VerifyArgs, json: bool, cancel: &AtomicBool) -> Result<Exit, Failure> {
    // A key that is none is refused before the image is read.
    let key = args
        .public_key
        .as_deref()
        .map(custody::read_key)
        .transpose()?;
    let checked = if args.manifest.starts_with("s3://") {
        let url = args
            .manifest
            .parse()
            .map_err(|e| Failure::new(Exit::Usage, e))?;
        s3::measure(&url, args.s3_force_path_style, cancel)?
    } else {
        local::measure(Path::new(&args.manifest), json, cancel)?
    };
    let expected_sidecar = checked.manifest.sha256sum_text();
    let mut report = compare::compare(
        &checked.manifest.image,
        expected_sidecar.as_deref(),
        &checked.measured,
    );
    compare::compare_lime(
        checked.manifest.source.memory.as_ref(),
        checked.measured.lime.as_ref(),
        &mut report,
    );
    custody::check(
        &checked.manifest,
        &checked.custody,
        key.as_ref(),
        &mut report,
    )?;
    for line in &report.lines {
        println!("{line}");
    }
    let problems = report.problems;
    let image = &checked.image;
    if problems.is_empty() {
        tracing::info!(image = %image, "Verification passed: the image matches its manifest.");
        Ok(Exit::Ok)
    } else {
        if problems.iter().all(|p| p.starts_with("custody: ")) {
            tracing::error!(image = %image, problems = ?problems, "Verification FAILED: the image matches its manifest, but the custody record does not vouch for it.");
        } else {
            tracing::error!(image = %image, problems = ?problems, "Verification FAILED: the image does not match its manifest.");
        }
        Ok(Exit::VerifyMismatch)
    }
}

/// A manifest that cannot be used: refused before any image byte is read.
fn unusable(error: impl Into<anyhow::Error>) -> Failure {
    Failure::new(Exit::ManifestUnusable, error)
}
