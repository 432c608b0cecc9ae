//! Prints how the S3 sink would upload images of the given sizes at the default options: part
//! size, objects, parts in flight and the memory of the part buffers. `tests/bench/table.sh` prints
//! it under its measurements, for docs/s3.md, docs/performance.md and issue notes.
//!
//! `cargo run --release -p imaging --example s3_plan -- 16GiB 1TiB 16TiB`

use imaging::s3::S3Options;

const MIB: f64 = (1u64 << 20) as f64;

/// `16GiB`, `1TiB` or a byte count.
fn parse(text: &str) -> Option<u64> {
    let units = [("TiB", 40), ("GiB", 30), ("MiB", 20)];
    for (unit, shift) in units {
        if let Some(n) = text.strip_suffix(unit) {
            return n.parse::<u64>().ok()?.checked_mul(1 << shift);
        }
    }
    text.parse().ok()
}

fn main() {
    let options = S3Options::default();
    println!(
        "| disk | part size | parts per object | objects | parts in flight (start → most) | part buffers (most) |"
    );
    println!("|---|---|---|---|---|---|");
    for arg in std::env::args().skip(1) {
        let Some(size) = parse(&arg) else {
            eprintln!("s3_plan: {arg:?} is not a size like 16GiB");
            std::process::exit(2);
        };
        match options.plan(size) {
            Ok(plan) => println!(
                "| {arg} | {:.0} MiB | {} | {} | {} → {} | {:.0} MiB |",
                plan.layout.part_size as f64 / MIB,
                plan.layout.segment_size.div_ceil(plan.layout.part_size),
                plan.layout.segments,
                plan.ramp.limit(),
                plan.ramp.max(),
                plan.part_buffers as f64 / MIB,
            ),
            Err(err) => println!("| {arg} | {err} | | | | |"),
        }
    }
}
