//! From a link under `/dev/disk` to the whole disk it belongs to, through sysfs.
//!
//! A link may name a partition (`by-label/DATA` → `/dev/nvme1n1p1`); evidence is the whole disk, so
//! the partition's sysfs directory (which has a `partition` file) leads to its parent, the disk. Disks
//! are identified by their device number, plus the kernel's `diskseq` where it exists: a detached and
//! re-attached volume may get the same `major:minor` but always gets a new sequence number.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use imaging::DeviceNumber;

/// Where device nodes live; udev links point here.
const DEV_DIR: &str = "/dev";

/// Bytes per sector in sysfs `size` files, fixed by the kernel whatever the device's sector size.
const SYSFS_SECTOR_BYTES: u64 = 512;

/// What a link currently points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkTarget {
    /// The link or its target does not exist (yet): udev may create a link before the node.
    Dangling,
    /// The link resolves to something that can never be imaged as a disk.
    Unusable {
        /// The resolved target (or the link itself when it cannot be resolved).
        target: PathBuf,
        /// Why.
        why: String,
    },
    /// A block device, and the whole disk it belongs to.
    Disk(WholeDisk),
}

/// A whole disk as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WholeDisk {
    /// Its device node, `/dev/<DEVNAME>`.
    pub device: PathBuf,
    /// Kernel name, e.g. `nvme1n1`.
    pub name: String,
    /// `major:minor` of the whole disk.
    pub dev: DeviceNumber,
    /// The kernel's per-attachment sequence number, where the kernel has one (Linux ≥ 5.15).
    pub diskseq: Option<u64>,
}

impl fmt::Display for WholeDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.device.display(), self.dev)
    }
}

/// Follows `link` to a device node and from there, through `sysfs`, to its whole disk.
pub(super) fn resolve_link(link: &Path, sysfs: &Path) -> LinkTarget {
    let target = match fs::canonicalize(link) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LinkTarget::Dangling,
        Err(e) => {
            return LinkTarget::Unusable {
                target: link.to_path_buf(),
                why: format!("the link does not resolve: {e}"),
            };
        }
    };
    let meta = match fs::metadata(&target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LinkTarget::Dangling,
        Err(e) => {
            return LinkTarget::Unusable {
                why: format!("its target cannot be examined: {e}"),
                target,
            };
        }
    };
    if !meta.file_type().is_block_device() {
        return LinkTarget::Unusable {
            why: format!("its target is a {}, not a block device", kind_of(&meta)),
            target,
        };
    }
    match whole_disk_of(sysfs, DeviceNumber::from_dev_t(meta.rdev())) {
        // The node and sysfs disagree only while a device is coming or going: try again later.
        Some(disk) if node_matches(&disk.device, disk.dev) => LinkTarget::Disk(disk),
        _ => LinkTarget::Dangling,
    }
}

/// The whole disk that block device `dev` is or belongs to, from `<sysfs>/dev/block/M:m`.
pub(super) fn whole_disk_of(sysfs: &Path, dev: DeviceNumber) -> Option<WholeDisk> {
    let entry = fs::canonicalize(dev.sysfs_dir(sysfs)).ok()?;
    let disk_dir = if entry.join("partition").exists() {
        entry.parent()?.to_path_buf()
    } else {
        entry
    };
    let name = disk_dir.file_name()?.to_string_lossy().into_owned();
    let dev = DeviceNumber::read(&disk_dir.join("dev"))?;
    let dev_name = fs::read_to_string(disk_dir.join("uevent"))
        .ok()
        .and_then(|uevent| {
            uevent
                .lines()
                .find_map(|line| line.strip_prefix("DEVNAME=").map(str::to_owned))
        })
        .unwrap_or_else(|| name.clone());
    Some(WholeDisk {
        device: Path::new(DEV_DIR).join(dev_name),
        name,
        dev,
        diskseq: read_trimmed(&disk_dir.join("diskseq")).and_then(|s| s.parse().ok()),
    })
}

/// Size in bytes from sysfs (no open of the device), or `None` when the disk is gone.
pub(super) fn disk_size(sysfs: &Path, dev: DeviceNumber) -> Option<u64> {
    let sectors: u64 = read_trimmed(&dev.sysfs_dir(sysfs).join("size"))?
        .parse()
        .ok()?;
    sectors.checked_mul(SYSFS_SECTOR_BYTES)
}

/// Whether the disk `dev` is still the same attachment: its sysfs entry exists and, where the kernel
/// numbers attachments, carries `diskseq`.
pub(super) fn still_attached(sysfs: &Path, dev: DeviceNumber, diskseq: Option<u64>) -> bool {
    whole_disk_of(sysfs, dev).is_some_and(|disk| disk.dev == dev && disk.diskseq == diskseq)
}

fn node_matches(node: &Path, dev: DeviceNumber) -> bool {
    fs::metadata(node)
        .is_ok_and(|m| m.file_type().is_block_device() && DeviceNumber::from_dev_t(m.rdev()) == dev)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_file() {
        "regular file"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs with `nvme1n1` (259:0, diskseq 7) and its partition `nvme1n1p1` (259:1).
    fn fake_sysfs() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let disk = root.path().join("devices/pci0/nvme/nvme1/nvme1n1");
        let part = disk.join("nvme1n1p1");
        fs::create_dir_all(&part).unwrap();
        fs::write(disk.join("dev"), "259:0\n").unwrap();
        fs::write(disk.join("uevent"), "MAJOR=259\nMINOR=0\nDEVNAME=nvme1n1\n").unwrap();
        fs::write(disk.join("diskseq"), "7\n").unwrap();
        fs::write(disk.join("size"), "2097152\n").unwrap();
        fs::write(part.join("dev"), "259:1\n").unwrap();
        fs::write(part.join("partition"), "1\n").unwrap();
        fs::create_dir_all(root.path().join("dev/block")).unwrap();
        symlink(&disk, root.path().join("dev/block/259:0")).unwrap();
        symlink(&part, root.path().join("dev/block/259:1")).unwrap();
        root
    }

    #[test]
    fn a_partition_leads_to_its_whole_disk() {
        let sysfs = fake_sysfs();
        let want = WholeDisk {
            device: PathBuf::from("/dev/nvme1n1"),
            name: "nvme1n1".into(),
            dev: DeviceNumber::new(259, 0),
            diskseq: Some(7),
        };
        assert_eq!(
            whole_disk_of(sysfs.path(), DeviceNumber::new(259, 1)),
            Some(want.clone())
        );
        assert_eq!(
            whole_disk_of(sysfs.path(), DeviceNumber::new(259, 0)),
            Some(want)
        );
        assert_eq!(whole_disk_of(sysfs.path(), DeviceNumber::new(259, 9)), None);
    }

    #[test]
    fn size_comes_from_sysfs_sectors() {
        let sysfs = fake_sysfs();
        assert_eq!(
            disk_size(sysfs.path(), DeviceNumber::new(259, 0)),
            Some(1 << 30)
        );
        assert_eq!(disk_size(sysfs.path(), DeviceNumber::new(259, 9)), None);
    }

    #[test]
    fn a_new_diskseq_means_a_new_attachment() {
        let sysfs = fake_sysfs();
        assert!(still_attached(
            sysfs.path(),
            DeviceNumber::new(259, 0),
            Some(7)
        ));
        assert!(!still_attached(
            sysfs.path(),
            DeviceNumber::new(259, 0),
            Some(6)
        ));
        assert!(!still_attached(
            sysfs.path(),
            DeviceNumber::new(259, 9),
            Some(7)
        ));
    }

    #[test]
    fn links_to_missing_or_non_block_targets_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert_eq!(
            resolve_link(&dangling, Path::new("/sys")),
            LinkTarget::Dangling
        );

        let file = dir.path().join("file");
        fs::write(&file, b"not a disk").unwrap();
        let to_file = dir.path().join("to-file");
        symlink(&file, &to_file).unwrap();
        match resolve_link(&to_file, Path::new("/sys")) {
            LinkTarget::Unusable { target, why } => {
                assert_eq!(target, file);
                assert!(why.contains("regular file"), "{why}");
            }
            other => panic!("expected Unusable, got {other:?}"),
        }

        let looping = dir.path().join("loop");
        symlink(&looping, &looping).unwrap();
        assert!(matches!(
            resolve_link(&looping, Path::new("/sys")),
            LinkTarget::Unusable { .. }
        ));
    }
}
