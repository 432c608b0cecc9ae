#!/usr/bin/env bash
# Builds the static binaries for x86_64 and aarch64 hosts, and the .deb (Ubuntu LTS) and .rpm
# (Amazon Linux 2023) of forensic-collector that carry the x86_64 one, from one command and one
# commit, on a Debian or Ubuntu host with rustup's toolchain:
#
#   packaging/build.sh                  # static binaries into target/static/, packages into target/packages/
#   packaging/build.sh --static-built   # the packages only, of the x86_64 binary that
#                                       # packaging/build-static.sh built (tests/run: its static step)
#
# The packages ship the static musl binary, not a glibc build of their own: one fat-LTO build (the
# longest step, minutes on one core) serves the packages and the hosts without them, and a static
# binary needs no particular glibc on the host (packaging/README.md, "Dependencies").
# Steps: install the pinned packaging tools if missing; packaging/build-static.sh builds both
# targets in the `dist` profile (release plus fat LTO and one codegen unit, see the workspace
# Cargo.toml), checks them and prints their SHA-256; cargo-deb makes the .deb (stripped) and a
# -dbgsym .ddeb (the line tables, by build ID) of target/x86_64-unknown-linux-musl/dist's binary;
# a stripped copy goes into the .rpm, its line tables to forensic-collector.debug beside it;
# packaging/check.sh then asserts the contents.
# Needs cargo (rustup's toolchain) and binutils (objcopy, strip), and for check.sh rpm, cpio and
# file: packaging/deps.sh installs the Debian ones first when run as root (apt-get, quietly;
# nothing when they are there), else names them before anything is built.
set -euo pipefail

# Versions that build with this workspace's toolchain (rust-toolchain / rustc 1.95), from
# crates.io with their own lock files. Raise them deliberately: their output is what ships.
readonly CARGO_DEB_VERSION=3.8.0
readonly CARGO_GENERATE_RPM_VERSION=0.21.1
# build-static.sh's profile (its STATIC_PROFILE) and the target whose binary the packages carry.
readonly PROFILE=${STATIC_PROFILE:-dist}
readonly TARGET=x86_64-unknown-linux-musl

build_static=yes
case ${1:-} in
    "") ;;
    --static-built) build_static=no ;;
    *) echo "usage: packaging/build.sh [--static-built]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "build.sh: needs cargo (rustup's toolchain)" >&2; exit 1; }
# shellcheck source=packaging/deps.sh
. packaging/deps.sh
need_packages build.sh binutils=objcopy rpm=rpm2cpio cpio=cpio file=file systemd=systemd-analyze
out=target/packages
bin_dir=target/$TARGET/$PROFILE

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

if [ "$build_static" = yes ]; then
    # Both static binaries from this checkout, checked (packaging/check-static.sh); SHA-256 printed.
    "$root/packaging/build-static.sh"
else
    # Built beforehand from this checkout: a binary of another commit would ship under this one's
    # version. Its --version names the commit it was built from (agent/build.rs).
    [ -x "$bin_dir/forensic-collector" ] || {
        echo "build.sh: no $bin_dir/forensic-collector: run packaging/build-static.sh first" >&2
        exit 1
    }
    built=$("$bin_dir/forensic-collector" --version)
    head=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    [ "${built##* (}" = "$head)" ] || {
        echo "build.sh: $bin_dir/forensic-collector is '$built', not of HEAD ($head):" \
            "run packaging/build-static.sh first" >&2
        exit 1
    }
fi

# Package timestamps from the last commit, so the same commit gives the same file dates. Only
# now: aws-lc-sys's build script reruns when SOURCE_DATE_EPOCH changes, so exported before the
# static build it would rebuild the TLS library and everything above it at every commit, and
# differ from tests/run's static step, which has none.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

start=$(date +%s)
rm -rf "$out"
mkdir -p "$out"
# --target: the assets' target/release/ paths become target/$TARGET/$PROFILE/.
cargo deb --no-build --target "$TARGET" --profile "$PROFILE" -p forensic-collector --dbgsym \
    --output "$out"

# cargo-generate-rpm packages files as they are: strip a copy, keep the line tables in a separate
# file that gdb finds through the debuglink (or by the build ID the ddeb uses).
mkdir -p "$bin_dir/stripped"
objcopy --only-keep-debug --compress-debug-sections=zlib "$bin_dir/forensic-collector" \
    "$out/forensic-collector.debug"
strip --strip-all -o "$bin_dir/stripped/forensic-collector" "$bin_dir/forensic-collector"
(cd "$out" && objcopy --add-gnu-debuglink=forensic-collector.debug \
    "$root/$bin_dir/stripped/forensic-collector")
cargo generate-rpm --target "$TARGET" --profile "$PROFILE" -p agent --output "$out/"
echo "build.sh: packaged in $(($(date +%s) - start)) s" >&2

ls -l "$out"
"$root/packaging/check.sh" "$out"
if [ "$build_static" = yes ]; then
    echo "build.sh: SHA-256 of the static binaries (for the memory document's parameters):"
    cat target/static/*.sha256
fi
