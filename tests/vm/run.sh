#!/usr/bin/env bash
# The VM lab: the collector daemon as it runs on EC2 — real udev links, a real NVMe device whose
# serial is an EBS volume ID, the systemd unit, the IMDSv2 user data of the original flow, and
# `systemctl poweroff` at the end — in a QEMU guest on this machine.
#
#   sudo tests/vm/run.sh                      # scenario 1: a clean 64 MiB disk
#   sudo tests/vm/run.sh --bad-sector [N]     # scenario 2: reads of sector N fail (default: the
#                                             # first non-zero sector from 70001 on; 2048 fails
#                                             # udev's probe too: no by-label link, only by-id)
#   SCENARIO=bad-sector sudo tests/vm/run.sh  # the same, from the environment
#   KEEP_WORK=1 …                             # keep the run directory (console log, moto, imds)
#
# What it does:
#  1. installs QEMU, mmdebstrap, socat (apt) and moto (tests/helpers/setup-deps.sh) if missing,
#     builds the release binary, builds or reuses the guest image (tests/vm/build-image.sh);
#  2. starts moto (S3 + CloudWatch Logs, bucket created) and tests/helpers/imds.py (serving the
#     original flow's shell-script user data) on 127.0.0.1 only;
#  3. boots the guest with user networking restrict=on: it reaches 10.0.2.100:80 (moto) and
#     10.0.2.101:80 (imds) through guestfwd rules and nothing else; waits for the readiness
#     message in CloudWatch, read back from moto; hot-plugs the NVMe disk over QMP;
#  4. waits for the guest to power itself off (QEMU exits 0), then checks the evidence and the
#     reports from the host (tests/vm/evidence.py) and prints the timings.
# Every wait is bounded; QEMU, the servers and the run directory are cleaned up on exit.
# A lab script (≈ 1-2 min under TCG), not part of tests/run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."

SCENARIO=${SCENARIO:-clean}
BAD_SECTOR=${BAD_SECTOR:-auto}
while [ $# -gt 0 ]; do
  case $1 in
    --bad-sector) SCENARIO=bad-sector
      if [[ ${2:-} =~ ^[0-9]+$ ]]; then BAD_SECTOR=$2; shift; fi ;;
    --clean) SCENARIO=clean ;;
    *) echo "usage: run.sh [--clean | --bad-sector [SECTOR]]" >&2; exit 2 ;;
  esac
  shift
done
case $SCENARIO in clean|bad-sector) ;; *) echo "run.sh: SCENARIO is clean or bad-sector" >&2; exit 2 ;; esac
. tests/helpers/as-root.sh
require_root "mmdebstrap, mkfs and QEMU"

# The job, as the flow's user data gives it. IMAGE_NAME is the suspect's original volume; the
# disk attached to the collector is a copy of it with another ID (the NVMe serial below).
BUCKET=evidence-vm
PREFIX=cases
INCIDENT=IR-VM-1
IMAGE_NAME=vol-0fedcba9876543210
SERIAL=vol0123456789abcdef0
VOLUME_ID=vol-0123456789abcdef0
DISK_MIB=64
LABEL=FORENSIC1
# Time limits, generous for TCG on 2 busy cores (measured: boot ≈ 25-35 s, capture ≈ 10 s).
READY_TIMEOUT=${READY_TIMEOUT:-240}
EXIT_TIMEOUT=${EXIT_TIMEOUT:-240}
# ENODATA: what QEMU's NVMe makes of any blkdebug read error, as the guest kernel reports it.
NVME_ERRNO=61

WORK=$(mktemp -d /var/tmp/fc-vm-run.XXXXXX)
PIDS=()
QEMU_PID=
cleanup() {
  local status=$?
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$status" -ne 0 ] && [ -f "$WORK/console.log" ]; then
    echo "--- the guest's console (last 40 lines) ---" >&2
    tail -40 "$WORK/console.log" | tr -d '\r' >&2
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "run directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
  give_back_target
}
trap cleanup EXIT
stamp() { date +%s.%N; }
say() { echo "[vm] $*"; }

# --- 1. what the lab needs ---------------------------------------------------------------------
need=()
for p in qemu-system-x86 mmdebstrap socat e2fsprogs binutils; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  apt-get -qq -o DPkg::Lock::Timeout=300 update
  # qemu-utils from backports (10.x) breaks bookworm's qemu-system-common (7.2): pin it to the
  # version of qemu-system-x86 that will be installed.
  qemu=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
  DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 install -y \
    --no-install-recommends --allow-downgrades "${need[@]}" "qemu-utils=$qemu" >"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log" >&2; echo "run.sh: apt-get failed" >&2; exit 1; }
fi
timeout 1800 tests/helpers/setup-deps.sh
PYTHON=${PYTHON:-python3}
say "cargo build --release"
timeout 1800 cargo build --release --locked -q -p forensic-collector
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/forensic-collector
t=$(stamp)
IMG=$(timeout 1200 tests/vm/build-image.sh "$BIN")
say "guest image $IMG ($(printf '%.1f' "$(echo "$(stamp) - $t" | bc)") s)"

# --- 2. the stand-ins, loopback only -----------------------------------------------------------
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
MOTO_PORT=$(free_port)
MOTO=http://127.0.0.1:$MOTO_PORT
timeout 3600 moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 300); do
  curl -s -o /dev/null "$MOTO/" && break
  [ "$i" -lt 300 ] || { echo "run.sh: moto did not start" >&2; cat "$WORK/moto.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf -X PUT "$MOTO/$BUCKET" >/dev/null

# The original flow's user data: a script that appends the job to /etc/environment. The daemon
# parses it, never runs it.
cat >"$WORK/user-data" <<EOF
#!/bin/bash
echo "DESTINATION_BUCKET=$BUCKET" >> /etc/environment
echo "DESTINATION_PREFIX=$PREFIX" >> /etc/environment
echo "INCIDENT_ID=$INCIDENT" >> /etc/environment
echo "IMAGE_NAME=$IMAGE_NAME" >> /etc/environment
EOF
coproc IMDS { exec timeout 3600 "$PYTHON" tests/helpers/imds.py --user-data "$WORK/user-data" \
  --log "$WORK/imds.log"; }
PIDS+=("$IMDS_PID")
read -r -t 30 ready IMDS_PORT <&"${IMDS[0]}" || true
[ "${ready:-}" = ready ] || { echo "run.sh: imds.py did not start" >&2; exit 1; }

# The suspect disk: ext4, labelled, mostly random data so that a zero-filled sector shows.
mkdir -p "$WORK/content"
head -c $(((DISK_MIB - 16) << 20)) /dev/urandom >"$WORK/content/evidence.bin"
echo "forensic-collector VM lab, incident $INCIDENT" >"$WORK/content/README"
truncate -s "${DISK_MIB}M" "$WORK/disk.img"
mkfs.ext4 -q -F -L "$LABEL" -d "$WORK/content" "$WORK/disk.img"
rm -rf "$WORK/content"
ERR_ARGS=()
if [ "$SCENARIO" = bad-sector ]; then
  pick=(); [ "$BAD_SECTOR" = auto ] || pick=(--sector "$BAD_SECTOR")
  BAD_SECTOR=$("$PYTHON" "$HERE/evidence.py" error-sector --disk "$WORK/disk.img" "${pick[@]}")
  ERR_ARGS=(--error-sector "$BAD_SECTOR" --errno 5)
  say "scenario bad-sector: reads touching sector $BAD_SECTOR fail"
else
  say "scenario clean"
fi

# --- 3. boot, readiness, hot-plug --------------------------------------------------------------
# The host's KVM may be kvm_pvm (paravirtual, no VT-x): a stock Debian kernel hangs in it right
# after decompression, so TCG there. Real KVM elsewhere; -cpu host,-arch-capabilities because
# nested KVM cannot set that MSR.
if [ -z "${ACCEL:-}" ]; then
  if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
# shellcheck disable=SC2054  # QEMU's -cpu takes a comma-separated list: one argument
if [ "$ACCEL" = kvm ]; then CPU=(-accel kvm -cpu host,-arch-capabilities); else CPU=(-accel tcg -cpu qemu64); fi
# restrict=on: the guest reaches only the guestfwd addresses (without it, slirp NATs to whatever
# the host reaches). cmd: forwards spawn one socat per guest connection, so S3's parallel
# connections work; DHCP gives no default route, hence addresses on the guest's own subnet.
NET="user,id=net0,restrict=on"
NET+=",guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:$MOTO_PORT"
NET+=",guestfwd=tcp:10.0.2.101:80-cmd:socat - TCP:127.0.0.1:$IMDS_PORT"
say "booting ($ACCEL)"
T_START=$(stamp)
# -no-reboot: the guest's poweroff (or a panic's reboot) ends QEMU. The root disk is a snapshot:
# the cached image is never written. hp0: a free PCIe root port, as q35 hot-plugs only into those.
timeout $((READY_TIMEOUT + EXIT_TIMEOUT + 60)) qemu-system-x86_64 -nodefaults -machine q35 "${CPU[@]}" \
  -smp 2 -m 1024 \
  -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=0" \
  -drive file="$IMG/rootfs.img",format=raw,if=virtio,snapshot=on \
  -netdev "$NET" -device virtio-net-pci,netdev=net0,romfile= \
  -device pcie-root-port,id=hp0,chassis=1,slot=1 \
  -display none -serial file:"$WORK/console.log" -qmp unix:"$WORK/qmp.sock",server=on,wait=off \
  -no-reboot >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!
"$PYTHON" "$HERE/qmp.py" "$WORK/qmp.sock" wait-ready --timeout 30
"$PYTHON" "$HERE/evidence.py" --endpoint "$MOTO" wait-log --group ForensicDiskReadiness \
  --contains "incron is running" --timeout "$READY_TIMEOUT" >/dev/null
T_READY=$(stamp)
say "readiness in CloudWatch after $(echo "$T_READY - $T_START" | bc | cut -c1-5) s"
# Detection is timed on the host's clock, from the daemon's log line on the serial console: the
# guest's clock comes from the RTC (1 s resolution), so its event timestamps can be off by ±1 s.
"$PYTHON" "$HERE/evidence.py" watch-console --file "$WORK/console.log" \
  --contains "Attached disk detected" --timeout "$EXIT_TIMEOUT" >"$WORK/detected" 2>/dev/null &
PIDS+=($!)
T_PLUG=$("$PYTHON" "$HERE/qmp.py" "$WORK/qmp.sock" hotplug --image "$WORK/disk.img" --serial "$SERIAL" \
  "${ERR_ARGS[@]}")
say "hot-plugged NVMe serial $SERIAL"

# --- 4. the guest powers itself off ------------------------------------------------------------
for i in $(seq 1 $((EXIT_TIMEOUT * 10))); do
  kill -0 "$QEMU_PID" 2>/dev/null || break
  [ "$i" -lt $((EXIT_TIMEOUT * 10)) ] || { echo "run.sh: the guest did not power off within $EXIT_TIMEOUT s" >&2; exit 1; }
  sleep 0.1
done
rc=0
wait "$QEMU_PID" || rc=$?
T_EXIT=$(stamp)
QEMU_PID=
say "QEMU exited with status $rc"
[ "$rc" -eq 0 ] || { cat "$WORK/qemu.log" >&2; exit 1; }

curl -sf -o "$WORK/image.dd" "$MOTO/$BUCKET/$PREFIX/$INCIDENT/disk_evidence/$IMAGE_NAME.image.dd" ||
  { echo "run.sh: no image object at $PREFIX/$INCIDENT/disk_evidence/$IMAGE_NAME.image.dd" >&2; : >"$WORK/image.dd"; }
detected=$(cat "$WORK/detected" 2>/dev/null || true)
VERIFY=(--bucket "$BUCKET" --prefix "$PREFIX" --incident "$INCIDENT" --name "$IMAGE_NAME"
  --disk "$WORK/disk.img" --image "$WORK/image.dd" --volume-id "$VOLUME_ID" --imds-log "$WORK/imds.log"
  --started "$T_START" --ready "$T_READY" --hotplugged "$T_PLUG" --exited "$T_EXIT"
  --detected "${detected:-0}")
[ "$SCENARIO" = bad-sector ] && VERIFY+=(--bad-sector "$BAD_SECTOR" --errno "$NVME_ERRNO")
"$PYTHON" "$HERE/evidence.py" --endpoint "$MOTO" verify "${VERIFY[@]}"
say "PASS ($SCENARIO)"
