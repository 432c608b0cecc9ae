//! One imaging job as a child process: `forensic-collector --json run-job`, which reads its
//! acquisition (`AcquireArgs`, built from the checked configuration) as JSON on stdin.
//!
//! A child per disk isolates jobs from each other and from the daemon: a crash, a leak or a stuck
//! device ends one job, not the agent; every job gets its own capture log; and the daemon reuses
//! the exact code path and exit codes of the one-shot command that SSM runs. The child's JSON log
//! lines are passed through to the daemon's stderr (the journal) and its progress lines are parsed
//! into events; its last stdout line is the [`AcquisitionResult`].
//!
//! A child dies with the daemon: it gets SIGHUP when the daemon ends by any means, SIGKILL
//! included, and then aborts its upload and writes no manifest. Otherwise a killed daemon would
//! leave an orphan that finishes and stores evidence nobody reports, and that a restarted daemon
//! races for the same keys. SIGHUP, not SIGTERM: Linux sends the parent-death signal again each
//! time the orphan is handed on to the next exiting daemon thread, and a second SIGTERM means
//! "exit at once, skip the cleanup"; SIGHUP only ever cancels.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getppid};
use serde_json::Value;

use crate::cli::AcquireArgs;
use crate::exit::Exit;
use crate::result::AcquisitionResult;

/// Progress reported by a running child.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildProgress {
    /// Bytes imaged so far.
    pub bytes_done: u64,
    /// Bytes in all.
    pub bytes_total: u64,
    /// Percent done.
    pub percent: f64,
    /// Current average MB/s.
    pub mb_per_s: f64,
    /// Seconds left at the current rate.
    pub eta_seconds: Option<u64>,
}

/// What a child tells the daemon, tagged with the job's index.
#[derive(Debug, Clone)]
pub enum ChildEvent {
    /// A progress line.
    Progress(usize, ChildProgress),
    /// The child ended; its result line, or one made from its exit status.
    Finished(usize, AcquisitionResult),
}

/// A running child.
pub struct RunningChild {
    child: Child,
    job: usize,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<Option<String>>>,
}

impl RunningChild {
    /// Starts `program --json run-job` with `acquire` as JSON on its stdin and piped output;
    /// progress events go to `events`. The child gets SIGHUP when the calling thread ends, so call
    /// this from the daemon's main loop, which lives as long as the daemon (Linux sends the
    /// parent-death signal when the forking *thread* exits).
    pub fn spawn(
        program: &PathBuf,
        acquire: &AcquireArgs,
        job: usize,
        events: Sender<ChildEvent>,
    ) -> std::io::Result<Self> {
        let json = serde_json::to_vec(acquire)?;
        let mut command = Command::new(program);
        command
            .args(["--json", "run-job"])
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let parent = Pid::this();
        // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
        // calls are allowed: it makes two system calls (prctl, getppid), compares integers and
        // builds an io::Error from an errno without allocating. It touches no lock or heap.
        unsafe {
            command.pre_exec(move || die_with_parent(parent));
        }
        let mut child = command.spawn()?;
        // A job is far smaller than a pipe's buffer, so this write does not wait for the child;
        // dropping the handle closes stdin, which ends the child's read.
        let written = child
            .stdin
            .take()
            .map_or(Ok(()), |mut stdin| stdin.write_all(&json));
        if let Err(err) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let stderr = std::thread::spawn(move || pass_through(stderr, job, &events));
        Ok(Self {
            child,
            job,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// The job index.
    pub fn job(&self) -> usize {
        self.job
    }

    /// The child's result once it has exited, without blocking otherwise.
    pub fn try_finish(&mut self) -> Option<AcquisitionResult> {
        let status = self.child.try_wait().ok()??;
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let last_error = self.stderr.take().and_then(|h| h.join().ok()).flatten();
        let parsed = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<AcquisitionResult>(line).ok());
        Some(parsed.unwrap_or_else(|| {
            let code = status.code().and_then(|c| u8::try_from(c).ok());
            AcquisitionResult::failed(
                if code == Some(Exit::Interrupted.code()) {
                    Exit::Interrupted
                } else {
                    Exit::Internal
                },
                last_error.unwrap_or_else(|| format!("the imaging process ended with {status}")),
            )
        }))
    }

    /// Asks the child to stop (SIGTERM): it aborts its upload and removes partial evidence.
    pub fn terminate(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Kills the child outright (after it ignored SIGTERM past the deadline).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }
}

/// In the child before exec: ask for SIGHUP when the parent dies, then make sure it has not died
/// already (between fork and prctl), in which case the signal would never come and the child is
/// not started at all.
fn die_with_parent(parent: Pid) -> std::io::Result<()> {
    prctl::set_pdeathsig(Signal::SIGHUP)?;
    if getppid() != parent {
        return Err(Errno::ESRCH.into());
    }
    Ok(())
}

/// Copies the child's log lines to our stderr and turns progress lines into events. Returns the
/// message of the last ERROR line, for a child that dies without a result line.
fn pass_through(stderr: impl Read, job: usize, events: &Sender<ChildEvent>) -> Option<String> {
    let mut last_error = None;
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    // Bytes, not `lines()`: a line that is not UTF-8 must not stop the draining, or the child
    // would block on a full pipe.
    while matches!(reader.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
        let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
        raw.clear();
        eprintln!("{line}");
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let fields = &value["fields"];
        if value["level"] == "ERROR" {
            last_error = fields["message"].as_str().map(str::to_owned);
        }
        if let Some(progress) = progress_of(fields) {
            let _ = events.send(ChildEvent::Progress(job, progress));
        }
    }
    last_error
}

/// The progress line's fields (`bytes_done`, `bytes_total`, `percent`, `mb_per_s`, `eta_s`);
/// numbers may arrive as JSON numbers or as strings (formatted fields).
fn progress_of(fields: &Value) -> Option<ChildProgress> {
    let number = |name: &str| -> Option<f64> {
        let field = &fields[name];
        field
            .as_f64()
            .or_else(|| field.as_str().and_then(|s| s.parse().ok()))
    };
    let bytes_done = fields["bytes_done"].as_u64()?;
    let bytes_total = fields["bytes_total"].as_u64()?;
    Some(ChildProgress {
        bytes_done,
        bytes_total,
        percent: number("percent").unwrap_or(0.0),
        mb_per_s: number("mb_per_s").unwrap_or(0.0),
        eta_seconds: fields["eta_s"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_parsed_whether_numbers_are_formatted_or_not() {
        let line: Value = serde_json::from_str(
            r#"{"level":"INFO","fields":{"message":"Imaging in progress.","bytes_done":10,"bytes_total":40,"percent":"25.0","mb_per_s":12.5,"eta_s":3}}"#,
        )
        .unwrap();
        let progress = progress_of(&line["fields"]).unwrap();
        assert_eq!(progress.bytes_done, 10);
        assert!((progress.percent - 25.0).abs() < f64::EPSILON);
        assert!((progress.mb_per_s - 12.5).abs() < f64::EPSILON);
        assert_eq!(progress.eta_seconds, Some(3));
        let other: Value =
            serde_json::from_str(r#"{"fields":{"message":"Source opened read-only."}}"#).unwrap();
        assert!(progress_of(&other["fields"]).is_none());
    }
}
