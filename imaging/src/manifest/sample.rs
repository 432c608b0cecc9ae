//! Genuine manifests for the unit tests: the record of a small image, its bytes hashed for real,
//! as a local file and as a three-segment S3 image, in the current schema (BLAKE3 pieces) and as
//! schema version 2 wrote it (SHA-256 pieces).

use serde_json::{Value, json};

use super::{Manifest, SCHEMA_VERSION};
use crate::hash::{HashAlgorithm, Hasher, PieceHasher};

/// Image size: three 1 KiB pieces, the last one short.
pub(crate) const SIZE: u64 = 3000;
/// Piece size of the samples.
pub(crate) const PIECE: u64 = 1024;

/// The sample image's bytes.
pub(crate) fn bytes() -> Vec<u8> {
    (0..SIZE)
        .map(|i| u8::try_from(i * 131 % 251).unwrap())
        .collect()
}

fn digest(algorithm: HashAlgorithm, data: &[u8]) -> String {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finish_hex()
}

/// SHA-256 hex of `data`.
pub(crate) fn sha256(data: &[u8]) -> String {
    digest(HashAlgorithm::Sha256, data)
}

/// The manifest of the sample image stored as a local file, as JSON: the current schema, with
/// BLAKE3 pieces.
pub(crate) fn local_json() -> Value {
    local_json_with(HashAlgorithm::Blake3, SCHEMA_VERSION)
}

/// The same record as schema version 2 wrote it: SHA-256 pieces.
pub(crate) fn local_v2_json() -> Value {
    local_json_with(HashAlgorithm::Sha256, 2)
}

fn local_json_with(piece_algorithm: HashAlgorithm, schema_version: u32) -> Value {
    let data = bytes();
    let mut pieces = PieceHasher::new(piece_algorithm, PIECE);
    pieces.update(&data);
    let mut manifest = json!({
        "schema": "forensic-collector/manifest",
        "schema_version": schema_version,
        "tool": {"name": "forensic-collector", "version": "0.1.0", "git_revision": "unknown"},
        "case": {"incident_id": "IR-1", "evidence_name": "s"},
        "host": {"hostname": "vm", "instance_id": null},
        "source": {
            "path": "/dev/loop0",
            "kind": "block_device",
            "size_bytes": SIZE,
            "logical_sector_size": 512,
            "physical_sector_size": 512,
            "identity": {
                "kernel_name": "loop0", "parent_disk": null, "model": null, "serial": null,
                "ebs_volume_id": null, "loop_backing_file": null
            },
            "direct_io": true,
            "exclusive_open": true,
            "kernel_read_only": {"state": "set"},
            "live_acquisition": false,
            "live_use": {"mount_points": [], "swaps": [], "holders": []}
        },
        "acquisition": {
            "status": "completed",
            "started_at": "2026-12-01T15:10:22.567922950Z",
            "ended_at": "2026-12-01T15:10:22.626186564Z",
            "duration_seconds": 0.05,
            "bytes_read": SIZE,
            "bad_bytes": 0,
            "throughput_mb_per_s": 0.06,
            "chunk_size": 1_048_576,
            "queue_depth": 32,
            "sector_retries": 2,
            "peak_rss_bytes": null
        },
        "image": {
            "file_name": "s.image.dd",
            "location": "file:///evidence/s.image.dd",
            "size_bytes": SIZE,
            "hashes": {
                "sha256": sha256(&data),
                "blake3": digest(HashAlgorithm::Blake3, &data),
            },
            "piecewise": {"algorithm": piece_algorithm, "piece_size": PIECE, "pieces": pieces.finish()}
        },
        "bad_ranges": []
    });
    if schema_version >= super::FIRST_VERSION_WITH_CUSTODY {
        manifest["custody"] = custody_json();
    }
    manifest
}

/// The custody section of the samples: unsigned, no AWS principal, a hand-started run.
pub(crate) fn custody_json() -> Value {
    json!({
        "principal": null,
        "unix_user": {"uid": 0, "name": "root"},
        "host": {"hostname": "vm", "kernel": "6.1.0-28-amd64", "region": null,
                 "instance_id": null, "ami_id": null, "instance_type": null},
        "tool": {"version": "0.1.0", "git_revision": "unknown", "executable_sha256": "ab".repeat(32)},
        "examiner": null,
        "settings": {"imaging.hashes": "default", "s3.part_size": "flag --part-size"},
        "events": {
            "detected_at": null,
            "started_at": "2026-12-01T15:10:22.567922950Z",
            "last_byte_read_at": "2026-12-01T15:10:22.600000000Z",
            "image_confirmed_at": "2026-12-01T15:10:22.626186564Z",
            "manifest_written_at": "2026-12-01T15:10:22.627000000Z"
        },
        "signature": {"state": "unsigned"}
    })
}

/// Segment sizes of the S3 sample.
pub(crate) const SEGMENTS: [u64; 3] = [1024, 1024, 952];

/// The manifest of the sample image stored in S3 as three segments under `cases/IR-1/disk_evidence`.
pub(crate) fn segmented_json() -> Value {
    let data = bytes();
    let mut manifest = local_json();
    let mut offset = 0u64;
    let objects: Vec<Value> = (1..)
        .zip(SEGMENTS)
        .map(|(number, size)| {
            let start = usize::try_from(offset).unwrap();
            let end = usize::try_from(offset + size).unwrap();
            let object = json!({
                "key": format!("cases/IR-1/disk_evidence/s.image.dd.{number:03}"),
                "offset": offset,
                "size_bytes": size,
                "part_plan": {"part_size": 8_388_608, "parts": 1},
                "etag": "\"abc-1\"",
                "version_id": null,
                "checksum_sha256": "AAAA-1",
                "server_checksum": "AAAA-1",
                "sha256": sha256(&data[start..end]),
            });
            offset += size;
            object
        })
        .collect();
    manifest["image"]["location"] = json!("s3://evidence/cases/IR-1/disk_evidence/s.image.dd.001");
    manifest["image"]["s3"] = json!({"bucket": "evidence", "objects": objects});
    manifest
}

/// Parses sample JSON without validation (to build invalid manifests from).
pub(crate) fn unchecked(value: Value) -> Manifest {
    serde_json::from_value(value).expect("the sample matches the schema")
}

/// The local sample as a `Manifest`.
pub(crate) fn local() -> Manifest {
    unchecked(local_json())
}

/// The segmented S3 sample as a `Manifest`.
pub(crate) fn segmented() -> Manifest {
    unchecked(segmented_json())
}
