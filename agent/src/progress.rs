//! Progress for a person: a bar on a terminal, a log line every few seconds elsewhere (journal, SSM
//! output), so a responder always sees bytes, percent, speed and time left.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use imaging::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows progress one way or the other.
pub enum ProgressDisplay {
    /// An indicatif bar on stderr.
    Bar(ProgressBar),
    /// Log lines at most every `interval`.
    Log {
        /// Minimum time between lines.
        interval: Duration,
        /// When the last line was written.
        last: Mutex<Instant>,
    },
}

impl ProgressDisplay {
    /// A bar when stderr is a terminal and logs are human, log lines otherwise.
    pub fn new(total: u64, json: bool, interval: Duration) -> Self {
        if !json && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {bytes}/{total_bytes} {percent}% {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid progress template"),
            );
            Self::Bar(bar)
        } else {
            Self::Log {
                interval,
                last: Mutex::new(Instant::now()),
            }
        }
    }

    /// Called after every chunk.
    pub fn update(&self, progress: &Progress) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(progress.bytes_done);
                if progress.bad_bytes > 0 {
                    bar.set_message(format!("{} bytes unreadable", progress.bad_bytes));
                }
            }
            Self::Log { interval, last } => {
                let Ok(mut last) = last.lock() else { return };
                let finished = progress.bytes_done == progress.bytes_total;
                if last.elapsed() < *interval || finished {
                    return;
                }
                *last = Instant::now();
                let rates = Rates::of(progress);
                tracing::info!(
                    bytes_done = progress.bytes_done,
                    bytes_total = progress.bytes_total,
                    percent = format_args!("{:.1}", rates.percent),
                    mb_per_s = format_args!("{:.1}", rates.mb_per_s),
                    eta_s = rates.eta_seconds,
                    bad_bytes = progress.bad_bytes,
                    "Imaging in progress."
                );
            }
        }
    }

    /// Removes the bar, if any.
    pub fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Derived numbers for a progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Percent done.
    pub percent: f64,
    /// MB/s (10^6 bytes) so far.
    pub mb_per_s: f64,
    /// Seconds left at the current average speed.
    pub eta_seconds: u64,
}

impl Rates {
    /// Computes the rates of a progress snapshot.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    pub fn of(progress: &Progress) -> Self {
        let done = progress.bytes_done as f64;
        let total = progress.bytes_total.max(1) as f64;
        let seconds = progress.elapsed.as_secs_f64().max(1e-3);
        let rate = done / seconds;
        let left = (total - done).max(0.0);
        Self {
            percent: done / total * 100.0,
            mb_per_s: rate / 1e6,
            eta_seconds: if rate > 0.0 {
                (left / rate).round() as u64
            } else {
                0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_at_half_way() {
        let rates = Rates::of(&Progress {
            bytes_done: 500_000_000,
            bytes_total: 1_000_000_000,
            bad_bytes: 0,
            elapsed: Duration::from_secs(5),
        });
        assert!((rates.percent - 50.0).abs() < 1e-9);
        assert!((rates.mb_per_s - 100.0).abs() < 1e-9);
        assert_eq!(rates.eta_seconds, 5);
    }
}
