//! Physical memory as a source: the host's RAM, read the way AVML reads it — `/proc/kcore` first,
//! then `/dev/crash`, then `/dev/mem` — and imaged in the LiME format (one header per `System RAM`
//! range of `/proc/iomem`), which Volatility 3 and other tools read directly.
//!
//! - `iomem`: which ranges are RAM.
//! - `kcore`: how `/proc/kcore`'s ELF program headers map them onto the file.
//! - `layout`: the image, byte by byte: headers and memory pieces.
//! - `lime`: the format's header, and the walker `verify` checks a stored image with.
//! - `feed`: the pipeline's side: chunks filled in order, unreadable pages zero-filled and recorded.
//! - `host`: the kernel's banner, lockdown mode and this process's CAP_SYS_RAWIO.
//! - `record`: what the manifest says of it.
//!
//! Opening refuses what cannot give an image, each with its own [`MemoryFailure`]: no capability,
//! lockdown, no interface at all, or interfaces that do not read. A reader is chosen only after a
//! page of RAM above the first MiB read through it (`/dev/mem` under `STRICT_DEVMEM` opens, then
//! refuses everything past 1 MiB).

mod feed;
mod host;
mod iomem;
mod kcore;
mod layout;
pub(crate) mod lime;
mod record;

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use feed::feed;
pub use record::{MemoryRange, MemoryRecord};

use crate::error::{Error, MemoryFailure, Result};
use host::Lockdown;
use kcore::Extent;
use layout::Layout;

/// Bytes read by the probe that chooses a reader: one page.
const PROBE_BYTES: usize = 4096;
/// The probe reads above this address when RAM reaches past it: `STRICT_DEVMEM` lets `/dev/mem`
/// read the first MiB (BIOS data) and nothing else.
const PROBE_ABOVE: u64 = 1 << 20;

/// The interface physical memory is read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryReader {
    /// `/proc/kcore`, the kernel's ELF core view (any kernel; closed by lockdown=confidentiality).
    Kcore,
    /// `/dev/crash`, Red Hat's read-only driver (RHEL and its rebuilds).
    Crash,
    /// `/dev/mem` (usable only where `STRICT_DEVMEM` is off).
    Mem,
}

impl MemoryReader {
    /// Every reader, in the order tried.
    pub const ALL: [Self; 3] = [Self::Kcore, Self::Crash, Self::Mem];

    /// The reader named `kcore`, `crash` or `mem`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Its name in `memory://NAME` and in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kcore => "kcore",
            Self::Crash => "crash",
            Self::Mem => "mem",
        }
    }

    /// Its file, under `paths`.
    fn path(self, paths: &SystemRoots) -> PathBuf {
        match self {
            Self::Kcore => paths.proc.join("kcore"),
            Self::Crash => paths.dev.join("crash"),
            Self::Mem => paths.dev.join("mem"),
        }
    }
}

/// Where /proc, /dev and /sys are: the real ones, or a test's directory.
#[derive(Debug, Clone)]
pub(crate) struct SystemRoots {
    pub proc: PathBuf,
    pub dev: PathBuf,
    pub sys: PathBuf,
}

impl Default for SystemRoots {
    fn default() -> Self {
        Self {
            proc: "/proc".into(),
            dev: "/dev".into(),
            sys: "/sys".into(),
        }
    }
}

/// The host's physical memory, opened through one reader and laid out as a LiME image.
#[derive(Debug)]
pub struct Memory {
    reader: MemoryReader,
    path: PathBuf,
    file: File,
    layout: Layout,
    page_size: u32,
    record: MemoryRecord,
    passed_over: Vec<(MemoryReader, String)>,
}

impl Memory {
    /// Opens this host's memory through `choice`, or the first reader that works.
    pub fn open(choice: Option<MemoryReader>) -> Result<Self> {
        Self::open_at(&SystemRoots::default(), choice)
    }

    pub(crate) fn open_at(roots: &SystemRoots, choice: Option<MemoryReader>) -> Result<Self> {
        let refuse = |failure, message: String| Error::Memory { failure, message };
        let status = host::read_text(&roots.proc.join("self/status")).unwrap_or_default();
        if host::has_raw_io(&status) != Some(true) {
            return Err(refuse(
                MemoryFailure::NotPermitted,
                "reading physical memory needs root with CAP_SYS_RAWIO, which this process lacks"
                    .into(),
            ));
        }
        let lockdown = match host::read_text(&roots.sys.join("kernel/security/lockdown")) {
            Ok(text) => host::lockdown(&text).map_err(|e| refuse(MemoryFailure::Unreadable, e))?,
            Err(_) => Lockdown::None,
        };
        if lockdown == Lockdown::Confidentiality {
            return Err(refuse(
                MemoryFailure::Lockdown,
                "kernel lockdown is `confidentiality`: the kernel refuses every reader of physical memory (/proc/kcore, /dev/mem, /dev/crash)".into(),
            ));
        }
        let iomem = host::read_text(&roots.proc.join("iomem")).map_err(|e| {
            refuse(
                MemoryFailure::Unreadable,
                format!("cannot read /proc/iomem: {e}"),
            )
        })?;
        let ram = iomem::system_ram(&iomem).map_err(|e| refuse(MemoryFailure::Unreadable, e))?;
        let candidates = choice.map_or(MemoryReader::ALL.to_vec(), |c| vec![c]);
        let mut passed_over = Vec::new();
        let mut any_present = false;
        for reader in candidates {
            if reader == MemoryReader::Mem && lockdown == Lockdown::Integrity {
                passed_over.push((reader, "closed by kernel lockdown (integrity)".to_owned()));
                continue;
            }
            let path = reader.path(roots);
            match try_reader(reader, &path, &ram) {
                Ok((file, layout)) => {
                    let page_size = page_size();
                    let record = describe(roots, reader, &layout, page_size);
                    return Ok(Self {
                        reader,
                        path,
                        file,
                        layout,
                        page_size,
                        record,
                        passed_over,
                    });
                }
                Err(Tried::Absent) => passed_over.push((reader, "absent".to_owned())),
                Err(Tried::Failed(why)) => {
                    any_present = true;
                    passed_over.push((reader, why));
                }
            }
        }
        let reasons = passed_over
            .iter()
            .map(|(r, why)| format!("{}: {why}", r.path(roots).display()))
            .collect::<Vec<_>>()
            .join("; ");
        let failure = if lockdown == Lockdown::Integrity {
            MemoryFailure::Lockdown
        } else if any_present {
            MemoryFailure::Unreadable
        } else {
            MemoryFailure::NoSource
        };
        Err(refuse(
            failure,
            format!("no reader of physical memory works ({reasons})"),
        ))
    }

    /// Bytes of the LiME image: every range and its header.
    pub fn size(&self) -> u64 {
        self.layout.size()
    }

    /// The reader used.
    pub fn reader(&self) -> MemoryReader {
        self.reader
    }

    /// Its file (`/proc/kcore`, `/dev/crash`, `/dev/mem`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `memory://READER`, as the log and the manifest name the source.
    pub fn uri(&self) -> String {
        format!("memory://{}", self.reader.name())
    }

    /// Readers tried before this one, and why each was passed over.
    pub fn passed_over(&self) -> &[(MemoryReader, String)] {
        &self.passed_over
    }

    /// What the manifest records (before the run: every range read whole).
    pub fn record(&self) -> MemoryRecord {
        self.record.clone()
    }

    /// Sets the page numbers of merged bad ranges from the addresses they cover.
    pub(crate) fn renumber(&self, bad: &mut [crate::ranges::BadRange]) {
        self.record.renumber(bad);
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn page_size(&self) -> u32 {
        self.page_size
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// Why a reader was not taken.
enum Tried {
    Absent,
    Failed(String),
}

/// Opens `path` as `reader`, lays the RAM ranges out on it, and reads one probe page.
fn try_reader(
    reader: MemoryReader,
    path: &Path,
    ram: &[(u64, u64)],
) -> Result<(File, Layout), Tried> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Tried::Absent,
            _ => Tried::Failed(format!("cannot open: {e}")),
        })?;
    let ranges: Vec<((u64, u64), Vec<Extent>)> = match reader {
        MemoryReader::Kcore => {
            let segments = kcore::segments(&file).map_err(Tried::Failed)?;
            ram.iter()
                .map(|&r| (r, kcore::extents(r, &segments)))
                .collect()
        }
        MemoryReader::Crash | MemoryReader::Mem => ram
            .iter()
            .map(|&r| (r, vec![kcore::identity_extent(r)]))
            .collect(),
    };
    let layout = Layout::new(ranges);
    let probe = layout
        .ranges
        .iter()
        .flat_map(|r| &r.extents)
        .filter_map(|e| Some((e.start, e.len, e.file_offset?)))
        .filter(|&(_, len, _)| len >= PROBE_BYTES as u64)
        .max_by_key(|&(start, _, _)| (start >= PROBE_ABOVE, std::cmp::Reverse(start)))
        .ok_or_else(|| Tried::Failed("no page of RAM is mapped by it".to_owned()))?;
    let (address, _, offset) = probe;
    let mut page = vec![0u8; PROBE_BYTES];
    match file.read_at(&mut page, offset) {
        Ok(n) if n == PROBE_BYTES => Ok((file, layout)),
        Ok(n) => Err(Tried::Failed(format!(
            "reading RAM at {address:#x} gave {n} of {PROBE_BYTES} bytes"
        ))),
        Err(e) => Err(Tried::Failed(format!(
            "reading RAM at {address:#x} failed: {e}"
        ))),
    }
}

/// The system's page size (4 KiB on x86_64; 4, 16 or 64 KiB on arm64).
fn page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(4096)
}

/// The manifest's record of a capture through `reader` laid out as `layout`.
fn describe(
    roots: &SystemRoots,
    reader: MemoryReader,
    layout: &Layout,
    page_size: u32,
) -> MemoryRecord {
    let text = |rel: &str| {
        host::read_text(&roots.proc.join(rel))
            .ok()
            .map(|t| t.trim().to_owned())
    };
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    MemoryRecord {
        reader,
        kernel_release: text("sys/kernel/osrelease").unwrap_or_default(),
        banner: host::read_text(&roots.proc.join("version"))
            .ok()
            .and_then(|v| host::banner(&v))
            .unwrap_or_default(),
        boot_id: text("sys/kernel/random/boot_id").filter(|b| !b.is_empty()),
        machine,
        page_size,
        ami_id: None,
        consistency: record::SMEAR.to_owned(),
        ranges: layout
            .ranges
            .iter()
            .map(|r| MemoryRange {
                start: r.start,
                end: r.end,
                image_offset: r.image_offset,
                bytes_read: r.end - r.start,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
