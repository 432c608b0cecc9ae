//! Opening the source: read-only, O_DIRECT, its geometry from the kernel, and the write-block.
//!
//! A block device gets the kernel read-only flag (BLKROSET) before the first read, so that nothing on
//! this host — not a stray `fsck`, not an automounter — can write to the evidence while we image it.
//! The exception is live acquisition: when the device (or a partition of it) is mounted, swapped on or
//! held by device-mapper, it belongs to the running system, and flipping it read-only would break that
//! system. Then we leave the flag alone, warn, and record the mount points in the manifest.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::sysfs::DeviceNumber;

mod ioctl {
    //! The block-device ioctls we need, from <linux/fs.h>.
    use nix::{ioctl_read, ioctl_read_bad, ioctl_write_ptr_bad, request_code_none};
    ioctl_read!(blk_get_size64, 0x12, 114, u64);
    ioctl_read_bad!(blk_ssz_get, request_code_none!(0x12, 104), libc::c_int);
    ioctl_read_bad!(blk_pbsz_get, request_code_none!(0x12, 123), libc::c_uint);
    ioctl_read_bad!(blk_ro_get, request_code_none!(0x12, 94), libc::c_int);
    ioctl_write_ptr_bad!(blk_ro_set, request_code_none!(0x12, 93), libc::c_int);
}

/// Sector size assumed for regular-file sources, whose "sectors" only matter for bad-range reporting.
const FILE_SECTOR_SIZE: u32 = 512;

/// What kind of thing the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A kernel block device (the real case: an attached EBS volume).
    BlockDevice,
    /// A regular file (an image of an image, or tests).
    RegularFile,
    /// An EBS snapshot read through the EBS direct APIs (`source.snapshot` says which).
    EbsSnapshot,
    /// The host's physical memory (`source.memory` says how it was read; schema 5 on).
    Memory,
}

/// What happened to the kernel read-only flag, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum ReadOnlyFlag {
    /// We set it before reading.
    Set,
    /// It was already set.
    AlreadySet,
    /// Not set because the device is in use by this host (live acquisition).
    SkippedLive,
    /// Not set because the caller asked us not to.
    SkippedByRequest,
    /// Setting it failed (e.g. no CAP_SYS_ADMIN); the source is still opened read-only.
    Failed(String),
    /// Regular files have no such flag.
    NotApplicable,
}

/// How the host itself is using the source, when it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveUse {
    /// Mount points of filesystems on the device or its partitions.
    pub mount_points: Vec<PathBuf>,
    /// Swap areas on it.
    pub swaps: Vec<PathBuf>,
    /// Kernel names of devices stacked on it (device-mapper, md).
    pub holders: Vec<String>,
}

impl LiveUse {
    /// True when nothing on this host uses the device.
    pub fn is_idle(&self) -> bool {
        self.mount_points.is_empty() && self.swaps.is_empty() && self.holders.is_empty()
    }

    /// How the host uses block device `dev` or any of its partitions, read from the system
    /// tables without opening the device: a detector can refuse the host's own disks before any job
    /// (and before any open, which could race with the host's use of them).
    pub fn of_device(system: &SystemPaths, dev: DeviceNumber) -> Self {
        live_use(system, &device_family(&system.sysfs, dev))
    }
}

/// Where the system tables live; tests point these at fixtures.
#[derive(Debug, Clone)]
pub struct SystemPaths {
    /// Usually `/sys`.
    pub sysfs: PathBuf,
    /// Usually `/proc/self/mountinfo`.
    pub mountinfo: PathBuf,
    /// Usually `/proc/swaps`.
    pub swaps: PathBuf,
}

impl Default for SystemPaths {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            swaps: PathBuf::from("/proc/swaps"),
        }
    }
}

/// How to open a source.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Set BLKROSET on idle block devices (default true).
    pub set_read_only: bool,
    /// System tables to consult.
    pub system: SystemPaths,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            set_read_only: true,
            system: SystemPaths::default(),
        }
    }
}

/// An opened source, ready to be read concurrently with `pread`.
#[derive(Debug)]
pub struct Source {
    file: File,
    path: PathBuf,
    resolved: Option<PathBuf>,
    kind: SourceKind,
    size: u64,
    logical_sector_size: u32,
    physical_sector_size: u32,
    direct_io: bool,
    exclusive: bool,
    read_only_flag: ReadOnlyFlag,
    live: LiveUse,
    identity: Identity,
    dev: Option<DeviceNumber>,
    family: Vec<DeviceNumber>,
    sysfs: PathBuf,
    write_block_due: bool,
}

impl Source {
    /// Opens `path` for imaging. Never writes to it: the descriptor is O_RDONLY, and block devices
    /// that the host does not use get the kernel read-only flag from [`Source::write_block`], which
    /// must run before the first read.
    ///
    /// The source keeps `path` made absolute against the working directory (without resolving
    /// anything, so the record says what the operator named), and what the opened descriptor
    /// turned out to be when that differs (a `/dev/disk/by-id/…` link resolves to `/dev/nvme1n1`).
    pub fn open(path: &Path, options: &SourceOptions) -> Result<Self> {
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let open_err = |source| Error::OpenSource {
            path: path.to_path_buf(),
            source,
        };
        let meta = fs::metadata(path).map_err(open_err)?;
        let kind = if meta.file_type().is_block_device() {
            SourceKind::BlockDevice
        } else if meta.is_file() {
            SourceKind::RegularFile
        } else {
            return Err(Error::UnsupportedSource {
                path: path.to_path_buf(),
            });
        };
        let (file, mode) = open_read_only(path, kind).map_err(open_err)?;
        let resolved = opened_path(&file).filter(|opened| opened != path);

        let mut source = Self {
            file,
            path: path.to_path_buf(),
            resolved,
            kind,
            size: meta.len(),
            logical_sector_size: FILE_SECTOR_SIZE,
            physical_sector_size: FILE_SECTOR_SIZE,
            direct_io: mode.direct,
            exclusive: mode.exclusive,
            read_only_flag: ReadOnlyFlag::NotApplicable,
            live: LiveUse::default(),
            identity: Identity::default(),
            dev: None,
            family: Vec::new(),
            sysfs: options.system.sysfs.clone(),
            write_block_due: false,
        };
        if kind == SourceKind::BlockDevice {
            source.inspect_block_device(meta.rdev(), options)?;
        }
        Ok(source)
    }

    fn inspect_block_device(&mut self, rdev: u64, options: &SourceOptions) -> Result<()> {
        let dev = DeviceNumber::from_dev_t(rdev);
        self.dev = Some(dev);
        self.size = self.query_size()?;
        let fd = self.file.as_raw_fd();
        let mut logical: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one c_int through the pointer, which is valid for the call.
        unsafe { ioctl::blk_ssz_get(fd, &mut logical) }
            .map_err(|e| self.query_err("logical sector size (BLKSSZGET)", e))?;
        let mut physical: libc::c_uint = 0;
        // SAFETY: BLKPBSZGET writes one c_uint through the pointer, which is valid for the call.
        unsafe { ioctl::blk_pbsz_get(fd, &mut physical) }
            .map_err(|e| self.query_err("physical sector size (BLKPBSZGET)", e))?;
        self.logical_sector_size = u32::try_from(logical).unwrap_or(FILE_SECTOR_SIZE);
        self.physical_sector_size = physical;
        self.identity = Identity::from_sysfs(&options.system.sysfs, dev);
        self.family = device_family(&options.system.sysfs, dev);
        self.live = live_use(&options.system, &self.family);
        if !self.live.is_idle() {
            self.read_only_flag = ReadOnlyFlag::SkippedLive;
        } else if !options.set_read_only {
            self.read_only_flag = ReadOnlyFlag::SkippedByRequest;
        } else {
            self.write_block_due = true;
        }
        Ok(())
    }

    /// Sets the kernel read-only flag when [`Source::open`] found it due (an idle block device, not
    /// refused by the caller). Kept apart from opening so that a caller can check everything else
    /// first — names, the output directory, existing evidence — and a run refused for a typo leaves
    /// the device exactly as it found it. The reader refuses a source whose write-block is still due.
    pub fn write_block(&mut self) -> &ReadOnlyFlag {
        if self.write_block_due {
            self.read_only_flag = self.set_kernel_read_only();
            self.write_block_due = false;
        }
        &self.read_only_flag
    }

    /// True while [`Source::write_block`] still has to run before the first read.
    pub fn write_block_due(&self) -> bool {
        self.write_block_due
    }

    /// Device and inode numbers of the opened source, to recognise it under any other name (a
    /// symlink or hard link in the output directory).
    pub fn file_identity(&self) -> io::Result<(u64, u64)> {
        self.file.metadata().map(|m| (m.dev(), m.ino()))
    }

    fn set_kernel_read_only(&self) -> ReadOnlyFlag {
        let fd = self.file.as_raw_fd();
        let mut current: libc::c_int = 0;
        // SAFETY: BLKROGET writes one c_int through the pointer, which is valid for the call.
        if unsafe { ioctl::blk_ro_get(fd, &mut current) }.is_ok() && current != 0 {
            return ReadOnlyFlag::AlreadySet;
        }
        let on: libc::c_int = 1;
        // SAFETY: BLKROSET reads one c_int through the pointer, which is valid for the call.
        match unsafe { ioctl::blk_ro_set(fd, &on) } {
            Ok(_) => ReadOnlyFlag::Set,
            Err(errno) => ReadOnlyFlag::Failed(errno.desc().to_owned()),
        }
    }

    fn query_size(&self) -> Result<u64> {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid for the call.
        unsafe { ioctl::blk_get_size64(self.file.as_raw_fd(), &mut size) }
            .map_err(|e| self.query_err("size (BLKGETSIZE64)", e))?;
        Ok(size)
    }

    fn query_err(&self, what: &'static str, errno: nix::errno::Errno) -> Error {
        Error::DeviceQuery {
            path: self.path.clone(),
            what,
            source: io::Error::from(errno),
        }
    }

    /// Checks, after a failed read, whether the source is still there with the size it had: a detached
    /// or hot-unplugged device must stop the run, not be recorded as a disk full of bad sectors.
    pub fn still_present(&self) -> bool {
        match self.kind {
            SourceKind::BlockDevice => {
                let sysfs_ok = self
                    .dev
                    .is_none_or(|dev| dev.sysfs_dir(&self.sysfs).exists());
                let backing_ok = self
                    .identity
                    .loop_backing_file
                    .as_deref()
                    .is_none_or(backing_file_reachable);
                sysfs_ok && backing_ok && self.query_size().is_ok_and(|size| size == self.size)
            }
            SourceKind::RegularFile | SourceKind::EbsSnapshot | SourceKind::Memory => {
                self.file.metadata().is_ok_and(|m| m.len() >= self.size)
            }
        }
    }

    /// True when `path` lives on a filesystem of this device or one of its partitions: writing the
    /// image there would change the evidence while it is being read.
    pub fn holds_path(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok_and(|m| self.family.contains(&DeviceNumber::from_dev_t(m.dev())))
    }

    /// The open descriptor (read with `pread` from any thread).
    pub fn file(&self) -> &File {
        &self.file
    }
    /// The path as given, made absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The file or device node actually opened, when its path differs from [`Source::path`]
    /// (symbolic links, `..`).
    pub fn resolved_path(&self) -> Option<&Path> {
        self.resolved.as_deref()
    }
    /// Block device or regular file.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }
    /// Size in bytes, from BLKGETSIZE64 for devices.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Logical sector size: the unit of O_DIRECT reads and of bad-sector reporting.
    pub fn logical_sector_size(&self) -> u32 {
        self.logical_sector_size
    }
    /// Physical sector size, for the record.
    pub fn physical_sector_size(&self) -> u32 {
        self.physical_sector_size
    }
    /// Whether reads bypass the page cache (false only for files on filesystems without O_DIRECT).
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }
    /// Whether the device is held with O_EXCL, so nothing can mount it during the acquisition.
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }
    /// What happened to the kernel read-only flag.
    pub fn read_only_flag(&self) -> &ReadOnlyFlag {
        &self.read_only_flag
    }
    /// How the host uses the device; non-idle means live acquisition.
    pub fn live_use(&self) -> &LiveUse {
        &self.live
    }
    /// Model, serial, volume ID and friends.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// Whether the file behind a loop device can still be reached. When the filesystem under it is gone
/// (a FUSE server that died: `ENOTCONN`; a network filesystem that went away), every read of the loop
/// device fails with EIO, which looks like a disk of bad sectors; the cause is a vanished source.
/// A backing file that was merely deleted (`NotFound`, sysfs adds " (deleted)") is still held open
/// by the loop driver and readable.
fn backing_file_reachable(file: &Path) -> bool {
    match fs::metadata(file) {
        Ok(_) => true,
        Err(err) => err.kind() == io::ErrorKind::NotFound,
    }
}

/// How the descriptor was opened, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenMode {
    direct: bool,
    exclusive: bool,
}

/// The path the kernel has for an open descriptor. Read from `/proc/self/fd`, so it names what was
/// opened, not what a link may point to by now; `None` without `/proc` or for an unlinked file.
fn opened_path(file: &File) -> Option<PathBuf> {
    let path = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (path.is_absolute() && !path.to_string_lossy().ends_with(" (deleted)")).then_some(path)
}

/// Opens read-only with O_DIRECT. Block devices are tried with O_EXCL first: while we hold it, nothing
/// on this host can mount the evidence (mount gets EBUSY); a device already in use refuses O_EXCL, and
/// we fall back to a shared open (live acquisition). Regular files fall back to buffered reads only on
/// filesystems that refuse O_DIRECT (tmpfs); O_NOATIME keeps even their access time unchanged.
fn open_read_only(path: &Path, kind: SourceKind) -> io::Result<(File, OpenMode)> {
    let try_open = |flags: libc::c_int| {
        OpenOptions::new()
            .read(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(path)
    };
    let mode = |direct, exclusive| OpenMode { direct, exclusive };
    let attempts: &[(libc::c_int, OpenMode)] = match kind {
        SourceKind::BlockDevice => &[
            (libc::O_DIRECT | libc::O_EXCL, mode(true, true)),
            (libc::O_DIRECT, mode(true, false)),
        ],
        // A `Source` is never a snapshot (`Source::open` gives only the two kinds above).
        SourceKind::RegularFile | SourceKind::EbsSnapshot | SourceKind::Memory => &[
            (libc::O_DIRECT | libc::O_NOATIME, mode(true, false)),
            (libc::O_DIRECT, mode(true, false)),
            (libc::O_NOATIME, mode(false, false)),
            (0, mode(false, false)),
        ],
    };
    let mut last_err = None;
    for &(flags, mode) in attempts {
        match try_open(flags) {
            Ok(file) => return Ok((file, mode)),
            // EBUSY: O_EXCL on a device in use. EPERM: O_NOATIME on a file we do not own.
            // EINVAL: no O_DIRECT on this filesystem.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBUSY | libc::EPERM | libc::EINVAL)
                ) =>
            {
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::InvalidInput)))
}

/// The device and its partitions, read from sysfs.
fn device_family(sysfs: &Path, dev: DeviceNumber) -> Vec<DeviceNumber> {
    let mut family = vec![dev];
    if let Ok(entries) = fs::read_dir(dev.sysfs_dir(sysfs)) {
        family.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|child| child.join("partition").exists())
                .filter_map(|child| DeviceNumber::read(&child.join("dev"))),
        );
    }
    family
}

/// Collects every way this host uses the devices of `family`.
fn live_use(system: &SystemPaths, family: &[DeviceNumber]) -> LiveUse {
    let mountinfo = fs::read_to_string(&system.mountinfo).unwrap_or_default();
    let swaps = fs::read_to_string(&system.swaps).unwrap_or_default();
    LiveUse {
        mount_points: mounts_of(&mountinfo, family),
        swaps: swaps_on(&swaps, family),
        holders: family
            .iter()
            .filter_map(|dev| fs::read_dir(dev.sysfs_dir(&system.sysfs).join("holders")).ok())
            .flat_map(|entries| entries.flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    }
}

/// Mount points in a `/proc/self/mountinfo` text whose device is one of `devices`.
fn mounts_of(mountinfo: &str, devices: &[DeviceNumber]) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let dev = DeviceNumber::parse(fields.nth(2)?)?;
            let mount_point = fields.nth(1)?;
            devices
                .contains(&dev)
                .then(|| PathBuf::from(unescape_mount_field(mount_point)))
        })
        .collect()
}

/// Swap areas in a `/proc/swaps` text that live on one of `devices`.
fn swaps_on(swaps: &str, devices: &[DeviceNumber]) -> Vec<PathBuf> {
    swaps
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| PathBuf::from(unescape_mount_field(name)))
        .filter(|path| {
            fs::metadata(path).is_ok_and(|m| {
                m.file_type().is_block_device()
                    && devices.contains(&DeviceNumber::from_dev_t(m.rdev()))
            })
        })
        .collect()
}

/// The kernel escapes space, tab, newline and backslash in these tables as `\ooo` octal.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(digits) = octal {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 259:1 / /mnt/evidence\\040copy rw,relatime shared:2 - ext4 /dev/nvme1n1p1 rw
36 22 0:5 / /dev rw shared:3 - devtmpfs udev rw
";

    #[test]
    fn mounts_are_found_by_device_number_and_unescaped() {
        assert_eq!(
            mounts_of(
                MOUNTINFO,
                &[DeviceNumber::new(259, 0), DeviceNumber::new(259, 1)]
            ),
            vec![PathBuf::from("/mnt/evidence copy")]
        );
        assert!(mounts_of(MOUNTINFO, &[DeviceNumber::new(7, 3)]).is_empty());
    }

    #[test]
    fn directories_are_refused_with_a_clear_kind() {
        let dir = tempfile::tempdir().unwrap();
        let err = Source::open(dir.path(), &SourceOptions::default()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedSource { .. }), "{err}");
    }

    #[test]
    fn missing_sources_are_classified_as_missing() {
        let err =
            Source::open(Path::new("/nonexistent/disk"), &SourceOptions::default()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::SourceMissing);
    }

    // Issue 10: `source.path` in the manifest was the path as typed, so `acquire disk.raw` recorded
    // a bare `disk.raw`. It is now absolute, and a link records what it resolved to.
    #[test]
    fn the_path_is_made_absolute_and_a_link_names_what_was_opened() {
        let here = std::env::current_dir().unwrap().canonicalize().unwrap();
        let dir = tempfile::tempdir_in(&here).unwrap();
        let file = dir.path().join("disk.raw");
        fs::write(&file, [7u8; 512]).unwrap();
        let name = dir.path().file_name().unwrap();
        let relative = Path::new(name).join("disk.raw");
        let source = Source::open(&relative, &SourceOptions::default()).unwrap();
        assert_eq!(source.path(), here.join(&relative));
        assert!(source.path().is_absolute());
        assert_eq!(source.resolved_path(), None);

        let link = dir.path().join("by-id-link");
        std::os::unix::fs::symlink("disk.raw", &link).unwrap();
        let linked = Path::new(name).join("by-id-link");
        let source = Source::open(&linked, &SourceOptions::default()).unwrap();
        assert_eq!(source.path(), here.join(&linked));
        assert_eq!(source.resolved_path(), Some(file.as_path()));
    }
}
