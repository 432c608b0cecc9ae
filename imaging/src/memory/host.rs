//! What the host says about itself and about reading its memory: the kernel's banner and release
//! (what an examiner needs to pick or build Volatility's symbol table), the boot ID (which boot
//! the image is of), the machine and page size; whether this process may read physical memory
//! (CAP_SYS_RAWIO) and whether kernel lockdown lets anyone.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// CAP_SYS_RAWIO's bit in the capability masks: /proc/kcore, /dev/mem and /dev/crash all need it.
const CAP_SYS_RAWIO: u32 = 17;
/// Most bytes read of one of the small text files here.
const MAX_TEXT: u64 = 64 << 10;

/// A small text file of /proc or /sys, bounded.
pub(crate) fn read_text(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    File::open(path)?.take(MAX_TEXT).read_to_string(&mut text)?;
    Ok(text)
}

/// Whether the `CapEff:` line of a `/proc/<pid>/status` text holds CAP_SYS_RAWIO (`None`: no
/// readable line).
pub(crate) fn has_raw_io(status: &str) -> Option<bool> {
    let mask = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    Some(mask & (1 << CAP_SYS_RAWIO) != 0)
}

/// The kernel's lockdown mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lockdown {
    /// No lockdown (or no lockdown LSM: the file is absent).
    None,
    /// `integrity`: /dev/mem and /dev/port are closed; /proc/kcore stays readable.
    Integrity,
    /// `confidentiality`: /proc/kcore is closed too — nothing may read physical memory.
    Confidentiality,
}

/// The mode in `/sys/kernel/security/lockdown`'s text (`none [integrity] confidentiality`: the
/// bracketed word is the active one).
pub(crate) fn lockdown(text: &str) -> Result<Lockdown, String> {
    let active = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .ok_or_else(|| format!("no active mode in the lockdown file's {:?}", text.trim()))?;
    match active {
        "none" => Ok(Lockdown::None),
        "integrity" => Ok(Lockdown::Integrity),
        "confidentiality" => Ok(Lockdown::Confidentiality),
        other => Err(format!("unknown lockdown mode {other:?}")),
    }
}

/// The first line of `/proc/version`, the exact `Linux version …` banner the kernel also holds
/// in memory (Volatility's `banners` plugin finds it there).
pub(crate) fn banner(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim_end();
    line.starts_with("Linux version ").then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_io_is_bit_17_of_the_effective_set() {
        let status = |eff: &str| {
            format!(
                "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t{eff}\n"
            )
        };
        assert_eq!(has_raw_io(&status("000001ffffffffff")), Some(true));
        assert_eq!(has_raw_io(&status("0000000000020000")), Some(true));
        assert_eq!(has_raw_io(&status("000001fffffdffff")), Some(false));
        assert_eq!(has_raw_io(&status("0000000000000000")), Some(false));
        assert_eq!(has_raw_io("CapPrm:\t000001ffffffffff\n"), None);
        assert_eq!(has_raw_io("CapEff:\tzz\n"), None);
    }

    #[test]
    fn the_bracketed_lockdown_mode_is_the_active_one() {
        assert_eq!(
            lockdown("[none] integrity confidentiality\n"),
            Ok(Lockdown::None)
        );
        assert_eq!(
            lockdown("none [integrity] confidentiality\n"),
            Ok(Lockdown::Integrity)
        );
        assert_eq!(
            lockdown("none integrity [confidentiality]\n"),
            Ok(Lockdown::Confidentiality)
        );
        assert!(
            lockdown("none integrity confidentiality\n")
                .unwrap_err()
                .contains("no active mode")
        );
        assert!(lockdown("[paranoid]\n").unwrap_err().contains("paranoid"));
    }

    #[test]
    fn the_banner_is_the_first_line_when_it_is_one() {
        let v = "Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)\n";
        assert_eq!(banner(v).as_deref(), Some(v.trim_end()));
        assert_eq!(banner("Hurd 0.9\n"), None);
        assert_eq!(banner(""), None);
    }
}
