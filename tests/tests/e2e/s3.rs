//! `acquire --dest s3://…` against a real S3-compatible server (moto) on 127.0.0.1: the object is the
//! device bit for bit, S3's own composite checksum matches ours, companions land beside it, the
//! manifest comes last, and nothing is left half-uploaded.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::fs;
use std::process::Command;

use collector_e2e::{FaultFs, LocalS3, LoopDevice, Run, random_file, require_root, sha256_hex};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// The tags of an object, as a map.
fn object_tags(local: &LocalS3, key: &str) -> std::collections::BTreeMap<String, String> {
    local
        .runtime
        .block_on(
            local
                .client
                .get_object_tagging()
                .bucket("evidence")
                .key(key)
                .send(),
        )
        .expect("get object tagging")
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

#[test]
fn an_image_streamed_to_s3_is_byte_identical_and_verified_by_s3() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let (runtime, client) = (&local.runtime, &local.client);

    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.raw");
    random_file(&source, 40 * MIB + 3 * 512, 31);
    let dev = LoopDevice::attach(&source, &["--direct-io=on"]);

    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(dev.path())
        .args([
            "--dest",
            "s3://evidence/cases",
            "--incident",
            "IR-7",
            "--name",
            "vol-0123456789abcdef0",
        ])
        .args(["--s3-force-path-style", "--part-size", "8MiB"]);
    let run = Run::of(&mut cmd);
    run.expect_code(0);

    let prefix = "cases/IR-7/disk_evidence/vol-0123456789abcdef0";
    // Issue 10: the run ends naming its manifest, whole.
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("manifest=s3://evidence/{prefix}.manifest.json")),
        "{last}"
    );
    let original = fs::read(&source).unwrap();
    let image = local.get_http("evidence", &format!("{prefix}.image.dd"));
    assert!(image == original, "the S3 object differs from the device");

    let manifest: Value =
        serde_json::from_slice(&local.get("evidence", &format!("{prefix}.manifest.json"))).unwrap();
    assert_eq!(manifest["image"]["hashes"]["sha256"], sha256_hex(&original));
    assert_eq!(
        manifest["image"]["location"],
        format!("s3://evidence/{prefix}.image.dd")
    );
    let objects = manifest["image"]["s3"]["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "40 MiB is one object");
    let s3 = &objects[0];
    assert_eq!(s3["key"], format!("{prefix}.image.dd"));
    assert!(
        s3.get("sha256").is_none(),
        "an unsplit image has no segment hash"
    );
    assert_eq!(s3["part_plan"]["part_size"], 8 * MIB);
    assert_eq!(s3["part_plan"]["parts"], 6);
    // Issue 12: parts carry CRC32C (S3 refuses a part whose bytes do not match it), and the
    // composite is the CRC32C of the parts' CRC32Cs: recomputed here from the disk's bytes.
    let checksum = s3["checksum_crc32c"].as_str().unwrap();
    assert!(s3.get("checksum_sha256").is_none(), "{s3}");
    assert!(
        s3["server_checksum"].is_string(),
        "moto keeps checksums: {s3}"
    );
    let disk = std::fs::read(&source).unwrap();
    let crc32c = crc_fast::crc32_iscsi;
    let part_crcs: Vec<u8> = disk
        .chunks(8 << 20)
        .flat_map(|part| crc32c(part).to_be_bytes())
        .collect();
    let expected = format!("{}-6", BASE64.encode(crc32c(&part_crcs).to_be_bytes()));
    assert_eq!(checksum, expected);
    let head = runtime
        .block_on(
            client
                .head_object()
                .bucket("evidence")
                .key(format!("{prefix}.image.dd"))
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send(),
        )
        .unwrap();
    // Real S3 reports `digest-N`; moto omits `-N`. Either way the digest must be ours.
    let stored = head
        .checksum_crc32_c()
        .expect("S3 returns the composite checksum");
    assert!(
        checksum == stored || checksum.strip_suffix("-6") == Some(stored),
        "S3's checksum {stored} must be the one recorded, {checksum}"
    );
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("incident-id"))
            .map(String::as_str),
        Some("IR-7")
    );

    // The hashes are known only after the last byte, when metadata is fixed; tags carry them.
    let tags = object_tags(&local, &format!("{prefix}.image.dd"));
    assert_eq!(
        tags.get("image-sha256").map(String::as_str),
        Some(sha256_hex(&original).as_str())
    );
    assert!(tags.contains_key("image-blake3"), "{tags:?}");
    assert_eq!(tags.get("incident-id").map(String::as_str), Some("IR-7"));

    let sidecar =
        String::from_utf8(local.get("evidence", &format!("{prefix}.image.dd.sha256"))).unwrap();
    assert_eq!(
        sidecar,
        format!(
            "{}  vol-0123456789abcdef0.image.dd\n",
            sha256_hex(&original)
        )
    );
    let log = String::from_utf8(local.get("evidence", &format!("{prefix}.capture.log"))).unwrap();
    assert!(log.contains("Acquisition completed"), "{log}");

    assert_eq!(
        local.open_uploads("evidence"),
        0,
        "no multipart upload may be left behind"
    );

    // verify streams the object back from S3 and checks every hash, piece and the sidecar.
    let manifest_url = format!("s3://evidence/{prefix}.manifest.json");
    let mut verify = local.collector();
    verify.args(["verify", &manifest_url, "--s3-force-path-style"]);
    let ok = Run::of(&mut verify);
    ok.expect_code(0);
    assert!(
        ok.stdout.contains("sha256: OK") && ok.stdout.contains("sidecar: OK"),
        "{}",
        ok.stdout
    );

    let mut tampered = original.clone();
    tampered[12 << 20] ^= 1;
    runtime
        .block_on(
            client
                .put_object()
                .bucket("evidence")
                .key(format!("{prefix}.image.dd"))
                .body(tampered.into())
                .send(),
        )
        .unwrap();
    let mut verify = local.collector();
    verify.args(["verify", &manifest_url, "--s3-force-path-style"]);
    let bad = Run::of(&mut verify);
    bad.expect_code(4);
    assert!(bad.stdout.contains("sha256: MISMATCH"), "{}", bad.stdout);
}

#[test]
fn an_unknown_bucket_or_a_malformed_url_is_a_clear_error() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("s.raw");
    random_file(&source, MIB, 32);

    let mut cmd = local.collector();
    cmd.arg("acquire").arg(&source).args([
        "--dest",
        "s3://no-such-bucket/x",
        "--incident",
        "IR-8",
        "--s3-force-path-style",
    ]);
    let run = Run::of(&mut cmd);
    run.expect_code(30);
    assert!(run.stderr.contains("NoSuchBucket"), "{}", run.stderr);

    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(&source)
        .args(["--dest", "s3:/bucket", "--incident", "IR-8"]);
    let run = Run::of(&mut cmd);
    run.expect_code(2);
    assert!(
        !run.stderr.contains("Source opened"),
        "a bad URL is refused before the source is touched: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is not an s3://bucket/prefix URL"),
        "{}",
        run.stderr
    );

    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://bucket/x"]);
    let run = Run::of(&mut cmd);
    run.expect_code(2);
    assert!(run.stderr.contains("needs --incident"), "{}", run.stderr);

    // Issue 10: `verify` reads `s3://` URLs with the same parser as `acquire`, and says why.
    for (url, why) in [
        ("s3://Bad_Bucket/m.json", "the bucket name must be"),
        (
            "s3://evidence/a/../m.json",
            "must not contain empty, '.' or '..'",
        ),
        ("s3://evidence/", "names a bucket, not a manifest"),
    ] {
        let mut cmd = local.collector();
        cmd.args(["verify", url, "--s3-force-path-style"]);
        let run = Run::of(&mut cmd);
        run.expect_code(2);
        assert!(run.stderr.contains(why), "{url}: {}", run.stderr);
    }
}

// Issue 19: loose edges of `acquire --dest`: a prefix with a newline or an empty first segment,
// a key past S3's 1,024 bytes, a bucket owner the configuration refuses, an instance ID with a
// newline and a size past 64 bits are each a usage error (exit 2) before the source is read or
// anything is written, as the configuration refuses them; a newline reached S3 (exit 30) and a
// key too long failed only after the whole image was uploaded.
#[test]
fn loose_destination_values_are_usage_errors_before_anything_is_written() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("s.raw");
    random_file(&source, MIB, 33);
    let long_prefix = format!("s3://evidence/{}", "p".repeat(1000));
    let cases: [(&[&str], &str); 7] = [
        (
            &["--dest", "s3://evidence/cases\nforged"],
            "control character U+000A",
        ),
        (
            &["--dest", "s3://evidence//cases"],
            "empty, '.' or '..' segments",
        ),
        (&["--dest", &long_prefix], "over S3's limit of 1024"),
        (
            &[
                "--dest",
                "s3://evidence/cases",
                "--expected-bucket-owner",
                "abc",
            ],
            "not a 12-digit AWS account ID",
        ),
        (
            &[
                "--dest",
                "s3://evidence/cases",
                "--instance-id",
                "i-0123456789abcdef0\nx",
            ],
            "not an EC2 instance ID",
        ),
        (
            &["--dest", "s3://evidence/cases", "--piece-size", "16EiB"],
            "too large",
        ),
        (
            &[
                "--dest",
                "s3://evidence/cases",
                "--max-object-size",
                "100EiB",
            ],
            "too large",
        ),
    ];
    for (args, why) in cases {
        let mut cmd = local.collector();
        cmd.arg("acquire")
            .arg(&source)
            .args(["--incident", "IR-19", "--s3-force-path-style"])
            .args(args);
        let run = Run::of(&mut cmd);
        run.expect_code(2);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        assert!(
            !run.stderr.contains("Acquisition started"),
            "{args:?} must be refused before the source is read: {}",
            run.stderr
        );
        assert_eq!(local.object_count("evidence"), 0, "{args:?}");
        assert_eq!(local.open_uploads("evidence"), 0, "{args:?}");
    }
}

#[test]
fn a_run_killed_mid_upload_leaves_no_orphan_after_the_rerun() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("slow.raw");
    random_file(&backing, 48 * MIB, 33);
    // Slow reads keep the upload open long enough to kill it in the middle.
    let slow = FaultFs::mount(&backing, &["--delay-ms".into(), "100".into()]);
    let args = |cmd: &mut Command| {
        cmd.arg("acquire")
            .arg(slow.file())
            .args([
                "--dest",
                "s3://evidence/k",
                "--incident",
                "IR-9",
                "--name",
                "killed",
            ])
            .args(["--s3-force-path-style", "--queue-depth", "2"]);
    };

    let mut first = local.collector();
    args(&mut first);
    let mut child = Run::spawn(&mut first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pending = || local.open_uploads("evidence");
    while pending() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert_eq!(pending(), 1, "the killed run leaves its upload open");

    let mut second = local.collector();
    args(&mut second);
    let rerun = Run::of(&mut second);
    rerun.expect_code(0);
    assert!(
        rerun.stderr.contains("left by an interrupted run"),
        "{}",
        rerun.stderr
    );
    assert_eq!(pending(), 0, "no multipart upload may be left behind");
    let image = local.get_http("evidence", "k/IR-9/disk_evidence/killed.image.dd");
    assert!(
        image == fs::read(&backing).unwrap(),
        "the rerun's object differs from the source"
    );
}

#[test]
fn object_lock_retention_and_legal_hold_protect_every_object() {
    require_root();
    let local = LocalS3::with_bucket("locked", true);
    let (runtime, client) = (&local.runtime, &local.client);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("s.raw");
    random_file(&source, 9 * MIB, 34);

    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(&source)
        .args([
            "--dest",
            "s3://locked/p",
            "--incident",
            "IR-L",
            "--name",
            "held",
            "--s3-force-path-style",
        ])
        .args([
            "--object-lock-mode",
            "compliance",
            "--object-lock-retain-until",
            "2099-01-01T00:00:00Z",
        ])
        .arg("--legal-hold");
    Run::of(&mut cmd).expect_code(0);

    for file in [
        "held.image.dd",
        "held.image.dd.sha256",
        "held.capture.log",
        "held.manifest.json",
    ] {
        let key = format!("p/IR-L/disk_evidence/{file}");
        let head = runtime
            .block_on(client.head_object().bucket("locked").key(&key).send())
            .expect(&key);
        assert_eq!(
            head.object_lock_mode(),
            Some(&aws_sdk_s3::types::ObjectLockMode::Compliance),
            "{key}"
        );
        assert_eq!(
            head.object_lock_legal_hold_status(),
            Some(&aws_sdk_s3::types::ObjectLockLegalHoldStatus::On),
            "{key}"
        );
        assert_eq!(
            head.object_lock_retain_until_date().map(|d| d.secs()),
            Some(4_070_908_800),
            "{key}"
        );
    }
}

#[test]
fn a_bucket_without_object_lock_is_refused_when_the_configuration_requires_it() {
    require_root();
    let local = LocalS3::with_bucket("plain", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("s.raw");
    random_file(&source, MIB, 35);

    let mut cmd = local.collector();
    cmd.arg("acquire").arg(&source).args([
        "--dest",
        "s3://plain/p",
        "--incident",
        "IR-L",
        "--s3-force-path-style",
        "--require-object-lock",
    ]);
    let run = Run::of(&mut cmd);
    run.expect_code(30);
    assert!(
        run.stderr.contains("requires Object Lock"),
        "{}",
        run.stderr
    );
    assert_eq!(local.object_count("plain"), 0, "nothing may be written");
    assert_eq!(local.open_uploads("plain"), 0);
}
