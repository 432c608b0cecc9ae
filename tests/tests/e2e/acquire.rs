//! `acquire` against real loop devices and files: the image is exact, the hashes are right, the
//! sidecar satisfies `sha256sum -c`, the manifest records the device, and the device is write-blocked.

use std::fs;
use std::path::Path;
use std::process::Command;

use collector_e2e::{
    LoopDevice, Run, acquire, blake3_hex, collector, random_file, require_root, sha256_hex,
};
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn manifest(dir: &Path, name: &str) -> Value {
    let text =
        fs::read_to_string(dir.join(format!("{name}.manifest.json"))).expect("manifest exists");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn sha256sum_check(dir: &Path, sidecar: &str) -> bool {
    Command::new("sha256sum")
        .arg("-c")
        .arg(sidecar)
        .current_dir(dir)
        .status()
        .expect("sha256sum runs")
        .success()
}

#[test]
fn odd_sized_loop_device_is_imaged_bit_for_bit_with_correct_hashes() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.bin");
    let size = 100 * MIB + 7 * 512;
    random_file(&source, size, 1);
    let dev = LoopDevice::attach(&source, &["--direct-io=on"]);
    let out = work.path().join("out");

    Run::of(acquire(dev.path(), &out).args(["--incident", "IR-2026-001", "--piece-size", "16MiB"]))
        .expect_code(0);

    let name = dev.name();
    let original = fs::read(&source).unwrap();
    let image = fs::read(out.join(format!("{name}.image.dd"))).unwrap();
    assert_eq!(image.len() as u64, size);
    assert!(image == original, "image differs from the source");

    let m = manifest(&out, &name);
    assert_eq!(m["image"]["hashes"]["sha256"], sha256_hex(&original));
    assert_eq!(m["image"]["hashes"]["blake3"], blake3_hex(&original));
    // Issue 12: pieces are BLAKE3 by default, each what `b3sum` gives for its bytes alone (the
    // last one short), and the manifest says so (schema 3 on; 4 since issue 13's snapshot sources,
    // 5 since issue 22's memory).
    assert_eq!(m["schema_version"], 6);
    assert_eq!(m["image"]["piecewise"]["algorithm"], "blake3");
    let pieces = m["image"]["piecewise"]["pieces"].as_array().unwrap();
    let expected: Vec<&[u8]> = original.chunks(16 << 20).collect();
    assert_eq!(pieces.len(), expected.len());
    assert_eq!(pieces.len(), 7);
    for (piece, bytes) in pieces.iter().zip(expected) {
        assert_eq!(piece["digest"], blake3_hex(bytes));
        assert_eq!(piece["length"], bytes.len() as u64);
    }
    assert!(sha256sum_check(&out, &format!("{name}.image.dd.sha256")));

    assert_eq!(m["acquisition"]["status"], "completed");
    assert_eq!(m["case"]["incident_id"], "IR-2026-001");
    assert_eq!(m["source"]["size_bytes"], size);
    assert_eq!(m["source"]["logical_sector_size"], 512);
    assert_eq!(m["source"]["kind"], "block_device");
    assert_eq!(m["source"]["direct_io"], true);
    assert_eq!(m["source"]["live_acquisition"], false);
    assert_eq!(m["source"]["kernel_read_only"]["state"], "set");
    assert_eq!(m["source"]["exclusive_open"], true);
    assert_eq!(
        m["source"]["identity"]["loop_backing_file"],
        source.canonicalize().unwrap().to_string_lossy().as_ref()
    );
    assert!(m["bad_ranges"].as_array().unwrap().is_empty());
    assert!(
        dev.kernel_read_only(),
        "the device must be left write-blocked"
    );
    assert!(out.join(format!("{name}.capture.log")).exists());
}

#[test]
fn regular_file_with_a_size_off_the_sector_grid_is_imaged_exactly() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("odd.raw");
    let size = 9 * MIB + 3;
    random_file(&source, size, 2);
    let out = work.path().join("out");
    Run::of(acquire(&source, &out).args(["--hash", "sha256,blake3,md5,sha1"])).expect_code(0);

    let original = fs::read(&source).unwrap();
    assert!(fs::read(out.join("odd.image.dd")).unwrap() == original);
    let m = manifest(&out, "odd");
    assert_eq!(m["source"]["kind"], "regular_file");
    assert_eq!(m["image"]["hashes"]["sha256"], sha256_hex(&original));
    let md5 = Command::new("md5sum").arg(&source).output().unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout);
    assert_eq!(
        m["image"]["hashes"]["md5"],
        md5.split_whitespace().next().unwrap()
    );
    let sha1 = Command::new("sha1sum").arg(&source).output().unwrap();
    let sha1 = String::from_utf8_lossy(&sha1.stdout);
    assert_eq!(
        m["image"]["hashes"]["sha1"],
        sha1.split_whitespace().next().unwrap()
    );
}

#[test]
fn a_gpt_partition_and_its_whole_disk_are_both_imaged() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("gpt.img");
    random_file(&disk, 64 * MIB, 3);
    let status = Command::new("sgdisk")
        .args(["-n", "1:2048:+20M", "-n", "2:0:+10M", "-c", "1:evidence"])
        .arg(&disk)
        .output()
        .expect("sgdisk runs (gdisk package)");
    assert!(
        status.status.success(),
        "sgdisk: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let dev = LoopDevice::attach_partitioned(&disk);
    let part = dev.partition(1);
    let out = work.path().join("out");

    Run::of(acquire(&part, &out).args(["--name", "part1"])).expect_code(0);
    Run::of(acquire(dev.path(), &out).args(["--name", "whole"])).expect_code(0);

    let whole = fs::read(&disk).unwrap();
    assert!(
        fs::read(out.join("whole.image.dd")).unwrap() == whole,
        "whole-disk image differs"
    );
    let start = 2048 * 512;
    let expected_part = &whole[start..start + 20 * (1 << 20)];
    assert!(
        fs::read(out.join("part1.image.dd")).unwrap() == expected_part,
        "partition image differs"
    );
    let m = manifest(&out, "part1");
    assert_eq!(m["source"]["identity"]["parent_disk"], dev.name());
    assert_eq!(m["image"]["hashes"]["sha256"], sha256_hex(expected_part));
}

#[test]
fn a_mounted_device_is_imaged_live_without_being_write_blocked() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("ext4.img");
    fs::File::create(&disk).unwrap().set_len(32 * MIB).unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-L", "LIVE"])
        .arg(&disk)
        .status()
        .expect("mkfs.ext4");
    assert!(mkfs.success());
    let dev = LoopDevice::attach(&disk, &[]);
    let mnt = work.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    assert!(
        Command::new("mount")
            .arg(dev.path())
            .arg(&mnt)
            .status()
            .unwrap()
            .success()
    );
    let out = work.path().join("out");

    let run = Run::of(acquire(dev.path(), &out).args(["--name", "live"]));
    let still_writable = !dev.kernel_read_only();
    let _ = Command::new("umount").arg(&mnt).status();

    run.expect_code(0);
    assert!(
        run.stderr.contains("Live acquisition"),
        "a warning must say so: {}",
        run.stderr
    );
    assert!(
        still_writable,
        "a mounted device must not be flipped read-only"
    );
    let m = manifest(&out, "live");
    assert_eq!(m["source"]["live_acquisition"], true);
    assert_eq!(m["source"]["kernel_read_only"]["state"], "skipped_live");
    assert_eq!(m["source"]["exclusive_open"], false);
    assert_eq!(
        m["source"]["live_use"]["mount_points"][0],
        mnt.to_string_lossy().as_ref()
    );
}

#[test]
fn verify_passes_on_the_image_and_names_the_damaged_piece_after_tampering() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("evidence.raw");
    random_file(&source, 8 * MIB, 4);
    let out = work.path().join("out");
    Run::of(acquire(&source, &out).args(["--piece-size", "1MiB"])).expect_code(0);
    let manifest_path = out.join("evidence.manifest.json");
    let ok = Run::of(collector().arg("verify").arg(&manifest_path));
    ok.expect_code(0);
    assert!(ok.stdout.contains("sha256: OK"));

    let image = out.join("evidence.image.dd");
    let mut bytes = fs::read(&image).unwrap();
    bytes[5 * (1 << 20) + 17] ^= 0x01;
    fs::write(&image, bytes).unwrap();
    let bad = Run::of(collector().arg("verify").arg(&manifest_path));
    bad.expect_code(4);
    assert!(bad.stdout.contains("sha256: MISMATCH"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("pieces: MISMATCH in 1 piece of 8: [5]"),
        "the damaged piece must be named: {}",
        bad.stdout
    );
}

// Issue 10: `verify` of a 64 MiB image printed `pieces: OK 1 x 1073741824 bytes` (the nominal
// piece size), and after a flipped byte `sha256: MISMATCH` then a bare `sidecar: OK`, and
// "1 pieces differ". Each line now says what it checked, in words that count right.
#[test]
fn verify_prints_the_real_piece_lengths_and_what_the_sidecar_was_compared_with() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("small.raw");
    let size = 3 * MIB + 5;
    random_file(&source, size, 6);
    let out = work.path().join("out");
    Run::of(&mut acquire(&source, &out)).expect_code(0);
    let manifest_path = out.join("small.manifest.json");
    let ok = Run::of(collector().arg("verify").arg(&manifest_path));
    ok.expect_code(0);
    assert!(
        ok.stdout
            .contains(&format!("pieces: OK 1 piece of {size} bytes\n")),
        "{}",
        ok.stdout
    );

    let image = out.join("small.image.dd");
    let mut bytes = fs::read(&image).unwrap();
    bytes[1 << 20] ^= 0x80;
    fs::write(&image, bytes).unwrap();
    let bad = Run::of(collector().arg("verify").arg(&manifest_path));
    bad.expect_code(4);
    assert!(bad.stdout.contains("sha256: MISMATCH"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("pieces: MISMATCH in 1 piece of 1: [0]"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains(
            "sidecar: OK matches the manifest's recorded sha256 (checks the record, not the image)"
        ),
        "{}",
        bad.stdout
    );
    assert!(bad.stderr.contains("1 piece differs"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("pieces differ"), "{}", bad.stderr);
}

#[test]
fn existing_evidence_is_never_overwritten() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("e.raw");
    random_file(&source, MIB, 5);
    let out = work.path().join("out");
    Run::of(&mut acquire(&source, &out)).expect_code(0);
    let before = fs::read(out.join("e.manifest.json")).unwrap();
    let again = Run::of(&mut acquire(&source, &out));
    again.expect_code(20);
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
    assert_eq!(fs::read(out.join("e.manifest.json")).unwrap(), before);
}

// Issue 10: a run ended without saying where its manifest was, `source.path` recorded `disk.raw`
// as typed, and the manifest carried `447.79901025601873` MB/s. Now the last line names the
// manifest's absolute path, the source path is absolute (and a link records what it resolved to),
// and throughput is kept to a tenth.
#[test]
fn the_run_ends_naming_the_absolute_manifest_and_records_an_absolute_source() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().canonicalize().unwrap();
    random_file(&dir.join("disk.raw"), 2 * MIB + 512, 7);
    let run = Run::of(
        collector()
            .args(["acquire", "disk.raw", "--out", "ev"])
            .current_dir(&dir),
    );
    run.expect_code(0);
    let manifest_path = dir.join("ev/disk.manifest.json");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("manifest={}", manifest_path.display())),
        "the last line must name {}: {last}",
        manifest_path.display()
    );
    let m = manifest(&dir.join("ev"), "disk");
    assert_eq!(m["source"]["path"], dir.join("disk.raw").to_str().unwrap());
    assert!(
        m["source"].get("resolved_path").is_none(),
        "{}",
        m["source"]
    );
    let throughput = m["acquisition"]["throughput_mb_per_s"].to_string();
    assert!(
        throughput
            .split_once('.')
            .is_none_or(|(_, tenths)| tenths.len() == 1),
        "{throughput}"
    );
    let completed = run
        .stderr
        .lines()
        .find(|l| l.contains("Acquisition completed."))
        .expect("a completion line");
    let field = |name: &str| {
        completed
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {completed}"))
            .to_owned()
    };
    assert!(
        field("mb_per_s=").split_once('.').unwrap().1.len() == 1,
        "{completed}"
    );
    assert!(
        field("seconds=").split_once('.').unwrap().1.len() == 2,
        "{completed}"
    );

    // A device named through a link (as /dev/disk/by-id/… names one): the path as given, and the
    // node it resolved to.
    let dev = LoopDevice::attach(&dir.join("disk.raw"), &[]);
    let link = dir.join("by-id-link");
    std::os::unix::fs::symlink(dev.path(), &link).unwrap();
    let run = Run::of(
        collector()
            .args(["acquire", "by-id-link", "--out", "ev", "--name", "linked"])
            .current_dir(&dir),
    );
    run.expect_code(0);
    let m = manifest(&dir.join("ev"), "linked");
    assert_eq!(m["source"]["path"], link.to_str().unwrap());
    assert_eq!(m["source"]["resolved_path"], dev.path().to_str().unwrap());
    assert!(
        run.stderr
            .lines()
            .last()
            .unwrap_or_default()
            .contains(&format!(
                "manifest={}",
                dir.join("ev/linked.manifest.json").display()
            )),
        "{}",
        run.stderr
    );
}

// Issue 10: `--examiner` is recorded in the manifest; a value that could break a line of the
// manifest's companions (control or bidi-formatting characters, over 128) is a usage error.
#[test]
fn the_examiner_is_recorded_and_a_hostile_one_is_refused() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("ex.raw");
    random_file(&source, MIB, 3);
    let out = work.path().join("out");
    Run::of(acquire(&source, &out).args(["--examiner", " Jane O'Neil-Núñez "])).expect_code(0);
    assert_eq!(
        manifest(&out, "ex")["case"]["examiner"],
        "Jane O'Neil-Núñez"
    );
    for bad in ["a\nb", "a\u{202e}b", ""] {
        let refused = work.path().join("refused");
        let run = Run::of(acquire(&source, &refused).args(["--examiner", bad]));
        run.expect_code(2);
        assert!(run.stderr.contains("examiner"), "{}", run.stderr);
        assert!(!refused.exists(), "nothing written for {bad:?}");
    }
}

// Issue 10: the daemon's children read their job as JSON on stdin; one that is not a job is a
// usage error, and the result line the daemon reads is printed all the same.
#[test]
fn a_job_on_stdin_that_is_not_a_job_is_refused_with_a_result_line() {
    use std::io::Write;
    use std::process::Stdio;
    for input in ["not json", r#"{"source": "/dev/null", "surprise": 1}"#] {
        let mut child = collector()
            .arg("run-job")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run-job starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{input}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("no result line ({e}): {stdout}"));
        assert_eq!(result["exit_code"], 2, "{result}");
        assert!(
            result.to_string().contains("not an acquisition job"),
            "{result}"
        );
    }
}

/// `run-job` with `job` on stdin: exit code and stdout.
fn run_job(job: &Value) -> (Option<i32>, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = collector()
        .arg("run-job")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run-job starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

// Issue 10: a job on stdin goes through the check `acquire`'s flags go through: an out-of-range
// value is a usage error naming its range, and the examiner is recorded trimmed, as
// `acquire --examiner " J "` records it.
#[test]
fn a_job_on_stdin_is_checked_as_flags_are() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("job.raw");
    random_file(&source, MIB, 5);
    let out = work.path().join("out");
    let mut job = serde_json::json!({
        "source": source,
        "out": out,
        "dest": null,
        "object_lock_mode": null,
        "object_lock_retain_until": null,
        "name": "job",
        "new_capture": false,
        "incident": null,
        "examiner": "  J  ",
        "no_kernel_read_only": true,
        "progress_interval": 10,
        "source_volume_id": null,
        "instance_id": null,
        "result_json": false,
        "settings": {
            "s3.part_size": "8MiB",
            "s3.parts_in_flight": 65,
            "imaging.hashes": "sha256",
            "imaging.piece_size": 0,
            "imaging.queue_depth": 4,
            "imaging.sector_retries": 0
        }
    });
    let (code, stdout) = run_job(&job);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stdout.contains("parts in flight 65 must be between 1 and 64"),
        "{stdout}"
    );
    assert!(!out.exists(), "nothing written");

    job["settings"]["s3.parts_in_flight"] = 4.into();
    let (code, stdout) = run_job(&job);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(manifest(&out, "job")["case"]["examiner"], "J");
}
