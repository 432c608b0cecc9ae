//! Names of evidence files. Evidence names and incident IDs become file names here and S3 key parts
//! later, so they are restricted to characters that are safe in both and cannot climb out of a
//! directory (`..`, `/`).

use std::fmt;

/// Longest accepted name: well inside file-name (255) and S3 key (1024) limits with the suffixes.
pub(crate) const MAX_LEN: usize = 128;

/// The longest suffix a file of the evidence adds to its name (`.image.dd.sha256`).
const LONGEST_SUFFIX: &str = ".image.dd.sha256";

/// Longest file name derived from a name: `MAX_LEN` and the longest suffix.
pub(crate) const MAX_FILE_NAME_LEN: usize = MAX_LEN + LONGEST_SUFFIX.len();

/// A validated identifier: 1–128 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SafeName(String);

impl SafeName {
    /// Checks `text`; `what` names the field in the error ("evidence name", "incident ID").
    pub fn parse(text: &str, what: &str) -> Result<Self, String> {
        check(text, what, MAX_LEN)?;
        Ok(Self(text.to_owned()))
    }

    /// Best-effort conversion of a device or file name into a valid name (`nvme1n1`, `disk_img`).
    pub fn sanitise(text: &str) -> Option<Self> {
        let cleaned: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let cleaned = cleaned.trim_start_matches(['.', '-']);
        Self::parse(&cleaned[..cleaned.len().min(MAX_LEN)], "name").ok()
    }

    /// `<name>-<number>`: the name of a further capture of the same evidence (`--new-capture`),
    /// refused like any name when it would be too long.
    pub fn numbered(&self, number: u32) -> Result<Self, String> {
        Self::parse(&format!("{}-{number}", self.0), "evidence name")
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bounds of a name.
impl SafeName {
    /// Longest evidence name: 128 characters.
    pub const MAX_LEN: usize = MAX_LEN;
}

impl fmt::Display for SafeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a file name derived from a name (a manifest's `image.file_name`): the characters of a
/// name, up to a name's length plus the longest suffix. (Checked as a name, the image of an
/// evidence name over 119 characters was written, then refused by `verify`.)
pub(crate) fn check_file_name(text: &str, what: &str) -> Result<(), String> {
    check(text, what, MAX_FILE_NAME_LEN)
}

/// 1 to `max` of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
fn check(text: &str, what: &str, max: usize) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.len() > max {
        return Err(format!(
            "{what} must be 1 to {max} characters, got {}",
            text.len()
        ));
    }
    if text.starts_with(['.', '-']) || !text.chars().all(allowed) {
        return Err(format!(
            "{what} {text:?} may only contain letters, digits, '.', '_' and '-', and must not start with '.' or '-'"
        ));
    }
    Ok(())
}

/// What an evidence set holds: a disk's raw image or a memory capture's LiME image. It decides
/// the image's suffix and, on S3, the folder beside the incident (`disk_evidence/`,
/// `memory_evidence/`, as responders' tools and the original flow sort them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvidenceKind {
    /// A block device, file or snapshot: `<name>.image.dd`.
    #[default]
    Disk,
    /// Physical memory: `<name>.mem.lime`.
    Memory,
}

impl EvidenceKind {
    /// The folder under the incident on S3.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Disk => "disk_evidence",
            Self::Memory => "memory_evidence",
        }
    }

    fn image_suffix(self) -> &'static str {
        match self {
            Self::Disk => "image.dd",
            Self::Memory => "mem.lime",
        }
    }
}

/// The files of one acquisition, all derived from its evidence name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFiles {
    /// Disk or memory.
    pub kind: EvidenceKind,
    /// The evidence name itself, the prefix of every file.
    pub name: String,
    /// `<name>.image.dd` (`<name>.mem.lime` for memory)
    pub image: String,
    /// The image's name and `.sha256`, a line `sha256sum -c` accepts.
    pub sidecar: String,
    /// `<name>.capture.log`, the human log of the run.
    pub capture_log: String,
    /// `<name>.custody.json`, the signed custody statement (when a signing key was given).
    pub custody_statement: String,
    /// `<name>.custody.sig`, the statement's signature.
    pub custody_signature: String,
    /// `<name>.manifest.json`, written last.
    pub manifest: String,
}

impl EvidenceFiles {
    /// File names for disk evidence `name`.
    pub fn new(name: &SafeName) -> Self {
        Self::of(EvidenceKind::Disk, name)
    }

    /// File names for evidence `name` of `kind`.
    pub fn of(kind: EvidenceKind, name: &SafeName) -> Self {
        let suffix = kind.image_suffix();
        Self {
            kind,
            name: name.to_string(),
            image: format!("{name}.{suffix}"),
            sidecar: format!("{name}.{suffix}.sha256"),
            capture_log: format!("{name}.capture.log"),
            custody_statement: format!("{name}.custody.json"),
            custody_signature: format!("{name}.custody.sig"),
            manifest: format!("{name}.manifest.json"),
        }
    }

    /// Every file of the evidence, image first and manifest last: the order they are written in
    /// (a local run publishes the sidecar after the manifest).
    pub fn all(&self) -> [&str; 6] {
        [
            &self.image,
            &self.sidecar,
            &self.capture_log,
            &self.custody_statement,
            &self.custody_signature,
            &self.manifest,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 19 (found on the way): every file of the longest name is a valid file name.
    #[test]
    fn every_file_of_the_longest_name_passes_the_file_name_check() {
        let longest = SafeName::parse(&"a".repeat(MAX_LEN), "name").unwrap();
        for file in EvidenceFiles::new(&longest).all() {
            check_file_name(file, "file").unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        let err = check_file_name(&"a".repeat(MAX_FILE_NAME_LEN + 1), "file").unwrap_err();
        assert!(err.contains("1 to 144"), "{err}");
        assert!(check_file_name("../x.image.dd", "file").is_err());
        assert!(check_file_name(".x.image.dd", "file").is_err());
    }

    // Issue 19: a name of 128 characters left no room for `-2`; `numbered` says so.
    #[test]
    fn a_numbered_name_is_checked_like_any_name() {
        let name = SafeName::parse("vol-1", "name").unwrap();
        assert_eq!(name.numbered(2).unwrap().as_str(), "vol-1-2");
        let longest = SafeName::parse(&"a".repeat(MAX_LEN - 3), "name").unwrap();
        assert_eq!(longest.numbered(99).unwrap().as_str().len(), MAX_LEN);
        let too_long = SafeName::parse(&"a".repeat(MAX_LEN - 2), "name").unwrap();
        assert!(too_long.numbered(99).unwrap_err().contains("1 to 128"));
        assert!(too_long.numbered(9).is_ok());
    }

    #[test]
    fn names_that_could_escape_or_break_keys_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "-rf",
            "a b",
            "vol\u{e9}",
        ] {
            assert!(SafeName::parse(bad, "name").is_err(), "{bad:?}");
        }
        assert!(SafeName::parse("vol-0123456789abcdef0", "name").is_ok());
    }

    #[test]
    fn names_up_to_the_length_limit_are_accepted_and_longer_ones_refused() {
        assert!(SafeName::parse(&"a".repeat(MAX_LEN), "name").is_ok());
        let err = SafeName::parse(&"a".repeat(MAX_LEN + 1), "name").unwrap_err();
        assert!(err.contains("1 to 128 characters"), "{err}");
        assert!(SafeName::parse("a", "name").is_ok());
    }

    #[test]
    fn evidence_files_derive_from_the_name_in_write_order() {
        let files = EvidenceFiles::new(&SafeName::parse("vol-1", "name").unwrap());
        assert_eq!(files.name, "vol-1");
        assert_eq!(
            files.all(),
            [
                "vol-1.image.dd",
                "vol-1.image.dd.sha256",
                "vol-1.capture.log",
                "vol-1.custody.json",
                "vol-1.custody.sig",
                "vol-1.manifest.json"
            ]
        );
    }

    #[test]
    fn memory_evidence_is_a_lime_image_in_its_own_folder() {
        let files = EvidenceFiles::of(
            EvidenceKind::Memory,
            &SafeName::parse("i-1-memory", "name").unwrap(),
        );
        assert_eq!(
            files.all(),
            [
                "i-1-memory.mem.lime",
                "i-1-memory.mem.lime.sha256",
                "i-1-memory.capture.log",
                "i-1-memory.custody.json",
                "i-1-memory.custody.sig",
                "i-1-memory.manifest.json"
            ]
        );
        assert_eq!(EvidenceKind::Memory.folder(), "memory_evidence");
        assert_eq!(EvidenceKind::Disk.folder(), "disk_evidence");
        assert_eq!(".mem.lime.sha256".len(), LONGEST_SUFFIX.len());
    }

    #[test]
    fn device_names_are_sanitised() {
        assert_eq!(
            SafeName::sanitise("disk 1.img").unwrap().as_str(),
            "disk_1.img"
        );
        assert_eq!(SafeName::sanitise("..x").unwrap().as_str(), "x");
        assert!(SafeName::sanitise("..").is_none());
    }
}
