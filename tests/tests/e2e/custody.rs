//! The signed custody record (issue 23), with moto's KMS signing for real: a capture signed with an
//! ECC and an RSA key verifies online (KMS Verify), offline (`--public-key` from `custody
//! export-key`) and with the documented `aws` and `openssl` lines alone; one flipped byte of the
//! manifest, image, statement or signature fails `verify` naming it; a key KMS will not sign with
//! fails the capture before anything looks complete; an unsigned capture says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use collector_e2e::{FaultProxy, Kms, LocalS3, MotoServer, Run, random_file, sha256_hex};
use serde_json::Value;

const NAME: &str = "disk";

/// A 2 MiB source file in a new directory, and the directory.
fn source() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join(format!("{NAME}.img"));
    random_file(&source, 2 << 20, 23);
    (work, source)
}

/// `acquire SOURCE --out OUT` through `moto`, signed with `key` when given.
fn capture(moto: &MotoServer, source: &Path, out: &Path, key: Option<&str>) -> Run {
    let mut cmd = moto.collector();
    cmd.arg("acquire").arg(source).arg("--out").arg(out);
    if let Some(key) = key {
        cmd.args(["--sign-kms-key-id", key]);
    }
    Run::of(&mut cmd)
}

/// `verify MANIFEST [extra…]` through `moto`.
fn verify(moto: &MotoServer, manifest: &Path, extra: &[&str]) -> Run {
    Run::of(moto.collector().arg("verify").arg(manifest).args(extra))
}

/// `custody export-key` of `key` to `out`.
fn export_key(moto: &MotoServer, key: &str, out: &Path) {
    Run::of(
        moto.collector()
            .args(["custody", "export-key", "--kms-key-id", key, "--out"])
            .arg(out),
    )
    .expect_code(0);
}

/// The line of `run`'s stdout that reports the custody check.
fn custody_line(run: &Run) -> String {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("custody: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The shell lines of docs/custody.md's code blocks that start with `prefix`.
fn documented(prefix: &str) -> Vec<String> {
    let doc = fs::read_to_string(collector_e2e::repo_root().join("docs/custody.md")).unwrap();
    doc.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs `line` with `sh` in `dir` with `env`, NAME standing for the evidence name.
fn shell(line: &str, dir: &Path, env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &line.replace("NAME", NAME)])
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("sh runs")
}

/// Evidence files of `dir`.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_signed_capture_verifies_online_offline_and_with_the_documented_lines_alone() {
    let moto = MotoServer::start();
    let kms = Kms::on(&moto);
    let (work, source) = source();
    let openssl = documented("openssl dgst");
    assert_eq!(
        openssl.len(),
        2,
        "docs/custody.md: one ECDSA line, one PSS line"
    );
    let fetch = documented("aws kms get-public-key");
    let convert = documented("openssl pkey");
    assert_eq!((fetch.len(), convert.len()), (1, 1), "docs/custody.md");
    for (spec, algorithm, line) in [
        ("ECC_NIST_P256", "ECDSA_SHA_256", &openssl[0]),
        ("RSA_2048", "RSASSA_PSS_SHA_256", &openssl[1]),
    ] {
        let key = kms.signing_key(spec);
        let out = work.path().join(spec);
        capture(&moto, &source, &out, Some(&key)).expect_code(0);
        assert_eq!(
            files(&out),
            [
                "disk.capture.log",
                "disk.custody.json",
                "disk.custody.sig",
                "disk.image.dd",
                "disk.image.dd.sha256",
                "disk.manifest.json"
            ]
        );
        let record = fs::read(out.join("disk.manifest.json")).unwrap();
        let manifest: Value = serde_json::from_slice(&record).unwrap();
        let signature = &manifest["custody"]["signature"];
        assert_eq!(signature["state"], "signed", "{spec}");
        assert_eq!(signature["key_arn"], key.as_str(), "{spec}");
        assert_eq!(signature["algorithm"], algorithm, "{spec}");
        let statement: Value =
            serde_json::from_slice(&fs::read(out.join("disk.custody.json")).unwrap()).unwrap();
        assert_eq!(statement["manifest"]["sha256"], sha256_hex(&record));
        assert_eq!(
            statement["image"]["sha256"],
            sha256_hex(&fs::read(&source).unwrap())
        );
        assert_eq!(statement["key_arn"], key.as_str());
        // moto's STS says who the test credentials are.
        assert_eq!(
            manifest["custody"]["principal"]["arn"],
            "arn:aws:sts::123456789012:user/moto"
        );

        let online = verify(&moto, &out.join("disk.manifest.json"), &[]);
        online.expect_code(0);
        let said = custody_line(&online);
        assert!(
            said.starts_with(&format!("custody: OK signed by {key} ({algorithm})")),
            "{said}"
        );
        assert!(said.contains("checked online by KMS Verify"), "{said}");

        let pem = out.join("pub.pem");
        export_key(&moto, &key, &pem);
        let offline = verify(
            &moto,
            &out.join("disk.manifest.json"),
            &["--public-key", pem.to_str().unwrap()],
        );
        offline.expect_code(0);
        let said = custody_line(&offline);
        assert!(
            said.contains(&format!("checked offline with {}", pem.display())),
            "{said}"
        );

        // No tool of ours: the documented `aws` and `openssl` lines, as written.
        let mut env = moto.env();
        env.push(("AWS_DEFAULT_REGION", "us-east-1".into()));
        env.push(("KEY", key.clone()));
        let dir = out.join("by-hand");
        fs::create_dir(&dir).unwrap();
        for line in [&fetch[0], &convert[0]] {
            let done = shell(line, &dir, &env);
            assert!(
                done.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
        assert_eq!(
            fs::read(dir.join("pub.pem")).unwrap(),
            fs::read(&pem).unwrap()
        );
        for file in ["disk.custody.json", "disk.custody.sig"] {
            fs::copy(out.join(file), dir.join(file)).unwrap();
        }
        let done = shell(line, &dir, &[]);
        assert!(done.status.success(), "{line}: {done:?}");
        assert_eq!(String::from_utf8_lossy(&done.stdout).trim(), "Verified OK");
        // The same line fails on a statement one byte off.
        let mut changed = fs::read(dir.join("disk.custody.json")).unwrap();
        changed[2] ^= 0x20;
        fs::write(dir.join("disk.custody.json"), changed).unwrap();
        let done = shell(line, &dir, &[]);
        assert!(!done.status.success(), "{line} passed a changed statement");
    }
}

/// A signed local capture with its public key, for the flip tests: (moto, work dir, evidence dir,
/// pem).
fn signed_capture() -> (MotoServer, tempfile::TempDir, PathBuf, PathBuf) {
    let moto = MotoServer::start();
    let kms = Kms::on(&moto);
    let key = kms.signing_key("ECC_NIST_P256");
    let (work, source) = source();
    let out = work.path().join("evidence");
    capture(&moto, &source, &out, Some(&key)).expect_code(0);
    let pem = work.path().join("pub.pem");
    export_key(&moto, &key, &pem);
    (moto, work, out, pem)
}

/// A copy of the evidence in `out`, in the directory `name` beside it: the copy's manifest.
fn copied(out: &Path, name: &str) -> PathBuf {
    let copy = out.with_file_name(name);
    fs::create_dir(&copy).unwrap();
    for entry in fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    copy.join("disk.manifest.json")
}

/// A copy of the evidence in `out` with one bit of `file` flipped at the offset `at` chooses:
/// the copy's manifest.
fn flipped(out: &Path, name: &str, file: &str, at: impl Fn(&[u8]) -> usize) -> PathBuf {
    let manifest = copied(out, name);
    let path = manifest.with_file_name(file);
    let mut bytes = fs::read(&path).unwrap();
    let offset = at(&bytes);
    bytes[offset] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    manifest
}

#[test]
fn one_flipped_byte_of_the_manifest_image_statement_or_signature_fails_naming_it() {
    let (moto, _work, out, pem) = signed_capture();
    let offline = ["--public-key", pem.to_str().unwrap()];
    // The host name's first letter: still a valid manifest, no longer the signed one.
    let in_manifest = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        text.find("\"hostname\": \"").unwrap() + "\"hostname\": \"".len()
    };
    let manifest = flipped(&out, "manifest", "disk.manifest.json", in_manifest);
    let run = verify(&moto, &manifest, &offline);
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("custody: FAILED manifest SHA-256: the statement says"),
        "{}",
        run.stdout
    );

    // The image: the statement still names the manifest, whose hashes the image no longer has.
    let image = flipped(&out, "image", "disk.image.dd", |b| b.len() / 2);
    let run = verify(&moto, &image, &offline);
    run.expect_code(4);
    assert!(run.stdout.contains("sha256: MISMATCH"), "{}", run.stdout);
    assert!(
        custody_line(&run).starts_with("custody: OK"),
        "{}",
        run.stdout
    );

    // The statement's signing time: canonical still, no longer what was signed.
    let in_statement = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        text.find("\"signed_at\":\"").unwrap() + "\"signed_at\":\"".len() + 3
    };
    let statement = flipped(&out, "statement", "disk.custody.json", in_statement);
    for extra in [&offline[..], &[]] {
        let run = verify(&moto, &statement, extra);
        run.expect_code(4);
        let said = custody_line(&run);
        assert!(said.contains("custody: FAILED signature: "), "{said}");
    }
    let signature = flipped(&out, "signature", "disk.custody.sig", |b| b.len() - 1);
    let run = verify(&moto, &signature, &offline);
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("custody: FAILED signature: the signature does not match"),
        "{}",
        run.stdout
    );
    let run = verify(&moto, &signature, &[]);
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("KMS Verify says"),
        "{}",
        run.stdout
    );

    // A signature file too large to be one is refused unread.
    let huge = copied(&out, "huge");
    fs::write(huge.with_file_name("disk.custody.sig"), vec![0u8; 4096]).unwrap();
    let run = verify(&moto, &huge, &offline);
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("FAILED signature: unreadable"),
        "{}",
        run.stdout
    );

    // Another key, offline and as the manifest's (a second key of the same kind).
    let other = Kms::on(&moto).signing_key("ECC_NIST_P256");
    let other_pem = out.with_file_name("other.pem");
    export_key(&moto, &other, &other_pem);
    let run = verify(
        &moto,
        &out.join("disk.manifest.json"),
        &["--public-key", other_pem.to_str().unwrap()],
    );
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("FAILED signature"),
        "{}",
        run.stdout
    );
    assert!(!custody_line(&run).contains(&other), "{}", run.stdout);

    // A record rewritten to drop its signature: the statement beside it gives it away.
    let dropped = copied(&out, "dropped");
    let text = fs::read_to_string(&dropped).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["custody"]["signature"] = serde_json::json!({"state": "unsigned"});
    fs::write(&dropped, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let run = verify(&moto, &dropped, &[]);
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("says unsigned, but a custody statement"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_key_kms_will_not_sign_with_fails_the_capture_and_leaves_nothing_complete() {
    let local = LocalS3::with_bucket("evidence", false);
    let kms = Kms::on(&local.server);
    let (work, source) = source();

    // Disabled, denied, or not a signing key: refused before anything is created.
    let disabled = kms.signing_key("ECC_NIST_P256");
    kms.disable(&disabled);
    let encrypting = kms.key(
        "SYMMETRIC_DEFAULT",
        aws_sdk_kms::types::KeyUsageType::EncryptDecrypt,
    );
    let deny_all = FaultProxy::start(&local.server, &["--kms-deny-sign-after", "0"]);
    let denied = kms.signing_key("ECC_NIST_P256");
    for (what, key, endpoint, expected) in [
        (
            "disabled",
            &disabled,
            local.server.endpoint(),
            "DisabledException",
        ),
        (
            "not a signing key",
            &encrypting,
            local.server.endpoint(),
            "cannot sign",
        ),
        (
            "denied",
            &denied,
            deny_all.endpoint(),
            "AccessDeniedException",
        ),
    ] {
        let out = work.path().join(what.replace(' ', "-"));
        let mut cmd = local.collector();
        cmd.env("AWS_ENDPOINT_URL", &endpoint)
            .arg("acquire")
            .arg(&source)
            .arg("--out")
            .arg(&out)
            .args(["--sign-kms-key-id", key]);
        let run = Run::of(&mut cmd);
        run.expect_code(31);
        assert!(run.stderr.contains(expected), "{what}: {}", run.stderr);
        assert!(files(&out).is_empty(), "{what}: {:?}", files(&out));
    }

    // Sign revoked during the capture: the probe passes, the statement is refused. The image was
    // uploaded; nothing is left, and no manifest.
    let revoked = FaultProxy::start(&local.server, &["--kms-deny-sign-after", "1"]);
    // An ECC key: the probe's first algorithm is its own, so the probe is one Sign.
    let key = kms.signing_key("ECC_NIST_P256");
    let mut cmd = local.collector();
    cmd.env("AWS_ENDPOINT_URL", revoked.endpoint())
        .arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-9"])
        .args(["--s3-force-path-style", "--sign-kms-key-id", &key]);
    let run = Run::of(&mut cmd);
    run.expect_code(31);
    assert!(
        run.stderr
            .contains("KMS did not sign the custody statement"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("no manifest written"), "{}", run.stderr);
    let signs = revoked
        .requests()
        .iter()
        .filter(|r| r["headers"]["x-amz-target"] == "TrentService.Sign")
        .count();
    assert_eq!(signs, 2, "the probe and the statement");
    assert_eq!(
        local.object_count("evidence"),
        0,
        "nothing of the run is left"
    );
    assert_eq!(local.open_uploads("evidence"), 0);
}

#[test]
fn a_signed_capture_to_s3_verifies_from_the_bucket() {
    let local = LocalS3::with_bucket("evidence", false);
    let kms = Kms::on(&local.server);
    let key = kms.signing_key("RSA_3072");
    let (work, source) = source();
    let mut cmd = local.collector();
    cmd.arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-8"])
        .args(["--s3-force-path-style", "--sign-kms-key-id", &key]);
    Run::of(&mut cmd).expect_code(0);
    let prefix = "cases/IR-8/disk_evidence/disk";
    let record = local.get("evidence", &format!("{prefix}.manifest.json"));
    let statement: Value =
        serde_json::from_slice(&local.get("evidence", &format!("{prefix}.custody.json"))).unwrap();
    assert_eq!(statement["manifest"]["sha256"], sha256_hex(&record));
    assert_eq!(
        statement["location"],
        format!("s3://evidence/{prefix}.manifest.json")
    );
    let url = format!("s3://evidence/{prefix}.manifest.json");
    let run = Run::of(
        local
            .collector()
            .args(["verify", &url, "--s3-force-path-style"]),
    );
    run.expect_code(0);
    assert!(
        custody_line(&run).contains("(RSASSA_PSS_SHA_256)")
            && custody_line(&run).contains("KMS Verify"),
        "{}",
        run.stdout
    );
    let pem = work.path().join("pub.pem");
    export_key(&local.server, &key, &pem);
    let run = Run::of(local.collector().args([
        "verify",
        &url,
        "--s3-force-path-style",
        "--public-key",
        pem.to_str().unwrap(),
    ]));
    run.expect_code(0);
    assert!(
        custody_line(&run).contains("checked offline"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unsigned_capture_records_its_custody_and_says_unsigned() {
    let (work, source) = source();
    let out = work.path().join("evidence");
    let mut cmd = collector_e2e::acquire(&source, &out);
    cmd.args(["--examiner", "J. Doe", "--queue-depth", "4"]);
    Run::of(&mut cmd).expect_code(0);
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("disk.manifest.json")).unwrap()).unwrap();
    let custody = &manifest["custody"];
    assert_eq!(
        custody["signature"],
        serde_json::json!({"state": "unsigned"})
    );
    assert_eq!(
        custody["principal"],
        Value::Null,
        "a local capture asks no AWS"
    );
    assert_eq!(custody["examiner"], "J. Doe");
    assert_eq!(
        custody["settings"]["imaging.queue_depth"],
        "flag --queue-depth"
    );
    assert_eq!(custody["settings"]["imaging.chunk_size"], "default");
    assert_eq!(custody["unix_user"]["uid"], nix::unistd::geteuid().as_raw());
    // The executable that ran, hashed.
    let binary = fs::read(collector_e2e::process::binary_path()).unwrap();
    assert_eq!(custody["tool"]["executable_sha256"], sha256_hex(&binary));
    assert_eq!(
        custody["host"]["kernel"],
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .trim()
    );
    let events = &custody["events"];
    assert_eq!(events["started_at"], manifest["acquisition"]["started_at"]);
    assert_eq!(
        events["image_confirmed_at"],
        manifest["acquisition"]["ended_at"]
    );
    assert!(events["last_byte_read_at"].is_string() && events["detected_at"].is_null());
    assert!(
        !files(&out).iter().any(|f| f.contains("custody")),
        "{:?}",
        files(&out)
    );

    let run = Run::of(
        collector_e2e::collector()
            .arg("verify")
            .arg(out.join("disk.manifest.json")),
    );
    run.expect_code(0);
    assert_eq!(
        custody_line(&run),
        "custody: unsigned (no signing key was given at capture)"
    );
    // Something under a custody file's name that cannot be read: absence is not proven.
    fs::create_dir(out.join("disk.custody.sig")).unwrap();
    let run = Run::of(
        collector_e2e::collector()
            .arg("verify")
            .arg(out.join("disk.manifest.json")),
    );
    run.expect_code(4);
    assert!(
        custody_line(&run).contains("cannot tell whether a custody statement lies beside"),
        "{}",
        run.stdout
    );
    fs::remove_dir(out.join("disk.custody.sig")).unwrap();
    // Asked for a signature, an unsigned record fails.
    let pem = work.path().join("any.pem");
    fs::write(
        &pem,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEk3jj0pLf9Bd5taRal+cDwydX1CUY\n1boPm1cOfaPSIgxMbTHMV775GkLHELXNJb6DfFTQR/P6IpKr5dzHxpRmGw==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let run = Run::of(
        collector_e2e::collector()
            .arg("verify")
            .arg(out.join("disk.manifest.json"))
            .arg("--public-key")
            .arg(&pem),
    );
    run.expect_code(4);
    assert!(custody_line(&run).contains("UNSIGNED"), "{}", run.stdout);
    // A --public-key that is no key is a usage error, before anything is read.
    fs::write(&pem, "not a key").unwrap();
    let run = Run::of(
        collector_e2e::collector()
            .arg("verify")
            .arg(out.join("disk.manifest.json"))
            .arg("--public-key")
            .arg(&pem),
    );
    run.expect_code(2);
    assert!(run.stderr.contains("--public-key"), "{}", run.stderr);
}
