//! A real IMDSv2 stand-in on 127.0.0.1 (`tests/helpers/imds.py`): token flow, user data from a
//! file, instance ID, and a request log that shows whether the token flow was used. One per test,
//! killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

/// A running IMDS stand-in.
pub struct ImdsServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    _user_data: Option<tempfile::NamedTempFile>,
}

impl ImdsServer {
    /// Starts the server serving `user_data` (404 for `/latest/user-data` when `None`) and
    /// `instance_id`.
    pub fn start(user_data: Option<&[u8]>, instance_id: &str) -> Self {
        let log = tempfile::NamedTempFile::new().expect("imds log");
        let user_data = user_data.map(|bytes| {
            let mut file = tempfile::NamedTempFile::new().expect("user data file");
            file.write_all(bytes).expect("write user data");
            file
        });
        let mut cmd = Command::new("python3");
        cmd.arg(crate::repo_root().join("tests/helpers/imds.py"))
            .args(["--instance-id", instance_id, "--log"])
            .arg(log.path());
        if let Some(file) = &user_data {
            cmd.arg("--user-data").arg(file.path());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/helpers/imds.py");
        // The server prints its port right after binding, or dies; read_line cannot hang past that.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("imds.py prints its port");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("imds.py did not start: {line:?}"));
        Self {
            child,
            port,
            log,
            _user_data: user_data,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request seen so far: method, path, token_ttl, token (valid|invalid|none), status.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
