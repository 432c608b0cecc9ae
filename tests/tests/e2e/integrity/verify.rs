//! Integrity: `verify` passes only what it checked. A forged, damaged or hostile manifest — no
//! SHA-256, objects that do not hold the image, a zero piece size, a FIFO or a gigabyte of zeros —
//! is refused as unusable (exit 7) before any image byte is read, on the local and the S3 path
//! alike; a record that is consistent but does not match the stored bytes is a mismatch (exit 4).

use std::fs;
use std::path::Path;
use std::process::Command;

use collector_e2e::{LocalS3, Run, acquire, collector, random_file, require_root};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;

/// `verify` could not use the manifest (README's exit-code table).
const UNUSABLE: i32 = 7;
/// `verify` compared and found a difference.
const MISMATCH: i32 = 4;

/// Where the S3 captures below put their evidence.
const PREFIX: &str = "cases/IR-9/disk_evidence";

/// A genuine capture in a fresh moto server: its manifest, to forge copies of.
struct S3Capture {
    local: LocalS3,
    manifest: Value,
}

impl S3Capture {
    /// Acquires `size` random bytes as `disk1` into `s3://evidence/cases` with `extra` arguments,
    /// and checks that the genuine manifest verifies (so a refusal below is the forgery's doing).
    fn new(size: u64, extra: &[&str]) -> Self {
        require_root();
        let local = LocalS3::with_bucket("evidence", false);
        let work = tempfile::tempdir().unwrap();
        let source = work.path().join("source.raw");
        random_file(&source, size, 91);
        let mut cmd = local.collector();
        cmd.arg("acquire")
            .arg(&source)
            .args(["--dest", "s3://evidence/cases", "--incident", "IR-9"])
            .args(["--name", "disk1", "--s3-force-path-style"])
            .args(extra);
        Run::of(&mut cmd).expect_code(0);
        let manifest = serde_json::from_slice(
            &local.get("evidence", &format!("{PREFIX}/disk1.manifest.json")),
        )
        .unwrap();
        let capture = Self { local, manifest };
        capture.verify("disk1").expect_code(0);
        capture
    }

    /// `verify s3://evidence/PREFIX/NAME.manifest.json`.
    fn verify(&self, name: &str) -> Run {
        let mut cmd = self.local.collector();
        cmd.args([
            "verify",
            &format!("s3://evidence/{PREFIX}/{name}.manifest.json"),
            "--s3-force-path-style",
        ]);
        Run::of(&mut cmd)
    }

    /// Uploads the genuine manifest changed by `forge` as `NAME.manifest.json` beside it, and
    /// verifies that.
    fn verify_forged(&self, name: &str, forge: impl FnOnce(&mut Value)) -> Run {
        let mut manifest = self.manifest.clone();
        forge(&mut manifest);
        self.local
            .runtime
            .block_on(
                self.local
                    .client
                    .put_object()
                    .bucket("evidence")
                    .key(format!("{PREFIX}/{name}.manifest.json"))
                    .body(serde_json::to_vec_pretty(&manifest).unwrap().into())
                    .send(),
            )
            .expect("upload the forged manifest");
        self.verify(name)
    }
}

/// Asserts that `run` refused its manifest as unusable, saying `why`, and never passed.
fn assert_unusable(run: &Run, why: &str) {
    run.expect_code(UNUSABLE);
    assert!(
        run.stderr.contains(why),
        "the refusal must say {why:?}:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Verification passed") && !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
}

// Issue 9 item 4: a manifest with `"hashes": {}` and no pieces passed `verify s3://` having
// compared nothing.
#[test]
fn verify_s3_refuses_a_manifest_without_sha256() {
    let capture = S3Capture::new(MIB + 512, &[]);
    let run = capture.verify_forged("no-hashes", |m| {
        m["image"]["hashes"] = json!({});
        m["image"]["piecewise"] = Value::Null;
    });
    assert_unusable(&run, "image.hashes has no sha256");
    let run = capture.verify_forged("blake3-only", |m| {
        let blake3 = m["image"]["hashes"]["blake3"].clone();
        m["image"]["hashes"] = json!({ "blake3": blake3 });
        m["image"]["piecewise"] = Value::Null;
    });
    assert_unusable(&run, "image.hashes has no sha256");
    let run = capture.verify_forged("short-digest", |m| {
        m["image"]["hashes"]["sha256"] = json!("abc");
    });
    assert_unusable(&run, "image.hashes.sha256 is not 64 lower-case hex digits");
    // A manifest that is not there is unusable too, as on the local path (it was exit 30).
    assert_unusable(&capture.verify("absent"), "no such object");
}

// Issue 9 item 4: with `objects: []` verify passed for the bucket root; an object list must hold
// exactly the image, in order, under the manifest's own prefix.
#[test]
fn verify_s3_refuses_an_object_list_that_does_not_hold_exactly_the_image() {
    // 17 MiB in 8 MiB objects: segments .001, .002, .003 of 8, 8 and 1 MiB.
    let capture = S3Capture::new(
        17 * MIB,
        &["--part-size", "8MiB", "--max-object-size", "8MiB"],
    );
    assert_eq!(
        capture.manifest["image"]["s3"]["objects"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let objects =
        |m: &mut Value| -> Vec<Value> { m["image"]["s3"]["objects"].as_array().unwrap().clone() };

    // The issue's reproduction: nothing recorded, nothing to read.
    let run = capture.verify_forged("bucket-root", |m| {
        m["image"]["hashes"] = json!({});
        m["image"]["piecewise"] = Value::Null;
        m["image"]["s3"]["objects"] = json!([]);
        m["image"]["size_bytes"] = json!(0);
        m["source"]["size_bytes"] = json!(0);
    });
    assert_unusable(&run, "image.s3.objects is empty");
    let run = capture.verify_forged("no-objects", |m| m["image"]["s3"]["objects"] = json!([]));
    assert_unusable(&run, "image.s3.objects is empty");

    let run = capture.verify_forged("gap", |m| {
        let mut list = objects(m);
        list.remove(1);
        m["image"]["s3"]["objects"] = json!(list);
    });
    assert_unusable(&run, "must follow each other with no gap or overlap");

    let run = capture.verify_forged("short", |m| {
        let mut list = objects(m);
        list.pop();
        m["image"]["s3"]["objects"] = json!(list);
    });
    assert_unusable(
        &run,
        &format!(
            "objects hold {} bytes, but the image is {} bytes",
            16 * MIB,
            17 * MIB
        ),
    );

    let run = capture.verify_forged("overlap", |m| {
        m["image"]["s3"]["objects"][1]["offset"] = json!(4 * MIB);
    });
    assert_unusable(&run, "starts at byte 4194304");

    let run = capture.verify_forged("smaller-image", |m| {
        m["image"]["size_bytes"] = json!(16 * MIB);
        m["source"]["size_bytes"] = json!(16 * MIB);
    });
    assert_unusable(&run, "but the image is 16777216 bytes");

    let run = capture.verify_forged("elsewhere", |m| {
        for object in m["image"]["s3"]["objects"].as_array_mut().unwrap() {
            let key = object["key"].as_str().unwrap().replace("IR-9", "IR-0");
            object["key"] = json!(key);
        }
    });
    assert_unusable(
        &run,
        "verify reads only the image's objects beside the manifest",
    );

    let run = capture.verify_forged("root-keys", |m| {
        for object in m["image"]["s3"]["objects"].as_array_mut().unwrap() {
            let key = object["key"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned();
            object["key"] = json!(key);
        }
    });
    assert_unusable(
        &run,
        "verify reads only the image's objects beside the manifest",
    );

    // A consistent record whose sizes differ from the stored objects is read and reported as a
    // mismatch naming the objects, not refused.
    let run = capture.verify_forged("shifted", |m| {
        m["image"]["s3"]["objects"][0]["size_bytes"] = json!(8 * MIB - 512);
        m["image"]["s3"]["objects"][1]["offset"] = json!(8 * MIB - 512);
        m["image"]["s3"]["objects"][1]["size_bytes"] = json!(8 * MIB + 512);
    });
    run.expect_code(MISMATCH);
    assert!(
        run.stderr.contains(&format!(
            "{PREFIX}/disk1.image.dd.001 is 8388608 bytes, manifest says 8388096"
        )),
        "{}",
        run.stderr
    );
}

/// A local capture of `size` random bytes named `e` in `work/out`, with `extra` arguments; the
/// genuine manifest verifies.
fn local_capture(work: &Path, size: u64, extra: &[&str]) -> Value {
    require_root();
    let source = work.join("e.raw");
    random_file(&source, size, 92);
    let out = work.join("out");
    Run::of(acquire(&source, &out).args(["--name", "e"]).args(extra)).expect_code(0);
    Run::of(collector().arg("verify").arg(out.join("e.manifest.json"))).expect_code(0);
    serde_json::from_slice(&fs::read(out.join("e.manifest.json")).unwrap()).unwrap()
}

/// Writes the genuine local manifest changed by `forge` as `out/NAME.manifest.json` and verifies it.
fn verify_local_forged(work: &Path, genuine: &Value, name: &str, forge: fn(&mut Value)) -> Run {
    let mut manifest = genuine.clone();
    forge(&mut manifest);
    let path = work.join("out").join(format!("{name}.manifest.json"));
    fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    Run::of(collector().arg("verify").arg(&path))
}

// Issue 9 item 9: `verify s3://` panicked (exit 101) on a manifest with `piece_size: 0`.
#[test]
fn verify_s3_refuses_a_zero_piece_size_without_panicking() {
    let capture = S3Capture::new(4 * MIB, &["--piece-size", "1MiB"]);
    let run = capture.verify_forged("zero-pieces", |m| {
        m["image"]["piecewise"]["piece_size"] = json!(0);
    });
    assert_unusable(&run, "image.piecewise.piece_size is 0");
}

// Issue 9 item 9: the local path refused a zero piece size only by accident (the pipeline's own
// settings check, exit 2); the manifest's validation now refuses it on both paths alike.
#[test]
fn verify_local_refuses_a_zero_piece_size_as_an_unusable_manifest() {
    let work = tempfile::tempdir().unwrap();
    let genuine = local_capture(work.path(), 4 * MIB, &["--piece-size", "1MiB"]);
    let run = verify_local_forged(work.path(), &genuine, "zero", |m| {
        m["image"]["piecewise"]["piece_size"] = json!(0);
    });
    assert_unusable(&run, "image.piecewise.piece_size is 0");
}

// Issue 9 item 4: the local path and the S3 path share one validation; a local manifest that
// records too little is refused as unusable too, with the same words.
#[test]
fn verify_local_refuses_manifests_that_record_too_little() {
    let work = tempfile::tempdir().unwrap();
    let genuine = local_capture(work.path(), 4 * MIB, &["--piece-size", "1MiB"]);
    let run = verify_local_forged(work.path(), &genuine, "no-hashes", |m| {
        m["image"]["hashes"] = json!({});
        m["image"]["piecewise"] = Value::Null;
    });
    assert_unusable(&run, "image.hashes has no sha256");
    let run = verify_local_forged(work.path(), &genuine, "missing-piece", |m| {
        m["image"]["piecewise"]["pieces"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_unusable(
        &run,
        "lists 3 pieces; 4194304 bytes in pieces of 1048576 make 4",
    );
    let run = verify_local_forged(work.path(), &genuine, "escape", |m| {
        m["image"]["file_name"] = json!("../e.image.dd");
    });
    assert_unusable(&run, "image.file_name");
    let run = verify_local_forged(work.path(), &genuine, "sizes", |m| {
        m["image"]["size_bytes"] = json!(8 * MIB);
    });
    assert_unusable(&run, "differs from source.size_bytes");
}

/// `verify PATH` killed after 20 seconds: a run that blocks ends as 137, not as a hung suite.
fn verify_bounded(path: &Path) -> Run {
    let binary = collector().get_program().to_owned();
    Run::of(
        Command::new("timeout")
            .args(["-s", "KILL", "20"])
            .arg(binary)
            .arg("verify")
            .arg(path)
            .env("RUST_LOG", "info"),
    )
}

// Issue 9 item 9 (and item 10's sibling): a manifest path naming a FIFO hung `verify`, /dev/zero
// grew it until the OOM killer came, and a huge file was read whole. Only bounded regular files
// are read, and a planted sidecar cannot hang or bloat it either.
#[test]
fn verify_reads_only_bounded_regular_files() {
    let work = tempfile::tempdir().unwrap();
    local_capture(work.path(), MIB, &[]);
    let out = work.path().join("out");

    // A sparse gigabyte: refused from its size, without reading it.
    // (Peak memory cannot be read here: the child's high-water mark starts at the forking test
    // process's own, so the prompt refusal by size is what shows nothing was read.)
    let huge = out.join("huge.manifest.json");
    fs::File::create(&huge).unwrap().set_len(1 << 30).unwrap();
    let started = std::time::Instant::now();
    let run = verify_bounded(&huge);
    assert_unusable(&run, "larger than 268435456 bytes");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused from its size, not read"
    );

    let fifo = out.join("fifo.manifest.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    assert_unusable(&verify_bounded(&fifo), "not a regular file");

    let zero = out.join("zero.manifest.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    assert_unusable(&verify_bounded(&zero), "not a regular file");

    // A FIFO planted as the sidecar: the image is compared, the sidecar reported unreadable.
    let sidecar = out.join("e.image.dd.sha256");
    fs::remove_file(&sidecar).unwrap();
    let made = Command::new("mkfifo").arg(&sidecar).status().unwrap();
    assert!(made.success(), "mkfifo");
    let run = verify_bounded(&out.join("e.manifest.json"));
    run.expect_code(MISMATCH);
    assert!(
        run.stdout.contains("sha256: OK") && run.stdout.contains("sidecar: UNREADABLE"),
        "{}",
        run.stdout
    );
}

// The 1 MiB floor on pieces is a policy for new captures only: evidence made with smaller pieces
// (allowed before issue 9) still verifies, piece by piece. The record is also as schema version 2
// wrote it (issue 12): SHA-256 pieces, which `verify` re-hashes as SHA-256.
#[test]
fn verify_local_accepts_old_evidence_with_small_sha256_pieces() {
    let work = tempfile::tempdir().unwrap();
    let mut manifest = local_capture(work.path(), MIB, &["--piece-size", "1MiB"]);
    let image = fs::read(work.path().join("out/e.image.dd")).unwrap();
    let piece = 256 * 1024;
    let pieces: Vec<Value> = image
        .chunks(piece)
        .enumerate()
        .map(|(index, bytes)| {
            json!({
                "index": index,
                "offset": index * piece,
                "length": bytes.len(),
                "digest": collector_e2e::sha256_hex(bytes),
            })
        })
        .collect();
    manifest["schema_version"] = json!(2);
    // Version 2 had no custody section (schema 6 on).
    manifest.as_object_mut().unwrap().remove("custody");
    manifest["image"]["piecewise"]["algorithm"] = json!("sha256");
    manifest["image"]["piecewise"]["piece_size"] = json!(piece);
    manifest["image"]["piecewise"]["pieces"] = json!(pieces);
    let path = work.path().join("out/e.manifest.json");
    fs::remove_file(&path).unwrap();
    fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    let run = Run::of(collector().arg("verify").arg(&path));
    run.expect_code(0);
    assert!(run.stdout.contains("pieces: OK 4"), "{}", run.stdout);
}

// Issue 12: `verify` re-hashes pieces with the algorithm the manifest records. A capture at the
// defaults (BLAKE3 pieces) and one with `--piece-hash sha256` both pass; one altered digest, in
// either, fails naming its piece; and BLAKE3 digests relabelled as SHA-256 fail every piece.
#[test]
fn verify_local_checks_pieces_in_the_recorded_algorithm() {
    let work = tempfile::tempdir().unwrap();
    let blake3 = local_capture(work.path(), 4 * MIB, &["--piece-size", "1MiB"]);
    assert_eq!(blake3["image"]["piecewise"]["algorithm"], "blake3");
    let image = fs::read(work.path().join("out/e.image.dd")).unwrap();
    assert_eq!(
        blake3["image"]["piecewise"]["pieces"][3]["digest"],
        collector_e2e::blake3_hex(&image[3 << 20..])
    );
    let altered = |m: &mut Value| {
        let digest = m["image"]["piecewise"]["pieces"][2]["digest"]
            .as_str()
            .unwrap();
        let flipped = if digest.starts_with('0') { "1" } else { "0" };
        m["image"]["piecewise"]["pieces"][2]["digest"] =
            json!(format!("{flipped}{}", &digest[1..]));
    };
    let run = verify_local_forged(work.path(), &blake3, "altered", altered);
    run.expect_code(MISMATCH);
    assert!(
        run.stdout.contains("sha256: OK")
            && run.stdout.contains("pieces: MISMATCH in 1 piece of 4: [2]"),
        "{}",
        run.stdout
    );
    let run = verify_local_forged(work.path(), &blake3, "relabelled", |m| {
        m["image"]["piecewise"]["algorithm"] = json!("sha256");
    });
    run.expect_code(MISMATCH);
    assert!(
        run.stdout.contains("pieces: MISMATCH in 4 pieces of 4"),
        "{}",
        run.stdout
    );

    let other = tempfile::tempdir().unwrap();
    let sha256 = local_capture(
        other.path(),
        4 * MIB,
        &["--piece-size", "1MiB", "--piece-hash", "sha256"],
    );
    assert_eq!(sha256["image"]["piecewise"]["algorithm"], "sha256");
    assert_eq!(
        sha256["image"]["piecewise"]["pieces"][0]["digest"],
        collector_e2e::sha256_hex(&image[..1 << 20])
    );
    let run = verify_local_forged(other.path(), &sha256, "altered", altered);
    run.expect_code(MISMATCH);
    assert!(
        run.stdout.contains("pieces: MISMATCH in 1 piece of 4: [2]"),
        "{}",
        run.stdout
    );
}

// Issue 10: an image object gone from beside its manifest exited 30 ("S3 refused or failed"),
// where a missing local image exits 10: the evidence is missing, retrying S3 will not bring it
// back. Both paths now say so with 10, naming the object.
#[test]
fn verify_s3_reports_a_deleted_image_object_as_missing_like_a_local_image() {
    const MISSING: i32 = 10;
    let capture = S3Capture::new(MIB + 512, &[]);
    let image = format!("{PREFIX}/disk1.image.dd");
    capture
        .local
        .runtime
        .block_on(
            capture
                .local
                .client
                .delete_object()
                .bucket("evidence")
                .key(&image)
                .send(),
        )
        .expect("delete the image object");
    let run = capture.verify("disk1");
    run.expect_code(MISSING);
    assert!(
        run.stderr.contains(&format!("s3://evidence/{image}"))
            && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("Verification passed"),
        "{}",
        run.stderr
    );
}

// Issue 19: `verify s3://` read the image beside the manifest whatever bucket the manifest named,
// and took a manifest without `image.s3` (no object list) as well: both passed. A manifest must
// describe an S3 image, in the bucket it was read from.
#[test]
fn verify_s3_refuses_a_manifest_of_another_bucket_or_of_no_s3_image() {
    let capture = S3Capture::new(MIB + 512, &[]);
    let run = capture.verify_forged("other-bucket", |m| {
        m["image"]["s3"]["bucket"] = json!("elsewhere");
    });
    assert_unusable(
        &run,
        r#"image.s3.bucket is "elsewhere", but the manifest was read from bucket "evidence""#,
    );
    let run = capture.verify_forged("no-s3", |m| {
        m["image"]["s3"] = Value::Null;
    });
    assert_unusable(&run, "image.s3 is missing");
}
