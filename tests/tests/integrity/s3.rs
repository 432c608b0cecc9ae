//! Integrity: s3 (filled in by issue 9's work).
