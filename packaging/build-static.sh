#!/usr/bin/env bash
# Builds static, self-contained forensic-collector binaries (musl libc linked in, no loader, no
# shared library) for hosts where no package is installed: the memory capture pushed by SSM to a
# suspect instance, x86_64 or Graviton (aarch64), whatever its distribution. One command:
#
#   packaging/build-static.sh     # → target/static/forensic-collector-{x86_64,aarch64} (+ .sha256)
#
# packaging/build.sh runs it after the packages, from the same checkout, so both come from one
# commit (each binary's --version names it). Steps: install the pinned cross toolchain if missing
# (zig's C compiler and linker through cargo-zigbuild, from PyPI; the two rustup targets); build
# both targets in one cargo run; strip; write `sha256sum`-format files; packaging/check-static.sh
# then asserts the binaries are static, for the right machine, and run in an empty chroot (aarch64
# through qemu-aarch64-static), and packaging/tests/check-static-fails.sh that it fails broken
# copies of them; last, the SHA-256 lines.
#
# Why zig: aws-lc-sys (TLS) compiles C for the target, so each musl target needs a C compiler with
# that target's musl headers. Debian's musl-tools covers x86_64 only; an aarch64 musl cross gcc is
# not packaged (gcc-aarch64-linux-gnu is glibc's). zig bundles clang, lld and musl's headers for
# every target: one pinned pip install serves both.
set -euo pipefail

# Pinned: their compiler and linker are what ships. Raise them deliberately, and rebuild both.
readonly ZIGLANG_VERSION=0.15.2
readonly CARGO_ZIGBUILD_VERSION=0.24.1
# Cargo profile of the shipped binaries (see packaging/README.md, "Static binaries", for why).
readonly PROFILE=${STATIC_PROFILE:-dist}
readonly ARCHES=(x86_64 aarch64)

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

command -v cargo >/dev/null || { echo "build-static.sh: needs cargo (rustup's toolchain)" >&2; exit 1; }
command -v rustup >/dev/null || { echo "build-static.sh: needs rustup (for the musl targets)" >&2; exit 1; }
# shellcheck source=packaging/deps.sh
. packaging/deps.sh
need_packages build-static.sh binutils=strip binutils-aarch64-linux-gnu=aarch64-linux-gnu-strip \
    coreutils=sha256sum
python=${PYTHON:-python3}
need_pip build-static.sh \
    "\"$python\" -m ziglang version | grep -qx '$ZIGLANG_VERSION' && cargo-zigbuild --version | grep -qx 'cargo-zigbuild $CARGO_ZIGBUILD_VERSION'" \
    "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
installed_targets=$(rustup target list --installed)
for arch in "${ARCHES[@]}"; do
    grep -qx "$arch-unknown-linux-musl" <<<"$installed_targets" ||
        rustup target add "$arch-unknown-linux-musl"
done

out=target/static
rm -rf "$out"
mkdir -p "$out"
# Both targets in one cargo run: each ends in a fat-LTO link that uses one core for minutes (one
# codegen unit); side by side, the two links share the machine's cores instead of taking turns.
targets=()
for arch in "${ARCHES[@]}"; do targets+=(--target "$arch-unknown-linux-musl"); done
start=$(date +%s)
cargo zigbuild --locked --profile "$PROFILE" -p forensic-collector "${targets[@]}"
echo "build-static.sh: ${ARCHES[*]} ($PROFILE) built in $(($(date +%s) - start)) s" >&2
for arch in "${ARCHES[@]}"; do
    # The host's strip does not read an aarch64 ELF ("Unable to recognise the format").
    strip="strip"
    [ "$arch" = aarch64 ] && strip=aarch64-linux-gnu-strip
    "$strip" --strip-all -o "$out/forensic-collector-$arch" \
        "target/$arch-unknown-linux-musl/$PROFILE/forensic-collector"
    (cd "$out" && sha256sum "forensic-collector-$arch" >"forensic-collector-$arch.sha256")
done

ls -l "$out"
"$root/packaging/check-static.sh" "$out"
# ... and those checks can fail: broken copies of these binaries must not pass.
"$root/packaging/tests/check-static-fails.sh" "$out" "target/x86_64-unknown-linux-musl/$PROFILE/forensic-collector"
echo "build-static.sh: SHA-256 of the static binaries ($(git rev-parse HEAD 2>/dev/null || echo 'no git')):"
cat "$out"/*.sha256
