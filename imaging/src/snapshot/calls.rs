//! The EBS and EC2 calls a snapshot run makes, and what their errors mean for the run.
//!
//! The SDK has already retried what it knows to be transient (throttling, 5xx, dropped
//! connections) with backoff by the time an error reaches here. What remains is classified by
//! the service's error code into the source error classes: no such snapshot, no permission, or a
//! read that failed. A failed read of a block is tried again by `block` (EBS's
//! `ConcurrentLimitExceededException` and `ServiceQuotaExceededException` are not among the
//! SDK's retryable codes, and a body can break off after the SDK handed it over).

use aws_sdk_ebs::config::http::HttpResponse;
use aws_sdk_ebs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ebs::types::ChecksumAlgorithm;
use chrono::{DateTime, Utc};

use super::SnapshotId;
use super::listing::{Continuation, Listing};
use crate::error::{Error, Result, SnapshotFailure};

/// Blocks asked for per ListSnapshotBlocks page: the API's maximum, so a 1 TiB volume with
/// every block written takes 210 calls.
pub(super) const LIST_PAGE: i32 = 10_000;

/// What a failed call means for the run.
pub(super) fn failure_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> SnapshotFailure {
    match err.code() {
        Some("ResourceNotFoundException" | "InvalidSnapshot.NotFound") => SnapshotFailure::NotFound,
        Some("AccessDeniedException" | "UnauthorizedOperation" | "AuthFailure") => {
            SnapshotFailure::Denied
        }
        Some("ValidationException") => SnapshotFailure::Unusable,
        _ => SnapshotFailure::Read,
    }
}

/// What a failure means once the run is past [`super::Snapshot::open`], where the snapshot was
/// found, listed and one block read: not found now means deleted mid-run (exit 13, not 10), and a
/// validation error (an expired token) is a failed read (14), not an unusable source.
pub(super) fn mid_run(err: Error) -> Error {
    match err {
        Error::Snapshot {
            snapshot_id,
            failure,
            message,
        } => Error::Snapshot {
            snapshot_id,
            failure: match failure {
                SnapshotFailure::NotFound => SnapshotFailure::Vanished,
                SnapshotFailure::Unusable => SnapshotFailure::Read,
                other => other,
            },
            message,
        },
        other => other,
    }
}

/// The run's error about snapshot `id`.
pub(super) fn snapshot_error(id: &SnapshotId, failure: SnapshotFailure, message: String) -> Error {
    Error::Snapshot {
        snapshot_id: id.to_string(),
        failure,
        message,
    }
}

/// Block `index` as the API spells it (a 32-bit integer; every index of a volume EBS makes fits).
pub(super) fn wire_index(id: &SnapshotId, index: u64) -> Result<i32> {
    i32::try_from(index).map_err(|_| {
        snapshot_error(
            id,
            SnapshotFailure::Read,
            format!("block {index} is past what the API can address"),
        )
    })
}

/// The run's error for a failed call: its class and what the service said.
pub(super) fn call_error<E>(id: &SnapshotId, action: &str, err: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    snapshot_error(
        id,
        failure_of(err),
        format!("cannot {action}: {}", said(err)),
    )
}

/// What a failed call comes to, in one line for the log and CloudWatch: the service's error code,
/// message and HTTP status, or the transport's error chain. Never the raw response (the SDK's
/// `Display` of a service error can carry its headers and body).
pub(super) fn said<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let SdkError::ServiceError(context) = err else {
        return DisplayErrorContext(err).to_string();
    };
    let (inner, status) = (context.err(), context.raw().status().as_u16());
    match (inner.code(), inner.message().filter(|m| !m.is_empty())) {
        (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        _ => format!("HTTP {status}: {}", DisplayErrorContext(inner)),
    }
}

/// The snapshot's layout as its first list page gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Volume size, GiB.
    pub volume_size_gib: u64,
    /// Bytes per block.
    pub block_size: u32,
}

/// One ListSnapshotBlocks page as the service sent it.
pub(super) struct Page {
    /// Volume size and block size as the page reports them.
    pub layout: Layout,
    /// `(index, token)` as listed.
    pub blocks: Vec<(Option<i32>, Option<String>)>,
    /// Token of the next page.
    pub next_token: Option<String>,
}

/// Lists one page of blocks (the first when `from` is `None`).
pub(super) async fn list_page(
    ebs: &aws_sdk_ebs::Client,
    id: &SnapshotId,
    from: Option<Continuation>,
) -> Result<Page> {
    let (token, start) = match from {
        None => (None, None),
        Some(Continuation::Token(token)) => (Some(token), None),
        Some(Continuation::From(index)) => (None, Some(index)),
    };
    let start = start.map(|index| wire_index(id, index)).transpose()?;
    let out = ebs
        .list_snapshot_blocks()
        .snapshot_id(id.as_str())
        .max_results(LIST_PAGE)
        .set_next_token(token)
        .set_starting_block_index(start)
        .send()
        .await
        .map_err(|e| call_error(id, "list its blocks (ebs:ListSnapshotBlocks)", &e))?;
    let unusable = |what: &str, value: String| {
        snapshot_error(
            id,
            SnapshotFailure::Unusable,
            format!("the block list gives no valid {what} ({value})"),
        )
    };
    let volume_size_gib = out
        .volume_size()
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| unusable("volume size", format!("{:?}", out.volume_size())))?;
    let block_size = out
        .block_size()
        .and_then(|b| u32::try_from(b).ok())
        .ok_or_else(|| unusable("block size", format!("{:?}", out.block_size())))?;
    Ok(Page {
        layout: Layout {
            volume_size_gib,
            block_size,
        },
        blocks: out
            .blocks()
            .iter()
            .map(|b| (b.block_index(), b.block_token().map(str::to_owned)))
            .collect(),
        next_token: out.next_token().map(str::to_owned),
    })
}

/// Lists the page `from` names and puts it into `listing` (see [`accept_page`]).
pub(super) async fn next_page(
    ebs: &aws_sdk_ebs::Client,
    id: &SnapshotId,
    layout: Layout,
    listing: &mut Listing,
    from: Option<Continuation>,
) -> Result<()> {
    let page = list_page(ebs, id, from).await?;
    accept_page(id, layout, listing, page)
}

/// Puts `page` into `listing`, refusing a page whose layout differs from the first one's or whose
/// blocks break the listing's rules.
pub(super) fn accept_page(
    id: &SnapshotId,
    layout: Layout,
    listing: &mut Listing,
    page: Page,
) -> Result<()> {
    let broken = |message| snapshot_error(id, SnapshotFailure::Read, message);
    if page.layout != layout {
        return Err(broken(format!(
            "a block-list page gives another layout ({:?}; first {layout:?})",
            page.layout
        )));
    }
    listing
        .accept(page.blocks, page.next_token)
        .map_err(|why| broken(format!("the block list is not usable: {why}")))
}

/// What GetSnapshotBlock's headers say about the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claims {
    /// `x-amz-Checksum`: base64 of the block's SHA-256.
    pub checksum: Option<String>,
    /// `x-amz-Checksum-Algorithm`.
    pub algorithm: Option<ChecksumAlgorithm>,
    /// `x-amz-Data-Length`.
    pub data_length: Option<i32>,
}

/// Why one attempt at a block failed.
pub(super) enum Attempt {
    /// The service refused in a way another attempt cannot change (not found, denied).
    Fatal(Error),
    /// Worth another attempt: the SDK's retries ran out on a transient error, or the body broke
    /// off. Carries the reason for the log and the final error.
    Again(String),
}

/// One GetSnapshotBlock, its body streamed into `out` as it arrives: one copy, straight into the
/// pipeline's buffer, and a body longer than a block (a broken or hostile server) is cut off
/// there instead of being gathered in memory. Fills `out` exactly or fails the attempt.
pub(super) async fn get_block(
    ebs: &aws_sdk_ebs::Client,
    id: &SnapshotId,
    index: i32,
    token: &str,
    out: &mut [u8],
) -> std::result::Result<Claims, Attempt> {
    let response = ebs
        .get_snapshot_block()
        .snapshot_id(id.as_str())
        .block_index(index)
        .block_token(token)
        .send()
        .await
        .map_err(|e| match failure_of(&e) {
            SnapshotFailure::Read => Attempt::Again(said(&e)),
            _ => Attempt::Fatal(mid_run(call_error(
                id,
                "read a block (ebs:GetSnapshotBlock)",
                &e,
            ))),
        })?;
    let claims = Claims {
        checksum: response.checksum().map(str::to_owned),
        algorithm: response.checksum_algorithm().cloned(),
        data_length: response.data_length(),
    };
    let mut body = response.block_data;
    let mut filled = 0;
    while let Some(piece) = body.next().await {
        let piece =
            piece.map_err(|e| Attempt::Again(format!("the block's body broke off: {e}")))?;
        let Some(room) = out.get_mut(filled..filled + piece.len()) else {
            return Err(Attempt::Again(format!(
                "the body is longer than the block size {}",
                out.len()
            )));
        };
        room.copy_from_slice(&piece);
        filled += piece.len();
    }
    if filled != out.len() {
        return Err(Attempt::Again(format!(
            "the body holds {filled} bytes, not the block size {}",
            out.len()
        )));
    }
    Ok(claims)
}

/// What DescribeSnapshots says of a snapshot; every field optional, because the call needs
/// `ec2:DescribeSnapshots`, which a role limited to the EBS direct APIs may not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Described {
    /// The volume the snapshot was taken of.
    pub volume_id: Option<String>,
    /// When the snapshot was started: the moment its data is from.
    pub start_time: Option<DateTime<Utc>>,
    /// The owning account.
    pub owner_id: Option<String>,
    /// Its description.
    pub description: Option<String>,
    /// Whether it is encrypted.
    pub encrypted: Option<bool>,
    /// Its state (`completed`, `pending`, `error`…).
    pub state: Option<String>,
}

/// DescribeSnapshots for `id`, or why it gave nothing (refused, failed, not listed): the run
/// then goes on without these facts and says so. Whether the snapshot exists and may be read is
/// for the EBS calls to say.
pub(super) async fn describe(
    ec2: &aws_sdk_ec2::Client,
    id: &SnapshotId,
) -> std::result::Result<Described, String> {
    let out = ec2
        .describe_snapshots()
        .snapshot_ids(id.as_str())
        .send()
        .await
        .map_err(|e| said(&e))?;
    let snapshot = out
        .snapshots()
        .iter()
        .find(|s| s.snapshot_id() == Some(id.as_str()))
        .ok_or_else(|| "DescribeSnapshots did not list it".to_owned())?;
    let start_time = snapshot
        .start_time()
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
    Ok(Described {
        volume_id: snapshot.volume_id().map(str::to_owned),
        start_time,
        owner_id: snapshot.owner_id().map(str::to_owned),
        description: snapshot
            .description()
            .filter(|d| !d.is_empty())
            .map(str::to_owned),
        encrypted: snapshot.encrypted(),
        state: snapshot.state().map(|s| s.as_str().to_owned()),
    })
}
