//! The manifest: the evidence record that makes an image trustworthy.
//!
//! It is stored after the image (locally published from the run's staging directory, see
//! `sink::staging`; on S3 the last object), so its presence means the image beside it is complete
//! and its hashes are final. The schema is documented
//! in `docs/manifest.md`; `schema_version` changes whenever a field changes meaning or disappears.
//!
//! Reading goes the other way and trusts nothing: [`Manifest::read`] takes only bounded regular
//! files ([`crate::regular_file::read`]), and every parsed manifest passes [`Manifest::validate`] before a
//! caller gets it.

#[cfg(test)]
pub(crate) mod sample;
mod validate;

/// Largest manifest (or sidecar) read. A manifest's size is dominated by its piece list, about
/// 190 bytes a piece: 256 MiB holds 1.4 million pieces — the default 1 GiB pieces of any disk up
/// to a petabyte, or 48 MiB pieces of a 64 TiB volume (EBS's largest). A sidecar is always smaller
/// than its manifest (one short line per object). Anything bigger is not a record this tool wrote.
pub(crate) const MAX_RECORD_BYTES: u64 = 256 << 20;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::custody::{Custody, CustodyFacts, StepTimes};
use crate::device::{LiveUse, ReadOnlyFlag, Source, SourceKind};
use crate::error::{Error, Result};
use crate::hash::{HashAlgorithm, Piece};
use crate::identity::Identity;
use crate::memory::{Memory, MemoryRecord};
use crate::pipeline::{Outcome, PipelineConfig};
use crate::ranges::{self, BadRange};
use crate::snapshot::{SNAPSHOT_SECTOR_SIZE, Snapshot, SnapshotRecord};

/// Identifies manifests written by this tool.
pub(crate) const SCHEMA: &str = "forensic-collector/manifest";
/// Version of the manifest layout. 3: `image.piecewise.algorithm` may be `blake3` (the default since
/// then). A reader of version 2 took every piece list for SHA-256; the new number makes it refuse
/// the manifest as too new ("unsupported schema version 3") instead of calling the pieces damaged
/// or the record forged. 4: `source.kind` may be `ebs_snapshot`, with `source.snapshot`; a
/// version-3 reader would call that kind unknown and the manifest malformed. 5: `source.kind` may
/// be `memory`, with `source.memory` (a LiME image of physical memory). 6: `custody` (who, where,
/// when, with which build, and whether a signed statement vouches for the record) is required; a
/// version-5 reader would refuse it as an unknown field.
pub(crate) const SCHEMA_VERSION: u32 = 6;
/// The first version with a custody section, which every manifest from then on has.
pub(crate) const FIRST_VERSION_WITH_CUSTODY: u32 = 6;
/// The first version whose source may be physical memory.
pub(crate) const FIRST_VERSION_WITH_MEMORY: u32 = 5;
/// The first version whose source may be an EBS snapshot.
pub(crate) const FIRST_VERSION_WITH_SNAPSHOTS: u32 = 4;
/// The first version whose piece lists may be other than SHA-256.
pub(crate) const FIRST_VERSION_WITH_BLAKE3_PIECES: u32 = 3;

/// The whole record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `SCHEMA`.
    pub schema: String,
    /// `SCHEMA_VERSION` at the time of writing.
    pub schema_version: u32,
    /// Which program made the image.
    pub tool: ToolInfo,
    /// Which case it belongs to.
    pub case: CaseInfo,
    /// Where it was made.
    pub host: HostInfo,
    /// What was imaged.
    pub source: SourceRecord,
    /// How the run went.
    pub acquisition: AcquisitionRecord,
    /// The image and its hashes.
    pub image: ImageRecord,
    /// Ranges written as zeros because they could not be read. Empty on a clean run.
    pub bad_ranges: Vec<BadRange>,
    /// Who captured the evidence, where, when and with what, and whether a signed statement
    /// vouches for this record (schema 6 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custody: Option<Custody>,
}

/// Bounds of reading a record back.
impl Manifest {
    /// Largest manifest or sidecar read back: 256 MiB.
    pub const MAX_RECORD_BYTES: u64 = MAX_RECORD_BYTES;
}

/// Program identity, so an examiner can reproduce the exact build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `forensic-collector`.
    pub name: String,
    /// Cargo package version.
    pub version: String,
    /// Git commit the binary was built from (`unknown` outside a checkout).
    pub git_revision: String,
}

/// Case identifiers supplied by the responder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// Incident ID, when given.
    pub incident_id: Option<String>,
    /// The evidence name used for every file of this acquisition.
    pub evidence_name: String,
    /// The suspect's original EBS volume, when the imaged device is a copy made from its snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume_id: Option<String>,
    /// Who collected the evidence, as given (`acquire --examiner`, `job.examiner`); checked by
    /// [`check_examiner`]. Absent in manifests written before it existed, which stay readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examiner: Option<String>,
}

/// Bounds of the case fields.
impl CaseInfo {
    /// Longest examiner name: 128 characters ([`check_examiner`](crate::check_examiner)).
    pub const MAX_EXAMINER_CHARS: usize = MAX_EXAMINER_CHARS;
}

/// Longest examiner name, in characters: room for a full name and a badge or employee number.
pub(crate) const MAX_EXAMINER_CHARS: usize = 128;

/// `name` trimmed, if it is fit to record: 1 to [`CaseInfo::MAX_EXAMINER_CHARS`] characters, no control
/// characters (a newline would split the capture log and the sidecar's lines if it ever reached
/// them) and no bidirectional-override or invisible formatting characters (which make a name read
/// differently from what it is). Any other Unicode is kept: names are not ASCII.
pub fn check_examiner(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if !(1..=MAX_EXAMINER_CHARS).contains(&count) {
        return Err(format!(
            "examiner must be 1 to {MAX_EXAMINER_CHARS} characters, not {count}"
        ));
    }
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
    };
    if let Some(c) = trimmed.chars().find(|&c| hostile(c)) {
        return Err(format!(
            "examiner {trimmed:?} contains the control or formatting character U+{:04X}",
            u32::from(c)
        ));
    }
    Ok(trimmed.to_owned())
}

/// The collecting host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name at the time of collection.
    pub hostname: String,
    /// EC2 instance ID, when known.
    pub instance_id: Option<String>,
}

/// Facts about the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Path as given on the command line, made absolute against the working directory (links
    /// and `..` are kept as the operator wrote them); `ebs-snapshot://snap-…` for a snapshot.
    pub path: PathBuf,
    /// What `path` resolved to when the source was opened (the device node behind a
    /// `/dev/disk/by-id/…` link, a file behind a symbolic link); absent when it is `path` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<PathBuf>,
    /// Block device or regular file.
    pub kind: SourceKind,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Logical sector size (bad ranges are counted in these).
    pub logical_sector_size: u32,
    /// Physical sector size.
    pub physical_sector_size: u32,
    /// Model, serial, EBS volume ID, loop backing file.
    pub identity: Identity,
    /// Whether the page cache was bypassed.
    pub direct_io: bool,
    /// Whether the device was held with O_EXCL (nothing could mount it meanwhile).
    pub exclusive_open: bool,
    /// What happened to the kernel read-only flag.
    pub kernel_read_only: ReadOnlyFlag,
    /// True when the host was using the device while it was imaged (the image is then a
    /// crash-consistent snapshot at best).
    pub live_acquisition: bool,
    /// How it was in use.
    pub live_use: LiveUse,
    /// The snapshot, when `kind` is `ebs_snapshot` (schema 4 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRecord>,
    /// The memory capture, when `kind` is `memory` (schema 5 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryRecord>,
}

impl SourceRecord {
    /// The record of an opened device or file.
    pub fn of_device(source: &Source) -> Self {
        Self {
            path: source.path().to_path_buf(),
            resolved_path: source.resolved_path().map(Path::to_path_buf),
            kind: source.kind(),
            size_bytes: source.size(),
            logical_sector_size: source.logical_sector_size(),
            physical_sector_size: source.physical_sector_size(),
            identity: source.identity().clone(),
            direct_io: source.direct_io(),
            exclusive_open: source.exclusive(),
            kernel_read_only: source.read_only_flag().clone(),
            live_acquisition: !source.live_use().is_idle(),
            live_use: source.live_use().clone(),
            snapshot: None,
            memory: None,
        }
    }

    /// The record of a snapshot after its run. A snapshot cannot change, so it is never a live
    /// acquisition, and there is no device to open exclusively or flag read-only.
    pub fn of_snapshot(snapshot: &Snapshot) -> Self {
        Self {
            path: PathBuf::from(snapshot.id().uri()),
            resolved_path: None,
            kind: SourceKind::EbsSnapshot,
            size_bytes: snapshot.size(),
            logical_sector_size: SNAPSHOT_SECTOR_SIZE,
            physical_sector_size: SNAPSHOT_SECTOR_SIZE,
            identity: Identity::default(),
            direct_io: false,
            exclusive_open: false,
            kernel_read_only: ReadOnlyFlag::NotApplicable,
            live_acquisition: false,
            live_use: LiveUse::default(),
            snapshot: Some(snapshot.record()),
            memory: None,
        }
    }

    /// The record of a memory capture, before its run (each range's `bytes_read` is set from the
    /// run's bad ranges by [`Manifest::new`]). Memory is always live: the image is a smear over the
    /// acquisition's interval (`source.memory.consistency`), so `live_acquisition` is true.
    pub fn of_memory(memory: &Memory) -> Self {
        Self {
            path: PathBuf::from(memory.uri()),
            resolved_path: Some(memory.path().to_path_buf()),
            kind: SourceKind::Memory,
            size_bytes: memory.size(),
            logical_sector_size: memory.page_size(),
            physical_sector_size: memory.page_size(),
            identity: Identity::default(),
            direct_io: false,
            exclusive_open: false,
            kernel_read_only: ReadOnlyFlag::NotApplicable,
            live_acquisition: true,
            live_use: LiveUse::default(),
            snapshot: None,
            memory: Some(memory.record()),
        }
    }
}

/// Final state of a run that produced an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every sector read.
    Completed,
    /// Some sectors were unreadable and zero-filled; see `bad_ranges`.
    CompletedWithErrors,
}

/// How the run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquisitionRecord {
    /// Final status.
    pub status: Status,
    /// UTC start.
    pub started_at: DateTime<Utc>,
    /// UTC end (image durable).
    pub ended_at: DateTime<Utc>,
    /// Seconds, monotonic clock.
    pub duration_seconds: f64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes zero-filled.
    pub bad_bytes: u64,
    /// Average throughput in MB/s (10^6 bytes per second), to a tenth: an average over a noisy
    /// run has no more digits worth reading.
    pub throughput_mb_per_s: f64,
    /// Read size.
    pub chunk_size: u64,
    /// Reads in flight.
    pub queue_depth: u32,
    /// Extra attempts per bad sector.
    pub sector_retries: u32,
    /// Peak resident memory of the process, when measured.
    pub peak_rss_bytes: Option<u64>,
}

/// The image and its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// File name of the image, relative to the manifest.
    pub file_name: String,
    /// Where it was stored (`file://…`, `s3://…`).
    pub location: String,
    /// Image size in bytes (equals the source size).
    pub size_bytes: u64,
    /// Whole-image digests, lower-case hex.
    pub hashes: BTreeMap<HashAlgorithm, String>,
    /// Piecewise digests, when computed.
    pub piecewise: Option<Piecewise>,
    /// What S3 confirmed (ETag, version, part layout, composite checksum), for S3 destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<crate::sink::s3::S3Receipt>,
}

/// Piecewise hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piecewise {
    /// Algorithm of every piece.
    pub algorithm: HashAlgorithm,
    /// Piece size (the last piece may be shorter).
    pub piece_size: u64,
    /// The pieces in order.
    pub pieces: Vec<Piece>,
}

/// Everything the engine does not know by itself.
#[derive(Debug, Clone)]
pub struct Context {
    /// Program identity.
    pub tool: ToolInfo,
    /// Case identifiers.
    pub case: CaseInfo,
    /// The collecting host.
    pub host: HostInfo,
    /// File name of the image.
    pub image_file_name: String,
    /// Peak RSS, when the caller measured it.
    pub peak_rss_bytes: Option<u64>,
    /// The custody facts the caller gathered; the engine adds the times of the run's steps.
    pub custody: CustodyFacts,
}

/// `x` to the nearest tenth (`447.79901` → `447.8`), as the log lines print it.
fn round_tenth(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Manifest {
    /// Builds the record of a finished run.
    pub fn new(
        context: Context,
        source: SourceRecord,
        config: &PipelineConfig,
        outcome: Outcome,
    ) -> Self {
        let bad_bytes = ranges::total_bytes(&outcome.bad_ranges);
        let (mut source, mut outcome) = (source, outcome);
        if let Some(memory) = source.memory.as_mut() {
            memory.renumber(&mut outcome.bad_ranges);
            memory.count_read(&outcome.bad_ranges);
        }
        let times = StepTimes {
            started_at: outcome.started_at,
            last_byte_read_at: outcome.last_read_at,
            image_confirmed_at: outcome.ended_at,
            image_version_ids: outcome
                .receipt
                .s3
                .iter()
                .flat_map(|s3| &s3.objects)
                .filter_map(|object| object.version_id.clone())
                .collect(),
        };
        let seconds = outcome.elapsed.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        // throughput is informative; f64 is exact to 2^53 bytes
        let throughput = if seconds > 0.0 {
            round_tenth(outcome.bytes as f64 / seconds / 1e6)
        } else {
            0.0
        };
        Self {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            tool: context.tool,
            case: context.case,
            host: context.host,
            source,
            acquisition: AcquisitionRecord {
                status: if outcome.bad_ranges.is_empty() {
                    Status::Completed
                } else {
                    Status::CompletedWithErrors
                },
                started_at: outcome.started_at,
                ended_at: outcome.ended_at,
                duration_seconds: seconds,
                bytes_read: outcome.bytes,
                bad_bytes,
                throughput_mb_per_s: throughput,
                chunk_size: config.chunk_size as u64,
                queue_depth: u32::try_from(config.queue_depth).unwrap_or(u32::MAX),
                sector_retries: config.sector_retries,
                peak_rss_bytes: context.peak_rss_bytes,
            },
            image: ImageRecord {
                file_name: context.image_file_name,
                location: outcome.receipt.location,
                s3: outcome.receipt.s3,
                size_bytes: outcome.receipt.bytes,
                hashes: outcome.hashes,
                piecewise: config.piece_size.map(|piece_size| Piecewise {
                    algorithm: config.piece_algorithm,
                    piece_size,
                    pieces: outcome.pieces,
                }),
            },
            bad_ranges: outcome.bad_ranges,
            custody: Some(context.custody.into_custody(times)),
        }
    }

    /// The manifest as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest serialises");
        text.push('\n');
        text
    }

    /// Reads and checks a manifest file: a regular file of at most [`Manifest::MAX_RECORD_BYTES`], valid
    /// JSON of this schema, passing [`Manifest::validate`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            crate::regular_file::read(path, MAX_RECORD_BYTES).map_err(|e| Error::Manifest {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Self::from_slice(&bytes, path)
    }

    /// Parses and checks a manifest text; `origin` names it in errors (a path, or an S3 URL).
    pub fn from_json(text: &str, origin: &Path) -> Result<Self> {
        Self::from_slice(text.as_bytes(), origin)
    }

    /// Parses and checks manifest bytes (which must be UTF-8 JSON); `origin` names them in errors.
    pub fn from_slice(bytes: &[u8], origin: &Path) -> Result<Self> {
        let err = |reason: String| Error::Manifest {
            path: origin.to_path_buf(),
            reason,
        };
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        manifest
            .validate()
            .map_err(|problems| err(format!("unusable: {problems}")))?;
        Ok(manifest)
    }

    /// The `sha256sum -c` sidecar, when SHA-256 was computed: one line for each segment of a split
    /// image (checkable as soon as they are downloaded, with `--ignore-missing`), then the line for
    /// the whole image (checkable once the segments are concatenated in name order).
    pub fn sha256sum_text(&self) -> Option<String> {
        let digest = self.image.hashes.get(&HashAlgorithm::Sha256)?;
        let mut text = String::new();
        for object in self.image.s3.iter().flat_map(|s3| &s3.objects) {
            if let Some(segment_digest) = &object.sha256 {
                let file = object.key.rsplit('/').next().unwrap_or(&object.key);
                text.push_str(&format!("{segment_digest}  {file}\n"));
            }
        }
        text.push_str(&format!("{digest}  {}\n", self.image.file_name));
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 10: the manifest and the result line carried `447.79901025601873` MB/s.
    #[test]
    fn throughput_is_kept_to_a_tenth() {
        assert_eq!(round_tenth(447.799_010_256_018_73).to_string(), "447.8");
        assert_eq!(round_tenth(0.04).to_string(), "0");
        assert_eq!(round_tenth(12.25).to_string(), "12.3");
        assert_eq!(round_tenth(1030.0).to_string(), "1030");
    }
    use std::fs;

    #[test]
    fn foreign_or_future_manifests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, r#"{"schema":"other"}"#).unwrap();
        assert!(Manifest::read(&path).is_err());

        let refused = |change: fn(&mut serde_json::Value)| {
            let mut value = sample::local_json();
            change(&mut value);
            let err = Manifest::from_json(&value.to_string(), Path::new("m.json")).unwrap_err();
            assert!(matches!(err, Error::Manifest { .. }), "{err}");
            err.to_string()
        };
        let foreign = refused(|v| v["schema"] = "other/manifest".into());
        assert!(
            foreign.contains(r#"schema is "other/manifest""#),
            "{foreign}"
        );
        let future = refused(|v| v["schema_version"] = (SCHEMA_VERSION + 1).into());
        assert!(
            future.contains(&format!(
                "unsupported schema version {}",
                SCHEMA_VERSION + 1
            )),
            "{future}"
        );
        let zero = refused(|v| v["schema_version"] = 0.into());
        assert!(zero.contains("unsupported schema version 0"), "{zero}");
        let mut old = sample::local_v2_json();
        assert!(Manifest::from_json(&old.to_string(), Path::new("m.json")).is_ok());
        old["schema_version"] = 1.into();
        assert!(Manifest::from_json(&old.to_string(), Path::new("m.json")).is_ok());
    }

    // Issue 10: the examiner is optional, so manifests without it (older ones) stay readable, and a
    // hostile value is refused on the way in and when a manifest is read.
    #[test]
    fn the_examiner_is_optional_and_checked() {
        let old = sample::local_json();
        assert!(old["case"].get("examiner").is_none());
        let read = Manifest::from_json(&old.to_string(), Path::new("m.json")).unwrap();
        assert_eq!(read.case.examiner, None);
        let mut with = old.clone();
        with["case"]["examiner"] = "Dr. Åsa Müller (badge 7)".into();
        with["custody"]["examiner"] = "Dr. Åsa Müller (badge 7)".into();
        let read = Manifest::from_json(&with.to_string(), Path::new("m.json")).unwrap();
        assert_eq!(
            read.case.examiner.as_deref(),
            Some("Dr. Åsa Müller (badge 7)")
        );
        assert!(
            read.to_json()
                .contains("\"examiner\": \"Dr. Åsa Müller (badge 7)\"")
        );
        for bad in ["a\nb", "x\u{202e}y", "\u{7}", "", "  ", &"e".repeat(129)] {
            assert!(check_examiner(bad).is_err(), "{bad:?}");
            let mut hostile = old.clone();
            hostile["case"]["examiner"] = bad.into();
            let err = Manifest::from_json(&hostile.to_string(), Path::new("m.json")).unwrap_err();
            assert!(err.to_string().contains("case.examiner"), "{err}");
        }
        assert_eq!(check_examiner(" J. Doe ").unwrap(), "J. Doe");
        assert_eq!(check_examiner(&"e".repeat(128)).unwrap().len(), 128);
        assert!(check_examiner("a\u{200b}b").is_err());
        assert!(check_examiner("a\u{2066}b").is_err());
        assert!(check_examiner("a\u{feff}b").is_err());
        assert!(check_examiner("O'Brien-Núñez").is_ok());
    }

    #[test]
    fn the_sidecar_of_a_single_image_is_one_sha256sum_line() {
        let manifest = sample::local();
        let digest = sample::sha256(&sample::bytes());
        assert_eq!(
            manifest.sha256sum_text().unwrap(),
            format!("{digest}  s.image.dd\n")
        );
    }

    #[test]
    fn the_sidecar_of_a_segmented_image_lists_segments_then_the_image() {
        let manifest = sample::segmented();
        let data = sample::bytes();
        let expected = format!(
            "{}  s.image.dd.001\n{}  s.image.dd.002\n{}  s.image.dd.003\n{}  s.image.dd\n",
            sample::sha256(&data[..1024]),
            sample::sha256(&data[1024..2048]),
            sample::sha256(&data[2048..]),
            sample::sha256(&data),
        );
        assert_eq!(manifest.sha256sum_text().unwrap(), expected);
    }

    #[test]
    fn there_is_no_sidecar_without_sha256() {
        let mut manifest = sample::local();
        manifest.image.hashes.remove(&HashAlgorithm::Sha256);
        assert_eq!(manifest.sha256sum_text(), None);
    }

    #[test]
    fn json_round_trips_exactly_and_ends_with_a_newline() {
        let old = sample::unchecked(sample::local_v2_json());
        for manifest in [sample::local(), sample::segmented(), old] {
            let text = manifest.to_json();
            assert!(text.ends_with("}\n"), "{text}");
            assert!(text.starts_with("{\n  \"schema\": "), "pretty: {text}");
            assert_eq!(
                Manifest::from_json(&text, Path::new("m.json")).unwrap(),
                manifest
            );
            assert_eq!(
                Manifest::from_slice(text.as_bytes(), Path::new("m.json")).unwrap(),
                manifest
            );
        }
    }

    // Issue 12: pieces are BLAKE3 by default and the manifest says so; SHA-256 pieces (the only
    // kind before schema 3) are written as such when asked for and read back unchanged.
    #[test]
    fn the_piece_algorithm_is_recorded_as_chosen() {
        let blake3 = sample::local().to_json();
        assert!(blake3.contains("\"algorithm\": \"blake3\""), "{blake3}");
        assert!(
            blake3.contains(&format!("\"schema_version\": {SCHEMA_VERSION}")),
            "{blake3}"
        );
        let read = Manifest::from_json(&blake3, Path::new("m.json")).unwrap();
        let pieces = read.image.piecewise.unwrap();
        assert_eq!(pieces.algorithm, HashAlgorithm::Blake3);
        let data = sample::bytes();
        assert_eq!(
            pieces.pieces[2].digest,
            blake3::hash(&data[2048..]).to_hex().to_string()
        );
        let old = sample::local_v2_json().to_string();
        let read = Manifest::from_json(&old, Path::new("m.json")).unwrap();
        assert_eq!(
            read.image.piecewise.unwrap().algorithm,
            HashAlgorithm::Sha256
        );
    }

    // A file nothing on the host uses is not a live acquisition (the mutant that inverted the
    // flag survived every unit test).
    #[test]
    fn an_opened_file_is_recorded_as_opened_and_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        fs::write(&path, vec![7u8; 4096]).unwrap();
        let source = Source::open(&path, &crate::device::SourceOptions::default()).unwrap();
        let record = SourceRecord::of_device(&source);
        assert_eq!(record.path, path);
        assert_eq!(record.kind, SourceKind::RegularFile);
        assert_eq!(record.size_bytes, 4096);
        assert!(!record.live_acquisition, "{record:?}");
        assert_eq!(record.live_use, LiveUse::default());
        assert_eq!(record.kernel_read_only, ReadOnlyFlag::NotApplicable);
        assert_eq!(record.snapshot, None);
    }

    #[test]
    fn a_written_manifest_reads_back_and_a_non_regular_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.manifest.json");
        fs::write(&path, sample::local().to_json()).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), sample::local());
        let err = Manifest::read(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let missing = Manifest::read(&dir.path().join("missing.json")).unwrap_err();
        assert!(matches!(missing, Error::Manifest { .. }), "{missing}");
    }

    #[test]
    fn an_invalid_manifest_is_refused_when_parsed() {
        let mut value = sample::local_json();
        value["image"]["piecewise"]["piece_size"] = 0.into();
        let err = Manifest::from_json(&value.to_string(), Path::new("m.json")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("manifest m.json: unusable: "), "{text}");
        assert!(text.contains("piece_size is 0"), "{text}");
        assert!(
            Manifest::from_slice(b"\xff\xfe{}", Path::new("m.json")).is_err(),
            "not UTF-8"
        );
    }
}
