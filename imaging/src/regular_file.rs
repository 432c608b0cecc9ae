//! Reading a file an operator (or the environment) names: the manifest, the `sha256sum` sidecar,
//! the agent's config file.
//!
//! The path is input: it may name `/dev/zero`, a FIFO nobody writes, a device whose open has side
//! effects, or a file of gigabytes. Only regular files are opened, and no more than a fixed number
//! of bytes is read, so such a path gets a clear error instead of hanging the program or exhausting
//! its memory. One mechanism for every such file, so each reader gets every guard.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Reads the regular file at `path` (symbolic links followed), refusing anything else and any file
/// larger than `limit` bytes.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (file, metadata) = open(path, limit)?;
    read_opened(file, &metadata, limit)
}

/// Reads a file [`open`] returned, at most `limit` bytes even if it grew since.
pub fn read_opened(file: File, metadata: &fs::Metadata, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// Opens the regular file at `path` for reading, and returns it with the metadata of the opened
/// file (for checks of the caller's own, such as its owner, on exactly the file then read with
/// [`read_opened`]), refusing anything else and any file larger than `limit` bytes.
pub fn open(path: &Path, limit: u64) -> io::Result<(File, fs::Metadata)> {
    // Check before opening: opening some device nodes has effects (a watchdog starts, a tape
    // rewinds), and opening a FIFO blocks until a writer comes.
    require_regular(&fs::metadata(path)?, limit)?;
    let file = open_without_waiting(path)?;
    let metadata = file.metadata()?;
    require_regular(&metadata, limit)?;
    Ok((file, metadata))
}

/// Opens `path` for reading with O_NONBLOCK: should it be swapped for a FIFO after the check, the
/// open returns at once instead of waiting for a writer (reads of regular files ignore the flag).
/// O_NOCTTY: a terminal never becomes our controlling one.
fn open_without_waiting(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

fn require_regular(metadata: &fs::Metadata, limit: u64) -> io::Result<()> {
    let kind = metadata.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "something else"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file: it is {what}"),
        ));
    }
    if metadata.len() > limit {
        return Err(too_large(limit));
    }
    Ok(())
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read(&path, 10).unwrap(), b"0123456789");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read(&link, 10).unwrap(), b"0123456789");
    }

    #[test]
    fn files_above_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, b"0123456789").unwrap();
        let err = read(&path, 9).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 9 bytes"), "{err}");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for path in [Path::new("/dev/zero"), &fifo, dir.path()] {
            let err = read(path, 1 << 20).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{}",
                path.display()
            );
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }
        let named = |path: &Path| read(path, 1).unwrap_err().to_string();
        assert!(named(Path::new("/dev/zero")).contains("a character device"));
        assert!(named(dir.path()).contains("a directory"));
        assert!(named(&fifo).contains("a FIFO"));
        let link = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read(&link, 1 << 20).is_err());
        // Should a FIFO replace the file between the check and the open, the open still returns.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(open_without_waiting(&fifo).is_ok()));
        let opened = rx.recv_timeout(std::time::Duration::from_secs(5));
        assert_eq!(opened, Ok(true), "opening a FIFO waited for a writer");
        assert_eq!(
            read(&dir.path().join("missing"), 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
