# shellcheck shell=bash
# Sourced by packaging/check.sh and packaging/check-static.sh: the "ok: …"/"FAIL: …" reporting
# both print, and the checks that a binary is static, which both apply (check-static.sh to the
# binaries for hosts without the package, check.sh to the one inside the .deb and the .rpm: the
# same x86_64 build). The caller sets `failures=0` and ends with `[ "$failures" -eq 0 ]`.

# The small predicates below run through `check`, which shellcheck cannot follow.
# shellcheck disable=SC2317

# Every shipped binary must stay under this size (issue 11's goal).
readonly MAX_BINARY_BYTES=25000000
# What `file` calls each architecture.
declare -A MACHINE=([x86_64]=x86-64 [aarch64]="ARM aarch64")

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

# static_binary_checks NAME BINARY ARCH: BINARY (called NAME in the lines printed) is an ELF
# executable for ARCH (x86_64 or aarch64), statically linked (`file`; no dynamic section, no
# program interpreter: readelf), stripped of its symbol table and debug info, and under
# MAX_BINARY_BYTES. What these cannot show, that it runs with no library at all, check-static.sh
# shows by running it alone in an empty chroot.
static_binary_checks() {
    local name=$1 binary=$2 arch=$3 described size
    described=$(file -b "$binary")
    echo "file: $name: $described"
    check "$name is an ELF executable for ${MACHINE[$arch]}" \
        has "ELF 64-bit LSB executable, ${MACHINE[$arch]}," "$described"
    check "$name is statically linked" has ", statically linked," "$described"
    check "$name is stripped" has ", stripped" "$described"
    # .debug_gdb_scripts stays: it is loaded data (gdb's pretty-printer hint), not debug info.
    check "$name has no debug info" \
        sh -c "! readelf -W -S '$binary' | grep -qE '\.debug_(info|line|str|abbrev|ranges)'"
    check "$name has no dynamic section (readelf -d)" \
        has "There is no dynamic section in this file." "$(readelf -d "$binary")"
    check "$name has no program interpreter (readelf -l)" \
        sh -c "! readelf -lW '$binary' | grep -qE '^ *INTERP '"
    size=$(stat -c %s "$binary")
    check "$name is $size bytes, under $MAX_BINARY_BYTES" test "$size" -lt "$MAX_BINARY_BYTES"
}
