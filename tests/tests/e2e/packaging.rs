//! What ships beside the binary must be valid: the systemd unit passes `systemd-analyze verify`
//! and keeps its safety settings, and the example configuration is accepted by `config check`.

use std::fs;
use std::process::Command;

use collector_e2e::{Run, collector, repo_root};

#[test]
fn the_systemd_unit_verifies_and_stops_the_daemon_gracefully() {
    let unit = fs::read_to_string(repo_root().join("systemd/forensic-collector.service")).unwrap();
    for required in [
        "ExecStart=/usr/bin/forensic-collector watch",
        "EnvironmentFile=-/etc/environment",
        "KillMode=mixed",
        "RestartPreventExitStatus=2 3 5 6 10",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "After=network-online.target",
    ] {
        assert!(unit.contains(required), "the unit lost {required:?}");
    }
    // systemd-analyze checks that ExecStart exists: point it at the binary under test.
    let binary = collector().get_program().to_owned();
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("forensic-collector.service");
    fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/bin/forensic-collector",
            &format!("ExecStart={}", binary.to_string_lossy()),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (tests/helpers/setup-deps.sh installs systemd)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_configuration_is_valid_and_complete() {
    let example = repo_root().join("packaging/config.example.toml");
    // Checked as installed: a copy owned by us, since the collector refuses a config file owned by
    // another user (a checkout run with `sudo tests/run` belongs to the developer, not root).
    let installed = tempfile::NamedTempFile::new().unwrap();
    fs::copy(&example, installed.path()).unwrap();
    let private = <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    fs::set_permissions(installed.path(), private).unwrap();
    let mut cmd = collector();
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["config", "check", "--allow-missing-job", "--config"])
        .arg(installed.path());
    let run = Run::of(&mut cmd);
    run.expect_code(0);
    // Every key the daemon knows appears in the example, so it documents all of them.
    let text = fs::read_to_string(&example).unwrap();
    for key in [
        "disk_root",
        "on_complete",
        "poweroff_command",
        "expected_volumes",
        "idle_timeout_secs",
        "concurrency",
        "part_memory",
        "max_object_size",
        "readiness_message",
        "progress_interval_secs",
    ] {
        assert!(
            text.contains(key),
            "packaging/config.example.toml does not document {key}"
        );
    }
}
