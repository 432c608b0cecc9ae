//! One snapshot block: fetched, checked against the SHA-256 EBS keeps for it, retried.
//!
//! EBS returns each block with the base64 SHA-256 it computed when the block was written. The
//! bytes are hashed here before they reach the pipeline, so a block damaged anywhere between
//! EBS's storage and this process is never hashed into the evidence or stored: it is fetched
//! again, and after [`BLOCK_ATTEMPTS`] the run fails naming the block.

use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::SnapshotId;
use aws_sdk_ebs::types::ChecksumAlgorithm;

use super::calls::{self, Attempt, Claims};
use crate::error::{Result, SnapshotFailure};

/// Attempts per block at our level; each GetSnapshotBlock inside also has the SDK's own retries
/// for throttling and transient errors. A block that four fetches brought back wrong (or not at
/// all) will not come back right on a fifth.
pub(super) const BLOCK_ATTEMPTS: u32 = 4;

/// Wait before attempt `n` (2, 3, …): 1, 2, 4 s. Long enough for a throttled account to recover
/// its rate, short enough that a failing block costs seconds, not minutes.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.saturating_sub(2).min(4))
}

/// Why `data` is not the block EBS describes in `claims`, or `None` when it is.
pub(super) fn check(claims: &Claims, data: &[u8]) -> Option<String> {
    let block_size = data.len();
    if claims.data_length.and_then(|n| usize::try_from(n).ok()) != Some(block_size) {
        return Some(format!(
            "x-amz-Data-Length is {:?}, not the block size {block_size}",
            claims.data_length
        ));
    }
    if claims.algorithm.as_ref().map(ChecksumAlgorithm::as_str) != Some("SHA256") {
        return Some(format!(
            "the checksum algorithm is {:?}, not SHA256",
            claims.algorithm.as_ref().map(ChecksumAlgorithm::as_str)
        ));
    }
    let Some(expected) = &claims.checksum else {
        return Some("EBS sent no checksum".to_owned());
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data));
    (&actual != expected).then(|| {
        format!(
            "the bytes do not match their checksum: EBS says {expected}, the bytes hash to {actual}"
        )
    })
}

/// Block `index`, checked, into `out` (exactly the block size). Retries what can be retried.
pub(super) async fn fetch_into(
    ebs: &aws_sdk_ebs::Client,
    id: &SnapshotId,
    index: u64,
    token: &str,
    out: &mut [u8],
) -> Result<()> {
    let offset = index * out.len() as u64;
    let wire_index = calls::wire_index(id, index)?;
    let mut last = String::new();
    for attempt in 1..=BLOCK_ATTEMPTS {
        if attempt > 1 {
            tracing::warn!(snapshot = %id, block = index, offset, attempt, reason = %last,
                "Fetching the snapshot block again.");
            tokio::time::sleep(backoff(attempt)).await;
        }
        match calls::get_block(ebs, id, wire_index, token, out).await {
            Err(Attempt::Fatal(err)) => return Err(err),
            Err(Attempt::Again(why)) => last = why,
            Ok(claims) => match check(&claims, out) {
                Some(why) => last = why,
                None => return Ok(()),
            },
        }
    }
    Err(calls::snapshot_error(
        id,
        SnapshotFailure::Read,
        format!(
            "block {index} (bytes {offset}..{}) failed {BLOCK_ATTEMPTS} attempts; the last: {last}",
            offset + out.len() as u64
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(data: &[u8]) -> Claims {
        Claims {
            checksum: Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))),
            algorithm: Some(ChecksumAlgorithm::ChecksumAlgorithmSha256),
            data_length: i32::try_from(data.len()).ok(),
        }
    }

    #[test]
    fn a_block_passes_only_with_its_own_checksum_length_and_algorithm() {
        let block = vec![7u8; 4096];
        assert_eq!(check(&claims(&block), &block), None);

        let mut flipped = block.clone();
        flipped[100] ^= 1;
        let why = check(&claims(&block), &flipped).unwrap();
        assert!(why.contains("do not match their checksum"), "{why}");

        let mut length = claims(&block);
        length.data_length = Some(4095);
        assert!(
            check(&length, &block)
                .unwrap()
                .contains("Data-Length is Some(4095)")
        );
        length.data_length = None;
        assert!(
            check(&length, &block)
                .unwrap()
                .contains("Data-Length is None")
        );
        let mut none = claims(&block);
        none.checksum = None;
        assert!(check(&none, &block).unwrap().contains("no checksum"));
        let mut other = claims(&block);
        other.algorithm = None;
        assert!(check(&other, &block).unwrap().contains("not SHA256"));
        other.algorithm = Some(ChecksumAlgorithm::from("CRC32"));
        assert!(
            check(&other, &block)
                .unwrap()
                .contains("Some(\"CRC32\"), not SHA256")
        );
    }

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped() {
        let waits: Vec<u64> = (2..=BLOCK_ATTEMPTS).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4]);
        assert_eq!(backoff(40), Duration::from_secs(16));
    }
}
