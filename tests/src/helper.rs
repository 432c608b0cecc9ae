//! The Python helper servers of `tests/helpers/` (moto, fault proxy, IMDS stand-in) share one
//! contract (`tests/helpers/loopback.py`): they bind a loopback port themselves (a free one unless
//! told), print `ready PORT`, and log one JSON line per request to the `--log` file. This runs one,
//! for the life of the value. It is the only place a helper server is started and waited for.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a helper may take to announce its port: moto imports for a few seconds on a busy
/// machine; past this the helper is killed and the test fails.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running helper server, killed on drop.
pub struct HelperServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl HelperServer {
    /// Starts `python3 tests/helpers/SCRIPT ARGS… --log LOG` and waits (at most
    /// [`START_DEADLINE`]) for its `ready PORT` line.
    pub fn start<I, S>(script: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = tempfile::NamedTempFile::new().expect("helper log");
        let mut child = Command::new("python3")
            .arg(crate::repo_root().join("tests/helpers").join(script))
            .args(args)
            .arg("--log")
            .arg(log.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("python3 runs tests/helpers/{script} (tests/helpers/setup-deps.sh): {e}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, announced) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = sender.send(read);
        });
        let line = match announced.recv_timeout(START_DEADLINE) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("{script} prints its port: {e}"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script} did not announce its port within {START_DEADLINE:?}");
            }
        };
        let Some(port) = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} did not start (tests/helpers/setup-deps.sh installs what it needs): {line:?}"
            );
        };
        Self { child, port, log }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request logged so far, as JSON objects.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for HelperServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
