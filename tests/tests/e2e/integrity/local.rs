//! Integrity of local evidence: every file is created exclusively inside the run's own staging
//! directory, never through a symlink, and published manifest last without replacing anything.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use collector_e2e::{
    FaultFs, LoopDevice, Run, Tmpfs, acquire, collector, random_file, require_root, sha256_hex,
    wait_for_staged,
};
use proptest::prelude::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Every entry of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The four files of evidence `name`, sorted as `entries` sorts them.
fn evidence_names(name: &str) -> Vec<String> {
    let mut names = vec![
        format!("{name}.capture.log"),
        format!("{name}.image.dd"),
        format!("{name}.image.dd.sha256"),
        format!("{name}.manifest.json"),
    ];
    names.sort();
    names
}

fn manifest(dir: &Path, name: &str) -> Value {
    let text = fs::read_to_string(dir.join(format!("{name}.manifest.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn verify(dir: &Path, name: &str) -> Run {
    Run::of(
        collector()
            .arg("verify")
            .arg(dir.join(format!("{name}.manifest.json"))),
    )
}

/// Asserts that every file of evidence `name` in `dir` is a regular file, not a symlink.
fn assert_regular_files(dir: &Path, name: &str) {
    for file in evidence_names(name) {
        let meta = fs::symlink_metadata(dir.join(&file)).unwrap();
        assert!(meta.file_type().is_file(), "{file} is not a regular file");
    }
}

// Issue 9 item 1: the second run used to truncate the first's `.partial` and rewrite it, so the first
// exited 0 with a manifest holding its hashes over the second's bytes.
#[test]
fn two_runs_with_one_name_into_one_directory_never_mix_their_files() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let slow_backing = work.path().join("slow.raw");
    random_file(&slow_backing, 16 * MIB, 101);
    let fast = work.path().join("fast.raw");
    random_file(&fast, 4 * MIB, 102);
    let fs_slow = FaultFs::mount(&slow_backing, &["--delay-ms".into(), "20".into()]);
    let out = work.path().join("out");

    let slow =
        Run::spawn(acquire(fs_slow.file(), &out).args(["--name", "same", "--queue-depth", "1"]));
    wait_for_staged(&out, "same.image.dd");
    let second = Run::of(acquire(&fast, &out).args(["--name", "same"]));
    let first = Run::wait(slow);

    // The second (fast) run finished first and owns the name; the slow run lost and touched nothing.
    second.expect_code(0);
    first.expect_code(20);
    assert!(
        first.stderr.contains("refusing to overwrite"),
        "{}",
        first.stderr
    );
    assert_eq!(entries(&out), evidence_names("same"));
    let m = manifest(&out, "same");
    assert_eq!(
        m["image"]["hashes"]["sha256"],
        sha256_hex(&fs::read(&fast).unwrap())
    );
    assert_eq!(
        fs::read(out.join("same.image.dd")).unwrap(),
        fs::read(&fast).unwrap()
    );
    verify(&out, "same").expect_code(0);
}

// Issue 9 item 3: a symlink planted at the partial image's or a temporary manifest's name made acquire
// write the evidence into the symlink's target and leave a symlink as evidence.
#[test]
fn planted_symlinks_in_the_output_directory_are_never_followed() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("s.raw");
    random_file(&source, 2 * MIB, 103);
    let victim = work.path().join("victim");
    fs::write(&victim, b"precious").unwrap();
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    for planted in [
        "n.image.dd.partial",
        ".n.image.dd.sha256.tmp",
        ".n.capture.log.tmp",
        ".n.manifest.json.tmp",
    ] {
        std::os::unix::fs::symlink(&victim, out.join(planted)).unwrap();
    }

    Run::of(acquire(&source, &out).args(["--name", "n"])).expect_code(0);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_regular_files(&out, "n");
    verify(&out, "n").expect_code(0);

    // A symlink at a final name, even a dangling one, is existing evidence: refused, not followed.
    let absent_victim = work.path().join("absent-victim");
    std::os::unix::fs::symlink(&absent_victim, out.join("m.manifest.json")).unwrap();
    let run = Run::of(acquire(&source, &out).args(["--name", "m"]));
    run.expect_code(20);
    assert!(
        run.stderr.contains("refusing to overwrite"),
        "{}",
        run.stderr
    );
    assert!(!absent_victim.exists());
    assert!(!out.join("m.image.dd").exists());
}

// Issue 9 item 7: `acquire OUT/n.image.dd.partial --out OUT --name n` truncated and then deleted its
// own source.
#[test]
fn a_source_that_is_one_of_the_outputs_is_refused_and_left_intact() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let source = out.join("n.image.dd.partial");
    random_file(&source, 2 * MIB, 104);
    let before = fs::read(&source).unwrap();

    let run = Run::of(acquire(&source, &out).args(["--name", "n"]));
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("refusing to image a file this run would replace"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&source).unwrap(), before);

    // The same file under another name (a symlink elsewhere) is recognised too.
    let link = work.path().join("innocent.raw");
    std::os::unix::fs::symlink(&source, &link).unwrap();
    Run::of(acquire(&link, &out).args(["--name", "n"])).expect_code(2);
    assert_eq!(fs::read(&source).unwrap(), before);
    assert_eq!(entries(&out), ["n.image.dd.partial"]);
}

// Issue 9 item 8: a full disk after the image was renamed left `NAME.image.dd`, its sidecar and log
// without a manifest (`sha256sum -c` said OK), and a rerun was refused.
#[test]
fn a_disk_that_fills_after_the_image_leaves_no_final_names_and_allows_a_rerun() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("fill.raw");
    // The image fills the 8 MiB tmpfs but one page: it fits, its companions do not.
    random_file(&source, 8 * MIB - 4096, 105);
    let small = Tmpfs::mount("8m");

    let run = Run::of(acquire(&source, small.path()).args(["--name", "fill"]));
    run.expect_code(21);
    assert!(
        run.stderr.contains("No space left on device"),
        "{}",
        run.stderr
    );
    assert!(
        entries(small.path()).is_empty(),
        "a failed run left files: {:?}",
        entries(small.path())
    );

    let grown = Command::new("mount")
        .args(["-o", "remount,size=16m"])
        .arg(small.path())
        .status()
        .unwrap();
    assert!(grown.success());
    Run::of(acquire(&source, small.path()).args(["--name", "fill"])).expect_code(0);
    assert_eq!(entries(small.path()), evidence_names("fill"));
    verify(small.path(), "fill").expect_code(0);
}

// Issue 9, also seen: a 0-byte source gave an empty "completed" image.
#[test]
fn an_empty_source_is_refused_before_anything_is_written() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let empty = work.path().join("empty.raw");
    fs::write(&empty, b"").unwrap();
    let out = work.path().join("out");
    let run = Run::of(&mut acquire(&empty, &out));
    run.expect_code(12);
    assert!(run.stderr.contains("has size 0"), "{}", run.stderr);
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

// Issue 9, also seen: a run refused for a bad `--out` left the device kernel-read-only.
#[test]
fn a_run_refused_before_reading_leaves_the_device_writable() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("ro.raw");
    random_file(&backing, 4 * MIB, 106);
    let dev = LoopDevice::attach(&backing, &[]);
    let not_a_dir = work.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();

    let run = Run::of(&mut acquire(dev.path(), not_a_dir.join("out")));
    run.expect_code(20);
    assert!(
        !dev.kernel_read_only(),
        "a refused run must not write-block the device"
    );
}

/// One of two racing runs: its source, its delay before starting, and how fast it reads.
#[derive(Debug, Clone)]
struct Racer {
    size_kib: u64,
    delay_ms: u64,
    chunk: &'static str,
}

fn racer() -> impl Strategy<Value = Racer> {
    (
        1u64..4096,
        0u64..150,
        prop::sample::select(vec!["4KiB", "64KiB", "1MiB"]),
    )
        .prop_map(|(size_kib, delay_ms, chunk)| Racer {
            size_kib,
            delay_ms,
            chunk,
        })
}

/// Two acquisitions of different sources under one name into one directory, started with random
/// delays and speeds: exactly one wins; whatever manifest exists verifies against its own image and
/// describes one source entirely; the loser leaves nothing behind.
fn race_two_acquisitions(a: &Racer, b: &Racer, seed: u64) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut sources = Vec::new();
    for (i, r) in [a, b].into_iter().enumerate() {
        let path = work.path().join(format!("src{i}.raw"));
        random_file(&path, r.size_kib * 1024, seed + i as u64);
        sources.push(path);
    }
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = [a, b]
            .into_iter()
            .zip(&sources)
            .map(|(r, source)| {
                let out = &out;
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(r.delay_ms));
                    Run::of(acquire(source, out).args(["--name", "race", "--chunk-size", r.chunk]))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    prop_assert!(
        codes == [0, 20] || codes == [20, 0],
        "exactly one run must win: {codes:?}\n{}\n{}",
        runs[0].stderr,
        runs[1].stderr
    );
    prop_assert_eq!(entries(&out), evidence_names("race"));
    let image = fs::read(out.join("race.image.dd")).unwrap();
    let winner = usize::from(codes[0] != 0);
    prop_assert!(image == fs::read(&sources[winner]).unwrap());
    let recorded = manifest(&out, "race")["image"]["hashes"]["sha256"].clone();
    prop_assert_eq!(recorded, Value::from(sha256_hex(&image)));
    prop_assert_eq!(verify(&out, "race").code, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, max_shrink_iters: 4, failure_persistence: None, ..ProptestConfig::default() })]

    // Issue 9 tests: random interleavings of two acquisitions into one directory.
    #[test]
    fn racing_acquisitions_into_one_directory_leave_only_verifiable_evidence(
        a in racer(),
        b in racer(),
        seed in 0u64..1_000_000,
    ) {
        require_root();
        race_two_acquisitions(&a, &b, seed)?;
    }
}

/// Three `--new-capture` runs of different sources over an existing `race`, started with random
/// delays and speeds: each takes a name of its own before reading (`race-2` … `race-4`), so every
/// run exits 0 and none reads its source only to be refused; each manifest verifies against its
/// own image, which is exactly one source; no claim or staging directory is left.
fn race_three_new_captures(racers: &[Racer], seed: u64) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let first = work.path().join("first.raw");
    random_file(&first, 64 * 1024, seed);
    Run::of(acquire(&first, &out).args(["--name", "race"])).expect_code(0);
    let mut sources = Vec::new();
    for (i, r) in racers.iter().enumerate() {
        let path = work.path().join(format!("src{i}.raw"));
        random_file(&path, r.size_kib * 1024, seed + 1 + i as u64);
        sources.push(path);
    }
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = racers
            .iter()
            .zip(&sources)
            .map(|(r, source)| {
                let out = &out;
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(r.delay_ms));
                    Run::of(acquire(source, out).args([
                        "--name",
                        "race",
                        "--new-capture",
                        "--chunk-size",
                        r.chunk,
                    ]))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let logs = || {
        runs.iter()
            .map(|r| r.stderr.as_str())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    prop_assert!(
        codes.iter().all(|&c| c == 0),
        "every new capture must store its evidence: {codes:?}\n{}",
        logs()
    );
    let mut expected = evidence_names("race");
    for name in ["race-2", "race-3", "race-4"] {
        expected.extend(evidence_names(name));
    }
    expected.sort();
    prop_assert_eq!(entries(&out), expected, "{}", logs());
    let mut imaged = Vec::new();
    for name in ["race-2", "race-3", "race-4"] {
        prop_assert_eq!(verify(&out, name).code, 0, "{} must verify", name);
        let image = fs::read(out.join(format!("{name}.image.dd"))).unwrap();
        let source = sources.iter().position(|s| fs::read(s).unwrap() == image);
        prop_assert!(source.is_some(), "{} holds one source entirely", name);
        imaged.extend(source);
        prop_assert_eq!(
            manifest(&out, name)["case"]["evidence_name"].clone(),
            Value::from(name)
        );
    }
    imaged.sort_unstable();
    prop_assert_eq!(imaged, vec![0, 1, 2], "each source stored once");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, max_shrink_iters: 2, failure_persistence: None, ..ProptestConfig::default() })]

    // Issue 19 hole 3: three concurrent --new-capture runs over an existing `n`: one stored `n-2`,
    // the other two read their whole source and exited 20 (8 of 8 locally).
    #[test]
    fn racing_new_captures_each_take_a_free_name_before_reading(
        racers in prop::collection::vec(racer(), 3),
        seed in 0u64..1_000_000,
    ) {
        require_root();
        race_three_new_captures(&racers, seed)?;
    }
}

// Issue 19: a name of 128 characters was refused only once `-2` was needed, after the source was
// opened; --new-capture now says up front that the name must leave room for -99.
#[test]
fn new_capture_refuses_a_name_without_room_for_a_number_before_opening_the_source() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let long = "n".repeat(126);
    let run = Run::of(acquire(Path::new("/nonexistent/source"), &out).args([
        "--name",
        &long,
        "--new-capture",
    ]));
    run.expect_code(2);
    assert!(run.stderr.contains("at most 125"), "{}", run.stderr);
    assert!(!out.exists(), "nothing created");
    let source = work.path().join("s.raw");
    random_file(&source, MIB, 109);
    let fits = "n".repeat(125);
    Run::of(acquire(&source, &out).args(["--name", &fits, "--new-capture"])).expect_code(0);
    Run::of(acquire(&source, &out).args(["--name", &fits, "--new-capture"])).expect_code(0);
    verify(&out, &format!("{fits}-2")).expect_code(0);
}

// Issue 9, also seen: a FUSE backend that died under a loop device ended as `completed_with_errors`
// (exit 3) with every later sector "bad"; the source vanished, which is exit 13.
#[test]
fn a_loop_device_whose_backing_filesystem_dies_is_a_vanished_source() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("dying.raw");
    random_file(&backing, 32 * MIB, 107);
    let fs_dying = FaultFs::mount(
        &backing,
        &["--die-after-bytes".into(), (8 * MIB).to_string()],
    );
    let dev = LoopDevice::attach(&fs_dying.file(), &["-r"]);
    let out = work.path().join("out");
    let run = Run::of(acquire(dev.path(), &out).args(["--name", "dying"]));
    run.expect_code(13);
    assert!(run.stderr.contains("vanished"), "{}", run.stderr);
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

// Issue 9 item 2's escape hatch: a rerun that asks for a new capture gets a new name, and the first
// capture stays as it was.
#[test]
fn new_capture_stores_a_rerun_under_the_next_free_name() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("again.raw");
    random_file(&source, MIB, 108);
    let out = work.path().join("out");
    Run::of(acquire(&source, &out).args(["--name", "again"])).expect_code(0);
    let first = fs::read(out.join("again.manifest.json")).unwrap();
    for _ in 0..2 {
        Run::of(acquire(&source, &out).args(["--name", "again", "--new-capture"])).expect_code(0);
    }
    assert_eq!(fs::read(out.join("again.manifest.json")).unwrap(), first);
    let mut expected = evidence_names("again");
    expected.extend(evidence_names("again-2"));
    expected.extend(evidence_names("again-3"));
    expected.sort();
    assert_eq!(entries(&out), expected);
    assert_eq!(
        manifest(&out, "again-3")["case"]["evidence_name"],
        "again-3"
    );
    verify(&out, "again-2").expect_code(0);
}

// Issue 9 item 4's sibling: a hash list without SHA-256 made evidence that `verify` (which must
// recompute the whole-image SHA-256) can only refuse, and a sidecar that could not exist.
#[test]
fn a_hash_list_without_sha256_is_refused_before_the_source_is_opened() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("h.raw");
    random_file(&backing, MIB, 109);
    let dev = LoopDevice::attach(&backing, &[]);
    let out = work.path().join("out");
    let run = Run::of(acquire(dev.path(), &out).args(["--hash", "blake3"]));
    run.expect_code(2);
    assert!(run.stderr.contains("must include sha256"), "{}", run.stderr);
    assert!(!dev.kernel_read_only());
    assert!(entries(&out).is_empty(), "{:?}", entries(&out));
}

// Issue 9 items 1 and 8 together: a rival takes the sidecar's name while the run reads. The sidecar
// is published last, so the run has already renamed its image, log and manifest when it finds the
// name taken; it takes all three back, leaves the rival's file alone and can be rerun.
#[test]
fn losing_the_last_name_takes_back_everything_already_published() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("late.raw");
    random_file(&backing, 8 * MIB, 110);
    let slow = FaultFs::mount(&backing, &["--delay-ms".into(), "20".into()]);
    let out = work.path().join("out");
    let child =
        Run::spawn(acquire(slow.file(), &out).args(["--name", "late", "--queue-depth", "1"]));
    wait_for_staged(&out, "late.image.dd");
    let rival = out.join("late.image.dd.sha256");
    fs::write(&rival, b"rival sidecar\n").unwrap();
    let run = Run::wait(child);
    run.expect_code(20);
    assert!(
        run.stderr
            .contains("refusing to overwrite existing evidence"),
        "{}",
        run.stderr
    );
    assert_eq!(entries(&out), ["late.image.dd.sha256"]);
    assert_eq!(fs::read(&rival).unwrap(), b"rival sidecar\n");

    fs::remove_file(&rival).unwrap();
    Run::of(acquire(&backing, &out).args(["--name", "late"])).expect_code(0);
    verify(&out, "late").expect_code(0);
}

// Issue 9 item 4's sibling: `verify` reports an image cut to nothing as a mismatch (exit 4), not as
// an unusable source, whatever the rule for new captures.
#[test]
fn verify_reports_an_image_truncated_to_nothing_as_a_mismatch() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("t.raw");
    random_file(&source, MIB, 111);
    let out = work.path().join("out");
    Run::of(acquire(&source, &out).args(["--name", "t"])).expect_code(0);
    fs::File::create(out.join("t.image.dd")).unwrap();
    let run = verify(&out, "t");
    run.expect_code(4);
    assert!(run.stdout.contains("sha256: MISMATCH"), "{}", run.stdout);
}
