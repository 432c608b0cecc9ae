//! `/proc/iomem`: where the host's RAM is. The kernel lists every physical address range it
//! knows, nested by indentation; the top-level `System RAM` entries are the RAM it manages — what
//! an examiner's tools expect in a memory image, and the only ranges safe to read (reading
//! device memory through `/dev/mem` can hang a machine).
//!
//! Lines look like `00100000-bffdffff : System RAM` (inclusive bounds, hex). Without
//! CAP_SYS_ADMIN the kernel prints every address as zero: that list is refused, not imaged.

/// A physical address range `[start, end)`.
pub(crate) type PhysRange = (u64, u64);

/// Most lines read: a real `/proc/iomem` has tens to a few thousand.
const MAX_LINES: usize = 100_000;

/// The top-level `System RAM` ranges of `text`, in ascending order, adjacent ones merged.
pub(crate) fn system_ram(text: &str) -> Result<Vec<PhysRange>, String> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate().take(MAX_LINES) {
        if line.starts_with(' ') || line.trim().is_empty() {
            continue;
        }
        let at = number + 1;
        let Some((bounds, name)) = line.split_once(" : ") else {
            return Err(format!("line {at}: {line:?} is not `START-END : NAME`"));
        };
        let (start, last) = bounds
            .split_once('-')
            .and_then(|(a, b)| {
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                ))
            })
            .ok_or_else(|| format!("line {at}: {bounds:?} is not a hex address range"))?;
        entries.push((at, bounds, start, last, name.trim_end() == "System RAM"));
    }
    if entries
        .iter()
        .all(|&(_, _, start, last, _)| start == 0 && last == 0)
    {
        return Err("every address in /proc/iomem reads as zero: the kernel hides them from a process without CAP_SYS_ADMIN".to_owned());
    }
    let mut ranges: Vec<PhysRange> = Vec::new();
    for (at, bounds, start, last, ram) in entries {
        if !ram {
            continue;
        }
        if last < start {
            return Err(format!("line {at}: range {bounds} ends before it starts"));
        }
        let end = last.saturating_add(1);
        match ranges.last_mut() {
            Some(previous) if start < previous.1 => {
                return Err(format!(
                    "line {at}: range {bounds} overlaps or precedes the one before it"
                ));
            }
            Some(previous) if start == previous.1 => previous.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    if ranges.is_empty() {
        return Err("/proc/iomem lists no System RAM".to_owned());
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QEMU q35 guest with 1 GiB, as Debian 12's kernel prints it.
    const Q35: &str = "\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000a0000-000bffff : PCI Bus 0000:00
000f0000-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-3ffdcfff : System RAM
  01000000-01e02596 : Kernel code
  01e02597-0257e9ff : Kernel data
3ffdd000-3fffffff : Reserved
fec00000-fec003ff : IOAPIC 0
100000000-13fffffff : System RAM
";

    #[test]
    fn top_level_system_ram_is_taken_with_exclusive_ends() {
        assert_eq!(
            system_ram(Q35).unwrap(),
            [
                (0x1000, 0x9fc00),
                (0x100000, 0x3ffdd000),
                (0x1_0000_0000, 0x1_4000_0000)
            ]
        );
    }

    #[test]
    fn nested_system_ram_and_other_names_are_not_ranges() {
        let text = "00000000-0000ffff : PCI Bus\n  00001000-00001fff : System RAM\n00100000-001fffff : System RAM (reserved)\n00200000-002fffff : System RAM\n";
        assert_eq!(system_ram(text).unwrap(), [(0x200000, 0x300000)]);
    }

    #[test]
    fn ram_from_address_zero_is_not_the_hidden_view() {
        let text = "00000000-0009ffff : System RAM\n";
        assert_eq!(system_ram(text).unwrap(), [(0, 0xa0000)]);
    }

    #[test]
    fn a_range_of_one_byte_is_ram() {
        let text = "00001000-00001000 : System RAM\n";
        assert_eq!(system_ram(text).unwrap(), [(0x1000, 0x1001)]);
    }

    #[test]
    fn adjacent_ranges_merge() {
        let text = "00001000-00001fff : System RAM\n00002000-00002fff : System RAM\n00004000-00004fff : System RAM\n";
        assert_eq!(
            system_ram(text).unwrap(),
            [(0x1000, 0x3000), (0x4000, 0x5000)]
        );
    }

    #[test]
    fn the_view_without_privilege_is_refused() {
        let hidden = Q35
            .lines()
            .map(|l| {
                let (bounds, name) = l.split_once(" : ").unwrap();
                let indent = &bounds[..bounds.len() - bounds.trim_start().len()];
                format!("{indent}00000000-00000000 : {name}\n")
            })
            .collect::<String>();
        let err = system_ram(&hidden).unwrap_err();
        assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    }

    #[test]
    fn malformed_lists_are_refused_with_the_line() {
        for (text, says) in [
            ("", "reads as zero"),
            ("00001000-00001fff : Reserved\n", "no System RAM"),
            ("garbage\n", "line 1"),
            (
                "0000x000-00001fff : System RAM\n",
                "not a hex address range",
            ),
            ("00002000-00001fff : System RAM\n", "ends before it starts"),
            (
                "00001000-00002fff : System RAM\n00001000-00001fff : System RAM\n",
                "line 2",
            ),
            (
                "00001000-00001fff : System RAM\n00000000-00000fff : System RAM\n",
                "overlaps or precedes",
            ),
        ] {
            let err = system_ram(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_last_address_does_not_overflow() {
        assert_eq!(
            system_ram("ffffffffffff0000-ffffffffffffffff : System RAM\n").unwrap(),
            [(0xffff_ffff_ffff_0000, u64::MAX)]
        );
    }
}
