//! `acquire ebs-snapshot://snap-…`: a snapshot written through the EBS API into the local moto
//! server (its EBS made to answer as EBS does, `tests/helpers/motoebs.py`) becomes evidence equal
//! to the volume a restore would give — the blocks written, zeros in the holes, the volume's whole
//! size — with hashes that independent tools confirm, a schema 4 manifest that records the
//! snapshot, and `verify` passing, locally and in S3. The block list is walked page by page and
//! no block is asked for that was never written. Malformed IDs, unknown snapshots: a clear error,
//! its own exit code, nothing written.

use std::fs;
use std::path::Path;
use std::process::Command;

use collector_e2e::ebs::{BLOCK_SIZE, GIB};
use collector_e2e::{EbsRequest, Run, SnapshotImage, SnapshotServer, require_root};
use serde_json::Value;

/// The snapshot suites' incident.
const INCIDENT: &str = "IR-13";

fn manifest(dir: &Path, name: &str) -> Value {
    let text = fs::read_to_string(dir.join(format!("{name}.manifest.json")))
        .unwrap_or_else(|e| panic!("manifest of {name} in {}: {e}", dir.display()));
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// The first word `tool FILE` prints (`sha256sum`, `b3sum`: installed by setup-deps.sh).
fn digest_by(tool: &str, file: &Path) -> String {
    let out = Command::new(tool)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs (tests/helpers/setup-deps.sh installs it): {e}"));
    assert!(out.status.success(), "{tool} {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// The snapshot's record in a manifest: kind, path and `source.snapshot` as the contract says.
fn assert_snapshot_source(m: &Value, server: &SnapshotServer, blocks_listed: usize) {
    let id = &server.snapshot_id;
    assert_eq!(m["schema_version"], 6, "{m:#}");
    assert_eq!(m["source"]["kind"], "ebs_snapshot", "{:#}", m["source"]);
    assert_eq!(m["source"]["path"], format!("ebs-snapshot://{id}"));
    assert_eq!(m["source"]["size_bytes"], server.image.size_bytes());
    let snapshot = &m["source"]["snapshot"];
    assert_eq!(snapshot["snapshot_id"], id.as_str(), "{snapshot:#}");
    assert_eq!(snapshot["volume_size_gib"], server.image.volume_size_gib());
    assert_eq!(snapshot["block_size"], BLOCK_SIZE);
    assert_eq!(snapshot["blocks_listed"], blocks_listed);
}

#[test]
fn a_snapshot_becomes_evidence_equal_to_the_restored_volume_with_zeros_in_its_holes() {
    require_root();
    // 7 blocks written, pages of at most 3: the list takes three pages.
    let server = SnapshotServer::start(
        SnapshotImage::odd_with_holes(1301),
        &["--ebs-page-cap", "3"],
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");

    let run = Run::of(
        server
            .collector()
            .arg("acquire")
            .arg(server.source())
            .arg("--out")
            .arg(&out)
            .args(["--incident", INCIDENT]),
    );
    run.expect_code(0);

    // The evidence name defaults to the snapshot ID.
    let name = server.snapshot_id.as_str();
    let image = out.join(format!("{name}.image.dd"));
    server.image.assert_matches_file(&image);
    let expected = server.image.digests();
    let m = manifest(&out, name);
    assert_eq!(m["image"]["hashes"]["sha256"], expected.sha256.as_str());
    assert_eq!(m["image"]["hashes"]["blake3"], expected.blake3.as_str());
    assert_eq!(digest_by("sha256sum", &image), expected.sha256);
    assert_eq!(digest_by("b3sum", &image), expected.blake3);
    let sidecar = Command::new("sha256sum")
        .args(["-c", &format!("{name}.image.dd.sha256")])
        .current_dir(&out)
        .status()
        .expect("sha256sum runs");
    assert!(sidecar.success(), "the sidecar must satisfy sha256sum -c");
    assert_eq!(m["acquisition"]["status"], "completed");
    assert_eq!(m["case"]["incident_id"], INCIDENT);

    assert_snapshot_source(&m, &server, 7);
    // DescribeSnapshots (moto's EC2 on the same port) knows the volume StartSnapshot made.
    let snapshot = &m["source"]["snapshot"];
    let volume = snapshot["volume_id"].as_str().unwrap_or_default();
    assert!(
        volume.starts_with("vol-") && volume.len() == 21,
        "{snapshot:#}"
    );
    assert_eq!(snapshot["owner_id"], "123456789012", "{snapshot:#}");
    assert!(snapshot["start_time"].is_string(), "{snapshot:#}");

    let requests = server.ebs_requests();
    let pages: Vec<&String> = requests
        .iter()
        .filter_map(|r| match r {
            EbsRequest::ListSnapshotBlocks { query, .. } => Some(query),
            _ => None,
        })
        .collect();
    assert!(
        pages.len() >= 3,
        "7 blocks in pages of 3 take 3 ListSnapshotBlocks: {pages:?}"
    );
    // A later page follows NextToken, or starts after the last block listed (the API takes both).
    assert!(
        pages
            .iter()
            .filter(|q| q.contains("pageToken=") || q.contains("startingBlockIndex="))
            .count()
            >= 2,
        "later pages continue where the previous one ended: {pages:?}"
    );
    let mut fetched: Vec<i64> = requests
        .iter()
        .filter_map(|r| match r {
            EbsRequest::GetSnapshotBlock { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    let written: Vec<i64> = server.image.written().into_iter().map(i64::from).collect();
    // Before writing anything the run reads the first listed block, to learn that blocks may be
    // read (a denied or corrupt snapshot is refused with nothing written); that block may be
    // fetched a second time by the walk. Any other repeat, or any request for a hole, is waste.
    if fetched.len() == written.len() + 1 && fetched[0] == written[0] {
        fetched.remove(0);
    }
    fetched.sort_unstable();
    assert_eq!(
        fetched, written,
        "each written block is fetched once (the probed first one at most twice), and no hole is asked for"
    );

    let verify = Run::of(
        server
            .collector()
            .arg("verify")
            .arg(out.join(format!("{name}.manifest.json"))),
    );
    verify.expect_code(0);
}

#[test]
fn a_snapshot_acquired_to_s3_is_verified_from_s3() {
    require_root();
    // Pages of at most 2, each behind an empty page whose NextToken leads to it (as EBS may answer
    // while it scans a sparse stretch): the walk, and the probe before it, follow such tokens.
    let server = SnapshotServer::start(
        SnapshotImage::odd_with_holes(1302),
        &["--ebs-page-cap", "2", "--ebs-empty-pages"],
    );
    let s3 = server.create_bucket("evidence");
    let name = server.snapshot_id.as_str();

    let run = Run::of(
        server
            .collector()
            .arg("acquire")
            .arg(server.source())
            .args(["--dest", "s3://evidence/cases", "--incident", INCIDENT])
            .arg("--s3-force-path-style"),
    );
    run.expect_code(0);
    let followed = server
        .ebs_requests()
        .iter()
        .filter(|r| {
            matches!(r, EbsRequest::ListSnapshotBlocks { query, .. } if query.contains("pageToken="))
        })
        .count();
    assert!(
        followed >= 4,
        "7 blocks in pages of 2, each behind an empty page: the walk follows 4 empty pages' tokens ({followed})"
    );

    let prefix = format!("cases/{INCIDENT}/disk_evidence/{name}");
    let listed = server
        .runtime
        .block_on(s3.list_objects_v2().bucket("evidence").send())
        .expect("list objects");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    for suffix in ["image.dd", "manifest.json", "image.dd.sha256"] {
        assert!(
            keys.contains(&format!("{prefix}.{suffix}").as_str()),
            "{suffix} missing: {keys:?}"
        );
    }
    let image = listed
        .contents()
        .iter()
        .find(|o| o.key() == Some(&format!("{prefix}.image.dd")))
        .expect("the image object");
    assert_eq!(
        image.size(),
        Some(i64::try_from(GIB).unwrap()),
        "the image is the whole volume"
    );
    let manifest = server.runtime.block_on(async {
        let object = s3
            .get_object()
            .bucket("evidence")
            .key(format!("{prefix}.manifest.json"))
            .send()
            .await
            .expect("manifest object");
        object
            .body
            .collect()
            .await
            .expect("manifest body")
            .into_bytes()
    });
    let m: Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
    let expected = server.image.digests();
    assert_eq!(m["image"]["hashes"]["sha256"], expected.sha256.as_str());
    assert_eq!(m["image"]["hashes"]["blake3"], expected.blake3.as_str());
    assert_snapshot_source(&m, &server, 7);

    // verify streams the image back from S3 and checks every hash against the manifest.
    let verify = Run::of(server.collector().args([
        "verify",
        &format!("s3://evidence/{prefix}.manifest.json"),
        "--s3-force-path-style",
    ]));
    verify.expect_code(0);
}

/// An output directory that already holds one file of someone else's, to show a refused run adds
/// nothing to it.
fn populated_out(work: &Path) -> std::path::PathBuf {
    let out = work.join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("earlier.txt"), b"kept").unwrap();
    out
}

fn assert_nothing_new(out: &Path) {
    let names: Vec<String> = fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["earlier.txt"], "a refused run wrote into {out:?}");
}

#[test]
fn malformed_snapshot_ids_are_usage_errors_before_any_request() {
    require_root();
    let server = SnapshotServer::start(SnapshotImage::new(1), &[]);
    let before = server.ebs_requests().len();
    let work = tempfile::tempdir().unwrap();
    let out = populated_out(work.path());
    for source in [
        "ebs-snapshot://snap-xyz",
        "ebs-snapshot://vol-0123456789abcdef0",
        "ebs-snapshot://",
        "ebs-snapshot://snap-0123456789ABCDEF0",
        "ebs-snapshot://snap-0123456789abcdef",
        "ebs-snapshot://snap-0123456789abcdef0/",
    ] {
        let run = Run::of(
            server
                .collector()
                .arg("acquire")
                .arg(source)
                .arg("--out")
                .arg(&out)
                .args(["--incident", INCIDENT]),
        );
        run.expect_code(2);
        assert!(!run.stderr.contains("panicked"), "{source}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("is not an EBS snapshot ID (snap- and 17 or 8 lower-case hex digits)"),
            "{source}: the message must say what a snapshot ID looks like: {}",
            run.stderr
        );
    }
    assert_eq!(
        server.ebs_requests().len(),
        before,
        "a malformed ID must not reach EBS"
    );
    assert_nothing_new(&out);
}

#[test]
fn an_unknown_snapshot_is_a_missing_source_and_nothing_is_written() {
    require_root();
    let server = SnapshotServer::start(SnapshotImage::new(1), &[]);
    let work = tempfile::tempdir().unwrap();
    let out = populated_out(work.path());
    let unknown = "snap-0123456789abcdef0";
    let run = Run::of(
        server
            .collector()
            .arg("acquire")
            .arg(format!("ebs-snapshot://{unknown}"))
            .arg("--out")
            .arg(&out)
            .args(["--incident", INCIDENT]),
    );
    run.expect_code(10);
    assert!(run.stderr.contains(unknown), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_nothing_new(&out);
    assert!(
        !server
            .ebs_requests()
            .iter()
            .any(|r| matches!(r, EbsRequest::GetSnapshotBlock { .. })),
        "no block of an unknown snapshot can be asked for"
    );
}
