//! The shipped flow (`flow/statemachine.asl.json`) executed by moto's Step Functions with the real
//! collector: `flow/tests/moto_flow.py setup` creates what the stack would (bucket, job queue,
//! topic, log groups, launch template, the state machine with its substitutions) and a suspect
//! instance whose two volumes were restored from snapshots of known bytes. The test starts the
//! execution from the original flow's sample Security Hub finding, plays EC2's part of booting each
//! collector the execution launched (its user data from RunInstances, served by the IMDSv2
//! stand-in, to a real `forensic-collector watch`), and checks what the execution and the bucket
//! end with. The failure paths with a fake collector are `flow/tests/moto_flow.py run`'s.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use base64::Engine;
use collector_e2e::cwlogs::LogsReader;
use collector_e2e::{FaultProxy, Flow, ImdsServer, MotoServer, Run, repo_root, require_root};
use serde_json::{Value, json};

/// The flow's substitutions the tests change: collectors beat every second and go idle fast.
const FAST: [&str; 3] = [
    "CollectorHeartbeatSeconds=1",
    "QueueIdleSeconds=5",
    "HeartbeatSeconds=20",
];

/// `moto_flow.py setup` against `moto`: the resources, the state machine and the suspect.
fn setup(moto: &MotoServer) -> Value {
    let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(repo_root().join("flow/tests/moto_flow.py")).args([
        "setup",
        "--port",
        &moto.port().to_string(),
    ]);
    for sub in FAST {
        cmd.args(["--sub", sub]);
    }
    let out = cmd
        .output()
        .expect("run flow/tests/moto_flow.py (tests/helpers/setup-deps.sh installs its needs)");
    assert!(
        out.status.success(),
        "setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("setup prints JSON")
}

/// moto executing state machines, with what `setup` made there.
fn deployed() -> (MotoServer, Flow, Value) {
    let moto = MotoServer::start();
    let flow = Flow::on(&moto);
    let setup = setup(&moto);
    (moto, flow, setup)
}

/// The sample finding for the suspect `instance`.
fn finding(instance: &str) -> Value {
    let text = fs::read_to_string(repo_root().join("flow/tests/sample-finding.json")).unwrap();
    serde_json::from_str(&text.replace("${INSTANCE_ID}", instance)).unwrap()
}

/// The collectors the execution launched: instance ID → the user data RunInstances got.
fn launched(flow: &Flow, execution: &str, count: usize) -> BTreeMap<String, Vec<u8>> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("tag:forensic-execution")
        .values(execution)
        .build();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = flow
            .runtime
            .block_on(flow.ec2.describe_instances().filters(filter.clone()).send())
            .expect("DescribeInstances");
        let ids: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if ids.len() >= count {
            return ids
                .into_iter()
                .map(|id| {
                    let data = user_data(flow, &id);
                    (id, data)
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the execution launched {ids:?}, not {count} collectors"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn user_data(flow: &Flow, instance: &str) -> Vec<u8> {
    let out = flow
        .runtime
        .block_on(
            flow.ec2
                .describe_instance_attribute()
                .instance_id(instance)
                .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
                .send(),
        )
        .expect("DescribeInstanceAttribute");
    let encoded = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64 user data")
}

/// A collector booted with `data` as `instance`, its EBS calls through `ebs` when given.
struct Collector {
    child: Child,
    _imds: ImdsServer,
}

fn boot(
    moto: &MotoServer,
    dir: &Path,
    instance: &str,
    data: &[u8],
    ebs: Option<&str>,
) -> Collector {
    let imds = ImdsServer::start(Some(data), instance);
    let config = dir.join(format!("{instance}.toml"));
    fs::write(
        &config,
        format!(
            "[watch]\npoweroff_command = [\"touch\", {:?}]\n[s3]\nforce_path_style = true\n\
             [cloudwatch]\nflush_timeout_secs = 5\n",
            dir.join(format!("{instance}.off"))
        ),
    )
    .unwrap();
    let mut cmd = moto.watch(&imds, &config);
    if let Some(endpoint) = ebs {
        cmd.env("AWS_ENDPOINT_URL_EBS", endpoint);
    }
    Collector {
        child: Run::spawn(&mut cmd),
        _imds: imds,
    }
}

fn verify(moto: &MotoServer, manifest: &str) {
    Run::of(
        moto.collector()
            .args(["verify", manifest, "--s3-force-path-style"]),
    )
    .expect_code(0);
}

/// The audit records of `execution` (its stream in the audit log group), parsed.
fn audit(moto: &MotoServer, execution: &str) -> Vec<Value> {
    let stream = execution.rsplit(':').next().unwrap_or_default();
    LogsReader::new(&moto.endpoint())
        .events("/forensic-collector/audit", stream)
        .into_iter()
        .filter_map(|(_, m)| serde_json::from_str(&m).ok())
        .collect()
}

/// Waits for every collector to go idle and power off (the configured command), exiting with
/// `code`: its worst job's exit code, as the daemon's.
fn wait_powered_off(collectors: Vec<Collector>, code: i32) {
    for (n, collector) in collectors.into_iter().enumerate() {
        let run = Run::wait(collector.child);
        run.expect_code(code);
        assert!(
            run.stderr.contains("Powering off"),
            "collector {n}: {}",
            run.stderr
        );
    }
}

/// The states of the instances tagged with the execution.
fn instance_states(flow: &Flow, execution: &str) -> Vec<String> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("tag:forensic-execution")
        .values(execution)
        .build();
    let out = flow
        .runtime
        .block_on(flow.ec2.describe_instances().filters(filter).send())
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
        })
        .collect()
}

// Issue 21, done when: the original flow's sample finding yields verified evidence of every volume
// of the instance through the real collector binary.
#[test]
fn the_sample_finding_yields_verified_evidence_of_every_volume_through_the_real_collector() {
    require_root();
    let (moto, flow, setup) = deployed();
    let suspect = &setup["suspect"];
    let instance = suspect["instance_id"].as_str().unwrap();
    let execution = flow.start(
        setup["state_machine_arn"].as_str().unwrap(),
        &finding(instance),
    );

    let work = tempfile::tempdir().unwrap();
    // moto launches RunInstances' MinCount (1) where EC2 launches up to MaxCount (2): one collector
    // takes both jobs in turn.
    let collectors: Vec<Collector> = launched(&flow, &execution, 1)
        .iter()
        .map(|(id, data)| boot(&moto, work.path(), id, data, None))
        .collect();
    let outcome = flow.wait(&execution, Duration::from_secs(180));
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");

    let volumes = outcome.output["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let expected = suspect["volumes"].as_object().unwrap();
    assert_eq!(volumes.len(), expected.len(), "{}", outcome.output);
    for volume in &volumes {
        let id = volume["volume_id"].as_str().unwrap();
        assert_eq!(volume["outcome"], "completed", "{volume}");
        assert_eq!(
            volume["image_sha256"], expected[id]["image_sha256"],
            "{id}: the suspect's bytes"
        );
        let manifest = volume["manifest_url"].as_str().unwrap();
        assert!(
            manifest.starts_with("s3://forensic-evidence-flow/evidence/gd-"),
            "{manifest}"
        );
        assert!(
            manifest.ends_with(&format!("/disk_evidence/{id}.manifest.json")),
            "{manifest}"
        );
        verify(&moto, manifest);
    }
    let records = audit(&moto, &execution);
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["status"], "completed", "{record}");
        assert!(
            record["finding"]["type"]
                .as_str()
                .unwrap_or_default()
                .contains("UnauthorizedAccess:EC2-TorClient"),
            "{record}"
        );
        assert!(
            record["manifest_url"]
                .as_str()
                .is_some_and(|m| m.ends_with(".manifest.json")),
            "{record}"
        );
    }
    let states = instance_states(&flow, &execution);
    assert!(
        !states.is_empty() && states.iter().all(|s| s == "terminated"),
        "the flow terminates its collectors: {states:?}"
    );
    wait_powered_off(collectors, 0);
}

// Issue 21: a job that fails — the real collector's SendTaskFailure (its exit name) fails that Map
// item only: the failure is in the output, an audit record and the failure topic, and the other
// volume is still captured and verifies.
#[test]
fn a_failed_job_fails_its_volume_only_with_a_notice_and_an_audit_record() {
    require_root();
    let (moto, flow, setup) = deployed();
    let suspect = &setup["suspect"];
    let instance = suspect["instance_id"].as_str().unwrap();
    let execution = flow.start(
        setup["state_machine_arn"].as_str().unwrap(),
        &json!({"incident_id": "IR-21-F", "account": "123456789012", "region": "us-east-1",
            "instance_id": instance, "examiner": "e2e"}),
    );
    let work = tempfile::tempdir().unwrap();
    // The collector's first job reads every block of its snapshot corrupt (it fails, exit 14); its
    // second reads true. (moto launches one collector: RunInstances' MinCount.)
    let proxy = FaultProxy::start(&moto, &["--ebs-corrupt-first-snapshot"]);
    let collectors: Vec<Collector> = launched(&flow, &execution, 1)
        .iter()
        .map(|(id, data)| boot(&moto, work.path(), id, data, Some(&proxy.endpoint())))
        .collect();
    let outcome = flow.wait(&execution, Duration::from_secs(180));
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{outcome:?}");

    let volumes = outcome.output["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let failed: Vec<&Value> = volumes
        .iter()
        .filter(|v| v.get("error").is_some())
        .collect();
    let captured: Vec<&Value> = volumes
        .iter()
        .filter(|v| v.get("manifest_url").is_some())
        .collect();
    assert_eq!((failed.len(), captured.len()), (1, 1), "{}", outcome.output);
    assert_eq!(
        failed[0]["error"], "ForensicCollector.SourceRead",
        "{}",
        failed[0]
    );
    verify(&moto, captured[0]["manifest_url"].as_str().unwrap());
    let records = audit(&moto, &execution);
    let statuses: Vec<&str> = records
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        statuses.contains(&"failed") && statuses.contains(&"completed"),
        "{statuses:?}"
    );
    let notices = flow
        .runtime
        .block_on(
            flow.sqs
                .receive_message()
                .queue_url(setup["failure_notices_queue_url"].as_str().unwrap())
                .max_number_of_messages(10)
                .send(),
        )
        .expect("ReceiveMessage");
    let bodies: Vec<&str> = notices.messages().iter().filter_map(|m| m.body()).collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains(failed[0]["volume_id"].as_str().unwrap())),
        "{bodies:?}"
    );
    // The collector exits with its worst job's code, 14 (the corrupt snapshot).
    wait_powered_off(collectors, 14);
}
