//! Integrity: the configuration. User data and the environment never choose what runs as root
//! nor which file root reads; nothing read from the config file leaves the host; every size is
//! bounded before anything is allocated or opened; the config file and user data are read
//! bounded, from regular files only, and signals work while they are read.

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use collector_e2e::cwlogs::LogsReader;
use collector_e2e::{
    ImdsServer, LocalS3, LoopDevice, Run, SilentListener, collector, random_file, require_root,
    without_inherited_settings,
};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::Value;

const INSTANCE: &str = "i-0fedcba9876543210";
const VOLUME: &str = "vol0abcdef0123456789";

/// What "at once" means for a refusal: the binary starts, reads one file and exits.
const PROMPT: Duration = Duration::from_secs(5);

/// `config check --config CONFIG` with IMDS at `endpoint` (`None`: IMDS disabled).
fn check(endpoint: Option<&str>, config: &Path) -> Command {
    let mut cmd = collector();
    without_inherited_settings(&mut cmd);
    match endpoint {
        Some(endpoint) => cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint),
        None => cmd.env("AWS_EC2_METADATA_DISABLED", "true"),
    };
    cmd.args(["config", "check", "--config"]).arg(config);
    cmd
}

/// A config file holding `text`, mode 0600 as an administrator would leave it.
fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("config file");
    file.write_all(text.as_bytes()).expect("write config");
    file
}

/// Runs `cmd`, killing it if it has not ended within `limit` (it then shows as exit 137).
fn run_within(cmd: &mut Command, limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let child = Run::spawn(cmd);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !done.load(Ordering::SeqCst) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        })
    };
    let run = Run::wait(child);
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    (run, started.elapsed())
}

fn assert_refused(run: &Run, key: &str, source: &str) {
    run.expect_code(5);
    for needle in [key, source, "refused", "config file or a command-line flag"] {
        assert!(
            run.stderr.contains(needle),
            "missing {needle:?}:\n{}",
            run.stderr
        );
    }
}

/// JSON user data with the job and a poweroff command that would leave `marker`.
fn user_data_with_poweroff(marker: &Path) -> Vec<u8> {
    serde_json::json!({
        "bucket": "evidence",
        "incident_id": "IR-42",
        "watch": {"on_complete": "poweroff", "poweroff_command": ["touch", marker]}
    })
    .to_string()
    .into_bytes()
}

/// The env form of the same command.
fn poweroff_env(marker: &Path) -> String {
    format!(r#"["touch", "{}"]"#, marker.display())
}

// Issue 9 item 5: user data must not set the command the daemon runs as root.
#[test]
fn config_check_refuses_a_poweroff_command_from_user_data() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    let imds = ImdsServer::start(Some(&user_data_with_poweroff(&marker)), INSTANCE);
    let config = config_file("");
    let run = Run::of(&mut check(Some(&imds.endpoint()), config.path()));
    assert_refused(&run, "watch.poweroff_command", "user data (json)");
    assert!(!marker.exists());
}

// Issue 9 item 5: nor may the environment (fed from user data by the original flow).
#[test]
fn config_check_refuses_a_poweroff_command_from_the_environment() {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("ran");
    let config = config_file("[job]\nbucket = \"evidence\"\nincident_id = \"IR-42\"\n");
    let mut cmd = check(None, config.path());
    cmd.env(
        "FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND",
        poweroff_env(&marker),
    );
    let run = Run::of(&mut cmd);
    assert_refused(
        &run,
        "watch.poweroff_command",
        "env FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND",
    );
    assert!(!marker.exists());
}

// Issue 9 item 5: which devices are imaged is the operator's choice, not the launcher's.
#[test]
fn user_data_cannot_choose_the_disk_root() {
    let imds = ImdsServer::start(
        Some(br#"{"bucket": "evidence", "incident_id": "IR-42", "watch": {"disk_root": "/dev"}}"#),
        INSTANCE,
    );
    let config = config_file("");
    let run = Run::of(&mut check(Some(&imds.endpoint()), config.path()));
    assert_refused(&run, "watch.disk_root", "user data (json)");
}

// Issue 9 item 5: the config file may set the command only if nobody but root can write it.
#[test]
fn a_config_file_others_can_write_is_refused() {
    let config = config_file("[watch]\npoweroff_command = [\"touch\", \"/tmp/x\"]\n");
    std::fs::set_permissions(config.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = Run::of(check(None, config.path()).arg("--allow-missing-job"));
    run.expect_code(5);
    assert!(
        run.stderr.contains("refused") && run.stderr.contains("go-w"),
        "{}",
        run.stderr
    );
}

/// A `watch` set up to image one disk into moto and then power off with the file's command
/// (`file-marker`); what the user data or environment adds decides the rest.
struct Daemon {
    s3: LocalS3,
    work: tempfile::TempDir,
    dev: LoopDevice,
    config: PathBuf,
}

impl Daemon {
    fn new() -> Self {
        require_root();
        let s3 = LocalS3::with_bucket("evidence", false);
        let work = tempfile::tempdir().unwrap();
        let image = work.path().join("disk.img");
        random_file(&image, 4 << 20, 9);
        let dev = LoopDevice::attach(&image, &[]);
        let root = work.path().join("dev-disk");
        std::fs::create_dir_all(root.join("by-id")).unwrap();
        symlink(
            dev.path(),
            root.join("by-id")
                .join(format!("nvme-Amazon_Elastic_Block_Store_{VOLUME}")),
        )
        .unwrap();
        let config = work.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[job]\nexpected_volumes = 1\n\
                 [watch]\ndisk_root = {root:?}\nsettle_ms = 100\non_complete = \"poweroff\"\n\
                 poweroff_command = [\"touch\", {:?}]\n\
                 [s3]\nforce_path_style = true\n\
                 [cloudwatch]\nenabled = false\n",
                work.path().join("file-marker")
            ),
        )
        .unwrap();
        Self {
            s3,
            work,
            dev,
            config,
        }
    }

    fn watch(&self, imds: &ImdsServer) -> Command {
        let mut cmd = self.s3.collector();
        without_inherited_settings(&mut cmd);
        // The S3 stand-in's environment turns IMDS off; this run needs it.
        cmd.env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .arg("watch")
            .arg("--config")
            .arg(&self.config);
        cmd
    }

    /// Nothing was imaged, stored, or run.
    fn assert_untouched(&self, marker: &Path, run: &Run) {
        assert!(!marker.exists(), "the user's command ran: {}", run.stderr);
        assert!(
            !self.work.path().join("file-marker").exists(),
            "the daemon got as far as powering off: {}",
            run.stderr
        );
        assert_eq!(self.s3.object_count("evidence"), 0, "{}", run.stderr);
        assert!(!self.dev.kernel_read_only(), "the disk was opened");
    }
}

// Issue 9 item 5: `watch` refuses the user-data command before doing anything, and never runs it
// (before the fix it imaged the disk and then ran `touch` as root).
#[test]
fn watch_refuses_a_poweroff_command_from_user_data_and_never_runs_it() {
    let daemon = Daemon::new();
    let marker = daemon.work.path().join("user-marker");
    let imds = ImdsServer::start(Some(&user_data_with_poweroff(&marker)), INSTANCE);
    let (run, _) = run_within(&mut daemon.watch(&imds), Duration::from_secs(120));
    assert_refused(&run, "watch.poweroff_command", "user data (json)");
    daemon.assert_untouched(&marker, &run);
}

// Issue 9 item 5: the same for the environment form.
#[test]
fn watch_refuses_a_poweroff_command_from_the_environment_and_never_runs_it() {
    let daemon = Daemon::new();
    let marker = daemon.work.path().join("env-marker");
    let imds = ImdsServer::start(
        Some(br#"{"bucket": "evidence", "incident_id": "IR-42"}"#),
        INSTANCE,
    );
    let mut cmd = daemon.watch(&imds);
    cmd.env(
        "FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND",
        poweroff_env(&marker),
    );
    let (run, _) = run_within(&mut cmd, Duration::from_secs(120));
    assert_refused(
        &run,
        "watch.poweroff_command",
        "env FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND",
    );
    daemon.assert_untouched(&marker, &run);
}

// Issue 9 item 6: a chunk size that cannot be allocated is a usage error before the source is
// opened (before the fix: SIGABRT and a `.partial` left behind).
#[test]
fn acquire_refuses_a_terabyte_chunk_before_opening_the_source() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("disk.img");
    random_file(&image, 1 << 20, 6);
    let dev = LoopDevice::attach(&image, &[]);
    let out = work.path().join("out");
    let mut cmd = collector();
    cmd.arg("acquire")
        .arg(dev.path())
        .arg("--out")
        .arg(&out)
        .args(["--name", "disk", "--chunk-size", "1TiB"]);
    let (run, _) = run_within(&mut cmd, Duration::from_secs(60));
    run.expect_code(2);
    assert!(
        run.stderr.contains("chunk size") && run.stderr.contains("larger than"),
        "{}",
        run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left: {left:?}");
    assert!(!dev.kernel_read_only(), "the source was opened");
}

// Issue 9 item 6: `config check` bounds the same setting (before the fix it accepted 1TiB).
#[test]
fn config_check_refuses_a_terabyte_chunk() {
    let config = config_file("[imaging]\nchunk_size = \"1TiB\"\n");
    let run = Run::of(check(None, config.path()).arg("--allow-missing-job"));
    run.expect_code(5);
    assert!(
        run.stderr.contains("imaging.chunk_size") && run.stderr.contains("larger than"),
        "{}",
        run.stderr
    );
}

// Issue 9 item 6: the memory budgets hold in the configuration too.
#[test]
fn config_check_refuses_sizes_past_the_memory_budget() {
    for (text, key) in [
        (
            "[imaging]\nqueue_depth = 256\nchunk_size = \"8MiB\"\n",
            "imaging.chunk_size",
        ),
        ("[s3]\npart_memory = \"1TiB\"\n", "s3.part_memory"),
        ("[s3]\nparts_in_flight = 64\n", "s3.part_memory"),
        (
            "[s3]\nobject_lock_mode = \"GOVERNANCE\"\nobject_lock_retain_days = 4000000000\n",
            "s3.object_lock_retain_days",
        ),
        (
            "[cloudwatch]\nflush_timeout_secs = 9223372036854775807\n",
            "cloudwatch.flush_timeout_secs",
        ),
    ] {
        let config = config_file(text);
        let run = Run::of(check(None, config.path()).arg("--allow-missing-job"));
        run.expect_code(5);
        assert!(run.stderr.contains(key), "{text}: {}", run.stderr);
    }
}

// Issue 9 item 6: `--part-size` reaches the planner checked (before the fix 1 MiB was silently
// raised to 5 MiB and the run went on to S3).
#[test]
fn acquire_refuses_a_part_size_outside_s3s_limits() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.raw");
    random_file(&source, 1 << 20, 7);
    for size in ["1MiB", "6GiB"] {
        let mut cmd = collector();
        // Nothing listens on port 9 of loopback: a run that got that far fails another way.
        cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .arg("acquire")
            .arg(&source)
            .args(["--dest", "s3://evidence/cases", "--incident", "IR-1"])
            .args(["--s3-max-attempts", "1", "--part-size", size]);
        let (run, _) = run_within(&mut cmd, Duration::from_secs(60));
        run.expect_code(2);
        assert!(
            run.stderr.contains("part size") && run.stderr.contains("must be between"),
            "{size}: {}",
            run.stderr
        );
    }
}

// Issue 9 item 10: `/dev/zero` as the config file is refused at once (it grew to 24 GB).
#[test]
fn config_check_refuses_dev_zero_at_once() {
    let (run, took) = run_within(&mut check(None, Path::new("/dev/zero")), PROMPT);
    run.expect_code(5);
    assert!(run.stderr.contains("character device"), "{}", run.stderr);
    assert!(took < PROMPT, "{took:?}");
}

// Issue 9 item 10: a FIFO as the config file is refused at once (it blocked, deaf to SIGTERM).
#[test]
fn config_check_refuses_a_fifo_at_once() {
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("config.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let (run, took) = run_within(&mut check(None, &fifo), PROMPT);
    run.expect_code(5);
    assert!(run.stderr.contains("FIFO"), "{}", run.stderr);
    assert!(took < PROMPT, "{took:?}");
}

// Issue 9 item 10: a regular file past the size limit is refused, not read into memory.
#[test]
fn config_check_refuses_an_oversized_config_file() {
    let mut text = "# padding\n".repeat((1 << 20) / 10);
    text.push_str("# one line past the limit\n");
    let config = config_file(&text);
    let run = Run::of(check(None, config.path()).arg("--allow-missing-job"));
    run.expect_code(5);
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
}

// Issue 9 item 10: user data is bounded at EC2's own 16 KiB.
#[test]
fn user_data_over_ec2s_limit_is_refused() {
    let mut data = String::from("DESTINATION_BUCKET=evidence\nINCIDENT_ID=IR-42\n");
    data.push_str(&"# padding\n".repeat(1700));
    let imds = ImdsServer::start(Some(data.as_bytes()), INSTANCE);
    let config = config_file("");
    let run = Run::of(&mut check(Some(&imds.endpoint()), config.path()));
    run.expect_code(5);
    assert!(run.stderr.contains("16384"), "{}", run.stderr);
}

// Issue 9 item 10: SIGTERM while start-up waits (here for an IMDS that never answers) ends the
// process at once with 130; before, the first signal was only noted and the wait went on.
#[test]
fn sigterm_during_start_up_ends_the_process_at_once() {
    let silent = SilentListener::start();
    let endpoint = silent.endpoint();
    let config = config_file("");
    let started = Instant::now();
    let child = Run::spawn(&mut check(Some(&endpoint), config.path()));
    std::thread::sleep(Duration::from_millis(700));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let signalled = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let run = Run::wait(child);
    let after_signal = signalled.elapsed();
    run.expect_code(130);
    assert!(
        after_signal < Duration::from_secs(2),
        "exited {after_signal:?} after SIGTERM ({:?} in all)",
        started.elapsed()
    );
    drop(silent);
}

// Issue 9 (also seen): a UTF-8 byte-order mark does not cost user data its first line.
#[test]
fn user_data_with_a_byte_order_mark_keeps_its_first_line() {
    let data = "\u{feff}DESTINATION_BUCKET=my-evidence-bucket\nINCIDENT_ID=IR-2026-0042\n";
    let imds = ImdsServer::start(Some(data.as_bytes()), INSTANCE);
    let config = config_file("");
    let run = Run::of(check(Some(&imds.endpoint()), config.path()).arg("--json"));
    run.expect_code(0);
    let out: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        out["settings"]["job.bucket"]["value"], "my-evidence-bucket",
        "{out:#}"
    );
    assert_eq!(out["settings"]["job.bucket"]["source"], "user data (shell)");
}

// Issue 9 (also seen): a misspelt FORENSIC_COLLECTOR_* variable is reported with the name meant.
#[test]
fn a_misspelt_environment_variable_is_warned_about() {
    let config = config_file("");
    let mut cmd = check(None, config.path());
    cmd.arg("--allow-missing-job")
        .env("FORENSIC_COLLECTOR_WACH_CONCURRENCY", "2");
    let run = Run::of(&mut cmd);
    run.expect_code(0);
    assert!(
        run.stderr.contains("FORENSIC_COLLECTOR_WACH_CONCURRENCY")
            && run
                .stderr
                .contains("did you mean FORENSIC_COLLECTOR_WATCH_CONCURRENCY"),
        "{}",
        run.stderr
    );
}

/// Every message `watch`'s refusals left in moto's CloudWatch Logs for this host (IMDS is off, so
/// the stream is the host name), in both of the daemon's groups.
fn reported(logs: &LogsReader) -> Vec<String> {
    let stream = forensic_collector::sysinfo::hostname();
    ["ForensicDiskCapture", "ForensicDiskReadiness"]
        .iter()
        .flat_map(|group| logs.events(group, &stream))
        .map(|(_, message)| message)
        .collect()
}

/// The `reason` of every `config_refused` event among `messages`.
fn refusal_reasons(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|e| e["event"] == "config_refused")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `watch` against moto (S3 and CloudWatch Logs), IMDS off, `--config` when given.
fn watch_reporting(s3: &LocalS3, config: Option<&Path>) -> Command {
    let mut cmd = s3.collector();
    without_inherited_settings(&mut cmd);
    cmd.env("AWS_EC2_METADATA_DISABLED", "true").arg("watch");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd
}

// Issue 19 hole 2: FORENSIC_COLLECTOR_CONFIG came from the environment (which user data writes
// through /etc/environment) and named the file root read; a credentials file was refused with its
// line quoted, in stderr and in the CloudWatch `config_refused` event. The variable is refused
// (exit 5, reported), and the file it names is never opened: nothing of it anywhere.
#[test]
fn a_config_path_from_the_environment_is_refused_and_its_file_never_opened() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let work = tempfile::tempdir().unwrap();
    let (key_id, secret) = ("AKIAFAKEKEY000000042", "wJalrXUtnFEMI/FAKE/SECRET/42");
    let cred = work.path().join("secret.cred");
    std::fs::write(
        &cred,
        format!("[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    inotify
        .add_watch(&cred, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS)
        .unwrap();
    // As deployed (the default file, absent here) and with `--config` naming another file: the
    // variable is refused either way.
    let other = config_file("[job]\nbucket = \"evidence\"\nincident_id = \"IR-19\"\n");
    for (i, config) in [None, Some(other.path())].into_iter().enumerate() {
        let mut cmd = watch_reporting(&s3, config);
        cmd.env("FORENSIC_COLLECTOR_CONFIG", &cred);
        let (run, took) = run_within(&mut cmd, Duration::from_secs(60));
        run.expect_code(5);
        assert!(took < Duration::from_secs(20), "took {took:?}");
        for needle in ["FORENSIC_COLLECTOR_CONFIG", "--config", "user data"] {
            assert!(run.stderr.contains(needle), "{needle:?}:\n{}", run.stderr);
        }
        let messages = reported(&logs);
        let reasons = refusal_reasons(&messages);
        assert_eq!(reasons.len(), i + 1, "one refusal per run: {messages:?}");
        let reason = reasons.last().unwrap();
        assert!(reason.contains("FORENSIC_COLLECTOR_CONFIG"), "{reason}");
        for text in std::iter::once(&run.stderr).chain(&messages) {
            for leak in [key_id, secret, "aws_access_key_id", "aws_secret"] {
                assert!(!text.contains(leak), "{leak:?} left the file: {text}");
            }
        }
    }
    match inotify.read_events() {
        Err(nix::errno::Errno::EAGAIN) => {}
        other => panic!("the file named by the variable was opened: {other:?}"),
    }
}

// Issue 19 hole 2: a config file with a syntax error is refused in CloudWatch naming the file,
// line and column, never the line's text (toml's message quotes it); the terminal still shows it
// to the root user who passed `--config`.
#[test]
fn a_syntax_error_is_reported_off_the_host_by_place_not_text() {
    require_root();
    let s3 = LocalS3::with_bucket("evidence", false);
    let logs = LogsReader::new(&s3.server.endpoint());
    let token = "AKIAPLANTEDTOKEN0019";
    let config = config_file(&format!(
        "[job]\nincident_id = \"IR-19\"\nbucket = {token}\n"
    ));
    let (run, _) = run_within(
        &mut watch_reporting(&s3, Some(config.path())),
        Duration::from_secs(60),
    );
    run.expect_code(5);
    assert!(
        run.stderr.contains(token),
        "the terminal shows the line:\n{}",
        run.stderr
    );
    let messages = reported(&logs);
    let reasons = refusal_reasons(&messages);
    assert_eq!(reasons.len(), 1, "{messages:?}");
    let path = config.path().display().to_string();
    assert!(
        reasons[0].contains(&format!("{path} is not valid TOML at line 3, column 10")),
        "{}",
        reasons[0]
    );
    for message in &messages {
        for leak in [token, "bucket =", "IR-19"] {
            assert!(!message.contains(leak), "{leak:?} left the file: {message}");
        }
    }
}
