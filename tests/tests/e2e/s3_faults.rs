//! S3 under faults, through a loopback proxy that answers 500 or resets the connection for chosen
//! UploadPart requests: transient faults are retried and the object still verifies; an exhausted
//! retry budget aborts the upload and leaves no object, no manifest and no open multipart upload.
//! The same proxy records request headers, to show the evidence-protection options are sent, and
//! answers 403 for a role without access; missing credentials are a clear error too.

use std::fs;

use collector_e2e::{FaultProxy, LocalS3, Run, random_file, require_root, sha256_hex};

const MIB: u64 = 1 << 20;

struct Setup {
    s3: LocalS3,
    work: tempfile::TempDir,
}

fn setup() -> Setup {
    require_root();
    Setup {
        s3: LocalS3::with_bucket("evidence", false),
        work: tempfile::tempdir().unwrap(),
    }
}

/// `acquire` of `source` to `s3://evidence/f` through `proxy`.
fn acquire_via(setup: &Setup, proxy: &FaultProxy, source: &std::path::Path, extra: &[&str]) -> Run {
    let mut cmd = acquire_cmd(setup, source, extra);
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint());
    Run::of(&mut cmd)
}

/// `acquire` of `source` to `s3://evidence/f`, straight to the server.
fn acquire_cmd(setup: &Setup, source: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = setup.s3.collector();
    cmd.arg("acquire")
        .arg(source)
        .args([
            "--dest",
            "s3://evidence/f",
            "--incident",
            "IR-F",
            "--name",
            "img",
        ])
        .args(["--s3-force-path-style", "--part-size", "8MiB"])
        .args(extra);
    cmd
}

fn part_requests(proxy: &FaultProxy) -> Vec<serde_json::Value> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r["method"] == "PUT"
                && r["query"]
                    .as_str()
                    .is_some_and(|q| q.contains("partNumber"))
        })
        .collect()
}

#[test]
fn transient_500s_and_resets_are_retried_and_the_object_still_verifies() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 24 * MIB + 512, 41);
    let proxy = FaultProxy::start(
        &setup.s3.server,
        &["--fail-parts", "3", "--reset-parts", "2"],
    );

    acquire_via(&setup, &proxy, &source, &[]).expect_code(0);

    let parts = part_requests(&proxy);
    assert_eq!(parts.iter().filter(|r| r["action"] == "fail").count(), 3);
    assert_eq!(parts.iter().filter(|r| r["action"] == "reset").count(), 2);
    assert_eq!(
        parts.iter().filter(|r| r["action"] == "forward").count(),
        4,
        "4 parts stored once each"
    );
    let head = setup
        .s3
        .runtime
        .block_on(
            setup
                .s3
                .client
                .head_object()
                .bucket("evidence")
                .key("f/IR-F/disk_evidence/img.image.dd")
                .send(),
        )
        .expect("image object exists");
    assert_eq!(
        head.content_length(),
        Some(i64::try_from(24 * MIB + 512).unwrap())
    );
    let manifest = setup
        .s3
        .runtime
        .block_on(async {
            let o = setup
                .s3
                .client
                .get_object()
                .bucket("evidence")
                .key("f/IR-F/disk_evidence/img.manifest.json")
                .send()
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(o.body.collect().await?.into_bytes())
        })
        .expect("manifest exists");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["image"]["hashes"]["sha256"],
        sha256_hex(&fs::read(&source).unwrap())
    );
}

#[test]
fn an_exhausted_retry_budget_aborts_and_leaves_nothing_behind() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 20 * MIB, 42);
    let proxy = FaultProxy::start(&setup.s3.server, &["--fail-all-parts"]);

    let run = acquire_via(&setup, &proxy, &source, &["--s3-max-attempts", "2"]);
    run.expect_code(30);
    assert!(
        run.stderr.contains("cannot upload a part of"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no manifest written"), "{}", run.stderr);

    assert_eq!(setup.s3.object_count("evidence"), 0, "no object may exist");
    assert_eq!(
        setup.s3.open_uploads("evidence"),
        0,
        "the upload must be aborted"
    );
}

#[test]
fn denied_access_and_missing_credentials_are_clear_errors_before_the_device_is_read() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 9 * MIB, 44);

    let denied = FaultProxy::start(&setup.s3.server, &["--deny-all"]);
    let run = acquire_via(&setup, &denied, &source, &[]);
    run.expect_code(30);
    assert!(run.stderr.contains("AccessDenied"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("Acquisition started"),
        "refused before reading: {}",
        run.stderr
    );

    // No credentials anywhere in the chain (no env, no profile files, no instance role).
    let mut cmd = setup.s3.collector();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://evidence/f", "--incident", "IR-F"])
        .args(["--s3-force-path-style", "--s3-max-attempts", "1"]);
    let run = Run::of(&mut cmd);
    run.expect_code(30);
    assert!(
        run.stderr.to_lowercase().contains("credentials"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.s3.object_count("evidence"), 0);
    assert_eq!(setup.s3.open_uploads("evidence"), 0);
}

#[test]
fn sse_kms_and_the_expected_bucket_owner_are_sent_on_every_write() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 9 * MIB, 43);
    let proxy = FaultProxy::start(&setup.s3.server, &[]);
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    let run = acquire_via(
        &setup,
        &proxy,
        &source,
        &[
            "--sse-kms-key-id",
            key,
            "--expected-bucket-owner",
            "123456789012",
        ],
    );
    let requests = proxy.requests();
    // S3's writes (STS's GetCallerIdentity, the custody record's, is a POST too).
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| (r["method"] == "PUT" || r["method"] == "POST") && r["service"] == "s3")
        .collect();
    assert!(!writes.is_empty());
    for write in &writes {
        assert_eq!(
            write["headers"]["x-amz-expected-bucket-owner"], "123456789012",
            "{write}"
        );
    }
    let creates: Vec<_> = writes
        .iter()
        .filter(|r| {
            let q = r["query"].as_str().unwrap_or("");
            (r["method"] == "POST" && q.contains("uploads"))
                || (r["method"] == "PUT" && !q.contains("partNumber") && !q.contains("tagging"))
        })
        .collect();
    assert!(
        creates.len() >= 2,
        "CreateMultipartUpload and the companions: {creates:?}"
    );
    for create in creates {
        assert_eq!(
            create["headers"]["x-amz-server-side-encryption"], "aws:kms",
            "{create}"
        );
        assert_eq!(
            create["headers"]["x-amz-server-side-encryption-aws-kms-key-id"], key,
            "{create}"
        );
    }
    // Whether moto accepts an unknown key or the bucket owner is its business; the run must end
    // with a clear outcome either way.
    assert!(run.code == 0 || run.code == 30, "{}", run.stderr);
}

// Issue 19, hole 1: S3 completed the upload, then the composite CRC32C it reported did not match
// ours (a server without crc32c, a middlebox rewriting the header). The run said "partial image
// removed" and left the image object: the only cleanup was an AbortMultipartUpload (404, the
// upload was complete), and every rerun was refused with exit 20. The completed object is this
// run's and is deleted (conditionally on its ETag), the last log line names what was removed, and
// a rerun of the same name stores the evidence.
#[test]
fn a_checksum_that_fails_after_completion_deletes_the_image_object_and_says_so() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 12 * MIB + 4096, 45);
    let proxy = FaultProxy::start(&setup.s3.server, &["--corrupt-object-checksum"]);

    let run = acquire_via(&setup, &proxy, &source, &[]);
    run.expect_code(30);
    assert!(run.stderr.contains("does not match"), "{}", run.stderr);
    let image_key = "f/IR-F/disk_evidence/img.image.dd";
    assert!(
        run.stderr.contains(&format!(
            "removed the 1 object(s) this run had stored: {image_key}"
        )),
        "the last words name what was removed: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("COULD NOT"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("Could not abort"),
        "a completed upload is not aborted: {}",
        run.stderr
    );
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r["action"] == "corrupt-checksum"),
        "the proxy changed the checksum"
    );
    let deletes: Vec<_> = requests
        .iter()
        .filter(|r| r["method"] == "DELETE" && r["path"] == format!("/evidence/{image_key}"))
        .collect();
    assert_eq!(deletes.len(), 1, "{requests:?}");
    assert!(
        deletes[0]["headers"]["if-match"].as_str().is_some(),
        "deleted only while it is this run's object: {:?}",
        deletes[0]
    );
    assert_eq!(setup.s3.object_count("evidence"), 0, "no object may remain");
    assert_eq!(setup.s3.open_uploads("evidence"), 0);

    // The name is free again: a rerun straight to the server stores and proves the evidence.
    Run::of(&mut acquire_cmd(&setup, &source, &[])).expect_code(0);
    assert_eq!(
        setup.s3.get_http("evidence", image_key),
        fs::read(&source).unwrap()
    );
}

// Issue 19 (review of hole 1): S3 completes the upload but its answer is lost (here a reset after
// the request was carried out). The retry is refused (If-None-Match, or NoSuchUpload), and the run
// used to give up with exit 20 or 30 and leave its own completed image behind, blocking every
// rerun. The object holds exactly this run's bytes, so the run takes it as its own and finishes.
#[test]
fn a_completion_whose_answer_is_lost_is_recognised_as_this_runs_own() {
    let setup = setup();
    let source = setup.work.path().join("s.raw");
    random_file(&source, 17 * MIB + 512, 46);
    let proxy = FaultProxy::start(&setup.s3.server, &["--lose-completions", "1"]);

    let run = acquire_via(&setup, &proxy, &source, &[]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("taken as its own"),
        "the lost answer is said: {}",
        run.stderr
    );
    let completions: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r["method"] == "POST" && r["query"].as_str().is_some_and(|q| q.contains("uploadId="))
        })
        .collect();
    assert_eq!(completions.len(), 2, "{completions:?}");
    assert_eq!(completions[0]["action"], "lose-completion");
    assert_eq!(completions[1]["action"], "refuse-retry");
    let mut verify = setup.s3.collector();
    verify.args([
        "verify",
        "s3://evidence/f/IR-F/disk_evidence/img.manifest.json",
        "--s3-force-path-style",
    ]);
    Run::of(&mut verify).expect_code(0);
    assert_eq!(setup.s3.open_uploads("evidence"), 0);
}
