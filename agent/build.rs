//! Embeds the git revision so every manifest names the exact source the binary was built from.
//!
//! `git rev-parse` only: commands that check for a dirty tree (`describe --dirty`, `status`) refresh
//! `.git/index`, which would make cargo rebuild the binary on every invocation.

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FORENSIC_COLLECTOR_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs");
    // A build ID (an ELF note hashing the linked output) names the binary to debuggers and to the
    // split line tables (the -dbgsym package files them under /usr/lib/debug/.build-id/). Debian's
    // gcc asks its linker for one by default; zig's linker, which links the static musl binary the
    // packages ship (packaging/build-static.sh), writes none unless asked.
    println!("cargo:rustc-link-arg-bins=-Wl,--build-id=sha1");
}
