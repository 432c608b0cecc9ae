//! Verifying an S3 image: the manifest object lists the image's objects (one, or numbered
//! segments), which must lie beside it under its own prefix; each is streamed back — the version
//! the manifest names — into the whole-image hashes, and checked against its own record.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use imaging::S3Url;
use imaging::{Hasher, LimeWalker, PieceHasher};
use imaging::{ImageRecord, Manifest};
use sha2::Digest;

use super::compare::{Measured, Sidecar};
use imaging::custody::Statement;

use super::custody::{self, Beside};
use super::{Checked, unusable};
use crate::exit::{Exit, Failure};

/// Fetches the manifest at `url` (refusing an unusable one) and streams back its objects.
pub(super) fn measure(
    url: &S3Url,
    force_path_style: bool,
    cancel: &AtomicBool,
) -> Result<Checked, Failure> {
    let (folder, _) = url.split_object().ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            anyhow!("{url} names a bucket, not a manifest: give s3://BUCKET/KEY"),
        )
    })?;
    let (bucket, manifest_key) = (url.bucket(), url.prefix());
    let runtime = crate::aws::runtime()?;
    // The configuration's defaults (attempts, timeouts), with the addressing asked for.
    let mut settings = crate::config::flags::SettingFlags::default()
        .config()
        .map_err(|e| Failure::new(Exit::Internal, anyhow::anyhow!(e)))?
        .s3;
    settings.force_path_style = force_path_style;
    let client = crate::aws::s3_client(runtime, &settings);
    let origin = format!("s3://{bucket}/{manifest_key}");
    // A missing manifest is one that cannot be used (exit 7), as on the local path; S3 failing
    // to answer stays an S3 failure (exit 30).
    let text = fetch_record(runtime, &client, bucket, manifest_key)?
        .ok_or_else(|| unusable(anyhow!("cannot read the manifest {origin}: no such object")))?;
    let manifest = Manifest::from_slice(&text, Path::new(&origin)).map_err(unusable)?;
    let objects = stored_objects(&manifest.image, &folder)
        .map_err(|e| unusable(anyhow!("manifest {origin}: {e}")))?;

    let mut whole = WholeImage::new(&manifest.image, manifest.source.memory.is_some());
    let mut problems = Vec::new();
    for object in &objects {
        let measured = stream_object(runtime, &client, bucket, object, &mut whole, cancel)?;
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
    let sidecar_key = folder.key(&format!("{}.sha256", manifest.image.file_name));
    let sidecar = match fetch_record(runtime, &client, bucket, &sidecar_key) {
        Ok(Some(bytes)) => Sidecar::Text(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(None) => Sidecar::Absent,
        Err(failure) => Sidecar::Unreadable(format!("{:#}", failure.error)),
    };
    let location = objects.first().map_or_else(String::new, |o| o.key.clone());
    let beside = |suffix: &str, limit: u64| {
        let key = folder.key(&format!("{}.{suffix}", manifest.case.evidence_name));
        match fetch_bounded(runtime, &client, bucket, &key, limit) {
            Ok(Some(bytes)) => Beside::Bytes(bytes),
            Ok(None) => Beside::Absent,
            Err(failure) => Beside::Unreadable(format!("{:#}", failure.error)),
        }
    };
    let custody = custody::CustodyFiles {
        manifest_file: manifest_key
            .rsplit('/')
            .next()
            .unwrap_or(manifest_key)
            .to_owned(),
        statement: beside("custody.json", Statement::MAX_BYTES as u64 + 1),
        signature: beside("custody.sig", custody::MAX_SIGNATURE_BYTES),
        record: text,
    };
    Ok(Checked {
        measured: whole.finish(sidecar, problems),
        image: format!("s3://{bucket}/{location}"),
        manifest,
        custody,
    })
}

/// One stored object to read back, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReadBack {
    key: String,
    version_id: Option<String>,
    size_bytes: u64,
    /// The object's own SHA-256 (segments of a split image).
    sha256: Option<String>,
}

/// The objects to read for a manifest stored in `folder`: those it lists, which must be the
/// image's objects beside the manifest, in the manifest's own bucket — never another prefix's or
/// bucket's, nor the bucket's root. A manifest that records no S3 objects (`image.s3`) does not
/// describe an S3 image: reading whatever lies beside it would check an image it never named.
fn stored_objects(image: &ImageRecord, folder: &S3Url) -> Result<Vec<ReadBack>, String> {
    let Some(s3) = &image.s3 else {
        return Err(
            "image.s3 is missing: the manifest does not describe an image stored in S3 (a local \
             image's manifest is verified where the image lies: verify PATH)"
                .to_owned(),
        );
    };
    if s3.bucket != folder.bucket() {
        return Err(format!(
            "image.s3.bucket is {:?}, but the manifest was read from bucket {:?}: verify reads \
             only the image beside its manifest",
            s3.bucket,
            folder.bucket()
        ));
    }
    if s3.objects.is_empty() {
        return Err("image.s3.objects is empty: no object holds the image".to_owned());
    }
    s3.objects
        .iter()
        .zip(image.object_names())
        .map(|(object, name)| {
            let expected = folder.key(&name);
            if object.key != expected {
                return Err(format!(
                    "image.s3.objects names {:?}, but verify reads only the image's objects beside \
                     the manifest: {expected:?}",
                    object.key
                ));
            }
            Ok(ReadBack {
                key: object.key.clone(),
                version_id: object.version_id.clone(),
                size_bytes: object.size_bytes,
                sha256: object.sha256.clone(),
            })
        })
        .collect()
}

/// Reads a small object (the manifest, the sidecar) whole, refusing one larger than any record:
/// `None` when there is no such key.
fn fetch_record(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Failure> {
    fetch_bounded(runtime, client, bucket, key, Manifest::MAX_RECORD_BYTES)
}

/// As [`fetch_record`], refusing an object over `limit` bytes (a custody statement or signature is
/// a few hundred bytes: a larger one is refused before it is read whole).
fn fetch_bounded(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, Failure> {
    let location = format!("s3://{bucket}/{key}");
    let failed = |detail: String| {
        Failure::new(
            Exit::Destination,
            anyhow!("cannot read {location}: {detail}"),
        )
    };
    let too_large = || {
        unusable(anyhow!(
            "{location} is larger than {limit} bytes, more than any record this program writes"
        ))
    };
    runtime.block_on(async {
        let response = match client.get_object().bucket(bucket).key(key).send().await {
            Ok(response) => response,
            Err(e) if imaging::s3::is_missing_object(&e) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(failed(
                    aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                ));
            }
        };
        let announced = response
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        if announced > limit {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        let mut body = response.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| failed(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    })
}

/// The whole-image hashes and pieces, fed object by object.
struct WholeImage {
    size: u64,
    hashers: Vec<Hasher>,
    pieces: Option<PieceHasher>,
    /// A memory image's structure, walked in the same read.
    lime: Option<LimeWalker>,
}

impl WholeImage {
    /// Hashers for what `image` records (its validation guarantees a positive piece size), and
    /// a LiME walker when it is a memory image.
    fn new(image: &ImageRecord, memory: bool) -> Self {
        Self {
            lime: memory.then(LimeWalker::new),
            size: 0,
            hashers: image.hashes.keys().map(|&a| Hasher::new(a)).collect(),
            pieces: image
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
        if let Some(lime) = self.lime.as_mut() {
            lime.feed(chunk);
        }
    }

    fn finish(self, sidecar: Sidecar, problems: Vec<String>) -> Measured {
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
            lime: self.lime.map(LimeWalker::finish),
        }
    }
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
    object: &ReadBack,
    whole: &mut WholeImage,
    cancel: &AtomicBool,
) -> Result<ObjectMeasure, Failure> {
    let key = &object.key;
    let version = imaging::s3::real_version(object.version_id.as_deref());
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
            // A 404 (no such key, or no such version) is the image gone, as a missing local image
            // is (exit 10), not S3 failing (30): the examiner must look for the evidence, not retry.
            if imaging::s3::is_missing_object(&e) {
                return Failure::new(
                    Exit::SourceMissing,
                    anyhow!(
                        "the image the manifest names, s3://{bucket}/{key}{}, does not exist",
                        object
                            .version_id
                            .as_deref()
                            .map(|v| format!(" (version {v})"))
                            .unwrap_or_default()
                    ),
                );
            }
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
            let detail = aws_sdk_s3::error::DisplayErrorContext(&e);
            Failure::new(
                Exit::Destination,
                anyhow!("reading s3://{bucket}/{key}: {detail}"),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use imaging::s3::{PartPlan, S3Object, S3Receipt};

    use super::*;

    fn folder(url: &str) -> S3Url {
        url.parse().unwrap()
    }

    fn object(key: &str, offset: u64, size_bytes: u64) -> S3Object {
        S3Object {
            key: key.into(),
            offset,
            size_bytes,
            part_plan: PartPlan {
                part_size: 8 << 20,
                parts: 1,
            },
            etag: None,
            version_id: Some("v1".into()),
            checksum_crc32c: Some("AAAA-1".into()),
            checksum_sha256: None,
            server_checksum: None,
            sha256: None,
        }
    }

    fn image(objects: Vec<S3Object>) -> ImageRecord {
        ImageRecord {
            file_name: "s.image.dd".into(),
            location: "s3://b/c/s.image.dd".into(),
            size_bytes: 10,
            hashes: BTreeMap::new(),
            piecewise: None,
            s3: Some(S3Receipt {
                bucket: "bkt".into(),
                objects,
            }),
        }
    }

    #[test]
    fn objects_are_read_only_beside_the_manifest() {
        let one = image(vec![object("c/d/s.image.dd", 0, 10)]);
        let stored = stored_objects(&one, &folder("s3://bkt/c/d")).unwrap();
        assert_eq!(
            stored,
            [ReadBack {
                key: "c/d/s.image.dd".into(),
                version_id: Some("v1".into()),
                size_bytes: 10,
                sha256: None,
            }]
        );
        let err = stored_objects(&one, &folder("s3://bkt/c")).unwrap_err();
        assert!(
            err.contains(
                r#"verify reads only the image's objects beside the manifest: "c/s.image.dd""#
            ),
            "{err}"
        );
        let root = image(vec![object("s.image.dd", 0, 10)]);
        assert_eq!(
            stored_objects(&root, &folder("s3://bkt")).unwrap()[0].key,
            "s.image.dd"
        );
        assert!(stored_objects(&root, &folder("s3://bkt/c/d")).is_err());
        let segments = image(vec![
            object("c/s.image.dd.001", 0, 5),
            object("c/s.image.dd.002", 5, 5),
        ]);
        assert_eq!(
            stored_objects(&segments, &folder("s3://bkt/c"))
                .unwrap()
                .len(),
            2
        );
        assert!(stored_objects(&segments, &folder("s3://bkt/d")).is_err());
    }

    // Issue 19: a manifest without `image.s3` was verified against whatever lay beside it; it
    // describes no S3 image and is refused.
    #[test]
    fn a_manifest_must_list_its_objects() {
        assert!(stored_objects(&image(Vec::new()), &folder("s3://bkt/c")).is_err());
        let mut local = image(Vec::new());
        local.s3 = None;
        let err = stored_objects(&local, &folder("s3://bkt/c/d")).unwrap_err();
        assert!(err.contains("image.s3 is missing"), "{err}");
    }

    /// A LiME image of `ranges` (`[start, end)`), each range's bytes a pattern of its address.
    fn lime_image(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(start, end) in ranges {
            out.extend_from_slice(&0x4C69_4D45u32.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&(end - 1).to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend((start..end).map(|a| a.to_le_bytes()[0]));
        }
        out
    }

    // Issue 22: a memory image's LiME structure is walked in the one read that hashes it,
    // whatever the cut of its stream; a disk image is not walked.
    #[test]
    fn a_memory_image_is_walked_in_the_read_that_hashes_it() {
        let ranges = [(0x1000, 0x1100), (0x3000, 0x3010)];
        let bytes = lime_image(&ranges);
        let mut record = image(Vec::new());
        record.hashes = BTreeMap::from([(imaging::HashAlgorithm::Sha256, String::new())]);
        let mut whole = WholeImage::new(&record, true);
        for chunk in bytes.chunks(7) {
            whole.update(chunk);
        }
        let measured = whole.finish(Sidecar::Absent, Vec::new());
        assert_eq!(measured.size, bytes.len() as u64);
        assert_eq!(measured.lime, Some(Ok(ranges.to_vec())));
        assert_eq!(
            measured.hashes[&imaging::HashAlgorithm::Sha256],
            hex::encode(sha2::Sha256::digest(&bytes))
        );
        let mut disk = WholeImage::new(&record, false);
        disk.update(&bytes);
        assert_eq!(disk.finish(Sidecar::Absent, Vec::new()).lime, None);
    }

    // Issue 19: a manifest naming another bucket passed, read from the URL's bucket.
    #[test]
    fn the_objects_must_be_in_the_manifests_own_bucket() {
        let one = image(vec![object("c/d/s.image.dd", 0, 10)]);
        assert!(stored_objects(&one, &folder("s3://bkt/c/d")).is_ok());
        let err = stored_objects(&one, &folder("s3://other-bucket/c/d")).unwrap_err();
        assert!(
            err.contains(
                r#"image.s3.bucket is "bkt", but the manifest was read from bucket "other-bucket""#
            ),
            "{err}"
        );
    }
}
