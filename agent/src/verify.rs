//! `forensic-collector verify`: re-read an image and prove it still matches its manifest — every
//! whole-image hash, every piece (so damage is located, not just detected), the size, and the
//! `sha256sum` sidecar. Local images are re-read through the imaging pipeline; S3 images are
//! streamed back object by object.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use imaging::device::{Source, SourceOptions};
use imaging::hash::{HashAlgorithm, Hasher, Piece, PieceHasher};
use imaging::manifest::Manifest;
use imaging::naming::SafeName;
use imaging::pipeline::{self, PipelineConfig};
use imaging::sink::DiscardSink;
use sha2::Digest;

use crate::cli::VerifyArgs;
use crate::exit::{Exit, Failure};
use crate::progress::Reporter;

/// What re-reading the image found.
struct Measured {
    size: u64,
    hashes: BTreeMap<HashAlgorithm, String>,
    pieces: Vec<Piece>,
    /// The sidecar's text, when there is one.
    sidecar: Option<String>,
    /// Segments (S3 objects) that differ from their own record.
    object_problems: Vec<String>,
}

/// Verifies and returns `Exit::Ok` on a full match, `Exit::VerifyMismatch` otherwise.
pub fn run(args: &VerifyArgs, json: bool, cancel: &AtomicBool) -> Result<Exit, Failure> {
    let (manifest, measured, image) = match args.manifest.strip_prefix("s3://") {
        Some(rest) => measure_s3(rest, args.s3_force_path_style, cancel)?,
        None => measure_local(Path::new(&args.manifest), json, cancel)?,
    };
    let problems = compare(&manifest, &measured);
    if problems.is_empty() {
        tracing::info!(image = %image, "Verification passed: the image matches its manifest.");
        Ok(Exit::Ok)
    } else {
        tracing::error!(image = %image, problems = ?problems, "Verification FAILED: the image does not match its manifest.");
        Ok(Exit::VerifyMismatch)
    }
}

fn image_file_name(manifest: &Manifest, origin: &str) -> Result<(), Failure> {
    SafeName::parse(&manifest.image.file_name, "image file name")
        .map(|_| ())
        .map_err(|e| Failure::new(Exit::Usage, anyhow!("manifest {origin}: {e}")))
}

fn measure_local(
    path: &Path,
    json: bool,
    cancel: &AtomicBool,
) -> Result<(Manifest, Measured, String), Failure> {
    let manifest = Manifest::read(path)?;
    image_file_name(&manifest, &path.display().to_string())?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let image = dir.join(&manifest.image.file_name);
    let source = Source::open(
        &image,
        &SourceOptions {
            set_read_only: false,
            ..SourceOptions::default()
        },
    )?;
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
    let sidecar = fs::read_to_string(dir.join(format!("{}.sha256", manifest.image.file_name))).ok();
    let measured = Measured {
        size: source.size(),
        hashes: outcome.hashes,
        pieces: outcome.pieces,
        sidecar,
        object_problems: Vec::new(),
    };
    Ok((manifest, measured, image.display().to_string()))
}

fn measure_s3(
    rest: &str,
    force_path_style: bool,
    cancel: &AtomicBool,
) -> Result<(Manifest, Measured, String), Failure> {
    let (bucket, manifest_key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                anyhow!("s3://{rest} is not an s3://BUCKET/KEY URL"),
            )
        })?;
    let runtime = crate::aws::runtime()?;
    let client = crate::aws::s3_client(&runtime, force_path_style, 10);
    let origin = format!("s3://{bucket}/{manifest_key}");
    let fetch_small = |key: &str| -> Option<Vec<u8>> {
        runtime.block_on(async {
            let object = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(object.body.collect().await.ok()?.into_bytes().to_vec())
        })
    };
    let text = fetch_small(manifest_key).ok_or_else(|| {
        Failure::new(
            Exit::Destination,
            anyhow!("cannot read the manifest {origin}"),
        )
    })?;
    let manifest = Manifest::from_json(&String::from_utf8_lossy(&text), Path::new(&origin))?;
    image_file_name(&manifest, &origin)?;
    let prefix = manifest_key.rsplit_once('/').map_or("", |(dir, _)| dir);
    let beside = |file: &str| {
        if prefix.is_empty() {
            file.to_owned()
        } else {
            format!("{prefix}/{file}")
        }
    };
    // Manifests of S3 images list their objects (one, or the segments); an older or hand-made one
    // without them names a single image beside the manifest.
    let objects: Vec<Stored> = match &manifest.image.s3 {
        Some(s3) => s3
            .objects
            .iter()
            .map(|o| Stored {
                key: o.key.clone(),
                version_id: o.version_id.clone(),
                size_bytes: o.size_bytes,
                sha256: o.sha256.clone(),
            })
            .collect(),
        None => vec![Stored {
            key: beside(&manifest.image.file_name),
            version_id: None,
            size_bytes: manifest.image.size_bytes,
            sha256: None,
        }],
    };

    let mut whole = WholeImage::new(&manifest);
    let mut problems = Vec::new();
    for object in &objects {
        let measured = stream_object(&runtime, &client, bucket, object, &mut whole, cancel)?;
        if measured.size != object.size_bytes {
            problems.push(format!(
                "{} is {} bytes, manifest says {}",
                object.key, measured.size, object.size_bytes
            ));
        }
        if let Some(expected) = &object.sha256 {
            if *expected == measured.sha256 {
                println!("segment {}: OK {expected}", object.key);
            } else {
                println!(
                    "segment {}: MISMATCH expected {expected} got {}",
                    object.key, measured.sha256
                );
                problems.push(format!("segment {} differs", object.key));
            }
        }
    }
    let sidecar = fetch_small(&beside(&format!("{}.sha256", manifest.image.file_name)))
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let measured = whole.finish(sidecar, problems);
    let location = objects.first().map_or_else(String::new, |o| o.key.clone());
    Ok((manifest, measured, format!("s3://{bucket}/{location}")))
}

/// The whole-image hashes and pieces, fed object by object.
struct WholeImage {
    size: u64,
    hashers: Vec<Hasher>,
    pieces: Option<PieceHasher>,
}

impl WholeImage {
    fn new(manifest: &Manifest) -> Self {
        Self {
            size: 0,
            hashers: manifest
                .image
                .hashes
                .keys()
                .map(|&a| Hasher::new(a))
                .collect(),
            pieces: manifest
                .image
                .piecewise
                .as_ref()
                .map(|p| PieceHasher::new(p.algorithm, p.piece_size)),
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.hashers.iter_mut().for_each(|h| h.update(chunk));
        if let Some(pieces) = self.pieces.as_mut() {
            pieces.update(chunk);
        }
    }

    fn finish(self, sidecar: Option<String>, problems: Vec<String>) -> Measured {
        Measured {
            size: self.size,
            hashes: self
                .hashers
                .into_iter()
                .map(|h| (h.algorithm(), h.finish_hex()))
                .collect(),
            pieces: self.pieces.map(PieceHasher::finish).unwrap_or_default(),
            sidecar,
            object_problems: problems,
        }
    }
}

/// One stored object to read back, as the manifest records it.
struct Stored {
    key: String,
    version_id: Option<String>,
    size_bytes: u64,
    /// The object's own SHA-256 (segments of a split image).
    sha256: Option<String>,
}

/// What one object held.
struct ObjectMeasure {
    size: u64,
    sha256: String,
}

/// Streams one object (the version the manifest names) into the whole-image hashes.
fn stream_object(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    object: &Stored,
    whole: &mut WholeImage,
    cancel: &AtomicBool,
) -> Result<ObjectMeasure, Failure> {
    let key = &object.key;
    let version = object.version_id.clone().filter(|v| v != "null");
    let response = runtime
        .block_on(
            client
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(version)
                .send(),
        )
        .map_err(|e| {
            let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
            Failure::new(
                Exit::Destination,
                anyhow!("cannot read s3://{bucket}/{key}: {detail}"),
            )
        })?;
    let mut own = object.sha256.is_some().then(sha2::Sha256::new);
    let mut size = 0u64;
    let mut body = response.body;
    while let Some(chunk) = runtime.block_on(body.next()) {
        if cancel.load(Ordering::Relaxed) {
            return Err(imaging::Error::Cancelled.into());
        }
        let chunk = chunk.map_err(|e| {
            Failure::new(
                Exit::Destination,
                anyhow!("reading s3://{bucket}/{key}: {e}"),
            )
        })?;
        size += chunk.len() as u64;
        whole.update(&chunk);
        if let Some(own) = own.as_mut() {
            own.update(&chunk);
        }
    }
    Ok(ObjectMeasure {
        size,
        sha256: own.map(|h| hex::encode(h.finalize())).unwrap_or_default(),
    })
}

/// Prints one line per check and returns the problems found.
fn compare(manifest: &Manifest, measured: &Measured) -> Vec<String> {
    let mut problems = measured.object_problems.clone();
    if measured.size != manifest.image.size_bytes {
        problems.push(format!(
            "size is {} bytes, manifest says {}",
            measured.size, manifest.image.size_bytes
        ));
    }
    for (algorithm, expected) in &manifest.image.hashes {
        let actual = measured.hashes.get(algorithm).map_or("", String::as_str);
        if actual == expected {
            println!("{algorithm}: OK {actual}");
        } else {
            println!("{algorithm}: MISMATCH expected {expected} got {actual}");
            problems.push(format!("{algorithm} differs"));
        }
    }
    if let Some(piecewise) = &manifest.image.piecewise {
        let got = measured
            .pieces
            .iter()
            .map(Some)
            .chain(std::iter::repeat(None));
        let bad: Vec<u64> = piecewise
            .pieces
            .iter()
            .zip(got)
            .filter(|(want, got)| {
                got.is_none_or(|got| got.digest != want.digest || got.length != want.length)
            })
            .map(|(want, _)| want.index)
            .collect();
        if bad.is_empty() && measured.pieces.len() == piecewise.pieces.len() {
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
    match (manifest.sha256sum_text(), &measured.sidecar) {
        (Some(expected), Some(text)) if *text == expected => println!("sidecar: OK"),
        (Some(_), Some(_)) => {
            problems.push("the sha256 sidecar disagrees with the manifest".to_owned())
        }
        _ => println!("sidecar: absent"),
    }
    problems
}
