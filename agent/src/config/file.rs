//! Reading the config file: only a regular file, only up to `MAX_BYTES`, only one that nobody
//! but root (or the user running us) could have written.
//!
//! The file may set what runs as root (`watch.poweroff_command`), so it is the administrator's
//! word: a file others can write would hand them that power. And `--config`'s path may be a
//! typo, so it can name `/dev/zero` (an endless read), a FIFO (a read that blocks until someone
//! writes) or a directory: it is read through
//! [`imaging::open_regular_file`], which checks the type before and after opening (non-blocking) and
//! bounds the read, so any path gets an answer at once.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::ConfigError;

/// Largest config file read. The example with every key and its documentation is about 5 KiB;
/// 1 MiB is two hundred times that, and small enough to hold in memory without a thought.
pub const MAX_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed (missing, permission, …).
    Io(std::io::Error),
    /// The file is there but must not be used; the text says why.
    Refused(String),
}

impl ReadError {
    /// The loader's error for `path`.
    pub fn into_config(self, path: &Path) -> ConfigError {
        match self {
            Self::Io(error) => ConfigError::ReadFile {
                path: path.to_owned(),
                error,
            },
            Self::Refused(reason) => ConfigError::RefusedFile {
                path: path.to_owned(),
                reason,
            },
        }
    }
}

/// The text of the config file at `path`, checked as the module doc says.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let (file, metadata) = imaging::open_regular_file(path, MAX_BYTES).map_err(refusal)?;
    check_owner(&metadata, nix::unistd::geteuid().as_raw())?;
    let bytes = imaging::read_opened_file(file, &metadata, MAX_BYTES).map_err(refusal)?;
    String::from_utf8(bytes).map_err(|e| {
        ReadError::Refused(format!(
            "it is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A file of the wrong kind or size is refused; any other failure (missing, permission) is I/O.
fn refusal(error: std::io::Error) -> ReadError {
    match error.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            ReadError::Refused(format!(
                "{error}; the configuration must be a regular file of at most {MAX_BYTES} bytes"
            ))
        }
        _ => ReadError::Io(error),
    }
}

/// Owned by root or by `euid`, and writable by nobody else (no group or other write bit).
fn check_owner(meta: &std::fs::Metadata, euid: u32) -> Result<(), ReadError> {
    let (uid, mode) = (meta.uid(), meta.mode());
    if uid != 0 && uid != euid {
        return Err(ReadError::Refused(format!(
            "it is owned by uid {uid}, not root: the file may set commands run as root"
        )));
    }
    if mode & 0o022 != 0 {
        return Err(ReadError::Refused(format!(
            "its mode {:o} lets group or others write it: the file may set commands run as root (chmod go-w)",
            mode & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn refused(result: Result<String, ReadError>) -> String {
        match result {
            Err(ReadError::Refused(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn temp_file(bytes: &[u8], mode: u32) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    // Issue 9 item 10: endless, blocking and odd files get an answer at once.
    #[test]
    fn devices_fifos_and_directories_are_refused() {
        assert!(refused(read(Path::new("/dev/zero"))).contains("character device"));
        assert!(refused(read(Path::new("/"))).contains("directory"));
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(refused(read(&fifo)).contains("FIFO"));
    }

    #[test]
    fn size_is_bounded_on_both_sides_of_the_limit() {
        let limit = usize::try_from(MAX_BYTES).unwrap();
        let at_limit = temp_file(&vec![b'#'; limit], 0o600);
        assert_eq!(read(at_limit.path()).unwrap().len(), limit);
        let over = temp_file(&vec![b'#'; limit + 1], 0o600);
        assert!(refused(read(over.path())).contains("larger than"));
    }

    #[test]
    fn a_file_others_can_write_is_refused() {
        let ok = temp_file(b"[job]\n", 0o644);
        read(ok.path()).unwrap();
        for mode in [0o664, 0o646, 0o666] {
            let file = temp_file(b"[job]\n", mode);
            assert!(refused(read(file.path())).contains("go-w"), "{mode:o}");
        }
    }

    #[test]
    fn owner_must_be_root_or_us() {
        let euid = nix::unistd::geteuid().as_raw();
        let file = temp_file(b"", 0o600);
        let stranger = if euid == 0 {
            std::os::unix::fs::chown(file.path(), Some(4321), None).unwrap();
            4321
        } else {
            euid
        };
        let meta = std::fs::metadata(file.path()).unwrap();
        check_owner(&meta, stranger).unwrap();
        let err = check_owner(&meta, stranger + 1).unwrap_err();
        assert!(
            matches!(err, ReadError::Refused(ref r) if r.contains("not root")),
            "{err:?}"
        );
        // A root-owned file is the administrator's, whoever runs us.
        let root_owned = std::fs::metadata("/etc/passwd").unwrap();
        assert_eq!(root_owned.uid(), 0);
        check_owner(&root_owned, 4321).unwrap();
    }

    #[test]
    fn binary_content_is_refused() {
        let file = temp_file(b"[job]\n\xff\xfe", 0o600);
        assert!(refused(read(file.path())).contains("UTF-8"));
    }

    #[test]
    fn missing_files_are_io_errors() {
        let Err(ReadError::Io(e)) = read(Path::new("/nonexistent/forensic-collector.toml")) else {
            panic!("a missing file is an I/O error");
        };
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
