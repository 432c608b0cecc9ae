//! Bad input and failures mid-run: each gives a clear message and its own exit code, never a panic,
//! and never leaves a manifest or a complete-looking image behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use collector_e2e::{
    FaultFs, Run, Tmpfs, acquire, collector, random_file, require_root, wait_for_staged,
};

const MIB: u64 = 1 << 20;

/// Asserts `dir` holds no evidence at all: no image, no partial image, no manifest, no staging
/// directory left by the run.
fn assert_no_evidence(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".image.dd")
            && !n.ends_with(".manifest.json")
            && !n.ends_with(".staging")),
        "a failed run left evidence-looking files: {names:?}"
    );
}

/// A work directory that the unprivileged user can enter.
fn open_workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The collector run as `nobody`.
fn collector_as_nobody() -> Command {
    let probe = collector();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "nobody", "--"])
        .arg(probe.get_program())
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn a_missing_source_is_reported_with_its_own_code() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let run = Run::of(
        collector()
            .args(["acquire", "/dev/does-not-exist"])
            .arg("--out")
            .arg(&out),
    );
    run.expect_code(10);
    assert!(
        run.stderr
            .contains("cannot open source /dev/does-not-exist"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"));
    assert_no_evidence(&out);
}

#[test]
fn a_directory_is_not_a_source() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let run = Run::of(
        collector()
            .arg("acquire")
            .arg(work.path())
            .arg("--out")
            .arg(work.path().join("out")),
    );
    run.expect_code(12);
    assert!(
        run.stderr
            .contains("is not a block device or a regular file"),
        "{}",
        run.stderr
    );
}

/// Runs `acquire` as `nobody` on a 1 MiB source with mode `source_mode` into a directory with mode
/// `out_mode`; returns the run and the output directory (kept alive by the returned work dir).
fn acquire_as_nobody(
    source_mode: u32,
    out_mode: u32,
) -> (Run, tempfile::TempDir, std::path::PathBuf) {
    let work = open_workdir();
    let source = work.path().join("e.raw");
    random_file(&source, MIB, u64::from(source_mode ^ out_mode));
    fs::set_permissions(&source, fs::Permissions::from_mode(source_mode)).unwrap();
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(out_mode)).unwrap();
    let run = Run::of(
        collector_as_nobody()
            .arg("acquire")
            .arg(&source)
            .arg("--out")
            .arg(&out),
    );
    (run, work, out)
}

#[test]
fn a_source_without_read_permission_is_refused() {
    require_root();
    let (run, _work, out) = acquire_as_nobody(0o600, 0o777);
    run.expect_code(11);
    assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
    assert_no_evidence(&out);
}

#[test]
fn an_unwritable_output_directory_is_refused() {
    require_root();
    let (run, _work, out) = acquire_as_nobody(0o644, 0o755);
    run.expect_code(20);
    assert!(run.stderr.contains("cannot create"), "{}", run.stderr);
    assert_no_evidence(&out);
}

#[test]
fn a_full_output_filesystem_stops_the_run_and_removes_the_partial_image() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("big.raw");
    random_file(&source, 32 * MIB, 9);
    let small = Tmpfs::mount("8m");
    let run = Run::of(&mut acquire(&source, small.path()));
    run.expect_code(21);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no manifest written"), "{}", run.stderr);
    assert_no_evidence(small.path());
}

#[test]
fn unknown_hash_names_and_bad_sizes_are_usage_errors() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("e.raw");
    random_file(&source, MIB, 10);
    let out = work.path().join("out");
    let run = Run::of(acquire(&source, &out).args(["--hash", "sha256,crc32"]));
    run.expect_code(2);
    assert!(
        run.stderr.contains("unknown hash algorithm \"crc32\""),
        "{}",
        run.stderr
    );
    let run = Run::of(acquire(&source, &out).args(["--chunk-size", "1000"]));
    run.expect_code(2);
    assert!(run.stderr.contains("chunk size 1000"), "{}", run.stderr);
    let run = Run::of(acquire(&source, &out).args(["--name", "../escape"]));
    run.expect_code(2);
    assert_no_evidence(&out);
    assert_no_evidence(work.path());
}

#[test]
fn a_source_that_vanishes_mid_run_stops_it_with_its_own_code() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("backing.raw");
    random_file(&backing, 64 * MIB, 11);
    let fs = FaultFs::mount(
        &backing,
        &["--die-after-bytes".into(), (16 * MIB).to_string()],
    );
    let out = work.path().join("out");
    let run = Run::of(acquire(fs.file(), &out).args(["--name", "gone"]));
    run.expect_code(13);
    assert!(run.stderr.contains("vanished"), "{}", run.stderr);
    assert_no_evidence(&out);
}

#[test]
fn sigterm_mid_run_stops_reading_and_leaves_no_manifest() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("slow.raw");
    random_file(&backing, 64 * MIB, 12);
    let fs = FaultFs::mount(&backing, &["--delay-ms".into(), "50".into()]);
    let out = work.path().join("out");
    let child =
        Run::spawn(acquire(fs.file(), &out).args(["--name", "stopped", "--queue-depth", "1"]));
    wait_for_staged(&out, "stopped.image.dd");
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::wait(child);
    run.expect_code(130);
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    assert_no_evidence(&out);
}

// Issue 10: `verify` of a missing file or of a file that is not a manifest exited 20 ("output
// cannot be written"). They are input errors, with the code of a manifest that cannot be used
// (7); a missing image beside a good manifest is a missing source (10). None is a pass, none a
// mismatch, and the message names the file.
#[test]
fn verify_input_errors_have_their_own_codes() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("nothing.manifest.json");
    let run = Run::of(collector().arg("verify").arg(&missing));
    run.expect_code(7);
    assert!(
        run.stderr.contains(&missing.display().to_string()) && run.stderr.contains("No such file"),
        "{}",
        run.stderr
    );

    let text = work.path().join("notes.txt");
    fs::write(&text, "not a manifest\n").unwrap();
    let run = Run::of(collector().arg("verify").arg(&text));
    run.expect_code(7);
    assert!(run.stderr.contains("notes.txt"), "{}", run.stderr);

    let run = Run::of(collector().arg("verify").arg(work.path()));
    run.expect_code(7);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);

    let source = work.path().join("e.raw");
    random_file(&source, MIB, 13);
    let out = work.path().join("out");
    Run::of(&mut acquire(&source, &out)).expect_code(0);
    fs::remove_file(out.join("e.image.dd")).unwrap();
    let run = Run::of(collector().arg("verify").arg(out.join("e.manifest.json")));
    run.expect_code(10);
    assert!(
        run.stderr.contains("the image the manifest") && run.stderr.contains("e.image.dd"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
