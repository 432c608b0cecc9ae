//! The AWS clients as every command builds them. S3: standard credential chain, retries with
//! backoff, path-style when asked, and only the checksums we send ourselves. CloudWatch Logs: short
//! timeouts and no SDK retries, because the reporter retries whole batches on its own schedule.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use tokio::runtime::Runtime;

use anyhow::anyhow;

use crate::config::typed::S3;
use crate::exit::{Exit, Failure};

/// Longest wait between two attempts of one S3 request. The SDK multiplies a random factor into
/// `2^n` seconds *before* capping at its default 20 s, so its 10 attempts spent about 84 s in
/// backoff on average against a dead endpoint (measured 75 s; 127 s with the aborts, which
/// retried as long again). Capped at 4 s the waits are at most 1 + 2 + 7 × 4 = 31 s, about 25 s on
/// average: the "about half a minute" that `--s3-max-attempts` documents, and each further
/// attempt adds at most 4 s, so the budget stays easy to reason about.
pub const S3_MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Worker threads of the process's runtime: two are plenty for a handful of concurrent part
/// uploads, EBS block fetches and CloudWatch calls, which wait on the network, not the CPU.
const RUNTIME_WORKERS: usize = 2;

/// The process's one runtime, built on first use: a local acquisition never starts one.
static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process's tokio runtime for the AWS SDK, built once on the first call and shared by every
/// caller after (an S3 destination, a snapshot source, `verify` of S3, `watch` and its CloudWatch
/// reporter): a snapshot-to-S3 run has one runtime, not one per client. A static rather than a
/// runtime passed down from each command, because its users sit at different depths of different
/// commands and only some runs need one; `'static` also outlives every client and sink built on it.
/// If building it failed, every call returns that failure.
pub fn runtime() -> Result<&'static Runtime, Failure> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_WORKERS)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Failure::new(
                Exit::Internal,
                anyhow!("cannot start the async runtime: {e}"),
            )
        })
}

/// An S3 client from the environment (instance role, env, profile; `AWS_ENDPOINT_URL`), with the
/// `[s3]` settings that shape requests (addressing, attempts, connect timeout).
pub fn s3_client(runtime: &Runtime, settings: &S3) -> Client {
    let shared = runtime.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(settings.max_attempts.get())
                    .with_max_backoff(S3_MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.connect_timeout)
                    .build(),
            )
            .load(),
    );
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(settings.force_path_style)
        // We send SHA-256 checksums ourselves; the SDK's default CRC32 is refused by some
        // S3-compatible servers and would cost a second pass over every byte.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// Attempts per EBS direct API or EC2 request, as for S3 by default: the SDK retries throttling
/// (`RequestThrottledException`, HTTP 429), 5xx and dropped connections with backoff (at most
/// [`S3_MAX_BACKOFF`] each), about half a minute in all, before the block's own retries
/// (`imaging::Snapshot`) take over.
pub const EBS_MAX_ATTEMPTS: u32 = 10;

/// Longest wait for one attempt of an EBS or EC2 request, up to its response headers (a minute
/// means the connection is stuck). A block's body that stalls after the headers is cut off by
/// the SDK's stalled-stream protection (on by default with `BehaviorVersion::latest()`), and the
/// block is fetched again.
pub const EBS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The configuration the EBS, EC2, SQS and Step Functions clients share, from the environment
/// (instance role, env, profile; `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_<SERVICE>`): retries as
/// for S3 by default, a short connect timeout, and `attempt_timeout` per attempt.
fn retrying(runtime: &Runtime, attempt_timeout: Duration) -> aws_config::SdkConfig {
    runtime.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(EBS_MAX_ATTEMPTS)
                    .with_max_backoff(S3_MAX_BACKOFF),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(attempt_timeout)
                    .build(),
            )
            .load(),
    )
}

/// The EBS direct API and EC2 clients a snapshot source needs.
pub fn snapshot_clients(runtime: &Runtime) -> (aws_sdk_ebs::Client, aws_sdk_ec2::Client) {
    let shared = retrying(runtime, EBS_ATTEMPT_TIMEOUT);
    (
        aws_sdk_ebs::Client::new(&shared),
        aws_sdk_ec2::Client::new(&shared),
    )
}

/// Longest wait for one SQS or Step Functions attempt: past a 20-second long poll with room for a
/// slow answer, short enough that a stuck connection is retried within a heartbeat or two.
pub const QUEUE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(40);

/// The clients of `watch`'s job-queue mode: SQS (the jobs), Step Functions (their answers) and EC2
/// (a job's snapshot's tag).
pub fn queue_clients(
    runtime: &Runtime,
) -> (
    aws_sdk_sqs::Client,
    aws_sdk_sfn::Client,
    aws_sdk_ec2::Client,
) {
    let shared = retrying(runtime, QUEUE_ATTEMPT_TIMEOUT);
    (
        aws_sdk_sqs::Client::new(&shared),
        aws_sdk_sfn::Client::new(&shared),
        aws_sdk_ec2::Client::new(&shared),
    )
}

/// Longest wait for one STS or KMS attempt: each is one small request, and a minute means the
/// connection is stuck.
pub const CUSTODY_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The clients of the custody record: STS (who the run's calls are made as) and KMS (the
/// statement's signature), retrying as the EBS clients do.
pub fn custody_clients(runtime: &Runtime) -> (aws_sdk_sts::Client, aws_sdk_kms::Client) {
    let shared = retrying(runtime, CUSTODY_ATTEMPT_TIMEOUT);
    (
        aws_sdk_sts::Client::new(&shared),
        aws_sdk_kms::Client::new(&shared),
    )
}

/// A CloudWatch Logs client from the environment: instance role, env or profile credentials;
/// region from the environment or IMDS; endpoint from `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` or
/// `AWS_ENDPOINT_URL`.
pub fn cloudwatch_client(runtime: &Runtime) -> aws_sdk_cloudwatchlogs::Client {
    let shared = runtime
        .block_on(with_cloudwatch_limits(aws_config::defaults(BehaviorVersion::latest())).load());
    aws_sdk_cloudwatchlogs::Client::new(&shared)
}

/// The CloudWatch client's timeouts and retry policy, applied to `loader` (tests add their own
/// endpoint and credentials). One attempt per call: the reporter retries with backoff itself and
/// bounds each call, so SDK retries would only hide time from its deadline. A short connect
/// timeout makes an unreachable endpoint fail fast.
pub fn with_cloudwatch_limits(loader: ConfigLoader) -> ConfigLoader {
    loader
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The configured connect timeout, from the file, user data, the environment or
    // `--s3-connect-timeout`, is the client's.
    #[test]
    fn the_s3_connect_timeout_is_the_configured_one() {
        let mut raw = crate::config::raw::RawConfig::default();
        raw.s3.connect_timeout_secs = 42;
        let settings = crate::config::typed::validate(&raw).expect("valid").s3;
        let client = s3_client(runtime().expect("runtime"), &settings);
        let timeouts = client.config().timeout_config().expect("timeouts set");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(42)));
    }

    #[test]
    fn s3_retries_back_off_at_most_four_seconds_so_ten_attempts_last_about_half_a_minute() {
        let settings = crate::config::flags::SettingFlags::default()
            .config()
            .expect("defaults")
            .s3;
        let client = s3_client(runtime().expect("runtime"), &settings);
        let retry = client.config().retry_config().expect("retry config set");
        assert_eq!(retry.max_attempts(), 10);
        assert_eq!(retry.max_backoff(), S3_MAX_BACKOFF);
        // Worst case of the waits between 10 attempts: 1 + 2 + 4 + … capped.
        let worst: Duration = (0..9u32)
            .map(|n| Duration::from_secs(1 << n).min(S3_MAX_BACKOFF))
            .sum();
        assert_eq!(worst, Duration::from_secs(31));
    }

    #[test]
    fn cloudwatch_calls_are_single_attempts_with_short_timeouts() {
        let runtime = runtime().expect("runtime");
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"));
        let shared = runtime.block_on(with_cloudwatch_limits(loader).load());
        let client = aws_sdk_cloudwatchlogs::Client::new(&shared);
        let config = client.config();
        assert_eq!(
            config.retry_config().map(RetryConfig::max_attempts),
            Some(1)
        );
        let timeouts = config.timeout_config().expect("timeouts set");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_secs(10))
        );
    }

    // A queue poll waits up to 20 s for a message: an attempt timeout below that would cut every
    // empty long poll off and retry it.
    #[test]
    fn queue_calls_wait_past_a_long_poll_and_retry_as_ebs_calls_do() {
        let (sqs, sfn, ec2) = queue_clients(runtime().expect("runtime"));
        let configs = [
            (sqs.config().timeout_config(), sqs.config().retry_config()),
            (sfn.config().timeout_config(), sfn.config().retry_config()),
            (ec2.config().timeout_config(), ec2.config().retry_config()),
        ];
        for (timeouts, retry) in configs {
            let attempt = timeouts.and_then(|t| t.operation_attempt_timeout());
            assert_eq!(attempt, Some(QUEUE_ATTEMPT_TIMEOUT));
            assert!(QUEUE_ATTEMPT_TIMEOUT > Duration::from_secs(20) + Duration::from_secs(10));
            assert_eq!(retry.map(RetryConfig::max_attempts), Some(EBS_MAX_ATTEMPTS));
        }
    }

    // Issue 20: each call built a runtime of its own (a snapshot-to-S3 run started two), so a
    // task started through one caller's runtime was not on another's.
    #[test]
    fn every_caller_gets_the_one_runtime() {
        let (first, second) = (runtime().expect("runtime"), runtime().expect("runtime"));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let task = first.spawn(async move {
            let _ = held.await;
        });
        assert!(
            second.metrics().num_alive_tasks() >= 1,
            "the task started on the first caller's runtime is not on the second's"
        );
        assert_eq!(second.metrics().num_workers(), 2);
        drop(release);
        first.block_on(task).expect("task");
    }
}
