//! Issue 9: evidence that never lies. One test per hole found by hostile and unlucky inputs, each
//! failing on the code before its fix (8cc20cb) and passing after; grouped by where the hole was.

mod config;
mod local;
mod s3;
mod verify;
