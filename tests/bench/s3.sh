#!/usr/bin/env bash
# Benchmark: imaging a device straight into S3. On one loop device and one local S3 server on
# 127.0.0.1, caches dropped before every run and rounds interleaved (as in local.sh), it prints MB/s,
# the ratio to the original design's pipe and peak RSS (median time, highest RSS of the rounds) of:
#   - dc3dd if=DEV hash=sha256 | aws s3 cp - s3://bench/dc3dd.dd      (the original design)
#   - aws s3 cp FILE s3://bench/file.dd of the loop device's backing file (the server's ceiling
#     for the Python client: `aws s3 cp` refuses block devices)
#   - forensic-collector acquire DEV --dest s3://bench/fc ... --s3-force-path-style (defaults otherwise)
#
# Servers: SERVER=s3s (default; s3s-fs, fast, on disk) or SERVER=moto (in memory, slower) runs the
# first two rows. FC_SERVER=auto (default) runs acquire there too if a 64 MiB probe acquisition
# against it succeeds; if not (s3s-fs 0.14.1 implements no ListMultipartUploads and keeps no
# multipart checksums, both of which acquire needs), it prints the probe's error verbatim and runs
# acquire and the two other rows against moto as well, so every ratio compares runs on one server.
# FC_SERVER=s3s|moto forces a server for acquire (a failure then stops the benchmark).
# FC_BINS="NAME=PATH ..." measures those binaries instead of a release build of this checkout, one
# acquire row each, interleaved per round (e.g. the static musl binary against a glibc build).
#
#   sudo tests/bench/s3.sh                          # 1 GiB device, 2 rounds
#   SIZE_MIB=4096 ROUNDS=3 SERVER=moto sudo tests/bench/s3.sh
#   FC_BINS="musl=target/static/forensic-collector-x86_64 glibc=target/dist/forensic-collector" sudo tests/bench/s3.sh
#
# Installs what it needs (idempotent): setup-deps.sh (dc3dd, /usr/bin/time, bc, curl, moto), awscli
# v1 with pip (it honours AWS_ENDPOINT_URL; Debian's awscli 2.9 does not), s3s-fs with cargo install
# (~1.5 min the first time). Not a test: it asserts nothing and needs root; its numbers go in notes.
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-2}
SERVER=${SERVER:-s3s}
FC_SERVER=${FC_SERVER:-auto}
PYTHON=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-1800}         # seconds, any one command
SERVER_TIMEOUT=${SERVER_TIMEOUT:-14400}  # seconds, the servers' lifetime
WORK=${WORK:-$(mktemp -d /var/tmp/fc-bench-s3.XXXXXX)}
BUCKET=bench

case $SERVER in s3s|moto) ;; *) echo "SERVER must be s3s or moto" >&2; exit 2 ;; esac
case $FC_SERVER in auto|s3s|moto) ;; *) echo "FC_SERVER must be auto, s3s or moto" >&2; exit 2 ;; esac
. tests/helpers/as-root.sh
require_root "loop devices and drop_caches"

LOOPS=()
SERVER_PIDS=()
cleanup() {
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
  give_back_target
}
trap cleanup EXIT

# --- what it needs ---------------------------------------------------------------------------
timeout 1800 tests/helpers/setup-deps.sh   # dc3dd, time, bc, curl, moto_server

. tests/bench/tools.sh
ensure_awscli_v1
S3S_FS=""
if [ "$SERVER" = s3s ] || [ "$FC_SERVER" != moto ]; then ensure_s3s_fs; fi

# acquire's rows: NAME -> binary.
declare -A FC_BIN
FC_NAMES=()
if [ -z "${FC_BINS:-}" ]; then
  timeout 1800 cargo build --release --locked -q -p forensic-collector
  FC_BINS="release=$PWD/target/release/forensic-collector"
fi
for spec in $FC_BINS; do
  name=${spec%%=*} path=${spec#*=}
  [ -x "$path" ] || { echo "FC_BINS: $path is not an executable" >&2; exit 2; }
  FC_BIN[$name]=$(realpath "$path")
  FC_NAMES+=("$name")
done
BIN=${FC_BIN[${FC_NAMES[0]}]}   # the probe's

# --- S3 servers on loopback --------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null   # nothing from ~/.aws
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
declare -A PORT
PORT[s3s]=${S3S_PORT:-$(free_port)}
PORT[moto]=${MOTO_PORT:-$(free_port)}
while [ "${PORT[moto]}" = "${PORT[s3s]}" ]; do PORT[moto]=$(free_port); done
url() { echo "http://127.0.0.1:${PORT[$1]}"; }
# aws_at SERVER ARGS...: the aws CLI against that server.
aws_at() { local s=$1; shift; env AWS_ENDPOINT_URL="$(url "$s")" timeout "$RUN_TIMEOUT" "${AWS[@]}" "$@"; }

declare -A STARTED
start_server() {
  local s=$1
  [ -z "${STARTED[$s]:-}" ] || return 0
  case $s in
    s3s)
      mkdir -p "$WORK/s3s"
      timeout "$SERVER_TIMEOUT" "$S3S_FS" --host 127.0.0.1 --port "${PORT[s3s]}" \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/s3s" \
        >"$WORK/s3s.log" 2>&1 &
      ;;
    moto)
      timeout "$SERVER_TIMEOUT" moto_server -H 127.0.0.1 -p "${PORT[moto]}" >"$WORK/moto.log" 2>&1 &
      ;;
  esac
  SERVER_PIDS+=($!)
  local i
  for i in $(seq 1 300); do
    timeout 5 curl -s -o /dev/null "$(url "$s")/" && break
    [ "$i" -lt 300 ] || { echo "$s did not start:" >&2; cat "$WORK/$s.log" >&2; exit 1; }
    sleep 0.1
  done
  aws_at "$s" s3 mb "s3://$BUCKET" >/dev/null
  STARTED[$s]=1
}
# Empties the bucket (every run writes 1 object of the device's size; acquire never overwrites).
empty_bucket() { aws_at "$1" s3 rm --recursive --quiet "s3://$BUCKET/"; }
# check_size SERVER KEY: the object is there with the device's size.
check_size() {
  local n
  n=$(aws_at "$1" s3api head-object --bucket "$BUCKET" --key "$2" --query ContentLength --output text)
  [ "$n" = "$BYTES" ] || { echo "s3://$BUCKET/$2 on $1 has $n bytes, not $BYTES" >&2; exit 1; }
}

# --- timing (as local.sh) ----------------------------------------------------------------------
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
failed() { echo "benchmark command failed: $1" >&2; shift; cat "$@" >&2; exit 1; }

# Runs "$@" with caches dropped; prints "<seconds> <peak_rss_kib> <cpu_seconds>" (user+sys).
timed() {
  drop_caches
  local t0 t1
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/rss" -f '%M %U %S' "$@" >/dev/null 2>"$WORK/stderr" ||
    failed "$*" "$WORK/stderr"
  t1=$(date +%s.%N)
  local rss user sys
  read -r rss user sys < <(tail -1 "$WORK/rss")
  echo "$(echo "$t1 - $t0" | bc -l) $rss $(echo "$user + $sys" | bc -l)"
}

# dc3dd (no of=: the image goes to stdout; of=/dev/stdout fails its "validation probe" on a pipe)
# into `aws s3 cp -`, each under its own /usr/bin/time; prints "<seconds> <dc3dd_kib> <aws_kib>".
timed_pipe() {
  local s=$1 key=$2 t0 t1
  drop_caches
  t0=$(date +%s.%N)
  timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/rss.dc3dd" -f '%M' \
      dc3dd if="$DEV" hash=sha256 2>"$WORK/stderr.dc3dd" |
    env AWS_ENDPOINT_URL="$(url "$s")" timeout "$RUN_TIMEOUT" /usr/bin/time -o "$WORK/rss.aws" -f '%M' \
      "${AWS[@]}" s3 cp - "s3://$BUCKET/$key" >/dev/null 2>"$WORK/stderr.aws" ||
    failed "dc3dd if=$DEV hash=sha256 | aws s3 cp - s3://$BUCKET/$key" "$WORK/stderr.dc3dd" "$WORK/stderr.aws"
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(tail -1 "$WORK/rss.dc3dd") $(tail -1 "$WORK/rss.aws")"
}

median() { sort -n | awk 'NF {a[++n]=$1} END {print a[int((n+1)/2)]}'; }
maxof() { sort -n | tail -1; }

FC_ARGS=(--dest "s3://$BUCKET/fc" --incident BENCH --name run --s3-force-path-style)
FC_KEY=fc/BENCH/disk_evidence/run.image.dd

echo "# forensic-collector S3 benchmark — $(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r)"
echo "# forensic-collector $(git describe --always --dirty 2>/dev/null || echo '?'); $(timeout 60 "${AWS[@]}" --version 2>&1)"
echo "# device: ${SIZE_MIB} MiB random data on a loop device (--direct-io=on), caches dropped per run, ${ROUNDS} round(s), median time, peak RSS = highest of the rounds"
mkdir -p "$WORK"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/source.raw"
DEV=$(losetup -f --show --direct-io=on "$WORK/source.raw"); LOOPS+=("$DEV")
BYTES=$((SIZE_MIB << 20))

start_server "$SERVER"

# --- which server acquire runs against -----------------------------------------------------------
if [ "$FC_SERVER" = auto ]; then
  FC_SERVER=$SERVER
  if [ "$SERVER" != moto ]; then
    head -c 64M /dev/urandom > "$WORK/probe.raw"
    probe=(timeout "$RUN_TIMEOUT" env AWS_ENDPOINT_URL="$(url "$SERVER")" "$BIN" acquire "$WORK/probe.raw" "${FC_ARGS[@]}")
    if "${probe[@]}" >/dev/null 2>"$WORK/probe.err"; then
      empty_bucket "$SERVER"
    else
      rc=$?
      echo "#"
      echo "# acquire against $SERVER FAILED (exit $rc) on a 64 MiB probe file; its stderr, verbatim:"
      echo "#   \$ AWS_ENDPOINT_URL=$(url "$SERVER") $BIN acquire PROBE_FILE ${FC_ARGS[*]}"
      sed 's/^/#   | /' "$WORK/probe.err"
      echo "# -> acquire runs against moto; the dc3dd pipe and aws s3 cp FILE run against moto too."
      echo "#"
      FC_SERVER=moto
    fi
    rm -f "$WORK/probe.raw"
  fi
fi
start_server "$FC_SERVER"
if [ "$SERVER" = s3s ]; then echo "# s3s: $("$S3S_FS" --version) at $(url s3s), data in $WORK/s3s (same disk as the source file)"; fi
if [ "$SERVER" = moto ] || [ "$FC_SERVER" = moto ]; then
  echo "# moto: moto_server $("$PYTHON" -c 'import moto; print(moto.__version__)') at $(url moto), objects in memory"
fi
for name in "${FC_NAMES[@]}"; do
  echo "# acquire ($name): ${FC_BIN[$name]} acquire $DEV ${FC_ARGS[*]}; $("${FC_BIN[$name]}" --version)"
done

# Rows: "tool@server". The pipe and the file copy on every server in use; acquire on its own.
servers=("$SERVER")
[ "$FC_SERVER" = "$SERVER" ] || servers+=("$FC_SERVER")
rows=()
for s in "${servers[@]}"; do rows+=("pipe@$s" "file@$s"); done
for name in "${FC_NAMES[@]}"; do rows+=("acquire:$name@$FC_SERVER"); done

declare -A SECS RSS CPU RSS_DC3DD RSS_AWS
for r in "${rows[@]}"; do SECS[$r]=""; RSS[$r]=""; CPU[$r]=""; RSS_DC3DD[$r]=""; RSS_AWS[$r]=""; done
for _ in $(seq 1 "$ROUNDS"); do
  for r in "${rows[@]}"; do
    s=${r#*@}
    cpu=-
    case ${r%@*} in
      pipe)
        out=$(timed_pipe "$s" dc3dd.dd); read -r secs a b <<<"$out"
        RSS_DC3DD[$r]+="$a "; RSS_AWS[$r]+="$b "; rss=$((a + b)); key=dc3dd.dd ;;
      file)
        out=$(timed env AWS_ENDPOINT_URL="$(url "$s")" "${AWS[@]}" s3 cp "$WORK/source.raw" "s3://$BUCKET/file.dd")
        read -r secs rss cpu <<<"$out"; key=file.dd ;;
      acquire:*)
        name=${r%@*}; name=${name#acquire:}
        out=$(timed env AWS_ENDPOINT_URL="$(url "$s")" "${FC_BIN[$name]}" acquire "$DEV" "${FC_ARGS[@]}")
        read -r secs rss cpu <<<"$out"; key=$FC_KEY ;;
    esac
    check_size "$s" "$key"
    empty_bucket "$s"
    SECS[$r]+="$secs "; RSS[$r]+="$rss "; CPU[$r]+="$cpu "
  done
done

mbps() { echo "$BYTES / $1 / 1000000" | bc -l; }
label() {
  case ${1%@*} in
    pipe) echo "dc3dd hash=sha256 | aws s3 cp -" ;;
    file) echo "aws s3 cp FILE (backing file)" ;;
    acquire:*) local name=${1%@*}; echo "acquire --dest s3:// (${name#acquire:})" ;;
  esac
}
echo
printf '%-42s %-6s %8s %11s %14s %13s %10s\n' tool server "MB/s" "MB/s range" "x dc3dd pipe" "peak RSS MiB" "CPU s/GiB"
for r in "${rows[@]}"; do
  s=${r#*@}
  secs=$(echo "${SECS[$r]}" | tr ' ' '\n' | median)
  fastest=$(echo "${SECS[$r]}" | tr ' ' '\n' | sort -n | awk 'NF {print; exit}')
  slowest=$(echo "${SECS[$r]}" | tr ' ' '\n' | maxof)
  pipe=$(echo "${SECS[pipe@$s]}" | tr ' ' '\n' | median)
  rss=$(echo "${RSS[$r]}" | tr ' ' '\n' | maxof)
  cpu=$(echo "${CPU[$r]}" | tr ' ' '\n' | grep -v '^-$' | median)
  cpu_gib=-
  [ -z "$cpu" ] || cpu_gib=$(printf '%.2f' "$(echo "$cpu * 1024 / $SIZE_MIB" | bc -l)")
  printf '%-42s %-6s %8.1f %11s %14.2f %13.1f %10s\n' "$(label "$r")" "$s" "$(mbps "$secs")" \
    "$(printf '%.0f-%.0f' "$(mbps "$slowest")" "$(mbps "$fastest")")" \
    "$(echo "$pipe / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$cpu_gib"
done
for s in "${servers[@]}"; do
  printf '# peak RSS of the pipe on %s is the sum of dc3dd (%.1f MiB) and aws (%.1f MiB)\n' "$s" \
    "$(echo "$(echo "${RSS_DC3DD[pipe@$s]}" | tr ' ' '\n' | maxof) / 1024" | bc -l)" \
    "$(echo "$(echo "${RSS_AWS[pipe@$s]}" | tr ' ' '\n' | maxof) / 1024" | bc -l)"
done
echo "# x dc3dd pipe: the row's speed over the dc3dd pipe's on the same server"
echo "# CPU s/GiB: user+sys of the measured command (median of the rounds); the pipe's two ends are not summed (-)"
