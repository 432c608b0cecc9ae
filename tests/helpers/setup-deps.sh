#!/usr/bin/env bash
# Installs what forensic-collector's tests and benchmarks need on a Debian (bookworm) machine:
# loop/partition tools, dc3dd, FUSE libraries and the Python FUSE binding used by faultfs.py.
# Idempotent and quiet: when everything is there already it only checks (no apt-get update).
# Needs root (or sudo). Environment: PYTHON (default python3) is the interpreter that will run
# tests/helpers/faultfs.py; the Python module is installed for that one.
set -euo pipefail

PYTHON=${PYTHON:-python3}
MFUSEPY_VERSION=3.1.1

# Debian packages, and a command each one must provide (checked after installing).
declare -A PKGS=(
  [util-linux]=losetup     # losetup, partx, blockdev, sfdisk
  [mount]=mount
  [coreutils]=sha256sum
  [e2fsprogs]=mkfs.ext4
  [dosfstools]=mkfs.vfat
  [gdisk]=sgdisk
  [parted]=parted
  [dc3dd]=dc3dd
  [libfuse2]=              # libfuse.so.2: faultfs.py --libfuse 2 / fusepy
  [libfuse3-3]=            # libfuse3.so.3: faultfs.py default (mfusepy)
  [kmod]=modprobe
)
# fusermount3 (to unmount as a non-root user). Debian's fuse (2.x tools) and fuse3 exclude each
# other; either is fine, so keep the one that is there and add fuse3 only when neither is.

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-deps: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo -n"
fi

installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

missing=()
for p in "${!PKGS[@]}"; do installed "$p" || missing+=("$p"); done
installed fuse || installed fuse3 || missing+=(fuse3)
command -v "$PYTHON" >/dev/null || missing+=(python3)

if [ ${#missing[@]} -gt 0 ]; then
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  echo "setup-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq &&
         $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
           "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup-deps: apt-get failed" >&2
    exit 1
  fi
fi

for p in "${!PKGS[@]}"; do
  c=${PKGS[$p]}
  if [ -n "$c" ] && ! PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null; then
    echo "setup-deps: $p installed but $c not found" >&2; exit 1
  fi
done

# Python binding: mfusepy (ctypes, talks to libfuse 2 or 3).
if ! "$PYTHON" -c 'import mfusepy' >/dev/null 2>&1; then
  echo "setup-deps: pip install mfusepy==$MFUSEPY_VERSION for $PYTHON"
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends python3-pip \
      >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-pip; }
  fi
  pip_args=(install --quiet --disable-pip-version-check --root-user-action=ignore "mfusepy==$MFUSEPY_VERSION")
  if ! out=$($SUDO "$PYTHON" -m pip "${pip_args[@]}" 2>&1); then
    if grep -q externally-managed <<<"$out"; then   # Debian's own python3 (PEP 668)
      $SUDO "$PYTHON" -m pip "${pip_args[@]}" --break-system-packages
    else
      echo "$out" >&2; echo "setup-deps: pip install mfusepy failed" >&2; exit 1
    fi
  fi
fi
"$PYTHON" -c 'import mfusepy' 2>/dev/null || {
  echo "setup-deps: $PYTHON still cannot import mfusepy" >&2; exit 1; }

# The kernel side: /dev/fuse and loop devices.
if [ ! -e /dev/fuse ]; then $SUDO modprobe fuse 2>/dev/null || true; fi
[ -e /dev/fuse ] || { echo "setup-deps: /dev/fuse missing (no FUSE in this kernel?)" >&2; exit 1; }
if [ ! -e /dev/loop-control ]; then $SUDO modprobe loop 2>/dev/null || true; fi
[ -e /dev/loop-control ] || { echo "setup-deps: /dev/loop-control missing (no loop driver?)" >&2; exit 1; }
exit 0
