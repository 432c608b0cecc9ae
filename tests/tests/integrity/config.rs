//! Integrity: config (filled in by issue 9's work).
