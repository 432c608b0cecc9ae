//! The end-to-end suites, one module each, in one test binary (ripgrep's habit): each binary of
//! this crate links the AWS SDK, so the twelve binaries the suites once were cost twelve links and
//! gigabytes of `target/`; now they are this one.
//! A module is a suite; run one with its path as the filter, e.g.
//! `cargo test -p collector-e2e --test e2e s3::` (which also matches `integrity::s3::`) or
//! `cargo test -p collector-e2e --test e2e -- --skip integrity:: s3::`.

// A scenario reads top to bottom as one story (start the servers, run, check what was stored);
// the workspace's 80-line limit is for the product's functions.
#![allow(clippy::too_many_lines)]

mod acquire;
mod bad_input;
mod bad_sectors;
mod boot;
mod cloudwatch;
mod config;
mod custody;
mod daemon;
mod daemon_snapshot;
mod flow;
mod integrity;
mod linkproxy;
mod memory;
mod packaging;
mod queue;
mod ram;
mod s3;
mod s3_faults;
mod s3_link;
mod s3_segments;
mod snapshot;
mod snapshot_faults;
mod snapshot_server;
mod tls;
mod watch;
