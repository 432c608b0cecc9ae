//! `putsnapshot`: writes a snapshot of random blocks through the EBS direct APIs of a local server
//! (StartSnapshot, PutSnapshotBlock with each block's base64 SHA-256, CompleteSnapshot), as a backup
//! tool would, and the same bytes to a file, so one benchmark can image the snapshot and a loop
//! device over the file and compare. Benchmarks only (`tests/bench/snapshot.sh`); not a test.
//!
//! ```text
//! putsnapshot --endpoint http://127.0.0.1:PORT [--size-gib 1] [--seed 13] [--file PATH]
//! ```
//! prints the snapshot ID on stdout. Every block of the volume is written (a snapshot with no
//! holes: the worst case for the API, one GetSnapshotBlock per 512 KiB). Credentials and region
//! are the suites' test ones; the endpoint must be loopback.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use collector_e2e::ebs::{self, BLOCK_SIZE, GIB};

#[derive(Parser)]
#[command(about = "Writes a random snapshot through a local EBS API, and its bytes to a file")]
struct Args {
    /// The server's endpoint, `http://127.0.0.1:PORT`.
    #[arg(long)]
    endpoint: String,
    /// The volume's size in GiB (every block is written).
    #[arg(long, default_value_t = 1)]
    size_gib: u64,
    /// Seed of the blocks' bytes.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// Also write the volume's bytes here (created; must not exist).
    #[arg(long)]
    file: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    assert!(
        args.endpoint.starts_with("http://127.0.0.1:"),
        "the endpoint must be a loopback server: {}",
        args.endpoint
    );
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let client = ebs::client(&args.endpoint, &runtime);
    let mut file = args.file.as_ref().map(|path| {
        std::io::BufWriter::new(
            std::fs::File::create_new(path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display())),
        )
    });
    let blocks = args.size_gib * GIB / BLOCK_SIZE as u64;
    let seed = args.seed;
    let size = i64::try_from(args.size_gib).expect("size fits");
    let id = runtime.block_on(ebs::put_snapshot(
        &client,
        size,
        (0..blocks).map(|i| {
            let block = ebs::random_volume_block(seed, i);
            if let Some(file) = file.as_mut() {
                file.write_all(&block).expect("write the volume file");
            }
            (i32::try_from(i).expect("block index fits"), block)
        }),
    ));
    if let Some(mut file) = file {
        file.flush().expect("flush the volume file");
    }
    println!("{id}");
}
