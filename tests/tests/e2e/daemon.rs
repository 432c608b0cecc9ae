//! `forensic-collector watch`, the daemon, end to end: real loop devices linked into a temporary
//! `/dev/disk` tree after the daemon signalled readiness, a real S3 and CloudWatch Logs server
//! (moto) and an IMDSv2 stand-in carrying the original flow's shell-script user data. Images land
//! in S3 and verify, the CloudWatch streams tell the story, and `on_complete = "exit"` ends the
//! process with status 0.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use collector_e2e::cwlogs::LogsReader;
use collector_e2e::{
    FaultFs, ImdsServer, LocalS3, LoopDevice, MotoServer, Run, random_file, refused_endpoint,
    require_root,
};
use serde_json::Value;

const MIB: u64 = 1 << 20;
const INSTANCE: &str = "i-0123456789abcdef0";
const READY: &str = "incron is running";
const VOLUME: &str = "vol0abcdef0123456789";

/// The flow's user data: a script that appends the job to /etc/environment (never executed).
fn legacy_user_data(bucket: &str) -> Vec<u8> {
    format!(
        "#!/bin/bash\n\
         echo \"DESTINATION_BUCKET={bucket}\" >> /etc/environment\n\
         echo \"DESTINATION_PREFIX=cases\" >> /etc/environment\n\
         echo \"INCIDENT_ID=IR-42\" >> /etc/environment\n"
    )
    .into_bytes()
}

/// As [`legacy_user_data`], naming the suspect's original volume (`IMAGE_NAME`) as the flow does.
fn legacy_user_data_with_image(bucket: &str, image_name: &str) -> Vec<u8> {
    let mut data = legacy_user_data(bucket);
    data.extend_from_slice(
        format!("echo \"IMAGE_NAME={image_name}\" >> /etc/environment\n").as_bytes(),
    );
    data
}

/// A config file for a daemon watching `root` that exits after `expected` volumes.
fn config_file(dir: &Path, root: &Path, expected: u32) -> PathBuf {
    config_file_with(dir, root, expected, "on_complete = \"exit\"")
}

/// As [`config_file`], with `watch` lines of its own.
fn config_file_with(dir: &Path, root: &Path, expected: u32, watch: &str) -> PathBuf {
    let path = dir.join("config.toml");
    fs::write(
        &path,
        format!(
            "[job]\nexpected_volumes = {expected}\n\
             [watch]\ndisk_root = {root:?}\n{watch}\nsettle_ms = 200\n\
             [imaging]\npiece_size = \"4MiB\"\n\
             [s3]\nforce_path_style = true\n\
             [cloudwatch]\nreadiness_message = {READY:?}\nprogress_interval_secs = 1\nflush_timeout_secs = 5\n"
        ),
    )
    .unwrap();
    path
}

/// `forensic-collector watch --config CONFIG` against `s3`, `imds`, and CloudWatch at `logs`.
fn daemon(s3: &LocalS3, imds: &ImdsServer, logs: &str, config: &Path) -> Command {
    let mut cmd = s3.collector();
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
        .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", logs)
        .env_remove("FORENSIC_COLLECTOR_CONFIG")
        .arg("watch")
        .arg("--config")
        .arg(config);
    cmd
}

fn link(root: &Path, dir: &str, name: &str, target: &Path) {
    fs::create_dir_all(root.join(dir)).unwrap();
    symlink(target, root.join(dir).join(name)).unwrap();
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// The capture stream's events as JSON.
fn capture_events(logs: &LogsReader) -> Vec<Value> {
    logs.events("ForensicDiskCapture", INSTANCE)
        .into_iter()
        .filter_map(|(_, message)| serde_json::from_str(&message).ok())
        .collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// Waits until the readiness stream's newest message is the configured text, as the flow's
/// attaching Lambda does before it attaches anything.
fn wait_until_ready(logs: &LogsReader) {
    logs.wait_for(
        "ForensicDiskReadiness",
        INSTANCE,
        Duration::from_secs(60),
        |_| logs.latest("ForensicDiskReadiness", INSTANCE).as_deref() == Some(READY),
    );
}

/// Keys of the manifests stored under the incident.
fn manifests(s3: &LocalS3) -> Vec<String> {
    s3.runtime
        .block_on(
            s3.client
                .list_objects_v2()
                .bucket("evidence")
                .prefix("cases/IR-42/disk_evidence/")
                .send(),
        )
        .expect("list objects")
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with(".manifest.json"))
        .map(str::to_owned)
        .collect()
}

/// What most daemon tests start from: one moto for S3 and CloudWatch Logs, the IMDS stand-in with
/// the flow's user data, a work directory and the `/dev/disk` root to be (not yet created).
struct Setup {
    s3: LocalS3,
    imds: ImdsServer,
    logs: LogsReader,
    work: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        require_root();
        let s3 = LocalS3::with_bucket("evidence", false);
        let imds = ImdsServer::start(Some(&legacy_user_data("evidence")), INSTANCE);
        let logs = LogsReader::new(&s3.server.endpoint());
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("dev-disk");
        Self {
            s3,
            imds,
            logs,
            work,
            root,
        }
    }
}

#[test]
fn the_daemon_images_every_attached_disk_once_and_reports_to_cloudwatch() {
    let Setup {
        s3,
        imds,
        logs,
        work,
        root,
    } = Setup::new();

    // A: ext4 with a label. B: GPT, linked only through its partition. C: unlabelled, an EBS
    // by-id link only. D: mounted by this host, so refused.
    let a_file = work.path().join("a.img");
    random_file(&a_file, 24 * MIB, 51);
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "EVIDENCE1"])
            .arg(&a_file),
    );
    let a = LoopDevice::attach(&a_file, &[]);
    let b_file = work.path().join("b.img");
    random_file(&b_file, 16 * MIB, 52);
    run_ok(
        Command::new("sgdisk")
            .args(["-o", "-n", "1:2048:+4M"])
            .arg(&b_file),
    );
    let b = LoopDevice::attach_partitioned(&b_file);
    let c_file = work.path().join("c.img");
    random_file(&c_file, 20 * MIB + 512, 53);
    let c = LoopDevice::attach(&c_file, &[]);
    let d_file = work.path().join("d.img");
    fs::File::create(&d_file)
        .unwrap()
        .set_len(16 * MIB)
        .unwrap();
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "HOSTDATA"])
            .arg(&d_file),
    );
    let d = LoopDevice::attach(&d_file, &[]);
    let mount_point = work.path().join("mnt");
    fs::create_dir(&mount_point).unwrap();
    run_ok(Command::new("mount").arg(d.path()).arg(&mount_point));
    let _unmount = Unmount(mount_point.clone());

    let config = config_file(work.path(), &root, 3);
    let child = Run::spawn(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    wait_until_ready(&logs);

    let attached = Instant::now();
    link(&root, "by-label", "EVIDENCE1", a.path());
    link(&root, "by-id", "wwn-0x5000c500a1b2c3d4", a.path());
    link(&root, "by-id", "virtio-evidence-b-part1", &b.partition(1));
    link(
        &root,
        "by-id",
        &format!("nvme-Amazon_Elastic_Block_Store_{VOLUME}"),
        c.path(),
    );
    link(&root, "by-label", "HOSTDATA", d.path());

    let run = Run::wait(child);
    run.expect_code(0);
    eprintln!(
        "three disks attached → daemon exited in {:?}",
        attached.elapsed()
    );

    // Three images (A once, though linked twice), each verifying from S3.
    let keys = manifests(&s3);
    assert_eq!(keys.len(), 3, "{keys:?}\n{}", run.stderr);
    let c_key = "cases/IR-42/disk_evidence/vol-0abcdef0123456789.manifest.json";
    assert!(keys.iter().any(|k| k == c_key), "{keys:?}");
    for key in &keys {
        let mut verify = s3.collector();
        verify.args([
            "verify",
            &format!("s3://evidence/{key}"),
            "--s3-force-path-style",
        ]);
        let verified = Run::of(&mut verify);
        verified.expect_code(0);
    }
    let c_image = s3.get_http(
        "evidence",
        "cases/IR-42/disk_evidence/vol-0abcdef0123456789.image.dd",
    );
    assert!(
        c_image == fs::read(&c_file).unwrap(),
        "C's object differs from the device"
    );

    let events = capture_events(&logs);
    let summary: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(count(&events, "disk_detected"), 3, "{summary:?}");
    assert_eq!(count(&events, "job_started"), 3, "{summary:?}");
    assert_eq!(count(&events, "job_finished"), 3, "{summary:?}");
    assert_eq!(count(&events, "job_failed"), 0, "{summary:?}");
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "disk_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{summary:?}");
    assert_eq!(refused[0]["device"], d.path().to_str().unwrap());
    let finished_c = events
        .iter()
        .find(|e| e["event"] == "job_finished" && e["evidence_name"] == "vol-0abcdef0123456789")
        .expect("C's result event");
    assert_eq!(finished_c["status"], "completed");
    assert_eq!(finished_c["bytes"], 20 * MIB + 512);
    assert_eq!(
        finished_c["hashes"]["sha256"],
        collector_e2e::sha256_hex(&fs::read(&c_file).unwrap())
    );
    let stopping = events.last().expect("events");
    assert_eq!(stopping["event"], "agent_stopping", "{summary:?}");
    assert_eq!(stopping["jobs"], 3);
    for detected in events.iter().filter(|e| e["event"] == "disk_detected") {
        let ms = detected["detection_ms"].as_u64().unwrap();
        eprintln!("detection latency {}: {ms} ms", detected["device"]);
        assert!(ms < 5_000, "{detected}");
    }
    // The devices the daemon imaged were left read-only; the refused one was not touched.
    assert!(c.kernel_read_only() && b.kernel_read_only() && a.kernel_read_only());
    assert!(!d.kernel_read_only());
}

#[test]
fn imaging_completes_while_cloudwatch_is_down_then_the_host_powers_off() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    // The evidence is named after the suspect's volume from the user data, not the copy attached.
    let imds = ImdsServer::start(
        Some(&legacy_user_data_with_image(
            "evidence",
            "vol-0fedcba9876543210",
        )),
        INSTANCE,
    );
    let mut cloudwatch = Some(MotoServer::start());
    let cw_endpoint = cloudwatch.as_ref().unwrap().endpoint();
    let logs = LogsReader::new(&cw_endpoint);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dev-disk");
    let file = work.path().join("c.img");
    random_file(&file, 12 * MIB, 54);
    let dev = LoopDevice::attach(&file, &[]);

    // Powering off runs the configured command, here one that leaves a mark instead.
    let marker = work.path().join("powered-off");
    let config = config_file_with(
        work.path(),
        &root,
        1,
        &format!("on_complete = \"poweroff\"\npoweroff_command = [\"touch\", {marker:?}]"),
    );
    let child = Run::spawn(&mut daemon(&s3, &imds, &cw_endpoint, &config));
    wait_until_ready(&logs);
    drop(cloudwatch.take()); // CloudWatch goes away before the disk arrives.
    link(
        &root,
        "by-id",
        &format!("nvme-Amazon_Elastic_Block_Store_{VOLUME}"),
        dev.path(),
    );

    let run = Run::wait(child);
    run.expect_code(0);
    let keys = manifests(&s3);
    assert_eq!(
        keys,
        ["cases/IR-42/disk_evidence/vol-0fedcba9876543210.manifest.json"],
        "{}",
        run.stderr
    );
    let manifest: Value = serde_json::from_slice(&s3.get("evidence", &keys[0])).unwrap();
    assert_eq!(
        manifest["case"]["source_volume_id"],
        "vol-0fedcba9876543210"
    );
    assert_eq!(manifest["host"]["instance_id"], INSTANCE);
    assert!(run.stderr.contains("Reports flushed"), "{}", run.stderr);
    assert!(marker.exists(), "the poweroff command ran: {}", run.stderr);
    assert!(run.stderr.contains("Powering off"), "{}", run.stderr);
}

#[test]
fn watch_fails_clearly_without_imds_or_with_malformed_user_data() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let config = config_file(work.path(), &work.path().join("dev-disk"), 1);

    // Nothing listens at the metadata endpoint (and the wait for it is short: see boot.rs).
    let mut cmd = s3.collector();
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", refused_endpoint())
        .env("FORENSIC_COLLECTOR_JOB_IMDS_WAIT_SECS", "1")
        .args(["watch", "--config"])
        .arg(&config);
    let started = Instant::now();
    let run = Run::of(&mut cmd);
    run.expect_code(6);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        run.stderr.to_lowercase().contains("metadata"),
        "{}",
        run.stderr
    );

    let imds = ImdsServer::start(Some(b"{\"bucket\": "), INSTANCE);
    let run = Run::of(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    run.expect_code(5);
    assert!(run.stderr.contains("user data"), "{}", run.stderr);
}

/// Unmounts on drop, so a failed test does not leave a mount behind.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn sigterm_stops_the_running_job_and_leaves_no_partial_evidence() {
    let Setup {
        s3,
        imds,
        logs,
        work,
        root,
    } = Setup::new();
    let backing = work.path().join("slow.raw");
    random_file(&backing, 48 * MIB, 55);
    // Slow reads (100 ms each) keep the job running long enough to stop it in the middle.
    let slow = FaultFs::mount(&backing, &["--delay-ms".into(), "100".into()]);
    let dev = LoopDevice::attach(&slow.file(), &["--read-only"]);

    let config = config_file(work.path(), &root, 1);
    let child = Run::spawn(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    wait_until_ready(&logs);
    link(
        &root,
        "by-id",
        &format!("nvme-Amazon_Elastic_Block_Store_{VOLUME}"),
        dev.path(),
    );
    logs.wait_for(
        "ForensicDiskCapture",
        INSTANCE,
        Duration::from_secs(60),
        |events| events.iter().any(|(_, m)| m.contains("\"progress\"")),
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::wait(child);
    run.expect_code(130);
    assert!(manifests(&s3).is_empty(), "{}", run.stderr);
    assert_eq!(s3.open_uploads("evidence"), 0, "{}", run.stderr);
    let events = capture_events(&logs);
    let failed = events
        .iter()
        .find(|e| e["event"] == "job_failed")
        .expect("the stopped job is reported");
    assert_eq!(failed["exit_code"], 130, "{failed}");
    let stopping = events.last().unwrap();
    assert_eq!(stopping["event"], "agent_stopping");
    assert_eq!(stopping["reason"], "interrupted");
}

#[test]
fn no_disk_before_the_idle_timeout_ends_the_daemon_with_status_10() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let imds = ImdsServer::start(Some(&legacy_user_data("evidence")), INSTANCE);
    let work = tempfile::tempdir().unwrap();
    let config = config_file_with(
        work.path(),
        &work.path().join("dev-disk"),
        1,
        "on_complete = \"exit\"\nidle_timeout_secs = 2",
    );
    let started = Instant::now();
    let run = Run::of(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    run.expect_code(10);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(run.stderr.contains("no disk attached"), "{}", run.stderr);
    assert!(manifests(&s3).is_empty());
}

#[test]
fn disks_are_imaged_concurrently_up_to_the_configured_limit() {
    let Setup {
        s3,
        imds,
        logs,
        work,
        root,
    } = Setup::new();
    // Two slow disks (50 ms per read): one at a time would take twice as long, and would never
    // start the second before the first finished.
    let mut mounts = Vec::new();
    let mut devices = Vec::new();
    for (index, volume) in ["vol0aaaaaaaaaaaaaaaa", "vol0bbbbbbbbbbbbbbbb"]
        .iter()
        .enumerate()
    {
        let backing = work.path().join(format!("slow{index}.raw"));
        random_file(&backing, 16 * MIB, 60 + index as u64);
        let slow = FaultFs::mount(&backing, &["--delay-ms".into(), "50".into()]);
        devices.push((LoopDevice::attach(&slow.file(), &["--read-only"]), *volume));
        mounts.push(slow);
    }
    let config = config_file_with(
        work.path(),
        &root,
        2,
        "on_complete = \"exit\"\nconcurrency = 2",
    );
    let child = Run::spawn(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    wait_until_ready(&logs);
    for (device, volume) in &devices {
        link(
            &root,
            "by-id",
            &format!("nvme-Amazon_Elastic_Block_Store_{volume}"),
            device.path(),
        );
    }
    let run = Run::wait(child);
    run.expect_code(0);
    assert_eq!(manifests(&s3).len(), 2, "{}", run.stderr);
    let events = capture_events(&logs);
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| *e == "job_started" || *e == "job_finished")
        .collect();
    assert_eq!(
        order,
        ["job_started", "job_started", "job_finished", "job_finished"],
        "both jobs run at once"
    );
}

// Issue 10: the child gets its job as JSON built from the checked configuration, including the
// examiner; and an IMAGE_NAME that is a name, not a volume ID, no longer stops the daemon before
// its readiness message (it used to exit 5, and the flow waited for ever).
#[test]
fn an_image_name_that_is_a_name_does_not_stop_the_daemon_and_the_examiner_is_recorded() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let imds = ImdsServer::start(
        Some(&legacy_user_data_with_image("evidence", "web-01 root disk")),
        INSTANCE,
    );
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dev-disk");
    let file = work.path().join("e.img");
    random_file(&file, 8 * MIB, 61);
    let dev = LoopDevice::attach(&file, &[]);
    let config = config_file(work.path(), &root, 1);
    let mut text = fs::read_to_string(&config).unwrap();
    text = text.replace("[job]\n", "[job]\nexaminer = \"Åsa Berg, IR team\"\n");
    fs::write(&config, text).unwrap();

    let child = Run::spawn(&mut daemon(&s3, &imds, &s3.server.endpoint(), &config));
    wait_until_ready(&logs);
    link(
        &root,
        "by-id",
        &format!("nvme-Amazon_Elastic_Block_Store_{VOLUME}"),
        dev.path(),
    );
    let run = Run::wait(child);
    run.expect_code(0);
    assert!(
        run.stderr.contains("not an EBS volume ID"),
        "the ignored IMAGE_NAME is logged: {}",
        run.stderr
    );
    let keys = manifests(&s3);
    assert_eq!(
        keys,
        ["cases/IR-42/disk_evidence/vol-0abcdef0123456789.manifest.json"],
        "named after the attached volume: {}",
        run.stderr
    );
    let manifest: Value = serde_json::from_slice(&s3.get("evidence", &keys[0])).unwrap();
    assert_eq!(manifest["case"]["examiner"], "Åsa Berg, IR team");
    assert!(manifest["case"].get("source_volume_id").is_none());
    assert_eq!(manifest["host"]["instance_id"], INSTANCE);
    assert_eq!(manifest["image"]["piecewise"]["piece_size"], 4 * MIB);
    // Issue 23: the custody record of a daemon's job: where each setting came from (the file,
    // the user data), when the disk was detected, which instance and principal.
    let custody = &manifest["custody"];
    let settings = &custody["settings"];
    assert!(
        settings["imaging.piece_size"]
            .as_str()
            .unwrap()
            .starts_with("file /"),
        "{settings}"
    );
    assert_eq!(
        settings["job.examiner"]
            .as_str()
            .map(|s| s.starts_with("file /")),
        Some(true),
        "{settings}"
    );
    assert_eq!(settings["job.bucket"], "user data (shell)", "{settings}");
    assert_eq!(settings["imaging.chunk_size"], "default", "{settings}");
    let events = &custody["events"];
    let detected = events["detected_at"].as_str().expect("detected_at");
    let started = events["started_at"].as_str().unwrap();
    assert!(detected < started, "{events}");
    assert_eq!(custody["host"]["instance_id"], INSTANCE);
    assert_eq!(custody["host"]["region"], "us-east-1");
    assert_eq!(custody["host"]["instance_type"], "m7i.large");
    assert_eq!(custody["principal"]["account"], "123456789012");
    assert_eq!(custody["examiner"], "Åsa Berg, IR team");
}
