//! The upload over a link like real S3's (issue 12): each connection capped, so throughput comes
//! from parts in flight, which the upload must find on its own.

use std::time::Duration;

use collector_e2e::{LocalS3, Run, random_file};

use crate::linkproxy::{max_concurrent, start_capped, stop};

const MIB: u64 = 1 << 20;

/// Acquires a file of `mib` MiB (parts of 5 MiB) through a link of 4 MB/s per connection with
/// `extra` arguments; returns the most connections the link saw open at once.
fn connections_used(mib: u64, extra: &[&str]) -> usize {
    let local = LocalS3::with_bucket("evidence", false);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source.raw");
    random_file(&source, mib * MIB, 12);
    let (proxy, port) = start_capped(local.server.port(), 4.0, Duration::from_millis(20));
    let mut cmd = local.collector();
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .arg("acquire")
        .arg(&source)
        .args(["--dest", "s3://evidence/cases", "--incident", "IR-12"])
        .args(["--s3-force-path-style", "--piece-size", "0"])
        .args(extra);
    let run = Run::of(&mut cmd);
    let report = stop(proxy);
    run.expect_code(0);
    max_concurrent(&report)
}

// Issue 12: the upload starts with 16 parts in flight and adds more while they add throughput,
// which on a capped link they do, up to what the part memory holds: 120 MiB holds 23 parts of
// 5 MiB besides the one filling. After the first round of 16 parts, 24 remain, enough to fill 23;
// the SDK may hold one more connection open for a moment.
#[test]
fn a_capped_link_makes_the_upload_add_parts_in_flight_up_to_the_memory_bound() {
    // 200 MiB: 40 parts.
    let used = connections_used(200, &["--part-memory", "120MiB"]);
    assert!(
        (17..=24).contains(&used),
        "{used} connections: the upload should have grown past 16 and stayed within 23 parts"
    );
}

// A number the operator fixes is kept, however much the link would take.
#[test]
fn a_fixed_number_of_parts_in_flight_is_kept() {
    let used = connections_used(40, &["--parts-in-flight", "3"]);
    assert!(
        (3..=4).contains(&used),
        "{used} connections for 3 parts in flight"
    );
}
