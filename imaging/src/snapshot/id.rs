//! Snapshot IDs and the `ebs-snapshot://` source syntax.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a snapshot is named where a source path is expected: `ebs-snapshot://snap-…`.
pub(crate) const URI_SCHEME: &str = "ebs-snapshot://";

/// An EBS snapshot ID such as `snap-0123456789abcdef0` (17 hex digits; snapshots made before 2016
/// have 8). Checked before any request, so a typo is a usage error and not a call to AWS with a
/// string someone else chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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

    /// The snapshot named by a source argument: `Ok(None)` when `source` does not use the
    /// `ebs-snapshot://` scheme (it is then a path), an error when it does but names no valid
    /// snapshot.
    pub fn from_source(source: &str) -> Result<Option<Self>, String> {
        match source.strip_prefix(URI_SCHEME) {
            None => Ok(None),
            Some(rest) => rest.parse().map(Some),
        }
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

impl TryFrom<String> for SnapshotId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SnapshotId> for String {
    fn from(id: SnapshotId) -> Self {
        id.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_snap_and_8_or_17_lower_case_hex_digits() {
        for ok in ["snap-0123456789abcdef0", "snap-01234567"] {
            assert_eq!(ok.parse::<SnapshotId>().unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "snap-",
            "snap-0123456789ABCDEF0",
            "snap-0123456789abcdef",
            "snap-0123456789abcdef01",
            "snap-0123456",
            "snap-012345678",
            "vol-0123456789abcdef0",
            " snap-0123456789abcdef0",
            "snap-0123456789abcdefg",
            "snap-01234567/../x",
        ] {
            let err = bad.parse::<SnapshotId>().unwrap_err();
            assert!(err.contains("not an EBS snapshot ID"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn only_the_ebs_snapshot_scheme_names_a_snapshot() {
        let id = SnapshotId::from_source("ebs-snapshot://snap-0123456789abcdef0")
            .unwrap()
            .unwrap();
        assert_eq!(id.uri(), "ebs-snapshot://snap-0123456789abcdef0");
        assert_eq!(id.to_string(), "snap-0123456789abcdef0");
        assert_eq!(SnapshotId::from_source("/dev/nvme1n1"), Ok(None));
        assert_eq!(SnapshotId::from_source("snap-0123456789abcdef0"), Ok(None));
        assert!(SnapshotId::from_source("ebs-snapshot://").is_err());
        assert!(SnapshotId::from_source("ebs-snapshot://snap-xyz").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"snap-0123456789abcdef0\"");
        assert!(serde_json::from_str::<SnapshotId>("\"snap-x\"").is_err());
    }
}
