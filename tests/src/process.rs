//! Running the real `forensic-collector` binary with a deadline and measuring its peak memory.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one run of the binary may take in tests before it is killed and the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

/// The binary under test: `$FORENSIC_COLLECTOR_BIN`, else the workspace's own. Run the suites with
/// `cargo build --workspace && cargo test --workspace` (as tests/run does): `cargo test` does not
/// build another package's binary.
pub fn collector() -> Command {
    let path = binary_path();
    assert!(
        path.exists(),
        "{} is missing: `cargo build --workspace` first (tests/run does)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env("RUST_LOG", "info").env_remove("JOURNAL_STREAM");
    cmd
}

/// Where the binary under test is: `$FORENSIC_COLLECTOR_BIN`, else the workspace's own.
pub fn binary_path() -> PathBuf {
    std::env::var_os("FORENSIC_COLLECTOR_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("test executable path");
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile>");
            profile_dir.join("forensic-collector")
        },
        PathBuf::from,
    )
}

/// Removes from `cmd`'s environment every setting of ours (and the IMDS switches and the original
/// flow's variables) that the test runner itself may have, so a test sees only what it sets.
pub fn without_inherited_settings(cmd: &mut Command) -> &mut Command {
    const LEGACY: [&str; 4] = [
        "DESTINATION_BUCKET",
        "DESTINATION_PREFIX",
        "IMAGE_NAME",
        "INCIDENT_ID",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let ours = name.starts_with("FORENSIC_COLLECTOR_") && name != "FORENSIC_COLLECTOR_BIN";
        if ours || LEGACY.contains(&name.as_str()) || name.starts_with("AWS_EC2_METADATA") {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// `forensic-collector acquire SOURCE --out OUT`, for further arguments.
pub fn acquire(source: impl AsRef<std::ffi::OsStr>, out: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = collector();
    cmd.arg("acquire").arg(source).arg("--out").arg(out);
    cmd
}

/// The result of one finished run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (128 + signal when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the logs).
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` to completion.
    pub fn of(cmd: &mut Command) -> Self {
        Self::wait(Self::spawn(cmd))
    }

    /// Starts `cmd` with piped output, for tests that act on it while it runs.
    pub fn spawn(cmd: &mut Command) -> Child {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start forensic-collector")
    }

    /// Waits (bounded) for a spawned child and collects its output.
    pub fn wait(mut child: Child) -> Self {
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
        let deadline = Instant::now() + RUN_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for forensic-collector") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("forensic-collector did not finish within {RUN_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let code = status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .expect("an exit code or a signal");
        Self {
            code,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Runs `cmd` to completion under `/usr/bin/time` and returns the run with the peak resident
    /// set size of `cmd` alone, in bytes. Not wait4's rusage of our own child: a child spawned
    /// (vfork, exec) from this test process starts from the test process's high-water mark, which
    /// in the one e2e binary is that of every test running beside it (237 MiB seen, for a run
    /// that peaks at 53). `time` is a small process that forks the command.
    pub fn measuring_peak_rss(cmd: &Command) -> (Self, u64) {
        let report = tempfile::NamedTempFile::new().expect("time's report file");
        let mut timed = Command::new("/usr/bin/time");
        timed
            .args(["-f", "%M", "-o"])
            .arg(report.path())
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => timed.env(key, value),
                None => timed.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            timed.current_dir(dir);
        }
        let run = Self::of(&mut timed);
        // GNU time puts "Command exited with non-zero status N" before the format's line.
        let report = std::fs::read_to_string(report.path()).expect("time's report");
        let kib: u64 = report
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "/usr/bin/time (tests/helpers/setup-deps.sh installs it) reported {report:?}"
                )
            });
        (run, kib * 1024)
    }

    /// Panics with the logs unless the exit code is `expected`.
    pub fn expect_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}
