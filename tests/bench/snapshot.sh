#!/usr/bin/env bash
# Benchmark: `acquire ebs-snapshot://…` from the local EBS API (moto, tests/helpers/motoserver.py)
# with one block in flight and with the default (64), against `acquire` of the same bytes from a
# loop device. Every figure comes from this run, on this machine.
#
# The snapshot: SIZE_GIB GiB (default 1), every block written with random bytes through
# StartSnapshot/PutSnapshotBlock/CompleteSnapshot (tests/src/bin/putsnapshot.rs), which also writes
# the same bytes to a file; the loop device (--direct-io=on) is attached to that file.
# Rows (ROUNDS rounds, interleaved; caches dropped before each run):
#   snapshot bif1   forensic-collector acquire ebs-snapshot://ID --out DIR --blocks-in-flight 1
#   snapshot        forensic-collector acquire ebs-snapshot://ID --out DIR            (default 64)
#   loop            forensic-collector acquire LOOP --out DIR                         (defaults)
#   link bif1, link the two snapshot rows through tests/src/bin/linkproxy.rs, which adds a round
#                   trip of RTT_MS (default 20 ms, an in-Region API call) to every request: on
#                   loopback every request is instant and blocks in flight cannot show what they
#                   buy against a real endpoint's latency.
# Columns: MB/s (10^6 bytes/s from the median wall time) and the rounds' range; CPU-s/GiB of
# acquire (user+sys from /usr/bin/time, median); peak RSS of acquire (highest of the rounds); the
# local server's CPU-s/GiB (moto, one Python process: it shares the 2 cores with acquire, so it
# bounds the snapshot rows here, as the EBS service's request rate would in AWS). Every image's
# SHA-256 is checked against the first one: all three rows must image the same bytes.
#
#   sudo tests/bench/snapshot.sh                    # 1 GiB, 2 rounds
#   SIZE_GIB=2 ROUNDS=3 sudo tests/bench/snapshot.sh
#
# Not a test: it asserts nothing beyond equal images and needs root (loop devices, drop_caches);
# its numbers go in tests/bench/README.md and issue notes. Needs what setup-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE_GIB=${SIZE_GIB:-1}
ROUNDS=${ROUNDS:-2}
PYTHON=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}   # seconds, any one command
RTT_MS=${RTT_MS:-20}
WORK=${WORK:-$(mktemp -d /var/tmp/fc-bench-snapshot.XXXXXX)}

. tests/helpers/as-root.sh
require_root "loop devices and drop_caches"

LOOP=""
MOTO_PID=""
PROXY_PID=""
cleanup() {
  if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; fi
  if [ -n "$PROXY_PID" ]; then kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; fi
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  give_back_target
}
trap cleanup EXIT

timeout 1800 tests/helpers/setup-deps.sh >/dev/null   # time, bc, moto
# Two builds, one per package, as table.sh does: building them together would unify tokio's
# features and make the measured binary differ from the one `cargo build -p forensic-collector` gives.
timeout 1800 cargo build --release --locked -q -p forensic-collector
timeout 1800 cargo build --release --locked -q -p collector-e2e --bin putsnapshot --bin linkproxy
BIN=$PWD/target/release/forensic-collector
PUT=$PWD/target/release/putsnapshot
LINKPROXY=$PWD/target/release/linkproxy
BYTES=$((SIZE_GIB << 30))

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }
# CPU seconds (user+sys) a process has used so far, from /proc/PID/stat.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# Not under timeout: $! must be the server itself, whose CPU time is read from /proc (the EXIT trap
# stops it).
exec {MOTO_OUT}< <(exec "$PYTHON" tests/helpers/motoserver.py)
MOTO_PID=$!
read -r -t 60 ready port <&"$MOTO_OUT" || true
[ "${ready:-}" = ready ] || { echo "motoserver.py did not start" >&2; exit 1; }
ENDPOINT=http://127.0.0.1:$port
export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true RUST_LOG=warn

echo "# forensic-collector snapshot benchmark — $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), $(git rev-parse --short HEAD)"
t0=$(date +%s.%N)
SNAP=$(timeout "$RUN_TIMEOUT" "$PUT" --endpoint "$ENDPOINT" --size-gib "$SIZE_GIB" --file "$WORK/volume.raw")
t1=$(date +%s.%N)
echo "# snapshot $SNAP: ${SIZE_GIB} GiB, every block random, written in $(printf '%.1f' "$(echo "$t1 - $t0" | bc -l)") s; moto $("$PYTHON" -c 'import moto; print(moto.__version__)') at $ENDPOINT, blocks in memory"
# The link: no rate cap worth the name (the downstream, which carries the blocks, has none anyway),
# only the round trip.
exec {PROXY_FD}< <(exec "$LINKPROXY" --upstream "127.0.0.1:$port" --rate-mbps 1000 --rtt-ms "$RTT_MS" 2>"$WORK/proxy.err")
PROXY_PID=$!
read -r -t 10 line <&"$PROXY_FD" || { echo "linkproxy did not start:" >&2; cat "$WORK/proxy.err" >&2; exit 1; }
LINK=http://127.0.0.1:${line#ready }
echo "# link: $LINK, linkproxy adding a ${RTT_MS} ms round trip to every request"
LOOP=$(losetup -f --show --direct-io=on "$WORK/volume.raw")
echo "# loop device: $LOOP over the same bytes (--direct-io=on); output directory $WORK/out ($(df --output=fstype "$WORK" | tail -1)); ${ROUNDS} round(s), caches dropped per run"

rows=(bif1 snapshot link1 link loop)
declare -A LABEL=(
  [bif1]="acquire ebs-snapshot:// --blocks-in-flight 1"
  [snapshot]="acquire ebs-snapshot:// (64 in flight)"
  [link1]="  same, ${RTT_MS} ms round trip, 1 in flight"
  [link]="  same, ${RTT_MS} ms round trip, 64 in flight"
  [loop]="acquire LOOP (defaults)"
)
declare -A SECS CPU RSS SERVER
for r in "${rows[@]}"; do SECS[$r]=""; CPU[$r]=""; RSS[$r]=""; SERVER[$r]=""; done
reference=""

# Runs one row; appends its wall seconds, CPU seconds, peak RSS and the server's CPU seconds.
run_row() {
  local row=$1 cmd server0 t0 t1 sha
  case $row in
    bif1) cmd=("$BIN" acquire "ebs-snapshot://$SNAP" --blocks-in-flight 1) ;;
    snapshot) cmd=("$BIN" acquire "ebs-snapshot://$SNAP") ;;
    link1) cmd=(env "AWS_ENDPOINT_URL=$LINK" "$BIN" acquire "ebs-snapshot://$SNAP" --blocks-in-flight 1) ;;
    link) cmd=(env "AWS_ENDPOINT_URL=$LINK" "$BIN" acquire "ebs-snapshot://$SNAP") ;;
    loop) cmd=("$BIN" acquire "$LOOP") ;;
  esac
  rm -rf "$WORK/out"
  drop_caches
  server0=$(cpu_of "$MOTO_PID")
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/time" -f '%U %S %M' \
    "${cmd[@]}" --out "$WORK/out" --name bench --incident BENCH >/dev/null 2>"$WORK/stderr" || {
    echo "benchmark command failed: ${cmd[*]}" >&2; cat "$WORK/stderr" >&2; exit 1; }
  t1=$(date +%s.%N)
  SECS[$row]+="$(echo "$t1 - $t0" | bc -l) "
  read -r user sys rss < <(tail -1 "$WORK/time")
  CPU[$row]+="$(echo "$user + $sys" | bc -l) "
  RSS[$row]+="$rss "
  SERVER[$row]+="$(echo "$(cpu_of "$MOTO_PID") - $server0" | bc -l) "
  sha=$(sed -n 's/^\([0-9a-f]\{64\}\) .*/\1/p' "$WORK/out/bench.image.dd.sha256")
  if [ -z "$reference" ]; then
    reference=$sha
  elif [ "$sha" != "$reference" ]; then
    echo "row $row imaged different bytes: sha256 $sha, first run $reference" >&2; exit 1
  fi
}

for _ in $(seq 1 "$ROUNDS"); do
  for r in "${rows[@]}"; do run_row "$r"; done
done
rm -rf "$WORK/out"

gib() { echo "$1 / $SIZE_GIB" | bc -l; }
printf '%-46s %8s %12s %10s %8s %13s\n' row "MB/s" "MB/s range" "CPU s/GiB" "RSS MiB" "server s/GiB"
for r in "${rows[@]}"; do
  s=$(tr ' ' '\n' <<<"${SECS[$r]}" | median)
  fastest=$(tr ' ' '\n' <<<"${SECS[$r]}" | sort -n | awk 'NF' | head -1)
  slowest=$(tr ' ' '\n' <<<"${SECS[$r]}" | sort -n | awk 'NF' | tail -1)
  range=$(printf '%.0f-%.0f' "$(echo "$BYTES / $slowest / 1000000" | bc -l)" "$(echo "$BYTES / $fastest / 1000000" | bc -l)")
  cpu=$(tr ' ' '\n' <<<"${CPU[$r]}" | median)
  rss=$(tr ' ' '\n' <<<"${RSS[$r]}" | sort -n | tail -1)
  server=$(tr ' ' '\n' <<<"${SERVER[$r]}" | median)
  printf '%-46s %8.1f %12s %10.2f %8.1f %13.2f\n' "${LABEL[$r]}" "$(echo "$BYTES / $s / 1000000" | bc -l)" "$range" \
    "$(gib "$cpu")" "$(echo "$rss / 1024" | bc -l)" "$(gib "$server")"
done
echo "# every row imaged the same bytes: sha256 $reference"
