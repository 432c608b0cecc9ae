//! SIGINT and SIGTERM become a flag the pipeline polls, so an interrupted run stops reading, removes
//! its partial image and writes no manifest. A second signal exits at once.
//!
//! SIGHUP only sets the flag, however often it comes: it is what the daemon's children get when
//! the daemon dies (`PR_SET_PDEATHSIG`, see `daemon::child`), once for every daemon thread that
//! exits, and a hung-up terminal should stop a run as cleanly as Ctrl-C.

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Installs the handlers and returns the flag they set.
pub fn cancel_on_signals() -> io::Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit is registered first so it sees the flag as it was
        // before this delivery; only a second signal finds it set and exits.
        flag::register_conditional_shutdown(signal, 130, Arc::clone(&cancel))?;
        flag::register(signal, Arc::clone(&cancel))?;
    }
    flag::register(signal_hook::consts::SIGHUP, Arc::clone(&cancel))?;
    Ok(cancel)
}
