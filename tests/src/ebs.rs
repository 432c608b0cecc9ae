//! EBS snapshots for the suites, written as a backup tool writes them: through the EBS direct APIs
//! (StartSnapshot, PutSnapshotBlock per 512 KiB block with its base64 SHA-256, CompleteSnapshot)
//! into the local moto server, whose EBS `tests/helpers/motoebs.py` makes answer as EBS does. And
//! the image a volume restored from such a snapshot gives: the blocks written, zeros everywhere
//! else, as long as the volume (whole GiB) — streamed, so a test never holds a volume in memory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use base64::Engine;
use sha2::Digest;

/// The EBS snapshot block: 512 KiB, the only size PutSnapshotBlock takes and GetSnapshotBlock
/// returns.
pub const BLOCK_SIZE: usize = 524_288;

/// A GiB, the unit of a volume's (and so a snapshot's) size.
pub const GIB: u64 = 1 << 30;

/// PutSnapshotBlock requests in flight while writing: moto serves each on its own thread, and 8
/// keep both cores busy without queueing hundreds of 512 KiB bodies in memory.
const PUTS_IN_FLIGHT: usize = 8;

/// The byte length of the random data of [`SnapshotImage::odd_with_holes`]: odd, not a multiple of
/// a sector or a block (6 whole blocks and 154 279 bytes of a seventh).
pub const ODD_DATA_LEN: usize = 3_300_007;

/// An EBS client for `endpoint` (moto, or a fault proxy in front of it) with the test credentials
/// of [`crate::MotoServer::env`].
pub fn client(endpoint: &str, runtime: &tokio::runtime::Runtime) -> aws_sdk_ebs::Client {
    let creds = aws_sdk_ebs::config::Credentials::new("testing", "testing", None, None, "tests");
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_ebs::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load(),
    );
    aws_sdk_ebs::Client::new(&config)
}

/// The checksum EBS keeps with a block and returns in `x-amz-Checksum`: its SHA-256, base64.
pub fn block_checksum(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
}

/// Writes a snapshot of a `volume_size_gib` GiB volume holding `blocks` (index, 512 KiB of data;
/// produced lazily, at most [`PUTS_IN_FLIGHT`] held at once) and completes it. Returns its ID.
pub async fn put_snapshot(
    client: &aws_sdk_ebs::Client,
    volume_size_gib: i64,
    blocks: impl IntoIterator<Item = (i32, Vec<u8>)>,
) -> String {
    let started = client
        .start_snapshot()
        .volume_size(volume_size_gib)
        .description("written by the collector-e2e suites")
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartSnapshot: {e:?}"));
    let snapshot_id = started
        .snapshot_id()
        .expect("StartSnapshot returns an ID")
        .to_owned();
    let mut in_flight = tokio::task::JoinSet::<Result<(), String>>::new();
    let mut written = 0;
    for (index, data) in blocks {
        assert_eq!(data.len(), BLOCK_SIZE, "block {index} is not 512 KiB");
        if in_flight.len() >= PUTS_IN_FLIGHT {
            let put = in_flight.join_next().await.expect("a put in flight");
            put.expect("a put task").unwrap_or_else(|e| panic!("{e}"));
        }
        let put = client
            .put_snapshot_block()
            .snapshot_id(&snapshot_id)
            .block_index(index)
            .data_length(i32::try_from(BLOCK_SIZE).expect("512 KiB fits"))
            .checksum(block_checksum(&data))
            .checksum_algorithm(aws_sdk_ebs::types::ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(data.into());
        in_flight.spawn(async move {
            put.send()
                .await
                .map(|_| ())
                .map_err(|e| format!("PutSnapshotBlock {index}: {e:?}"))
        });
        written += 1;
    }
    while let Some(put) = in_flight.join_next().await {
        put.expect("a put task").unwrap_or_else(|e| panic!("{e}"));
    }
    client
        .complete_snapshot()
        .snapshot_id(&snapshot_id)
        .changed_blocks_count(written)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CompleteSnapshot {snapshot_id}: {e:?}"));
    snapshot_id
}

/// What a snapshot holds: its volume size and the blocks written to it. The image of the volume is
/// these blocks at `index × 512 KiB` and zeros everywhere else.
#[derive(Debug, Clone)]
pub struct SnapshotImage {
    volume_size_gib: u64,
    blocks: BTreeMap<i32, Vec<u8>>,
}

impl SnapshotImage {
    /// A snapshot of a `volume_size_gib` GiB volume with no block written yet.
    pub fn new(volume_size_gib: u64) -> Self {
        assert!(volume_size_gib >= 1, "EBS volumes have at least 1 GiB");
        Self {
            volume_size_gib,
            blocks: BTreeMap::new(),
        }
    }

    /// Writes block `index` (512 KiB).
    pub fn with_block(mut self, index: i32, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), BLOCK_SIZE, "block {index} is not 512 KiB");
        assert!(
            u64::try_from(index).is_ok_and(|i| i < self.block_count()),
            "block {index} is outside a {} GiB volume",
            self.volume_size_gib
        );
        self.blocks.insert(index, data);
        self
    }

    /// "An odd-sized random image with holes", as a 1 GiB volume's snapshot: [`ODD_DATA_LEN`]
    /// random bytes from `seed` at the start (blocks 0–6, the rest of block 6 zero), of which
    /// blocks 2 and 4 are never written (holes inside the data), block 3 is written all zero (EBS
    /// keeps it and lists it), and two random blocks far out: 1000 and the volume's last (2047),
    /// so the image's end comes from a block and not from zero-filling. 7 blocks written.
    pub fn odd_with_holes(seed: u64) -> Self {
        let mut data = vec![0u8; ODD_DATA_LEN.div_ceil(BLOCK_SIZE) * BLOCK_SIZE];
        fill_random(&mut data[..ODD_DATA_LEN], seed);
        let mut image = Self::new(1);
        for (index, block) in (0..).zip(data.chunks(BLOCK_SIZE)) {
            match index {
                2 | 4 => {}
                3 => image = image.with_block(3, vec![0; BLOCK_SIZE]),
                _ => image = image.with_block(index, block.to_vec()),
            }
        }
        let last = i32::try_from(image.block_count() - 1).expect("fits");
        for (index, salt) in [(1000, 1), (last, 2)] {
            let mut block = vec![0; BLOCK_SIZE];
            fill_random(&mut block, seed ^ (salt << 32));
            image = image.with_block(index, block);
        }
        image
    }

    /// The volume's size in GiB (StartSnapshot's VolumeSize).
    pub fn volume_size_gib(&self) -> u64 {
        self.volume_size_gib
    }

    /// The volume's size in bytes: the image's length.
    pub fn size_bytes(&self) -> u64 {
        self.volume_size_gib * GIB
    }

    /// How many 512 KiB blocks the volume has.
    pub fn block_count(&self) -> u64 {
        self.size_bytes() / BLOCK_SIZE as u64
    }

    /// The indices of the blocks written, ascending.
    pub fn written(&self) -> Vec<i32> {
        self.blocks.keys().copied().collect()
    }

    /// Writes this snapshot through the EBS API of `endpoint`; returns its ID.
    pub fn put(&self, endpoint: &str, runtime: &tokio::runtime::Runtime) -> String {
        let client = client(endpoint, runtime);
        let size = i64::try_from(self.volume_size_gib).expect("fits");
        runtime.block_on(put_snapshot(
            &client,
            size,
            self.blocks.iter().map(|(i, d)| (*i, d.clone())),
        ))
    }

    /// Feeds the whole image to `sink`, one 512 KiB block at a time, zeros where nothing was written.
    pub fn for_each_block(&self, mut sink: impl FnMut(u64, &[u8])) {
        let zeros = vec![0u8; BLOCK_SIZE];
        for index in 0..self.block_count() {
            let block = i32::try_from(index)
                .ok()
                .and_then(|i| self.blocks.get(&i))
                .map_or(&zeros[..], |b| &b[..]);
            sink(index, block);
        }
    }

    /// The image's SHA-256 and BLAKE3, hex, computed by streaming it.
    pub fn digests(&self) -> ImageDigests {
        let mut sha256 = sha2::Sha256::new();
        let mut blake3 = blake3::Hasher::new();
        self.for_each_block(|_, block| {
            sha256.update(block);
            blake3.update(block);
        });
        ImageDigests {
            sha256: hex::encode(sha256.finalize()),
            blake3: blake3.finalize().to_hex().to_string(),
        }
    }

    /// Panics unless the file at `path` is this image byte for byte, naming the first block that
    /// differs (read in 512 KiB steps, never whole).
    pub fn assert_matches_file(&self, path: &Path) {
        let mut file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let length = file.metadata().expect("image metadata").len();
        assert_eq!(
            length,
            self.size_bytes(),
            "{} has {length} bytes, the volume {}",
            path.display(),
            self.size_bytes()
        );
        let mut read = vec![0u8; BLOCK_SIZE];
        self.for_each_block(|index, expected| {
            file.read_exact(&mut read)
                .unwrap_or_else(|e| panic!("reading block {index} of {}: {e}", path.display()));
            assert!(
                read == expected,
                "block {index} of {} differs from the snapshot's (written: {})",
                path.display(),
                self.blocks
                    .contains_key(&i32::try_from(index).unwrap_or(-1))
            );
        });
    }
}

/// Hex digests of a whole image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigests {
    /// SHA-256, hex.
    pub sha256: String,
    /// BLAKE3, hex.
    pub blake3: String,
}

/// Writes a snapshot of a `volume_size_gib` GiB volume whose every block is random bytes from
/// `seed`, produced one at a time (a 1 GiB volume is never held in memory), and returns its ID;
/// [`random_volume_block`] gives any block's bytes again.
pub async fn put_random_snapshot(
    client: &aws_sdk_ebs::Client,
    volume_size_gib: u64,
    seed: u64,
) -> String {
    let blocks = volume_size_gib * GIB / BLOCK_SIZE as u64;
    let size = i64::try_from(volume_size_gib).expect("fits");
    put_snapshot(
        client,
        size,
        (0..blocks).map(move |i| {
            let index = i32::try_from(i).expect("block index fits");
            (index, random_volume_block(seed, i))
        }),
    )
    .await
}

/// Block `index` of [`put_random_snapshot`]'s volume from `seed`.
pub fn random_volume_block(seed: u64, index: u64) -> Vec<u8> {
    let mut block = vec![0u8; BLOCK_SIZE];
    fill_random(&mut block, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index);
    block
}

/// Fills `buf` with pseudo-random bytes from `seed` (reproducible, incompressible).
fn fill_random(buf: &mut [u8], seed: u64) {
    use rand::{RngExt, SeedableRng};
    rand::rngs::StdRng::seed_from_u64(seed).fill(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_odd_image_has_its_holes_its_zero_block_and_its_far_blocks() {
        let image = SnapshotImage::odd_with_holes(7);
        assert_eq!(image.written(), vec![0, 1, 3, 5, 6, 1000, 2047]);
        assert_eq!(image.size_bytes(), GIB);
        assert!(image.blocks[&3].iter().all(|b| *b == 0));
        let tail = ODD_DATA_LEN - 6 * BLOCK_SIZE;
        assert!(image.blocks[&6][tail..].iter().all(|b| *b == 0));
        assert!(image.blocks[&6][..tail].iter().any(|b| *b != 0));
        assert_ne!(image.blocks[&1000], image.blocks[&2047]);
    }

    #[test]
    fn the_streamed_image_is_volume_sized_with_zeros_where_nothing_was_written() {
        let image = SnapshotImage::new(1)
            .with_block(1, vec![7; BLOCK_SIZE])
            .with_block(2047, vec![9; BLOCK_SIZE]);
        let mut seen = Vec::new();
        image.for_each_block(|index, block| {
            let expected = match index {
                1 => 7,
                2047 => 9,
                _ => 0,
            };
            assert!(block.iter().all(|b| *b == expected), "block {index}");
            seen.push(index);
        });
        assert_eq!(seen, (0..2048).collect::<Vec<_>>());
    }

    #[test]
    fn a_block_checksum_is_base64_sha256() {
        assert_eq!(
            block_checksum(b"abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
