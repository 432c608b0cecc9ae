//! Real loop devices, detached on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A loop device bound to a file for the life of this value.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    /// `losetup -f --show [extra…] FILE`, e.g. extra = `["--direct-io=on"]` or `["-r"]`.
    pub fn attach(file: &Path, extra: &[&str]) -> Self {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .args(extra)
            .arg(file)
            .output()
            .expect("losetup runs (util-linux)");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // The kernel read-only flag (BLKROSET) outlives a detach: a device an earlier test
        // write-blocked would come back read-only. Start from the state `losetup` was asked for.
        if !extra.iter().any(|a| *a == "-r" || *a == "--read-only") {
            set_writable(&path);
        }
        Self { path }
    }

    /// Attaches a partitioned image and makes its partitions appear (`partx -a`: without udev,
    /// `losetup -P` alone does not create the nodes here).
    pub fn attach_partitioned(file: &Path) -> Self {
        let dev = Self::attach(file, &["-P"]);
        let _ = Command::new("partx").arg("-a").arg(&dev.path).output();
        dev
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `loopN`.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .expect("device name")
            .to_string_lossy()
            .into_owned()
    }

    /// `/dev/loopNpM`, waiting (bounded) for the node to appear.
    pub fn partition(&self, number: u32) -> PathBuf {
        let node = PathBuf::from(format!("{}p{number}", self.path.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !node.exists() {
            assert!(
                Instant::now() < deadline,
                "{} did not appear",
                node.display()
            );
            let _ = Command::new("partx").arg("-a").arg(&self.path).output();
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    /// The kernel read-only flag as `blockdev --getro` reports it.
    pub fn kernel_read_only(&self) -> bool {
        let out = Command::new("blockdev")
            .arg("--getro")
            .arg(&self.path)
            .output()
            .expect("blockdev");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

fn set_writable(dev: &Path) {
    let _ = Command::new("blockdev").arg("--setrw").arg(dev).status();
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        set_writable(&self.path);
        let _ = Command::new("partx").arg("-d").arg(&self.path).output();
        for _ in 0..50 {
            let detached = Command::new("losetup").arg("-d").arg(&self.path).status();
            if detached.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
