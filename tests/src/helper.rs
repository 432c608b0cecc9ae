//! The Python helper servers of `tests/helpers/` (fault proxy, IMDS stand-in) share one contract:
//! they bind a free loopback port, print `ready PORT`, and log one JSON line per request to the
//! `--log` file. This runs one, for the life of the value.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running helper server, killed on drop.
pub struct HelperServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl HelperServer {
    /// Starts `python3 tests/helpers/SCRIPT ARGS… --log LOG` and waits for its `ready PORT` line.
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
            .unwrap_or_else(|e| panic!("python3 runs tests/helpers/{script}: {e}"));
        // The server prints its port right after binding, or dies; read_line cannot hang past that.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{script} prints its port: {e}"));
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"));
        Self { child, port, log }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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
