#!/usr/bin/env bash
# packaging/check-static.sh must fail on binaries that are not what it promises. Runs it on three
# broken copies of target/static and requires a FAIL line from each check the copy breaks:
#
#   packaging/tests/check-static-fails.sh [DIR] [UNSTRIPPED]   # build-static.sh runs it
#
#   swapped:   each binary in the other's place (wrong machine: `file`, and neither runs);
#   debug:     cargo's unstripped x86_64 output (UNSTRIPPED) with the stripped one's .sha256;
#   dynamic:   the host's own /bin/ls (dynamically linked: dynamic section, interpreter, and it
#              cannot start in an empty chroot).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(cd "${1:-$root/target/static}" && pwd)
unstripped=${2:-$root/target/x86_64-unknown-linux-musl/dist/forensic-collector}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

expect_failures() { # FIXTURE PATTERN...: check-static.sh on $work/FIXTURE fails, printing each pattern
    local fixture=$1 output pattern
    shift
    if output=$("$root/packaging/check-static.sh" "$work/$fixture" 2>&1); then
        echo "FAIL: check-static.sh passed the $fixture copy"
        failures=$((failures + 1))
        return
    fi
    for pattern in "$@"; do
        if grep -qE "^FAIL: $pattern" <<<"$output"; then
            echo "ok: $fixture: check-static.sh says FAIL: $pattern"
        else
            echo "FAIL: $fixture: check-static.sh did not say FAIL: $pattern"
            failures=$((failures + 1))
        fi
    done
}
sums() { # FIXTURE: .sha256 files of what is in it
    (cd "$work/$1" && for f in forensic-collector-x86_64 forensic-collector-aarch64; do
        sha256sum "$f" >"$f.sha256"
    done)
}

mkdir "$work/swapped" "$work/debug" "$work/dynamic"
cp "$dir/forensic-collector-aarch64" "$work/swapped/forensic-collector-x86_64"
cp "$dir/forensic-collector-x86_64" "$work/swapped/forensic-collector-aarch64"
sums swapped
expect_failures swapped \
    "forensic-collector-x86_64 is an ELF executable for x86-64" \
    "forensic-collector-x86_64 --version in an empty chroot" \
    "forensic-collector-x86_64 acquire --help in an empty chroot" \
    "forensic-collector-aarch64 is an ELF executable for ARM aarch64" \
    "forensic-collector-aarch64 --version in an empty chroot"

cp "$unstripped" "$work/debug/forensic-collector-x86_64"
cp "$dir/forensic-collector-x86_64.sha256" "$work/debug/"
cp "$dir/forensic-collector-aarch64" "$dir/forensic-collector-aarch64.sha256" "$work/debug/"
expect_failures debug \
    "forensic-collector-x86_64 is stripped" \
    "forensic-collector-x86_64.sha256 matches"

cp /bin/ls "$work/dynamic/forensic-collector-x86_64"
cp "$dir/forensic-collector-aarch64" "$work/dynamic/"
sums dynamic
expect_failures dynamic \
    "forensic-collector-x86_64 is statically linked" \
    "forensic-collector-x86_64 has no dynamic section" \
    "forensic-collector-x86_64 has no program interpreter" \
    "forensic-collector-x86_64 --version in an empty chroot"

if [ "$failures" -eq 0 ]; then
    echo "check-static-fails.sh: check-static.sh failed each broken copy as it should"
else
    echo "check-static-fails.sh: $failures expectation(s) not met"
fi
[ "$failures" -eq 0 ]
