//! `forensic-collector config check`, the real binary against a real IMDSv2 stand-in on loopback:
//! each user-data format yields the job with its provenance, the environment beats user data, file
//! values say which file, bad input exits 5, an unreachable IMDS exits 6 within seconds, and the
//! token flow is used.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use collector_e2e::{
    ImdsServer, Run, SilentListener, collector, refused_endpoint, without_inherited_settings,
};
use serde_json::Value;

const VOLUME: &str = "vol-0123456789abcdef0";
const INSTANCE: &str = "i-0fedcba9876543210";

/// An unreachable IMDS must be reported within this (the agent allows ~4 s per request).
const IMDS_FAILURE_DEADLINE: Duration = Duration::from_secs(12);

/// `config check --json` with a clean environment: no legacy or FORENSIC_COLLECTOR_* variables
/// from the caller, IMDS at `endpoint`, and `--config FILE` (an empty file unless given).
fn check(endpoint: &str, config: &Path) -> Command {
    let mut cmd = check_human(endpoint, config);
    cmd.arg("--json");
    cmd
}

/// `config check` without `--json`, otherwise as `check`.
fn check_human(endpoint: &str, config: &Path) -> Command {
    let mut cmd = collector();
    without_inherited_settings(&mut cmd);
    cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
        .args(["config", "check", "--config"])
        .arg(config);
    cmd
}

fn empty_config() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("config file")
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "config check printed no JSON ({e}):\n{}\n{}",
            run.stdout, run.stderr
        )
    })
}

/// `(value, source)` of `key` in `config check --json` output.
fn setting(out: &Value, key: &str) -> (Value, String) {
    let entry = &out["settings"][key];
    assert!(entry.is_object(), "{key} missing from {out:#}");
    (
        entry["value"].clone(),
        entry["source"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Runs `config check` against user data `data`; asserts the job keys came from it in `format`.
fn assert_user_data_job(data: &str, format: &str) {
    let imds = ImdsServer::start(Some(data.as_bytes()), INSTANCE);
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(0);
    let out = json(&run);
    let from = format!("user data ({format})");
    assert_eq!(
        setting(&out, "job.bucket"),
        (Value::from("my-evidence-bucket"), from.clone())
    );
    assert_eq!(
        setting(&out, "job.incident_id"),
        (Value::from("IR-2026-0042"), from.clone())
    );
    assert_eq!(
        setting(&out, "job.source_volume_id"),
        (Value::from(VOLUME), from.clone())
    );
    assert_eq!(setting(&out, "watch.settle_ms").1, "default");
    assert_eq!(out["sources"]["user_data"], format);
    assert_eq!(out["sources"]["instance"], INSTANCE);
    assert_eq!(out["job_ready"], true);
}

#[test]
fn toml_user_data_gives_the_job_with_its_provenance() {
    assert_user_data_job(
        &format!(
            "[job]\nbucket = \"my-evidence-bucket\"\nincident_id = \"IR-2026-0042\"\nsource_volume_id = \"{VOLUME}\"\n"
        ),
        "toml",
    );
}

#[test]
fn json_user_data_gives_the_job_with_its_provenance() {
    assert_user_data_job(
        &format!(
            r#"{{"job": {{"bucket": "my-evidence-bucket", "incident_id": "IR-2026-0042", "source_volume_id": "{VOLUME}"}}}}"#
        ),
        "json",
    );
}

#[test]
fn the_original_flows_shell_script_gives_the_job_without_running_it() {
    let marker = tempfile::tempdir()
        .expect("temp dir")
        .path()
        .join("was-run");
    let script = format!(
        "#!/bin/bash\n\
         touch {marker}\n\
         echo \"DESTINATION_BUCKET=my-evidence-bucket\" >> /etc/environment\n\
         echo \"IMAGE_NAME={VOLUME}\" >> /etc/environment\n\
         echo \"INCIDENT_ID=IR-2026-0042\" >> /etc/environment\n",
        marker = marker.display()
    );
    assert_user_data_job(&script, "shell");
    assert!(!marker.exists(), "user data was executed");
}

#[test]
fn the_environment_beats_user_data() {
    let imds = ImdsServer::start(
        Some(b"bucket = \"user-data-bucket\"\nincident_id = \"IR-ud\"\n"),
        INSTANCE,
    );
    let config = empty_config();
    let run = Run::of(
        check(&imds.endpoint(), config.path())
            .env("DESTINATION_BUCKET", "env-bucket")
            .env("FORENSIC_COLLECTOR_JOB_INCIDENT_ID", "IR-env"),
    );
    run.expect_code(0);
    let out = json(&run);
    assert_eq!(
        setting(&out, "job.bucket"),
        (
            Value::from("env-bucket"),
            "env DESTINATION_BUCKET".to_owned()
        )
    );
    assert_eq!(
        setting(&out, "job.incident_id"),
        (
            Value::from("IR-env"),
            "env FORENSIC_COLLECTOR_JOB_INCIDENT_ID".to_owned()
        )
    );
}

#[test]
fn explicit_config_file_values_name_the_file_and_user_data_overrides_them() {
    let imds = ImdsServer::start(Some(b"{\"bucket\": \"user-data-bucket\"}"), INSTANCE);
    let config = empty_config();
    std::fs::write(
        config.path(),
        "[job]\nbucket = \"file-bucket\"\nincident_id = \"IR-file\"\nprefix = \"forensics\"\n[watch]\nsettle_ms = 750\n",
    )
    .expect("write config");
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(0);
    let out = json(&run);
    let file = format!("file {}", config.path().display());
    assert_eq!(
        setting(&out, "job.prefix"),
        (Value::from("forensics"), file.clone())
    );
    assert_eq!(
        setting(&out, "job.incident_id"),
        (Value::from("IR-file"), file.clone())
    );
    assert_eq!(setting(&out, "watch.settle_ms"), (Value::from(750), file));
    assert_eq!(
        setting(&out, "job.bucket"),
        (
            Value::from("user-data-bucket"),
            "user data (json)".to_owned()
        )
    );
}

#[test]
fn human_output_is_a_config_file_with_provenance_comments() {
    let imds = ImdsServer::start(
        Some(b"bucket = \"bkt\"\nincident_id = \"IR-1\"\n"),
        INSTANCE,
    );
    let config = empty_config();
    let run = Run::of(&mut check_human(&imds.endpoint(), config.path()));
    run.expect_code(0);
    assert!(run.stdout.contains("# user data: toml"), "{}", run.stdout);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("bucket = "))
        .expect("bucket line");
    assert!(line.ends_with("# user data (toml)"), "{line}");
    // Fed back as the config file, every key now comes from that file.
    let saved = empty_config();
    std::fs::write(saved.path(), &run.stdout).expect("save output");
    let again =
        Run::of(check(&imds.endpoint(), saved.path()).env("AWS_EC2_METADATA_DISABLED", "true"));
    again.expect_code(0);
    let out = json(&again);
    let file = format!("file {}", saved.path().display());
    let settings = out["settings"].as_object().expect("settings");
    assert!(settings.len() > 20, "{out:#}");
    for (key, entry) in settings {
        assert_eq!(entry["source"], file.as_str(), "{key}");
    }
    assert_eq!(setting(&out, "job.bucket").0, "bkt");
}

#[test]
fn malformed_user_data_exits_5_naming_the_accepted_formats() {
    let imds = ImdsServer::start(Some(b"#!/bin/bash\nyum -y install something\n"), INSTANCE);
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(5);
    assert!(run.stderr.contains("malformed user data"), "{}", run.stderr);
    assert!(run.stderr.contains("DESTINATION_BUCKET"), "{}", run.stderr);
}

#[test]
fn an_invalid_value_in_user_data_exits_5_naming_key_and_source() {
    let imds = ImdsServer::start(
        Some(br#"{"bucket": "Not_A_Bucket", "incident_id": "IR-1"}"#),
        INSTANCE,
    );
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(5);
    assert!(
        run.stderr.contains("job.bucket from user data (json)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_typo_in_the_config_file_exits_5_naming_key_and_file() {
    let config = empty_config();
    std::fs::write(config.path(), "[watch]\non_complete = \"poweroof\"\n").expect("write config");
    let run = Run::of(
        check("http://127.0.0.1:9", config.path()).env("AWS_EC2_METADATA_DISABLED", "true"),
    );
    run.expect_code(5);
    let expected = format!("watch.on_complete from file {}", config.path().display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
}

#[test]
fn no_user_data_and_no_job_elsewhere_exits_6_unless_allowed() {
    let imds = ImdsServer::start(None, INSTANCE);
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(6);
    assert!(run.stderr.contains("no job context"), "{}", run.stderr);
    assert!(run.stderr.contains("job.bucket"), "{}", run.stderr);
    let run = Run::of(check(&imds.endpoint(), config.path()).arg("--allow-missing-job"));
    run.expect_code(0);
    let out = json(&run);
    assert_eq!(out["sources"]["user_data"], "none");
    assert_eq!(out["job_ready"], false);
}

#[test]
fn absent_imds_exits_6_within_seconds() {
    let config = empty_config();
    let started = Instant::now();
    let run = Run::of(&mut check(&refused_endpoint(), config.path()));
    let took = started.elapsed();
    run.expect_code(6);
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    assert!(took < IMDS_FAILURE_DEADLINE, "took {took:?}");
}

// Issue 19: the instance ID IMDS gives is recorded in every manifest; one that is no EC2 instance
// ID (here with a newline that would have reached the manifest) is refused by the rule
// `acquire --instance-id` follows, as an answer asking again would not change (exit 6).
#[test]
fn an_imds_instance_id_that_is_not_one_is_refused() {
    let imds = ImdsServer::start(
        Some(b"bucket = \"bkt\"\nincident_id = \"IR-1\"\n"),
        "i-0123456789abcdef0\nforged: yes",
    );
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(6);
    assert!(
        run.stderr.contains("is not an EC2 instance ID"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_imds_that_accepts_but_never_answers_exits_6_within_seconds() {
    // The kernel completes the handshake into the backlog; nobody ever reads or replies.
    let listener = SilentListener::start();
    let config = empty_config();
    let started = Instant::now();
    let run = Run::of(&mut check(&listener.endpoint(), config.path()));
    let took = started.elapsed();
    run.expect_code(6);
    assert!(took < IMDS_FAILURE_DEADLINE, "took {took:?}");
    drop(listener);
}

#[test]
fn user_data_is_read_with_an_imdsv2_token() {
    let imds = ImdsServer::start(
        Some(b"bucket = \"bkt\"\nincident_id = \"IR-1\"\n"),
        INSTANCE,
    );
    let config = empty_config();
    Run::of(&mut check(&imds.endpoint(), config.path())).expect_code(0);
    let requests = imds.requests();
    let first = requests.first().expect("IMDS was asked");
    assert_eq!(first["method"], "PUT", "{requests:#?}");
    assert_eq!(first["path"], "/latest/api/token");
    assert!(
        first["token_ttl"]
            .as_str()
            .is_some_and(|t| t.parse::<u32>().is_ok())
    );
    let gets: Vec<&Value> = requests.iter().filter(|r| r["method"] == "GET").collect();
    assert!(
        gets.iter()
            .any(|r| r["path"] == "/latest/user-data" && r["status"] == 200),
        "{requests:#?}"
    );
    assert!(
        gets.iter().all(|r| r["token"] == "valid"),
        "every GET carries the session token: {requests:#?}"
    );
}

#[test]
fn imds_disabled_by_the_environment_is_not_asked() {
    let imds = ImdsServer::start(Some(b"bucket = \"bkt\"\n"), INSTANCE);
    let config = empty_config();
    let run = Run::of(
        check(&imds.endpoint(), config.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DESTINATION_BUCKET", "env-bucket")
            .env("INCIDENT_ID", "IR-2"),
    );
    run.expect_code(0);
    assert!(imds.requests().is_empty(), "{:#?}", imds.requests());
    let out = json(&run);
    assert_eq!(
        out["sources"]["user_data"],
        "not read (AWS_EC2_METADATA_DISABLED=true)"
    );
}

// Issue 10: the original flow's IMAGE_NAME is a name. One that is no EBS volume ID must not stop
// the daemon (it used to exit 5 before its readiness message); config check says it was ignored.
#[test]
fn an_image_name_that_is_no_volume_id_is_ignored_and_listed() {
    let data = "#!/bin/bash\n\
         echo \"DESTINATION_BUCKET=my-evidence-bucket\" >> /etc/environment\n\
         echo \"IMAGE_NAME=web-01-root\" >> /etc/environment\n\
         echo \"INCIDENT_ID=IR-2026-0042\" >> /etc/environment\n";
    let imds = ImdsServer::start(Some(data.as_bytes()), INSTANCE);
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(0);
    let out = json(&run);
    assert!(out["settings"]["job.source_volume_id"].is_null(), "{out:#}");
    let ignored = out["sources"]["ignored"].as_str().unwrap_or_default();
    assert!(
        ignored.contains("IMAGE_NAME=\"web-01-root\" from user data (shell)")
            && ignored.contains("not an EBS volume ID"),
        "{out:#}"
    );
    let run = Run::of(&mut check_human(&imds.endpoint(), config.path()));
    run.expect_code(0);
    assert!(
        run.stdout.contains("# ignored: IMAGE_NAME=\"web-01-root\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("not an EBS volume ID"),
        "{}",
        run.stderr
    );
}

// Issue 11 review: whether to ask IMDS and how long to wait are decided before user data is read.
// User data setting them is listed as ignored, and `config check` shows the values used, not its.
#[test]
fn user_data_cannot_set_the_imds_wait_or_switch_imds_off() {
    let data = "{\"bucket\": \"evidence\", \"incident_id\": \"IR-9\", \
                \"imds_wait_secs\": 5, \"use_imds\": false}";
    let imds = ImdsServer::start(Some(data.as_bytes()), INSTANCE);
    let config = empty_config();
    let run = Run::of(&mut check(&imds.endpoint(), config.path()));
    run.expect_code(0);
    let out = json(&run);
    assert_eq!(
        setting(&out, "job.imds_wait_secs"),
        (Value::from(120), "default".to_owned())
    );
    assert_eq!(
        setting(&out, "job.use_imds"),
        (Value::from(true), "default".to_owned())
    );
    assert_eq!(setting(&out, "job.bucket").1, "user data (json)");
    let ignored = out["sources"]["ignored"].as_str().unwrap_or_default();
    for key in ["job.imds_wait_secs=\"5\"", "job.use_imds=\"false\""] {
        assert!(ignored.contains(key), "{key} not in {ignored:?}");
    }
    assert!(
        ignored.contains("decided before user data is read"),
        "{ignored:?}"
    );
}
