//! A claim on an evidence name in a local output directory, so that runs asking for a new capture
//! (`--new-capture`) that start together pick different names before either reads a byte.
//!
//! Why a claim and not just a look for existing evidence: evidence carries its final name only once
//! its manifest is durable (see `staging`), so two runs that start together both find `n-2` free,
//! both read the whole source, and the later of the two is refused at publish time. A claim is a
//! file `.<name>.claim` created with `O_CREAT|O_EXCL|O_NOFOLLOW` beside the evidence: of several
//! runs exactly one creates it, and the others move on to the next number at once. No evidence
//! name can collide with it (names never start with `.`), and a planted file or symlink of that
//! name only makes a run skip that number. It is removed when the run ends, whatever the outcome;
//! a run killed with SIGKILL (or by a second signal, which exits at once) leaves it behind, which
//! costs a later new capture one number.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::staging::lstat_at;
use crate::error::{Error, Result};

/// Suffix of claim files: `.<name>.claim`.
pub(crate) const CLAIM_SUFFIX: &str = ".claim";

/// The file name of the claim on evidence `name`.
pub(crate) fn claim_file_name(name: &str) -> String {
    format!(".{name}{CLAIM_SUFFIX}")
}

type Identity = (u64, u64, i64, i64);

fn identity(stat: &FileStat) -> Identity {
    (stat.st_dev, stat.st_ino, stat.st_ctime, stat.st_ctime_nsec)
}

/// This run's claim on an evidence name; removed when dropped.
pub struct LocalClaim {
    dir: OwnedFd,
    file_name: String,
    path: PathBuf,
    /// Device, inode and change time of the claim file we created, so that only our own file is
    /// removed (an inode number alone is reused at once by a file created after ours is gone).
    identity: Identity,
}

impl LocalClaim {
    /// Claims evidence `name` in the existing directory `out`; `None` when another run holds it
    /// (or anything else bears the claim's file name).
    pub fn take(out: &Path, name: &str) -> Result<Option<Self>> {
        let file_name = claim_file_name(name);
        let path = out.join(&file_name);
        let io = |action, e: Errno| Error::SinkIo {
            action,
            path: path.clone(),
            source: e.into(),
        };
        let dir = openat(
            AT_FDCWD,
            out,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open the output directory for", e))?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(
            &dir,
            file_name.as_str(),
            flags,
            Mode::S_IRUSR | Mode::S_IWUSR,
        ) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => return Ok(None),
            Err(e) => return Err(io("create", e)),
        };
        // Who holds it, for an operator who finds one left by a killed run; the file's existence
        // is the claim, so a failed write does not matter.
        let mut file = std::fs::File::from(fd);
        let _ = file.write_all(
            format!(
                "forensic-collector pid {} claims evidence name {name}\n",
                std::process::id()
            )
            .as_bytes(),
        );
        let stat = fstat(&file).map_err(|e| io("inspect", e))?;
        let claim = Self {
            dir,
            file_name,
            path,
            identity: identity(&stat),
        };
        Ok(Some(claim))
    }

    /// Where the claim file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        // Only the file we created: if it was removed and another run claimed the name since, the
        // name is that run's now.
        let ours = lstat_at(&self.dir.as_fd(), &self.file_name)
            .ok()
            .flatten()
            .is_some_and(|stat| identity(&stat) == self.identity);
        if ours
            && let Err(e) = unlinkat(
                &self.dir,
                self.file_name.as_str(),
                UnlinkatFlags::NoRemoveDir,
            )
        {
            tracing::warn!(path = %self.path.display(), error = %e,
                "Could not remove this run's claim on its evidence name; remove it by hand.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_name_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalClaim::take(dir.path(), "n-2").unwrap().expect("free");
        assert_eq!(first.path(), dir.path().join(".n-2.claim"));
        assert!(LocalClaim::take(dir.path(), "n-2").unwrap().is_none());
        let other = LocalClaim::take(dir.path(), "n-3")
            .unwrap()
            .expect("another name");
        drop(first);
        assert!(
            !dir.path().join(".n-2.claim").exists(),
            "removed when dropped"
        );
        assert!(dir.path().join(".n-3.claim").exists());
        let again = LocalClaim::take(dir.path(), "n-2").unwrap();
        assert!(again.is_some(), "free again once released");
        drop(other);
        assert!(!dir.path().join(".n-3.claim").exists());
    }

    #[test]
    fn the_claim_is_private_and_its_directory_handle_is_not_inherited() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let claim = LocalClaim::take(dir.path(), "n").unwrap().unwrap();
        let mode = std::fs::metadata(claim.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let flags = nix::fcntl::fcntl(&claim.dir, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & nix::fcntl::FdFlag::FD_CLOEXEC.bits(), 0);
        let text = std::fs::read_to_string(claim.path()).unwrap();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
    }

    #[test]
    fn a_planted_symlink_is_a_taken_name_and_is_never_followed_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(".n.claim")).unwrap();
        assert!(LocalClaim::take(dir.path(), "n").unwrap().is_none());
        assert!(!target.exists(), "the link was not followed");
        assert!(dir.path().join(".n.claim").symlink_metadata().is_ok());
    }

    #[test]
    fn a_claim_replaced_by_another_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let claim = LocalClaim::take(dir.path(), "n").unwrap().unwrap();
        std::fs::remove_file(claim.path()).unwrap();
        // Most likely with the inode number the claim had.
        std::fs::write(dir.path().join(".n.claim"), b"another run's").unwrap();
        drop(claim);
        assert_eq!(
            std::fs::read(dir.path().join(".n.claim")).unwrap(),
            b"another run's"
        );
    }
}
