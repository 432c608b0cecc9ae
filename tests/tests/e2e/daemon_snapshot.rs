//! `forensic-collector watch` given a snapshot job (`job.snapshot_id` in user data), end to end: a
//! snapshot written through the EBS API into moto, which also serves S3 and CloudWatch Logs, and
//! the IMDSv2 stand-in carrying the job. The daemon waits for no disk: it images the snapshot in
//! one child job, reports it as a disk's, and powers off as configured. A disk linked under its
//! disk root meanwhile is not imaged, and a user-data value that is no snapshot ID is refused before
//! anything runs.

use std::fs;
use std::path::{Path, PathBuf};

use collector_e2e::cwlogs::LogsReader;
use collector_e2e::{
    ImdsServer, LocalS3, LoopDevice, Run, SnapshotImage, random_file, require_root,
};
use serde_json::Value;

const INSTANCE: &str = "i-0a11ce0a11ce0a11c";
const READY: &str = "incron is running";

/// JSON user data naming the evidence bucket, the incident and `snapshot_id` (as written).
fn user_data(snapshot_id: &str) -> Vec<u8> {
    serde_json::json!({"job": {
        "bucket": "evidence",
        "prefix": "cases",
        "incident_id": "IR-13",
        "snapshot_id": snapshot_id,
    }})
    .to_string()
    .into_bytes()
}

/// A config file for a daemon whose disk root is `root`, ending with `on_complete` lines.
fn config_file(dir: &Path, root: &Path, on_complete: &str) -> PathBuf {
    let path = dir.join("config.toml");
    fs::write(
        &path,
        format!(
            "[watch]\ndisk_root = {root:?}\nsettle_ms = 100\n{on_complete}\n\
             [imaging]\npiece_size = \"64MiB\"\n\
             [s3]\nforce_path_style = true\n\
             [cloudwatch]\nreadiness_message = {READY:?}\nprogress_interval_secs = 1\nflush_timeout_secs = 5\n"
        ),
    )
    .unwrap();
    path
}

/// The capture stream's events as JSON.
fn capture_events(logs: &LogsReader) -> Vec<Value> {
    logs.events("ForensicDiskCapture", INSTANCE)
        .into_iter()
        .filter_map(|(_, message)| serde_json::from_str(&message).ok())
        .collect()
}

/// The events of kind `kind`.
fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// Keys of every object under the incident.
fn evidence_keys(s3: &LocalS3) -> Vec<String> {
    s3.runtime
        .block_on(
            s3.client
                .list_objects_v2()
                .bucket("evidence")
                .prefix("cases/IR-13/")
                .send(),
        )
        .expect("list objects")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

// Issue 13: the daemon takes a snapshot job from user data and images it with no disk attached,
// then reports and powers off as for a disk.
#[test]
fn a_snapshot_named_in_user_data_is_imaged_without_a_disk_then_the_host_powers_off() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let endpoint = s3.server.endpoint();
    let image = SnapshotImage::odd_with_holes(13);
    let snapshot = image.put(&endpoint, &s3.runtime);
    let imds = ImdsServer::start(Some(&user_data(&snapshot)), INSTANCE);
    let logs = LogsReader::new(&endpoint);
    let work = tempfile::tempdir().unwrap();

    // A disk already linked where a watching daemon would find it at once: a snapshot job arms
    // no watcher, so it must not be imaged.
    let root = work.path().join("dev-disk");
    let disk_file = work.path().join("attached.img");
    random_file(&disk_file, 4 << 20, 131);
    let disk = LoopDevice::attach(&disk_file, &[]);
    fs::create_dir_all(root.join("by-id")).unwrap();
    std::os::unix::fs::symlink(
        disk.path(),
        root.join("by-id/nvme-Amazon_Elastic_Block_Store_vol0abcdef0123456789"),
    )
    .unwrap();

    // Powering off runs the configured command, here one that leaves a mark instead.
    let marker = work.path().join("powered-off");
    let config = config_file(
        work.path(),
        &root,
        &format!("on_complete = \"poweroff\"\npoweroff_command = [\"touch\", {marker:?}]"),
    );
    let started = std::time::Instant::now();
    let run = Run::of(&mut s3.server.watch(&imds, &config));
    run.expect_code(0);
    eprintln!(
        "1 GiB snapshot ({} blocks written) imaged by the daemon in {:?}",
        image.written().len(),
        started.elapsed()
    );

    // The snapshot's evidence, named after it, and nothing else.
    let prefix = format!("cases/IR-13/disk_evidence/{snapshot}");
    let mut keys = evidence_keys(&s3);
    keys.sort();
    let manifest_key = format!("{prefix}.manifest.json");
    assert!(keys.contains(&manifest_key), "{keys:?}\n{}", run.stderr);
    assert!(
        keys.iter().all(|k| k.starts_with(&prefix)),
        "only the snapshot was imaged: {keys:?}"
    );
    let manifest: Value = serde_json::from_slice(&s3.get("evidence", &manifest_key)).unwrap();
    let digests = image.digests();
    assert_eq!(manifest["image"]["hashes"]["sha256"], digests.sha256);
    assert_eq!(manifest["image"]["hashes"]["blake3"], digests.blake3);
    assert_eq!(manifest["source"]["kind"], "ebs_snapshot", "{manifest}");
    assert_eq!(
        manifest["source"]["snapshot"]["snapshot_id"],
        snapshot.as_str()
    );
    assert_eq!(manifest["case"]["incident_id"], "IR-13");
    assert_eq!(manifest["case"]["evidence_name"], snapshot.as_str());
    assert_eq!(manifest["host"]["instance_id"], INSTANCE);
    let mut verify = s3.collector();
    verify.args([
        "verify",
        &format!("s3://evidence/{manifest_key}"),
        "--s3-force-path-style",
    ]);
    Run::of(&mut verify).expect_code(0);

    // CloudWatch: ready, the job's start, its progress and its result, then the power-off.
    assert_eq!(
        logs.latest("ForensicDiskReadiness", INSTANCE).as_deref(),
        Some(READY)
    );
    let events = capture_events(&logs);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let ready = of_kind(&events, "agent_ready");
    assert_eq!(ready.len(), 1, "{kinds:?}");
    assert_eq!(ready[0]["snapshot_id"], snapshot.as_str());
    assert_eq!(ready[0]["disk_root"], Value::Null);
    assert!(of_kind(&events, "disk_detected").is_empty(), "{kinds:?}");
    let started = of_kind(&events, "job_started");
    assert_eq!(started.len(), 1, "{kinds:?}");
    assert_eq!(started[0]["snapshot_id"], snapshot.as_str());
    assert_eq!(started[0]["evidence_name"], snapshot.as_str());
    let progress = of_kind(&events, "progress");
    assert!(!progress.is_empty(), "{kinds:?}");
    assert!(progress.iter().all(|p| p["volume"] == snapshot.as_str()));
    let finished = of_kind(&events, "job_finished");
    assert_eq!(finished.len(), 1, "{kinds:?}\n{}", run.stderr);
    assert_eq!(finished[0]["snapshot_id"], snapshot.as_str());
    assert_eq!(finished[0]["status"], "completed");
    assert_eq!(finished[0]["bytes"], image.size_bytes());
    assert_eq!(finished[0]["hashes"]["sha256"], digests.sha256);
    assert!(of_kind(&events, "job_failed").is_empty(), "{kinds:?}");
    let stopping = events.last().expect("events");
    assert_eq!(stopping["event"], "agent_stopping", "{kinds:?}");
    assert_eq!(stopping["action"], "poweroff");
    assert_eq!(stopping["with_evidence"], 1);
    assert!(marker.exists(), "the poweroff command ran: {}", run.stderr);
    assert!(run.stderr.contains("Powering off"), "{}", run.stderr);

    // The linked disk was neither imaged nor write-blocked.
    assert!(!disk.kernel_read_only());
    assert!(
        !run.stderr.contains("Watching for attached volumes"),
        "{}",
        run.stderr
    );
}

// Issue 13: a snapshot that does not exist fails its one job with the documented exit code, is
// reported as failed, and the daemon still ends as configured, storing nothing.
#[test]
fn an_unknown_snapshot_fails_its_job_and_the_daemon_exits_with_its_code() {
    let s3 = LocalS3::with_bucket("evidence", false);
    let imds = ImdsServer::start(Some(&user_data("snap-0123456789abcdef0")), INSTANCE);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let config = config_file(
        work.path(),
        &work.path().join("dev-disk"),
        "on_complete = \"exit\"",
    );
    let run = Run::of(&mut s3.server.watch(&imds, &config));
    run.expect_code(10);
    assert!(evidence_keys(&s3).is_empty(), "{}", run.stderr);
    let events = capture_events(&logs);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let failed = of_kind(&events, "job_failed");
    assert_eq!(failed.len(), 1, "{kinds:?}");
    assert_eq!(failed[0]["snapshot_id"], "snap-0123456789abcdef0");
    assert_eq!(failed[0]["exit_code"], 10);
    // Asked of EBS, not taken for a path.
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("snap-0123456789abcdef0") && error.contains("does not exist"),
        "{error}"
    );
    let stopping = events.last().expect("events");
    assert_eq!(stopping["event"], "agent_stopping", "{kinds:?}");
    assert_eq!(stopping["failed"], 1);
}

// Issue 13: user data never chooses what runs as root. A value that is no snapshot ID is refused
// with the configuration's exit code, reported, and nothing is made ready, run or stored.
#[test]
fn a_snapshot_id_in_user_data_that_is_not_one_is_refused_before_anything_runs() {
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("powered-off");
    let config = config_file(
        work.path(),
        &work.path().join("dev-disk"),
        &format!("on_complete = \"poweroff\"\npoweroff_command = [\"touch\", {marker:?}]"),
    );
    for bad in [
        "/dev/vda",
        "snap-0123456789abcdef0 --out /",
        "SNAP-0123456789ABCDEF0",
    ] {
        let imds = ImdsServer::start(Some(&user_data(bad)), INSTANCE);
        let run = Run::of(&mut s3.server.watch(&imds, &config));
        run.expect_code(5);
        assert!(
            run.stderr.contains("job.snapshot_id from user data (json)")
                && run.stderr.contains("not an EBS snapshot ID"),
            "{bad:?}: {}",
            run.stderr
        );
    }
    assert!(!marker.exists(), "nothing ends the host on a refusal");
    assert!(evidence_keys(&s3).is_empty());
    assert!(logs.events("ForensicDiskReadiness", INSTANCE).is_empty());
    let events = capture_events(&logs);
    let refused = of_kind(&events, "config_refused");
    assert_eq!(refused.len(), 3, "{events:?}");
    assert!(
        refused.iter().all(|e| e["exit_code"] == 5
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("job.snapshot_id")),
        "{refused:?}"
    );
    assert!(of_kind(&events, "agent_ready").is_empty());
}
