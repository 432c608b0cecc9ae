//! SIGINT and SIGTERM become a flag the pipeline polls, so an interrupted run stops reading, removes
//! its partial image and writes no manifest. A second signal exits at once.
//!
//! During start-up (loading the configuration, which may wait seconds for IMDS) nothing exists yet
//! that a signal would need to clean up, and no stage polls the flag: a signal then ends the
//! process at once with 130 (`start_up`), so systemd's stop or an operator's Ctrl-C is never
//! ignored while the process waits.
//!
//! SIGHUP only sets the flag, however often it comes: it is what the daemon's children get when
//! the daemon dies (`PR_SET_PDEATHSIG`, see `daemon::child`), once for every daemon thread that
//! exits, and a hung-up terminal should stop a run as cleanly as Ctrl-C.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use crate::exit::Exit;

/// Set while the process is starting up; see the module doc.
fn starting() -> &'static Arc<AtomicBool> {
    static STARTING: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STARTING.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handlers and returns the flag they set.
pub fn cancel_on_signals() -> io::Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    let interrupted = i32::from(Exit::Interrupted.code());
    for signal in [SIGINT, SIGTERM] {
        // Order matters: handlers run in registration order. Start-up exits first; then the
        // conditional exit sees the flag as it was before this delivery, so only a second signal
        // finds it set and exits.
        flag::register_conditional_shutdown(signal, interrupted, Arc::clone(starting()))?;
        flag::register_conditional_shutdown(signal, interrupted, Arc::clone(&cancel))?;
        flag::register(signal, Arc::clone(&cancel))?;
    }
    flag::register(signal_hook::consts::SIGHUP, Arc::clone(&cancel))?;
    Ok(cancel)
}

/// While the returned guard lives, SIGINT and SIGTERM end the process at once with 130. For
/// phases that create nothing and do not poll the cancel flag.
#[must_use = "start-up ends when the guard is dropped"]
pub fn start_up() -> StartUp {
    starting().store(true, Ordering::SeqCst);
    StartUp(())
}

/// Ends start-up when dropped; from then on a first signal only sets the cancel flag.
#[derive(Debug)]
pub struct StartUp(());

impl Drop for StartUp {
    fn drop(&mut self) {
        starting().store(false, Ordering::SeqCst);
    }
}
