//! The agent around the `imaging` engine: command line, destinations, job context, device
//! detection and reporting. The binary (`main.rs`) only parses, dispatches and maps results to exit
//! codes; everything here is a library so the end-to-end suites can drive the same code paths.
//!
//! # Layout
//! - `cli`: the command line (clap derive).
//! - `acquire` / `verify`: the one-shot commands.
//! - `destination`: where evidence goes (local directory or S3) and how companions are stored.
//! - `aws`: the shared tokio runtime and AWS clients.
//! - `cloudwatch`: reporting readiness and capture events to CloudWatch Logs, beside imaging.
//! - `exit`: outcomes → documented exit codes.
//! - `logging`, `progress`, `signals`, `sysinfo`: process plumbing.

pub mod acquire;
pub mod aws;
pub mod cli;
pub mod cloudwatch;
pub mod destination;
pub mod exit;
pub mod logging;
pub mod progress;
pub mod signals;
pub mod sysinfo;
pub mod verify;

/// `--version` output: package version and git revision, so a manifest or log line can be traced to
/// the exact build that produced it.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FORENSIC_COLLECTOR_GIT_REVISION"),
    ")"
);
