//! The local EBS API the snapshot suites run against answers as EBS does, seen through the same
//! SDK the collector uses (aws-sdk-ebs): moto 5.1.22 alone gives block indexes as strings (the SDK
//! refuses the list), in write order, a block size of 512, no pages, and HTTP 500 for an unknown
//! snapshot (`tests/helpers/motoebs.py` lists every difference). If the stand-in drifts from the
//! service, the suites built on it prove nothing; this guards it.

use aws_sdk_ebs::error::ProvideErrorMetadata;
use aws_sdk_ebs::types::{ResourceNotFoundExceptionReason, ValidationExceptionReason};
use collector_e2e::ebs::{BLOCK_SIZE, block_checksum, client};
use collector_e2e::{EbsRequest, SnapshotImage, SnapshotServer};

/// A snapshot of 250 blocks written out of order (so the list must sort them), pages capped at 40.
fn server() -> SnapshotServer {
    let mut image = SnapshotImage::new(1);
    for index in (0..250i32).rev() {
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..4].copy_from_slice(&(index * 7).to_le_bytes());
        image = image.with_block(index * 7, block);
    }
    SnapshotServer::start(image, &["--ebs-page-cap", "40"])
}

#[test]
fn the_block_list_is_ascending_integers_in_pages_that_follow_next_token() {
    let server = server();
    let ebs = client(&server.server.endpoint(), &server.runtime);
    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = server
            .runtime
            .block_on(
                ebs.list_snapshot_blocks()
                    .snapshot_id(&server.snapshot_id)
                    .max_results(100)
                    .set_next_token(token.take())
                    .send(),
            )
            .expect("ListSnapshotBlocks");
        pages += 1;
        assert!(pages <= 10, "the pages never end");
        assert_eq!(page.block_size(), Some(i32::try_from(BLOCK_SIZE).unwrap()));
        assert_eq!(page.volume_size(), Some(1));
        assert!(page.blocks().len() <= 40, "the page cap holds");
        listed.extend(page.blocks().iter().map(|b| b.block_index().unwrap()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 7, "250 blocks in pages of 40");
    assert_eq!(listed, (0..250).map(|i| i * 7).collect::<Vec<_>>());

    let from = server
        .runtime
        .block_on(
            ebs.list_snapshot_blocks()
                .snapshot_id(&server.snapshot_id)
                .starting_block_index(700)
                .send(),
        )
        .expect("ListSnapshotBlocks from a block");
    assert_eq!(from.blocks()[0].block_index(), Some(700));

    let lists = server
        .ebs_requests()
        .into_iter()
        .filter(|r| matches!(r, EbsRequest::ListSnapshotBlocks { .. }))
        .count();
    assert_eq!(lists, 8, "the request log sees every page");
}

#[test]
fn a_block_comes_with_its_checksum_headers_and_only_for_its_own_token() {
    let server = server();
    let ebs = client(&server.server.endpoint(), &server.runtime);
    let first = server
        .runtime
        .block_on(
            ebs.list_snapshot_blocks()
                .snapshot_id(&server.snapshot_id)
                .send(),
        )
        .expect("ListSnapshotBlocks");
    let block = &first.blocks()[1];
    let fetched = server.runtime.block_on(async {
        let out = ebs
            .get_snapshot_block()
            .snapshot_id(&server.snapshot_id)
            .block_index(block.block_index().unwrap())
            .block_token(block.block_token().unwrap())
            .send()
            .await
            .expect("GetSnapshotBlock");
        let checksum = out.checksum().map(str::to_owned);
        let algorithm = out.checksum_algorithm().map(|a| a.as_str().to_owned());
        let length = out.data_length();
        let data = out.block_data.collect().await.expect("block body").to_vec();
        (checksum, algorithm, length, data)
    });
    let (checksum, algorithm, length, data) = fetched;
    assert_eq!(data.len(), BLOCK_SIZE);
    assert_eq!(&data[..4], &7i32.to_le_bytes());
    assert_eq!(checksum.as_deref(), Some(block_checksum(&data).as_str()));
    assert_eq!(algorithm.as_deref(), Some("SHA256"));
    assert_eq!(length, Some(i32::try_from(BLOCK_SIZE).unwrap()));

    // Another block's token, and a block never written: EBS refuses the token.
    for (index, token) in [
        (
            block.block_index().unwrap(),
            first.blocks()[0].block_token().unwrap(),
        ),
        (8, block.block_token().unwrap()),
    ] {
        let err = server
            .runtime
            .block_on(
                ebs.get_snapshot_block()
                    .snapshot_id(&server.snapshot_id)
                    .block_index(index)
                    .block_token(token)
                    .send(),
            )
            .expect_err("a wrong token is refused");
        let service = err.into_service_error();
        assert!(service.is_validation_exception(), "{service:?}");
        assert_eq!(service.code(), Some("ValidationException"));
        let aws_sdk_ebs::operation::get_snapshot_block::GetSnapshotBlockError::ValidationException(
            e,
        ) = service
        else {
            unreachable!()
        };
        assert_eq!(
            e.reason(),
            Some(&ValidationExceptionReason::InvalidBlockToken)
        );
    }
}

#[test]
fn unknown_and_malformed_snapshots_get_the_errors_ebs_gives() {
    let server = SnapshotServer::start(SnapshotImage::new(1), &[]);
    let ebs = client(&server.server.endpoint(), &server.runtime);
    let list = |id: &str| {
        server
            .runtime
            .block_on(ebs.list_snapshot_blocks().snapshot_id(id).send())
            .expect_err("refused")
            .into_service_error()
    };
    let unknown = list("snap-0123456789abcdef0");
    let aws_sdk_ebs::operation::list_snapshot_blocks::ListSnapshotBlocksError::ResourceNotFoundException(
        e,
    ) = &unknown
    else {
        panic!("an unknown snapshot is ResourceNotFoundException: {unknown:?}");
    };
    assert_eq!(
        e.reason(),
        Some(&ResourceNotFoundExceptionReason::SnapshotNotFound)
    );
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("snap-0123456789abcdef0")
    );

    let malformed = list("snap-XYZ");
    let aws_sdk_ebs::operation::list_snapshot_blocks::ListSnapshotBlocksError::ValidationException(
        e,
    ) = &malformed
    else {
        panic!("a malformed ID is ValidationException: {malformed:?}");
    };
    assert_eq!(
        e.reason(),
        Some(&ValidationExceptionReason::InvalidSnapshotId)
    );

    let bad_token = server
        .runtime
        .block_on(
            ebs.list_snapshot_blocks()
                .snapshot_id(&server.snapshot_id)
                .next_token("bm90LWEtdG9rZW4=")
                .send(),
        )
        .expect_err("a token it did not give is refused")
        .into_service_error();
    assert!(bad_token.is_validation_exception(), "{bad_token:?}");
}
