//! Peak memory is flat in device size: the fixed buffer pool is all the data path allocates.

use std::fs;

use collector_e2e::{LoopDevice, Run, acquire, require_root};

const MIB: u64 = 1 << 20;
/// Default pipeline: (32 reads in flight + 4 queued) × 1 MiB = 36 MiB of buffers, plus the program.
const PEAK_RSS_BOUND: u64 = 80 * MIB;
/// How much more a 32× larger device may cost: nothing grows per chunk, so only noise.
const GROWTH_BOUND: u64 = 8 * MIB;

fn peak_rss_imaging(size: u64) -> u64 {
    let work = tempfile::tempdir().unwrap();
    let sparse = work.path().join("sparse.raw");
    fs::File::create(&sparse).unwrap().set_len(size).unwrap();
    let dev = LoopDevice::attach(&sparse, &["--direct-io=on"]);
    let (run, peak_rss) =
        Run::measuring_peak_rss(acquire(dev.path(), work.path().join("out")).args(["--name", "m"]));
    run.expect_code(0);
    peak_rss
}

#[test]
fn peak_memory_does_not_grow_with_device_size() {
    require_root();
    let small = peak_rss_imaging(64 * MIB);
    let large = peak_rss_imaging(2048 * MIB);
    eprintln!(
        "peak RSS: 64 MiB source {} KiB, 2 GiB source {} KiB",
        small / 1024,
        large / 1024
    );
    assert!(
        small < PEAK_RSS_BOUND,
        "64 MiB source: peak RSS {small} bytes"
    );
    assert!(
        large < PEAK_RSS_BOUND,
        "2 GiB source: peak RSS {large} bytes"
    );
    assert!(
        large < small + GROWTH_BOUND,
        "peak RSS grew from {small} to {large} bytes"
    );
}
