//! A stand-in for a host's memory interfaces, for the `acquire memory://` suites on machines whose
//! kernel offers none (this sandbox has no /proc/kcore): a directory laid out as /proc — `kcore`
//! written as the kernel writes it (an ELF core whose `PT_LOAD` headers carry the physical
//! address of the memory they map), `iomem`, `version`, the boot ID, and a `self/status` whose
//! capabilities say root — mounted over /proc in a private mount namespace (`unshare -m`) for the
//! one run of the real binary. Real guests' memory is captured in the VM test (tests/vm).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The byte at physical `address` of every fake host: a pattern that differs page to page.
pub fn byte_at(address: u64) -> u8 {
    u8::try_from((address / 7 + address / 4096) % 251).expect("below 251")
}

/// The banner of every fake host.
pub const BANNER: &str = "Linux version 6.1.0-99-amd64 (fake@collector-e2e) (gcc 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.0-99";
/// Its boot ID.
pub const BOOT_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// A fake /proc in a directory.
pub struct FakeHost {
    dir: tempfile::TempDir,
    /// `System RAM` ranges, `[start, end)`.
    pub ram: Vec<(u64, u64)>,
    /// Extra mounts the run makes inside its namespace: `(source, target)`.
    binds: Vec<(PathBuf, PathBuf)>,
    /// Shell lines run in the namespace before the binary (after the mounts).
    setup: Vec<String>,
}

impl FakeHost {
    /// A host whose RAM is `ram` and whose kcore maps `mapped` (`(start, len)` of physical memory).
    pub fn new(ram: &[(u64, u64)], mapped: &[(u64, u64)]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let proc = dir.path().join("proc");
        for sub in ["self", "sys/kernel/random"] {
            fs::create_dir_all(proc.join(sub)).expect("fake /proc");
        }
        let iomem: String = std::iter::once("00000000-00000fff : Reserved\n".to_owned())
            .chain(
                ram.iter()
                    .map(|(s, e)| format!("{s:08x}-{:08x} : System RAM\n", e - 1)),
            )
            .collect();
        let files = [
            ("iomem", iomem),
            ("version", format!("{BANNER}\n")),
            ("sys/kernel/osrelease", "6.1.0-99-amd64\n".to_owned()),
            ("sys/kernel/random/boot_id", format!("{BOOT_ID}\n")),
            (
                "self/status",
                "Name:\tforensic-collector\nCapEff:\t000001ffffffffff\n".to_owned(),
            ),
        ];
        for (name, text) in files {
            fs::write(proc.join(name), text).expect("fake /proc file");
        }
        fs::write(proc.join("kcore"), elf_core(mapped)).expect("fake kcore");
        // /proc/self/exe: the binary under test, which the custody record hashes.
        std::os::unix::fs::symlink(crate::process::binary_path(), proc.join("self/exe"))
            .expect("fake /proc/self/exe");
        Self {
            dir,
            ram: ram.to_vec(),
            binds: Vec::new(),
            setup: Vec::new(),
        }
    }

    /// The fake /proc.
    pub fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    /// The kcore is `file` (a slow FUSE view of it, say), bound over the fake one in the run.
    pub fn kcore_from(&mut self, file: &Path) {
        self.binds
            .push((file.to_path_buf(), self.proc().join("kcore")));
    }

    /// A shell line run as root in the run's namespace before the binary starts.
    pub fn before_run(&mut self, line: &str) {
        self.setup.push(line.to_owned());
    }

    /// `cmd` (the collector, with its arguments and environment) run in a mount namespace of its
    /// own with this fake /proc mounted over /proc.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut script = String::from("set -e\n");
        for (source, target) in &self.binds {
            script.push_str(&format!(
                "mount --bind '{}' '{}'\n",
                source.display(),
                target.display()
            ));
        }
        script.push_str(&format!("mount --bind '{}' /proc\n", self.proc().display()));
        for line in &self.setup {
            script.push_str(line);
            script.push('\n');
        }
        script.push_str("exec \"$@\"\n");
        let mut wrapped = Command::new("unshare");
        wrapped
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &script,
                "sh",
            ])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    }

    /// The LiME image this host's memory must give, byte for byte: a header per RAM range, then
    /// its bytes (zeros where `mapped` does not reach).
    pub fn expected_image(&self, mapped: &[(u64, u64)]) -> Vec<u8> {
        let mut image = Vec::new();
        for &(start, end) in &self.ram {
            image.extend_from_slice(&0x4C69_4D45u32.to_le_bytes());
            image.extend_from_slice(&1u32.to_le_bytes());
            image.extend_from_slice(&start.to_le_bytes());
            image.extend_from_slice(&(end - 1).to_le_bytes());
            image.extend_from_slice(&[0; 8]);
            image.extend((start..end).map(|a| {
                let inside = mapped.iter().any(|&(s, len)| (s..s + len).contains(&a));
                if inside { byte_at(a) } else { 0 }
            }));
        }
        image
    }
}

/// An ELF64 core file whose `PT_LOAD` segments hold the fake host's memory of `mapped`, plus one
/// vmalloc-like segment without a physical address, as /proc/kcore has.
fn elf_core(mapped: &[(u64, u64)]) -> Vec<u8> {
    const EHDR: u64 = 64;
    const PHDR: u64 = 56;
    let segments: Vec<(u64, u64)> = mapped.iter().copied().chain([(u64::MAX, 0x1000)]).collect();
    let mut offset = 0x1000u64;
    let mut headers = Vec::new();
    let mut data = Vec::new();
    for &(paddr, len) in &segments {
        let fields: [u64; 6] = [
            offset,
            0xffff_8880_0000_0000u64.wrapping_add(paddr),
            paddr,
            len,
            len,
            0x1000,
        ];
        headers.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        headers.extend_from_slice(&7u32.to_le_bytes());
        for field in fields {
            headers.extend_from_slice(&field.to_le_bytes());
        }
        data.push((offset, paddr, len));
        offset += len;
    }
    let mut file = vec![0u8; usize::try_from(offset).expect("small")];
    let mut ident = *b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";
    ident[7] = 0;
    file[..16].copy_from_slice(&ident);
    file[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    file[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    file[20..24].copy_from_slice(&1u32.to_le_bytes());
    file[32..40].copy_from_slice(&EHDR.to_le_bytes());
    file[52..54].copy_from_slice(&u16::try_from(EHDR).expect("64").to_le_bytes());
    file[54..56].copy_from_slice(&u16::try_from(PHDR).expect("56").to_le_bytes());
    file[56..58].copy_from_slice(&u16::try_from(segments.len()).expect("few").to_le_bytes());
    let table = usize::try_from(EHDR).expect("64");
    file[table..table + headers.len()].copy_from_slice(&headers);
    for (at, paddr, len) in data {
        if paddr == u64::MAX {
            continue;
        }
        for i in 0..len {
            file[usize::try_from(at + i).expect("small")] = byte_at(paddr + i);
        }
    }
    file
}
