//! The agent around the `imaging` engine: command line, destinations, job context, device
//! detection and reporting. The binary (`main.rs`) only parses, dispatches and maps results to exit
//! codes; everything here is a library so the end-to-end suites can drive the same code paths.
//!
//! # Layout
//! - `cli`: the command line (clap derive); `cmd`: one module per command (`acquire`, `verify`,
//!   `watch`, `config`), each turning parsed arguments into work and an exit (`cmd::acquire`
//!   holds where evidence goes, `destination`, as only it uses it).
//! - `aws`: the AWS clients and `aws::runtime()`, the process's one tokio runtime, built on first
//!   use (a local acquisition starts none) and shared by an S3 destination, a snapshot source,
//!   `verify` of S3 and the CloudWatch reporter.
//! - `config`: the daemon's layered, validated configuration; `imds`: EC2 user data and instance
//!   ID over IMDSv2.
//! - `custody`: the manifest's chain-of-custody facts (STS, IMDS, the executable's hash) and KMS
//!   signing of its statement.
//! - `cloudwatch`: reporting readiness and capture events to CloudWatch Logs, beside imaging.
//! - `ids`: the AWS identifiers taken as text (account, instance, KMS key), one check each.
//! - `exit`: outcomes → documented exit codes (`--help` lists them from there; a test holds the
//!   README's table to them).
//! - `result`: the one-line JSON result of an acquisition, for callers.
//! - `logging`, `progress`, `signals`, `sysinfo`: process plumbing.
//! - `detect`: device detection (inotify on `/dev/disk`, whole disk via sysfs, settle, dedupe,
//!   refusal).
//! - `daemon`: the loop behind `watch`: detected disks → jobs (child `run-job` processes,
//!   each an `acquire` given its job on stdin) →
//!   reports → exit, stay or power off.

// No function over 80 lines (clippy.toml): the lib build checks every non-test function; a test
// build exempts only the tests, whose tables of cases read better whole.
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod aws;
pub mod cli;
pub mod cloudwatch;
pub mod cmd;
pub mod config;
pub mod custody;
pub mod daemon;
pub mod detect;
pub mod exit;
pub mod ids;
pub mod imds;
pub mod logging;
pub mod priority;
pub mod progress;
pub mod queue;
pub mod result;
pub mod signals;
pub mod sysinfo;

/// `--version` output: package version and git revision, so a manifest or log line can be traced to
/// the exact build that produced it.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FORENSIC_COLLECTOR_GIT_REVISION"),
    ")"
);
