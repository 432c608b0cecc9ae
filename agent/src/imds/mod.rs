//! EC2 instance metadata (IMDSv2): the user data that carries the job context, and the instance ID
//! for reports.
//!
//! The SDK's client does the token flow (PUT `/latest/api/token`, then GETs with the token) and
//! honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`. Its defaults retry for a long time, which is right
//! for credentials on EC2 but wrong for us: off EC2, or with IMDS turned off, the operator should
//! learn within seconds that the job context is missing. Absent user data (404) is not an error.
//!
//! One fetch ([`fetch`]) fails fast. The daemon ([`fetch_waiting`]) repeats whole fetches with
//! backoff for a bounded time (`job.imds_wait_secs`), because at boot IMDS may answer only
//! seconds after `network-online.target`; only failures that may pass by themselves are retried
//! (`retry::classify`). The wait applies wherever IMDS is asked at all: off EC2 an operator says
//! `job.use_imds = false` or `AWS_EC2_METADATA_DISABLED=true` (nothing is asked) or
//! `job.imds_wait_secs = 0` (asked once). A job context complete in the file or environment does
//! not skip the wait: user data outranks the file, so it must be read before the job is known.
//!
//! # Layout
//! - `retry`: which failures are retried, and the schedule of pauses (pure).

pub mod retry;

use std::time::{Duration, Instant};

use aws_config::imds::Client;
use aws_config::imds::client::error::{ImdsError, TokenError};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;

use retry::{Stage, Verdict};

/// A connection to the link-local IMDS address takes well under a millisecond on EC2; one second
/// rides out a busy instance and fails fast where nothing answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// User data is at most 16 KiB: two seconds to read it is generous.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// One request including its retries; with two requests an absent IMDS fails in under ~10 s.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// Two attempts: one retry covers a transient hiccup without stretching an outage into minutes.
const ATTEMPTS: u32 = 2;

/// Where the SDK looks when no endpoint is configured.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// What IMDS told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceData {
    /// The raw user data, when the instance has any.
    pub user_data: Option<String>,
    /// `i-…`, when IMDS has one.
    pub instance_id: Option<String>,
    /// `ami-…`, the image the instance was launched from, when IMDS has one (recorded with
    /// memory captures: which build of the kernel and userland the suspect ran).
    pub ami_id: Option<String>,
    /// The instance's region and type (the manifest's custody host), when IMDS has them.
    pub region: Option<String>,
    /// See `region`.
    pub instance_type: Option<String>,
}

/// An IMDS failure.
#[derive(Debug, thiserror::Error)]
pub enum InstanceDataError {
    /// Nothing answered, or it answered with an error that may pass (5xx, an unknown token).
    #[error("{endpoint}{path}: {message}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// The path requested.
        path: &'static str,
        /// The SDK's error chain.
        message: String,
    },
    /// It answered, and asking again would get the same answer: IMDS turned off (403), a
    /// malformed request (400), or no IMDSv2 there (a token without its TTL header).
    #[error("{endpoint}{path}: {message}")]
    Refused {
        /// The endpoint tried.
        endpoint: String,
        /// The path requested.
        path: &'static str,
        /// The SDK's error chain, with the status.
        message: String,
    },
    /// The wait ended without an answer.
    #[error("{last} (no answer in {attempts} attempts over {waited:.1?})")]
    GaveUp {
        /// The last attempt's failure.
        last: Box<InstanceDataError>,
        /// Attempts made.
        attempts: u32,
        /// Time since the first.
        waited: Duration,
    },
    /// The endpoint cannot be used: not a URL, or not `http`/`https`. A setting, not a passing
    /// state, so it is never retried (asking again would fail the same way for the whole wait).
    #[error("{endpoint:?} is not a usable IMDS endpoint: {message}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        message: String,
    },
    /// User data is not UTF-8 (gzip-compressed user data is one way to get here).
    #[error("user data is not UTF-8 text (compressed user data is not supported)")]
    NotUtf8,
}

/// As [`fetch`], asked again with backoff (`retry::delays`) while IMDS is unreachable, until it
/// answers or `wait` has passed since the first attempt (the last attempt starts at `wait`, so
/// the whole takes at most `wait` plus one fetch's timeouts). A zero `wait` asks once. The first
/// retry is logged as a warning, the later ones at debug level, an answer after retries at info.
pub async fn fetch_waiting(
    endpoint: Option<&str>,
    wait: Duration,
) -> Result<InstanceData, InstanceDataError> {
    let started = Instant::now();
    let mut delays = retry::delays(None);
    let mut attempts = 1u32;
    loop {
        let error = match fetch(endpoint).await {
            Ok(data) => {
                if attempts > 1 {
                    tracing::info!(
                        attempts,
                        waited_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "IMDS answered."
                    );
                }
                return Ok(data);
            }
            Err(error @ InstanceDataError::Unreachable { .. }) => error,
            Err(error) => return Err(error),
        };
        let pause = delays
            .next()
            .and_then(|delay| retry::next_pause(delay, started.elapsed(), wait));
        let Some(pause) = pause else {
            if attempts == 1 {
                return Err(error);
            }
            return Err(InstanceDataError::GaveUp {
                last: Box::new(error),
                attempts,
                waited: started.elapsed(),
            });
        };
        if attempts == 1 {
            tracing::warn!(
                error = %error,
                wait_secs = wait.as_secs(),
                "IMDS does not answer yet; asking again with backoff until it does or the wait ends."
            );
        } else {
            let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
            tracing::debug!(error = %error, attempts, pause_ms, "IMDS still does not answer.");
        }
        tokio::time::sleep(pause).await;
        attempts += 1;
    }
}

/// Where IMDS gives the instance ID.
const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";
/// Where IMDS gives the AMI ID.
const AMI_ID_PATH: &str = "/latest/meta-data/ami-id";
/// Where IMDS gives the region.
const REGION_PATH: &str = "/latest/meta-data/placement/region";
/// Where IMDS gives the instance type.
const INSTANCE_TYPE_PATH: &str = "/latest/meta-data/instance-type";

/// Fetches user data and the instance ID from `endpoint` (`None`: the SDK's resolution —
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, the profile, or 169.254.169.254), once: a fresh client, so
/// a fresh token.
pub async fn fetch(endpoint: Option<&str>) -> Result<InstanceData, InstanceDataError> {
    let shown = endpoint.unwrap_or(DEFAULT_ENDPOINT).to_owned();
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(OPERATION_TIMEOUT)
        .max_attempts(ATTEMPTS);
    if let Some(endpoint) = endpoint {
        let bad = |message: String| InstanceDataError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            message,
        };
        check_scheme(endpoint).map_err(bad)?;
        builder = builder
            .endpoint(endpoint)
            .map_err(|e| bad(format!("not a valid URL: {e}")))?;
    }
    let client = builder.build();
    let user_data = optional(&client, &shown, "/latest/user-data").await?;
    let instance_id = optional(&client, &shown, INSTANCE_ID_PATH).await?;
    // Recorded in every manifest: held to the rule `acquire --instance-id` is. An answer that is
    // no instance ID is not EC2's, and asking again would get it again.
    let instance_id = instance_id
        .map(|id| crate::ids::instance_id(&id))
        .transpose()
        .map_err(|message| InstanceDataError::Refused {
            endpoint: shown.clone(),
            path: INSTANCE_ID_PATH,
            message,
        })?;
    // Informative only (the memory record's `ami_id`): an answer that is no AMI ID is dropped,
    // not a reason to refuse the job.
    let ami_id = optional(&client, &shown, AMI_ID_PATH)
        .await
        .ok()
        .flatten()
        .and_then(|id| crate::ids::ami_id(id.trim()).ok());
    // Informative too (the custody record): kept only if it looks like EC2's.
    let mut informative = Vec::new();
    for path in [REGION_PATH, INSTANCE_TYPE_PATH] {
        let answer = optional(&client, &shown, path).await.ok().flatten();
        informative.push(answer.and_then(|text| crate::ids::ec2_word(text.trim())));
    }
    let [region, instance_type]: [Option<String>; 2] = informative.try_into().unwrap_or_default();
    Ok(InstanceData {
        user_data,
        instance_id,
        ami_id,
        region,
        instance_type,
    })
}

/// Whether `endpoint` names a scheme IMDS can be reached by. The SDK's parser accepts any URI
/// (`ftp://…`, a bare `host:port`), and its connector then fails on every request as if nothing
/// answered, which the wait would retry to its end: refused here instead.
fn check_scheme(endpoint: &str) -> Result<(), String> {
    let Some((scheme, _)) = endpoint.split_once("://") else {
        return Err("not a URL (expected http://HOST[:PORT])".to_owned());
    };
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else {
        Err(format!("scheme {scheme:?} is not http or https"))
    }
}

/// GETs `path`; a 404 is `None`.
async fn optional(
    client: &Client,
    endpoint: &str,
    path: &'static str,
) -> Result<Option<String>, InstanceDataError> {
    let err = match client.get(path).await {
        Ok(text) => return Ok(Some(text.as_ref().to_owned())),
        Err(err) => err,
    };
    let message = chain(&err);
    if message.contains("UTF-8") {
        return Err(InstanceDataError::NotUtf8);
    }
    let (stage, status) = failed_exchange(&err);
    let endpoint = endpoint.to_owned();
    match retry::classify(stage, status) {
        Verdict::Absent => Ok(None),
        Verdict::Retry => Err(InstanceDataError::Unreachable {
            endpoint,
            path,
            message,
        }),
        Verdict::Final => Err(InstanceDataError::Refused {
            endpoint,
            path,
            message: format!("{message} (HTTP {})", status.unwrap_or_default()),
        }),
    }
}

/// Which exchange failed and the HTTP status it got, if any answer came.
fn failed_exchange(err: &ImdsError) -> (Stage, Option<u16>) {
    match err {
        ImdsError::ErrorResponse(response) => {
            (Stage::Get, Some(response.response().status().as_u16()))
        }
        ImdsError::FailedToLoadToken(_) => {
            let status = std::error::Error::source(err)
                .and_then(|source| source.downcast_ref::<SdkError<TokenError, HttpResponse>>())
                .and_then(SdkError::raw_response)
                .map(|response| response.status().as_u16());
            (Stage::Token, status)
        }
        _ => (Stage::Get, None),
    }
}

/// The error and its sources on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 11 review: a bad endpoint was `Unreachable`, so `watch` retried it for the whole wait.
    #[tokio::test]
    async fn a_bad_endpoint_is_final_and_not_waited_for() {
        for endpoint in [
            "not a url",
            "ftp://127.0.0.1:9",
            "127.0.0.1:9",
            "http://bad host",
        ] {
            let started = Instant::now();
            let err = fetch_waiting(Some(endpoint), Duration::from_secs(60))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, InstanceDataError::BadEndpoint { endpoint: e, .. } if e == endpoint),
                "{endpoint:?}: {err:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(1), "{endpoint:?}");
        }
    }

    #[test]
    fn http_and_https_endpoints_pass_the_scheme_check() {
        for endpoint in ["http://169.254.169.254", "HTTPS://[fd00:ec2::254]:80"] {
            assert_eq!(check_scheme(endpoint), Ok(()), "{endpoint}");
        }
        let err = check_scheme("file:///etc/passwd").unwrap_err();
        assert!(err.contains("\"file\""), "{err}");
    }
}
