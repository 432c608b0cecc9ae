//! Reporting to CloudWatch Logs, beside imaging and never in its way. A readiness message (plain
//! text) tells the attaching Lambda of the original design that the watcher is armed; capture
//! events (JSON, one object per log event) tell a responder what each job is doing and what it
//! proved.
//!
//! The daemon is thread-based and the SDK needs tokio, so the reporter is one task on the process's
//! runtime (`aws::runtime`), and producers only touch lock-free counters and an unbounded channel
//! whose length the counters bound ([`ReportSettings::queue_capacity`]). [`Reporter::emit`] never
//! waits on the network: a full buffer drops the event and counts it; CloudWatch being slow, down
//! or refusing costs retries in the reporter's task, nothing else. Losses are announced in the
//! capture stream with `{"event":"events_dropped","count":N}` once a call succeeds again, and
//! [`Reporter::shutdown`] returns the final tallies.
//!
//! # Layout
//! - `settings`: group and stream names, readiness text, buffer size, call timeout; validation.
//! - `event`: how an emitted JSON value becomes a log event (timestamp, size).
//! - `batch`, `truncate`: the PutLogEvents limits as pure functions.
//! - `counters`: the bounded buffer's gate and the delivery tallies.
//! - `retry`: backoff between failed calls.
//! - `target`: a log group and stream, created on first use.
//! - `call`: one bounded attempt (create if needed, PutLogEvents) and how its errors are sorted.
//! - `delivery`: the task that talks to CloudWatch.

mod batch;
mod call;
mod counters;
mod delivery;
mod event;
mod retry;
mod settings;
mod target;
mod truncate;

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

pub use counters::DeliveryStats;
pub use settings::{
    DEFAULT_CAPTURE_GROUP, DEFAULT_FLUSH_TIMEOUT, DEFAULT_QUEUE_CAPACITY, DEFAULT_READINESS_GROUP,
    DEFAULT_READINESS_MESSAGE, MAX_READINESS_MESSAGE_BYTES, ReportSettings, SettingsError,
    check_group,
};

use batch::LogEvent;
use counters::Counters;
use delivery::{Delivery, Inputs};

/// How long [`Reporter::shutdown`] waits past its deadline for the delivery task to hand over
/// its tallies: the task stops calling at the deadline and only needs to count what is left.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// A handle to the reporter. Cheap to clone, `Send + Sync`; every method returns without waiting
/// on CloudWatch.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    intake: mpsc::UnboundedSender<LogEvent>,
    readiness: watch::Sender<Option<i64>>,
    shutdown: watch::Sender<Option<Instant>>,
    counters: Arc<Counters>,
    finished: Mutex<Option<std_mpsc::Receiver<()>>>,
}

impl Reporter {
    /// Starts the delivery task with `client` (see `aws::cloudwatch_client`) on the process's
    /// runtime. Never fails: if the runtime cannot be started, the error is logged and every event is counted as
    /// dropped, because reporting must not stop imaging.
    pub fn start(client: aws_sdk_cloudwatchlogs::Client, settings: ReportSettings) -> Reporter {
        let counters = Arc::new(Counters::new(settings.queue_capacity));
        let (intake, intake_rx) = mpsc::unbounded_channel();
        let (readiness, readiness_rx) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(None);
        let (done, finished) = std_mpsc::channel();
        let inputs = Inputs {
            intake: intake_rx,
            readiness: readiness_rx,
            shutdown: shutdown_rx,
        };
        let delivery = Delivery::new(client, &settings, inputs, Arc::clone(&counters));
        match crate::aws::runtime() {
            Ok(runtime) => drop(runtime.spawn(async move {
                delivery.run().await;
                let _ = done.send(());
            })),
            Err(err) => tracing::error!(error = %err.error,
                "Cannot start the CloudWatch reporter's runtime; events will be dropped."),
        }
        Reporter {
            inner: Arc::new(Inner {
                intake,
                readiness,
                shutdown,
                counters,
                finished: Mutex::new(Some(finished)),
            }),
        }
    }

    /// Asks for the readiness message (the configured plain text) in the readiness group. It is
    /// state, not a queue: requests made while one is undelivered are merged, and it is retried
    /// until delivered or shutdown, never dropped for a full buffer.
    pub fn readiness(&self) {
        self.inner.counters.set_readiness_pending(true);
        self.inner
            .readiness
            .send_replace(Some(event::millis(SystemTime::now())));
    }

    /// Queues a JSON event for the capture group, stamped with the current time (and a
    /// `"timestamp"` field if the object has none); an event larger than CloudWatch allows is
    /// truncated and marked. Never blocks: with the buffer full, the event is dropped and counted.
    pub fn emit(&self, event: serde_json::Value) {
        let counters = &self.inner.counters;
        if !counters.admit() {
            return;
        }
        let stamped = event::stamp(event, SystemTime::now());
        if self.inner.intake.send(stamped).is_err() {
            counters.drop_admitted();
        }
    }

    /// The tallies so far.
    pub fn stats(&self) -> DeliveryStats {
        self.inner.counters.snapshot()
    }

    /// Stops taking events and delivers what is held until `deadline`, then returns the tallies;
    /// what could not be delivered by then counts as failed. Returns by `deadline` plus a moment,
    /// whatever CloudWatch does. Events emitted through other handles afterwards are dropped.
    pub fn shutdown(self, deadline: Instant) -> DeliveryStats {
        self.inner.shutdown.send_replace(Some(deadline));
        let finished = self.inner.finished.lock().ok().and_then(|mut f| f.take());
        let Some(finished) = finished else {
            return self.stats();
        };
        let wait = deadline.saturating_duration_since(Instant::now()) + SHUTDOWN_GRACE;
        if let Err(std_mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(wait) {
            tracing::warn!(
                "The CloudWatch reporter did not finish by its deadline; counting what it held as failed."
            );
        }
        // After a normal finish nothing is held any more; after a timeout, or a task that never
        // ran, what is held is lost.
        self.inner.counters.abandon()
    }
}
