//! What a source *is*, read from sysfs: model, serial, EBS volume ID, loop backing file.
//!
//! On Nitro instances an EBS volume is an NVMe namespace whose controller serial is the volume ID
//! without its dash (`vol0123456789abcdef0`). We derive the ID from the serial, never from the model
//! string, because test hypervisors cannot fake the model and because the serial is what EBS documents.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::sysfs::DeviceNumber;

/// An EBS volume ID such as `vol-0123456789abcdef0` (17 hex digits; old volumes have 8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VolumeId(String);

impl VolumeId {
    /// Reads a volume ID from either the API form (`vol-…`) or the NVMe serial form (`vol…`).
    pub fn from_serial_or_id(text: &str) -> Option<Self> {
        let hex = text
            .trim()
            .strip_prefix("vol-")
            .or_else(|| text.trim().strip_prefix("vol"))?;
        let valid_len = hex.len() == 17 || hex.len() == 8;
        let valid_digits = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (valid_len && valid_digits).then(|| Self(format!("vol-{hex}")))
    }

    /// The API form, `vol-…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VolumeId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_serial_or_id(s).ok_or_else(|| format!("{s:?} is not an EBS volume ID (vol-…)"))
    }
}

impl TryFrom<String> for VolumeId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<VolumeId> for String {
    fn from(id: VolumeId) -> String {
        id.0
    }
}

/// Identity facts about a block device, each optional because not every device type exposes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Kernel name of the device itself (`nvme1n1`, `nvme1n1p1`, `loop3`).
    pub kernel_name: Option<String>,
    /// Kernel name of the whole disk when the source is a partition.
    pub parent_disk: Option<String>,
    /// Device model (`Amazon Elastic Block Store`).
    pub model: Option<String>,
    /// Device serial (`vol0123456789abcdef0` on EBS NVMe).
    pub serial: Option<String>,
    /// EBS volume ID derived from the serial.
    pub ebs_volume_id: Option<VolumeId>,
    /// For loop devices: the file behind it.
    pub loop_backing_file: Option<PathBuf>,
}

impl Identity {
    /// Reads the identity of block device `dev` from a sysfs tree (normally `/sys`).
    /// Missing attributes are left empty: identity is descriptive, never a reason to fail.
    pub fn from_sysfs(sysfs: &Path, dev: DeviceNumber) -> Self {
        let Ok(dev_dir) = fs::canonicalize(dev.sysfs_dir(sysfs)) else {
            return Self::default();
        };
        let is_partition = dev_dir.join("partition").exists();
        let disk_dir = if is_partition {
            dev_dir
                .parent()
                .map_or_else(|| dev_dir.clone(), Path::to_path_buf)
        } else {
            dev_dir.clone()
        };
        let serial = read_attr(&disk_dir.join("device/serial"))
            .or_else(|| read_attr(&disk_dir.join("serial")));
        Self {
            kernel_name: file_name(&dev_dir),
            parent_disk: is_partition.then(|| file_name(&disk_dir)).flatten(),
            model: read_attr(&disk_dir.join("device/model")),
            ebs_volume_id: serial.as_deref().and_then(VolumeId::from_serial_or_id),
            serial,
            loop_backing_file: read_attr(&disk_dir.join("loop/backing_file")).map(PathBuf::from),
        }
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn read_attr(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_id_from_nvme_serial_and_api_form() {
        let id = VolumeId::from_serial_or_id("vol0123456789abcdef0").unwrap();
        assert_eq!(id.as_str(), "vol-0123456789abcdef0");
        assert_eq!(
            VolumeId::from_serial_or_id("vol-0123456789abcdef0"),
            Some(id)
        );
        assert_eq!(
            VolumeId::from_serial_or_id("vol-1234abcd")
                .unwrap()
                .as_str(),
            "vol-1234abcd"
        );
    }

    #[test]
    fn volume_id_rejects_other_serials() {
        for bad in [
            "",
            "vol",
            "vol-xyz",
            "QM00001",
            "vol0123456789ABCDEF0",
            "vol-0123456789abcdef01",
        ] {
            assert_eq!(VolumeId::from_serial_or_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn identity_of_a_partition_comes_from_its_disk() {
        let root = tempfile::tempdir().unwrap();
        let disk = root.path().join("devices/pci0/nvme/nvme1/nvme1n1");
        let part = disk.join("nvme1n1p1");
        fs::create_dir_all(disk.join("device")).unwrap();
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join("partition"), "1\n").unwrap();
        fs::write(disk.join("device/serial"), "vol0123456789abcdef0  \n").unwrap();
        fs::write(disk.join("device/model"), "Amazon Elastic Block Store\n").unwrap();
        fs::create_dir_all(root.path().join("dev/block")).unwrap();
        std::os::unix::fs::symlink(&part, root.path().join("dev/block/259:1")).unwrap();

        let id = Identity::from_sysfs(root.path(), DeviceNumber::new(259, 1));
        assert_eq!(id.kernel_name.as_deref(), Some("nvme1n1p1"));
        assert_eq!(id.parent_disk.as_deref(), Some("nvme1n1"));
        assert_eq!(id.model.as_deref(), Some("Amazon Elastic Block Store"));
        assert_eq!(id.ebs_volume_id.unwrap().as_str(), "vol-0123456789abcdef0");
    }
}
