#!/usr/bin/env bash
# The VM test: the collector as a responder deploys it — the .deb installed with dpkg into a
# Debian 12 guest, the hardened unit as the package ships it, the original flow's preset selected
# by a unit drop-in — booted in QEMU with real udev, NVMe volumes hot-plugged with EBS volume IDs as
# serials, the job in IMDSv2 user data, S3 and CloudWatch Logs served by moto on the host.
#
#   tests/vm/run.sh [--deb PACKAGE.deb] [--collector BINARY] [--boot daemon|stop|memory|membench]...
#                   (root; tests/run runs it)
#   KEEP_WORK=1 …   keep /var/tmp/fc-vm-run.*: console logs, moto.log, imds logs, outputs
#   ACCEL=kvm|tcg … default: KVM unless the host's KVM is kvm_pvm (paravirtual; see README.md)
#   MEMORY_MIB=N …  the memory boots' guest RAM (default: memory 512, as TCG captures at ≈ 10-20
#                   MB/s; membench 1024)
#   MEMORY_CAPTURE=avml …  the memory boot's image checks on AVML's capture instead (no manifest,
#                   S3 or refusals): the checks do not depend on the collector
#
# Without --deb it builds the packages first (packaging/build.sh). Three boots by default:
#  daemon  two volumes attached one after the other (the second with an unreadable sector): the
#          daemon images both to S3, reports each, then powers the guest off (QEMU exits 0).
#  stop    one volume; `systemctl stop` mid-capture (upload aborted, no manifest, reported); then
#          the SSM document's script (the Run Command path) images the same volume with the unit
#          still installed; `systemd-analyze security` on the unit as installed; poweroff.
#  memory  `acquire memory://` of the guest's own RAM, as Run Command runs it: to a host tmpfs shared
#          over 9p and to S3; the LiME image against the guest's /proc/iomem and /proc/version,
#          `verify`, Volatility 3; refusals (not root, no CAP_SYS_RAWIO, no /dev/crash, /dev/mem
#          under STRICT_DEVMEM, evidence already there, SIGTERM mid-upload, kernel lockdown raised
#          at the end), each leaving no evidence.
#  membench (not by default; tests/bench/memory.sh runs it) the collector against avml and a dd of
#          the same ranges, in the same guest to the same directory.
# --collector BINARY: the binary the memory boots run in the guest (and `verify` on the host);
# default target/static/forensic-collector-x86_64 when it exists, else the .deb's.
# Every wait is bounded; each phase's time is printed at the end. QEMU, the servers and the run
# directory are cleaned up on exit; a failure prints the guest's console.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."

DEB=
COLLECTOR=
BOOTS=()
while [ $# -gt 0 ]; do
  case $1 in
    --deb) DEB=${2:?--deb needs a path}; shift ;;
    --collector) COLLECTOR=${2:?--collector needs a path}; shift ;;
    --boot) case ${2:-} in daemon|stop|memory|membench) BOOTS+=("$2") ;;
              *) echo "run.sh: --boot daemon|stop|memory|membench" >&2; exit 2 ;; esac; shift ;;
    *) echo "usage: run.sh [--deb PACKAGE.deb] [--collector BINARY] [--boot daemon|stop|memory|membench]..." >&2; exit 2 ;;
  esac
  shift
done
[ ${#BOOTS[@]} -gt 0 ] || BOOTS=(daemon stop memory)
[ -n "$COLLECTOR" ] || [ ! -x target/static/forensic-collector-x86_64 ] || COLLECTOR=target/static/forensic-collector-x86_64
. tests/helpers/as-root.sh
require_root "mmdebstrap, dpkg into the image, mkfs and QEMU"

BUCKET=evidence-vm
PREFIX=cases
# IMAGE_NAME is the suspect's original volume; the disks attached are copies of it with other IDs.
IMAGE_NAME=vol-0fedcba9876543210
DISK_MIB=64
STOP_DISK_MIB=160
# The shipped unit's exposure (systemd-analyze security, as installed in the guest) must not rise
# above this (issue 11).
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
# Time limits, generous for TCG on 2 busy cores (measured: boot ≈ 20-35 s, 64 MiB ≈ 5-12 s).
READY_TIMEOUT=${READY_TIMEOUT:-240}
JOB_TIMEOUT=${JOB_TIMEOUT:-300}
# The next boot's RAM and extra QEMU arguments (the memory boots' shares); boot() resets them.
BOOT_MIB=1024
BOOT_QEMU=()
MEMORY_MIB=${MEMORY_MIB:-}
MEMORY_CAPTURE=${MEMORY_CAPTURE:-collector}
# tests/helpers/setup-deps.sh installs Volatility 3 (pinned) in this venv.
VOL=/opt/fc-test-tools/volatility3/bin/vol

WORK=$(mktemp -d /var/tmp/fc-vm-run.XXXXXX)
# The memory boots' evidence directory: a tmpfs on the host, shared into the guest over 9p (a
# tmpfs in the guest cannot hold an image of the guest's whole RAM). Made when a memory boot runs.
SHARE=
PIDS=()
QEMU_PID=
PHASES=()
cleanup() {
  local status=$?
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    for log in "$WORK"/console-*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (last 60 lines) ---" >&2
      tail -60 "$log" | tr -d '\r' >&2
    done
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "run directory kept: $WORK${SHARE:+, memory evidence: $SHARE}" >&2
  else
    rm -rf "$WORK"; [ -z "$SHARE" ] || rm -rf "$SHARE"
  fi
  give_back_target
}
trap cleanup EXIT
stamp() { date +%s.%N; }
say() { echo "[vm] $*"; }
since() { printf '%.1f' "$(echo "$(stamp) - $1" | bc)"; }
T_PHASE=$(stamp)
# phase NAME: the time since the previous phase ended goes to NAME.
phase() { PHASES+=("$(printf '%-44s %7s s' "$1" "$(since "$T_PHASE")")"); T_PHASE=$(stamp); }
PYTHON=${PYTHON:-python3}
evidence() { "$PYTHON" "$HERE/evidence.py" --endpoint "$MOTO" "$@"; }

# --- what the test needs ------------------------------------------------------------------------
need=()
for p in qemu-system-x86 mmdebstrap socat e2fsprogs binutils bc; do
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
phase "dependencies"

if [ -z "$DEB" ]; then
  say "packaging/build.sh"
  timeout 2400 packaging/build.sh >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; exit 1; }
  phase "packages (packaging/build.sh)"
  debs=(target/packages/forensic-collector_*_amd64.deb)
  [ ${#debs[@]} -eq 1 ] || { echo "run.sh: expected one .deb in target/packages: ${debs[*]}" >&2; exit 1; }
  DEB=${debs[0]}
fi
[ -f "$DEB" ] || { echo "run.sh: no package at $DEB" >&2; exit 1; }
say "package $DEB"
IMG=$(timeout 1200 "$HERE/build-image.sh" "$DEB")
say "guest image $IMG"
phase "guest image (cached when unchanged)"

# --- moto, loopback only -----------------------------------------------------------------------
# serve NAME COMMAND...: starts a helper server (tests/helpers/), which prints "ready PORT" once it
# accepts connections; sets PORT. Its output goes to NAME.out in the run directory.
serve() {
  local name=$1 i line
  shift
  timeout 7200 "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for i in $(seq 1 600); do
    line=$(grep -m1 '^ready [0-9]*$' "$WORK/$name.out" 2>/dev/null || true)
    [ -z "$line" ] || { PORT=${line#ready }; return 0; }
    if [ "$i" -eq 600 ] || ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
      echo "run.sh: $name did not start" >&2; cat "$WORK/$name.out" >&2; exit 1
    fi
    sleep 0.1
  done
}
serve moto "$PYTHON" tests/helpers/motoserver.py --log "$WORK/moto.log"
MOTO_PORT=$PORT
phase "moto"
MOTO=http://127.0.0.1:$MOTO_PORT
curl -sf -X PUT "$MOTO/$BUCKET" >/dev/null

# The host's KVM may be kvm_pvm (paravirtual, no VT-x): a stock Debian kernel hangs in it right
# after decompression, so TCG there. Real KVM elsewhere; -cpu host,-arch-capabilities because
# nested KVM cannot set that MSR.
if [ -z "${ACCEL:-}" ]; then
  if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
# shellcheck disable=SC2054  # QEMU's -cpu takes a comma-separated list: one argument
if [ "$ACCEL" = kvm ]; then CPU=(-accel kvm -cpu host,-arch-capabilities); else CPU=(-accel tcg -cpu qemu64); fi

# A suspect disk: ext4, labelled, mostly random data so that a zero-filled sector shows.
make_disk() { # FILE MIB LABEL
  mkdir -p "$WORK/content"
  head -c $((($2 - 16) << 20)) /dev/urandom >"$WORK/content/evidence.bin"
  echo "forensic-collector VM test, disk $3" >"$WORK/content/README"
  truncate -s "${2}M" "$1"
  mkfs.ext4 -q -F -L "$3" -d "$WORK/content" "$1"
  rm -rf "$WORK/content"
}

# boot NAME INCIDENT EXPECTED_VOLUMES INSTANCE_ID [IMDS_DOWN_SECS]: starts IMDS with the flow's
# user data for this job (refusing connections for its first IMDS_DOWN_SECS, as IMDS may at an
# EC2 boot) and QEMU, and waits for the readiness message in CloudWatch, in this instance's
# stream. The user data is the original flow's script (appending to /etc/environment) plus the
# volume count; the daemon parses it, never runs it.
boot() {
  local name=$1 incident=$2 volumes=$3 down=${5:-0}
  INSTANCE=$4
  cat >"$WORK/user-data-$name" <<EOF
#!/bin/bash
echo "DESTINATION_BUCKET=$BUCKET" >> /etc/environment
echo "DESTINATION_PREFIX=$PREFIX" >> /etc/environment
echo "INCIDENT_ID=$incident" >> /etc/environment
echo "IMAGE_NAME=$IMAGE_NAME" >> /etc/environment
echo "FORENSIC_COLLECTOR_JOB_EXPECTED_VOLUMES=$volumes" >> /etc/environment
EOF
  serve "imds-$name" "$PYTHON" tests/helpers/imds.py --user-data "$WORK/user-data-$name" \
    --instance-id "$INSTANCE" --down-for "$down" --log "$WORK/imds-$name.log"
  local imds_port=$PORT
  # restrict=on: the guest reaches only the guestfwd addresses (without it, slirp NATs to whatever
  # the host reaches). cmd: forwards spawn one socat per guest connection, so S3's parallel
  # connections work; DHCP gives no default route, hence addresses on the guest's own subnet.
  # A second NIC on 169.254.169.0/24 puts IMDS at its EC2 address (the SDK's default, through the
  # unit's address allow list) and moto once more at 169.254.169.100, a link-local address the
  # unit must refuse (probe_addresses).
  local net="user,id=net0,restrict=on"
  net+=",guestfwd=tcp:10.0.2.100:80-cmd:socat - TCP:127.0.0.1:$MOTO_PORT"
  local imds_net="user,id=net1,restrict=on,net=169.254.169.0/24"
  imds_net+=",guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:$imds_port"
  imds_net+=",guestfwd=tcp:169.254.169.100:80-cmd:socat - TCP:127.0.0.1:$MOTO_PORT"
  CONSOLE=$WORK/console-$name.log
  QMP=$WORK/qmp-$name.sock
  GA=$WORK/ga-$name.sock
  say "boot $name ($ACCEL): incident $incident, $volumes volume(s)"
  T_START=$(stamp)
  # -no-reboot: the guest's poweroff (or a panic's reboot) ends QEMU. The root disk is a snapshot:
  # the cached image is never written. hp0, hp1: free PCIe root ports, as q35 hot-plugs only into
  # those. The virtio-serial port is the guest agent's (the stand-in for the SSM agent).
  timeout $((READY_TIMEOUT + 3 * JOB_TIMEOUT)) qemu-system-x86_64 -nodefaults -machine q35 "${CPU[@]}" \
    -smp 2 -m "$BOOT_MIB" "${BOOT_QEMU[@]}" \
    -kernel "$IMG/vmlinuz" -initrd "$IMG/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw quiet systemd.show_status=0" \
    -drive file="$IMG/rootfs.img",format=raw,if=virtio,snapshot=on \
    -netdev "$net" -device virtio-net-pci,netdev=net0,romfile= \
    -netdev "$imds_net" -device virtio-net-pci,netdev=net1,mac=52:54:00:a9:fe:01,romfile= \
    -device pcie-root-port,id=hp0,chassis=1,slot=1 -device pcie-root-port,id=hp1,chassis=2,slot=2 \
    -device virtio-serial-pci,id=vs0 -chardev socket,id=ga0,path="$GA",server=on,wait=off \
    -device virtserialport,bus=vs0.0,chardev=ga0,name=org.qemu.guest_agent.0 \
    -display none -serial file:"$CONSOLE" -qmp unix:"$QMP",server=on,wait=off \
    -no-reboot >"$WORK/qemu-$name.log" 2>&1 &
  QEMU_PID=$!
  BOOT_MIB=1024
  BOOT_QEMU=()
  "$PYTHON" "$HERE/qmp.py" "$QMP" wait-ready --timeout 30
  evidence wait-log --group ForensicDiskReadiness --stream "$INSTANCE" --contains "incron is running" \
    --timeout "$READY_TIMEOUT" >/dev/null
  say "readiness in CloudWatch after $(since "$T_START") s"
  phase "boot $name: QEMU start → readiness"
}

# plug PORT FILE SERIAL [BAD_SECTOR] N: hot-plugs FILE as an NVMe volume with that serial and
# prints hot-plug → the daemon's N-th "Attached disk detected" on the console (host clock: the
# guest's comes from the RTC, 1 s resolution).
plug() {
  local port=$1 file=$2 serial=$3 bad=$4 nth=$5 err=() t_plug t_seen
  [ -z "$bad" ] || err=(--error-sector "$bad" --errno 5)
  "$PYTHON" "$HERE/evidence.py" watch-console --file "$CONSOLE" --contains "Attached disk detected" \
    --count "$nth" --timeout 60 >"$WORK/detected" 2>/dev/null &
  local watcher=$!
  t_plug=$("$PYTHON" "$HERE/qmp.py" "$QMP" hotplug --port "$port" --image "$file" --serial "$serial" "${err[@]}")
  wait "$watcher" || { echo "run.sh: the daemon did not detect $serial within 60 s" >&2; exit 1; }
  t_seen=$(cat "$WORK/detected")
  say "hot-plugged NVMe $serial${bad:+ (sector $bad unreadable)} on $port: detected after $(printf '%.2f' "$(echo "$t_seen - $t_plug" | bc)") s"
}

# guest [--timeout S] [--env K=V]... -- COMMAND...: runs COMMAND in the guest (as Run Command does).
guest() { "$PYTHON" "$HERE/qmp.py" "$GA" exec "$@"; }

# probe_addresses: the unit's address allow list, as the running daemon has it. A probe moved into
# the unit's cgroup (where systemd attaches the IPAddressAllow/Deny filter) must reach IMDS at
# 169.254.169.254 and moto at 10.0.2.100, and must not reach moto at the link-local
# 169.254.169.100 — which the same probe reaches from outside the unit (the network is there).
probe_addresses() {
  # shellcheck disable=SC2016  # expanded by the guest's bash, not here
  local probe='try() { if timeout 5 bash -c "exec 3<>/dev/tcp/$1/80" 2>/dev/null; then echo "$1 open"; else echo "$1 refused"; fi; }'
  local outside inside
  outside=$(guest -- /bin/bash -c "$probe; try 169.254.169.100")
  inside=$(guest -- /bin/bash -c "echo \$\$ > /sys/fs/cgroup/system.slice/forensic-collector.service/cgroup.procs && $probe; try 169.254.169.254; try 10.0.2.100; try 169.254.169.100" | tr '\n' ' ')
  say "address probe outside the unit: $outside; inside: $inside"
  if [ "$outside" != "169.254.169.100 open" ] ||
    [ "$inside" != "169.254.169.254 open 10.0.2.100 open 169.254.169.100 refused " ]; then
    echo "run.sh: the unit's address allow list is not as shipped" >&2; exit 1
  fi
}

# wait_exit: the guest powers itself off; QEMU must exit 0.
wait_exit() {
  local i rc=0
  for i in $(seq 1 $((JOB_TIMEOUT * 10))); do
    kill -0 "$QEMU_PID" 2>/dev/null || break
    [ "$i" -lt $((JOB_TIMEOUT * 10)) ] || { echo "run.sh: the guest did not power off within $JOB_TIMEOUT s" >&2; exit 1; }
    sleep 0.1
  done
  wait "$QEMU_PID" || rc=$?
  QEMU_PID=
  say "QEMU exited with status $rc after $(since "$T_START") s in all"
  [ "$rc" -eq 0 ] || { cat "$WORK/qemu-"*.log >&2; exit 1; }
}

# --- boot 1: the daemon images two volumes, one after the other, then powers off ----------------
boot_daemon() {
  local incident=IR-VM-1 a=vol-0123456789abcdef0 b=vol-0123456789abcdef1 bad
  make_disk "$WORK/disk-a.img" "$DISK_MIB" FORENSIC1
  make_disk "$WORK/disk-b.img" "$DISK_MIB" FORENSIC2
  # Past ≈ 34 MiB: an error near the start stops udev's filesystem probe (no by-label link).
  bad=$("$PYTHON" "$HERE/evidence.py" error-sector --disk "$WORK/disk-b.img")
  boot daemon "$incident" 2 i-0123456789abcdef0
  plug hp0 "$WORK/disk-a.img" "${a//-/}" "" 1
  evidence wait-event --stream "$INSTANCE" --event job_finished --volume-id "$a" --timeout "$JOB_TIMEOUT"
  phase "boot daemon: volume 1 attached → imaged"
  plug hp1 "$WORK/disk-b.img" "${b//-/}" "$bad" 2
  wait_exit
  phase "boot daemon: volume 2 attached → poweroff"
  evidence verify --bucket "$BUCKET" --prefix "$PREFIX" --incident "$incident" \
    --imds-log "$WORK/imds-daemon.log" --stream "$INSTANCE" \
    --volume "$a:$WORK/disk-a.img:$a" --volume "$b:$WORK/disk-b.img:$b:$bad"
}

# --- boot 2: systemctl stop mid-capture, then the Run Command path -------------------------------
boot_stop() {
  local incident=IR-VM-2 rc_incident=IR-VM-RC c=vol-0123456789abcdef2 out state exposure script
  make_disk "$WORK/disk-c.img" "$STOP_DISK_MIB" FORENSIC3
  # IMDS answers only 50 s after QEMU starts (the daemon starts ≈ 20-35 s in): the daemon must
  # wait for it, with backoff, instead of refusing to start.
  boot stop "$incident" 1 i-0123456789abcdef1 50
  if ! grep -aq "IMDS does not answer yet" "$CONSOLE" || ! grep -aq "IMDS answered." "$CONSOLE"; then
    echo "run.sh: the daemon did not wait for IMDS (no retry, then answer, on the console)" >&2; exit 1
  fi
  say "the daemon waited for IMDS (down for its first 50 s), then signalled readiness"
  probe_addresses
  plug hp0 "$WORK/disk-c.img" "${c//-/}" "" 1
  evidence wait-upload --bucket "$BUCKET" --timeout "$JOB_TIMEOUT" >/dev/null
  say "upload under way; systemctl stop forensic-collector"
  local t_stop
  t_stop=$(stamp)
  guest --timeout 180 -- systemctl stop forensic-collector
  say "stopped after $(since "$t_stop") s"
  state=$(guest -- systemctl show -p ActiveState -p Result -p ExecMainStatus forensic-collector | sort | tr '\n' ' ')
  [ "$state" = "ActiveState=inactive ExecMainStatus=130 Result=success " ] ||
    { echo "run.sh: after systemctl stop: $state" >&2; exit 1; }
  say "unit after stop: $state"
  # One volume: named after the suspect's original volume (IMAGE_NAME), as the flow expects.
  evidence check-stopped --bucket "$BUCKET" --prefix "$PREFIX" --incident "$incident" --name "$IMAGE_NAME" \
    --volume-id "$c" --stream "$INSTANCE"
  phase "boot stop: attach → upload → systemctl stop"

  # The Run Command path: the SSM document's script, parameters pasted as text as SSM does, run
  # as root by the agent in the guest, with the unit installed (stopped now). On EC2 the
  # credentials come from the instance profile; here from the environment.
  script=$("$PYTHON" "$HERE/evidence.py" ssm-script --doc packaging/ssm/forensic-collector-acquire.yaml \
    --binary /usr/local/lib/fc-lab/forensic-collector source=/dev/nvme0n1 bucket="$BUCKET" prefix="$PREFIX" \
    incident="$rc_incident" executionTimeout=600)
  out=$WORK/run-command.out
  guest --timeout "$JOB_TIMEOUT" --env AWS_ENDPOINT_URL=http://10.0.2.100 --env AWS_REGION=us-east-1 \
    --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing \
    -- /bin/bash -c "$script" >"$out" 2>"$WORK/run-command.err" ||
    { cat "$WORK/run-command.err" >&2; echo "run.sh: the SSM document's script failed" >&2; exit 1; }
  evidence check-result --bucket "$BUCKET" --prefix "$PREFIX" --incident "$rc_incident" --output "$out" \
    --disk "$WORK/disk-c.img" --volume-id "$c"
  phase "boot stop: Run Command acquire ($STOP_DISK_MIB MiB)"

  exposure=$(guest -- systemd-analyze security --no-pager forensic-collector.service |
    sed -n 's/.*Overall exposure level for forensic-collector.service: \([0-9.]*\).*/\1/p')
  say "systemd-analyze security (installed unit, guest's systemd): exposure $exposure"
  if [ -z "$exposure" ] || [ "$(echo "$exposure <= $MAX_EXPOSURE" | bc)" != 1 ]; then
    echo "run.sh: exposure ${exposure:-unknown} is above $MAX_EXPOSURE" >&2; exit 1
  fi
  # The agent goes down with the guest, often before it answers: its answer is not waited for.
  guest -- systemctl poweroff 2>/dev/null || true
  wait_exit
  phase "boot stop: security check, poweroff"
}

# --- boot 3: the guest's own memory, as Run Command captures it ----------------------------------
# memory_guest NAME INCIDENT INSTANCE MIB: boots a guest with MIB of RAM and two 9p shares:
# fcout, a tmpfs on the host (SHARE), mounted at /mnt/out, the evidence directory (a tmpfs in the
# guest could not hold an image of the guest's whole RAM; this one is outside the guest's RAM and
# disks, and the host reads the images there directly); and fctools, read-only at /mnt/tools: the
# collector binary when one is given (the static build, else the .deb's as installed), avml, GNU
# time (the host's: same glibc as the guest). Sets FC (the collector in the guest) and HOST_FC
# (the same binary on the host).
memory_guest() {
  local name=$1 incident=$2 instance=$3
  GUEST_MIB=$4
  BOOT_MIB=$4
  [ -z "$SHARE" ] || rm -rf "$SHARE"   # the previous memory boot's images
  SHARE=$(mktemp -d /dev/shm/fc-vm-mem.XXXXXX)
  mkdir -p "$WORK/tools"
  cp /usr/bin/time "$WORK/tools/time"
  [ ! -x "${AVML:-}" ] || cp "$AVML" "$WORK/tools/avml"
  if [ -n "$COLLECTOR" ]; then
    cp "$COLLECTOR" "$WORK/tools/forensic-collector"
    FC=/mnt/tools/forensic-collector
    HOST_FC=$WORK/tools/forensic-collector
  else
    dpkg-deb -x "$DEB" "$WORK/deb"
    FC=/usr/bin/forensic-collector
    HOST_FC=$WORK/deb/usr/bin/forensic-collector
  fi
  # shellcheck disable=SC2054  # -fsdev and -device take comma-separated lists: one argument each
  BOOT_QEMU=(-fsdev "local,id=fcout,path=$SHARE,security_model=none"
    -device virtio-9p-pci,fsdev=fcout,mount_tag=fcout
    -fsdev "local,id=fctools,path=$WORK/tools,security_model=none,readonly=on"
    -device virtio-9p-pci,fsdev=fctools,mount_tag=fctools)
  boot "$name" "$incident" 1 "$instance"
  guest -- /bin/sh -ec 'modprobe 9pnet_virtio; mkdir -p /mnt/out /mnt/tools
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 fcout /mnt/out
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro fctools /mnt/tools'
  # What the checks compare the images with, read as root in the guest (unprivileged, /proc/iomem
  # shows every address as 0).
  guest -- cat /proc/iomem >"$WORK/iomem"
  guest -- cat /proc/version >"$WORK/version"
  # /proc/kcore's program headers: which physical pages it maps. It maps whole pages only, so the
  # partial last page of a range (q35: 0x9f000-0x9fbff) can only be zero-filled and recorded.
  guest -- /bin/sh -c 'head -c 65536 /proc/kcore | base64 -w0' | base64 -d >"$WORK/kcore.head"
  HOLES=$("$PYTHON" "$HERE/memimage.py" holes --iomem "$WORK/iomem" --kcore-head "$WORK/kcore.head")
  say "guest $(cut -d' ' -f1-3 "$WORK/version"), $GUEST_MIB MiB: System RAM $(grep -c ' : System RAM$' "$WORK/iomem") range(s), not in /proc/kcore: ${HOLES:-nothing}; collector $FC"
  # A capture through /proc/kcore is complete (0) unless kcore leaves part of the RAM unmapped:
  # then those bytes are zeros, recorded, and the run says so (3, completed with unreadable pages).
  if [ -z "$HOLES" ]; then MEMORY_OK=0; else MEMORY_OK=3; fi
}

MEM_N=0
# mem_run CODE WHAT [--timeout S] [--env K=V]... -- COMMAND...: runs COMMAND in the guest, whose exit
# code must be CODE; its output goes to mem-N.out/.err in the run directory.
mem_run() {
  local want=$1 what=$2 rc=0 t
  shift 2
  MEM_N=$((MEM_N + 1))
  t=$(stamp)
  guest "$@" >"$WORK/mem-$MEM_N.out" 2>"$WORK/mem-$MEM_N.err" || rc=$?
  say "$what: exit $rc after $(since "$t") s"
  # A refusal's reason: the collector's last log line.
  [ "$want" -lt 10 ] || say "  $(tail -1 "$WORK/mem-$MEM_N.err" | sed 's/^.* forensic_collector: //')"
  if [ "$rc" -ne "$want" ]; then
    tail -20 "$WORK/mem-$MEM_N.err" >&2
    echo "run.sh: $what: exit $rc, expected $want" >&2; exit 1
  fi
}

# no_evidence DIR WHAT: the share's DIR (made empty before the run) is still empty.
no_evidence() {
  local left
  left=$(ls -A "$SHARE/$1")
  [ -z "$left" ] || { echo "run.sh: $2 left evidence in $1: $left" >&2; exit 1; }
  say "$2: nothing written"
}

memimage() { "$PYTHON" "$HERE/memimage.py" --endpoint "$MOTO" "$@"; }

boot_memory() {
  local incident=IR-VM-MEM
  AVML=${AVML:-$(command -v avml || true)}
  # The image checks first, on made-up images: each must catch what it is there for.
  "$PYTHON" "$HERE/memimage.py" self-test >"$WORK/memimage-self-test.out" ||
    { cat "$WORK/memimage-self-test.out" >&2; echo "run.sh: memimage.py self-test failed" >&2; exit 1; }
  say "memimage.py self-test: $(grep -c '^ok ' "$WORK/memimage-self-test.out") made-up images, each passed or failed as it must"
  memory_guest memory "$incident" i-0123456789abcdef2 "${MEMORY_MIB:-512}"
  mkdir -m 0755 "$SHARE/dir"
  if [ "$MEMORY_CAPTURE" = avml ]; then
    [ -x "$WORK/tools/avml" ] || { echo "run.sh: MEMORY_CAPTURE=avml: no avml on PATH (or AVML=)" >&2; exit 1; }
    mem_run 0 "avml to the directory" --timeout "$JOB_TIMEOUT" -- /mnt/tools/avml acquire /mnt/out/dir/mem.mem.lime
    phase "boot memory: avml capture ($GUEST_MIB MiB)"
    # avml leaves out all-zero blocks and kcore's unmapped partial pages: its headers lie inside
    # the ranges (the full check fails on its image: the ranges check shown to fail for real).
    if memimage check --image "$SHARE/dir/mem.mem.lime" --iomem "$WORK/iomem" --version "$WORK/version" \
      --label "avml, full check" >"$WORK/avml-full.out"; then
      cat "$WORK/avml-full.out"; echo "run.sh: avml's image passed the full check: did avml change?" >&2; exit 1
    fi
    grep '^FAIL' "$WORK/avml-full.out"
    memimage check --image "$SHARE/dir/mem.mem.lime" --iomem "$WORK/iomem" --version "$WORK/version" \
      --label avml --subset
  else
    mem_run "$MEMORY_OK" "acquire memory:// --out (9p, host tmpfs)" --timeout "$JOB_TIMEOUT" -- \
      "$FC" acquire memory:// --out /mnt/out/dir --incident "$incident" --name mem
    phase "boot memory: capture to the directory ($GUEST_MIB MiB)"
    memimage check --image "$SHARE/dir/mem.mem.lime" --iomem "$WORK/iomem" --version "$WORK/version" \
      --kcore-head "$WORK/kcore.head" --manifest "$SHARE/dir/mem.manifest.json" --label directory
    mem_run 0 "verify in the guest" --timeout "$JOB_TIMEOUT" -- "$FC" verify /mnt/out/dir/mem.manifest.json
  fi
  phase "boot memory: checks of the directory image"
  memimage volatility --vol "$VOL" --image "$SHARE/dir/mem.mem.lime" --version "$WORK/version"
  phase "boot memory: Volatility 3 banners.Banners"
  if [ "$MEMORY_CAPTURE" = avml ]; then
    say "MEMORY_CAPTURE=avml: S3, verify and the refusals need the collector; skipped"
  else
    memory_collector_checks "$incident"
  fi
  guest -- systemctl poweroff 2>/dev/null || true
  wait_exit
  phase "boot memory: poweroff"
}

memory_collector_checks() {
  local incident=$1 base t pid rc=0 lockdown before after
  local s3env=(--env AWS_ENDPOINT_URL=http://10.0.2.100 --env AWS_REGION=us-east-1
    --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing)
  local hostenv=(env AWS_ENDPOINT_URL="$MOTO" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing
    AWS_SECRET_ACCESS_KEY=testing)
  # To S3, then the object read back and checked as the directory's image was; verify on the host.
  base=$PREFIX/$incident/memory_evidence
  mem_run "$MEMORY_OK" "acquire memory:// --dest s3://" --timeout "$JOB_TIMEOUT" "${s3env[@]}" -- \
    "$FC" acquire memory:// --dest "s3://$BUCKET/$PREFIX" --incident "$incident" --name mem --s3-force-path-style
  phase "boot memory: capture to S3 ($GUEST_MIB MiB)"
  memimage get --bucket "$BUCKET" --key "$base/mem.mem.lime" --out "$SHARE/s3.mem.lime"
  memimage get --bucket "$BUCKET" --key "$base/mem.manifest.json" --out "$SHARE/s3.manifest.json"
  memimage check --image "$SHARE/s3.mem.lime" --iomem "$WORK/iomem" --version "$WORK/version" \
    --kcore-head "$WORK/kcore.head" --manifest "$SHARE/s3.manifest.json" --label S3
  rm -f "$SHARE/s3.mem.lime"
  "${hostenv[@]}" "$HOST_FC" verify --s3-force-path-style "s3://$BUCKET/$base/mem.manifest.json" >"$WORK/verify-s3.out" 2>&1 ||
    { cat "$WORK/verify-s3.out" >&2; echo "run.sh: verify of the S3 capture failed (host)" >&2; exit 1; }
  say "verify s3://$BUCKET/$base/mem.manifest.json on the host: passed"
  phase "boot memory: checks of the S3 image, verify"

  # Refusals: each its exit code, nothing written.
  mkdir -m 1777 "$SHARE/nobody" "$SHARE/rawio"
  mkdir "$SHARE/crash" "$SHARE/mem"
  mem_run 11 "refused as nobody" -- setpriv --reuid nobody --regid nogroup --clear-groups -- \
    "$FC" acquire memory:// --out /mnt/out/nobody --name mem
  no_evidence nobody "refused as nobody"
  mem_run 11 "refused as root without CAP_SYS_RAWIO" -- setpriv --bounding-set -sys_rawio -- \
    "$FC" acquire memory:// --out /mnt/out/rawio --name mem
  no_evidence rawio "refused without CAP_SYS_RAWIO"
  # Debian's kernel has no /dev/crash, and its /dev/mem (STRICT_DEVMEM) refuses RAM.
  mem_run 10 "refused: memory://crash, no /dev/crash" -- "$FC" acquire memory://crash --out /mnt/out/crash --name mem
  no_evidence crash "refused memory://crash"
  mem_run 12 "refused: memory://mem, /dev/mem does not read RAM" -- "$FC" acquire memory://mem --out /mnt/out/mem --name mem
  no_evidence mem "refused memory://mem"
  before=$(cd "$SHARE/dir" && ls -l --time-style=+%s.%N && sha256sum mem.manifest.json)
  mem_run 20 "refused: evidence already in the directory" -- \
    "$FC" acquire memory:// --out /mnt/out/dir --incident "$incident" --name mem
  after=$(cd "$SHARE/dir" && ls -l --time-style=+%s.%N && sha256sum mem.manifest.json)
  [ "$before" = "$after" ] || { echo "run.sh: the refused capture changed the evidence there" >&2; exit 1; }
  say "refused: the evidence already there is unchanged"
  phase "boot memory: refusals (nobody, no CAP_SYS_RAWIO, readers, evidence there)"

  # SIGTERM mid-upload: exit 130, the multipart upload aborted, nothing under the incident.
  pid=$("$PYTHON" "$HERE/qmp.py" "$GA" start "${s3env[@]}" -- "$FC" acquire memory:// \
    --dest "s3://$BUCKET/$PREFIX" --incident IR-VM-MEM-TERM --name mem --s3-force-path-style)
  evidence wait-upload --bucket "$BUCKET" --timeout "$JOB_TIMEOUT" >/dev/null
  t=$(stamp)
  guest -- kill -TERM "$pid"
  "$PYTHON" "$HERE/qmp.py" "$GA" wait --pid "$pid" --timeout 120 >"$WORK/term.out" 2>"$WORK/term.err" || rc=$?
  say "SIGTERM mid-upload: exit $rc after $(since "$t") s"
  [ "$rc" -eq 130 ] || { tail -20 "$WORK/term.err" >&2; echo "run.sh: SIGTERM: exit $rc, expected 130" >&2; exit 1; }
  memimage nothing-left --bucket "$BUCKET" --prefix "$PREFIX/IR-VM-MEM-TERM/"
  phase "boot memory: SIGTERM mid-upload"

  # Kernel lockdown, raised for real (one-way: last).
  guest -- /bin/sh -c 'echo confidentiality > /sys/kernel/security/lockdown'
  lockdown=$(guest -- cat /sys/kernel/security/lockdown)
  [ "$lockdown" = "none integrity [confidentiality]" ] ||
    { echo "run.sh: lockdown not raised: $lockdown" >&2; exit 1; }
  mkdir "$SHARE/locked"
  mem_run 15 "refused under lockdown=confidentiality" --timeout "$JOB_TIMEOUT" -- \
    "$FC" acquire memory:// --out /mnt/out/locked --name mem
  no_evidence locked "refused under lockdown"
  phase "boot memory: lockdown"
}

# --- membench (tests/bench/memory.sh): the collector against avml and dd, same guest, same tmpfs --
# Each row writes into an empty directory of the 9p share, under GNU time in the guest (wall,
# user + sys CPU, peak RSS); ROUNDS rounds, interleaved. MB/s is the guest's System RAM (what each
# tool covers) per wall second, 10^6 B; "written" is what the tool wrote (avml leaves out all-zero
# blocks).
boot_membench() {
  local rounds=${ROUNDS:-2} rows round row ram cmd
  read -ra rows <<<"${BENCH_ROWS:-collector avml avml+sha256 dd}"
  AVML=${AVML:-$(command -v avml || true)}
  [ -n "$AVML" ] || { echo "run.sh: membench needs avml (cargo install --locked avml; or AVML=PATH)" >&2; exit 1; }
  memory_guest membench IR-VM-BENCH i-0123456789abcdef3 "${MEMORY_MIB:-1024}"
  "$PYTHON" "$HERE/memimage.py" kcore-script --kcore-head "$WORK/kcore.head" --iomem "$WORK/iomem" \
    --out /mnt/out/b/ranges.raw >"$WORK/tools/dd-ranges.sh"
  ram=$("$PYTHON" "$HERE/memimage.py" ram --iomem "$WORK/iomem")
  printf '%s\n' '/mnt/tools/avml acquire /mnt/out/b/avml.lime && sha256sum /mnt/out/b/avml.lime >/mnt/out/b/avml.lime.sha256' \
    >"$WORK/tools/avml-sha256.sh"
  declare -A cmds=(
    [collector]="$FC acquire memory:// --out /mnt/out/b --name bench"
    [avml]="/mnt/tools/avml acquire /mnt/out/b/avml.lime"
    # The orchestrator's way: an image and one SHA-256 of it (the collector hashes SHA-256, BLAKE3
    # and BLAKE3 pieces; under TCG the hashing, not the reading, bounds it).
    [avml+sha256]="/bin/sh /mnt/tools/avml-sha256.sh"
    [dd]="/bin/sh /mnt/tools/dd-ranges.sh"
  )
  : >"$WORK/bench.tsv"
  for round in $(seq 1 "$rounds"); do
    for row in "${rows[@]}"; do
      mkdir "$SHARE/b"
      read -ra cmd <<<"${cmds[$row]}"
      expect=0
      [ "$row" != collector ] || expect=$MEMORY_OK
      mem_run "$expect" "round $round: $row" --timeout "$JOB_TIMEOUT" -- \
        /mnt/tools/time -f '%e %U %S %M' -o /mnt/out/time "${cmd[@]}"
      # GNU time writes "Command exited with non-zero status N" first when it is not 0.
      printf '%s %s %s\n' "$row" "$(tail -n 1 "$SHARE/time")" "$(du -sb --apparent-size "$SHARE/b" | cut -f1)" >>"$WORK/bench.tsv"
      rm -rf "$SHARE/b" "$SHARE/time"
    done
  done
  phase "membench: $rounds round(s) of ${rows[*]}"
  say "memory capture, $GUEST_MIB MiB guest ($ram bytes of System RAM), $ACCEL, to a host tmpfs over 9p, $rounds round(s):"
  awk -v ram="$ram" -v names="${rows[*]}" '
    { n[$1]++; wall[$1] += $2; cpu[$1] += $3 + $4; if ($5 > rss[$1]) rss[$1] = $5; out[$1] = $6
      if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2; if ($2 > hi[$1]) hi[$1] = $2 }
    END {
      printf "%-10s %8s %13s %10s %10s %8s %11s\n", "row", "MB/s", "wall s range", "x avml", "CPU s/GiB", "RSS MiB", "written MB"
      a = ("avml" in n) ? wall["avml"] / n["avml"] : 0
      for (i = 1; i <= split(names, rows, " "); i++) { r = rows[i]; w = wall[r] / n[r]
        printf "%-10s %8.1f %6.1f-%-6.1f %10s %10.2f %8.1f %11.1f\n", r, ram / w / 1e6, lo[r], hi[r],
          a ? sprintf("%.2f", a / w) : "-", cpu[r] / n[r] / (ram / 2^30), rss[r] / 1024, out[r] / 1e6 }
    }' "$WORK/bench.tsv" | while IFS= read -r line; do say "  $line"; done
  guest -- systemctl poweroff 2>/dev/null || true
  wait_exit
  phase "membench: poweroff"
}

for b in "${BOOTS[@]}"; do "boot_$b"; done
say "phases:"
for p in "${PHASES[@]}"; do say "  $p"; done
say "PASS (${BOOTS[*]})"
