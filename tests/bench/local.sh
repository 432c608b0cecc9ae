#!/usr/bin/env bash
# Benchmark: forensic-collector acquire against dd and dc3dd on the same loop device, caches dropped
# before every run, rounds interleaved so machine noise hits every tool alike. Prints MB/s, the ratio
# to dd, and peak RSS for each tool (median of the rounds).
#
# Then a high-latency device: a loop device over tests/helpers/faultfs.py sleeping DELAY_MS per
# request, standing in for a snapshot-restored EBS volume that fetches each block on first read;
# dd against acquire at queue depth 1 and at the default.
#
#   sudo tests/bench/local.sh                # 4 GiB device, 3 rounds, output on the disk under $WORK
#   SIZE_MIB=1024 ROUNDS=1 OUT_ON_TMPFS=1 sudo tests/bench/local.sh
#
# Not a test: it asserts nothing and needs root; it is run by hand and its numbers go in issue notes.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE_MIB=${SIZE_MIB:-4096}
ROUNDS=${ROUNDS:-3}
LATENCY_SIZE_MIB=${LATENCY_SIZE_MIB:-256}
DELAY_MS=${DELAY_MS:-20}
DC3DD_LATENCY_MIB=${DC3DD_LATENCY_MIB:-16}
WORK=${WORK:-$(mktemp -d /var/tmp/fc-bench.XXXXXX)}
OUT_ON_TMPFS=${OUT_ON_TMPFS:-0}

. tests/helpers/as-root.sh
require_root "loop devices and drop_caches"
tests/helpers/setup-deps.sh
cargo build --release --locked -q -p forensic-collector
BIN=$PWD/target/release/forensic-collector

LOOPS=()
FAULTFS_PID=""
cleanup() {
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  if [ -n "$FAULTFS_PID" ]; then kill "$FAULTFS_PID" 2>/dev/null || true; wait "$FAULTFS_PID" 2>/dev/null || true; fi
  umount -l "$WORK/mnt" 2>/dev/null || true
  if [ "$OUT_ON_TMPFS" = 1 ]; then umount "$WORK/out" 2>/dev/null || true; fi
  rm -rf "$WORK"
  give_back_target
}
trap cleanup EXIT

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Runs "$@" with caches dropped; prints "<seconds> <peak_rss_kib>".
timed() {
  drop_caches
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -o "$WORK/rss" -f '%M' "$@" >/dev/null 2>"$WORK/stderr" || {
    echo "benchmark command failed: $*" >&2; cat "$WORK/stderr" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(tail -1 "$WORK/rss")"
}

median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }

echo "# forensic-collector benchmark — $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r)"
echo "# device: ${SIZE_MIB} MiB random data on a loop device (--direct-io=on), caches dropped per run, ${ROUNDS} round(s), median"
mkdir -p "$WORK/out"
if [ "$OUT_ON_TMPFS" = 1 ]; then mount -t tmpfs -o size=$((SIZE_MIB + 512))m tmpfs "$WORK/out"; fi
echo "# output directory: $WORK/out ($(df --output=fstype "$WORK/out" | tail -1))"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/source.raw"
DEV=$(losetup -f --show --direct-io=on "$WORK/source.raw"); LOOPS+=("$DEV")
BYTES=$((SIZE_MIB << 20))

declare -A SECS RSS
tools=(dd dc3dd acquire acquire_nopieces)
for t in "${tools[@]}"; do SECS[$t]=""; RSS[$t]=""; done
for _ in $(seq 1 "$ROUNDS"); do
  for t in "${tools[@]}"; do
    rm -rf "$WORK/out"/* 2>/dev/null || true
    case $t in
      dd) r=$(timed dd if="$DEV" iflag=direct bs=8M of=/dev/null) ;;
      dc3dd) r=$(timed dc3dd if="$DEV" hash=sha256 of="$WORK/out/dc3dd.img") ;;
      acquire) r=$(timed "$BIN" acquire "$DEV" --out "$WORK/out" --name bench) ;;
      acquire_nopieces) r=$(timed "$BIN" acquire "$DEV" --out "$WORK/out" --name bench --piece-size 0) ;;
    esac
    SECS[$t]+="${r% *} "; RSS[$t]+="${r#* } "
  done
done
rm -rf "$WORK/out"/* 2>/dev/null || true

mbps() { echo "$BYTES / $1 / 1000000" | bc -l; }
dd_s=$(echo "${SECS[dd]}" | tr ' ' '\n' | median)
printf '%-44s %10s %10s %12s\n' tool "MB/s" "x dd" "peak RSS MiB"
for t in "${tools[@]}"; do
  s=$(echo "${SECS[$t]}" | tr ' ' '\n' | median)
  r=$(echo "${RSS[$t]}" | tr ' ' '\n' | sort -n | tail -1)
  case $t in
    dd) label="dd iflag=direct bs=8M of=/dev/null" ;;
    dc3dd) label="dc3dd hash=sha256 of=FILE" ;;
    acquire) label="acquire (sha256+blake3+pieces) to FILE" ;;
    acquire_nopieces) label="acquire (sha256+blake3, no pieces) to FILE" ;;
  esac
  printf '%-44s %10.1f %10.2f %12.1f\n' "$label" "$(mbps "$s")" "$(echo "$dd_s / $s" | bc -l)" "$(echo "$r / 1024" | bc -l)"
done
losetup -d "$DEV"; LOOPS=()

echo
echo "# high-latency device: ${LATENCY_SIZE_MIB} MiB behind faultfs --delay-ms ${DELAY_MS} (per request), loop --direct-io=on"
head -c $((LATENCY_SIZE_MIB << 20)) /dev/urandom > "$WORK/slow.raw"
mkdir -p "$WORK/mnt"
exec {FFS}< <(exec python3 tests/helpers/faultfs.py "$WORK/slow.raw" "$WORK/mnt" --delay-ms "$DELAY_MS")
FAULTFS_PID=$!
read -r -t 20 line <&"$FFS"
[ "$line" = ready ] || { echo "faultfs did not mount" >&2; exit 1; }
SLOW=$(losetup -f --show -r --direct-io=on "$WORK/mnt/disk.img"); LOOPS+=("$SLOW")
BYTES=$((LATENCY_SIZE_MIB << 20))
lat_dd=$(timed dd if="$SLOW" iflag=direct bs=8M of=/dev/null); lat_dd=${lat_dd% *}
lat_dd1=$(timed dd if="$SLOW" iflag=direct bs=1M of=/dev/null); lat_dd1=${lat_dd1% *}
# dc3dd reads in small blocks, one at a time: only a prefix, or it takes minutes.
lat_dc=$(timed dc3dd if="$SLOW" hash=sha256 of="$WORK/out/dc3dd.img" cnt=$((DC3DD_LATENCY_MIB << 11))); lat_dc=${lat_dc% *}
rm -rf "$WORK/out"/*
lat_q1=$(timed "$BIN" acquire "$SLOW" --out "$WORK/out" --name q1 --queue-depth 1); lat_q1=${lat_q1% *}
rm -rf "$WORK/out"/*
lat_qd=$(timed "$BIN" acquire "$SLOW" --out "$WORK/out" --name qd); lat_qd=${lat_qd% *}
rm -rf "$WORK/out"/*
dd_mbps=$(mbps "$lat_dd")
row() { printf '%-44s %10.1f %10.2f\n' "$1" "$2" "$(echo "$2 / $dd_mbps" | bc -l)"; }
printf '%-44s %10s %10s\n' tool "MB/s" "x dd"
row "dd iflag=direct bs=8M" "$dd_mbps"
row "dd iflag=direct bs=1M" "$(mbps "$lat_dd1")"
row "dc3dd hash=sha256 (first ${DC3DD_LATENCY_MIB} MiB)" "$(echo "$((DC3DD_LATENCY_MIB << 20)) / $lat_dc / 1000000" | bc -l)"
row "acquire --queue-depth 1" "$(mbps "$lat_q1")"
row "acquire (default queue depth)" "$(mbps "$lat_qd")"
