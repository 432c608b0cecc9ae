#!/usr/bin/env bash
# Benchmark: detection latency of the daemon — from the moment a disk's by-id link appears (what
# udev does when EBS attaches a volume) to the imaging process's first read of that disk. Each
# round starts `forensic-collector watch` (release build) against moto (S3 + CloudWatch Logs) and the
# IMDSv2 stand-in on 127.0.0.1, waits for readiness, creates the link, and reads the timestamps of
# the daemon's JSON log. Prints each round and min/median/max. Target: < 1 s.
#
#   sudo tests/bench/detect.sh            # 5 rounds, 64 MiB device
#   ROUNDS=10 SETTLE_MS=100 sudo tests/bench/detect.sh
#
# Not a test: it asserts nothing and needs root; its numbers go in notes.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-5}
SIZE_MIB=${SIZE_MIB:-64}
SETTLE_MS=${SETTLE_MS:-300}   # the shipped default
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /var/tmp/fc-bench-detect.XXXXXX)
. tests/helpers/as-root.sh
require_root "loop devices"

PIDS=()
LOOP=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
  rm -rf "$WORK"
  give_back_target
}
trap cleanup EXIT

timeout 1800 tests/helpers/setup-deps.sh
timeout 1800 cargo build --release --locked -q -p forensic-collector
BIN=$PWD/target/release/forensic-collector

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
MOTO_PORT=$(free_port)
timeout 3600 moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break
  [ "$i" -lt 300 ] || { echo "moto did not start" >&2; cat "$WORK/moto.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/bench" >/dev/null

printf '#!/bin/bash\necho "DESTINATION_BUCKET=bench" >> /etc/environment\necho "INCIDENT_ID=IR-BENCH" >> /etc/environment\n' \
  >"$WORK/user-data"
coproc IMDS { exec timeout 3600 "$PYTHON" tests/helpers/imds.py --user-data "$WORK/user-data" \
  --instance-id i-0bench0000000000 --log "$WORK/imds.log"; }
PIDS+=("$IMDS_PID")
read -r ready port <&"${IMDS[0]}"
[ "$ready" = ready ] || { echo "imds.py did not start" >&2; exit 1; }

head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/disk.img"
LOOP=$(losetup -f --show --direct-io=on "$WORK/disk.img")

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:$port"
unset AWS_EC2_METADATA_DISABLED FORENSIC_COLLECTOR_CONFIG

latencies=()
for round in $(seq 1 "$ROUNDS"); do
  root=$WORK/disk-$round
  mkdir -p "$root/by-id"
  cat >"$WORK/config.toml" <<EOF
[job]
expected_volumes = 1
[watch]
disk_root = "$root"
on_complete = "exit"
settle_ms = $SETTLE_MS
[s3]
force_path_style = true
[cloudwatch]
flush_timeout_secs = 5
EOF
  blockdev --setrw "$LOOP"
  log=$WORK/daemon-$round.log
  timeout 600 "$BIN" --json watch --config "$WORK/config.toml" 2>"$log" &
  daemon=$!
  for i in $(seq 1 600); do
    grep -q 'readiness signalled' "$log" && break
    kill -0 "$daemon" 2>/dev/null || { echo "the daemon died:" >&2; cat "$log" >&2; exit 1; }
    [ "$i" -lt 600 ] || { echo "no readiness within 60 s" >&2; exit 1; }
    sleep 0.1
  done
  linked=$(date +%s.%N)
  ln -s "$LOOP" "$root/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc$(printf "%013d" "$round")"
  wait "$daemon" || { echo "the daemon failed:" >&2; tail -20 "$log" >&2; exit 1; }
  ms=$("$PYTHON" - "$log" "$linked" <<'PY'
import datetime, json, sys
log, linked = sys.argv[1], float(sys.argv[2])
for line in open(log):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("fields", {}).get("message") == "Source opened read-only.":
        stamp = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        print(round((stamp.timestamp() - linked) * 1000))
        break
PY
)
  [ -n "$ms" ] || { echo "no first read in the log of round $round" >&2; exit 1; }
  detect=$(grep -o '"detection_ms":"\?[0-9]*' "$log" | head -1 | tr -dc '0-9')
  echo "round $round: link → settled disk ${detect:-?} ms, link → first read $ms ms"
  latencies+=("$ms")
  curl -s -o /dev/null -X DELETE "http://127.0.0.1:$MOTO_PORT/bench/IR-BENCH" || true
done

printf '%s\n' "${latencies[@]}" | sort -n | awk -v settle="$SETTLE_MS" '
  { v[NR] = $1 }
  END { printf "link → first read over %d rounds (settle %d ms): min %d ms, median %d ms, max %d ms (target < 1000 ms)\n",
        NR, settle, v[1], v[int((NR + 1) / 2)], v[NR] }'
