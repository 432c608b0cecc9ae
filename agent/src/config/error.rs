//! What can go wrong while building the configuration. Every variant names the source (file path,
//! user data, env variable, flag) and, where there is one, the key — the operator must be able to
//! fix the input from the message alone.
//!
//! Two renderings: `Display` is for this host (the terminal of the root user who ran the command,
//! the journal) and may quote the config file — toml's syntax errors show the offending line, and
//! a bad value is named. [`ConfigError::off_host_text`] is for reports that leave the host (the
//! CloudWatch `config_refused` event): it names the file, line, column and declared key only,
//! never text or a value read from the config file, because the file is root's and may hold
//! anything (issue 19: a credentials file's line reached CloudWatch). Values from user data, the
//! environment and flags are the launcher's or the operator's own and stay in both forms.

use std::fmt;
use std::path::PathBuf;

use super::origin::Origin;
use super::settings;
use crate::exit::Exit;

/// The formats accepted in user data, for error messages.
pub const USER_DATA_FORMATS: &str = "a JSON object, a TOML document ([job] table or top-level \
     job keys), or a shell script / KEY=VALUE lines setting DESTINATION_BUCKET, IMAGE_NAME, \
     INCIDENT_ID, DESTINATION_PREFIX or FORENSIC_COLLECTOR_<SECTION>_<KEY>";

/// A configuration or job-context failure.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {error}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The config file exists but must not be used (not a regular file, too large, not UTF-8,
    /// or writable by someone other than root).
    #[error("config file {path} refused: {reason}")]
    RefusedFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    FileSyntax {
        /// The file.
        path: PathBuf,
        /// Where the parser stopped, when it said.
        position: Option<Position>,
        /// The parser's message, which quotes the offending line (for this host only).
        message: String,
    },
    /// `FORENSIC_COLLECTOR_CONFIG` is set: it used to name the config file, but its sources (the
    /// environment, fed from /etc/environment, which user data writes; shell user data) may not
    /// choose a file root reads. Refused rather than ignored, so a host still set up that way
    /// learns it; the file it names is never opened.
    #[error(
        "{name}={value:?} in {}: refused: the config file is chosen only by `--config FILE` \
         or is /etc/forensic-collector/config.toml, never by a variable, because the environment is \
         filled from /etc/environment, which EC2 user data writes, and may not choose a file root \
         reads (the file was not opened); remove the variable and select the file with `--config` \
         (for the service: a systemd drop-in, see docs/config.md) or install it as \
         /etc/forensic-collector/config.toml",
        set_in(.origin)
    )]
    PathVariable {
        /// The variable's name.
        name: &'static str,
        /// Where it was set.
        origin: Origin,
        /// The path it names (the launcher's own text, not read from any file).
        value: String,
    },
    /// A key is unknown, has the wrong type, or a bad value.
    #[error("{key} from {origin}: {message}")]
    Key {
        /// `section.key`.
        key: String,
        /// Who set it.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// User data is present but in none of the accepted formats.
    #[error("malformed user data: {message}; accepted: {USER_DATA_FORMATS}")]
    UserData {
        /// What each format said.
        message: String,
    },
    /// IMDS is configured but did not answer (within the wait, for `watch`), or refused (403).
    #[error(
        "instance metadata service is unreachable: {message} (set [job] use_imds = false or AWS_EC2_METADATA_DISABLED=true when not on EC2; `watch` waits up to [job] imds_wait_secs for it)"
    )]
    ImdsUnavailable {
        /// The endpoint tried.
        endpoint: String,
        /// The SDK's error chain.
        message: String,
    },
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` is not an http(s) URL. A bad value like any other
    /// setting's (exit 5), not an unreachable IMDS: no wait or retry would make it work.
    #[error(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT={value:?} is not a usable IMDS endpoint: {message} (unset it to use 169.254.169.254)"
    )]
    ImdsEndpoint {
        /// The variable's value.
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// A job needs keys that no source set.
    #[error(
        "no job context: {missing} not set by the config file, user data, environment or flags"
    )]
    MissingJob {
        /// The missing keys, comma-separated.
        missing: String,
    },
    /// A bug: the defaults or the merge do not fit the struct tree.
    #[error("internal configuration error: {0}")]
    Internal(String),
}

impl ConfigError {
    /// The documented exit code: bad input is `Config` (5), including a malformed
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` like any bad setting; an unreachable IMDS or a missing job
    /// is `JobContextUnavailable` (6), because retrying later may succeed without changing input.
    pub fn exit(&self) -> Exit {
        match self {
            Self::ImdsUnavailable { .. } | Self::MissingJob { .. } => Exit::JobContextUnavailable,
            Self::Internal(_) => Exit::Internal,
            Self::ReadFile { .. }
            | Self::RefusedFile { .. }
            | Self::FileSyntax { .. }
            | Self::PathVariable { .. }
            | Self::Key { .. }
            | Self::ImdsEndpoint { .. } => Exit::Config,
            Self::UserData { .. } => Exit::Config,
        }
    }

    /// The refusal as told off this host (see the module doc): no text or value read from the
    /// config file. A syntax error names the file, line and column; a bad key from the file names
    /// the file and the key when it is a declared one (an undeclared name is the file's text);
    /// everything else reads as `Display` does, its values coming from elsewhere.
    pub fn off_host_text(&self) -> String {
        let on_host = "`forensic-collector config check` on the host shows";
        match self {
            Self::FileSyntax { path, position, .. } => {
                let at = position.map_or_else(String::new, |p| format!(" at {p}"));
                format!(
                    "config file {} is not valid TOML{at} (the file's text is not repeated here; \
                     {on_host} it)",
                    path.display()
                )
            }
            Self::Key {
                key,
                origin: Origin::File(path),
                ..
            } => format!(
                "{} from file {}: refused (the file's value and why it is refused are not \
                 repeated here; {on_host} them)",
                declared_key(key).unwrap_or("an unknown key"),
                path.display()
            ),
            other => other.to_string(),
        }
    }
}

/// Where a variable was set, for a message that already names the variable.
fn set_in(origin: &Origin) -> String {
    match origin {
        Origin::Env(_) => "the environment".to_owned(),
        other => other.to_string(),
    }
}

/// `key` when it names a declared setting (`section.key`) or section, else `None`.
fn declared_key(key: &str) -> Option<&str> {
    let declared = match key.split_once('.') {
        Some((section, name)) => settings::find(section, name).is_some(),
        None => settings::SECTIONS.contains(&key),
    };
    declared.then_some(key)
}

/// A place in a text: 1-based line, and 1-based column counted in characters (as toml counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (the end of the text when past it; the character's
    /// own when inside one).
    pub fn of(text: &str, offset: usize) -> Self {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(key: &str, message: &str) -> ConfigError {
        ConfigError::Key {
            key: key.to_owned(),
            origin: Origin::File("/etc/fc.toml".into()),
            message: message.to_owned(),
        }
    }

    // Issue 19: off the host, a key from the file is named only when it is ours to name.
    #[test]
    fn off_host_a_file_key_is_named_only_when_declared() {
        for (key, shown) in [
            ("job.bucket", "job.bucket"),
            ("watch", "watch"),
            ("job.AKIA_key", "an unknown key"),
            ("default.aws_secret_access_key", "an unknown key"),
            ("AKIA", "an unknown key"),
            ("watch.", "an unknown key"),
        ] {
            let text = from_file(key, "the value VALUE-TEXT is bad").off_host_text();
            assert!(
                text.starts_with(&format!("{shown} from file /etc/fc.toml: refused")),
                "{key}: {text}"
            );
            assert!(!text.contains("VALUE-TEXT"), "{text}");
            if shown != key {
                assert!(!text.contains(key), "{text}");
            }
        }
        let from_flag = ConfigError::Key {
            key: "watch.disk_root".into(),
            origin: Origin::Flag("--disk-root".into()),
            message: "\"dev\" must be an absolute path".into(),
        };
        assert_eq!(from_flag.off_host_text(), from_flag.to_string());
    }

    #[test]
    fn a_syntax_error_without_a_position_says_none() {
        let err = ConfigError::FileSyntax {
            path: "/etc/fc.toml".into(),
            position: None,
            message: "quoted LINE".into(),
        };
        let text = err.off_host_text();
        assert!(
            text.starts_with("config file /etc/fc.toml is not valid TOML (the file's text"),
            "{text}"
        );
        assert!(!text.contains("LINE"), "{text}");
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "ab\nçé = x\n\nlast";
        let at = |offset| {
            let p = Position::of(text, offset);
            (p.line, p.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        // `ç` and `é` are two bytes each but one column each.
        assert_eq!(at(7), (2, 3));
        assert_eq!(at(4), (2, 1), "inside `ç`: its own column");
        assert_eq!(at(13), (4, 1));
        assert_eq!(at(text.len()), (4, 5));
        assert_eq!(at(usize::MAX), (4, 5));
        assert_eq!(
            Position {
                line: 3,
                column: 10
            }
            .to_string(),
            "line 3, column 10"
        );
    }

    // The position agrees with toml's own, on every error of a few broken documents.
    #[test]
    fn positions_agree_with_toml() {
        for text in [
            "x = ",
            "[job]\nbucket = AKIA\n",
            "é = 1\nçç = [1,\n  2,, 3]\n",
            "[a]\n[a]\n",
            "k = \"unterminated\n",
        ] {
            let err = text.parse::<toml::Table>().unwrap_err();
            let p = Position::of(text, err.span().expect("span").start);
            let said = err.to_string();
            assert!(
                said.contains(&format!("at {p}\n")),
                "{text:?}: {p} vs {said}"
            );
        }
    }
}
