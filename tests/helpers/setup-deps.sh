#!/usr/bin/env bash
# Installs what forensic-collector's tests and benchmarks need on a Debian (bookworm) machine:
# loop/partition/filesystem tools, dc3dd, the FUSE libraries and the Python FUSE binding
# (mfusepy) that tests/helpers/faultfs.py uses, moto, the script linters (shellcheck, ruff,
# cfn-lint), statelint (flow/tests/check-asl.sh), and what packaging/build.sh and check.sh
# need (tests/vm/run.sh installs QEMU itself).
# Idempotent and quiet: when everything is there it only checks (no apt-get update, ~0.1 s).
# Run as root (or a user with passwordless sudo). PYTHON (default: python3 on PATH) is the
# interpreter that will run faultfs.py; mfusepy is installed for that one.
set -euo pipefail

PYTHON=${PYTHON:-python3}
MFUSEPY_VERSION=3.1.1
MOTO_VERSION=5.1.22
CRC32C_VERSION=2.7.1
RUFF_VERSION=0.17.5
CFN_LINT_VERSION=1.41.0
AWSCLI_VERSION=1.45.11
BOTOCORE_VERSION=1.43.11
BOTO3_VERSION=1.43.11
STATELINT_VERSION=3.1.0
VOLATILITY3_VERSION=2.28.2
# Volatility 3 gets a venv of its own (its dependencies stay out of the interpreter moto runs in);
# tests/vm/run.sh runs $VOLATILITY3_VENV/bin/vol.
VOLATILITY3_VENV=/opt/fc-test-tools/volatility3
APT_OPTS=(-o DPkg::Lock::Timeout=300 -qq)

# Debian package -> a command it must provide ("" = a library).
declare -A PKGS=(
  [util-linux]=losetup     # also partx, blockdev, sfdisk, wipefs
  [mount]=mount
  [coreutils]=sha256sum
  [b3sum]=b3sum            # an independent BLAKE3 of images (tests/tests/e2e/snapshot.rs)
  [e2fsprogs]=mkfs.ext4
  [dosfstools]=mkfs.vfat
  [gdisk]=sgdisk
  [parted]=parted
  [dc3dd]=dc3dd
  [kmod]=modprobe
  [bc]=bc                  # tests/bench arithmetic
  [curl]=curl              # plain-HTTP downloads from the local S3 server
  [systemd]=systemd-analyze  # checks systemd/forensic-collector.service
  [shellcheck]=shellcheck  # tests/helpers/lint-scripts.sh
  [binutils]=objcopy       # packaging/build.sh: strip, the split debug file
  [dpkg-dev]=dpkg-shlibdeps  # packaging/build.sh: cargo-deb's library dependencies
  [rpm]=rpm                # packaging/check.sh reads the .rpm
  [cpio]=cpio              # packaging/check.sh unpacks the .rpm
  [time]=""                # /usr/bin/time for peak RSS in tests/bench
  [libfuse3-3]=""          # libfuse3.so.3: faultfs.py's default backend (via mfusepy)
  [libfuse2]=""            # libfuse.so.2: faultfs.py --libfuse 2
)

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-deps: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo -n"
fi

installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }

missing=()
for p in "${!PKGS[@]}"; do installed "$p" || missing+=("$p"); done
# fusermount3/mount.fuse3. Debian's fuse (2.x tools) and fuse3 exclude each other: keep
# whichever is there, add fuse3 when neither is.
installed fuse || installed fuse3 || missing+=(fuse3)
if ! command -v "$PYTHON" >/dev/null; then
  [ "$PYTHON" = python3 ] || { echo "setup-deps: PYTHON=$PYTHON not found" >&2; exit 1; }
  missing+=(python3 python3-pip)
elif ! "$PYTHON" -c 'import mfusepy' >/dev/null 2>&1 && ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi

if [ ${#missing[@]} -gt 0 ]; then
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  echo "setup-deps: apt-get install ${missing[*]}"
  if ! { $SUDO apt-get "${APT_OPTS[@]}" update &&
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y \
           --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup-deps: apt-get failed" >&2
    exit 1
  fi
fi

for p in "${!PKGS[@]}"; do
  c=${PKGS[$p]}
  if [ -n "$c" ] && ! PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null; then
    echo "setup-deps: $p is installed but $c is not found" >&2; exit 1
  fi
done

# pip_install SPECS CHECK: installs SPECS (space-separated) for $PYTHON unless the shell command CHECK already succeeds.
pip_install() {
  local spec=$1 check=$2 out
  eval "$check" >/dev/null 2>&1 && return 0
  echo "setup-deps: pip install $spec for $PYTHON"
  local specs; read -ra specs <<<"$spec"   # one or more requirement specifiers, space-separated
  local pip=("$PYTHON" -m pip install --quiet --disable-pip-version-check "${specs[@]}")
  if ! out=$(PIP_ROOT_USER_ACTION=ignore "${pip[@]}" 2>&1); then
    if grep -q externally-managed <<<"$out"; then   # Debian's own python3 (PEP 668)
      PIP_ROOT_USER_ACTION=ignore "${pip[@]}" --break-system-packages
    else
      echo "$out" >&2; echo "setup-deps: pip install $spec failed" >&2; exit 1
    fi
  fi
  if command -v pyenv >/dev/null; then pyenv rehash || true; fi   # new console scripts on PATH
  eval "$check" >/dev/null 2>&1 || { echo "setup-deps: $spec installed but '$check' still fails" >&2; exit 1; }
}

# mfusepy: ctypes binding for libfuse 2 and 3 (fusepy only knows libfuse 2, whose lack of
# async direct I/O keeps a loop device on top at one request in flight).
pip_install "mfusepy==$MFUSEPY_VERSION" "\"$PYTHON\" -c 'import mfusepy'"
# moto: the local S3 (and CloudWatch Logs) server of the S3 suites. 5.2.x answers
# CompleteMultipartUpload with a root element the Rust SDK cannot parse; 5.1.22 is known good.
pip_install "moto[server]==$MOTO_VERSION" \
  "\"$PYTHON\" -c 'import moto, sys; sys.exit(moto.__version__ != \"$MOTO_VERSION\")' && command -v moto_server"
# crc32c: moto computes S3's CRC32C part and composite checksums with it, and without it silently
# computes a CRC32 instead, which the collector then (rightly) refuses as a mismatch.
pip_install "crc32c==$CRC32C_VERSION" \
  "\"$PYTHON\" -c 'import crc32c, sys; sys.exit(crc32c.crc32c(b\"123456789\") != 0xE3069283)'"
# ruff: the Python linter of tests/helpers/lint-scripts.sh; pinned, as new releases add rules.
pip_install "ruff==$RUFF_VERSION" \
  "\"$PYTHON\" -m ruff --version | grep -qx 'ruff $RUFF_VERSION'"
# cfn-lint: packaging/tests/check-docs.sh lints the CloudFormation templates with it (PyYAML, which
# check_docs.py reads the AWSTOE and SSM documents with, comes with it); pinned, as new releases
# add rules and resource schemas.
pip_install "cfn-lint==$CFN_LINT_VERSION" \
  "cfn-lint --version | grep -qx 'cfn-lint $CFN_LINT_VERSION' && \"$PYTHON\" -c 'import yaml'"
# statelint: flow/tests/check-asl.sh validates the Step Functions definition with it (it refuses a
# Next to a missing state and unreachable states, which cfn-lint and moto accept); pinned, as new
# releases add rules.
pip_install "statelint==$STATELINT_VERSION" \
  "statelint --version | grep -q '^$STATELINT_VERSION '"
# awscli v1: flow/tests/deploy-in-moto.py runs the documented `aws cloudformation package` against
# moto. It pins its botocore exactly, so boto3 (moto's client, the harnesses') is pinned with it to
# the release pair that goes with that botocore.
pip_install "awscli==$AWSCLI_VERSION botocore==$BOTOCORE_VERSION boto3==$BOTO3_VERSION" \
  "aws --version 2>&1 | grep -q '^aws-cli/$AWSCLI_VERSION ' && \"$PYTHON\" -c 'import boto3, sys; sys.exit(boto3.__version__ != \"$BOTO3_VERSION\")'"
# Volatility 3: the VM test's independent reader of the memory images (tests/vm/memimage.py runs
# `vol -q -f IMAGE banners.Banners`, which needs no symbol table). In its own venv, pinned.
vol_version() { "$VOLATILITY3_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("volatility3"))' 2>/dev/null; }
if [ "$(vol_version)" != "$VOLATILITY3_VERSION" ] || [ ! -x "$VOLATILITY3_VENV/bin/vol" ]; then
  echo "setup-deps: volatility3==$VOLATILITY3_VERSION in a venv at $VOLATILITY3_VENV"
  $SUDO rm -rf "$VOLATILITY3_VENV"
  $SUDO "$PYTHON" -m venv "$VOLATILITY3_VENV"
  $SUDO env PIP_ROOT_USER_ACTION=ignore "$VOLATILITY3_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "volatility3==$VOLATILITY3_VERSION" ||
    { echo "setup-deps: pip install volatility3==$VOLATILITY3_VERSION failed" >&2; exit 1; }
  "$VOLATILITY3_VENV/bin/vol" --help >/dev/null 2>&1 ||
    { echo "setup-deps: volatility3 installed but $VOLATILITY3_VENV/bin/vol does not run" >&2; exit 1; }
fi
FUSE_LIBRARY_NAME=fuse3 "$PYTHON" -c 'import mfusepy; assert mfusepy.fuse_version_major == 3' \
  >/dev/null 2>&1 || { echo "setup-deps: mfusepy cannot load libfuse3" >&2; exit 1; }

# The kernel side: /dev/fuse and the loop driver.
[ -e /dev/fuse ] || $SUDO modprobe fuse 2>/dev/null || true
[ -e /dev/fuse ] || { echo "setup-deps: /dev/fuse is missing (no FUSE here?)" >&2; exit 1; }
[ -e /dev/loop-control ] || $SUDO modprobe loop 2>/dev/null || true
[ -e /dev/loop-control ] || { echo "setup-deps: /dev/loop-control is missing (no loop driver?)" >&2; exit 1; }
exit 0
