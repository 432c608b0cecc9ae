//! Where a setting came from — the default, the config file, user data in one of its formats, an
//! environment variable, a flag — and which of them may set which key (`settings::Writers`).

use std::fmt;
use std::path::PathBuf;

use super::settings::{Writers, writers};

/// The user-data formats we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDataFormat {
    /// A JSON object.
    Json,
    /// A TOML document.
    Toml,
    /// A shell script or `KEY=VALUE` lines (never executed).
    Shell,
}

impl UserDataFormat {
    /// Lower-case name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Toml => "toml",
            Self::Shell => "shell",
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built-in default.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// EC2 user data in this format.
    UserData(UserDataFormat),
    /// This environment variable.
    Env(String),
    /// This command-line flag.
    Flag(String),
}

impl Origin {
    /// Whether this source may set `key` (see `settings::Writers`): the defaults, the config file and
    /// flags any key; every other source (user data, the environment, any added later) only the
    /// keys declared `Any`.
    pub(super) fn may_set(&self, section: &str, key: &str) -> Result<(), String> {
        match (self, writers(section, key)) {
            (Self::Default | Self::File(_) | Self::Flag(_), _) | (_, Writers::Any) => Ok(()),
            (_, Writers::Operator(why)) => Err(format!(
                "refused: only the config file or a command-line flag may set this key, because {why}"
            )),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::UserData(format) => write!(f, "user data ({})", format.name()),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}
