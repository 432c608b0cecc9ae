#!/usr/bin/env bash
# Builds the .deb (Ubuntu LTS) and .rpm (Amazon Linux 2023) of forensic-collector, and the static
# binaries for x86_64 and aarch64 hosts without the package, from one command and one commit, on a
# Debian or Ubuntu host with rustup's toolchain:
#
#   packaging/build.sh            # packages into target/packages/, static binaries into target/static/
#   packaging/build.sh --no-static   # the packages only (tests/run builds the static ones beside its tests)
#
# Steps: install the pinned packaging tools if missing; build the `dist` profile (release plus fat
# LTO and one codegen unit, see the workspace Cargo.toml); cargo-deb makes the .deb (stripped) and
# a -dbgsym .ddeb (the line tables, by build ID); the binary is stripped for the .rpm, whose line
# tables go to forensic-collector.debug beside it; packaging/check.sh then asserts the contents;
# last, packaging/build-static.sh builds, checks and prints the SHA-256 of the static binaries.
# Needs cargo (rustup's toolchain), binutils (objcopy, strip) and dpkg-dev (dpkg-shlibdeps), and
# for check.sh rpm and cpio: packaging/deps.sh installs the Debian ones first when run as root
# (apt-get, quietly; nothing when they are there), else names them before anything is built.
set -euo pipefail

# Versions that build with this workspace's toolchain (rust-toolchain / rustc 1.95), from
# crates.io with their own lock files. Raise them deliberately: their output is what ships.
readonly CARGO_DEB_VERSION=3.8.0
readonly CARGO_GENERATE_RPM_VERSION=0.21.1
readonly PROFILE=dist

static=yes
case ${1:-} in
    "") ;;
    --no-static) static=no ;;
    *) echo "usage: packaging/build.sh [--no-static]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "build.sh: needs cargo (rustup's toolchain)" >&2; exit 1; }
# shellcheck source=packaging/deps.sh
. packaging/deps.sh
need_packages build.sh binutils=objcopy dpkg-dev=dpkg-shlibdeps rpm=rpm2cpio cpio=cpio systemd=systemd-analyze
out=target/packages
bin_dir=target/$PROFILE

# cargo SUBCOMMAND prints "NAME VERSION"; install the pinned version when it prints another.
ensure_tool() {
    local crate=$1 subcommand=$2 version=$3
    if ! cargo "$subcommand" --version 2>/dev/null | grep -qxF "$crate $version"; then
        echo "build.sh: installing $crate $version" >&2
        cargo install --locked "$crate" --version "$version"
    fi
}
ensure_tool cargo-deb deb "$CARGO_DEB_VERSION"
ensure_tool cargo-generate-rpm generate-rpm "$CARGO_GENERATE_RPM_VERSION"

# Package timestamps from the last commit, so the same commit gives the same file dates.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

start=$(date +%s)
cargo build --locked --profile "$PROFILE" -p forensic-collector
echo "build.sh: binary built in $(($(date +%s) - start)) s" >&2

rm -rf "$out"
mkdir -p "$out"
cargo deb --no-build --profile "$PROFILE" -p forensic-collector --dbgsym --output "$out"

# cargo-generate-rpm packages files as they are: strip a copy, keep the line tables in a separate
# file that gdb finds through the debuglink (or by the build ID the ddeb uses).
mkdir -p "$bin_dir/stripped"
objcopy --only-keep-debug --compress-debug-sections=zlib "$bin_dir/forensic-collector" \
    "$out/forensic-collector.debug"
strip --strip-all -o "$bin_dir/stripped/forensic-collector" "$bin_dir/forensic-collector"
(cd "$out" && objcopy --add-gnu-debuglink=forensic-collector.debug \
    "$root/$bin_dir/stripped/forensic-collector")
cargo generate-rpm --profile "$PROFILE" -p agent --output "$out/"

ls -l "$out"
"$root/packaging/check.sh" "$out"

# The static (musl) binaries for hosts without the package (SSM memory capture), from this same
# checkout; the script checks them (packaging/check-static.sh) and prints their SHA-256 last.
[ "$static" = no ] || "$root/packaging/build-static.sh"
