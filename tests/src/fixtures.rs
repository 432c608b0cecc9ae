//! Mounted fixtures: the fault-injecting FUSE filesystem and size-limited tmpfs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a fixture may take to mount.
const MOUNT_DEADLINE: Duration = Duration::from_secs(20);

/// `tests/helpers/faultfs.py` mounted over a backing file: `disk.img` with real kernel EIO on chosen
/// byte ranges, optional latency per request, optional sudden death.
pub struct FaultFs {
    child: Option<Child>,
    mount: tempfile::TempDir,
}

impl FaultFs {
    /// Mounts with extra helper arguments such as `["--bad", "1048576-1049088", "--delay-ms", "5"]`.
    pub fn mount(backing: &Path, args: &[String]) -> Self {
        let mount = tempfile::tempdir().expect("mount point");
        let script = crate::repo_root().join("tests/helpers/faultfs.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(backing)
            .arg(mount.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start faultfs.py (python3)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.trim() == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(MOUNT_DEADLINE).is_ok();
        let fs = Self {
            child: Some(child),
            mount,
        };
        assert!(
            ready,
            "faultfs did not mount within {MOUNT_DEADLINE:?}: run tests/helpers/setup-deps.sh (FUSE 3, mfusepy)"
        );
        fs
    }

    /// The exposed file.
    pub fn file(&self) -> PathBuf {
        self.mount.path().join("disk.img")
    }

    /// Kills the server abruptly, as a vanishing device would.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..50 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .output();
    }
}

/// A tmpfs of a fixed size, to make "disk full" real.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "8m").
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmpfs mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs failed");
        Self { dir }
    }

    /// Its root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
