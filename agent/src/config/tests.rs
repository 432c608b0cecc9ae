//! The loader end to end, without IMDS (user data precedence is covered by `layers` and the
//! end-to-end suite against the IMDS stand-in).

use std::io::Write;

use super::*;

fn options(
    file: Option<&str>,
    env: &[(&str, &str)],
) -> (LoadOptions, Option<tempfile_path::TempPath>) {
    let temp = file.map(tempfile_path::TempPath::with);
    let mut env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    let options = LoadOptions {
        config_path: temp.as_ref().map(|t| t.0.clone()),
        env,
        imds_endpoint: None,
        flags: Vec::new(),
        wait_for_imds: false,
    };
    (options, temp)
}

/// A file in the temp dir, removed on drop (the agent has no tempfile dependency).
mod tempfile_path {
    use super::Write;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    static NEXT: AtomicU32 = AtomicU32::new(0);

    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn with(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "fc-config-test-{}-{}.toml",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let mut file = std::fs::File::create(&path).expect("create temp config");
            file.write_all(text.as_bytes()).expect("write temp config");
            Self(path)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn origin_of(effective: &Effective, key: &str) -> String {
    effective
        .settings
        .iter()
        .find(|s| s.key.to_string() == key)
        .map(|s| s.origin.to_string())
        .unwrap_or_else(|| panic!("{key} not in the effective settings"))
}

#[test]
fn defaults_then_file_then_env_then_flags() {
    let (mut opts, temp) = options(
        Some(
            "[job]\nbucket = \"file-bucket\"\nincident_id = \"IR-file\"\nprefix = \"p\"\n[watch]\nsettle_ms = 100\n",
        ),
        &[
            ("INCIDENT_ID", "IR-env"),
            ("FORENSIC_COLLECTOR_WATCH_SETTLE_MS", "200"),
        ],
    );
    opts.flags
        .push(Flag::new("watch.settle_ms", 400, "--settle-ms"));
    let effective = load(&opts).unwrap();
    let path = temp.as_ref().unwrap().0.display().to_string();
    let config = &effective.config;
    assert_eq!(
        config.job.destination.as_ref().unwrap().bucket(),
        "file-bucket"
    );
    assert_eq!(origin_of(&effective, "job.bucket"), format!("file {path}"));
    assert_eq!(config.job.incident_id.as_ref().unwrap().as_str(), "IR-env");
    assert_eq!(origin_of(&effective, "job.incident_id"), "env INCIDENT_ID");
    assert_eq!(config.watch.settle, std::time::Duration::from_millis(400));
    assert_eq!(origin_of(&effective, "watch.settle_ms"), "flag --settle-ms");
    assert_eq!(origin_of(&effective, "watch.concurrency"), "default");
    assert_eq!(
        effective.imds_skipped,
        Some("AWS_EC2_METADATA_DISABLED=true")
    );
    let job = effective.require_job().unwrap();
    assert_eq!(job.destination.key("x"), "p/x");
}

#[test]
fn use_imds_false_in_the_file_skips_imds() {
    let (mut opts, _temp) = options(Some("[job]\nuse_imds = false\n"), &[]);
    opts.env.remove("AWS_EC2_METADATA_DISABLED");
    // An endpoint nobody listens on: asking it would fail the load.
    opts.imds_endpoint = Some("http://127.0.0.1:9".into());
    let effective = load(&opts).unwrap();
    assert_eq!(effective.imds_skipped, Some("[job] use_imds = false"));
}

// Issue 11: the wait for IMDS is bounded, checked before IMDS is asked, and named with its source.
#[test]
fn an_imds_wait_out_of_range_is_refused_naming_its_source() {
    let (mut opts, _temp) = options(None, &[("FORENSIC_COLLECTOR_JOB_IMDS_WAIT_SECS", "3601")]);
    opts.env.remove("AWS_EC2_METADATA_DISABLED");
    opts.imds_endpoint = Some("http://127.0.0.1:9".into());
    opts.wait_for_imds = true;
    let err = load(&opts).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("job.imds_wait_secs from env FORENSIC_COLLECTOR_JOB_IMDS_WAIT_SECS"),
        "{text}"
    );
    assert!(text.contains("between 0 and 3600"), "{text}");
    assert_eq!(err.exit(), crate::exit::Exit::Config);
    let (opts, _temp) = options(Some("[job]\nimds_wait_secs = 0\n"), &[]);
    let effective = load(&opts).unwrap();
    assert!(origin_of(&effective, "job.imds_wait_secs").starts_with("file "));
}

// Issue 11 review: a malformed endpoint was retried as if IMDS were down, for the whole wait
// (120 s by default), then exit 6. It is a bad setting: exit 5 at once, naming the variable.
#[test]
fn a_malformed_imds_endpoint_is_a_bad_setting_refused_at_once() {
    for endpoint in ["not a url", "ftp://127.0.0.1:9"] {
        let (mut opts, _temp) = options(None, &[("FORENSIC_COLLECTOR_JOB_IMDS_WAIT_SECS", "60")]);
        opts.env.remove("AWS_EC2_METADATA_DISABLED");
        opts.imds_endpoint = Some(endpoint.into());
        opts.wait_for_imds = true;
        let started = std::time::Instant::now();
        let err = load(&opts).unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{endpoint:?}"
        );
        assert_eq!(err.exit(), crate::exit::Exit::Config, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={endpoint:?}")),
            "{text}"
        );
    }
}

// Issue 11 review: whether to ask IMDS and how long to wait are decided before user data is read,
// so user data's values for them are ignored (and said to be), not shown as the values used.
#[test]
fn user_data_cannot_set_what_is_decided_before_it_is_read() {
    let origin = Origin::UserData(UserDataFormat::Json);
    let setting = |key: &str, text: &str| {
        let key = KeyPath::parse(key).unwrap();
        layers::from_text(key, text, origin.clone()).unwrap()
    };
    let (kept, ignored) = set_aside_decided(vec![
        setting("job.imds_wait_secs", "5"),
        setting("job.bucket", "evidence"),
        setting("job.use_imds", "false"),
    ]);
    let kept: Vec<String> = kept.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(kept, ["job.bucket"]);
    let ignored: Vec<(&str, &str)> = ignored
        .iter()
        .map(|i| (i.name.as_str(), i.value.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [("job.imds_wait_secs", "5"), ("job.use_imds", "false")]
    );
}

// Issue 11: a refusal keeps what was read before it, so `watch` can report it where configured.
#[test]
fn a_refusal_keeps_the_settings_read_before_it() {
    let (opts, _temp) = options(
        Some("[cloudwatch]\ncapture_group = \"Team\"\n[watch]\nconcurrency = 99\n"),
        &[],
    );
    let refusal = load_salvaging(&opts).unwrap_err();
    assert!(
        refusal.error.to_string().contains("watch.concurrency"),
        "{}",
        refusal.error
    );
    assert_eq!(
        refusal.partial.merged().unwrap().cloudwatch.capture_group,
        "Team"
    );
    assert_eq!(refusal.instance_id, None);
    // A file that is not TOML leaves nothing read.
    let (opts, _temp) = options(Some("[cloudwatch\n"), &[]);
    let refusal = load_salvaging(&opts).unwrap_err();
    assert_eq!(refusal.error.exit(), crate::exit::Exit::Config);
    assert_eq!(
        refusal.partial.merged().unwrap().cloudwatch.capture_group,
        "ForensicDiskCapture"
    );
}

#[test]
fn an_explicit_missing_file_is_an_error_the_default_is_not() {
    let (mut opts, _) = options(None, &[]);
    opts.config_path = Some("/nonexistent/forensic-collector.toml".into());
    let err = load(&opts).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }), "{err}");
    assert_eq!(err.exit(), crate::exit::Exit::Config);
    let (opts, _) = options(None, &[]);
    if !Path::new(DEFAULT_PATH).exists() {
        assert!(load(&opts).unwrap().file.is_none());
    }
}

// Issue 19: FORENSIC_COLLECTOR_CONFIG named the file root read, and the environment is written by
// user data: a credentials file's line came back in the refusal. The variable is refused, with
// or without `--config`, and the file it names is never opened.
#[test]
fn the_config_path_variable_is_refused_and_its_file_never_read() {
    let secret = "aws_access_key_id = AKIAFAKESECRET000042";
    let target = tempfile_path::TempPath::with(&format!("{secret}\n"));
    let named = target.0.display().to_string();
    for explicit in [None, Some("[cloudwatch]\ncapture_group = \"Mine\"\n")] {
        let (opts, _file) = options(explicit, &[(PATH_VAR, named.as_str())]);
        let refusal = load_salvaging(&opts).unwrap_err();
        let err = &refusal.error;
        assert!(
            matches!(err, ConfigError::PathVariable { origin: Origin::Env(var), value, .. }
                if var == PATH_VAR && *value == named),
            "{err:?}"
        );
        assert_eq!(err.exit(), crate::exit::Exit::Config);
        for text in [err.to_string(), err.off_host_text()] {
            assert!(!text.contains("AKIA"), "{text}");
            for needle in [PATH_VAR, "user data", "--config", "was not opened", &named] {
                assert!(text.contains(needle), "{needle:?} missing: {text}");
            }
        }
        // `--config`'s file is read first: the refusal still reports where it says.
        let group = refusal.partial.merged().unwrap().cloudwatch.capture_group;
        let expected = if explicit.is_some() {
            "Mine"
        } else {
            "ForensicDiskCapture"
        };
        assert_eq!(group, expected);
    }
    // Empty names nothing, as before: not a refusal.
    let (opts, _file) = options(Some(""), &[(PATH_VAR, "")]);
    load(&opts).unwrap();
}

#[test]
fn bad_toml_names_the_file_and_line() {
    let (opts, temp) = options(Some("[job]\nbucket = \n"), &[]);
    let err = load(&opts).unwrap_err().to_string();
    assert!(
        err.contains(&temp.unwrap().0.display().to_string()),
        "{err}"
    );
    assert!(err.contains("line 2"), "{err}");
}

// Issue 19: toml's message quotes the offending line; the form that leaves the host (CloudWatch)
// names the file, line and column only.
#[test]
fn a_syntax_error_off_host_names_the_place_not_the_text() {
    let (opts, temp) = options(Some("[job]\n\nsecret = AKIAFAKESECRET000042\n"), &[]);
    let err = load(&opts).unwrap_err();
    let path = temp.unwrap().0.display().to_string();
    let on_host = err.to_string();
    assert!(on_host.contains("AKIAFAKESECRET000042"), "{on_host}");
    let off_host = err.off_host_text();
    assert!(!off_host.contains("AKIA"), "{off_host}");
    assert!(!off_host.contains("secret"), "{off_host}");
    // toml says where it stopped; the off-host form says the same place.
    let place = "line 3, column 10";
    assert!(on_host.contains(place), "{on_host}");
    assert!(
        off_host.contains(&format!("{path} is not valid TOML at {place}")),
        "{off_host}"
    );
}

// Issue 19: a bad value from the file is not repeated off the host; from user data, the
// environment or a flag it is the sender's own and stays.
#[test]
fn a_file_value_is_not_repeated_off_host() {
    let (opts, temp) = options(Some("[job]\nbucket = \"AKIA_NOT_A_BUCKET\"\n"), &[]);
    let err = load(&opts).unwrap_err();
    let path = temp.unwrap().0.display().to_string();
    assert!(err.to_string().contains("AKIA_NOT_A_BUCKET"), "{err}");
    let off_host = err.off_host_text();
    assert!(!off_host.contains("AKIA"), "{off_host}");
    assert!(
        off_host.starts_with(&format!("job.bucket from file {path}: refused")),
        "{off_host}"
    );

    let (opts, _temp) = options(Some(""), &[("DESTINATION_BUCKET", "Not_A_Bucket")]);
    let err = load(&opts).unwrap_err();
    assert_eq!(err.off_host_text(), err.to_string());
    assert!(err.off_host_text().contains("Not_A_Bucket"), "{err}");
}

#[test]
fn invalid_values_name_the_source_that_set_them() {
    let (opts, temp) = options(Some("[job]\nbucket = \"Not_A_Bucket\"\n"), &[]);
    let err = load(&opts).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("job.bucket"), "{text}");
    assert!(
        text.contains(&format!("file {}", temp.unwrap().0.display())),
        "{text}"
    );
    assert_eq!(err.exit(), crate::exit::Exit::Config);

    // Issue 10: IMAGE_NAME is a name; one that is no volume ID is ignored (and listed), while
    // the explicit key still refuses a bad value.
    let (opts, _) = options(None, &[("IMAGE_NAME", "vol-nothex")]);
    let effective = load(&opts).unwrap();
    assert!(effective.config.job.source_volume_id.is_none());
    assert_eq!(effective.ignored.len(), 1);
    assert_eq!(effective.ignored[0].origin.to_string(), "env IMAGE_NAME");
    let (opts, _) = options(
        None,
        &[("FORENSIC_COLLECTOR_JOB_SOURCE_VOLUME_ID", "vol-nothex")],
    );
    let text = load(&opts).unwrap_err().to_string();
    assert!(
        text.contains("job.source_volume_id")
            && text.contains("env FORENSIC_COLLECTOR_JOB_SOURCE_VOLUME_ID"),
        "{text}"
    );

    let (opts, _) = options(None, &[("FORENSIC_COLLECTOR_WATCH_ON_COMPLETE", "reboot")]);
    let text = load(&opts).unwrap_err().to_string();
    assert!(
        text.contains("watch.on_complete") && text.contains("poweroff"),
        "{text}"
    );
}

const JOB: &str = "[job]\nbucket = \"evidence\"\nincident_id = \"IR-1\"\n";

// Issue 13: a snapshot ID is job input: the file, user data and the environment may each give it,
// the later layer wins, and it reaches the job context `watch` plans from.
#[test]
fn a_snapshot_id_from_any_layer_reaches_the_job_context() {
    let file = format!("{JOB}snapshot_id = \"snap-0123456789abcdef0\"\n");
    let (opts, temp) = options(Some(&file), &[]);
    let effective = load(&opts).unwrap();
    let job = effective.require_job().unwrap();
    assert_eq!(
        job.snapshot_id.map(|s| s.to_string()).as_deref(),
        Some("snap-0123456789abcdef0")
    );
    assert_eq!(
        origin_of(&effective, "job.snapshot_id"),
        format!("file {}", temp.unwrap().0.display())
    );

    let (opts, _temp) = options(
        Some(&file),
        &[("FORENSIC_COLLECTOR_JOB_SNAPSHOT_ID", "snap-01234567")],
    );
    let effective = load(&opts).unwrap();
    assert_eq!(
        effective
            .require_job()
            .unwrap()
            .snapshot_id
            .map(|s| s.to_string())
            .as_deref(),
        Some("snap-01234567")
    );
    assert_eq!(
        origin_of(&effective, "job.snapshot_id"),
        "env FORENSIC_COLLECTOR_JOB_SNAPSHOT_ID"
    );

    // User data, in each of its shapes, sets it over the file.
    for text in [
        r#"{"job": {"snapshot_id": "snap-0fedcba9876543210"}}"#,
        "snapshot_id = \"snap-0fedcba9876543210\"\n",
        "echo \"FORENSIC_COLLECTOR_JOB_SNAPSHOT_ID=snap-0fedcba9876543210\" >> /etc/environment\n",
    ] {
        let data = userdata::parse(text).unwrap().expect("user data");
        let mut layers = Layers::default();
        layers.apply(
            layers::flatten(&file.parse().unwrap(), &Origin::File("/etc/fc.toml".into())).unwrap(),
        );
        layers.apply(data.settings);
        let config = typed::validate(&layers.merged().unwrap()).unwrap();
        assert_eq!(
            config.job.snapshot_id.map(|s| s.to_string()).as_deref(),
            Some("snap-0fedcba9876543210"),
            "{text}"
        );
        assert_eq!(
            layers.origin(&KeyPath::new("job", "snapshot_id")),
            Origin::UserData(data.format),
            "{text}"
        );
    }
    let (opts, _temp) = options(Some(JOB), &[]);
    assert!(
        load(&opts)
            .unwrap()
            .require_job()
            .unwrap()
            .snapshot_id
            .is_none()
    );
}

// Issue 13: input from user data never chooses what runs as root. Only `snap-` and 8 or 17
// lower-case hex digits pass; anything else is refused with the configuration's exit code,
// naming the key and the source, before anything is watched or run.
#[test]
fn a_snapshot_id_that_is_not_one_is_refused_naming_its_source() {
    for bad in [
        "",
        "snap-",
        "snap-0123456789ABCDEF0",
        "snap-0123456789abcdef",
        "snap-0123456789abcdef01",
        "snap-0123456",
        "vol-0123456789abcdef0",
        "ebs-snapshot://snap-0123456789abcdef0",
        " snap-0123456789abcdef0",
        "snap-0123456789abcdef0 ",
        "snap-01234567/../../dev/vda",
        "/dev/vda",
        "snap-0123456789abcdef0; systemctl poweroff",
        "$(touch /tmp/x)",
    ] {
        let (opts, _temp) = options(Some(JOB), &[("FORENSIC_COLLECTOR_JOB_SNAPSHOT_ID", bad)]);
        let err = load(&opts).unwrap_err();
        assert_eq!(err.exit(), crate::exit::Exit::Config, "{bad:?}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("job.snapshot_id from env FORENSIC_COLLECTOR_JOB_SNAPSHOT_ID")
                && text.contains("not an EBS snapshot ID"),
            "{bad:?}: {text}"
        );
    }
    // From user data the refusal names user data; a number is not an ID either.
    let data = userdata::parse(r#"{"snapshot_id": "snap-xyz"}"#)
        .unwrap()
        .unwrap();
    let mut layers = Layers::default();
    layers.apply(data.settings);
    let invalid = typed::validate(&layers.merged().unwrap()).unwrap_err();
    assert_eq!(invalid.key, "job.snapshot_id");
    assert!(
        invalid.message.contains("not an EBS snapshot ID"),
        "{}",
        invalid.message
    );
    let err = userdata::parse(r#"{"snapshot_id": 12345678}"#).unwrap_err();
    assert!(
        err.to_string().contains("job.snapshot_id") && err.to_string().contains("user data (json)"),
        "{err}"
    );
}

// Issue 13: a snapshot job images that one snapshot; waiting for more volumes would never end.
#[test]
fn a_snapshot_job_expecting_more_than_one_volume_is_refused() {
    let file = format!("{JOB}snapshot_id = \"snap-0123456789abcdef0\"\n");
    let (opts, _temp) = options(
        Some(&file),
        &[("FORENSIC_COLLECTOR_JOB_EXPECTED_VOLUMES", "2")],
    );
    let err = load(&opts).unwrap_err();
    assert_eq!(err.exit(), crate::exit::Exit::Config);
    let text = err.to_string();
    assert!(
        text.contains("job.expected_volumes") && text.contains("job.snapshot_id"),
        "{text}"
    );
    let (opts, _temp) = options(
        Some(&file),
        &[("FORENSIC_COLLECTOR_JOB_EXPECTED_VOLUMES", "1")],
    );
    load(&opts).unwrap();
}

#[test]
fn a_missing_job_names_what_is_missing() {
    let (opts, _) = options(None, &[("DESTINATION_BUCKET", "bkt")]);
    let err = load(&opts).unwrap().require_job().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("job.incident_id") && !text.contains("job.bucket"),
        "{text}"
    );
    assert_eq!(err.exit(), crate::exit::Exit::JobContextUnavailable);
}

#[test]
fn the_example_file_is_valid_and_spells_out_every_default() {
    let example = include_str!("../../../packaging/config.example.toml");
    let (opts, _temp) = options(Some(example), &[]);
    let effective = load(&opts).unwrap();
    let (opts, _) = options(None, &[]);
    let defaults = load(&opts).unwrap();
    assert_eq!(effective.settings.len(), defaults.settings.len());
    for (setting, default) in effective.settings.iter().zip(&defaults.settings) {
        assert!(
            setting.origin.to_string().starts_with("file "),
            "packaging/config.example.toml should set {} to its default",
            setting.key
        );
        assert_eq!(
            setting.value, default.value,
            "{} differs from the default",
            setting.key
        );
    }
    for optional in [
        "bucket",
        "incident_id",
        "source_volume_id",
        "snapshot_id",
        "examiner",
        "expected_volumes",
        "kms_key_id",
    ] {
        assert!(
            example.contains(&format!("# {optional} = ")),
            "{optional} is documented"
        );
    }
}

#[test]
fn the_original_flow_preset_pins_the_flows_names_and_changes_only_the_readiness_message() {
    let preset = include_str!("../../../packaging/presets/original-flow.toml");
    let (opts, _temp) = options(Some(preset), &[]);
    let effective = load(&opts).unwrap();
    let (opts, _) = options(None, &[]);
    let defaults = load(&opts).unwrap();
    assert_eq!(effective.settings.len(), defaults.settings.len());
    let changed: Vec<String> = effective
        .settings
        .iter()
        .zip(&defaults.settings)
        .filter(|(setting, default)| setting.value != default.value)
        .map(|(setting, _)| setting.key.to_string())
        .collect();
    assert_eq!(changed, ["cloudwatch.readiness_message"]);
    let readiness = effective
        .settings
        .iter()
        .find(|s| s.key.to_string() == "cloudwatch.readiness_message")
        .map(|s| s.value.clone());
    assert_eq!(
        readiness,
        Some(toml::Value::String("incron is running".into()))
    );
    // What the flow depends on is written in the preset, so a later change of a built-in default
    // cannot break the flow.
    for key in [
        "job.prefix",
        "watch.on_complete",
        "cloudwatch.enabled",
        "cloudwatch.readiness_group",
        "cloudwatch.readiness_message",
        "cloudwatch.capture_group",
    ] {
        assert!(
            origin_of(&effective, key).starts_with("file "),
            "the preset sets {key}"
        );
    }
}
