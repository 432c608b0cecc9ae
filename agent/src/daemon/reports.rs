//! Reporting as the daemon sees it: CloudWatch when enabled, nothing otherwise, through one type so
//! the loop never asks which.

use std::time::Instant;

use crate::cloudwatch::{DeliveryStats, Reporter};

/// The daemon's reports.
#[derive(Clone)]
pub struct Reports(Option<Reporter>);

impl Reports {
    /// Reports through `reporter`, or nowhere.
    pub fn new(reporter: Option<Reporter>) -> Self {
        Self(reporter)
    }

    /// Signals readiness to the attaching flow.
    pub fn readiness(&self) {
        if let Some(reporter) = &self.0 {
            reporter.readiness();
        }
    }

    /// Queues a capture event; never blocks.
    pub fn emit(&self, event: serde_json::Value) {
        if let Some(reporter) = &self.0 {
            reporter.emit(event);
        }
    }

    /// Flushes until `deadline` and returns the tallies.
    pub fn shutdown(self, deadline: Instant) -> Option<DeliveryStats> {
        self.0.map(|reporter| reporter.shutdown(deadline))
    }
}
