//! One attempt to deliver a batch: create the log group and stream if needed, call
//! PutLogEvents, all bounded by one deadline, and sort the result into what the delivery task does
//! next (done, recreate, retry later, give up).

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::time::{Instant, timeout_at};

use super::batch::{LogEvent, Rejected};
use super::target::{Target, TargetError};

/// What one call came to.
pub(super) enum CallOutcome {
    /// Accepted; some events may still have been refused for their age.
    Accepted(Rejected),
    /// The group or stream is missing (deleted, or a fresh endpoint): create them and retry.
    Missing,
    /// Worth retrying: network, timeout, throttling, 5xx, a stale sequence token.
    Retry(String),
    /// The request itself is wrong; retrying cannot help.
    Refused(String),
}

/// Creates the group and stream if needed, then puts `events`; the whole attempt ends by
/// `until`.
pub(super) async fn put(
    client: &Client,
    target: &mut Target,
    events: &[LogEvent],
    until: Instant,
) -> CallOutcome {
    match timeout_at(until, target.ensure(client)).await {
        Err(_) => return CallOutcome::Retry("creating the log group and stream timed out".into()),
        Ok(Err(TargetError::Unreachable { reason, .. })) => return CallOutcome::Retry(reason),
        Ok(Ok(())) => {}
    }
    let input: Result<Vec<InputLogEvent>, _> = events
        .iter()
        .map(|e| {
            InputLogEvent::builder()
                .timestamp(e.timestamp_ms)
                .message(e.message.clone())
                .build()
        })
        .collect();
    let input = match input {
        Ok(input) => input,
        Err(err) => return CallOutcome::Refused(err.to_string()),
    };
    let call = client
        .put_log_events()
        .log_group_name(&target.group)
        .log_stream_name(&target.stream)
        .set_log_events(Some(input))
        .send();
    match timeout_at(until, call).await {
        Err(_) => CallOutcome::Retry("PutLogEvents timed out".into()),
        Ok(Ok(output)) => {
            CallOutcome::Accepted(Rejected::from_info(output.rejected_log_events_info()))
        }
        Ok(Err(err)) => classify(&err),
    }
}

/// Sorts an SDK error: a missing group or stream, a call to retry, or a request to give up.
fn classify(err: &SdkError<PutLogEventsError>) -> CallOutcome {
    let reason = DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(context) => match context.err() {
            PutLogEventsError::ResourceNotFoundException(_) => CallOutcome::Missing,
            // A retried call the service already has: nothing to resend.
            PutLogEventsError::DataAlreadyAcceptedException(_) => {
                CallOutcome::Accepted(Rejected::default())
            }
            PutLogEventsError::InvalidParameterException(_) => CallOutcome::Refused(reason),
            // Sequence tokens are no longer required; a stale one is resent without one.
            _ => CallOutcome::Retry(reason),
        },
        _ => CallOutcome::Retry(reason),
    }
}
