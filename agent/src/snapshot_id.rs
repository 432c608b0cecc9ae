//! EBS snapshot IDs as the daemon takes them from its configuration. A stand-in with the engine's
//! rule (`snap-` and 8 or 17 lower-case hex digits) and API until `imaging::snapshot::SnapshotId`
//! is on main; then this module goes and its users import the engine's type.

use std::fmt;
use std::str::FromStr;

/// How a snapshot is named where a source path is expected: `ebs-snapshot://snap-…`.
pub const URI_SCHEME: &str = "ebs-snapshot://";

/// An EBS snapshot ID such as `snap-0123456789abcdef0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// The ID itself, `snap-…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `ebs-snapshot://snap-…`, the form a source path takes.
    pub fn uri(&self) -> String {
        format!("{URI_SCHEME}{}", self.0)
    }
}

impl FromStr for SnapshotId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.strip_prefix("snap-").is_some_and(|hex| {
            (hex.len() == 17 || hex.len() == 8)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "{s:?} is not an EBS snapshot ID (snap- and 17 or 8 lower-case hex digits)"
            ))
        }
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
