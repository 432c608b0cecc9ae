//! Logging: human lines on a terminal, JSON under systemd or with `--json`, and a copy of every line
//! in memory so it can be saved as the capture log beside the evidence.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Every log line of this run, in human format, for `<name>.capture.log`.
#[derive(Clone, Default)]
pub struct CaptureLog(Arc<Mutex<Vec<u8>>>);

impl CaptureLog {
    /// A copy of everything logged so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|buf| buf.clone()).unwrap_or_default()
    }
}

impl Write for CaptureLog {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Ok(mut buf) = self.0.lock() {
            buf.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaptureLog {
    type Writer = CaptureLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// True when logs should be JSON: asked for, or running under systemd (journald sets JOURNAL_STREAM).
pub fn wants_json(flag: bool) -> bool {
    flag || std::env::var_os("JOURNAL_STREAM").is_some()
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init(json: bool) -> CaptureLog {
    let capture = CaptureLog::default();
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let capture_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(capture.clone())
        .with_filter(filter());
    let registry = tracing_subscriber::registry().with(capture_layer);
    if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(io::stderr)
                    .with_filter(filter()),
            )
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(io::stderr().is_terminal())
                    .with_writer(io::stderr)
                    .with_filter(filter()),
            )
            .init();
    }
    capture
}
