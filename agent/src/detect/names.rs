//! What udev link names tell us: the filesystem label (`by-label/…`, escaped) and the EBS volume ID
//! (`by-id/nvme-Amazon_Elastic_Block_Store_vol…`, `by-id/virtio-vol…`).
//!
//! The volume ID from sysfs (the NVMe serial) is preferred; a link name is the fallback for devices
//! whose sysfs carries no serial (loop devices, some Xen/virtio setups). Names are untrusted input:
//! anything that does not parse is ignored, never an error.

use imaging::VolumeId;

/// Decodes udev's escaping of link names: bytes outside its safe set (space, `/`, `\`, quotes…) are
/// written as `\xNN`. A malformed escape is kept literally; invalid UTF-8 becomes U+FFFD.
pub(super) fn decode_udev_escapes(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|chunk| chunk.starts_with(b"\\x"))
            .and_then(|chunk| std::str::from_utf8(&chunk[2..]).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The EBS volume ID embedded in a `by-id` link name, if any.
///
/// udev names an EBS NVMe namespace `nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0`, with
/// variants ending in `_1`, `-ns-1` or `-part1`; virtio disks are `virtio-vol…`. We look for `vol`
/// (or `vol-`) at the start of a `_`/`-` separated field, followed by lowercase hex digits that end
/// the field, and let [`VolumeId`] check the length.
pub(super) fn volume_id_from_link_name(name: &str) -> Option<VolumeId> {
    let is_separator = |b: u8| b == b'_' || b == b'-';
    let bytes = name.as_bytes();
    (0..bytes.len())
        .filter(|&start| start == 0 || is_separator(bytes[start - 1]))
        .filter_map(|start| name.get(start..)?.strip_prefix("vol"))
        .find_map(|rest| {
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let hex_len = rest
                .bytes()
                .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
                .count();
            let ends_field = rest
                .as_bytes()
                .get(hex_len)
                .is_none_or(|&b| is_separator(b));
            ends_field
                .then(|| VolumeId::from_serial_or_id(&format!("vol{}", &rest[..hex_len])))
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_escapes_in_labels_are_decoded() {
        assert_eq!(decode_udev_escapes("EVIDENCE"), "EVIDENCE");
        assert_eq!(decode_udev_escapes(r"case\x20042"), "case 042");
        assert_eq!(decode_udev_escapes(r"a\x2fb\x5cc"), r"a/b\c");
        assert_eq!(decode_udev_escapes(r"caf\xc3\xa9"), "café");
    }

    #[test]
    fn malformed_escapes_are_kept_literally() {
        assert_eq!(decode_udev_escapes(r"x\x2"), r"x\x2");
        assert_eq!(decode_udev_escapes(r"\xzz\"), r"\xzz\");
        assert_eq!(decode_udev_escapes(r"\xff"), "\u{fffd}");
    }

    #[test]
    fn volume_ids_come_from_ebs_and_virtio_link_names() {
        let id = |name: &str| volume_id_from_link_name(name).map(|v| v.as_str().to_owned());
        let want = Some("vol-0123456789abcdef0".to_owned());
        assert_eq!(
            id("nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"),
            want
        );
        assert_eq!(
            id("nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0_1"),
            want
        );
        assert_eq!(
            id("nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0-ns-1"),
            want
        );
        assert_eq!(
            id("nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0-part1"),
            want
        );
        assert_eq!(id("virtio-vol0123456789abcdef0"), want);
        assert_eq!(id("nvme-QEMU_NVMe_Ctrl_vol-0123456789abcdef0"), want);
        assert_eq!(id("virtio-vol1234abcd").as_deref(), Some("vol-1234abcd"));
    }

    #[test]
    fn other_link_names_carry_no_volume_id() {
        for name in [
            "nvme-nvme.1d0f-766f6c30313233343536373839616263646566-ns-1",
            "ata-QEMU_HARDDISK_QM00001",
            "nvme-Amazon_Elastic_Block_Store_volume",
            "nvme-Amazon_Elastic_Block_Store_vol0123456789ABCDEF0",
            "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef01",
            "xvol0123456789abcdef0",
            "virtio-vol0123456789abcdef0x",
            "",
        ] {
            assert_eq!(volume_id_from_link_name(name), None, "{name}");
        }
    }
}
