//! The commands, one module each, as `forensic-collector --help` lists them: each turns its parsed
//! arguments into work on the library's plumbing and returns how the process should exit.

pub mod acquire;
pub mod config;
pub mod custody;
pub mod verify;
pub mod watch;
