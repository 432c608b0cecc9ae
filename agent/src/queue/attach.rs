//! The fallback path's wait: a volume job names a volume the flow attached to this collector, and
//! the job images the disk whose EBS volume ID (NVMe serial, or its `by-id` link) is that volume,
//! found by the daemon's own watcher — so the host's own disks are refused exactly as there. The
//! attachment may take seconds after AttachVolume returns; the wait is bounded and beats.

use std::time::{Duration, Instant};

use imaging::VolumeId;

use crate::detect::{AttachedDisk, WatchEvent, WatchSettings, Watcher};

/// How long the flow's volume may take to appear after its job arrives: EBS attachments take
/// seconds; five minutes is past any that still completes.
pub const ATTACH_WAIT: Duration = Duration::from_secs(300);
/// The watcher's slice between beats and stop checks.
const SLICE: Duration = Duration::from_millis(250);

/// Why no disk was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAttached {
    /// `keep_going` said stop (a signal, or the execution is gone).
    Stopped,
    /// The wait ran out or the watcher failed.
    Failed(String),
}

/// Waits until `volume` is attached, calling `keep_going` between slices (it beats, and says
/// whether to go on).
pub fn wait_for(
    volume: &VolumeId,
    settings: WatchSettings,
    limit: Duration,
    mut keep_going: impl FnMut() -> bool,
) -> Result<AttachedDisk, NotAttached> {
    let root = settings.disk_root.clone();
    let mut watcher = Watcher::arm(settings)
        .map_err(|e| NotAttached::Failed(format!("cannot watch for attached disks: {e}")))?;
    let deadline = Instant::now() + limit;
    loop {
        if !keep_going() {
            return Err(NotAttached::Stopped);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(NotAttached::Failed(format!(
                "volume {volume} did not appear under {} within {} s",
                root.display(),
                limit.as_secs()
            )));
        }
        match watcher.next_event((now + SLICE).min(deadline)) {
            Ok(Some(WatchEvent::Attached(disk))) if disk.volume_id.as_ref() == Some(volume) => {
                return Ok(disk);
            }
            Ok(Some(WatchEvent::Refused { disk, reason, .. })) => {
                tracing::info!(device = %disk.display(), reason = %reason,
                    "A disk other than the job's, or one this host uses: not imaged.");
            }
            Ok(_) => {}
            Err(e) => return Err(NotAttached::Failed(format!("the disk watcher failed: {e}"))),
        }
    }
}
