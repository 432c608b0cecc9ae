//! The S3 client as every command builds it: standard credential chain, retries with backoff,
//! path-style when asked, and only the checksums we send ourselves.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};

use anyhow::anyhow;

use crate::exit::{Exit, Failure};

/// A runtime for the SDK: two workers are plenty for a handful of concurrent part uploads.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!("cannot start the async runtime: {e}"),
            )
        })
}

/// An S3 client from the environment (instance role, env, profile; `AWS_ENDPOINT_URL`).
pub fn s3_client(
    runtime: &tokio::runtime::Runtime,
    force_path_style: bool,
    max_attempts: u32,
) -> Client {
    let shared = runtime.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(max_attempts.max(1)))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            )
            .load(),
    );
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(force_path_style)
        // We send SHA-256 checksums ourselves; the SDK's default CRC32 is refused by some
        // S3-compatible servers and would cost a second pass over every byte.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}
