//! inotify on `<disk_root>/by-label` and `<disk_root>/by-id`, including before they exist.
//!
//! At boot udev may not have created `/dev/disk` yet. A directory that is missing is covered by a
//! watch on its nearest existing ancestor; when anything appears there we try again, and once the
//! directory itself is watched we ask for a scan of its content, so a link created between "directory
//! appeared" and "watch added" is still seen. Arming repeats until the ancestor it settles on is the
//! same twice: then that watch was in place while the path below it was still missing.
//!
//! udev puts links in place with a rename (`IN_MOVED_TO`); `IN_CREATE` covers plain `ln -s`, and
//! `IN_ATTRIB` is accepted because re-examining a link is harmless. A queue overflow rescans all.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::WatchError;

/// Room for many events per read; one needs 16 bytes plus a name of at most 255.
const EVENT_BUFFER_BYTES: usize = 16 * 1024;

/// Reads per wake-up before returning to the caller, so a flood cannot starve settling.
const MAX_READS_PER_WAKE: usize = 16;

/// Enough passes for any realistic path depth; each pass goes at least one level deeper or stops.
const MAX_ARM_PASSES: usize = 32;

/// The two link directories udev maintains that identify attached disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum LinkDir {
    /// `by-label/<filesystem label>`.
    ByLabel,
    /// `by-id/<bus>-<model>_<serial>[-partN]`.
    ById,
}

impl LinkDir {
    const ALL: [LinkDir; 2] = [LinkDir::ByLabel, LinkDir::ById];

    /// The directory's name under the disk root.
    pub(super) fn dir_name(self) -> &'static str {
        match self {
            LinkDir::ByLabel => "by-label",
            LinkDir::ById => "by-id",
        }
    }
}

/// What the watches saw, in terms the tracker understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DirEvent {
    /// A name in a link directory was created, renamed into place or touched.
    Link { dir: LinkDir, path: PathBuf },
    /// A link directory is newly watched (or events were lost): look at everything in it.
    Scan(LinkDir),
}

/// What a watch descriptor stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watched {
    Links(LinkDir),
    Ancestor(PathBuf),
}

/// The inotify instance and the watches it holds.
pub(super) struct LinkDirs {
    inotify: Inotify,
    root: PathBuf,
    watches: HashMap<WatchDescriptor, Watched>,
    buffer: Box<[u8; EVENT_BUFFER_BYTES]>,
}

impl LinkDirs {
    /// Creates the inotify instance and arms it; returns the scans the caller must perform.
    pub(super) fn arm(root: &Path) -> Result<(Self, Vec<DirEvent>), WatchError> {
        let inotify = Inotify::init().map_err(WatchError::Init)?;
        let mut dirs = Self {
            inotify,
            root: root.to_path_buf(),
            watches: HashMap::new(),
            buffer: Box::new([0; EVENT_BUFFER_BYTES]),
        };
        let scans = dirs.rearm()?;
        Ok((dirs, scans))
    }

    /// Full path of a link directory.
    pub(super) fn path_of(&self, dir: LinkDir) -> PathBuf {
        self.root.join(dir.dir_name())
    }

    /// Waits up to `timeout` for inotify events and translates them.
    pub(super) fn wait(&mut self, timeout: Duration) -> Result<Vec<DirEvent>, WatchError> {
        // Round up: a timeout rounded down to 0 ms would spin until the deadline.
        let millis = timeout.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Ok(_) => {}
            Err(errno) => return Err(WatchError::Wait(io::Error::from(errno))),
        }
        self.read_available()
    }

    fn read_available(&mut self) -> Result<Vec<DirEvent>, WatchError> {
        let mut out = Vec::new();
        let mut rearm = false;
        for _ in 0..MAX_READS_PER_WAKE {
            let raw: Vec<(WatchDescriptor, EventMask, Option<PathBuf>)> =
                match self.inotify.read_events(&mut self.buffer[..]) {
                    Ok(events) => events
                        .map(|e| (e.wd, e.mask, e.name.map(PathBuf::from)))
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(WatchError::Read(e)),
                };
            for (wd, mask, name) in raw {
                rearm |= self.translate(wd, mask, name, &mut out);
            }
        }
        if rearm {
            out.extend(self.rearm()?);
        }
        Ok(out)
    }

    /// Adds the event's meaning to `out`; returns whether the watches must be re-armed.
    fn translate(
        &mut self,
        wd: WatchDescriptor,
        mask: EventMask,
        name: Option<PathBuf>,
        out: &mut Vec<DirEvent>,
    ) -> bool {
        if mask.contains(EventMask::Q_OVERFLOW) {
            tracing::warn!("The inotify queue overflowed; rescanning the link directories.");
            out.extend(self.armed().map(DirEvent::Scan));
            return true;
        }
        let Some(watched) = self.watches.get(&wd).cloned() else {
            return false;
        };
        let gone =
            mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED);
        if gone {
            self.watches.remove(&wd);
            // After MOVE_SELF the watch follows the directory elsewhere; drop it. After DELETE_SELF
            // the kernel already has, and this fails harmlessly.
            let _ = self.inotify.watches().remove(wd);
            tracing::debug!(watched = ?watched, "A watched directory went away; re-arming.");
            return true;
        }
        match (watched, name) {
            (Watched::Links(dir), Some(name)) if !mask.contains(EventMask::ISDIR) => {
                out.push(DirEvent::Link {
                    dir,
                    path: self.path_of(dir).join(name),
                });
                false
            }
            (Watched::Links(_), _) => false,
            // Something appeared on the way to a link directory (re-arming is a few syscalls).
            (Watched::Ancestor(_), _) => true,
        }
    }

    fn armed(&self) -> impl Iterator<Item = LinkDir> + '_ {
        self.watches.values().filter_map(|w| match w {
            Watched::Links(dir) => Some(*dir),
            Watched::Ancestor(_) => None,
        })
    }

    /// Watches each link directory, or the nearest existing ancestor of a missing one, and drops
    /// ancestor watches no longer needed. Returns a scan for each directory newly watched.
    fn rearm(&mut self) -> Result<Vec<DirEvent>, WatchError> {
        let mut scans = Vec::new();
        let mut ancestors = Vec::new();
        for dir in LinkDir::ALL {
            if self.armed().any(|armed| armed == dir) {
                continue;
            }
            match self.arm_one(dir)? {
                Ok(()) => scans.push(DirEvent::Scan(dir)),
                Err(ancestor) => ancestors.push(ancestor),
            }
        }
        let unneeded: Vec<WatchDescriptor> = self
            .watches
            .iter()
            .filter(|(_, w)| matches!(w, Watched::Ancestor(p) if !ancestors.contains(p)))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in unneeded {
            self.watches.remove(&wd);
            let _ = self.inotify.watches().remove(wd);
        }
        Ok(scans)
    }

    /// Watches `dir` itself (`Ok(Ok(()))`) or, while it is missing, its nearest existing ancestor
    /// (`Ok(Err(ancestor))`).
    fn arm_one(&mut self, dir: LinkDir) -> Result<Result<(), PathBuf>, WatchError> {
        let target = self.path_of(dir);
        let link_mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::ATTRIB
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        let ancestor_mask = WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        let mut previous: Option<PathBuf> = None;
        for _ in 0..MAX_ARM_PASSES {
            if let Some(wd) = self.add(&target, link_mask)? {
                self.watches.insert(wd, Watched::Links(dir));
                tracing::debug!(dir = %target.display(), "Watching a link directory.");
                return Ok(Ok(()));
            }
            let mut ancestor = target.parent();
            let (path, wd) = loop {
                let Some(path) = ancestor else {
                    return Err(WatchError::NoAncestor { path: target });
                };
                if let Some(wd) = self.add(path, ancestor_mask)? {
                    break (path.to_path_buf(), wd);
                }
                ancestor = path.parent();
            };
            self.watches.insert(wd, Watched::Ancestor(path.clone()));
            if previous.as_ref() == Some(&path) {
                tracing::debug!(dir = %target.display(), ancestor = %path.display(),
                    "A link directory is missing; watching its ancestor until it appears.");
                return Ok(Err(path));
            }
            previous = Some(path);
        }
        Ok(Err(previous.unwrap_or_default()))
    }

    /// Adds a watch; `None` when the path is missing or not a directory (yet).
    fn add(&mut self, path: &Path, mask: WatchMask) -> Result<Option<WatchDescriptor>, WatchError> {
        match self.inotify.watches().add(path, mask) {
            Ok(wd) => Ok(Some(wd)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(WatchError::Watch {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Instant;

    /// Collects events for up to two seconds, until one matches.
    fn wait_for(dirs: &mut LinkDirs, wanted: impl Fn(&DirEvent) -> bool) -> Vec<DirEvent> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = Vec::new();
        while !seen.iter().any(&wanted) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no matching event; saw {seen:?}");
            seen.extend(dirs.wait(left).unwrap());
        }
        seen
    }

    #[test]
    fn existing_link_directories_are_scanned_at_arming() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("by-id")).unwrap();
        let (_dirs, scans) = LinkDirs::arm(root.path()).unwrap();
        assert_eq!(scans, vec![DirEvent::Scan(LinkDir::ById)]);
    }

    #[test]
    fn a_missing_root_is_covered_by_its_parent_until_the_directories_appear() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("disk");
        let (mut dirs, scans) = LinkDirs::arm(&root).unwrap();
        assert!(scans.is_empty());

        fs::create_dir_all(root.join("by-label")).unwrap();
        wait_for(&mut dirs, |e| *e == DirEvent::Scan(LinkDir::ByLabel));
        fs::write(root.join("by-label/DATA"), b"").unwrap();
        wait_for(&mut dirs, |e| {
            *e == DirEvent::Link {
                dir: LinkDir::ByLabel,
                path: root.join("by-label/DATA"),
            }
        });
    }

    #[test]
    fn a_link_directory_removed_and_recreated_is_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let by_id = root.path().join("by-id");
        fs::create_dir(&by_id).unwrap();
        let (mut dirs, _) = LinkDirs::arm(root.path()).unwrap();

        fs::remove_dir(&by_id).unwrap();
        // The removal is noticed (the watch goes away) before the directory comes back.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            assert!(dirs.wait(Duration::from_millis(50)).unwrap().is_empty());
        }
        fs::create_dir(&by_id).unwrap();
        wait_for(&mut dirs, |e| *e == DirEvent::Scan(LinkDir::ById));
        fs::write(by_id.join("virtio-x"), b"").unwrap();
        wait_for(
            &mut dirs,
            |e| matches!(e, DirEvent::Link { path, .. } if *path == by_id.join("virtio-x")),
        );
    }
}
