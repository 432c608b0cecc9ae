//! `forensic-collector watch` in job-queue mode (`job.queue_url`), end to end against moto, which
//! serves SQS, Step Functions (executing state machines), EC2, the EBS direct APIs, S3 and
//! CloudWatch Logs: an execution queues a job with `sqs:sendMessage.waitForTaskToken`, the real
//! collector (its job context in user data from the IMDSv2 stand-in) takes it, images the
//! snapshot, beats and answers the task token; the execution ends with the collector's answer.
//! The state machine here is the smallest that waits on a token; the shipped flow's own runs in
//! the `flow` suite.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use collector_e2e::{FaultProxy, Flow, ImdsServer, LocalS3, Run, SnapshotImage, require_root};
use serde_json::{Value, json};

const INSTANCE: &str = "i-0feed0feed0feed0f";
const TAG: &str = "ir-21";

/// One state that queues the job and waits for its token.
fn machine(queue: &str, heartbeat: u32, timeout: u32) -> String {
    json!({
        "StartAt": "Capture",
        "States": {"Capture": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue, "MessageBody": {
                "type": "forensic-collector.job", "version": 1,
                "task_token.$": "$$.Task.Token", "execution_arn.$": "$$.Execution.Id",
                "incident_id": "IR-21", "evidence_name.$": "$.name",
                "destination.$": "$.destination", "snapshot_id.$": "$.snapshot"}},
            "HeartbeatSeconds": heartbeat, "TimeoutSeconds": timeout, "End": true}}
    })
    .to_string()
}

/// The collector's user data: evidence bucket, queue, snapshot tag, fast timings.
fn user_data(queue: &str, idle_secs: u32) -> Vec<u8> {
    json!({"job": {"bucket": "evidence", "prefix": "cases", "queue_url": queue,
        "snapshot_tag": TAG, "heartbeat_secs": 1, "queue_idle_secs": idle_secs}})
    .to_string()
    .into_bytes()
}

/// The operator's file: path-style S3, a power-off that leaves `marker`.
fn config_file(dir: &Path, marker: &Path) -> PathBuf {
    let path = dir.join("config.toml");
    fs::write(
        &path,
        format!(
            "[watch]\non_complete = \"poweroff\"\npoweroff_command = [\"touch\", {marker:?}]\n\
             [s3]\nforce_path_style = true\n\
             [cloudwatch]\nprogress_interval_secs = 1\nflush_timeout_secs = 5\n"
        ),
    )
    .unwrap();
    path
}

/// Every object key in the evidence bucket.
fn keys(s3: &LocalS3) -> Vec<String> {
    let out = s3
        .runtime
        .block_on(s3.client.list_objects_v2().bucket("evidence").send())
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

fn manifests(s3: &LocalS3) -> Vec<String> {
    keys(s3)
        .into_iter()
        .filter(|k| k.ends_with(".manifest.json"))
        .collect()
}

/// A tagged snapshot of known bytes, written through the EBS direct API.
fn tagged_snapshot(s3: &LocalS3, flow: &Flow, seed: u64) -> (SnapshotImage, String) {
    let image = SnapshotImage::odd_with_holes(seed);
    let snapshot = image.put(&s3.server.endpoint(), &s3.runtime);
    flow.tag(&snapshot, "forensic-collector", TAG);
    (image, snapshot)
}

fn verify(s3: &LocalS3, url: &str) {
    let mut verify = s3.collector();
    verify.args(["verify", url, "--s3-force-path-style"]);
    Run::of(&mut verify).expect_code(0);
}

/// One snapshot job queued by one execution, with everything its collector needs.
struct Scene {
    s3: LocalS3,
    flow: Flow,
    queue: String,
    image: SnapshotImage,
    snapshot: String,
    execution: String,
    work: tempfile::TempDir,
    imds: ImdsServer,
    config: PathBuf,
}

impl Scene {
    /// Snapshot `seed`, tagged, queued by a state with `heartbeat`/`timeout` seconds as `name`;
    /// the collector's user data goes idle after `idle` seconds.
    fn queued(seed: u64, (heartbeat, timeout): (u32, u32), name: &str, idle: u32) -> Self {
        let s3 = LocalS3::with_bucket("evidence", false);
        let flow = Flow::on(&s3.server);
        let queue = flow.queue("jobs");
        let (image, snapshot) = tagged_snapshot(&s3, &flow, seed);
        let machine = flow.state_machine("capture", &machine(&queue, heartbeat, timeout));
        let execution = flow.start(
            &machine,
            &json!({"snapshot": snapshot, "name": name, "destination": "s3://evidence/cases"}),
        );
        let work = tempfile::tempdir().unwrap();
        let config = config_file(work.path(), &work.path().join("powered-off"));
        let imds = ImdsServer::start(Some(&user_data(&queue, idle)), INSTANCE);
        Self {
            s3,
            flow,
            queue,
            image,
            snapshot,
            execution,
            work,
            imds,
            config,
        }
    }

    /// The collector, as a command.
    fn collector(&self) -> Command {
        self.s3.server.watch(&self.imds, &self.config)
    }

    /// The collector with its EBS calls through a proxy that answers 503 `unavailable` times, so
    /// it is surely mid-job a while; returns once it holds the job's message.
    fn slowed_collector(&self, unavailable: &str) -> (Child, FaultProxy) {
        let proxy = FaultProxy::start(&self.s3.server, &["--ebs-unavailable", unavailable]);
        let mut cmd = self.collector();
        cmd.env("AWS_ENDPOINT_URL_EBS", proxy.endpoint());
        let child = Run::spawn(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.flow.messages(&self.queue).1 == 0 {
            assert!(
                Instant::now() < deadline,
                "the collector never took the job"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        (child, proxy)
    }
}

/// SIGKILL, as a crash or a lost instance ends a collector.
fn sigkill(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = child.wait();
}

// Issue 21: the collector takes the execution's job, images the snapshot, answers the token with
// the manifest and the SHA-256, deletes the message, and powers off once the queue stays empty.
#[test]
fn a_queued_snapshot_job_is_imaged_and_answered_then_the_idle_collector_powers_off() {
    require_root();
    let scene = Scene::queued(21, (30, 600), "vol-0aaaaaaaaaaaaaaaa", 3);
    let run = Run::of(&mut scene.collector());
    run.expect_code(0);

    let outcome = scene.flow.wait(&scene.execution, Duration::from_secs(30));
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{outcome:?}\n{}",
        run.stderr
    );
    let output = &outcome.output;
    let key = "cases/IR-21/disk_evidence/vol-0aaaaaaaaaaaaaaaa.manifest.json";
    let manifest = format!("s3://evidence/{key}");
    assert_eq!(output["manifest_url"], manifest.as_str(), "{output}");
    assert_eq!(output["image_sha256"], scene.image.digests().sha256);
    assert_eq!(output["outcome"], "completed");
    assert_eq!(output["snapshot_id"], scene.snapshot.as_str());
    assert_eq!(output["collector"], INSTANCE);
    verify(&scene.s3, &manifest);
    let recorded: Value = serde_json::from_slice(&scene.s3.get("evidence", key)).unwrap();
    assert_eq!(
        recorded["source"]["snapshot"]["snapshot_id"],
        scene.snapshot.as_str()
    );
    assert_eq!(recorded["case"]["incident_id"], "IR-21");
    assert_eq!(
        scene.flow.messages(&scene.queue),
        (0, 0),
        "the answered message is deleted"
    );
    let marker = scene.work.path().join("powered-off");
    assert!(
        marker.exists(),
        "powered off after the idle time: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the job queue stayed empty"),
        "{}",
        run.stderr
    );
}

// Issue 21: a message is input. Not JSON, not ours, another destination, an untagged snapshot:
// each refused, reported to its execution when it carries a readable token, deleted, never run.
#[test]
fn malformed_foreign_and_untagged_jobs_are_refused_reported_and_never_run() {
    require_root();
    // moto runs one execution per server: once one has waited on a token, StartExecution fails.
    for case in ["elsewhere", "untagged"] {
        let s3 = LocalS3::with_bucket("evidence", false);
        let flow = Flow::on(&s3.server);
        let queue = flow.queue("jobs");
        flow.send(&queue, "not json at all");
        flow.send(
            &queue,
            &json!({"type": "someone.else", "task_token": "x y"}).to_string(),
        );
        let (_, tagged) = tagged_snapshot(&s3, &flow, 22);
        let untagged = SnapshotImage::odd_with_holes(23).put(&s3.server.endpoint(), &s3.runtime);
        let (input, why) = if case == "elsewhere" {
            (
                json!({"snapshot": tagged, "name": "a", "destination": "s3://attacker-bucket/x"}),
                "not this collector's",
            )
        } else {
            (
                json!({"snapshot": untagged, "name": "b", "destination": "s3://evidence/cases"}),
                "is not tagged forensic-collector=ir-21",
            )
        };
        let machine = flow.state_machine("capture", &machine(&queue, 30, 600));
        let execution = flow.start(&machine, &input);
        let work = tempfile::tempdir().unwrap();
        let imds = ImdsServer::start(Some(&user_data(&queue, 3)), INSTANCE);
        let config = config_file(work.path(), &work.path().join("powered-off"));
        let run = Run::of(&mut s3.server.watch(&imds, &config));
        run.expect_code(0);

        let outcome = flow.wait(&execution, Duration::from_secs(30));
        assert_eq!(
            outcome.status,
            ExecutionStatus::Failed,
            "{outcome:?}\n{}",
            run.stderr
        );
        assert_eq!(
            outcome.error.as_deref(),
            Some("ForensicCollector.JobRefused")
        );
        // moto keeps the error of SendTaskFailure but drops its cause; the collector's log has it.
        assert!(run.stderr.contains(why), "{}", run.stderr);
        assert_eq!(
            run.stderr.matches("Job message refused").count(),
            3,
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("Job taken"), "{}", run.stderr);
        assert_eq!(keys(&s3), Vec::<String>::new(), "nothing was run");
        assert_eq!(
            flow.messages(&queue),
            (0, 0),
            "every refused message is deleted"
        );
    }
}

// Issue 21: a collector killed mid-job leaves its message; it reappears after its visibility
// (three heartbeats) and a second collector finishes the job, with no evidence colliding.
#[test]
fn a_collector_killed_mid_job_leaves_the_job_to_another_without_colliding_evidence() {
    require_root();
    let scene = Scene::queued(24, (30, 600), "vol-0cccccccccccccccc", 8);
    let (child, _proxy) = scene.slowed_collector("6");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !keys(&scene.s3).iter().any(|k| k.contains(".claim")) {
        assert!(
            Instant::now() < deadline,
            "the first collector never claimed the name"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    sigkill(child);
    assert_eq!(
        scene.flow.status(&scene.execution).status,
        ExecutionStatus::Running
    );

    let second = Run::of(&mut scene.collector());
    second.expect_code(0);
    assert!(
        second.stderr.contains("receive_count=2"),
        "the second collector took the same message again: {}",
        second.stderr
    );
    let outcome = scene.flow.wait(&scene.execution, Duration::from_secs(30));
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{outcome:?}\n{}",
        second.stderr
    );
    let manifest = outcome.output["manifest_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(outcome.output["image_sha256"], scene.image.digests().sha256);
    verify(&scene.s3, &manifest);
    assert_eq!(
        manifests(&scene.s3).len(),
        1,
        "one capture stored: {:?}",
        keys(&scene.s3)
    );
    assert_eq!(scene.flow.messages(&scene.queue), (0, 0));
}

// Issue 21: when the collector stops beating (killed, and no other takes the job), the state
// times out after its HeartbeatSeconds (moto names it States.Timeout, AWS States.HeartbeatTimeout).
#[test]
fn heartbeats_that_stop_time_the_waiting_state_out() {
    require_root();
    let scene = Scene::queued(25, (4, 600), "n", 30);
    let (child, _proxy) = scene.slowed_collector("100");
    std::thread::sleep(Duration::from_secs(2));
    let running = scene.flow.status(&scene.execution).status;
    assert_eq!(
        running,
        ExecutionStatus::Running,
        "heartbeats keep it alive"
    );
    sigkill(child);
    let outcome = scene.flow.wait(&scene.execution, Duration::from_secs(30));
    assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    assert!(
        matches!(
            outcome.error.as_deref(),
            Some("States.Timeout" | "States.HeartbeatTimeout")
        ),
        "{outcome:?}"
    );
}

/// One state that queues a volume job for the collector `instance`.
fn volume_machine(queue: &str) -> String {
    json!({
        "StartAt": "Capture",
        "States": {"Capture": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue, "MessageBody": {
                "type": "forensic-collector.job", "version": 1,
                "task_token.$": "$$.Task.Token", "execution_arn.$": "$$.Execution.Id",
                "incident_id": "IR-21", "evidence_name": "vol-0ddddddddddddddddd"[..21],
                "destination": "s3://evidence/cases", "volume_id.$": "$.volume",
                "instance_id.$": "$.instance", "source_volume_id": "vol-0ddddddddddddddddd"[..21]}},
            "HeartbeatSeconds": 30, "TimeoutSeconds": 600, "End": true}}
    })
    .to_string()
}

// Issue 21, the fallback path: a volume job is the collector's the flow attached the volume to.
// Another collector leaves it in the queue; the right one waits for the disk whose EBS volume ID
// is the job's (its by-id link, as udev names an NVMe EBS volume), images it and answers.
#[test]
fn a_volume_job_is_imaged_by_the_collector_it_is_attached_to_and_left_by_others() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let flow = Flow::on(&s3.server);
    let queue = flow.queue("jobs");
    let volume = "vol-0123456789abcdef0";
    let machine = flow.state_machine("capture", &volume_machine(&queue));
    let execution = flow.start(&machine, &json!({"volume": volume, "instance": INSTANCE}));

    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("dev-disk");
    fs::create_dir_all(root.join("by-id")).unwrap();
    let config = work.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[watch]\ndisk_root = {root:?}\nsettle_ms = 100\non_complete = \"exit\"\n\
             [s3]\nforce_path_style = true\n[cloudwatch]\nenabled = false\n"
        ),
    )
    .unwrap();

    // Another collector: the volume is not attached to it, so it leaves the job.
    let other = ImdsServer::start(Some(&user_data(&queue, 3)), "i-0beef0beef0beef0b");
    let run = Run::of(&mut s3.server.watch(&other, &config));
    run.expect_code(0);
    assert!(
        run.stderr.contains("A volume job for another collector"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Job taken"), "{}", run.stderr);
    assert_eq!(flow.status(&execution).status, ExecutionStatus::Running);

    // This collector: the disk appears a moment after the job is taken, as an attachment does.
    let disk_file = work.path().join("volume.img");
    collector_e2e::random_file(&disk_file, 8 << 20, 2121);
    let disk = collector_e2e::LoopDevice::attach(&disk_file, &[]);
    let imds = ImdsServer::start(Some(&user_data(&queue, 3)), INSTANCE);
    let child = Run::spawn(&mut s3.server.watch(&imds, &config));
    std::thread::sleep(Duration::from_secs(2));
    std::os::unix::fs::symlink(
        disk.path(),
        root.join("by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"),
    )
    .unwrap();
    let run = Run::wait(child);
    run.expect_code(0);
    let outcome = flow.wait(&execution, Duration::from_secs(30));
    assert_eq!(
        outcome.status,
        ExecutionStatus::Succeeded,
        "{outcome:?}\n{}",
        run.stderr
    );
    let expected = collector_e2e::sha256_hex(&fs::read(&disk_file).unwrap());
    assert_eq!(outcome.output["image_sha256"], expected);
    assert_eq!(outcome.output["volume_id"], volume);
    let manifest = outcome.output["manifest_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    verify(&s3, &manifest);
    assert!(
        disk.kernel_read_only(),
        "the attached volume was write-blocked"
    );
}

// Issue 21: when the execution stops waiting (here the state's TimeoutSeconds passes while the
// snapshot's reads are slowed), the next heartbeat is refused: the collector stops the job, whose
// child removes what it stored, deletes the message (nobody waits for it) and goes idle.
#[test]
fn a_job_whose_execution_stopped_waiting_is_stopped_and_leaves_nothing() {
    require_root();
    let scene = Scene::queued(26, (3, 4), "late", 5);
    let (child, _proxy) = scene.slowed_collector("1000");
    let run = Run::wait(child);
    run.expect_code(0);
    let outcome = scene.flow.wait(&scene.execution, Duration::from_secs(5));
    assert_eq!(outcome.status, ExecutionStatus::Failed, "{outcome:?}");
    assert!(
        run.stderr.contains("no longer waits for this job"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Job abandoned"), "{}", run.stderr);
    assert_eq!(
        scene.flow.messages(&scene.queue),
        (0, 0),
        "the message is deleted"
    );
    assert!(manifests(&scene.s3).is_empty(), "{:?}", keys(&scene.s3));
    assert_eq!(scene.s3.open_uploads("evidence"), 0);
}
