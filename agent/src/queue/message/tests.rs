use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAR0kbgQ+Lr9pXWJ0m1Xq/5mQ==";
const ARN: &str = "arn:aws:states:eu-west-1:123456789012:execution:forensic-flow:run-1";
const SNAP: &str = "snap-0123456789abcdef0";

fn destination() -> S3Url {
    "s3://evidence-bucket/forensics".parse().expect("url")
}

fn job() -> Value {
    json!({
        "type": "forensic-collector.job",
        "version": 1,
        "task_token": TOKEN,
        "execution_arn": ARN,
        "incident_id": "INC-42",
        "evidence_name": "vol-0aaaaaaaaaaaaaaaa",
        "destination": "s3://evidence-bucket/forensics",
        "snapshot_id": SNAP,
        "source_volume_id": "vol-0aaaaaaaaaaaaaaaa",
        "examiner": "J. Doe"
    })
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().expect("object").remove(key);
    value
}

fn refused(value: &Value) -> MessageRefusal {
    parse(&value.to_string(), &destination()).expect_err("refused")
}

#[test]
fn the_flows_snapshot_job_is_read_with_every_field() {
    let job = parse(&job().to_string(), &destination()).expect("valid");
    assert_eq!(job.token, TOKEN);
    assert_eq!(job.execution_arn, ARN);
    assert_eq!(job.incident.as_str(), "INC-42");
    assert_eq!(job.evidence_name.as_str(), "vol-0aaaaaaaaaaaaaaaa");
    assert_eq!(
        job.source,
        QueuedSource::Snapshot(SNAP.parse().expect("id"))
    );
    assert_eq!(
        job.source_volume_id.map(|v| v.to_string()).as_deref(),
        Some("vol-0aaaaaaaaaaaaaaaa")
    );
    assert_eq!(job.examiner.as_deref(), Some("J. Doe"));
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let minimal = without(without(job(), "source_volume_id"), "examiner");
    let job = parse(&minimal.to_string(), &destination()).expect("valid");
    assert_eq!((job.source_volume_id, job.examiner), (None, None));
    let nulls = with(
        with(job_value_null_volume(), "examiner", Value::Null),
        "instance_id",
        Value::Null,
    );
    assert!(parse(&nulls.to_string(), &destination()).is_ok());
}

fn job_value_null_volume() -> Value {
    with(
        with(job(), "source_volume_id", Value::Null),
        "volume_id",
        Value::Null,
    )
}

#[test]
fn a_volume_job_names_the_volume_and_the_collector_it_is_attached_to() {
    let volume = with(
        with(
            without(job(), "snapshot_id"),
            "volume_id",
            json!("vol-0bbbbbbbbbbbbbbbb"),
        ),
        "instance_id",
        json!("i-0123456789abcdef0"),
    );
    let parsed = parse(&volume.to_string(), &destination()).expect("valid");
    assert_eq!(
        parsed.source,
        QueuedSource::Volume {
            volume: "vol-0bbbbbbbbbbbbbbbb".parse().expect("id"),
            instance: "i-0123456789abcdef0".to_owned(),
        }
    );
    let unattached = without(volume.clone(), "instance_id");
    assert!(
        refused(&unattached)
            .reason
            .contains("names the collector it is attached to")
    );
    let both = with(volume, "snapshot_id", json!(SNAP));
    assert!(refused(&both).reason.contains("not both"));
    let neither = without(job_value_null_volume(), "snapshot_id");
    let reason = refused(&neither).reason;
    assert!(
        reason.contains("names a snapshot_id or a volume_id") && !reason.contains("not both"),
        "{reason}"
    );
    let instance_without_volume = with(
        without(job(), "snapshot_id"),
        "instance_id",
        json!("i-0123456789abcdef0"),
    );
    assert!(
        refused(&instance_without_volume)
            .reason
            .contains("names a snapshot_id")
    );
    let bad_instance = with(
        with(
            without(job(), "snapshot_id"),
            "volume_id",
            json!("vol-0bbbbbbbbbbbbbbbb"),
        ),
        "instance_id",
        json!("i-xyz"),
    );
    assert!(refused(&bad_instance).reason.contains("instance_id"));
    let bad_volume = with(
        with(without(job(), "snapshot_id"), "volume_id", json!("vol-zz")),
        "instance_id",
        json!("i-0123456789abcdef0"),
    );
    assert!(refused(&bad_volume).reason.contains("volume_id"));
}

// Each refusal names what is wrong and keeps the token, so the execution learns at once.
#[test]
fn a_job_with_one_bad_field_is_refused_naming_it_and_reported_to_its_token() {
    for (value, why) in [
        (
            with(job(), "type", json!("someone.else")),
            "not a job of ours",
        ),
        (with(job(), "version", json!(2)), "version 2"),
        (
            with(job(), "version", json!("1")),
            "not a forensic-collector job message",
        ),
        (
            with(job(), "execution_arn", json!("arn:aws:s3:::bucket")),
            "execution ARN",
        ),
        (
            with(job(), "execution_arn", json!("execution:states:x")),
            "execution ARN",
        ),
        (
            with(job(), "execution_arn", json!("arn:aws:sqs:r:1:execution:x")),
            "execution ARN",
        ),
        (
            with(job(), "execution_arn", json!("x:states:r:1:execution:m:e")),
            "execution ARN",
        ),
        (
            with(job(), "execution_arn", json!(format!("{ARN}\n"))),
            "execution ARN",
        ),
        (
            with(job(), "destination", json!("s3://other-bucket/forensics")),
            "not this collector's",
        ),
        (
            with(
                job(),
                "destination",
                json!("s3://evidence-bucket/forensics/x"),
            ),
            "not this collector's",
        ),
        (
            with(job(), "destination", json!("https://evidence-bucket")),
            "destination",
        ),
        (with(job(), "incident_id", json!("../etc")), "incident ID"),
        (with(job(), "evidence_name", json!("a/b")), "evidence name"),
        (
            with(job(), "snapshot_id", json!("snap-; rm -rf /")),
            "snapshot_id",
        ),
        (
            with(job(), "source_volume_id", json!("vol-x")),
            "source_volume_id",
        ),
        (with(job(), "examiner", json!("a\u{7}b")), "examiner"),
        (with(job(), "unexpected", json!(1)), "unknown field"),
        (without(job(), "incident_id"), "missing field"),
    ] {
        let refusal = refused(&value);
        assert!(refusal.reason.contains(why), "{why}: {}", refusal.reason);
        assert_eq!(refusal.token.as_deref(), Some(TOKEN), "{why}");
    }
}

#[test]
fn a_duplicated_field_is_refused_not_read_twice() {
    let body = job()
        .to_string()
        .replacen('{', r#"{"incident_id": "OTHER","#, 1);
    assert!(
        parse(&body, &destination())
            .unwrap_err()
            .reason
            .contains("duplicate field")
    );
}

#[test]
fn without_a_readable_token_nothing_is_reported_to_anyone() {
    for body in [
        "not json".to_owned(),
        "[1, 2]".to_owned(),
        json!({"task_token": 5}).to_string(),
        with(job(), "task_token", json!("")).to_string(),
        with(job(), "task_token", json!("two words")).to_string(),
        with(job(), "task_token", json!("t".repeat(2049))).to_string(),
    ] {
        let refusal = parse(&body, &destination()).expect_err(&body);
        assert_eq!(refusal.token, None, "{body}");
    }
    // The strict reader names the token's fault too.
    let refusal = refused(&with(job(), "task_token", json!("t".repeat(2049))));
    assert!(refusal.reason.contains("task token"), "{}", refusal.reason);
}

#[test]
fn the_longest_token_passes_and_a_body_past_the_limit_is_not_parsed() {
    let longest = with(job(), "task_token", json!("t".repeat(2048)));
    assert!(parse(&longest.to_string(), &destination()).is_ok());
    let body = job().to_string();
    let padded = format!("{body}{}", " ".repeat(MAX_BODY_BYTES - body.len()));
    assert!(parse(&padded, &destination()).is_ok(), "exactly the limit");
    let over = format!("{padded} ");
    let refusal = parse(&over, &destination()).expect_err("too large");
    assert!(
        refusal.reason.contains("more than a job's"),
        "{}",
        refusal.reason
    );
    assert_eq!(refusal.token, None, "a body that large is not read at all");
}

proptest! {
    // Whatever arrives, the reader answers without panicking, and a job it accepts is ours.
    #[test]
    fn any_body_is_answered_without_a_panic(body in ".{0,300}") {
        if let Ok(job) = parse(&body, &destination()) {
            prop_assert!(!job.token.is_empty());
        }
    }

    #[test]
    fn any_value_in_any_field_is_answered_without_a_panic(
        key in prop::sample::select(vec!["type", "version", "task_token", "execution_arn", "incident_id",
            "evidence_name", "destination", "snapshot_id", "volume_id", "instance_id", "examiner"]),
        text in ".{0,80}", number in any::<i64>(), pick in 0..3u8,
    ) {
        let field = match pick { 0 => json!(text), 1 => json!(number), _ => Value::Null };
        let _ = parse(&with(job(), key, field).to_string(), &destination());
    }
}
