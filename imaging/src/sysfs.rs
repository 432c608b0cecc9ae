//! Block device numbers (`major:minor`) and the sysfs directory that describes each device: the
//! one parser and the one path rule shared by the engine (identity, live use, presence) and the
//! agent's detection (whole disk, size, attachment).
//!
//! The kernel hands a device number out in three spellings — `st_rdev`/`st_dev` from `stat`, the
//! text `259:1` in sysfs `dev` files and in `/proc/self/mountinfo` — and names the device's sysfs
//! entry after it, `<sysfs>/dev/block/259:1` (a link into `/sys/devices/…`). Reading them in one
//! place keeps every caller agreeing on the width (the kernel's own `u32` halves) and on the path.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceNumber {
    /// The driver (259 is NVMe and other block extended devices, 7 loop).
    pub major: u32,
    /// The device (or partition) within the driver.
    pub minor: u32,
}

impl DeviceNumber {
    /// `major:minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// From a `dev_t` as `stat` reports it (`st_rdev` of a device node, `st_dev` of a file).
    pub fn from_dev_t(dev: u64) -> Self {
        Self::new(libc::major(dev), libc::minor(dev))
    }

    /// Parses `259:1` (surrounding whitespace, such as a sysfs file's newline, is ignored);
    /// `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once(':')?;
        // `u32::from_str` would also take `+7`; the kernel writes digits only.
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        Some(Self::new(number(major)?, number(minor)?))
    }

    /// Reads a sysfs `dev` file; `None` when it is absent or unreadable as a device number.
    pub fn read(path: &Path) -> Option<Self> {
        Self::parse(&fs::read_to_string(path).ok()?)
    }

    /// The device's directory in the sysfs tree at `sysfs` (normally `/sys`):
    /// `<sysfs>/dev/block/MAJOR:MINOR`. It exists exactly while the kernel has the device.
    pub fn sysfs_dir(self, sysfs: &Path) -> PathBuf {
        sysfs.join(format!("dev/block/{self}"))
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl From<(u32, u32)> for DeviceNumber {
    fn from((major, minor): (u32, u32)) -> Self {
        Self::new(major, minor)
    }
}

impl From<DeviceNumber> for (u32, u32) {
    fn from(dev: DeviceNumber) -> Self {
        (dev.major, dev.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 10: device numbers were parsed as u64 pairs in the engine and u32 pairs in detection,
    // and the sysfs path was spelled out in three files.
    #[test]
    fn device_numbers_parse_only_as_major_colon_minor() {
        assert_eq!(
            DeviceNumber::parse("259:12"),
            Some(DeviceNumber::new(259, 12))
        );
        assert_eq!(DeviceNumber::parse(" 7:3\n"), Some(DeviceNumber::new(7, 3)));
        for bad in [
            "259",
            "259:",
            ":1",
            "a:1",
            "1:b",
            "1:2:3",
            "+1:2",
            "1:+2",
            "-1:2",
            "4294967296:0",
            "",
        ] {
            assert_eq!(DeviceNumber::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            DeviceNumber::parse("4294967295:0"),
            Some(DeviceNumber::new(u32::MAX, 0))
        );
    }

    #[test]
    fn the_sysfs_dir_is_named_after_the_number() {
        let dev = DeviceNumber::new(259, 1);
        assert_eq!(dev.to_string(), "259:1");
        assert_eq!(
            dev.sysfs_dir(Path::new("/sys")),
            Path::new("/sys/dev/block/259:1")
        );
        assert_eq!(<(u32, u32)>::from(dev), (259, 1));
        assert_eq!(DeviceNumber::from((259, 1)), dev);
    }

    #[test]
    fn dev_t_halves_are_the_kernels() {
        let dev = libc::makedev(259, 70_000);
        assert_eq!(
            DeviceNumber::from_dev_t(dev),
            DeviceNumber::new(259, 70_000)
        );
    }

    #[test]
    fn a_dev_file_is_read_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev");
        assert_eq!(DeviceNumber::read(&file), None);
        fs::write(&file, "259:1\n").unwrap();
        assert_eq!(DeviceNumber::read(&file), Some(DeviceNumber::new(259, 1)));
    }
}
