//! The delivery task: the only code that talks to CloudWatch. It runs as one task on the process's
//! runtime (`aws::runtime`), takes events off the intake, groups them into PutLogEvents calls by the rules in
//! `batch`, creates the groups and streams when missing, and retries failed calls with backoff. No
//! producer ever waits for it: when it falls behind, the bounded buffer fills and producers count
//! drops instead. Losses are announced with an `events_dropped` event as soon as a call succeeds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::Client;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::batch::{self, LogEvent, MAX_BATCH_BYTES, MAX_BATCH_EVENTS};
use super::call::{self, CallOutcome};
use super::counters::Counters;
use super::event::{millis, stamp};
use super::retry::{Backoff, MAX_ATTEMPTS_PER_BATCH};
use super::settings::ReportSettings;
use super::target::Target;
use super::truncate;

/// How long the first event of a batch waits for company. Progress comes every few seconds, so a
/// second of delay costs nothing and bursts (a job's start and its first progress) share a call.
const BATCH_WINDOW: Duration = Duration::from_secs(1);

/// The channels the reporter handle feeds.
pub(super) struct Inputs {
    /// Capture events, already stamped and fitted.
    pub(super) intake: mpsc::UnboundedReceiver<LogEvent>,
    /// Time (ms) of the latest readiness request.
    pub(super) readiness: watch::Receiver<Option<i64>>,
    /// The shutdown deadline, once asked for.
    pub(super) shutdown: watch::Receiver<Option<std::time::Instant>>,
}

/// A batch taken off the queue, kept across retries.
struct Batch {
    events: Vec<LogEvent>,
    attempts: u32,
}

/// The task's state.
pub(super) struct Delivery {
    client: Client,
    capture: Target,
    readiness: Target,
    readiness_message: String,
    flush_timeout: Duration,
    inputs: Inputs,
    counters: Arc<Counters>,
    pending: VecDeque<LogEvent>,
    pending_bytes: usize,
    pending_since: Option<Instant>,
    batch: Option<Batch>,
    readiness_due: Option<i64>,
    backoff: Backoff,
    healthy: bool,
    reported_loss: u64,
}

impl Delivery {
    /// A task for `settings`, fed by `inputs`, keeping its tallies in `counters`.
    pub(super) fn new(
        client: Client,
        settings: &ReportSettings,
        inputs: Inputs,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            client,
            capture: Target::new(&settings.capture_group, &settings.stream),
            readiness: Target::new(&settings.readiness_group, &settings.stream),
            readiness_message: truncate::fit_text(settings.readiness_message.clone()),
            flush_timeout: settings.flush_timeout,
            inputs,
            counters,
            pending: VecDeque::new(),
            pending_bytes: 0,
            pending_since: None,
            batch: None,
            readiness_due: None,
            backoff: Backoff::default(),
            healthy: true,
            reported_loss: 0,
        }
    }

    /// Delivers until shutdown is asked for (or every handle is gone), then flushes until the
    /// deadline and counts what is left as failed.
    pub(super) async fn run(mut self) {
        let deadline = self.serve().await;
        self.flush(deadline).await;
    }

    /// The steady state: send what is due, otherwise wait for events, a timer or shutdown.
    async fn serve(&mut self) -> Instant {
        loop {
            let now = Instant::now();
            if let Some(deadline) = self.shutdown_asked() {
                return deadline;
            }
            if self.backoff.ready(now) && (self.readiness_due.is_some() || self.capture_due(now)) {
                // A call in flight when shutdown is asked for may finish, but not past the
                // shutdown deadline (which may be sooner than the call's own timeout).
                let mut shutdown = self.inputs.shutdown.clone();
                let send = self.send_next(now + self.flush_timeout);
                tokio::pin!(send);
                tokio::select! {
                    () = &mut send => {}
                    _ = shutdown.changed() => {
                        let asked = *shutdown.borrow();
                        let deadline = asked.map_or_else(Instant::now, Instant::from_std);
                        let _ = timeout_at(deadline, send).await;
                    }
                }
                continue;
            }
            let wake = self.next_wake(now);
            let room = self.pending_has_room();
            tokio::select! {
                received = self.inputs.intake.recv(), if room => match received {
                    Some(event) => self.take(event),
                    None => return Instant::now() + self.flush_timeout,
                },
                changed = self.inputs.readiness.changed() => match changed {
                    Ok(()) => self.request_readiness(),
                    Err(_) => return Instant::now() + self.flush_timeout,
                },
                _ = self.inputs.shutdown.changed() => {}
                () = sleep_until(wake.unwrap_or(now)), if wake.is_some() => {}
            }
        }
    }

    /// The flush deadline once shutdown was asked for; one call's time when every handle is gone.
    /// Read from the value, not from change notifications, which a `changed()` already consumed.
    fn shutdown_asked(&self) -> Option<Instant> {
        if let Some(deadline) = *self.inputs.shutdown.borrow() {
            return Some(Instant::from_std(deadline));
        }
        self.inputs
            .shutdown
            .has_changed()
            .is_err()
            .then(|| Instant::now() + self.flush_timeout)
    }

    /// Sends what is left until `deadline`, then counts the rest as failed.
    async fn flush(&mut self, deadline: Instant) {
        self.inputs.intake.close();
        if self.inputs.readiness.has_changed().unwrap_or(false) {
            self.request_readiness();
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            while self.pending_has_room() {
                let Ok(event) = self.inputs.intake.try_recv() else {
                    break;
                };
                self.take(event);
            }
            let capture_work =
                self.batch.is_some() || !self.pending.is_empty() || self.loss_unreported();
            if self.readiness_due.is_none() && !capture_work {
                break;
            }
            if let Some(at) = self.backoff.not_before().filter(|&at| at > now) {
                sleep_until(at.min(deadline)).await;
                continue;
            }
            self.send_next(deadline.min(now + self.flush_timeout)).await;
        }
        let mut left = self.pending.len() + self.batch.take().map_or(0, |b| b.events.len());
        self.pending.clear();
        while self.inputs.intake.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            tracing::warn!(
                events = left,
                "CloudWatch events could not be delivered before the shutdown deadline."
            );
        }
        self.counters.failed(left);
    }

    /// The readiness message goes first: the attaching Lambda waits for it.
    async fn send_next(&mut self, until: Instant) {
        if self.readiness_due.is_some() {
            self.send_readiness(until).await;
        } else {
            self.send_capture(until).await;
        }
    }

    fn request_readiness(&mut self) {
        self.readiness_due = *self.inputs.readiness.borrow_and_update();
        if self.readiness_due.is_some() {
            self.counters.set_readiness_pending(true);
        }
    }

    fn take(&mut self, event: LogEvent) {
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending_bytes += event.cost();
        self.pending.push_back(event);
    }

    /// The pending queue holds at most about one batch; the rest waits in the intake, counted
    /// against the buffer's capacity.
    fn pending_has_room(&self) -> bool {
        self.pending.len() < MAX_BATCH_EVENTS && self.pending_bytes < MAX_BATCH_BYTES
    }

    fn loss_unreported(&self) -> bool {
        self.healthy && self.counters.lost() > self.reported_loss
    }

    fn capture_due(&self, now: Instant) -> bool {
        if self.batch.is_some() || !self.pending_has_room() {
            return true;
        }
        match self.pending_since {
            Some(since) => now >= since + BATCH_WINDOW,
            None => self.loss_unreported(),
        }
    }

    /// When the loop must look again without new input: the end of a backoff wait when there is
    /// work, else the end of the batch window.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let work =
            self.readiness_due.is_some() || self.batch.is_some() || self.pending_since.is_some();
        match self.backoff.not_before() {
            Some(at) if work && at > now => Some(at),
            _ => self.pending_since.map(|since| since + BATCH_WINDOW),
        }
    }

    async fn send_readiness(&mut self, until: Instant) {
        let Some(timestamp_ms) = self.readiness_due else {
            return;
        };
        let event = LogEvent {
            timestamp_ms,
            message: self.readiness_message.clone(),
        };
        match call::put(&self.client, &mut self.readiness, &[event], until).await {
            CallOutcome::Accepted(rejected) => {
                self.succeeded();
                self.readiness_due = None;
                self.counters.set_readiness_pending(false);
                if rejected.contains(0) {
                    tracing::error!(
                        group = %self.readiness.group,
                        "CloudWatch refused the readiness message for its timestamp; check the clock."
                    );
                }
            }
            CallOutcome::Missing => {
                self.readiness.forget();
                self.note_failure("the log group or stream does not exist");
            }
            CallOutcome::Retry(reason) => self.note_failure(&reason),
            CallOutcome::Refused(reason) => {
                self.readiness_due = None;
                tracing::error!(group = %self.readiness.group, %reason,
                    "CloudWatch refused the readiness message; the attaching Lambda will not see it.");
            }
        }
    }

    async fn send_capture(&mut self, until: Instant) {
        if self.batch.is_none() {
            let cut = batch::next_batch(&mut self.pending, millis(SystemTime::now()));
            self.pending_bytes = self.pending.iter().map(LogEvent::cost).sum();
            if self.pending.is_empty() {
                self.pending_since = None;
            }
            if cut.out_of_window > 0 {
                tracing::warn!(
                    events = cut.out_of_window,
                    "Events too old or too far ahead for CloudWatch were not sent; check the clock."
                );
                self.counters.failed(cut.out_of_window);
            }
            if !cut.events.is_empty() {
                self.batch = Some(Batch {
                    events: cut.events,
                    attempts: 0,
                });
            }
        }
        let mut events = self
            .batch
            .as_ref()
            .map_or_else(Vec::new, |b| b.events.clone());
        let count = events.len();
        let report = self.loss_report(&events);
        if let Some((event, _)) = &report {
            events.push(event.clone());
        }
        if events.is_empty() {
            return;
        }
        match call::put(&self.client, &mut self.capture, &events, until).await {
            CallOutcome::Accepted(rejected) => {
                self.succeeded();
                self.batch = None;
                let refused = rejected.count(count);
                self.counters.sent(count - refused);
                if refused > 0 {
                    tracing::warn!(
                        events = refused,
                        "CloudWatch refused events for their timestamps."
                    );
                    self.counters.failed(refused);
                }
                if let Some((_, lost)) = report
                    && !rejected.contains(count)
                {
                    self.reported_loss = lost;
                }
            }
            CallOutcome::Missing => {
                self.capture.forget();
                self.note_failure("the log group or stream does not exist");
                self.count_attempt();
            }
            CallOutcome::Retry(reason) => {
                self.note_failure(&reason);
                self.count_attempt();
            }
            CallOutcome::Refused(reason) => {
                tracing::error!(group = %self.capture.group, events = count, %reason,
                    "CloudWatch refused a batch of capture events.");
                self.batch = None;
                self.counters.failed(count);
            }
        }
    }

    /// An `events_dropped` event to append to `events`, with the loss total it accounts for, when
    /// there is unreported loss and room in the call.
    fn loss_report(&self, events: &[LogEvent]) -> Option<(LogEvent, u64)> {
        if !self.loss_unreported() || events.len() >= MAX_BATCH_EVENTS {
            return None;
        }
        let lost = self.counters.lost();
        let stats = self.counters.snapshot();
        let now = SystemTime::now();
        let mut event = stamp(
            json!({
                "event": "events_dropped",
                "count": lost - self.reported_loss,
                "dropped_total": stats.dropped,
                "failed_total": stats.failed,
            }),
            now,
        );
        // Last in the call, so it must not be older than the events before it.
        let latest = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
        event.timestamp_ms = event.timestamp_ms.max(latest);
        let bytes: usize = events.iter().map(LogEvent::cost).sum();
        (bytes + event.cost() <= MAX_BATCH_BYTES).then_some((event, lost))
    }

    fn count_attempt(&mut self) {
        let Some(batch) = self.batch.as_mut() else {
            return;
        };
        batch.attempts += 1;
        if batch.attempts >= MAX_ATTEMPTS_PER_BATCH {
            let count = batch.events.len();
            self.batch = None;
            tracing::warn!(
                events = count,
                attempts = MAX_ATTEMPTS_PER_BATCH,
                "Gave up on a batch of capture events; CloudWatch kept failing."
            );
            self.counters.failed(count);
        }
    }

    fn succeeded(&mut self) {
        if !self.healthy {
            tracing::info!("CloudWatch accepts events again.");
        }
        self.healthy = true;
        self.backoff.succeeded();
    }

    fn note_failure(&mut self, reason: &str) {
        let wait = self.backoff.failed(Instant::now());
        if self.healthy {
            tracing::warn!(%reason, retry_in_ms = wait.as_millis(),
                "CloudWatch is not accepting events; holding them and retrying.");
        }
        self.healthy = false;
    }
}
