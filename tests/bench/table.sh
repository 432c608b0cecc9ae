#!/usr/bin/env bash
# Benchmark: the table of issue 12 in one run. Every row says what it ran; every figure comes from
# this run, on this machine.
#
# Local rows, on a LOCAL_MIB loop device of random data (--direct-io=on), caches dropped per run:
#   dd read      dd if=DEV iflag=direct bs=8M of=/dev/null
#   dd copy      dd if=DEV iflag=direct oflag=direct bs=8M of=FILE
#   dc3dd        dc3dd if=DEV hash=sha256 of=FILE
#   acquire      forensic-collector acquire DEV --out DIR (defaults: sha256 + blake3 + 1 GiB BLAKE3 pieces)
#   acquire p0   the same with --piece-size 0
#   *_shm        dd copy and acquire (defaults) writing to tmpfs (/dev/shm): without the output disk's write rate
# S3 rows, on an S3_MIB loop device, through tests/src/bin/linkproxy.rs (each TCP connection capped
# at RATE MB/s upload, RTT_MS round trip; a fresh proxy per run) in front of the local S3 server,
# for each RATE in RATES:
#   aws cp FILE  aws s3 cp BACKING_FILE s3://…      (awscli v1: 10 requests at once, 8 MiB parts)
#   dc3dd pipe   dc3dd if=DEV hash=sha256 | aws s3 cp - s3://…   (the original design)
#   acquire      forensic-collector acquire DEV --dest s3://… --s3-force-path-style (defaults)
#   acquire p16  the same with --parts-in-flight 16
#
# Columns: MB/s (10^6 bytes/s, from the median wall time of the rounds) and the rounds' range, ratios (local rows: to `dd read`;
# S3 rows: to `aws cp FILE` and to `dc3dd pipe` at the same rate), CPU-s/GiB (user+sys of the
# measured processes and their children, from /usr/bin/time, median; the loop device's kernel
# threads and the S3 server are not included), peak RSS (highest of the rounds; a pipe's is the sum
# of its two ends), and for S3 rows the most connections open at once through the proxy and the
# proxy's and the server's own CPU-s/GiB (they share the 2 cores with the measured process).
#
# Servers, as in s3.sh: SERVER=s3s (default; s3s-fs 0.14.1, fast, on disk) or moto. If acquire
# fails a 64 MiB probe against s3s-fs (0.14.1 has no ListMultipartUploads and keeps no multipart
# checksums, which acquire needs) the probe's error is printed and EVERY S3 row runs against moto,
# so that all S3 ratios compare runs on one server.
#
#   sudo tests/bench/table.sh                                     # 2 GiB local, 512 MiB S3, 4 and 8 MB/s
#   LOCAL_MIB=1024 S3_MIB=256 RATES="8" ROUNDS=1 sudo tests/bench/table.sh
#   SKIP_LOCAL=1 sudo tests/bench/table.sh                        # S3 rows only (SKIP_S3=1: local only)
#
# Not a test: it asserts nothing (beyond each upload's size) and needs root; its numbers go in
# tests/bench/README.md and issue notes. Installs what it needs as s3.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."

LOCAL_MIB=${LOCAL_MIB:-2048}
S3_MIB=${S3_MIB:-512}
RATES=${RATES:-"4 8"}        # MB/s per connection
RTT_MS=${RTT_MS:-20}
ROUNDS=${ROUNDS:-2}
SKIP_LOCAL=${SKIP_LOCAL:-0}
SKIP_S3=${SKIP_S3:-0}
SERVER=${SERVER:-s3s}
PYTHON=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}         # seconds, any one command
SERVER_TIMEOUT=${SERVER_TIMEOUT:-14400}  # seconds, the servers' lifetime
WORK=${WORK:-$(mktemp -d /var/tmp/fc-bench-table.XXXXXX)}
BUCKET=bench

case $SERVER in s3s|moto) ;; *) echo "SERVER must be s3s or moto" >&2; exit 2 ;; esac
. tests/helpers/as-root.sh
require_root "loop devices and drop_caches"

LOOPS=()
PIDS=()
SHM=""
cleanup() {
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  [ -z "${PROXY_PID:-}" ] || PIDS+=("$PROXY_PID")
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
  [ -z "${SHM:-}" ] || rm -rf "$SHM"
  give_back_target
}
trap cleanup EXIT

# --- what it needs (as s3.sh) ---------------------------------------------------------------------
timeout 1800 tests/helpers/setup-deps.sh >/dev/null   # dc3dd, time, bc, curl, moto_server
. tests/bench/tools.sh
S3S_FS=""
if [ "$SKIP_S3" != 1 ]; then
  ensure_awscli_v1
  if [ "$SERVER" = s3s ]; then ensure_s3s_fs; fi
fi
# Two builds, one per package: building them together would unify tokio's features and make the
# measured binary differ from the one `cargo build -p forensic-collector` gives.
timeout 1800 cargo build --release --locked -q -p forensic-collector
timeout 1800 cargo build --release --locked -q -p collector-e2e --bin linkproxy
BIN=$PWD/target/release/forensic-collector
LINKPROXY=$PWD/target/release/linkproxy

# --- measuring ------------------------------------------------------------------------------------
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
failed() { echo "benchmark command failed: $1" >&2; shift; cat "$@" >&2; exit 1; }
TICK=$(getconf CLK_TCK)
# ticks PID: user+sys clock ticks used so far by PID and its descendants (0 once it is gone).
ticks() {
  local pid=$1 t c
  t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  for c in $(ps -o pid= --ppid "$pid" 2>/dev/null); do t=$((t + $(ticks "$c"))); done
  echo "$t"
}
now() { date +%s.%N; }
# /usr/bin/time's record of one process (tree): "<user+sys seconds> <peak RSS KiB>".
TIME_FMT='%U %S %M'
usage_of() { awk 'END {printf "%s %s\n", $1 + $2, $3}' "$1"; }

# timed CMD...: runs it with caches dropped; prints "<seconds> <cpu_s> <rss_kib>".
timed() {
  drop_caches
  local t0 t1
  t0=$(now)
  timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/usage" -f "$TIME_FMT" "$@" >/dev/null 2>"$WORK/stderr" ||
    failed "$*" "$WORK/stderr"
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(usage_of "$WORK/usage")"
}
# timed_pipe URL KEY: dc3dd (image on stdout: of=/dev/stdout fails its probe on a pipe) into
# `aws s3 cp -`, each under /usr/bin/time; prints "<seconds> <cpu_s> <rss_kib>" (sums of both).
timed_pipe() {
  local url=$1 key=$2 t0 t1 a b c d
  drop_caches
  t0=$(now)
  timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/usage.dc3dd" -f "$TIME_FMT" \
      dc3dd if="$DEV" hash=sha256 2>"$WORK/stderr.dc3dd" |
    env AWS_ENDPOINT_URL="$url" timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/usage.aws" -f "$TIME_FMT" \
      "${AWS[@]}" s3 cp - "s3://$BUCKET/$key" >/dev/null 2>"$WORK/stderr.aws" ||
    failed "dc3dd if=$DEV hash=sha256 | aws s3 cp - s3://$BUCKET/$key" "$WORK/stderr.dc3dd" "$WORK/stderr.aws"
  t1=$(now)
  read -r a b <<<"$(usage_of "$WORK/usage.dc3dd")"
  read -r c d <<<"$(usage_of "$WORK/usage.aws")"
  echo "$(echo "$t1 - $t0" | bc -l) $(echo "$a + $c" | bc -l) $((b + d))"
}

median() { tr ' ' '\n' | sort -g | awk 'NF {a[++n]=$1} END {print (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2}'; }
minof() { tr ' ' '\n' | sort -g | awk 'NF {print; exit}'; }
maxof() { tr ' ' '\n' | sort -g | awk 'NF {m=$1} END {print m}'; }
# Per-row results: space-separated lists, one value per round.
declare -A SECS CPU RSS CONNS PROXY_CPU SERVER_CPU LABEL
add() { # add ROW SECS CPU RSS
  SECS[$1]+="$2 "; CPU[$1]+="$3 "; RSS[$1]+="$4 "
}

echo "# forensic-collector benchmark table (issue 12) — $(date -u +%FT%TZ), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "# forensic-collector $(git describe --always --dirty 2>/dev/null || echo '?'); ${ROUNDS} round(s) per row, interleaved; caches dropped before every run; MB/s = 10^6 bytes/s from the median wall time (of 2: their mean)"
mkdir -p "$WORK/out"
echo "# work directory and output files: $WORK ($(df --output=fstype "$WORK" | tail -1), $(df --output=source "$WORK" | tail -1))"

# --- local rows -----------------------------------------------------------------------------------
# The *_shm rows write to tmpfs (/dev/shm): the same commands without the output disk's write
# rate, which on this machine (600-800 MB/s) bounds every row that writes a file.
LOCAL_ROWS=(dd_read dd_copy dc3dd acquire acquire_p0 dd_copy_shm acquire_shm)
LABEL[dd_read]="dd iflag=direct bs=8M of=/dev/null"
LABEL[dd_copy]="dd iflag=direct oflag=direct bs=8M of=FILE"
LABEL[dc3dd]="dc3dd hash=sha256 of=FILE"
LABEL[acquire]="acquire --out DIR (defaults)"
LABEL[acquire_p0]="acquire --out DIR --piece-size 0"
LABEL[dd_copy_shm]="dd iflag=direct bs=8M of=TMPFS_FILE"
LABEL[acquire_shm]="acquire --out TMPFS_DIR (defaults)"
if [ "$SKIP_LOCAL" != 1 ]; then
  echo "# local: ${LOCAL_MIB} MiB of random data on a loop device (--direct-io=on)"
  head -c $((LOCAL_MIB << 20)) /dev/urandom > "$WORK/local.raw"
  DEV=$(losetup -f --show --direct-io=on "$WORK/local.raw"); LOOPS+=("$DEV")
  SHM=$(mktemp -d /dev/shm/fc-bench.XXXXXX)
  for _ in $(seq 1 "$ROUNDS"); do
    for r in "${LOCAL_ROWS[@]}"; do
      rm -rf "${WORK:?}/out"/* "${SHM:?}"/*
      case $r in
        dd_read) out=$(timed dd if="$DEV" iflag=direct bs=8M of=/dev/null) ;;
        dd_copy) out=$(timed dd if="$DEV" iflag=direct oflag=direct bs=8M of="$WORK/out/dd.img") ;;
        dc3dd) out=$(timed dc3dd if="$DEV" hash=sha256 of="$WORK/out/dc3dd.img") ;;
        acquire) out=$(timed "$BIN" acquire "$DEV" --out "$WORK/out" --name bench) ;;
        acquire_p0) out=$(timed "$BIN" acquire "$DEV" --out "$WORK/out" --name bench --piece-size 0) ;;
        dd_copy_shm) out=$(timed dd if="$DEV" iflag=direct bs=8M of="$SHM/dd.img") ;;
        acquire_shm) out=$(timed "$BIN" acquire "$DEV" --out "$SHM" --name bench) ;;
      esac
      read -r s c m <<<"$out"; add "$r" "$s" "$c" "$m"
    done
  done
  rm -rf "${WORK:?}/out"/* "$WORK/local.raw" "${SHM:?}"
  losetup -d "$DEV"; LOOPS=()
fi

# --- S3 rows --------------------------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null   # nothing from ~/.aws
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
declare -A PORT SERVER_PID
url() { echo "http://127.0.0.1:${PORT[$1]}"; }
aws_at() { local u=$1; shift; env AWS_ENDPOINT_URL="$u" timeout "$RUN_TIMEOUT" "${AWS[@]}" "$@"; }
start_server() {
  local s=$1 i
  [ -z "${SERVER_PID[$s]:-}" ] || return 0
  PORT[$s]=$(free_port)
  case $s in
    s3s)
      mkdir -p "$WORK/s3s"
      timeout "$SERVER_TIMEOUT" "$S3S_FS" --host 127.0.0.1 --port "${PORT[s3s]}" \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/s3s" \
        >"$WORK/s3s.log" 2>&1 & ;;
    moto)
      timeout "$SERVER_TIMEOUT" moto_server -H 127.0.0.1 -p "${PORT[moto]}" >"$WORK/moto.log" 2>&1 & ;;
  esac
  SERVER_PID[$s]=$!; PIDS+=($!)
  for i in $(seq 1 300); do
    timeout 5 curl -s -o /dev/null "$(url "$s")/" && break
    [ "$i" -lt 300 ] || { echo "$s did not start:" >&2; cat "$WORK/$s.log" >&2; exit 1; }
    sleep 0.1
  done
  aws_at "$(url "$s")" s3 mb "s3://$BUCKET" >/dev/null
}

# The capped link: a fresh linkproxy per run, so that its counters and CPU are the run's own.
PROXY_PID=""
start_proxy() { # start_proxy SERVER RATE: sets PROXY_URL
  local line
  exec {PROXY_FD}< <(exec "$LINKPROXY" --upstream "127.0.0.1:${PORT[$1]}" --rate-mbps "$2" \
                        --rtt-ms "$RTT_MS" 2>"$WORK/proxy.err")
  PROXY_PID=$!
  read -r -t 10 line <&"$PROXY_FD" || { echo "linkproxy did not start:" >&2; cat "$WORK/proxy.err" >&2; exit 1; }
  PROXY_URL="http://127.0.0.1:${line#ready }"
}
# stop_proxy: sets PROXY_CONNS (most connections open at once) and PROXY_SECS (its CPU seconds).
stop_proxy() {
  local t i
  t=$(ticks "$PROXY_PID")
  kill -TERM "$PROXY_PID"
  for i in $(seq 1 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.05; done
  exec {PROXY_FD}<&-
  PROXY_PID=""
  PROXY_CONNS=$(sed -n 's/.*max_concurrent=\([0-9]*\).*/\1/p' "$WORK/proxy.err" | tail -1)
  PROXY_SECS=$(echo "$t / $TICK" | bc -l)
}

FC_ARGS=(--dest "s3://$BUCKET/fc" --incident BENCH --name run --s3-force-path-style)
FC_KEY=fc/BENCH/disk_evidence/run.image.dd
check_size() { # check_size URL KEY
  local n
  n=$(aws_at "$1" s3api head-object --bucket "$BUCKET" --key "$2" --query ContentLength --output text)
  [ "$n" = "$S3_BYTES" ] || { echo "s3://$BUCKET/$2 has $n bytes, not $S3_BYTES" >&2; exit 1; }
}

S3_KINDS=(file pipe acquire acquire_p16)
S3_ROWS=()
if [ "$SKIP_S3" != 1 ]; then
  start_server "$SERVER"
  S3S=$SERVER
  if [ "$SERVER" = s3s ]; then
    head -c 64M /dev/urandom > "$WORK/probe.raw"
    if env AWS_ENDPOINT_URL="$(url s3s)" timeout "$RUN_TIMEOUT" "$BIN" acquire "$WORK/probe.raw" "${FC_ARGS[@]}" \
         >/dev/null 2>"$WORK/probe.err"; then
      aws_at "$(url s3s)" s3 rm --recursive --quiet "s3://$BUCKET/"
      echo "# acquire passed a 64 MiB probe against s3s-fs: every S3 row runs there"
    else
      echo "# acquire against s3s-fs FAILED (exit $?) on a 64 MiB probe; its stderr, verbatim:"
      sed 's/^/#   | /' "$WORK/probe.err"
      echo "# -> every S3 row runs against moto (one server for all ratios)"
      S3S=moto
      start_server moto
    fi
    rm -f "$WORK/probe.raw"
  fi
  case $S3S in
    s3s) echo "# S3 server: $("$S3S_FS" --version) at $(url s3s), data in $WORK/s3s (same disk as the source)" ;;
    moto) echo "# S3 server: moto_server $("$PYTHON" -c 'import moto; print(moto.__version__)') at $(url moto), objects in memory" ;;
  esac
  echo "# S3: ${S3_MIB} MiB of random data on a loop device (--direct-io=on); link: linkproxy, each connection's upload capped at RATE MB/s, ${RTT_MS} ms round trip; $(timeout 60 "${AWS[@]}" --version 2>&1)"
  head -c $((S3_MIB << 20)) /dev/urandom > "$WORK/s3.raw"
  DEV=$(losetup -f --show --direct-io=on "$WORK/s3.raw"); LOOPS+=("$DEV")
  S3_BYTES=$((S3_MIB << 20))
  for rate in $RATES; do
    for k in "${S3_KINDS[@]}"; do S3_ROWS+=("$k@$rate"); done
  done
  LABEL[s3:file]="aws s3 cp FILE"
  LABEL[s3:pipe]="dc3dd hash=sha256 | aws s3 cp -"
  LABEL[s3:acquire]="acquire --dest s3:// (defaults)"
  LABEL[s3:acquire_p16]="acquire --dest s3:// --parts-in-flight 16"
  for _ in $(seq 1 "$ROUNDS"); do
    for r in "${S3_ROWS[@]}"; do
      rate=${r#*@}
      start_proxy "$S3S" "$rate"
      st0=$(ticks "${SERVER_PID[$S3S]}")
      case ${r%@*} in
        file) key=file.dd; out=$(timed env AWS_ENDPOINT_URL="$PROXY_URL" "${AWS[@]}" s3 cp "$WORK/s3.raw" "s3://$BUCKET/$key") ;;
        pipe) key=dc3dd.dd; out=$(timed_pipe "$PROXY_URL" "$key") ;;
        acquire) key=$FC_KEY; out=$(timed env AWS_ENDPOINT_URL="$PROXY_URL" "$BIN" acquire "$DEV" "${FC_ARGS[@]}") ;;
        acquire_p16) key=$FC_KEY; out=$(timed env AWS_ENDPOINT_URL="$PROXY_URL" "$BIN" acquire "$DEV" "${FC_ARGS[@]}" --parts-in-flight 16) ;;
      esac
      st1=$(ticks "${SERVER_PID[$S3S]}")
      stop_proxy
      read -r s c m <<<"$out"; add "$r" "$s" "$c" "$m"
      CONNS[$r]+="$PROXY_CONNS "; PROXY_CPU[$r]+="$PROXY_SECS "; SERVER_CPU[$r]+="$(echo "($st1 - $st0) / $TICK" | bc -l) "
      check_size "$(url "$S3S")" "$key"
      aws_at "$(url "$S3S")" s3 rm --recursive --quiet "s3://$BUCKET/"
    done
  done
fi

# --- the table ------------------------------------------------------------------------------------
GIB=1073741824
per_gib() { echo "$1 * $GIB / $2" | bc -l; }
FMT='%-42s %-7s %7s %11s %6s %7s %7s %9s %7s %5s %11s %12s\n'
f1() { printf '%.1f' "$(echo "$1" | bc -l)"; }
f2() { printf '%.2f' "$(echo "$1" | bc -l)"; }
# range BYTES ROW: "lowest-highest" MB/s of the row's rounds.
range() {
  printf '%.0f-%.0f' "$(echo "$1 / $(echo "${SECS[$2]}" | maxof) / 1000000" | bc -l)" \
    "$(echo "$1 / $(echo "${SECS[$2]}" | minof) / 1000000" | bc -l)"
}
echo
# shellcheck disable=SC2059 # FMT is this script's own format
printf "$FMT" row link "MB/s" "MB/s range" "x dd" "x awscp" "x dc3dd" "CPU s/GiB" "RSS MiB" conns "proxy s/GiB" "server s/GiB"
if [ "$SKIP_LOCAL" != 1 ]; then
  bytes=$((LOCAL_MIB << 20))
  dd_s=$(echo "${SECS[dd_read]}" | median)
  for r in "${LOCAL_ROWS[@]}"; do
    s=$(echo "${SECS[$r]}" | median)
    # shellcheck disable=SC2059
    printf "$FMT" "${LABEL[$r]}" local "$(f1 "$bytes / $s / 1000000")" "$(range "$bytes" "$r")" "$(f2 "$dd_s / $s")" - - \
      "$(f2 "$(per_gib "$(echo "${CPU[$r]}" | median)" "$bytes")")" \
      "$(f1 "$(echo "${RSS[$r]}" | maxof) / 1024")" - - -
  done
fi
if [ "$SKIP_S3" != 1 ]; then
  for r in "${S3_ROWS[@]}"; do
    rate=${r#*@}
    s=$(echo "${SECS[$r]}" | median)
    file_s=$(echo "${SECS[file@$rate]}" | median)
    pipe_s=$(echo "${SECS[pipe@$rate]}" | median)
    # shellcheck disable=SC2059
    printf "$FMT" "${LABEL[s3:${r%@*}]}" "${rate}MB/s" "$(f1 "$S3_BYTES / $s / 1000000")" "$(range "$S3_BYTES" "$r")" - \
      "$(f2 "$file_s / $s")" "$(f2 "$pipe_s / $s")" \
      "$(f2 "$(per_gib "$(echo "${CPU[$r]}" | median)" "$S3_BYTES")")" \
      "$(f1 "$(echo "${RSS[$r]}" | maxof) / 1024")" "$(echo "${CONNS[$r]}" | maxof)" \
      "$(f2 "$(per_gib "$(echo "${PROXY_CPU[$r]}" | median)" "$S3_BYTES")")" \
      "$(f2 "$(per_gib "$(echo "${SERVER_CPU[$r]}" | median)" "$S3_BYTES")")"
  done
fi
cat <<EOF
# link: local = loop device to /dev/null or a file on $WORK; N MB/s = through linkproxy to the
#   ${S3S:-} S3 server, each connection's upload capped at N MB/s, ${RTT_MS} ms round trip
# x dd: local MB/s over dd read's; x awscp / x dc3dd: S3 MB/s over aws s3 cp FILE's / the dc3dd pipe's at that cap
# CPU s/GiB: user+sys of the measured process tree (both ends of a pipe) per GiB moved, median;
#   not counted: the loop device's kernel threads, the S3 server, the proxy (their own columns)
# RSS MiB: peak resident set, highest of the rounds (a pipe: dc3dd's + aws's)
# conns: most TCP connections open at once through the proxy during the run
EOF
if [ "$SKIP_S3" != 1 ]; then
  echo
  echo "# the S3 upload plan at the defaults (part buffers; peak RSS adds the read buffers and the process):"
  timeout 600 cargo run --release --locked -q -p imaging --example s3_plan -- 16GiB 1TiB 16TiB
fi
