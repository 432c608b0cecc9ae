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
use super::calls::{self, Attempt, Fetched};
use crate::error::{Error, Result, SnapshotFailure};

/// Attempts per block at our level; each GetSnapshotBlock inside also has the SDK's own retries
/// for throttling and transient errors. A block that four fetches brought back wrong (or not at
/// all) will not come back right on a fifth.
pub const BLOCK_ATTEMPTS: u32 = 4;

/// Wait before attempt `n` (2, 3, …): 1, 2, 4 s. Long enough for a throttled account to recover
/// its rate, short enough that a failing block costs seconds, not minutes.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.saturating_sub(2).min(4))
}

/// Why the bytes of a block are not the block, or `None` when they are.
pub fn check(fetched: &Fetched, block_size: usize) -> Option<String> {
    if fetched.data.len() != block_size {
        return Some(format!(
            "the body holds {} bytes, not the block size {block_size}",
            fetched.data.len()
        ));
    }
    if fetched.data_length.and_then(|n| usize::try_from(n).ok()) != Some(block_size) {
        return Some(format!(
            "x-amz-Data-Length is {:?}, not the block size {block_size}",
            fetched.data_length
        ));
    }
    if fetched.algorithm.as_ref().map(|a| a.as_str()) != Some("SHA256") {
        return Some(format!(
            "the checksum algorithm is {:?}, not SHA256",
            fetched.algorithm.as_ref().map(|a| a.as_str())
        ));
    }
    let Some(expected) = &fetched.checksum else {
        return Some("EBS sent no checksum".to_owned());
    };
    let actual = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&fetched.data));
    (&actual != expected).then(|| {
        format!(
            "the bytes do not match their checksum: EBS says {expected}, the bytes hash to {actual}"
        )
    })
}

/// Block `index`, checked, into `out` (exactly the block size). Retries what can be retried.
pub async fn fetch_into(
    ebs: &aws_sdk_ebs::Client,
    id: &SnapshotId,
    index: u64,
    token: &str,
    out: &mut [u8],
) -> Result<()> {
    let offset = index * out.len() as u64;
    let failed = |message: String| Error::Snapshot {
        snapshot_id: id.to_string(),
        failure: SnapshotFailure::Read,
        message,
    };
    let wire_index = i32::try_from(index)
        .map_err(|_| failed(format!("block {index} is past what the API can address")))?;
    let mut last = String::new();
    for attempt in 1..=BLOCK_ATTEMPTS {
        if attempt > 1 {
            tracing::warn!(snapshot = %id, block = index, offset, attempt, reason = %last,
                "Fetching the snapshot block again.");
            tokio::time::sleep(backoff(attempt)).await;
        }
        match calls::get_block(ebs, id, wire_index, token).await {
            Err(Attempt::Fatal(err)) => return Err(err),
            Err(Attempt::Again(why)) => last = why,
            Ok(fetched) => match check(&fetched, out.len()) {
                Some(why) => last = why,
                None => {
                    out.copy_from_slice(&fetched.data);
                    return Ok(());
                }
            },
        }
    }
    Err(failed(format!(
        "block {index} (bytes {offset}..{}) failed {BLOCK_ATTEMPTS} attempts; the last: {last}",
        offset + out.len() as u64
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ebs::types::ChecksumAlgorithm;

    fn fetched(data: &[u8]) -> Fetched {
        Fetched {
            data: bytes::Bytes::copy_from_slice(data),
            checksum: Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))),
            algorithm: Some(ChecksumAlgorithm::ChecksumAlgorithmSha256),
            data_length: i32::try_from(data.len()).ok(),
        }
    }

    #[test]
    fn a_block_passes_only_with_its_own_checksum_length_and_algorithm() {
        let block = vec![7u8; 4096];
        assert_eq!(check(&fetched(&block), 4096), None);

        let mut flipped = fetched(&block);
        let mut data = block.clone();
        data[100] ^= 1;
        flipped.data = data.into();
        let why = check(&flipped, 4096).unwrap();
        assert!(why.contains("do not match their checksum"), "{why}");

        let short = fetched(&block[..4000]);
        assert!(check(&short, 4096).unwrap().contains("4000 bytes"));
        let mut length = fetched(&block);
        length.data_length = Some(4095);
        assert!(check(&length, 4096).unwrap().contains("Data-Length"));
        let mut none = fetched(&block);
        none.checksum = None;
        assert!(check(&none, 4096).unwrap().contains("no checksum"));
        let mut other = fetched(&block);
        other.algorithm = None;
        assert!(check(&other, 4096).unwrap().contains("not SHA256"));
    }

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped() {
        let waits: Vec<u64> = (2..=BLOCK_ATTEMPTS).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4]);
        assert_eq!(backoff(40), Duration::from_secs(16));
    }
}
