//! The value types of the configuration as written: sizes, hash lists, the daemon's ending. The
//! settings table (`settings`) types its fields with them.

use serde::{Deserialize, Serialize};

/// What the daemon does once the expected volumes are imaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnComplete {
    /// Power the instance off: the collector is single-use, and a stopped instance costs nothing.
    Poweroff,
    /// Exit the process (systemd decides what follows).
    Exit,
    /// Keep watching for more disks.
    Stay,
}

impl OnComplete {
    /// The configuration's spelling, for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            OnComplete::Poweroff => "poweroff",
            OnComplete::Exit => "exit",
            OnComplete::Stay => "stay",
        }
    }
}

/// A byte size: `"1GiB"`, `"0"`, or a plain integer of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    /// Bytes.
    Bytes(u64),
    /// Text for `bytesize` (`1GiB`, `8 MiB`).
    Text(String),
}

/// A list of hash names: `["sha256", "blake3"]` or `"sha256,blake3"` (handy in env variables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawHashList {
    /// A TOML or JSON array.
    List(Vec<String>),
    /// Comma-separated.
    Csv(String),
}
