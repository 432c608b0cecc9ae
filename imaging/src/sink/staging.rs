//! A private staging directory per run, inside the output directory, and the publish step that gives
//! its files their final names.
//!
//! Why not write `<name>.image.dd.partial` and temporary manifests beside the evidence? Because a
//! predictable name in a shared directory is a name someone else can hold: a second run with the same
//! `--name` truncated the first run's image, a planted symlink turned our write into a write to any file,
//! and a source that *was* the partial name was truncated by its own acquisition. So every run creates
//! a directory of its own, `.<name>.<run>.staging`, with `mkdir` (exclusive by nature, mode 0700), and
//! creates every file inside it through the directory's descriptor with `O_CREAT|O_EXCL|O_NOFOLLOW`.
//! Nothing outside that directory is opened for writing.
//!
//! Publishing renames the files into the output directory in the order the caller gives — image,
//! capture log, manifest, and the `sha256sum -c` sidecar after the manifest, so that no state a
//! crash can leave makes an image look complete without its manifest — with `RENAME_NOREPLACE`,
//! which fails instead of replacing an existing name: two runs racing for one name cannot both win
//! and the loser touches nothing of the winner's. Everything is written and synced inside the
//! staging directory before the first rename, so no file carries a final name before the manifest
//! is durable; if any rename fails, the files already renamed are moved back, and the staging
//! directory is removed. (Several renames cannot be one atomic step: a SIGKILL or power cut between
//! them leaves a prefix of the order published and the rest in the staging directory.) Dropping a `Staging`
//! that was not published removes everything it created, so any failure (disk full, signal) leaves the
//! output directory as it was and a rerun is possible.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, fsync, linkat, unlinkat};

use crate::error::{Error, Result};

/// How many fresh run names to try before giving up: names carry the PID and the clock's
/// nanoseconds, so a second collision means something is creating them on purpose.
const NAME_ATTEMPTS: u32 = 8;

/// Suffix of staging directories, so that operators (and a rerun's warning) can recognise leftovers of
/// a run that was killed before it could clean up.
pub(crate) const STAGING_SUFFIX: &str = ".staging";

/// The output directory of one run and the private directory its files are written in.
pub struct Staging {
    out: OwnedFd,
    out_path: PathBuf,
    dir_name: String,
    dir: OwnedFd,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Files created in the staging directory, in order of creation.
    created: Vec<String>,
    /// Set once every file carries its final name; then there is nothing to remove.
    published: bool,
}

impl Staging {
    /// Opens `out` (which must exist) and creates a new staging directory in it for evidence `prefix`.
    /// Refuses when any of `final_names` already exists there, symlinks included: earlier evidence is
    /// never replaced, and a rerun learns it before reading a byte.
    pub fn create(out: &Path, prefix: &str, final_names: &[&str]) -> Result<Self> {
        let out_fd = openat(
            AT_FDCWD,
            out,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open output directory", out.to_path_buf(), e))?;
        for name in final_names {
            if lstat_at(&out_fd, name)?.is_some() {
                return Err(Error::AlreadyExists {
                    path: out.join(name),
                });
            }
        }
        warn_about_leftovers(out, prefix);
        let mut attempt = 0;
        let dir_name = loop {
            let candidate = format!(".{prefix}.{}{STAGING_SUFFIX}", run_id());
            match mkdirat(&out_fd, candidate.as_str(), Mode::S_IRWXU) {
                Ok(()) => break candidate,
                Err(Errno::EEXIST) if attempt + 1 < NAME_ATTEMPTS => attempt += 1,
                Err(e) => return Err(io_err("create staging directory", out.join(&candidate), e)),
            }
        };
        let dir = openat(
            &out_fd,
            dir_name.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open staging directory", out.join(&dir_name), e))?;
        Ok(Self {
            out: out_fd,
            out_path: out.to_path_buf(),
            dir_name,
            dir,
            state: Mutex::new(State::default()),
        })
    }

    /// Where `file_name` will be once published.
    pub fn final_path(&self, file_name: &str) -> PathBuf {
        self.out_path.join(file_name)
    }

    /// Where `file_name` is while it is being written.
    pub fn staged_path(&self, file_name: &str) -> PathBuf {
        self.out_path.join(&self.dir_name).join(file_name)
    }

    /// Creates `file_name` in the staging directory for writing: exclusively, never through a
    /// symlink. With `direct`, O_DIRECT is asked for and dropped if the filesystem refuses it; the
    /// returned flag says which one was granted.
    pub fn create_file(&self, file_name: &str, direct: bool) -> Result<(File, bool)> {
        let base =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::S_IRUSR | Mode::S_IWUSR | Mode::S_IRGRP;
        let open = |flags| openat(&self.dir, file_name, flags, mode);
        let opened = if direct {
            match open(base | OFlag::O_DIRECT) {
                Err(Errno::EINVAL) => open(base).map(|fd| (fd, false)),
                other => other.map(|fd| (fd, true)),
            }
        } else {
            open(base).map(|fd| (fd, false))
        };
        let (fd, direct) = opened.map_err(|e| io_err("create", self.staged_path(file_name), e))?;
        self.lock().created.push(file_name.to_owned());
        Ok((File::from(fd), direct))
    }

    /// Whether this run created `file_name` in the staging directory.
    pub fn holds(&self, file_name: &str) -> bool {
        self.lock().created.iter().any(|name| name == file_name)
    }

    /// Creates `file_name` with `contents` and makes it durable.
    pub fn write_file(&self, file_name: &str, contents: &[u8]) -> Result<()> {
        use std::io::Write;
        let (mut file, _) = self.create_file(file_name, false)?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|source| Error::SinkIo {
                action: "write",
                path: self.staged_path(file_name),
                source,
            })
    }

    /// Gives every staged file its final name, in `order`, which must name each created file once.
    /// Fails without replacing anything when a final name exists, and then moves back what it had
    /// already renamed.
    pub fn publish(&self, order: &[&str]) -> Result<()> {
        let mut state = self.lock();
        let mut expected: Vec<&str> = state.created.iter().map(String::as_str).collect();
        let mut given = order.to_vec();
        expected.sort_unstable();
        given.sort_unstable();
        if expected != given {
            return Err(Error::Internal(
                "publish order does not name exactly the staged files",
            ));
        }
        fsync(&self.dir).map_err(|e| io_err("sync", self.out_path.join(&self.dir_name), e))?;
        let mut renamed: Vec<&str> = Vec::new();
        for &name in order {
            if let Err(err) = self.move_no_replace(name) {
                for done in renamed.iter().rev() {
                    if let Err(e) = rename_no_replace(&self.out, done, &self.dir, done) {
                        tracing::error!(path = %self.final_path(done).display(), error = %e,
                            "Could not take back a published file after a failed publish; remove it by hand.");
                    }
                }
                return Err(err);
            }
            renamed.push(name);
        }
        state.published = true;
        // Every file carries its final name now; failing here would call published evidence a
        // failed run. A directory that cannot be synced is said loudly instead.
        if let Err(e) = fsync(&self.out) {
            tracing::error!(path = %self.out_path.display(), error = %e,
                "The evidence is published but its directory could not be synced; a power cut now could lose the names.");
        }
        drop(state);
        if let Err(e) = unlinkat(&self.out, self.dir_name.as_str(), UnlinkatFlags::RemoveDir) {
            tracing::warn!(path = %self.out_path.join(&self.dir_name).display(), error = %e,
                "Could not remove the empty staging directory.");
        }
        Ok(())
    }

    fn move_no_replace(&self, name: &str) -> Result<()> {
        rename_no_replace(&self.dir, name, &self.out, name).map_err(|e| match e {
            Errno::EEXIST => Error::AlreadyExists {
                path: self.final_path(name),
            },
            e => io_err("publish", self.final_path(name), e),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Staging {
    /// Removes everything an unpublished run created: a failed run leaves nothing that could be
    /// mistaken for evidence, and nothing that blocks a rerun.
    fn drop(&mut self) {
        let state = self.lock();
        if state.published {
            return;
        }
        let mut clean = true;
        for name in &state.created {
            if let Err(e) = unlinkat(&self.dir, name.as_str(), UnlinkatFlags::NoRemoveDir) {
                clean &= e == Errno::ENOENT;
            }
        }
        drop(state);
        let removed =
            clean && unlinkat(&self.out, self.dir_name.as_str(), UnlinkatFlags::RemoveDir).is_ok();
        if !removed {
            tracing::warn!(path = %self.out_path.join(&self.dir_name).display(),
                "Could not remove the staging directory of a failed run; it holds no evidence.");
        }
    }
}

/// Identity of an existing entry, without following a symlink; `None` when there is none.
pub(crate) fn lstat_at<Fd: AsFd>(dir: &Fd, name: &str) -> Result<Option<FileStat>> {
    match fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(io_err("inspect", PathBuf::from(name), e)),
    }
}

/// `renameat2(RENAME_NOREPLACE)`, or where a filesystem lacks it, `linkat` + `unlinkat`, which is
/// just as exclusive (link fails on an existing name).
fn rename_no_replace<A: AsFd, B: AsFd>(
    from_dir: &A,
    from: &str,
    to_dir: &B,
    to: &str,
) -> nix::Result<()> {
    match renameat2_noreplace(from_dir, from, to_dir, to) {
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            linkat(from_dir, from, to_dir, to, nix::fcntl::AtFlags::empty())?;
            unlinkat(from_dir, from, UnlinkatFlags::NoRemoveDir)
        }
        other => other,
    }
}

/// `renameat2(…, RENAME_NOREPLACE)` as a raw system call: nix wraps it for glibc only, and the
/// static binaries (musl, packaging/build-static.sh) need it too. One code path for both libcs.
/// A kernel older than 3.15 answers ENOSYS, which the caller handles.
fn renameat2_noreplace<A: AsFd, B: AsFd>(
    from_dir: &A,
    from: &str,
    to_dir: &B,
    to: &str,
) -> nix::Result<()> {
    // A name with a NUL byte cannot be passed; EINVAL as nix's own path conversion says.
    let from = CString::new(from).map_err(|_| Errno::EINVAL)?;
    let to = CString::new(to).map_err(|_| Errno::EINVAL)?;
    // SAFETY: renameat2 takes two directory descriptors, borrowed and open for the whole call, two
    // NUL-terminated paths that outlive it, and a flags integer; it writes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir.as_fd().as_raw_fd(),
            from.as_ptr(),
            to_dir.as_fd().as_raw_fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    Errno::result(rc).map(drop)
}

/// A name for this run's staging directory: PID and clock, unique enough that a collision is
/// deliberate, and readable in a directory listing.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// Leftovers of a killed run (SIGKILL, power cut) are never removed automatically: one of them may
/// be a run still in progress. Saying so lets an operator reclaim the space.
fn warn_about_leftovers(out: &Path, prefix: &str) {
    let start = format!(".{prefix}.");
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&start) && name.ends_with(STAGING_SUFFIX) {
            tracing::warn!(path = %entry.path().display(),
                "A staging directory of an earlier or concurrent run of this evidence name is here; it is not evidence. Remove it once no run uses it.");
        }
    }
}

fn io_err(action: &'static str, path: PathBuf, errno: Errno) -> Error {
    Error::SinkIo {
        action,
        path,
        source: std::io::Error::from(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn published_files_get_final_names_and_staging_disappears() {
        let out = tempfile::tempdir().unwrap();
        let staging = Staging::create(out.path(), "x", &["x.a", "x.b"]).unwrap();
        staging.write_file("x.a", b"image").unwrap();
        staging.write_file("x.b", b"manifest").unwrap();
        assert!(names(out.path())[0].ends_with(STAGING_SUFFIX));
        assert!(
            !out.path().join("x.a").exists(),
            "no final name before publish"
        );
        let err = staging.publish(&["x.a"]).unwrap_err();
        assert!(
            matches!(err, Error::Internal(_)),
            "every staged file must be named"
        );
        assert!(matches!(
            staging.publish(&["x.a", "x.c"]),
            Err(Error::Internal(_))
        ));
        staging.publish(&["x.b", "x.a"]).unwrap();
        drop(staging);
        assert_eq!(names(out.path()), ["x.a", "x.b"]);
        assert_eq!(fs::read(out.path().join("x.b")).unwrap(), b"manifest");
    }

    #[test]
    fn unpublished_staging_removes_everything_it_created() {
        let out = tempfile::tempdir().unwrap();
        let staging = Staging::create(out.path(), "x", &[]).unwrap();
        staging.write_file("x.a", b"partial").unwrap();
        drop(staging);
        assert!(names(out.path()).is_empty());
    }

    #[test]
    fn existing_final_names_and_dangling_symlinks_are_refused() {
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nonexistent/victim", out.path().join("x.b")).unwrap();
        let err = Staging::create(out.path(), "x", &["x.a", "x.b"])
            .err()
            .unwrap();
        assert!(matches!(err, Error::AlreadyExists { path } if path.ends_with("x.b")));
        assert_eq!(names(out.path()), ["x.b"], "nothing created");
    }

    #[test]
    fn losing_a_race_for_a_name_moves_back_and_leaves_the_winner_alone() {
        let out = tempfile::tempdir().unwrap();
        let loser = Staging::create(out.path(), "x", &["x.a", "x.b"]).unwrap();
        loser.write_file("x.a", b"loser image").unwrap();
        loser.write_file("x.b", b"loser manifest").unwrap();
        // The winner publishes its manifest name first (as if it finished in between).
        fs::write(out.path().join("x.b"), b"winner manifest").unwrap();
        let err = loser.publish(&["x.a", "x.b"]).err().unwrap();
        assert!(matches!(err, Error::AlreadyExists { .. }));
        drop(loser);
        assert_eq!(
            names(out.path()),
            ["x.b"],
            "the loser's image was taken back"
        );
        assert_eq!(
            fs::read(out.path().join("x.b")).unwrap(),
            b"winner manifest"
        );
    }

    #[test]
    fn files_are_created_exclusively() {
        let out = tempfile::tempdir().unwrap();
        let staging = Staging::create(out.path(), "x", &[]).unwrap();
        staging.write_file("x.a", b"one").unwrap();
        assert!(staging.holds("x.a") && !staging.holds("x.b"));
        let err = staging.write_file("x.a", b"two").err().unwrap();
        assert!(matches!(
            err,
            Error::SinkIo {
                action: "create",
                ..
            }
        ));
    }
}
