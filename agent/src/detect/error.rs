//! Failures of the watcher itself. A bad link or disk is never an error: it is a
//! [`super::WatchEvent::Refused`] or a debug line. These errors mean detection cannot continue.

use std::io;
use std::path::PathBuf;

/// Why the watcher cannot watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `inotify_init1` failed (instance limit reached, no inotify in this kernel).
    #[error("inotify could not be initialised: {0}")]
    Init(#[source] io::Error),
    /// A watch could not be added (watch limit reached, permission).
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory that could not be watched.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// No ancestor of a link directory exists, not even `/` (a relative disk root?).
    #[error("no existing directory above {path} can be watched")]
    NoAncestor {
        /// The link directory.
        path: PathBuf,
    },
    /// Waiting on the inotify descriptor failed.
    #[error("waiting for inotify events failed: {0}")]
    Wait(#[source] io::Error),
    /// Reading inotify events failed.
    #[error("reading inotify events failed: {0}")]
    Read(#[source] io::Error),
}
