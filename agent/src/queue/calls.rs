//! The calls a queue worker makes — SQS for the jobs, Step Functions for their answers, EC2 for a
//! snapshot's tag — each one blocking on the process's runtime, and what their errors mean. The
//! clients retry throttling and 5xx answers themselves (`aws::queue_clients`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use imaging::SnapshotId;
use tokio::runtime::Runtime;

use super::answer::Answer;
use super::url::QueueUrl;

/// How often a long poll looks at the stop flag.
const CANCEL_POLL: Duration = Duration::from_millis(200);
/// The tag whose value admits a snapshot (the collector role's EBS condition).
pub const SNAPSHOT_TAG_KEY: &str = "forensic-collector";

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// SQS's message ID, for the reports.
    pub id: String,
    /// The handle that deletes it or changes its visibility.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times it was received, this time included.
    pub receive_count: u32,
}

/// Why a Step Functions call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskCallError {
    /// The execution no longer waits on the token (timed out, stopped, or a token of no task):
    /// nothing sent to it will ever count.
    Gone(String),
    /// Anything else (denied, unreachable, retries exhausted).
    Other(String),
}

/// Sends `answer` to the task `token` (the queue worker's and `acquire --task-token`'s one way).
pub fn send_answer(
    runtime: &Runtime,
    sfn: &aws_sdk_sfn::Client,
    token: &str,
    answer: &Answer,
) -> Result<(), TaskCallError> {
    match answer {
        Answer::Success(output) => runtime
            .block_on(
                sfn.send_task_success()
                    .task_token(token)
                    .output(output)
                    .send(),
            )
            .map(drop)
            .map_err(|e| task_error("SendTaskSuccess", &e)),
        Answer::Failure { error, cause } => runtime
            .block_on(
                sfn.send_task_failure()
                    .task_token(token)
                    .error(error)
                    .cause(cause)
                    .send(),
            )
            .map(drop)
            .map_err(|e| task_error("SendTaskFailure", &e)),
    }
}

/// The codes with which Step Functions says a token is no longer waited on.
const GONE: [&str; 3] = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"];

/// The worker's clients and its queue.
pub struct Calls {
    runtime: &'static Runtime,
    sqs: aws_sdk_sqs::Client,
    sfn: aws_sdk_sfn::Client,
    ec2: aws_sdk_ec2::Client,
    queue: QueueUrl,
}

impl Calls {
    /// Clients from the environment (instance role; `AWS_ENDPOINT_URL`), on the one runtime.
    pub fn new(runtime: &'static Runtime, queue: QueueUrl) -> Self {
        let (sqs, sfn, ec2) = crate::aws::queue_clients(runtime);
        Self {
            runtime,
            sqs,
            sfn,
            ec2,
            queue,
        }
    }

    /// Waits up to `wait` (at most SQS's 20 s) for one message, hidden from other collectors for
    /// `visibility`; `Ok(None)` when none came or `cancel` was set meanwhile.
    pub fn receive(
        &self,
        wait: Duration,
        visibility: Duration,
        cancel: &AtomicBool,
    ) -> Result<Option<Received>, String> {
        let call = self
            .sqs
            .receive_message()
            .queue_url(self.queue.as_str())
            .max_number_of_messages(1)
            .wait_time_seconds(seconds(wait.min(super::worker::LONG_POLL)))
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        let answer = self.runtime.block_on(async {
            tokio::pin!(call);
            loop {
                tokio::select! {
                    answer = &mut call => return Some(answer),
                    () = tokio::time::sleep(CANCEL_POLL) => {
                        if cancel.load(Ordering::Relaxed) {
                            return None;
                        }
                    }
                }
            }
        });
        let Some(answer) = answer else {
            return Ok(None);
        };
        let output = answer.map_err(|e| format!("ReceiveMessage: {}", DisplayErrorContext(&e)))?;
        let Some(message) = output.messages().first() else {
            return Ok(None);
        };
        Ok(Some(Received {
            id: message.message_id().unwrap_or("-").to_owned(),
            receipt: message.receipt_handle().unwrap_or_default().to_owned(),
            body: message.body().unwrap_or_default().to_owned(),
            receive_count: message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        }))
    }

    /// Deletes a message whose job is answered (or refused).
    pub fn delete(&self, receipt: &str) -> Result<(), String> {
        self.runtime
            .block_on(
                self.sqs
                    .delete_message()
                    .queue_url(self.queue.as_str())
                    .receipt_handle(receipt)
                    .send(),
            )
            .map(drop)
            .map_err(|e| format!("DeleteMessage: {}", DisplayErrorContext(&e)))
    }

    /// Hides a message from other collectors for `visibility` from now (0: shows it at once).
    pub fn set_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), String> {
        self.runtime
            .block_on(
                self.sqs
                    .change_message_visibility()
                    .queue_url(self.queue.as_str())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds(visibility))
                    .send(),
            )
            .map(drop)
            .map_err(|e| format!("ChangeMessageVisibility: {}", DisplayErrorContext(&e)))
    }

    /// Tells the execution the job is alive.
    pub fn heartbeat(&self, token: &str) -> Result<(), TaskCallError> {
        let answer = self
            .runtime
            .block_on(self.sfn.send_task_heartbeat().task_token(token).send());
        answer
            .map(drop)
            .map_err(|e| task_error("SendTaskHeartbeat", &e))
    }

    /// Sends the job's result.
    pub fn answer(&self, token: &str, answer: &Answer) -> Result<(), TaskCallError> {
        send_answer(self.runtime, &self.sfn, token, answer)
    }

    /// The value of the snapshot's `forensic-collector` tag, `None` when it has none.
    pub fn snapshot_tag(&self, snapshot: &SnapshotId) -> Result<Option<String>, String> {
        let output = self
            .runtime
            .block_on(
                self.ec2
                    .describe_snapshots()
                    .snapshot_ids(snapshot.to_string())
                    .send(),
            )
            .map_err(|e| format!("DescribeSnapshots: {}", DisplayErrorContext(&e)))?;
        let found = output
            .snapshots()
            .iter()
            .find(|s| s.snapshot_id() == Some(snapshot.as_str()))
            .ok_or_else(|| format!("DescribeSnapshots does not list {snapshot}"))?;
        Ok(found
            .tags()
            .iter()
            .find(|t| t.key() == Some(SNAPSHOT_TAG_KEY))
            .and_then(|t| t.value().map(str::to_owned)))
    }
}

/// A Step Functions error, as gone or other.
fn task_error<E, R>(call: &str, error: &aws_sdk_sfn::error::SdkError<E, R>) -> TaskCallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = format!("{call}: {}", DisplayErrorContext(error));
    match error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
    {
        Some(code) if GONE.contains(&code) => TaskCallError::Gone(text),
        _ => TaskCallError::Other(text),
    }
}

/// Whole seconds as SQS takes them (its limits are far inside `i32`).
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}
