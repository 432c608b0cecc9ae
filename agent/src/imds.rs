//! EC2 instance metadata (IMDSv2): the user data that carries the job context, and the instance ID
//! for reports.
//!
//! The SDK's client does the token flow (PUT `/latest/api/token`, then GETs with the token) and
//! honours `AWS_EC2_METADATA_SERVICE_ENDPOINT`. Its defaults retry for a long time, which is right
//! for credentials on EC2 but wrong for us: off EC2, or with IMDS turned off, the operator should
//! learn within seconds that the job context is missing. Absent user data (404) is not an error.

use std::time::Duration;

use aws_config::imds::Client;
use aws_config::imds::client::error::ImdsError;

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
}

/// An IMDS failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing answered, or it did not speak IMDSv2.
    #[error("{endpoint}{path}: {message}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// The path requested.
        path: &'static str,
        /// The SDK's error chain.
        message: String,
    },
    /// User data is not UTF-8 (gzip-compressed user data is one way to get here).
    #[error("user data is not UTF-8 text (compressed user data is not supported)")]
    NotUtf8,
}

/// Fetches user data and the instance ID from `endpoint` (`None`: the SDK's resolution —
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, the profile, or 169.254.169.254).
pub async fn fetch(endpoint: Option<&str>) -> Result<InstanceData, Error> {
    let shown = endpoint.unwrap_or(DEFAULT_ENDPOINT).to_owned();
    let mut builder = Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(OPERATION_TIMEOUT)
        .max_attempts(ATTEMPTS);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(endpoint).map_err(|e| Error::Unreachable {
            endpoint: shown.clone(),
            path: "",
            message: format!("not a valid endpoint URL: {e}"),
        })?;
    }
    let client = builder.build();
    let user_data = optional(&client, &shown, "/latest/user-data").await?;
    let instance_id = optional(&client, &shown, "/latest/meta-data/instance-id").await?;
    Ok(InstanceData {
        user_data,
        instance_id,
    })
}

/// GETs `path`; a 404 is `None`.
async fn optional(
    client: &Client,
    endpoint: &str,
    path: &'static str,
) -> Result<Option<String>, Error> {
    match client.get(path).await {
        Ok(text) => Ok(Some(text.as_ref().to_owned())),
        Err(ImdsError::ErrorResponse(response)) if response.response().status().as_u16() == 404 => {
            Ok(None)
        }
        Err(err) => {
            let message = chain(&err);
            if message.contains("UTF-8") {
                return Err(Error::NotUtf8);
            }
            Err(Error::Unreachable {
                endpoint: endpoint.to_owned(),
                path,
                message,
            })
        }
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
