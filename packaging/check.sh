#!/usr/bin/env bash
# Asserts what the packages built by packaging/build.sh contain, for CI and after every build:
#
#   packaging/check.sh [DIR]      # DIR holds the .deb, .ddeb, .rpm and .debug (target/packages)
#
# The packages carry the static x86_64 musl binary (packaging/build-static.sh's): its checks are
# packaging/checks.sh's, the ones check-static.sh applies to target/static/.
# Each check prints "ok: …" or "FAIL: …"; the exit status is 0 only when all passed. Needs dpkg-deb,
# rpm, rpm2cpio, cpio, file, binutils (readelf) and systemd-analyze: packaging/deps.sh installs
# the missing ones first when run as root, else names them before any check runs.

# The small predicates below run through `check`, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=packaging/deps.sh
. "$root/packaging/deps.sh"
# shellcheck source=packaging/checks.sh
. "$root/packaging/checks.sh"
need_packages check.sh dpkg=dpkg-deb rpm=rpm2cpio cpio=cpio file=file binutils=readelf \
    systemd=systemd-analyze
dir=$(cd "${1:-$root/target/packages}" && pwd)
# Every file both packages install, besides the docs (checked from docs/*.md below).
readonly FILES=(
    /usr/bin/forensic-collector
    /etc/forensic-collector/config.toml
    /usr/share/forensic-collector/presets/original-flow.toml
)

failures=0
lacks() { # EXTENDED-REGEX SCRIPT: no line of SCRIPT but comments matches
    ! grep -v '^[[:space:]]*#' <<<"$2" | grep -qE "$1"
}
only() { # PATTERN: the one file in $dir matching it
    local matches
    mapfile -t matches < <(compgen -G "$dir/$1" || true)
    if [ "${#matches[@]}" -ne 1 ]; then
        echo "FAIL: expected exactly one $1 in $dir" >&2
        exit 1
    fi
    echo "${matches[0]}"
}
deb=$(only 'forensic-collector_*.deb')
ddeb=$(only 'forensic-collector-dbgsym_*.ddeb')
rpm=$(only 'forensic-collector-*.rpm')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/deb" "$work/rpm" "$work/ddeb"
dpkg-deb -x "$deb" "$work/deb"
dpkg-deb -x "$ddeb" "$work/ddeb"
# rpm2cpio of rpm 4.18 (Debian 12) exits 1 after writing a complete archive of these packages
# (`rpm -K` says their digests are OK); cpio fails on a truncated one, so its status is the check.
rpm2cpio "$rpm" >"$work/rpm.cpio" || true
(cd "$work/rpm" && cpio -idm --quiet <"$work/rpm.cpio")

# The unit: the deb puts it where its systemd handling expects (/lib or /usr/lib).
deb_unit=$(find "$work/deb" -path '*/systemd/system/forensic-collector.service')
rpm_unit=$work/rpm/usr/lib/systemd/system/forensic-collector.service

docs=(/usr/share/doc/forensic-collector/README.md)
for doc in "$root"/docs/*.md; do
    docs+=("/usr/share/doc/forensic-collector/$(basename "$doc")")
done

# Files: present, same bytes as the sources.
for kind in deb rpm; do
    tree=$work/$kind
    for file in "${FILES[@]}" "${docs[@]}"; do
        check "$kind has $file" test -f "$tree$file"
    done
    unit=$deb_unit
    [ "$kind" = rpm ] && unit=$rpm_unit
    check "$kind unit is systemd/forensic-collector.service" \
        cmp -s "$unit" "$root/systemd/forensic-collector.service"
    check "$kind unit verifies and rates at most 2.0 (packaging/tests/check-unit.sh)" \
        "$root/packaging/tests/check-unit.sh" "$unit"
    check "$kind config.toml is packaging/config.example.toml" \
        cmp -s "$tree/etc/forensic-collector/config.toml" "$root/packaging/config.example.toml"
    check "$kind preset is packaging/presets/original-flow.toml" cmp -s \
        "$tree/usr/share/forensic-collector/presets/original-flow.toml" \
        "$root/packaging/presets/original-flow.toml"
done

# The binary: executable by all, static (no libc, loader or other library needed on any x86_64
# distribution, old or new), stripped, small, runs.
for kind in deb rpm; do
    binary=$work/$kind/usr/bin/forensic-collector
    check "$kind binary mode is 755" test "$(stat -c %a "$binary")" = 755
    static_binary_checks "$kind binary" "$binary" x86_64
    check "$kind binary prints its version" sh -c "'$binary' --version | grep -q '^forensic-collector '"
done

# Debug info kept apart: the ddeb holds it under the binary's build ID; the .debug file has it too.
build_id=$(readelf -n "$work/deb/usr/bin/forensic-collector" | sed -n 's/.*Build ID: //p')
check "deb binary has a build ID" test -n "$build_id"
check "ddeb has /usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug" \
    test -s "$work/ddeb/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
check "rpm binary has the same build ID" sh -c \
    "readelf -n '$work/rpm/usr/bin/forensic-collector' | grep -qF '$build_id'"
check "rpm binary names forensic-collector.debug" sh -c \
    "readelf --string-dump=.gnu_debuglink '$work/rpm/usr/bin/forensic-collector' | grep -qF forensic-collector.debug"
check "forensic-collector.debug has line tables" sh -c \
    "readelf -W -S '$dir/forensic-collector.debug' 2>/dev/null | grep -q '\.debug_line'"

# Metadata: dependencies, config files, and a unit that is enabled but never started.
deb_info=$(dpkg-deb -I "$deb")
# Static: no library package (libc6, libgcc-s1) is needed; the root store for TLS is.
check "deb depends on ca-certificates only" grep -qx ' Depends: ca-certificates' <<<"$deb_info"
check "deb conffiles is config.toml" \
    test "$(dpkg-deb -I "$deb" conffiles)" = /etc/forensic-collector/config.toml
postinst=$(dpkg-deb -I "$deb" postinst)
check "deb postinst enables the unit" grep -qE 'deb-systemd-helper (--quiet )?enable' <<<"$postinst"
check "deb postinst never starts or restarts it" \
    lacks 'deb-systemd-invoke|systemctl .*(start|restart)' "$postinst"
prerm=$(dpkg-deb -I "$deb" prerm)
# shellcheck disable=SC2016 # the script's own "$1", matched literally
check "deb prerm stops the unit only on remove" grep -qF '[ "$1" = remove ]' <<<"$prerm"

# rpm adds its own: rpmlib(…) features, /bin/sh for the scriptlets, config(forensic-collector) for
# the %config file. Besides those, the root store only: no library (libc.so.6 …).
check "rpm requires ca-certificates and no library" test "$(rpm -qp --requires "$rpm" |
    grep -vE '^(rpmlib\(.*|/bin/sh|config\(forensic-collector\) = .*)$' | sort -u)" = ca-certificates
check "rpm config.toml is %config(noreplace)" sh -c \
    "rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$rpm' | grep -qx 'cn /etc/forensic-collector/config.toml'"
check "rpm README is %doc" sh -c \
    "rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' '$rpm' | grep -qx 'd /usr/share/doc/forensic-collector/README.md'"
post=$(rpm -qp --qf '%{POSTIN}' "$rpm")
check "rpm %post enables the unit" grep -qF 'systemctl enable forensic-collector.service' <<<"$post"
check "rpm %post never starts it" lacks '\b(start|restart|--now)\b' "$post"

if [ "$failures" -eq 0 ]; then
    echo "check.sh: all checks passed"
else
    echo "check.sh: $failures check(s) failed"
fi
[ "$failures" -eq 0 ]
