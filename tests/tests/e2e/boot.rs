//! `forensic-collector watch` at boot: IMDS that answers only after the daemon started, IMDS that
//! never answers, and configurations refused for other reasons — against the IMDSv2 stand-in
//! (down for its first seconds, refusing connections or answering 503) and moto for S3 and
//! CloudWatch Logs. A refused configuration must be reported in `ForensicDiskCapture` and must
//! never send the readiness message the flow attaches volumes on.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use collector_e2e::cwlogs::LogsReader;
use collector_e2e::{Down, ImdsServer, LocalS3, Run, refused_endpoint, require_root};
use serde_json::Value;

const INSTANCE: &str = "i-0b00700b00700b007";
const READY: &str = "incron is running";
const USER_DATA: &[u8] = b"{\"bucket\": \"evidence\", \"incident_id\": \"IR-7\"}";

/// A config file watching an empty disk root, ending after a 2 s idle timeout (exit 10), with
/// `extra` lines appended to its sections (`[job]` first).
fn config_file(dir: &Path, job: &str, cloudwatch: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let root = dir.join("dev-disk");
    fs::write(
        &path,
        format!(
            "[job]\n{job}\n\
             [watch]\ndisk_root = {root:?}\non_complete = \"exit\"\nidle_timeout_secs = 2\n\
             [s3]\nforce_path_style = true\n\
             [cloudwatch]\nreadiness_message = {READY:?}\nflush_timeout_secs = 5\n{cloudwatch}\n"
        ),
    )
    .unwrap();
    path
}

/// `watch --config CONFIG` against moto (S3 and CloudWatch Logs) and IMDS at `imds`.
fn daemon(s3: &LocalS3, imds: &str, config: &Path) -> Command {
    let mut cmd = s3.collector();
    cmd.env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
        .env_remove("FORENSIC_COLLECTOR_CONFIG")
        .args(["watch", "--config"])
        .arg(config);
    cmd
}

/// The JSON events of `ForensicDiskCapture`/`stream`.
fn capture_events(logs: &LogsReader, stream: &str) -> Vec<Value> {
    logs.events("ForensicDiskCapture", stream)
        .into_iter()
        .filter_map(|(_, message)| serde_json::from_str(&message).ok())
        .collect()
}

/// The one `config_refused` event of `stream`, after checking that nothing said ready.
fn the_refusal(logs: &LogsReader, stream: &str) -> Value {
    let events = capture_events(logs, stream);
    let refusals: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "config_refused")
        .collect();
    assert_eq!(refusals.len(), 1, "one refusal in {events:?}");
    assert!(
        events.iter().all(|e| e["event"] != "agent_ready"),
        "{events:?}"
    );
    assert!(
        logs.events("ForensicDiskReadiness", stream).is_empty(),
        "a refused configuration sent the readiness message"
    );
    refusals[0].clone()
}

#[test]
fn a_daemon_started_before_imds_is_up_becomes_ready_once_it_answers() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    for how in [Down::Refusing, Down::Answering503] {
        let work = tempfile::tempdir().unwrap();
        let config = config_file(work.path(), "imds_wait_secs = 30", "");
        let down_for = Duration::from_secs(3);
        let imds = ImdsServer::start_after(Some(USER_DATA), INSTANCE, down_for, how);
        let started = Instant::now();
        let run = Run::of(&mut daemon(&s3, &imds.endpoint(), &config));
        // Idle timeout with no disk: the daemon was armed and ready, then ended as configured.
        run.expect_code(10);
        let took = started.elapsed();
        assert!(took >= down_for, "{how:?}: done in {took:?}");
        assert!(took < Duration::from_secs(25), "{how:?}: took {took:?}");
        assert_eq!(
            run.stderr.matches("IMDS does not answer yet").count(),
            1,
            "one warning, not one per retry: {}",
            run.stderr
        );
        assert!(run.stderr.contains("IMDS answered"), "{}", run.stderr);
        let statuses: Vec<i64> = imds
            .requests()
            .iter()
            .filter_map(|r| r["status"].as_i64())
            .collect();
        match how {
            Down::Refusing => assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}"),
            Down::Answering503 => assert!(statuses.contains(&503), "{statuses:?}"),
        }
        assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    }
    // Both runs reported to the instance's stream: ready twice, never refused.
    let ready = logs.wait_for(
        "ForensicDiskReadiness",
        INSTANCE,
        Duration::from_secs(20),
        |events| events.len() >= 2,
    );
    assert!(ready.iter().all(|(_, m)| m == READY), "{ready:?}");
    let events = capture_events(&logs, INSTANCE);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "agent_ready").count(),
        2,
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"config_refused"), "{kinds:?}");
}

#[test]
fn with_imds_never_up_watch_refuses_within_its_wait_and_reports_why() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let config = config_file(work.path(), "", "");
    let mut cmd = daemon(&s3, &refused_endpoint(), &config);
    // Set by the environment, as the sources before user data decide the wait.
    cmd.env("FORENSIC_COLLECTOR_JOB_IMDS_WAIT_SECS", "3");
    let started = Instant::now();
    let run = Run::of(&mut cmd);
    let took = started.elapsed();
    run.expect_code(6);
    assert!(took >= Duration::from_secs(3), "gave up after {took:?}");
    // The wait, one last fetch (refused at once) and the refusal's flush (5 s at most).
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert!(
        run.stderr.contains("IMDS does not answer yet"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Refusal reported"), "{}", run.stderr);

    // IMDS never gave an instance ID: the stream is the host name, as for the daemon's reports.
    let stream = forensic_collector::sysinfo::hostname();
    let refusal = the_refusal(&logs, &stream);
    assert_eq!(refusal["exit_code"], 6);
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("unreachable"), "{reason}");
    assert!(reason.contains("attempts"), "{reason}");
    assert!(refusal["version"].is_string(), "{refusal}");
}

#[test]
fn a_configuration_refused_for_another_reason_is_reported_and_never_ready() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();

    // No incident anywhere: IMDS answered (so the stream is the instance ID), the job is missing.
    let imds = ImdsServer::start(Some(b"{\"bucket\": \"evidence\"}"), INSTANCE);
    let config = config_file(work.path(), "", "");
    let run = Run::of(&mut daemon(&s3, &imds.endpoint(), &config));
    run.expect_code(6);
    let refusal = the_refusal(&logs, INSTANCE);
    assert_eq!(refusal["exit_code"], 6);
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("job.incident_id"), "{reason}");

    // A bad value in the very setting that names the capture group: the refusal still goes to
    // the built-in group, and the bad value is the reason.
    let other = "i-0c00700c00700c007";
    let imds = ImdsServer::start(Some(USER_DATA), other);
    let config = config_file(work.path(), "", "capture_group = \"Forensic Capture\"");
    let run = Run::of(&mut daemon(&s3, &imds.endpoint(), &config));
    run.expect_code(5);
    let refusal = the_refusal(&logs, other);
    assert_eq!(refusal["exit_code"], 5);
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cloudwatch.capture_group"), "{reason}");
}

#[test]
fn imds_turned_off_is_refused_at_once_not_waited_for() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let imds = ImdsServer::turned_off();
    let config = config_file(work.path(), "imds_wait_secs = 60", "");
    let started = Instant::now();
    let run = Run::of(&mut daemon(&s3, &imds.endpoint(), &config));
    let took = started.elapsed();
    run.expect_code(6);
    // 403 will not change by waiting: no retry (the refusal's flush is all the time spent).
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        !run.stderr.contains("IMDS does not answer yet"),
        "{}",
        run.stderr
    );
    let puts = imds
        .requests()
        .iter()
        .filter(|r| r["method"] == "PUT")
        .count();
    assert_eq!(puts, 1, "one token request, no retry");
    let refusal = the_refusal(&logs, &forensic_collector::sysinfo::hostname());
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("403"), "{reason}");
}

// Issue 11 review: no user data (404) is an answer, not an IMDS that is down. Were it retried,
// every other test would still pass while the daemon waited out its whole bound at each boot.
#[test]
fn no_user_data_is_not_waited_for() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let instance = "i-0d00700d00700d007";
    let imds = ImdsServer::start(None, instance);
    // The job is complete in the file, so the daemon needs nothing from user data.
    let job = "bucket = \"evidence\"\nincident_id = \"IR-8\"\nimds_wait_secs = 60";
    let config = config_file(work.path(), job, "");
    let started = Instant::now();
    let run = Run::of(&mut daemon(&s3, &imds.endpoint(), &config));
    let took = started.elapsed();
    // Ready, then the 2 s idle timeout with no disk: far inside the 60 s wait.
    run.expect_code(10);
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(
        !run.stderr.contains("IMDS does not answer yet"),
        "{}",
        run.stderr
    );
    let requests = imds.requests();
    let user_data: Vec<i64> = requests
        .iter()
        .filter(|r| r["path"] == "/latest/user-data")
        .filter_map(|r| r["status"].as_i64())
        .collect();
    assert_eq!(user_data, [404], "asked once, answered 404: {requests:?}");
    let ready = logs.wait_for(
        "ForensicDiskReadiness",
        instance,
        Duration::from_secs(15),
        |events| !events.is_empty(),
    );
    assert!(ready.iter().all(|(_, m)| m == READY), "{ready:?}");
}

// Issue 11 review: a malformed endpoint was retried as if IMDS were down, for the whole wait. It
// is a bad setting: refused at once with exit 5, naming the variable, and reported.
#[test]
fn a_malformed_imds_endpoint_is_refused_at_once_as_a_bad_setting() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let config = config_file(work.path(), "imds_wait_secs = 60", "");
    let started = Instant::now();
    let run = Run::of(&mut daemon(&s3, "not a url", &config));
    let took = started.elapsed();
    run.expect_code(5);
    // No wait: the refusal's flush (5 s at most) is all the time spent.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(
        !run.stderr.contains("IMDS does not answer yet"),
        "{}",
        run.stderr
    );
    let refusal = the_refusal(&logs, &forensic_collector::sysinfo::hostname());
    assert_eq!(refusal["exit_code"], 5);
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("AWS_EC2_METADATA_SERVICE_ENDPOINT=\"not a url\""),
        "{reason}"
    );
}
