#!/usr/bin/env bash
# Asserts that the binaries built by packaging/build-static.sh are what a suspect host can run:
#
#   packaging/check-static.sh [DIR]     # DIR holds forensic-collector-{x86_64,aarch64} (target/static)
#
# For each: the right machine and statically linked (`file`), no dynamic section and no program
# interpreter (readelf), stripped, its .sha256 file matches, and it runs alone in an empty chroot
# (no libc, no loader, no /proc: only the binary, and for aarch64 qemu-aarch64-static) printing the
# version of this checkout (package version and git revision) and `acquire --help`.
# Each check prints "ok: …" or "FAIL: …"; the exit status is 0 only when all passed. Needs root
# (chroot), file, binutils (readelf) and qemu-user-static: packaging/deps.sh installs the missing
# ones first when run as root.

# The small predicates below run through `check`, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/deps.sh
. "$root/packaging/deps.sh"
need_packages check-static.sh file=file binutils=readelf coreutils=sha256sum \
    qemu-user-static=qemu-aarch64-static
dir=$(cd "${1:-$root/target/static}" && pwd)
# The shipped binary must stay under this size, as the packages' (packaging/check.sh).
readonly MAX_BINARY_BYTES=25000000
# What `file` calls each architecture.
declare -A MACHINE=([x86_64]=x86-64 [aarch64]="ARM aarch64")

failures=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
check() { # DESCRIPTION COMMAND...: ok when COMMAND succeeds
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
has() { # FIXED-STRING TEXT: TEXT contains it
    grep -qF -- "$1" <<<"$2"
}

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
    described=$(file -b "$binary")
    echo "file: $name: $described"
    check "$name is an ELF executable for ${MACHINE[$arch]}" has "ELF 64-bit LSB executable, ${MACHINE[$arch]}," "$described"
    check "$name is statically linked" has ", statically linked," "$described"
    check "$name is stripped" has ", stripped" "$described"
    check "$name has no dynamic section (readelf -d)" \
        has "There is no dynamic section in this file." "$(readelf -d "$binary")"
    check "$name has no program interpreter (readelf -l)" \
        sh -c "! readelf -lW '$binary' | grep -qE '^ *INTERP '"
    size=$(stat -c %s "$binary")
    check "$name is $size bytes, under $MAX_BINARY_BYTES" test "$size" -lt "$MAX_BINARY_BYTES"
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
