//! `watch` in job-queue mode (`job.queue_url`): the collectors the flow launches (docs/flow.md)
//! take one job at a time from an SQS queue, image it in a child process as the daemon does, keep
//! the Step Functions execution waiting on it informed (heartbeats) and answer it with the result
//! through the job's task token. No job is assigned to a collector: whichever polls first takes
//! it, so any number of collectors drain one queue, and one that dies mid-job leaves its message
//! to reappear for another.
//!
//! # Layout
//! - `url`: the queue URL, checked with the configuration.
//! - `message`: one job message, read strictly.
//! - `attach`: the fallback path's wait for the volume the flow attached.
//! - `calls`: the SQS, Step Functions and EC2 calls a worker makes, and what their errors mean.
//! - `answer`: the task's result, made from the child's result line.
//! - `events`: what it reports to CloudWatch besides the daemon's job events.
//! - `worker`: the loop: poll, check, run, beat, answer, delete; idle, then done.

pub(crate) mod answer;
mod attach;
pub(crate) mod calls;
mod events;
pub mod message;
pub mod url;
mod worker;

pub use url::QueueUrl;
pub use worker::{QueuePlan, run};
