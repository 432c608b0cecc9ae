//! What can go wrong while building the configuration. Every variant names the source (file path,
//! user data, env variable, flag) and, where there is one, the key — the operator must be able to
//! fix the input from the message alone.

use std::path::PathBuf;

use super::layers::Origin;
use crate::exit::Exit;

/// The formats accepted in user data, for error messages.
pub const USER_DATA_FORMATS: &str = "a JSON object, a TOML document ([job] table or top-level \
     job keys), or a shell script / KEY=VALUE lines setting DESTINATION_BUCKET, IMAGE_NAME, \
     INCIDENT_ID, DESTINATION_PREFIX or FORENSIC_COLLECTOR_<SECTION>_<KEY>";

/// A configuration or job-context failure.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {error}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The config file exists but must not be used (not a regular file, too large, not UTF-8,
    /// or writable by someone other than root).
    #[error("config file {path} refused: {reason}")]
    RefusedFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key is unknown, has the wrong type, or a bad value.
    #[error("{key} from {origin}: {message}")]
    Key {
        /// `section.key`.
        key: String,
        /// Who set it.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// User data is present but in none of the accepted formats.
    #[error("malformed user data: {message}; accepted: {USER_DATA_FORMATS}")]
    UserData {
        /// What each format said.
        message: String,
    },
    /// IMDS is configured but did not answer (within the wait, for `watch`), or refused (403).
    #[error(
        "instance metadata service is unreachable: {message} (set [job] use_imds = false or AWS_EC2_METADATA_DISABLED=true when not on EC2; `watch` waits up to [job] imds_wait_secs for it)"
    )]
    ImdsUnavailable {
        /// The endpoint tried.
        endpoint: String,
        /// The SDK's error chain.
        message: String,
    },
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` is not an http(s) URL. A bad value like any other
    /// setting's (exit 5), not an unreachable IMDS: no wait or retry would make it work.
    #[error(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT={value:?} is not a usable IMDS endpoint: {message} (unset it to use 169.254.169.254)"
    )]
    ImdsEndpoint {
        /// The variable's value.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// A job needs keys that no source set.
    #[error(
        "no job context: {missing} not set by the config file, user data, environment or flags"
    )]
    MissingJob {
        /// The missing keys, comma-separated.
        missing: String,
    },
    /// A bug: the defaults or the merge do not fit the struct tree.
    #[error("internal configuration error: {0}")]
    Internal(String),
}

impl ConfigError {
    /// The documented exit code: bad input is `Config` (5), including a malformed
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` like any bad setting; an unreachable IMDS or a missing job
    /// is `JobContextUnavailable` (6), because retrying later may succeed without changing input.
    pub fn exit(&self) -> Exit {
        match self {
            Self::ImdsUnavailable { .. } | Self::MissingJob { .. } => Exit::JobContextUnavailable,
            Self::Internal(_) => Exit::Internal,
            Self::ReadFile { .. }
            | Self::RefusedFile { .. }
            | Self::FileSyntax { .. }
            | Self::Key { .. }
            | Self::ImdsEndpoint { .. } => Exit::Config,
            Self::UserData { .. } => Exit::Config,
        }
    }
}
