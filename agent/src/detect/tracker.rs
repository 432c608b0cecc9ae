//! From link events to one decision per disk: resolve, group by whole disk, settle, check the host
//! does not use it, report once.
//!
//! Dedupe key: the whole disk's `major:minor`. A reported disk stays reported while the same
//! attachment exists; when its sysfs entry disappears, or the kernel's `diskseq` for that number
//! changes (a new attachment that reused the number), a later link makes it a new disk.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imaging::DeviceNumber;
use imaging::Identity;
use imaging::{LiveUse, SystemPaths};

use super::dirs::LinkDir;
use super::event::{AttachedDisk, Refusal, WatchEvent};
use super::names::{decode_udev_escapes, volume_id_from_link_name};
use super::resolve::{self, LinkTarget, WholeDisk};
use super::settle::{SettleRules, SettleState, Settling};

/// How long a link whose target does not exist is retried. udev creates links after the kernel
/// created the node (devtmpfs), so this only covers races with a node still being set up; a link
/// still dangling after this is stale and is dropped (a new event for it starts over).
const DANGLING_PATIENCE: Duration = Duration::from_secs(10);

/// A disk seen but not yet reported.
#[derive(Debug)]
struct Candidate {
    disk: WholeDisk,
    links: Vec<(LinkDir, PathBuf)>,
    settling: Settling,
}

/// A link whose target does not exist yet.
#[derive(Debug, Clone, Copy)]
struct Dangling {
    dir: LinkDir,
    since: Instant,
    next_try: Instant,
}

/// The state behind [`super::Watcher`], apart from inotify.
#[derive(Debug)]
pub(super) struct Tracker {
    system: SystemPaths,
    rules: SettleRules,
    retry_every: Duration,
    candidates: HashMap<DeviceNumber, Candidate>,
    /// Reported (attached or refused) disks and the `diskseq` of that attachment.
    reported: HashMap<DeviceNumber, Option<u64>>,
    /// Non-device link targets already refused.
    refused_targets: HashSet<PathBuf>,
    dangling: HashMap<PathBuf, Dangling>,
}

impl Tracker {
    /// An empty tracker.
    pub(super) fn new(system: SystemPaths, rules: SettleRules) -> Self {
        Self {
            system,
            retry_every: rules.size_poll,
            rules,
            candidates: HashMap::new(),
            reported: HashMap::new(),
            refused_targets: HashSet::new(),
            dangling: HashMap::new(),
        }
    }

    /// A link appeared, was renamed into place or touched at `at`. Returns a refusal at once for
    /// a link that can never be a disk.
    pub(super) fn link_seen(
        &mut self,
        dir: LinkDir,
        link: PathBuf,
        at: Instant,
    ) -> Option<WatchEvent> {
        match resolve::resolve_link(&link, &self.system.sysfs) {
            LinkTarget::Dangling => {
                if link.symlink_metadata().is_ok() {
                    tracing::debug!(link = %link.display(), "The link's target does not exist yet.");
                    self.dangling.entry(link).or_insert(Dangling {
                        dir,
                        since: at,
                        next_try: at + self.retry_every,
                    });
                } else {
                    self.dangling.remove(&link);
                }
                None
            }
            LinkTarget::Unusable { target, why } => {
                self.dangling.remove(&link);
                if !self.refused_targets.insert(target.clone()) {
                    return None;
                }
                tracing::warn!(link = %link.display(), target = %target.display(), reason = %why,
                    "A disk link does not lead to a block device; refusing it.");
                Some(WatchEvent::Refused {
                    disk: target,
                    link,
                    reason: Refusal::NotABlockDevice(why),
                })
            }
            LinkTarget::Disk(disk) => {
                self.dangling.remove(&link);
                self.observe(disk, dir, link, at);
                None
            }
        }
    }

    fn observe(&mut self, disk: WholeDisk, dir: LinkDir, link: PathBuf, at: Instant) {
        if self.reported.get(&disk.dev) == Some(&disk.diskseq) {
            tracing::debug!(disk = %disk, link = %link.display(),
                "Another link for a disk already reported; ignoring it.");
            return;
        }
        self.reported.remove(&disk.dev);
        if let Some(candidate) = self
            .candidates
            .get_mut(&disk.dev)
            .filter(|c| c.disk.diskseq == disk.diskseq)
        {
            if !candidate.links.iter().any(|(_, known)| *known == link) {
                candidate.links.push((dir, link));
            }
            candidate.settling.link_event(at);
            return;
        }
        tracing::info!(disk = %disk, link = %link.display(),
            "A disk appeared; waiting for it to settle.");
        self.candidates.insert(
            disk.dev,
            Candidate {
                disk,
                links: vec![(dir, link)],
                settling: Settling::new(at),
            },
        );
    }

    /// Advances everything pending at `now`: retries dangling links, settles candidates. Returns the
    /// decisions made and when something will next be due.
    pub(super) fn poll(&mut self, now: Instant) -> (Vec<WatchEvent>, Option<Instant>) {
        let sysfs = self.system.sysfs.clone();
        self.reported
            .retain(|dev, diskseq| resolve::still_attached(&sysfs, *dev, *diskseq));
        let mut events: Vec<WatchEvent> = self.retry_dangling(now);
        let mut wake = self.dangling.values().map(|d| d.next_try).min();

        let mut finished = Vec::new();
        for (dev, candidate) in &mut self.candidates {
            let size = resolve::disk_size(&sysfs, *dev)
                .filter(|_| resolve::still_attached(&sysfs, *dev, candidate.disk.diskseq));
            let Some(size) = size else {
                tracing::info!(disk = %candidate.disk, "A disk went away before it settled.");
                finished.push((*dev, None));
                continue;
            };
            match candidate.settling.check(now, size, &self.rules) {
                SettleState::Settled { size } => {
                    finished.push((*dev, Some(decide(&self.system, candidate, size))));
                }
                SettleState::GaveUp { size } => {
                    let reason = Refusal::NeverSettled {
                        waited: now.saturating_duration_since(candidate.settling.first_seen()),
                        size,
                    };
                    tracing::warn!(disk = %candidate.disk, reason = %reason, "Refusing a disk.");
                    finished.push((*dev, Some(refused(candidate, reason))));
                }
                SettleState::Waiting { until } => wake = Some(wake.map_or(until, |w| w.min(until))),
            }
        }
        for (dev, event) in finished {
            let Some(candidate) = self.candidates.remove(&dev) else {
                continue;
            };
            if let Some(event) = event {
                self.reported.insert(dev, candidate.disk.diskseq);
                events.push(event);
            }
        }
        (events, wake)
    }

    fn retry_dangling(&mut self, now: Instant) -> Vec<WatchEvent> {
        let due: Vec<(PathBuf, Dangling)> = self
            .dangling
            .iter()
            .filter(|(_, d)| now >= d.next_try)
            .map(|(link, d)| (link.clone(), *d))
            .collect();
        let mut events = Vec::new();
        for (link, dangling) in due {
            if now >= dangling.since + DANGLING_PATIENCE {
                tracing::debug!(link = %link.display(), "Giving up on a dangling link.");
                self.dangling.remove(&link);
                continue;
            }
            if let Some(entry) = self.dangling.get_mut(&link) {
                entry.next_try = now + self.retry_every;
            }
            events.extend(self.link_seen(dangling.dir, link, dangling.since));
        }
        events
    }
}

/// The final check of a settled disk: refused when the host uses it, attached otherwise.
fn decide(system: &SystemPaths, candidate: &Candidate, size: u64) -> WatchEvent {
    let live = LiveUse::of_device(system, candidate.disk.dev);
    if !live.is_idle() {
        let reason = Refusal::InUse(live);
        tracing::warn!(disk = %candidate.disk, reason = %reason, "Refusing a disk the host uses.");
        return refused(candidate, reason);
    }
    let link_names = |wanted: LinkDir| {
        candidate
            .links
            .iter()
            .filter(move |(dir, _)| *dir == wanted)
            .filter_map(|(_, link)| link.file_name())
            .map(|name| name.to_string_lossy())
    };
    let identity = Identity::from_sysfs(&system.sysfs, candidate.disk.dev);
    let volume_id = identity
        .ebs_volume_id
        .or_else(|| link_names(LinkDir::ById).find_map(|name| volume_id_from_link_name(&name)));
    let attached = AttachedDisk {
        device: candidate.disk.device.clone(),
        dev: candidate.disk.dev,
        links: candidate
            .links
            .iter()
            .map(|(_, link)| link.clone())
            .collect(),
        label: link_names(LinkDir::ByLabel)
            .next()
            .map(|name| decode_udev_escapes(&name)),
        volume_id,
        size,
        first_seen: candidate.settling.first_seen(),
    };
    tracing::info!(disk = %candidate.disk, size,
        volume_id = attached.volume_id.as_ref().map(ToString::to_string),
        label = attached.label.as_deref(), "A disk is attached and settled.");
    WatchEvent::Attached(attached)
}

fn refused(candidate: &Candidate, reason: Refusal) -> WatchEvent {
    WatchEvent::Refused {
        disk: candidate.disk.device.clone(),
        link: candidate
            .links
            .first()
            .map_or_else(PathBuf::new, |(_, link)| link.clone()),
        reason,
    }
}

/// Whether `path` is a link name a scan should look at (udev's temporary files start with `.`).
pub(super) fn is_link_name(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| !name.to_string_lossy().starts_with('.'))
}
