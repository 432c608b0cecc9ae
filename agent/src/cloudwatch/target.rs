//! One log group and stream to write to, created on first use. Creation is idempotent: an existing
//! group or stream is fine, and a role that may put events but not create groups (a group made by
//! the stack) still gets its events through.

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError;

/// A log group and stream, and whether they are known to exist.
#[derive(Debug)]
pub(super) struct Target {
    /// Log group name.
    pub(super) group: String,
    /// Log stream name.
    pub(super) stream: String,
    ready: bool,
}

/// Why the group and stream could not be made ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum TargetError {
    /// CloudWatch could not be reached or did not answer (network, timeout, 5xx).
    #[error("cannot create log group {group} / stream {stream}: {reason}")]
    Unreachable {
        /// Log group name.
        group: String,
        /// Log stream name.
        stream: String,
        /// The SDK's error chain.
        reason: String,
    },
}

impl Target {
    /// `group`/`stream`, not yet created.
    pub(super) fn new(group: &str, stream: &str) -> Self {
        Self {
            group: group.to_owned(),
            stream: stream.to_owned(),
            ready: false,
        }
    }

    /// Forget that they exist (PutLogEvents said otherwise): the next attempt creates them.
    pub(super) fn forget(&mut self) {
        self.ready = false;
    }

    /// Creates the group and the stream unless known to exist. "Already exists" is success; other
    /// refusals (e.g. no permission to create) are logged and PutLogEvents is tried anyway.
    pub(super) async fn ensure(&mut self, client: &Client) -> Result<(), TargetError> {
        if self.ready {
            return Ok(());
        }
        let group = client
            .create_log_group()
            .log_group_name(&self.group)
            .send()
            .await;
        match group {
            Ok(_) => tracing::info!(group = %self.group, "Created the CloudWatch log group."),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    CreateLogGroupError::ResourceAlreadyExistsException(_)
                ) => {}
            Err(err) => self.refused_or_unreachable(&err, "log group")?,
        }
        let stream = client
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&self.stream)
            .send()
            .await;
        match stream {
            Ok(_) => {}
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    CreateLogStreamError::ResourceAlreadyExistsException(_)
                ) => {}
            Err(err) => self.refused_or_unreachable(&err, "log stream")?,
        }
        self.ready = true;
        Ok(())
    }

    fn refused_or_unreachable<E, R>(
        &self,
        err: &SdkError<E, R>,
        what: &str,
    ) -> Result<(), TargetError>
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let reason = DisplayErrorContext(err).to_string();
        if matches!(err, SdkError::ServiceError(_)) {
            tracing::warn!(group = %self.group, stream = %self.stream, %reason,
                "Could not create the CloudWatch {what}; trying to write to it anyway.");
            return Ok(());
        }
        Err(TargetError::Unreachable {
            group: self.group.clone(),
            stream: self.stream.clone(),
            reason,
        })
    }
}
