//! Exit codes: the one place where outcomes become numbers. `--help` lists them from here, and a test
//! holds README.md's table to this file (every code, its words, no other row); scripts and the
//! daemon's callers rely on them, so a code never changes meaning.

use std::process::ExitCode;

use imaging::ErrorKind;

/// Every way the process can end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Image complete, every sector read (or verification matched).
    Ok,
    /// A bug or an unexpected failure.
    Internal,
    /// Bad arguments or settings.
    Usage,
    /// Image complete, but some sectors were unreadable and zero-filled.
    CompletedWithErrors,
    /// Verification found a mismatch.
    VerifyMismatch,
    /// Bad configuration or job context: the config file, an environment variable or the user
    /// data is malformed or holds an invalid value.
    Config,
    /// No job context: IMDS is configured but unreachable (for `watch`, within
    /// `job.imds_wait_secs`) or turned off, or no source sets the bucket or the incident ID.
    /// Retrying later (or on EC2) may succeed without changing any input.
    JobContextUnavailable,
    /// `verify` cannot use the manifest: unreadable, not a regular file, too large, not valid JSON
    /// of a known schema, or recording too little or inconsistent facts to verify against (no
    /// SHA-256, objects that do not hold exactly the image…). Nothing was compared, so this is
    /// neither a pass nor a mismatch: the record itself needs an examiner's attention.
    ManifestUnusable,
    /// The source does not exist.
    SourceMissing,
    /// No permission for the source.
    SourcePermission,
    /// The source is not a block device or regular file, or cannot be queried.
    SourceUnusable,
    /// The source went away mid-run.
    SourceVanished,
    /// Reading failed for another reason.
    SourceRead,
    /// Kernel lockdown forbids reading the source (physical memory).
    KernelLockdown,
    /// The output could not be written (permission, existing evidence).
    Output,
    /// The output filesystem is full.
    OutputFull,
    /// S3 refused or failed (denied, no such bucket, retries exhausted, checksum mismatch).
    Destination,
    /// A custody statement was asked for and KMS did not sign it (denied, key disabled or of the
    /// wrong kind, unreachable), or `verify` could not have KMS check a signature: no evidence
    /// pretends to be signed.
    Signing,
    /// Interrupted by SIGINT/SIGTERM.
    Interrupted,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Internal => 1,
            Exit::Usage => 2,
            Exit::CompletedWithErrors => 3,
            Exit::VerifyMismatch => 4,
            Exit::Config => 5,
            Exit::JobContextUnavailable => 6,
            Exit::ManifestUnusable => 7,
            Exit::SourceMissing => 10,
            Exit::SourcePermission => 11,
            Exit::SourceUnusable => 12,
            Exit::SourceVanished => 13,
            Exit::SourceRead => 14,
            Exit::KernelLockdown => 15,
            Exit::Output => 20,
            Exit::OutputFull => 21,
            Exit::Destination => 30,
            Exit::Signing => 31,
            Exit::Interrupted => 130,
        }
    }
}

impl Exit {
    /// What the code means, in a few words: `--help` lists these, and each row of the README's
    /// exit-code table opens with its code's words (a test holds the two together), so scripts
    /// and operators read one meaning wherever they look.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "completed (or verify: everything matches)",
            Exit::Internal => "internal error",
            Exit::Usage => "usage: bad arguments or settings",
            Exit::CompletedWithErrors => "completed with unreadable sectors",
            Exit::VerifyMismatch => "verify: mismatch",
            Exit::Config => "bad configuration or job context",
            Exit::JobContextUnavailable => "no job context",
            Exit::ManifestUnusable => {
                "verify: the manifest cannot be used, so nothing was compared"
            }
            Exit::SourceMissing => "source does not exist",
            Exit::SourcePermission => "no permission to read the source",
            Exit::SourceUnusable => "source is not a block device or regular file",
            Exit::SourceVanished => "source vanished mid-run",
            Exit::SourceRead => "other read error",
            Exit::KernelLockdown => "kernel lockdown forbids reading memory",
            Exit::Output => "output cannot be written",
            Exit::OutputFull => "output filesystem full",
            Exit::Destination => "S3 refused or failed",
            Exit::Signing => "KMS did not sign (or check) the custody statement",
            Exit::Interrupted => "interrupted by a signal",
        }
    }

    /// The exit-code list `--help` ends with, made from [`Exit::ALL`] so it cannot drift.
    pub fn help_text() -> String {
        let mut text = String::from("Exit codes (details in README.md):\n");
        for exit in Self::ALL {
            text.push_str(&format!("  {:>3}  {}\n", exit.code(), exit.meaning()));
        }
        text
    }

    /// Every exit, in code order.
    pub const ALL: [Exit; 19] = [
        Exit::Ok,
        Exit::Internal,
        Exit::Usage,
        Exit::CompletedWithErrors,
        Exit::VerifyMismatch,
        Exit::Config,
        Exit::JobContextUnavailable,
        Exit::ManifestUnusable,
        Exit::SourceMissing,
        Exit::SourcePermission,
        Exit::SourceUnusable,
        Exit::SourceVanished,
        Exit::SourceRead,
        Exit::KernelLockdown,
        Exit::Output,
        Exit::OutputFull,
        Exit::Destination,
        Exit::Signing,
        Exit::Interrupted,
    ];

    /// The exit for a documented code, e.g. from a child process.
    pub fn from_code(code: u8) -> Option<Exit> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

impl From<ErrorKind> for Exit {
    fn from(kind: ErrorKind) -> Exit {
        match kind {
            ErrorKind::SourceMissing => Exit::SourceMissing,
            ErrorKind::SourcePermission => Exit::SourcePermission,
            ErrorKind::SourceUnusable => Exit::SourceUnusable,
            ErrorKind::SourceVanished => Exit::SourceVanished,
            ErrorKind::SourceRead => Exit::SourceRead,
            ErrorKind::KernelLockdown => Exit::KernelLockdown,
            ErrorKind::OutputFull => Exit::OutputFull,
            ErrorKind::Output => Exit::Output,
            ErrorKind::Destination => Exit::Destination,
            ErrorKind::Usage => Exit::Usage,
            ErrorKind::Cancelled => Exit::Interrupted,
            ErrorKind::Internal => Exit::Internal,
        }
    }
}

/// A failure on its way out: the message for the operator and the code for the machine.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub exit: Exit,
    /// The error chain.
    pub error: anyhow::Error,
}

impl Failure {
    /// Wraps an error with its exit code.
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Self {
            exit,
            error: error.into(),
        }
    }
}

impl From<imaging::Error> for Failure {
    fn from(err: imaging::Error) -> Self {
        Failure::new(err.kind().into(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = Exit::ALL;
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    /// The rows of README.md's exit-code table: (code, meaning with backticks removed).
    fn readme_rows() -> Vec<(String, String)> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("\n## Exit codes\n")
            .nth(1)
            .expect("README.md has an `## Exit codes` section");
        table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // header and separator
            .map(|row| {
                let cells: Vec<&str> = row.trim_matches('|').splitn(2, '|').collect();
                assert_eq!(cells.len(), 2, "README exit-code row {row:?}");
                (cells[0].trim().to_owned(), cells[1].trim().replace('`', ""))
            })
            .collect()
    }

    // Issue 10: the README's exit-code table is the operator's reference and scripts rely on it;
    // it had only a reviewer to keep it equal to this file. Every code has one row, in order,
    // opening with the code's own words, and there is no other row.
    #[test]
    fn the_readme_table_lists_exactly_these_codes_with_these_meanings() {
        let rows = readme_rows();
        let codes: Vec<String> = rows.iter().map(|(code, _)| code.clone()).collect();
        let expected: Vec<String> = Exit::ALL.iter().map(|e| e.code().to_string()).collect();
        assert_eq!(codes, expected, "README exit-code table rows");
        for ((code, meaning), exit) in rows.iter().zip(Exit::ALL) {
            let words = exit.meaning();
            let rest = meaning.strip_prefix(words).unwrap_or_else(|| {
                panic!("README row {code} must open with {words:?}, not {meaning:?}")
            });
            assert!(
                !rest.starts_with(|c: char| c.is_alphanumeric()),
                "README row {code}: {words:?} must be whole words: {meaning:?}"
            );
        }
    }

    // Issue 10: `--help` lists the exit codes, from the same list.
    #[test]
    fn help_lists_every_code_with_its_meaning() {
        use clap::CommandFactory;
        let help = crate::cli::Cli::command().render_help().to_string();
        for exit in Exit::ALL {
            let line = format!("{:>3}  {}", exit.code(), exit.meaning());
            assert!(help.contains(&line), "--help lacks {line:?}:\n{help}");
        }
    }
}
