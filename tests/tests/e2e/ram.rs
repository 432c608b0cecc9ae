//! `acquire memory://`: a host's RAM imaged as LiME, through the real binary. The host here has no
//! /proc/kcore, so the binary runs in a mount namespace of its own over a fake /proc
//! ([`FakeHost`]: a kcore written as the kernel writes it, an iomem, the banner); the refusals that
//! need no fake (no reader, not root, no CAP_SYS_RAWIO, lockdown) run against the real host.
//! A real kernel's memory is captured in the VM test (tests/vm/run.sh, boot `memory`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use collector_e2e::fakehost::{BANNER, BOOT_ID};
use collector_e2e::{FakeHost, FaultFs, ImdsServer, LocalS3, Run, collector, require_root};
use serde_json::Value;

/// Two ranges of RAM, the second above 1 MiB as on any PC.
const RAM: [(u64, u64); 2] = [(0x1000, 0x9_fc00), (0x10_0000, 0x90_0000)];
/// What the kcore maps: all of it.
const ALL: [(u64, u64); 2] = [(0, 0xa_0000), (0x10_0000, 0x80_0000)];

fn manifest(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("manifest")).expect("manifest JSON")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `acquire memory:// --out OUT` with IMDS answering as `imds`.
fn capture(imds: &ImdsServer, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = collector();
    cmd.args(["acquire", "memory://", "--out"])
        .arg(out)
        .args(["--incident", "IR-22"])
        .args(extra)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint());
    cmd
}

// Issue 22: the whole capture — a LiME header per System RAM range, the memory at the physical
// addresses kcore's program headers give, the manifest's memory record (reader, banner, boot ID,
// instance and AMI from IMDS, ranges), named after the instance, and verify checking it.
/// Runs `verify`: it must pass and say it checked the LiME structure of the fake host's two ranges.
fn verifies_both_ranges(verify: &mut Command) {
    let checked = Run::of(verify);
    checked.expect_code(0);
    assert!(
        checked.stdout.contains("lime: OK 2 ranges"),
        "{}",
        checked.stdout
    );
}

/// `acquire memory:// --dest s3://evidence/cases --incident INCIDENT` against `local`, path-style.
fn s3_capture(local: &LocalS3, incident: &str) -> Command {
    let mut cmd = local.collector();
    cmd.args(["acquire", "memory://", "--dest", "s3://evidence/cases"])
        .args(["--incident", incident, "--s3-force-path-style"]);
    cmd
}

#[test]
fn memory_is_imaged_as_lime_with_its_record_and_verifies() {
    require_root();
    let host = FakeHost::new(&RAM, &ALL);
    let imds = ImdsServer::start(None, "i-0123456789abcdef0");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("evidence");
    let run = Run::of(&mut host.wrap(&capture(&imds, &out, &[])));
    run.expect_code(0);
    let name = "i-0123456789abcdef0-memory";
    assert_eq!(
        files_in(&out),
        [
            format!("{name}.capture.log"),
            format!("{name}.manifest.json"),
            format!("{name}.mem.lime"),
            format!("{name}.mem.lime.sha256")
        ]
    );
    let image = fs::read(out.join(format!("{name}.mem.lime"))).unwrap();
    assert_eq!(
        image,
        host.expected_image(&ALL),
        "the image is the LiME of the fake RAM"
    );
    let m = manifest(&out.join(format!("{name}.manifest.json")));
    assert_eq!(m["schema_version"], 6);
    // Issue 23: the custody record's host, from the IMDS stand-in.
    let host_facts = &m["custody"]["host"];
    assert_eq!(host_facts["region"], "us-east-1");
    assert_eq!(host_facts["instance_type"], "m7i.large");
    assert_eq!(host_facts["ami_id"], "ami-0123456789abcdef0");
    assert_eq!(host_facts["instance_id"], "i-0123456789abcdef0");
    assert_eq!(m["source"]["kind"], "memory");
    assert_eq!(m["source"]["path"], "memory://kcore");
    assert_eq!(m["source"]["live_acquisition"], true);
    let memory = &m["source"]["memory"];
    assert_eq!(memory["reader"], "kcore");
    assert_eq!(memory["banner"], BANNER);
    assert_eq!(memory["kernel_release"], "6.1.0-99-amd64");
    assert_eq!(memory["boot_id"], BOOT_ID);
    assert_eq!(memory["ami_id"], "ami-0123456789abcdef0");
    assert_eq!(memory["consistency"], "smear");
    assert_eq!(m["host"]["instance_id"], "i-0123456789abcdef0");
    let ranges: Vec<(u64, u64, u64)> = memory["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().unwrap(),
                r["end"].as_u64().unwrap(),
                r["bytes_read"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        RAM.iter().map(|&(s, e)| (s, e, e - s)).collect::<Vec<_>>()
    );
    assert_eq!(m["image"]["size_bytes"], image.len());
    assert_eq!(
        m["image"]["hashes"]["sha256"],
        collector_e2e::sha256_hex(&image)
    );
    assert!(
        m["acquisition"]["queue_depth"].as_u64().unwrap() <= 2,
        "{m}"
    );

    let mut verify = collector();
    verify
        .arg("verify")
        .arg(out.join(format!("{name}.manifest.json")));
    verifies_both_ranges(&mut verify);

    // The same name again is existing evidence: refused, nothing of the first touched.
    let again = Run::of(&mut host.wrap(&capture(&imds, &out, &[])));
    again.expect_code(20);
    assert_eq!(
        fs::read(out.join(format!("{name}.mem.lime"))).unwrap(),
        image
    );

    // A header changed after the capture: verify names the broken structure (and the hashes).
    let path = out.join(format!("{name}.mem.lime"));
    let mut damaged = image.clone();
    damaged[0] ^= 0xff;
    fs::write(&path, damaged).unwrap();
    let bad = Run::of(&mut verify);
    bad.expect_code(4);
    assert!(
        bad.stdout
            .contains("lime: MALFORMED no LiME header at image offset 0"),
        "{}",
        bad.stdout
    );
    assert!(bad.stdout.contains("sha256: MISMATCH"), "{}", bad.stdout);
}

// Memory no kcore segment maps is written as zeros and listed, as unreadable sectors are: the run
// completes with errors (exit 3), and the record says how much of each range was read.
#[test]
fn unmapped_memory_is_zero_filled_and_recorded() {
    require_root();
    let mapped = [(0, 0xa_0000), (0x10_0000, 0x60_0000)];
    let host = FakeHost::new(&RAM, &mapped);
    let imds = ImdsServer::turned_off();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("evidence");
    let run = Run::of(&mut host.wrap(&capture(&imds, &out, &["--name", "m"])));
    run.expect_code(3);
    let image = fs::read(out.join("m.mem.lime")).unwrap();
    assert_eq!(image, host.expected_image(&mapped));
    let m = manifest(&out.join("m.manifest.json"));
    assert_eq!(m["acquisition"]["status"], "completed_with_errors");
    assert_eq!(m["source"]["memory"]["ami_id"], Value::Null);
    assert_eq!(m["host"]["instance_id"], Value::Null);
    let bad = &m["bad_ranges"];
    assert_eq!(bad.as_array().unwrap().len(), 1, "{bad}");
    assert_eq!(bad[0]["length"], 0x20_0000);
    assert_eq!(
        bad[0]["first_sector"], 0x700,
        "the physical page frame number"
    );
    assert_eq!(bad[0]["sector_count"], 0x200);
    assert_eq!(bad[0]["errno"], 6, "ENXIO: no segment maps it");
    assert_eq!(m["source"]["memory"]["ranges"][1]["bytes_read"], 0x60_0000);
    let mut verify = collector();
    verify.arg("verify").arg(out.join("m.manifest.json"));
    Run::of(&mut verify).expect_code(0);
}

// To S3: the LiME image and its record under memory_evidence/, verified from the bucket; SIGTERM
// mid-capture aborts the upload and leaves nothing that could pass for evidence.
#[test]
fn memory_goes_to_s3_under_memory_evidence_and_an_interrupted_capture_leaves_nothing() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let host = FakeHost::new(&RAM, &ALL);
    let imds = ImdsServer::start(None, "i-0123456789abcdef0");
    let mut cmd = local.collector();
    cmd.args([
        "acquire",
        "memory://kcore",
        "--dest",
        "s3://evidence/cases",
        "--incident",
        "IR-22",
    ])
    .args(["--s3-force-path-style", "--result-json"])
    .env_remove("AWS_EC2_METADATA_DISABLED")
    .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint());
    let run = Run::of(&mut host.wrap(&cmd));
    run.expect_code(0);
    let result: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let url = "s3://evidence/cases/IR-22/memory_evidence/i-0123456789abcdef0-memory.manifest.json";
    assert_eq!(result["manifest"], url);
    let image = local.get_http(
        "evidence",
        "cases/IR-22/memory_evidence/i-0123456789abcdef0-memory.mem.lime",
    );
    assert_eq!(image, host.expected_image(&ALL));
    let mut verify = local.collector();
    verify.args(["verify", url, "--s3-force-path-style"]);
    verifies_both_ranges(&mut verify);

    // A slow kcore (FUSE, 100 ms a read) keeps the second capture going until SIGTERM.
    let mut slow_host = FakeHost::new(&RAM, &ALL);
    let slow = FaultFs::mount(
        &slow_host.proc().join("kcore"),
        &["--delay-ms".into(), "100".into()],
    );
    slow_host.kcore_from(&slow.file());
    let mut cmd = s3_capture(&local, "IR-23");
    cmd.args(["--name", "slow", "--chunk-size", "256KiB"])
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let mut child = Run::spawn(&mut slow_host.wrap(&cmd));
    let deadline = Instant::now() + Duration::from_secs(60);
    while local.open_uploads("evidence") == 0 {
        if child.try_wait().unwrap().is_some() {
            let run = Run::wait(child);
            panic!(
                "the capture ended before its upload started: exit {}\n{}",
                run.code, run.stderr
            );
        }
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // unshare execs sh, which execs the binary: the child's PID is the collector's.
    let raw_pid = i32::try_from(child.id()).unwrap();
    assert_every_thread_at_the_lowest_priority(raw_pid);
    let pid = nix::unistd::Pid::from_raw(raw_pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::wait(child);
    run.expect_code(130);
    assert_eq!(local.open_uploads("evidence"), 0, "{}", run.stderr);
    let listed = local
        .runtime
        .block_on(
            local
                .client
                .list_objects_v2()
                .bucket("evidence")
                .prefix("cases/IR-23/")
                .send(),
        )
        .unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

/// Every thread of a running capture — the reader, the hashers, the runtime's workers — at nice 19
/// and best-effort I/O level 7: the suspect's own work goes first (docs/memory.md).
fn assert_every_thread_at_the_lowest_priority(pid: i32) {
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(tasks.len() > 2, "threads: {tasks:?}");
    for tid in &tasks {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap();
        // Fields after the command's closing parenthesis; nice is field 19, the 17th of those.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = after.split(' ').nth(16).unwrap();
        assert_eq!(nice, "19", "thread {tid}: {stat}");
        let tid: libc::c_int = tid.parse().unwrap();
        // SAFETY: ioprio_get takes integers and touches no memory of ours.
        let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, tid) };
        assert_eq!(ioprio, (2 << 13) | 7, "thread {tid}: best-effort 7");
    }
}

// Issue 22: each refusal its exit code and words, and no evidence: no reader at all (10), a
// reader that does not read (12), not root (11), root without CAP_SYS_RAWIO (11), kernel
// lockdown (15), an unknown reader (2).
#[test]
fn what_cannot_be_captured_is_refused_with_its_own_exit_code() {
    require_root();
    assert!(
        !Path::new("/proc/kcore").exists() && !Path::new("/dev/mem").exists(),
        "this suite expects a host without /proc/kcore and /dev/mem (a container); the VM test captures a real kernel"
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("evidence");
    let refuse = |cmd: &mut Command, code: i32, says: &str| {
        let run = Run::of(cmd.env("AWS_EC2_METADATA_DISABLED", "true"));
        run.expect_code(code);
        assert!(run.stderr.contains(says), "exit {code}: {}", run.stderr);
        assert_eq!(files_in(&out), Vec::<String>::new(), "nothing written");
    };
    let plain = || {
        let mut cmd = collector();
        cmd.args(["acquire", "memory://", "--out"]).arg(&out);
        cmd
    };
    refuse(
        &mut plain(),
        10,
        "/proc/kcore: absent; /dev/crash: absent; /dev/mem: absent",
    );

    let mut as_nobody = Command::new("setpriv");
    as_nobody.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    let inner = plain();
    as_nobody.arg(inner.get_program()).args(inner.get_args());
    refuse(&mut as_nobody, 11, "CAP_SYS_RAWIO");

    let mut no_rawio = Command::new("setpriv");
    no_rawio
        .args(["--bounding-set", "-sys_rawio"])
        .arg(inner.get_program())
        .args(inner.get_args());
    refuse(&mut no_rawio, 11, "CAP_SYS_RAWIO");

    // Lockdown, as the kernel reports it: a securityfs file stood in by a tmpfs in the namespace.
    let mut locked = FakeHost::new(&RAM, &ALL);
    locked.before_run("mount -t tmpfs lockdown /sys/kernel/security");
    locked.before_run("echo 'none integrity [confidentiality]' > /sys/kernel/security/lockdown");
    refuse(
        &mut locked.wrap(&plain()),
        15,
        "lockdown is `confidentiality`",
    );

    // A kcore that is not one, and nothing else: readers exist, none reads.
    let broken = FakeHost::new(&RAM, &ALL);
    fs::write(broken.proc().join("kcore"), vec![0u8; 4096]).unwrap();
    refuse(&mut broken.wrap(&plain()), 12, "not an ELF core file");

    let mut unknown = collector();
    unknown
        .args(["acquire", "memory://kmem", "--out"])
        .arg(&out);
    refuse(&mut unknown, 2, "must be kcore, crash or mem");
}

/// The token of the one message `queue` holds (the waiting state's), within 30 s.
fn token_from(flow: &collector_e2e::Flow, queue: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = flow
            .runtime
            .block_on(
                flow.sqs
                    .receive_message()
                    .queue_url(queue)
                    .wait_time_seconds(1)
                    .send(),
            )
            .expect("ReceiveMessage");
        if let Some(message) = out.messages().first() {
            let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
            return body["token"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the waiting state sent no token");
    }
}

// Issue 22: `--task-token` answers the waiting state itself — success with the manifest's URL and
// SHA-256 when evidence was stored, failure named after the exit when it was refused.
#[test]
fn a_task_token_is_answered_with_the_evidence_or_the_refusal() {
    require_root();
    let local = LocalS3::with_bucket("evidence", false);
    let flow = collector_e2e::Flow::on(&local.server);
    let queue = flow.queue("memory-tokens");
    let definition = serde_json::json!({
        "StartAt": "Memory",
        "States": {"Memory": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 120, "End": true}}
    })
    .to_string();
    let machine = flow.state_machine("memory-step", &definition);
    let capture = |token: &str, name: &str| {
        let mut cmd = s3_capture(&local, "IR-24");
        cmd.args(["--name", name, "--task-token", token])
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    };

    let host = FakeHost::new(&RAM, &ALL);
    let execution = flow.start(&machine, &serde_json::json!({}));
    let token = token_from(&flow, &queue);
    Run::of(&mut host.wrap(&capture(&token, "answered"))).expect_code(0);
    let outcome = flow.wait(&execution, Duration::from_secs(60));
    assert_eq!(outcome.status.as_str(), "SUCCEEDED", "{outcome:?}");
    assert_eq!(
        outcome.output["manifest_url"],
        "s3://evidence/cases/IR-24/memory_evidence/answered.manifest.json"
    );
    let image = local.get_http("evidence", "cases/IR-24/memory_evidence/answered.mem.lime");
    assert_eq!(
        outcome.output["image_sha256"],
        collector_e2e::sha256_hex(&image)
    );

    let mut locked = FakeHost::new(&RAM, &ALL);
    locked.before_run("mount -t tmpfs lockdown /sys/kernel/security");
    locked.before_run("echo 'none integrity [confidentiality]' > /sys/kernel/security/lockdown");
    let execution = flow.start(&machine, &serde_json::json!({}));
    let token = token_from(&flow, &queue);
    Run::of(&mut locked.wrap(&capture(&token, "refused"))).expect_code(15);
    let outcome = flow.wait(&execution, Duration::from_secs(60));
    assert_eq!(outcome.status.as_str(), "FAILED", "{outcome:?}");
    assert_eq!(
        outcome.error.as_deref(),
        Some("ForensicCollector.KernelLockdown")
    );
    assert!(
        outcome
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("exit 15"),
        "{outcome:?}"
    );
}
