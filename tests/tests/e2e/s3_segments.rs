//! Images larger than the maximum object size are stored as numbered segment objects: each is
//! confirmed by S3 and hashed on its own, they concatenate to the device, and `verify` names a
//! damaged segment.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use collector_e2e::{FaultFs, LocalS3, LoopDevice, Run, random_file, require_root, sha256_hex};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Downloads `key` over HTTP into `to` and returns its bytes.
fn download(local: &LocalS3, key: &str, to: &std::path::Path) -> Vec<u8> {
    let bytes = local.get_http("evidence", key);
    fs::write(to, &bytes).unwrap();
    bytes
}

#[test]
fn an_image_above_the_maximum_object_size_is_split_into_verified_segments() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.raw");
    random_file(&source, 40 * MIB + 3 * 512, 41);
    let dev = LoopDevice::attach(&source, &["--direct-io=on"]);

    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(dev.path())
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-9"])
        .args(["--name", "disk1", "--s3-force-path-style"])
        .args(["--part-size", "8MiB", "--max-object-size", "20MiB"]);
    let run = Run::of(&mut cmd);
    run.expect_code(0);
    assert!(run.stderr.contains("numbered segments"), "{}", run.stderr);

    let prefix = "cases/IR-9/disk_evidence/disk1";
    let manifest: Value =
        serde_json::from_slice(&local.get("evidence", &format!("{prefix}.manifest.json"))).unwrap();
    let objects = manifest["image"]["s3"]["objects"].as_array().unwrap();
    // 20 MiB rounds down to two 8 MiB parts per segment: 16 + 16 + 8 MiB and 3 sectors.
    let expected = [
        (0, 16 * MIB, 2),
        (16 * MIB, 16 * MIB, 2),
        (32 * MIB, 8 * MIB + 1536, 2),
    ];
    assert_eq!(objects.len(), expected.len(), "{objects:?}");

    let original = fs::read(&source).unwrap();
    let downloads = work.path().join("downloads");
    fs::create_dir(&downloads).unwrap();
    let mut joined = Vec::new();
    for (index, (object, (offset, size, parts))) in objects.iter().zip(expected).enumerate() {
        let name = format!("disk1.image.dd.{:03}", index + 1);
        assert_eq!(object["key"], format!("{prefix}.{}", &name[6..]));
        assert_eq!(object["offset"], offset);
        assert_eq!(object["size_bytes"], size);
        assert_eq!(object["part_plan"]["parts"], parts);
        assert!(object["server_checksum"].is_string(), "{object}");
        let bytes = download(
            &local,
            object["key"].as_str().unwrap(),
            &downloads.join(&name),
        );
        let slice = &original[usize::try_from(offset).unwrap()..][..usize::try_from(size).unwrap()];
        assert!(bytes == slice, "segment {name} differs from the device");
        assert_eq!(object["sha256"], sha256_hex(&bytes), "segment {name}");
        joined.extend_from_slice(&bytes);
    }
    assert!(
        joined == original,
        "the segments do not concatenate to the device"
    );
    assert_eq!(manifest["image"]["hashes"]["sha256"], sha256_hex(&original));
    assert_eq!(local.open_uploads("evidence"), 0);

    // The sidecar checks the downloaded segments now, and the whole image once reassembled.
    fs::write(
        downloads.join("disk1.image.dd.sha256"),
        local.get("evidence", &format!("{prefix}.image.dd.sha256")),
    )
    .unwrap();
    let check = |args: &[&str]| {
        Command::new("sha256sum")
            .args(args)
            .arg("disk1.image.dd.sha256")
            .current_dir(&downloads)
            .output()
            .expect("sha256sum runs")
    };
    let out = check(&["-c", "--ignore-missing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches(": OK").count(),
        3
    );
    fs::write(downloads.join("disk1.image.dd"), &joined).unwrap();
    let out = check(&["-c"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches(": OK").count(),
        4
    );

    let manifest_url = format!("s3://evidence/{prefix}.manifest.json");
    let mut verify = local.collector();
    verify.args(["verify", &manifest_url, "--s3-force-path-style"]);
    let ok = Run::of(&mut verify);
    ok.expect_code(0);
    assert_eq!(ok.stdout.matches("segment ").count(), 3, "{}", ok.stdout);

    // One flipped bit in the second segment: verify fails and names that segment.
    let second = format!("{prefix}.image.dd.002");
    let mut tampered = fs::read(downloads.join("disk1.image.dd.002")).unwrap();
    tampered[5 * 512] ^= 0x40;
    local
        .runtime
        .block_on(
            local
                .client
                .put_object()
                .bucket("evidence")
                .key(&second)
                .body(tampered.into())
                .send(),
        )
        .unwrap();
    let mut verify = local.collector();
    verify.args(["verify", &manifest_url, "--s3-force-path-style"]);
    let bad = Run::of(&mut verify);
    bad.expect_code(4);
    assert!(
        bad.stdout.contains(&format!("segment {second}: MISMATCH")),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("sha256: MISMATCH"), "{}", bad.stdout);
}

#[test]
fn a_failed_segmented_upload_leaves_no_segments_and_no_uploads() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.raw");
    random_file(&source, 40 * MIB, 42);

    // A maximum object size below one part is refused before anything is written.
    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-10"])
        .args(["--s3-force-path-style", "--max-object-size", "4MiB"]);
    let run = Run::of(&mut cmd);
    run.expect_code(2);
    assert!(run.stderr.contains("maximum object size"), "{}", run.stderr);
    assert_eq!(local.object_count("evidence"), 0);

    // SIGTERM after the first segment is stored: it is deleted, the open upload aborted, and
    // nothing that could pass for evidence remains. Slow reads keep the run going long enough.
    let slow = FaultFs::mount(&source, &["--delay-ms".into(), "200".into()]);
    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(slow.file())
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-10"])
        .args([
            "--name",
            "disk2",
            "--s3-force-path-style",
            "--queue-depth",
            "2",
        ])
        .args(["--max-object-size", "16MiB", "--parts-in-flight", "1"]);
    let child = Run::spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    while local.object_count("evidence") == 0 {
        assert!(
            Instant::now() < deadline,
            "the first segment was never stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::wait(child);
    run.expect_code(130);
    assert!(
        run.stderr.contains("Deleted an object of the failed run"),
        "{}",
        run.stderr
    );
    assert_eq!(local.object_count("evidence"), 0, "{}", run.stderr);
    assert_eq!(local.open_uploads("evidence"), 0);
}
