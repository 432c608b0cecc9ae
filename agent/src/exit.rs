//! Exit codes: the one place where outcomes become numbers. Documented in README.md; scripts and the
//! SSM document rely on them, so a code never changes meaning.

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
    /// No job context: IMDS is configured but unreachable, or no source sets the bucket or the
    /// incident ID. Retrying later (or on EC2) may succeed without changing any input.
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
    /// The output could not be written (permission, existing evidence).
    Output,
    /// The output filesystem is full.
    OutputFull,
    /// S3 refused or failed (denied, no such bucket, retries exhausted, checksum mismatch).
    Destination,
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
            Exit::Output => 20,
            Exit::OutputFull => 21,
            Exit::Destination => 30,
            Exit::Interrupted => 130,
        }
    }
}

impl Exit {
    /// Every exit, in code order.
    pub const ALL: [Exit; 17] = [
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
        Exit::Output,
        Exit::OutputFull,
        Exit::Destination,
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
}
