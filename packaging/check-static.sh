#!/usr/bin/env bash
# Asserts that the binaries built by packaging/build-static.sh are what a suspect host can run:
#
#   packaging/check-static.sh [DIR]     # DIR holds forensic-collector-{x86_64,aarch64} (target/static)
#
# For each: the checks of packaging/checks.sh (the right machine, statically linked, no dynamic
# section and no program interpreter, stripped, small; check.sh applies the same ones to the
# packages' binary), its .sha256 file matches, and it runs alone in an empty chroot
# (no libc, no loader, no /proc: only the binary, and for aarch64 qemu-aarch64-static) printing the
# version of this checkout (package version and git revision) and `acquire --help`.
# Each check prints "ok: …" or "FAIL: …"; the exit status is 0 only when all passed. Needs root
# (chroot), file, binutils (readelf) and qemu-user-static: packaging/deps.sh installs the missing
# ones first when run as root.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/deps.sh
. "$root/packaging/deps.sh"
# shellcheck source=packaging/checks.sh
. "$root/packaging/checks.sh"
need_packages check-static.sh file=file binutils=readelf coreutils=sha256sum \
    qemu-user-static=qemu-aarch64-static
dir=$(cd "${1:-$root/target/static}" && pwd)

failures=0

[ "$(id -u)" -eq 0 ] || { echo "check-static.sh: needs root (chroot)" >&2; exit 1; }
version=$(cd "$root" && cargo pkgid -p forensic-collector | sed 's/.*[#@]//')
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# agent/src/lib.rs VERSION_LINE, as the packaged binary prints it.
expected_version="forensic-collector $version ($revision)"
qemu=$(command -v qemu-aarch64-static)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in x86_64 aarch64; do
    name=forensic-collector-$arch
    binary=$dir/$name
    if [ ! -f "$binary" ]; then
        fail "$name exists in $dir"
        continue
    fi
    static_binary_checks "$name" "$binary" "$arch"
    check "$name.sha256 matches" sh -c "cd '$dir' && sha256sum --quiet -c '$name.sha256'"

    # Only the binary (and the emulator, itself static) in an otherwise empty root.
    jail=$work/$arch
    mkdir "$jail"
    cp "$binary" "$jail/forensic-collector"
    run=(chroot "$jail")
    if [ "$arch" != x86_64 ]; then
        cp "$qemu" "$jail/qemu-aarch64-static"
        run+=(/qemu-aarch64-static)
    fi
    echo "chroot $jail: $(cd "$jail" && echo *)"
    printed=$("${run[@]}" /forensic-collector --version 2>&1) || printed="exit $?: $printed"
    echo "$name --version in the chroot: $printed"
    check "$name --version in an empty chroot is '$expected_version'" test "$printed" = "$expected_version"
    help=$("${run[@]}" /forensic-collector acquire --help 2>&1) || help="exit $?: $help"
    check "$name acquire --help in an empty chroot prints its usage" \
        has "Usage: forensic-collector acquire" "$help"
done

if [ "$failures" -eq 0 ]; then
    echo "check-static.sh: all checks passed"
else
    echo "check-static.sh: $failures check(s) failed"
fi
[ "$failures" -eq 0 ]
