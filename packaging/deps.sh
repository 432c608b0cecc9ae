# shellcheck shell=bash
# Sourced by packaging's scripts: `need_packages SCRIPT PACKAGE=COMMAND…` makes sure each Debian
# PACKAGE is installed (COMMAND is one it must put on PATH) before the script starts, so a fresh
# machine fails at the first line with a name, not half-way through a 5-minute build (issue 20:
# build.sh alone tripped on check.sh's rpm and cpio, which only tests/run's setup installed).
# As root (or with passwordless sudo) on a Debian or Ubuntu host the missing ones are installed
# with apt-get, quietly, as tests/helpers/setup-deps.sh does; when everything is there it only
# checks (no apt-get update). Anywhere else it names what is missing and returns 1.

need_packages() {
    local script=$1 spec package command sudo=
    shift
    local missing=()
    for spec in "$@"; do
        package=${spec%%=*} command=${spec#*=}
        PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
            echo "$script: needs ${missing[*]}: run as root, or apt-get install ${missing[*]}" >&2
            return 1
        fi
    fi
    command -v apt-get >/dev/null || {
        echo "$script: needs ${missing[*]} (Debian package names); install them and run again" >&2
        return 1
    }
    echo "$script: apt-get install ${missing[*]}" >&2
    local log
    log=$(mktemp)
    local opts=(-o DPkg::Lock::Timeout=300 -qq)
    if ! { $sudo apt-get "${opts[@]}" update &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y \
            --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "$script: apt-get install ${missing[*]} failed" >&2
        return 1
    fi
    rm -f "$log"
}

# `need_pip SCRIPT CHECK SPEC…` pip-installs the pinned SPECs (`name==version`) for ${PYTHON:-python3}
# unless the shell command CHECK already succeeds, then requires CHECK to succeed. For tools that
# Debian does not package (zig). As root: Debian's own python3 refuses a system-wide install
# (PEP 668) unless told --break-system-packages, which is what a build machine wants here.
need_pip() {
    local script=$1 check=$2 out
    shift 2
    eval "$check" >/dev/null 2>&1 && return 0
    local python=${PYTHON:-python3}
    "$python" -m pip --version >/dev/null 2>&1 || need_packages "$script" python3-pip=pip3 || return 1
    echo "$script: pip install $*" >&2
    local pip=("$python" -m pip install --quiet --disable-pip-version-check "$@")
    if ! out=$(PIP_ROOT_USER_ACTION=ignore "${pip[@]}" 2>&1); then
        if grep -q externally-managed <<<"$out"; then
            PIP_ROOT_USER_ACTION=ignore "${pip[@]}" --break-system-packages >&2 || return 1
        else
            echo "$out" >&2
            echo "$script: pip install $* failed" >&2
            return 1
        fi
    fi
    if command -v pyenv >/dev/null; then pyenv rehash || true; fi # new console scripts on PATH
    eval "$check" >/dev/null 2>&1 || {
        echo "$script: installed $* but '$check' still fails" >&2
        return 1
    }
}
