//! Shared support for the end-to-end suites: the real binary, real loop devices, a real FUSE
//! filesystem that injects kernel I/O errors and latency, real tmpfs mounts, and loopback stand-ins
//! for AWS: moto for S3, CloudWatch Logs and the EBS direct APIs, a fault-injecting proxy, an IMDSv2
//! server; EBS snapshots written through the EBS API.
//!
//! The suites need root (loop devices, mounts) and what `tests/helpers/setup-deps.sh` installs
//! (`tests/run` runs it first). A missing prerequisite is a test failure with a message saying what
//! to install, never a silent skip.

pub mod cwlogs;
pub mod ebs;
pub mod fakehost;
pub mod fixtures;
pub mod helper;
pub mod imds;
pub mod kms;
pub mod loopdev;
pub mod process;
pub mod s3server;
pub mod silent;
pub mod stepfunctions;

use std::path::PathBuf;

pub use ebs::{EbsRequest, ImageDigests, SnapshotImage, SnapshotServer};
pub use fakehost::FakeHost;
pub use fixtures::{FaultFs, Tmpfs};
pub use imds::{Down, ImdsServer};
pub use kms::Kms;
pub use loopdev::LoopDevice;
pub use process::{Run, acquire, collector, without_inherited_settings};
pub use s3server::{FaultProxy, LocalS3, MotoServer};
pub use silent::{SilentListener, refused_endpoint, refused_port};
pub use stepfunctions::Flow;

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test drives loop devices and mounts and must run as root (CI runs it as root); \
         run `sudo tests/run` or the README's test command"
    );
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A file of `size` pseudo-random bytes from `seed` (reproducible, incompressible).
pub fn random_file(path: &std::path::Path, size: u64, seed: u64) {
    use rand::{RngExt, SeedableRng};
    use std::io::Write;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).expect("create random file"));
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        rng.fill(&mut block[..]);
        let n = usize::try_from(left.min(block.len() as u64)).expect("fits");
        file.write_all(&block[..n]).expect("write random file");
        left -= n as u64;
    }
    file.flush().expect("flush random file");
}

/// SHA-256 of a byte slice, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// BLAKE3 of a byte slice, hex.
pub fn blake3_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The file `file_name` while a run writes it inside its staging directory `OUT/.<name>.<run>.staging/`
/// (the first one found), so a test can wait for a run to be under way.
pub fn staged_file(out: &std::path::Path, file_name: &str) -> Option<PathBuf> {
    std::fs::read_dir(out).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let candidate = entry.path().join(file_name);
        (name.starts_with('.') && name.ends_with(".staging") && candidate.exists())
            .then_some(candidate)
    })
}

/// Waits (at most 30 s, else the test fails) until a run has created `file_name` in its staging
/// directory — or, as the code before issue 9 did, as `<file_name>.partial` beside the evidence, so
/// that the integrity suite reproduces the old holes against an old binary.
pub fn wait_for_staged(out: &std::path::Path, file_name: &str) -> PathBuf {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let legacy = out.join(format!("{file_name}.partial"));
    loop {
        if let Some(path) = staged_file(out, file_name) {
            return path;
        }
        if legacy.exists() {
            return legacy;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
