//! Integrity: local (filled in by issue 9's work).
