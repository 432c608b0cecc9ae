//! Checks a manifest before anything relies on it.
//!
//! A manifest is input like any other: it may be damaged, hand-edited or forged. `verify` only
//! means something if the record it compares against is complete and consistent, so every field
//! that is used — or that states a fact about the image — is checked here, once, for the local and
//! the S3 path alike: the schema, the names, the sizes, the shape of every digest, the piece layout,
//! the object list (which must hold exactly the image's bytes, in order) and the bad ranges. Every
//! check uses checked arithmetic: no value in a manifest can make the program panic.

use std::fmt;

use super::{
    FIRST_VERSION_WITH_BLAKE3_PIECES, FIRST_VERSION_WITH_CUSTODY, FIRST_VERSION_WITH_MEMORY,
    FIRST_VERSION_WITH_SNAPSHOTS, ImageRecord, Manifest, SCHEMA, SCHEMA_VERSION, Status,
};
use crate::device::SourceKind;
use crate::hash::HashAlgorithm;
use crate::naming::SafeName;
use crate::sink::s3::segment_key;

/// How many problems an error message spells out; the rest are counted. A forged piece list can
/// hold millions of errors, and the operator needs the first few, not a megabyte of text.
const MAX_SHOWN: usize = 8;

/// How many offending piece indices one message names.
const MAX_INDICES: usize = 16;

/// Everything found wrong with a manifest, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<String>);

impl Problems {
    /// Each problem, as a sentence fragment naming the field.
    pub fn list(&self) -> &[String] {
        &self.0
    }

    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(MAX_SHOWN)];
        f.write_str(&shown.join("; "))?;
        if self.0.len() > MAX_SHOWN {
            write!(f, "; and {} more", self.0.len() - MAX_SHOWN)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Manifest {
    /// Checks that the manifest is one this program wrote (or could have written) and that it
    /// records enough to verify the image: at least its SHA-256, a piece list and an object list
    /// that describe exactly `image.size_bytes` bytes, well-formed digests and safe names.
    ///
    /// [`Manifest::read`] and [`Manifest::from_slice`] call it, so a `Manifest` obtained from text
    /// has passed it.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        check_schema(self, &mut problems);
        check_names(self, &mut problems);
        if self.image.size_bytes != self.source.size_bytes {
            problems.push(format!(
                "image.size_bytes ({}) differs from source.size_bytes ({})",
                self.image.size_bytes, self.source.size_bytes
            ));
        }
        check_source(self, &mut problems);
        check_hashes(&self.image, &mut problems);
        check_pieces(&self.image, self.schema_version, &mut problems);
        check_objects(&self.image, &mut problems);
        check_bad_ranges(self, &mut problems);
        check_custody(self, &mut problems);
        problems.into_result()
    }
}

impl ImageRecord {
    /// The file name of each stored object of the image, in image order: the image's own name
    /// when it is one object (or a local file), else its numbered segments (`NAME.image.dd.001`, …),
    /// named exactly as the S3 sink names them.
    pub fn object_names(&self) -> Vec<String> {
        let count = self.s3.as_ref().map_or(1, |s3| s3.objects.len().max(1));
        (0..count)
            .map(|index| object_name(&self.file_name, index, count))
            .collect()
    }
}

/// The name of object `index` of `count` for the image `file_name`: the sink's own rule, so the
/// two cannot drift.
fn object_name(file_name: &str, index: usize, count: usize) -> String {
    segment_key(file_name, index as u64, count as u64)
}

/// From schema 6 on every manifest has a custody section, checked against the rest of the record
/// (`custody::check`); before it none has one.
fn check_custody(manifest: &Manifest, problems: &mut Problems) {
    let since = manifest.schema_version >= FIRST_VERSION_WITH_CUSTODY;
    match &manifest.custody {
        None if since => problems.push(format!(
            "custody is missing (schema version {} records it)",
            manifest.schema_version
        )),
        Some(_) if !since => problems.push(format!(
            "custody is recorded, which schema version {} does not have",
            manifest.schema_version
        )),
        Some(custody) => {
            for problem in crate::custody::check::problems(manifest, custody) {
                problems.push(problem);
            }
        }
        None => {}
    }
}

fn check_schema(manifest: &Manifest, problems: &mut Problems) {
    if manifest.schema != SCHEMA {
        problems.push(format!("schema is {:?}, not {SCHEMA:?}", manifest.schema));
    }
    if !(1..=SCHEMA_VERSION).contains(&manifest.schema_version) {
        problems.push(format!(
            "unsupported schema version {} (this program reads 1 to {SCHEMA_VERSION})",
            manifest.schema_version
        ));
    }
}

/// A snapshot source records its snapshot, of the size it says, in a schema that has snapshots;
/// any other source records none. A record that says "snapshot" without saying which one (or
/// the reverse) does not say what was imaged.
fn check_source(manifest: &Manifest, problems: &mut Problems) {
    let source = &manifest.source;
    match (source.kind, &source.snapshot) {
        (SourceKind::EbsSnapshot, None) => {
            problems.push("source.kind is ebs_snapshot but source.snapshot is missing");
        }
        (SourceKind::EbsSnapshot, Some(snapshot)) => {
            if manifest.schema_version < FIRST_VERSION_WITH_SNAPSHOTS {
                problems.push(format!(
                    "source.kind ebs_snapshot is new in schema version {FIRST_VERSION_WITH_SNAPSHOTS}, not {}",
                    manifest.schema_version
                ));
            }
            // The layout a run applies before reading, so a record no run could write is refused.
            if let Err(why) = snapshot.check() {
                problems.push(format!("source.snapshot: {why}"));
            }
            let volume = snapshot.volume_size_gib.checked_mul(1 << 30);
            if volume != Some(source.size_bytes) {
                problems.push(format!(
                    "source.size_bytes ({}) is not source.snapshot.volume_size_gib ({}) GiB",
                    source.size_bytes, snapshot.volume_size_gib
                ));
            }
        }
        (_, Some(_)) => problems.push(format!(
            "source.snapshot is present but source.kind is {}",
            serde_json::to_value(source.kind).unwrap_or_default()
        )),
        (_, None) => {}
    }
    check_memory(manifest, problems);
}

/// A memory source records how it was read and the ranges that make up exactly its LiME image,
/// in a schema that has memory; any other source records none.
fn check_memory(manifest: &Manifest, problems: &mut Problems) {
    let source = &manifest.source;
    match (source.kind, &source.memory) {
        (SourceKind::Memory, None) => {
            problems.push("source.kind is memory but source.memory is missing");
        }
        (SourceKind::Memory, Some(memory)) => {
            if manifest.schema_version < FIRST_VERSION_WITH_MEMORY {
                problems.push(format!(
                    "source.kind memory is new in schema version {FIRST_VERSION_WITH_MEMORY}, not {}",
                    manifest.schema_version
                ));
            }
            if let Err(why) = memory.check(source.size_bytes) {
                problems.push(format!("source.memory: {why}"));
            }
        }
        (_, Some(_)) => problems.push(format!(
            "source.memory is present but source.kind is {}",
            serde_json::to_value(source.kind).unwrap_or_default()
        )),
        (_, None) => {}
    }
}

/// Names become file names and S3 keys when the image is looked up: they must not climb out of the
/// manifest's directory or prefix.
fn check_names(manifest: &Manifest, problems: &mut Problems) {
    let file_name = crate::naming::check_file_name(&manifest.image.file_name, "image.file_name");
    let evidence = SafeName::parse(&manifest.case.evidence_name, "case.evidence_name").map(drop);
    let incident = manifest.case.incident_id.as_deref().map_or(Ok(()), |id| {
        SafeName::parse(id, "case.incident_id").map(drop)
    });
    for checked in [file_name, evidence, incident] {
        if let Err(e) = checked {
            problems.push(e);
        }
    }
    if let Some(examiner) = &manifest.case.examiner
        && let Err(e) = super::check_examiner(examiner)
    {
        problems.push(format!("case.examiner: {e}"));
    }
}

/// `verify` passes only what it recomputed: without a SHA-256 of the whole image there is nothing
/// an examiner can rely on (the sidecar, `sha256sum -c` and courts all use it).
fn check_hashes(image: &ImageRecord, problems: &mut Problems) {
    if !image.hashes.contains_key(&HashAlgorithm::Sha256) {
        problems.push(
            "image.hashes has no sha256: the whole-image SHA-256 is required to verify an image",
        );
    }
    for (algorithm, digest) in &image.hashes {
        if !algorithm.is_digest(digest) {
            problems.push(format!(
                "image.hashes.{algorithm} is not {} lower-case hex digits",
                algorithm.hex_len()
            ));
        }
    }
}

/// The piece list must be exactly the pieces of the image: index `i` at `i × piece_size`, full
/// length but for the last, one well-formed digest each, in an algorithm pieces may use — and
/// SHA-256 in a manifest older than BLAKE3 pieces, since no version of this program wrote others.
fn check_pieces(image: &ImageRecord, schema_version: u32, problems: &mut Problems) {
    let Some(piecewise) = &image.piecewise else {
        return;
    };
    let algorithm = piecewise.algorithm;
    if algorithm.for_pieces().is_err() {
        problems.push(format!(
            "image.piecewise.algorithm is {algorithm}; pieces are blake3 or sha256"
        ));
    } else if algorithm != HashAlgorithm::Sha256
        && schema_version < FIRST_VERSION_WITH_BLAKE3_PIECES
    {
        problems.push(format!(
            "image.piecewise.algorithm is {algorithm}, but pieces of schema version \
             {schema_version} are always sha256"
        ));
    }
    let piece_size = piecewise.piece_size;
    if piece_size == 0 {
        problems.push("image.piecewise.piece_size is 0; it must be positive");
        return;
    }
    let expected = image.size_bytes.div_ceil(piece_size);
    if piecewise.pieces.len() as u64 != expected {
        problems.push(format!(
            "image.piecewise lists {} pieces; {} bytes in pieces of {piece_size} make {expected}",
            piecewise.pieces.len(),
            image.size_bytes
        ));
    }
    let mut wrong = Vec::new();
    let mut wrong_count = 0usize;
    for (index, piece) in (0u64..).zip(&piecewise.pieces) {
        let offset = index.checked_mul(piece_size);
        let length = offset.map(|o| piece_size.min(image.size_bytes.saturating_sub(o)));
        let right = piece.index == index
            && Some(piece.offset) == offset
            && Some(piece.length) == length
            && piecewise.algorithm.is_digest(&piece.digest);
        if !right {
            wrong_count += 1;
            if wrong.len() < MAX_INDICES {
                wrong.push(index);
            }
        }
    }
    if wrong_count > 0 {
        let more = if wrong_count > wrong.len() {
            format!(" and {} more", wrong_count - wrong.len())
        } else {
            String::new()
        };
        problems.push(format!(
            "image.piecewise.pieces at positions {wrong:?}{more} do not match the layout \
             (index, offset, length of {piece_size}-byte pieces, hex digest)"
        ));
    }
}

/// The objects must hold exactly the image: at least one, named after the image, all under one
/// prefix, each starting where the previous ended, their sizes adding up to the image's size.
fn check_objects(image: &ImageRecord, problems: &mut Problems) {
    let Some(s3) = &image.s3 else {
        return;
    };
    if s3.objects.is_empty() {
        problems.push("image.s3.objects is empty: no object holds the image");
        return;
    }
    let names = image.object_names();
    let mut prefix: Option<&str> = None;
    let mut end: u64 = 0;
    for (position, (object, name)) in (1..).zip(s3.objects.iter().zip(&names)) {
        let key = object.key.as_str();
        let object_prefix = key
            .strip_suffix(name.as_str())
            .filter(|p| p.is_empty() || p.ends_with('/'));
        match (object_prefix, prefix) {
            (None, _) => problems.push(format!(
                "image.s3.objects: key {key:?} is not named {name:?} (object {position} of {})",
                names.len()
            )),
            (Some(p), None) => prefix = Some(p),
            (Some(p), Some(first)) if p != first => problems.push(format!(
                "image.s3.objects: key {key:?} is not under the prefix {first:?} of the first object"
            )),
            (Some(_), Some(_)) => {}
        }
        if object.offset != end {
            problems.push(format!(
                "image.s3.objects: {key:?} starts at byte {}, but the previous objects end at {end} \
                 (objects must follow each other with no gap or overlap)",
                object.offset
            ));
        }
        if object.size_bytes == 0 && image.size_bytes > 0 {
            problems.push(format!("image.s3.objects: {key:?} is empty"));
        }
        // What S3 confirmed: the composite of CRC32C parts (schema 3) or of SHA-256 parts (older).
        if object.checksum_crc32c.is_some() == object.checksum_sha256.is_some() {
            problems.push(format!(
                "image.s3.objects: {key:?} must record exactly one of checksum_crc32c and checksum_sha256"
            ));
        }
        if let Some(digest) = &object.sha256
            && !HashAlgorithm::Sha256.is_digest(digest)
        {
            problems.push(format!(
                "image.s3.objects: the sha256 of {key:?} is not 64 lower-case hex digits"
            ));
        }
        let Some(next) = end.checked_add(object.size_bytes) else {
            problems.push("image.s3.objects: the object sizes overflow");
            return;
        };
        end = next;
    }
    if end != image.size_bytes {
        problems.push(format!(
            "image.s3.objects hold {end} bytes, but the image is {} bytes",
            image.size_bytes
        ));
    }
}

/// Bad ranges must lie inside the image, in order, without overlap, agree with their sector
/// numbers, and add up to the recorded bad bytes; the status must say whether there are any.
fn check_bad_ranges(manifest: &Manifest, problems: &mut Problems) {
    let size = manifest.image.size_bytes;
    let mut previous_end = 0u64;
    let mut total = 0u64;
    for (index, range) in manifest.bad_ranges.iter().enumerate() {
        let at = format!("bad_ranges[{index}]");
        let sector = u64::from(range.sector_size);
        if !range.sector_size.is_power_of_two() {
            problems.push(format!(
                "{at}: sector_size {} is not a power of two",
                range.sector_size
            ));
            continue;
        }
        if range.length == 0 {
            problems.push(format!("{at} is empty"));
        }
        let Some(end) = range
            .offset
            .checked_add(range.length)
            .filter(|&e| e <= size)
        else {
            problems.push(format!(
                "{at} ({} bytes at {}) extends past the end of the image ({size} bytes)",
                range.length, range.offset
            ));
            continue;
        };
        if range.offset < previous_end {
            problems.push(format!(
                "{at} starts at {} inside or before the previous range (ending at {previous_end}): \
                 ranges must be sorted and must not overlap",
                range.offset
            ));
        }
        let expected = match &manifest.source.memory {
            None => Some((range.offset / sector, range.length.div_ceil(sector))),
            Some(memory) => memory.pages_of(range.offset, range.length, sector),
        };
        if expected.is_none() {
            problems.push(format!(
                "{at} ({} bytes at {}) is not inside the memory of one range of source.memory",
                range.length, range.offset
            ));
        } else if expected != Some((range.first_sector, range.sector_count)) {
            problems.push(format!(
                "{at}: sectors {} + {} disagree with bytes {} + {} in {sector}-byte sectors",
                range.first_sector, range.sector_count, range.offset, range.length
            ));
        }
        previous_end = end;
        total = total.saturating_add(range.length);
    }
    if total != manifest.acquisition.bad_bytes {
        problems.push(format!(
            "bad_ranges cover {total} bytes, but acquisition.bad_bytes is {}",
            manifest.acquisition.bad_bytes
        ));
    }
    let clean = manifest.bad_ranges.is_empty();
    if clean != (manifest.acquisition.status == Status::Completed) {
        problems.push(format!(
            "acquisition.status {:?} contradicts {} bad ranges",
            manifest.acquisition.status,
            manifest.bad_ranges.len()
        ));
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::sample;
    use super::*;
    use crate::sink::s3::UploadLayout;
    use crate::sink::s3::{LayoutLimits, limits};

    /// The problems of the sample after `change`, as one text.
    fn problems(base: fn() -> Value, change: impl FnOnce(&mut Value)) -> String {
        let mut value = base();
        change(&mut value);
        sample::unchecked(value)
            .validate()
            .expect_err("the change must be refused")
            .to_string()
    }

    fn local(change: impl FnOnce(&mut Value)) -> String {
        problems(sample::local_json, change)
    }

    fn segmented(change: impl FnOnce(&mut Value)) -> String {
        problems(sample::segmented_json, change)
    }

    fn assert_mentions(text: &str, needle: &str) {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }

    #[test]
    fn genuine_manifests_pass() {
        sample::local().validate().unwrap();
        sample::segmented().validate().unwrap();
        let mut without_pieces = sample::local_json();
        without_pieces["image"]["piecewise"] = Value::Null;
        sample::unchecked(without_pieces).validate().unwrap();
        let mut one_object = sample::segmented_json();
        let object = &mut one_object["image"]["s3"]["objects"];
        *object = json!([object[0].clone()]);
        object[0]["key"] = "cases/IR-1/disk_evidence/s.image.dd".into();
        object[0]["size_bytes"] = sample::SIZE.into();
        object[0]["sha256"] = Value::Null;
        sample::unchecked(one_object.clone()).validate().unwrap();
        one_object["image"]["s3"]["objects"][0]["key"] = "s.image.dd".into();
        sample::unchecked(one_object.clone()).validate().unwrap();
        // An empty image: no pieces, one empty object.
        let empty = sample::sha256(b"");
        one_object["source"]["size_bytes"] = 0.into();
        one_object["image"]["size_bytes"] = 0.into();
        one_object["image"]["hashes"] = json!({ "sha256": empty });
        one_object["image"]["piecewise"]["pieces"] = json!([]);
        one_object["image"]["s3"]["objects"][0]["size_bytes"] = 0.into();
        sample::unchecked(one_object).validate().unwrap();
    }

    #[test]
    fn a_manifest_without_the_whole_image_sha256_is_refused() {
        assert_mentions(
            &local(|v| v["image"]["hashes"] = json!({})),
            "image.hashes has no sha256",
        );
        let blake3_only = local(|v| {
            let blake3 = v["image"]["hashes"]["blake3"].clone();
            v["image"]["hashes"] = json!({ "blake3": blake3 });
        });
        assert_mentions(&blake3_only, "has no sha256");
    }

    #[test]
    fn digests_of_the_wrong_shape_are_refused() {
        let short = local(|v| v["image"]["hashes"]["sha256"] = "abc".into());
        assert_mentions(
            &short,
            "image.hashes.sha256 is not 64 lower-case hex digits",
        );
        let upper = local(|v| {
            let d = v["image"]["hashes"]["blake3"]
                .as_str()
                .unwrap()
                .to_ascii_uppercase();
            v["image"]["hashes"]["blake3"] = d.into();
        });
        assert_mentions(&upper, "image.hashes.blake3 is not 64");
        let md5 = local(|v| v["image"]["hashes"]["md5"] = "0".repeat(64).into());
        assert_mentions(&md5, "image.hashes.md5 is not 32");
        let piece = local(|v| v["image"]["piecewise"]["pieces"][1]["digest"] = "".into());
        assert_mentions(&piece, "pieces at positions [1] do not match");
        let segment = segmented(|v| v["image"]["s3"]["objects"][2]["sha256"] = "x".into());
        assert_mentions(
            &segment,
            "the sha256 of \"cases/IR-1/disk_evidence/s.image.dd.003\"",
        );
    }

    // Issue 12: pieces are BLAKE3 (schema 3 on) or SHA-256 (every version); any other algorithm,
    // or BLAKE3 in a manifest of a version that never wrote it, is refused.
    #[test]
    fn pieces_are_blake3_or_sha256() {
        sample::local().validate().unwrap();
        sample::unchecked(sample::local_v2_json())
            .validate()
            .unwrap();
        let mut sha256_now = sample::local_v2_json();
        sha256_now["schema_version"] = SCHEMA_VERSION.into();
        sha256_now["custody"] = sample::custody_json();
        sample::unchecked(sha256_now).validate().unwrap();
        for other in ["md5", "sha1"] {
            let refused = local(|v| v["image"]["piecewise"]["algorithm"] = other.into());
            assert_mentions(
                &refused,
                &format!("image.piecewise.algorithm is {other}; pieces are blake3 or sha256"),
            );
        }
        let mut blake3_in_v2 = sample::local_json();
        blake3_in_v2["schema_version"] = 2.into();
        let err = sample::unchecked(blake3_in_v2)
            .validate()
            .unwrap_err()
            .to_string();
        assert_mentions(&err, "pieces of schema version 2 are always sha256");
        let mut v3 = sample::local_json();
        v3["schema_version"] = FIRST_VERSION_WITH_BLAKE3_PIECES.into();
        v3.as_object_mut().unwrap().remove("custody");
        sample::unchecked(v3).validate().unwrap();
    }

    #[test]
    fn a_piece_size_of_zero_is_refused_not_divided_by() {
        assert_mentions(
            &local(|v| v["image"]["piecewise"]["piece_size"] = 0.into()),
            "image.piecewise.piece_size is 0",
        );
        let mut empty = sample::local_json();
        empty["image"]["piecewise"]["piece_size"] = 0.into();
        empty["image"]["piecewise"]["pieces"] = json!([]);
        assert!(sample::unchecked(empty).validate().is_err());
    }

    #[test]
    fn pieces_must_be_exactly_the_pieces_of_the_image() {
        let missing = local(|v| {
            v["image"]["piecewise"]["pieces"]
                .as_array_mut()
                .unwrap()
                .pop();
        });
        assert_mentions(
            &missing,
            "lists 2 pieces; 3000 bytes in pieces of 1024 make 3",
        );
        let extra = local(|v| {
            let pieces = v["image"]["piecewise"]["pieces"].as_array_mut().unwrap();
            pieces.push(pieces[2].clone());
        });
        assert_mentions(&extra, "lists 4 pieces");
        assert_mentions(&extra, "positions [3]");
        let swapped = local(|v| {
            v["image"]["piecewise"]["pieces"]
                .as_array_mut()
                .unwrap()
                .swap(0, 1);
        });
        assert_mentions(&swapped, "positions [0, 1]");
        let long_last = local(|v| v["image"]["piecewise"]["pieces"][2]["length"] = 1024.into());
        assert_mentions(&long_last, "positions [2]");
        let moved = local(|v| v["image"]["piecewise"]["pieces"][1]["offset"] = 1000.into());
        assert_mentions(&moved, "positions [1]");
        let other_size = local(|v| v["image"]["piecewise"]["piece_size"] = 2048.into());
        assert_mentions(&other_size, "pieces of 2048 make 2");
        let huge = local(|v| v["image"]["piecewise"]["piece_size"] = u64::MAX.into());
        assert_mentions(&huge, "make 1");
    }

    #[test]
    fn objects_must_hold_exactly_the_image_in_order() {
        assert_mentions(
            &segmented(|v| v["image"]["s3"]["objects"] = json!([])),
            "image.s3.objects is empty",
        );
        let gap = segmented(|v| {
            v["image"]["s3"]["objects"]
                .as_array_mut()
                .unwrap()
                .remove(1);
        });
        // Two objects are named .001 and .002, and the second starts where the removed one did.
        assert_mentions(
            &gap,
            "starts at byte 2048, but the previous objects end at 1024",
        );
        assert_mentions(&gap, "hold 1976 bytes, but the image is 3000 bytes");
        let overlap = segmented(|v| v["image"]["s3"]["objects"][1]["offset"] = 1000.into());
        assert_mentions(
            &overlap,
            "starts at byte 1000, but the previous objects end at 1024",
        );
        let short = segmented(|v| v["image"]["s3"]["objects"][2]["size_bytes"] = 900.into());
        assert_mentions(&short, "hold 2948 bytes, but the image is 3000 bytes");
        let long = segmented(|v| v["image"]["s3"]["objects"][2]["size_bytes"] = 1000.into());
        assert_mentions(&long, "hold 3048 bytes");
        let empty = segmented(|v| {
            v["image"]["s3"]["objects"][2]["size_bytes"] = 0.into();
            v["image"]["s3"]["objects"][1]["size_bytes"] = 1976.into();
        });
        assert_mentions(&empty, "s.image.dd.003\" is empty");
        let overflow = segmented(|v| {
            v["image"]["s3"]["objects"][1]["size_bytes"] = u64::MAX.into();
        });
        assert_mentions(&overflow, "the object sizes overflow");
        let swapped = segmented(|v| {
            v["image"]["s3"]["objects"]
                .as_array_mut()
                .unwrap()
                .swap(0, 1);
        });
        assert_mentions(&swapped, "is not named \"s.image.dd.001\" (object 1 of 3)");
        assert_mentions(
            &swapped,
            "starts at byte 1024, but the previous objects end at 0",
        );
    }

    // Issue 12 review: each object records what S3 confirmed, one way or the other.
    #[test]
    fn objects_record_exactly_one_composite_checksum() {
        let neither = segmented(|v| {
            let object = v["image"]["s3"]["objects"][1].as_object_mut().unwrap();
            object.remove("checksum_crc32c");
            object.remove("checksum_sha256");
        });
        assert_mentions(
            &neither,
            "s.image.dd.002\" must record exactly one of checksum_crc32c and checksum_sha256",
        );
        let both = segmented(|v| {
            v["image"]["s3"]["objects"][0]["checksum_crc32c"] = "AAAAAA==-1".into();
            v["image"]["s3"]["objects"][0]["checksum_sha256"] = "AAAA-1".into();
        });
        assert_mentions(&both, "s.image.dd.001\" must record exactly one");
        let mut crc = sample::segmented_json();
        for object in crc["image"]["s3"]["objects"].as_array_mut().unwrap() {
            let object = object.as_object_mut().unwrap();
            object.remove("checksum_sha256");
            object.insert("checksum_crc32c".into(), "AAAAAA==-1".into());
        }
        sample::unchecked(crc).validate().unwrap();
    }

    #[test]
    fn objects_must_be_named_after_the_image_under_one_prefix() {
        let other = segmented(|v| {
            v["image"]["s3"]["objects"][0]["key"] =
                "cases/IR-1/disk_evidence/t.image.dd.001".into();
        });
        assert_mentions(&other, "is not named \"s.image.dd.001\"");
        let glued = segmented(|v| {
            v["image"]["s3"]["objects"][0]["key"] =
                "cases/IR-1/disk_evidencexs.image.dd.001".into();
        });
        assert_mentions(&glued, "is not named");
        let elsewhere = segmented(|v| {
            v["image"]["s3"]["objects"][2]["key"] = "other/s.image.dd.003".into();
        });
        assert_mentions(
            &elsewhere,
            "is not under the prefix \"cases/IR-1/disk_evidence/\"",
        );
        let unsplit_name = segmented(|v| {
            v["image"]["s3"]["objects"][0]["key"] = "cases/IR-1/disk_evidence/s.image.dd".into();
        });
        assert_mentions(&unsplit_name, "(object 1 of 3)");
    }

    #[test]
    fn object_names_are_the_sinks_segment_keys() {
        for (size, max_object) in [
            (1u64 << 20, 5u64 << 40),
            (100 << 20, 16 << 20),
            (2 << 40, 8 << 20),
        ] {
            let limits = LayoutLimits::from_budget(limits::MIN_PART_SIZE, 160 << 20, 4, max_object);
            let layout = UploadLayout::plan(size, limits).unwrap();
            let mut image = sample::local().image;
            let count = usize::try_from(layout.segments).unwrap();
            let objects = sample::segmented().image.s3.unwrap().objects[0].clone();
            image.s3 = Some(crate::sink::s3::S3Receipt {
                bucket: "b".into(),
                objects: vec![objects; count],
            });
            let expected: Vec<String> = (0..layout.segments)
                .map(|i| layout.segment_key("s.image.dd", i))
                .collect();
            assert_eq!(image.object_names(), expected, "{layout:?}");
        }
        assert_eq!(sample::local().image.object_names(), ["s.image.dd"]);
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        assert_mentions(
            &local(|v| v["image"]["file_name"] = "../x.image.dd".into()),
            "image.file_name",
        );
        assert_mentions(
            &local(|v| v["image"]["file_name"] = "".into()),
            "image.file_name",
        );
        assert_mentions(
            &local(|v| v["case"]["evidence_name"] = "a/b".into()),
            "case.evidence_name",
        );
        assert_mentions(
            &local(|v| v["case"]["incident_id"] = "..".into()),
            "case.incident_id",
        );
        let mut no_incident = sample::local_json();
        no_incident["case"]["incident_id"] = Value::Null;
        sample::unchecked(no_incident).validate().unwrap();
    }

    #[test]
    fn the_image_size_must_be_the_source_size() {
        let text = local(|v| v["source"]["size_bytes"] = 4096.into());
        assert_mentions(
            &text,
            "image.size_bytes (3000) differs from source.size_bytes (4096)",
        );
    }

    /// What `check_source` alone finds in the sample changed by `change`.
    fn source_problems(change: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut value = sample::local_json();
        change(&mut value);
        let mut problems = Problems::default();
        check_source(&sample::unchecked(value), &mut problems);
        problems.list().to_vec()
    }

    /// The sample's source made a 1 GiB snapshot.
    fn snapshot_source(v: &mut Value) {
        v["source"]["kind"] = "ebs_snapshot".into();
        v["source"]["path"] = "ebs-snapshot://snap-0123456789abcdef0".into();
        v["source"]["size_bytes"] = (1u64 << 30).into();
        v["source"]["snapshot"] = json!({
            "snapshot_id": "snap-0123456789abcdef0", "volume_size_gib": 1,
            "block_size": 524_288, "blocks_listed": 3, "volume_id": "vol-0123456789abcdef0",
        });
    }

    // Issue 13: a snapshot source says which snapshot, of the size imaged, in schema 4 or later.
    #[test]
    fn a_snapshot_source_records_its_snapshot_and_size_in_schema_4() {
        assert_eq!(source_problems(snapshot_source), Vec::<String>::new());
        assert_eq!(source_problems(|_| {}), Vec::<String>::new());
        let without = source_problems(|v| {
            snapshot_source(v);
            v["source"]["snapshot"] = Value::Null;
        });
        assert_eq!(
            without,
            ["source.kind is ebs_snapshot but source.snapshot is missing"]
        );
        let stray = source_problems(|v| {
            snapshot_source(v);
            v["source"]["kind"] = "block_device".into();
        });
        assert_eq!(
            stray,
            ["source.snapshot is present but source.kind is \"block_device\""]
        );
        let old = source_problems(|v| {
            snapshot_source(v);
            v["schema_version"] = 3.into();
        });
        assert_eq!(
            old,
            ["source.kind ebs_snapshot is new in schema version 4, not 3"]
        );
        let size = source_problems(|v| {
            snapshot_source(v);
            v["source"]["size_bytes"] = ((1u64 << 30) + 512).into();
        });
        assert_eq!(
            size,
            ["source.size_bytes (1073742336) is not source.snapshot.volume_size_gib (1) GiB"]
        );
        let huge = source_problems(|v| {
            snapshot_source(v);
            v["source"]["snapshot"]["volume_size_gib"] = u64::MAX.into();
        });
        assert_eq!(
            huge.len(),
            2,
            "an overflowing size is a problem, not a panic: {huge:?}"
        );
        let mut bad_id = sample::local_json();
        snapshot_source(&mut bad_id);
        bad_id["source"]["snapshot"]["snapshot_id"] = "snap-../../x".into();
        let err = serde_json::from_value::<Manifest>(bad_id).unwrap_err();
        assert!(err.to_string().contains("not an EBS snapshot ID"), "{err}");
    }

    // Issue 19: `block_size: 0` or `blocks_listed: 10^12` passed; the record is held to the
    // layout a run applies (EBS's 512 KiB block, no more blocks than the volume holds).
    #[test]
    fn a_snapshot_record_no_run_could_write_is_refused() {
        for (field, value, needle) in [
            ("block_size", json!(0), "block size 0"),
            ("block_size", json!(4096), "block size 4096"),
            (
                "blocks_listed",
                json!(1_000_000_000_000u64),
                "1000000000000 blocks listed",
            ),
            (
                "blocks_listed",
                json!(2049),
                "more than the 2048 blocks of a 1 GiB volume",
            ),
        ] {
            let found = source_problems(|v| {
                snapshot_source(v);
                v["source"]["snapshot"][field] = value.clone();
            });
            assert_eq!(found.len(), 1, "{field} {value}: {found:?}");
            assert!(
                found[0].starts_with("source.snapshot: ") && found[0].contains(needle),
                "{field} {value}: {found:?}"
            );
        }
        let full = source_problems(|v| {
            snapshot_source(v);
            v["source"]["snapshot"]["blocks_listed"] = 2048.into();
        });
        assert_eq!(full, Vec::<String>::new());
    }

    /// The sample with one 512-byte bad range at 1024, as a reader would record it.
    fn with_bad_range() -> Value {
        let mut value = sample::local_json();
        value["bad_ranges"] = json!([{
            "offset": 1024, "length": 512, "first_sector": 2, "sector_count": 1,
            "sector_size": 512, "errno": 5
        }]);
        value["acquisition"]["bad_bytes"] = 512.into();
        value["acquisition"]["status"] = "completed_with_errors".into();
        value
    }

    #[test]
    fn bad_ranges_must_lie_in_the_image_in_order_and_add_up() {
        sample::unchecked(with_bad_range()).validate().unwrap();
        // Touching ranges with different errors stay two ranges.
        let mut touching = with_bad_range();
        touching["bad_ranges"].as_array_mut().unwrap().push(json!({
            "offset": 1536, "length": 512, "first_sector": 3, "sector_count": 1,
            "sector_size": 512, "errno": 61
        }));
        touching["acquisition"]["bad_bytes"] = 1024.into();
        sample::unchecked(touching).validate().unwrap();
        let mut tail = with_bad_range();
        tail["bad_ranges"][0] = json!({
            "offset": 2560, "length": 440, "first_sector": 5, "sector_count": 1,
            "sector_size": 512, "errno": 61
        });
        tail["acquisition"]["bad_bytes"] = 440.into();
        sample::unchecked(tail).validate().unwrap();

        let bad = |change: fn(&mut Value)| problems(with_bad_range, change);
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["offset"] = 2560.into()),
            "extends past the end",
        );
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["offset"] = u64::MAX.into()),
            "extends past the end",
        );
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["sector_size"] = 0.into()),
            "not a power of two",
        );
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["sector_size"] = 500.into()),
            "not a power of two",
        );
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["first_sector"] = 3.into()),
            "disagree with bytes",
        );
        assert_mentions(
            &bad(|v| v["bad_ranges"][0]["sector_count"] = 2.into()),
            "disagree with bytes",
        );
        assert_mentions(
            &bad(|v| v["acquisition"]["bad_bytes"] = 0.into()),
            "cover 512 bytes",
        );
        assert_mentions(
            &bad(|v| v["acquisition"]["status"] = "completed".into()),
            "contradicts 1 bad",
        );
        let overlapping = bad(|v| {
            let first = v["bad_ranges"][0].clone();
            v["bad_ranges"].as_array_mut().unwrap().push(first);
            v["acquisition"]["bad_bytes"] = 1024.into();
        });
        assert_mentions(
            &overlapping,
            "bad_ranges[1] starts at 1024 inside or before",
        );
        let empty = bad(|v| {
            v["bad_ranges"][0]["length"] = 0.into();
            v["bad_ranges"][0]["sector_count"] = 0.into();
            v["acquisition"]["bad_bytes"] = 0.into();
        });
        assert_mentions(&empty, "bad_ranges[0] is empty");
        let status = local(|v| v["acquisition"]["status"] = "completed_with_errors".into());
        assert_mentions(&status, "contradicts 0 bad ranges");
    }

    #[test]
    fn long_problem_lists_are_cut_short() {
        let text = local(|v| {
            for piece in v["image"]["piecewise"]["pieces"].as_array_mut().unwrap() {
                piece["digest"] = "x".into();
            }
            v["image"]["hashes"] = json!({});
            v["image"]["file_name"] = "..".into();
            v["case"]["evidence_name"] = "..".into();
            v["case"]["incident_id"] = "..".into();
            v["source"]["size_bytes"] = 1.into();
            v["schema"] = "x".into();
            v["schema_version"] = 9.into();
            v["acquisition"]["bad_bytes"] = 1.into();
            v["acquisition"]["status"] = "completed_with_errors".into();
        });
        assert_eq!(text.matches("; ").count(), 8, "{text}");
        assert!(text.ends_with("; and 2 more"), "{text}");
        let mut many = Problems::default();
        (0..3).for_each(|i| many.push(format!("p{i}")));
        assert_eq!(many.to_string(), "p0; p1; p2");
        assert_eq!(many.list().len(), 3);
        (3..MAX_SHOWN).for_each(|i| many.push(format!("p{i}")));
        assert_eq!(many.to_string(), "p0; p1; p2; p3; p4; p5; p6; p7");
    }

    #[test]
    fn piece_lists_name_at_most_sixteen_positions() {
        let mut value = sample::local_json();
        value["source"]["size_bytes"] = 20_480.into();
        value["image"]["size_bytes"] = 20_480.into();
        let piece = value["image"]["piecewise"]["pieces"][0].clone();
        value["image"]["piecewise"]["pieces"] = json!(vec![piece; 20]);
        let text = sample::unchecked(value).validate().unwrap_err().to_string();
        assert_mentions(
            &text,
            "positions [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] and 3 more",
        );
    }
}
