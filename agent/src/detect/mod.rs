//! Device detection: tells the daemon "this whole disk was attached, has settled, and is safe to
//! image" — or that it will not be taken, and why.
//!
//! udev announces an attached volume by creating links under `/dev/disk/by-id` and
//! `/dev/disk/by-label`. We watch those directories with inotify (and their ancestors while they do
//! not exist yet, as at boot), resolve each link through sysfs to its whole disk, wait until the disk
//! has settled (stable non-zero size, no new links for a quiet period), refuse any disk this host
//! uses (mounted, swap, holders — that covers the collector's own root), and report each disk once.
//!
//! The API is synchronous, for a dedicated thread, like the imaging engine:
//! [`Watcher::arm`] then [`Watcher::next_event`] in a loop with a deadline, so the caller can check
//! for shutdown between calls. Every wait inside is bounded by that deadline.
//!
//! # Layout
//! - `dirs`: inotify arming, including watching ancestors until the link directories appear.
//! - `resolve`: link → device node → whole disk (sysfs), size, attachment identity.
//! - `names`: label and EBS volume ID from link names.
//! - `settle`: when a disk is ready (timing only).
//! - `tracker`: grouping links per disk, dedupe, the host-use check, the decision.
//! - `event`, `error`: the public types.

mod dirs;
mod error;
mod event;
mod names;
mod resolve;
mod settle;
mod tracker;

use std::collections::VecDeque;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use imaging::SystemPaths;

pub use error::WatchError;
pub use event::{AttachedDisk, Refusal, WatchEvent};

use dirs::{DirEvent, LinkDir, LinkDirs};
use settle::SettleRules;
use tracker::Tracker;

/// Default quiet period: udev writes all links of a disk within a few milliseconds of each other,
/// and 300 ms keeps "link created → reported" well under a second.
pub const DEFAULT_SETTLE_QUIET: Duration = Duration::from_millis(300);

/// Default interval between the two size reads that must agree: short enough to fit inside the
/// quiet period, long enough for a device still being set up to show a changing size.
pub const DEFAULT_SIZE_POLL: Duration = Duration::from_millis(100);

/// Longest wait for a disk to settle. An EBS volume's size is known when its namespace appears;
/// half a minute of a zero or changing size, or of links still changing, is not a volume to take
/// unattended, so it is refused with a reason rather than waited for forever.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Floor for `size_poll`: a zero interval would re-read sysfs in a busy loop while a size is zero.
const MIN_SIZE_POLL: Duration = Duration::from_millis(10);

/// Where to watch and how long to wait.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// The root of udev's links, `/dev/disk`; tests use a temporary directory.
    pub disk_root: PathBuf,
    /// Time without new link events for a disk before it counts as settled.
    pub settle_quiet: Duration,
    /// Interval between the two size reads that must agree.
    pub size_poll: Duration,
    /// sysfs, mountinfo and swaps, consulted to resolve disks and refuse those the host uses.
    pub system: SystemPaths,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            disk_root: PathBuf::from("/dev/disk"),
            settle_quiet: DEFAULT_SETTLE_QUIET,
            size_poll: DEFAULT_SIZE_POLL,
            system: SystemPaths::default(),
        }
    }
}

/// Watches the disk root and turns link events into [`WatchEvent`]s.
pub struct Watcher {
    dirs: LinkDirs,
    tracker: Tracker,
    ready: VecDeque<WatchEvent>,
}

impl Watcher {
    /// Arms inotify (on the link directories, or their nearest existing ancestors) and scans what is
    /// already linked. Once this returns, any link created under the disk root will be seen: the
    /// daemon can signal readiness. Disks found by the scan are reported by [`Self::next_event`]
    /// once settled.
    pub fn arm(settings: WatchSettings) -> Result<Self, WatchError> {
        let disk_root =
            std::path::absolute(&settings.disk_root).map_err(|source| WatchError::Watch {
                path: settings.disk_root.clone(),
                source,
            })?;
        let rules = SettleRules {
            quiet: settings.settle_quiet,
            size_poll: settings.size_poll.max(MIN_SIZE_POLL),
            limit: SETTLE_LIMIT,
        };
        let (dirs, scans) = LinkDirs::arm(&disk_root)?;
        let mut watcher = Self {
            dirs,
            tracker: Tracker::new(settings.system, rules),
            ready: VecDeque::new(),
        };
        watcher.handle(scans, Instant::now());
        Ok(watcher)
    }

    /// Blocks until the next event or `deadline`; `Ok(None)` when the deadline passed first. A
    /// deadline already past still takes in what inotify has queued (one non-blocking pass), so a
    /// caller polling with `Instant::now()` makes progress.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<WatchEvent>, WatchError> {
        let mut last_pass = false;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            let (events, wake) = self.tracker.poll(now);
            if !events.is_empty() {
                self.ready.extend(events);
                continue;
            }
            if last_pass {
                return Ok(None);
            }
            last_pass = now >= deadline;
            let until = wake.map_or(deadline, |wake| wake.min(deadline));
            let dir_events = self.dirs.wait(until.saturating_duration_since(now))?;
            self.handle(dir_events, Instant::now());
        }
    }

    fn handle(&mut self, events: Vec<DirEvent>, now: Instant) {
        for event in events {
            match event {
                DirEvent::Link { dir, path } => self.link_seen(dir, path, now),
                DirEvent::Scan(dir) => {
                    let path = self.dirs.path_of(dir);
                    match fs::read_dir(&path) {
                        Ok(entries) => {
                            for entry in entries.flatten() {
                                self.link_seen(dir, entry.path(), now);
                            }
                        }
                        // It went away again; its watch's removal will re-arm.
                        Err(e) => tracing::debug!(dir = %path.display(), error = %e,
                            "A link directory could not be scanned."),
                    }
                }
            }
        }
    }

    fn link_seen(&mut self, dir: LinkDir, path: PathBuf, now: Instant) {
        if tracker::is_link_name(&path) {
            self.ready.extend(self.tracker.link_seen(dir, path, now));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_watcher_can_move_to_its_own_thread() {
        fn send<T: Send>() {}
        send::<super::Watcher>();
    }
}
