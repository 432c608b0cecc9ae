//! What the watcher reports: a disk ready to image, or a disk (or link) it will not take, and why.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use imaging::DeviceNumber;
use imaging::LiveUse;
use imaging::VolumeId;

/// One outcome of watching `/dev/disk`. Each disk attachment yields at most one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A whole disk appeared, settled, and nothing on this host uses it: image it.
    Attached(AttachedDisk),
    /// A disk or link that must not be imaged; the daemon reports it and moves on.
    Refused {
        /// The whole disk's device node (or, for a link to a non-device, the link's target).
        disk: PathBuf,
        /// The first link through which it was seen.
        link: PathBuf,
        /// Why it is refused.
        reason: Refusal,
    },
}

/// A whole disk ready for acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedDisk {
    /// The whole disk's node (`/dev/nvme1n1`, `/dev/loop3`), even when only partitions had links.
    pub device: PathBuf,
    /// `major:minor` of the whole disk: the identity used to report it once.
    pub dev: DeviceNumber,
    /// Every link seen for it (or its partitions) before it was reported, in arrival order.
    pub links: Vec<PathBuf>,
    /// The filesystem label from the first `by-label` link, with udev's `\xNN` escapes decoded.
    pub label: Option<String>,
    /// The EBS volume ID: from the NVMe serial in sysfs, else from a `by-id` link name.
    pub volume_id: Option<VolumeId>,
    /// Size in bytes once settled.
    pub size: u64,
    /// When the first link event for it arrived (or the initial scan found it): the start of the
    /// detection latency the daemon reports.
    pub first_seen: Instant,
}

/// Why a disk or link is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The host uses the disk or one of its partitions (mounted, swap, device-mapper/md holders):
    /// it may be the collector's own root, and imaging it would be neither safe nor evidence.
    InUse(LiveUse),
    /// The link does not lead to a block device (a regular file, a directory, a symlink loop).
    NotABlockDevice(String),
    /// Its size stayed zero or kept changing, or its links kept changing, for this long.
    NeverSettled {
        /// How long we waited.
        waited: Duration,
        /// The last size read, in bytes.
        size: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InUse(live) => {
                f.write_str("in use by this host:")?;
                let list = |paths: &[PathBuf]| {
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !live.mount_points.is_empty() {
                    write!(f, " mounted at {};", list(&live.mount_points))?;
                }
                if !live.swaps.is_empty() {
                    write!(f, " swap on {};", list(&live.swaps))?;
                }
                if !live.holders.is_empty() {
                    write!(f, " held by {};", live.holders.join(", "))?;
                }
                Ok(())
            }
            Refusal::NotABlockDevice(why) => f.write_str(why),
            Refusal::NeverSettled { waited, size } => write!(
                f,
                "did not settle within {waited:?} (size {size} bytes, zero or changing, or links kept changing)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_uses_the_disk() {
        let live = LiveUse {
            mount_points: vec![PathBuf::from("/"), PathBuf::from("/boot")],
            swaps: vec![],
            holders: vec!["dm-0".into()],
        };
        assert_eq!(
            Refusal::InUse(live).to_string(),
            "in use by this host: mounted at /, /boot; held by dm-0;"
        );
    }
}
