#!/usr/bin/env bash
# Benchmark: memory capture in the VM lab's Debian 12 guest — `acquire memory://` against avml and
# against dd of the same System RAM ranges out of /proc/kcore (no LiME headers, no hashing: the
# read's own cost). Same guest, same destination (a host tmpfs shared into the guest over 9p),
# rounds interleaved; each run under GNU time in the guest. Prints MB/s (the guest's System RAM per
# wall second), its ratio to avml, CPU-s per GiB of RAM, peak RSS, and what each tool wrote.
# Boots the guest through tests/vm/run.sh (its `membench` boot), which sets everything up.
#
#   sudo tests/bench/memory.sh --deb target/packages/forensic-collector_0.1.0-1_amd64.deb \
#        [--collector target/static/forensic-collector-x86_64]
#   ROUNDS=3 MEMORY_MIB=512 BENCH_ROWS="collector avml" AVML=/path/to/avml sudo tests/bench/memory.sh …
#
# avml: `cargo install --locked avml --no-default-features` (a host build runs in the guest: same
# glibc); AVML=PATH if it is not on PATH. Not a test: it asserts only that every run exits 0.
set -euo pipefail
exec "$(dirname "$0")/../vm/run.sh" --boot membench "$@"
