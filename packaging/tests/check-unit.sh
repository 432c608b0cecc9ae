#!/usr/bin/env bash
# Checks the shipped systemd unit offline, in a second, with the host's systemd-analyze:
#
#   packaging/tests/check-unit.sh [UNIT]      # default: systemd/forensic-collector.service
#
#  1. `systemd-analyze security --offline=yes`: the overall exposure must stay at or below
#     MAX_EXPOSURE (issue 11: 2.0; systemd 252 rates the unit 2.0, it was 4.7). Prints the table's
#     failing lines, so a regression shows which directive went.
#  2. `systemd-analyze verify` of the unit as installed: in a scratch root holding it under
#     /usr/lib/systemd/system beside the host's own units (its After=/Wants= targets), with a stub
#     at /usr/bin/forensic-collector (ExecStart must name an executable). Any warning fails, not
#     only errors: an unknown or misspelt directive is only a warning to systemd, and a
#     hardening directive silently ignored is exactly what this check is for.
#     Then again with the drop-in that selects the original flow's preset (tests/vm/guest's, which
#     the Image Builder component writes too: check_docs.py holds them equal) under /etc: its
#     ExecStart= reset and `--config` line must make a valid unit with this one.
#  3. Every `DeviceAllow=block-NAME` names a driver in /proc/devices' block list that an EBS volume
#     (or the VM test's disk) shows up as: systemd resolves NAME when the unit starts and silently
#     allows nothing for a name it does not know, and neither check above sees a misspelling.
# systemd-analyze missing is a failure, not a skip (tests/helpers/setup-deps.sh installs it).
# packaging/tests/check-docs.sh runs this (so tests/run and CI do); packaging/check.sh runs it on
# the unit inside the built packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
UNIT=$(realpath "${1:-systemd/forensic-collector.service}")
# systemd-analyze's scale is 0-100 (it prints a tenth of it): 20 is the "2.0" of the issue.
readonly MAX_EXPOSURE=20

command -v systemd-analyze >/dev/null ||
  { echo "check-unit: FAIL: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
[ -f "$UNIT" ] || { echo "check-unit: FAIL: no unit at $UNIT" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=forensic-collector.service

# 1. Exposure. The unit is rated under its installed name (the file may be called otherwise).
cp "$UNIT" "$work/$name"
status=0
systemd-analyze security --offline=yes --threshold="$MAX_EXPOSURE" "$work/$name" >"$work/security" 2>&1 ||
  status=$?
overall=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' "$work/security" | grep -o '[0-9.]*$' || true)
if [ "$status" -ne 0 ] || [ -z "$overall" ]; then
  grep '✗' "$work/security" >&2 || cat "$work/security" >&2
  echo "check-unit: FAIL: exposure ${overall:-unknown} is above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10))" \
    "(systemd-analyze exit $status)" >&2
  exit 1
fi
echo "check-unit: exposure $overall (at most $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10)))"

# 2. verify, as installed.
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$UNIT" "$root/usr/lib/systemd/system/$name"
printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/forensic-collector"
chmod 0755 "$root/usr/bin/forensic-collector"
# verify_installed WHAT: systemd-analyze verify of the unit in $root; any output or status fails.
verify_installed() {
  local status=0
  systemd-analyze verify --man=no --root="$root" "/usr/lib/systemd/system/$name" >"$work/verify" 2>&1 ||
    status=$?
  if [ "$status" -ne 0 ] || [ -s "$work/verify" ]; then
    cat "$work/verify" >&2
    echo "check-unit: FAIL: systemd-analyze verify$1 (exit $status, output above)" >&2
    exit 1
  fi
  echo "check-unit: systemd-analyze verify clean$1"
}
verify_installed ""
dropin=tests/vm/guest/etc/systemd/system/forensic-collector.service.d/preset.conf
mkdir -p "$root/etc/systemd/system/$name.d"
cp "$dropin" "$root/etc/systemd/system/$name.d/"
verify_installed " with the preset's drop-in ($dropin)"

# 3. Device names. blkext: NVMe namespaces (Nitro EBS, major 259); xvd: Xen EBS; sd: SCSI;
# virtblk: virtio (KVM clouds, the VM test). Each must be read-only.
readonly KNOWN_BLOCK_DRIVERS=" blkext xvd sd virtblk "
bad=$(grep -E '^DeviceAllow=' "$UNIT" | while read -r line; do
  read -r device access _ <<<"${line#DeviceAllow=}"
  case $device in
    block-*) name=${device#block-}
      [[ $KNOWN_BLOCK_DRIVERS == *" $name "* ]] || echo "unknown block driver: $line"
      [ "${access:-}" = r ] || echo "not read-only: $line" ;;
    *) echo "not a block driver class: $line" ;;
  esac
done)
if [ -n "$bad" ]; then
  echo "$bad" >&2
  echo "check-unit: FAIL: DeviceAllow= (known block drivers:$KNOWN_BLOCK_DRIVERS)" >&2
  exit 1
fi
echo "check-unit: DeviceAllow= names known block drivers, read-only"
