# shellcheck shell=bash
# Sourced by the scripts that need root (tests/run, tests/bench/*.sh, tests/vm/run.sh: loop
# devices, mounts, drop_caches). They must work both ways a user gets root:
# - as root itself (a root shell, a container, CI): nothing to do; there may be no sudo at all;
# - through `sudo SCRIPT`: sudo's secure_path drops the invoking user's ~/.cargo/bin, so cargo is
#   not found. Then that user's rustup toolchain is put back on PATH (read only: cargo keeps
#   root's own CARGO_HOME for downloads), and `give_back_target` hands the files the run created
#   under target/ back to that user, whose own cargo could not replace root-owned files.
#
# usage: . tests/helpers/as-root.sh; require_root "WHAT NEEDS IT"   (then cargo is on PATH)

# require_root REASON: exits unless root; under sudo, finds the invoking user's cargo.
require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$0: $1 need root: run it as root, or as \`sudo $0\`" >&2
    exit 1
  fi
  command -v cargo >/dev/null && return 0
  local home
  if [ -n "${SUDO_USER:-}" ] && home=$(getent passwd "$SUDO_USER" | cut -d: -f6) &&
     [ -x "$home/.cargo/bin/cargo" ]; then
    export PATH="$home/.cargo/bin:$PATH"
    export RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}"
    return 0
  fi
  echo "$0: cargo is not on root's PATH${SUDO_USER:+ nor in ~$SUDO_USER/.cargo/bin}: install Rust (rustup) first" >&2
  exit 1
}

# give_back_target: under sudo, gives the target directory back to the user who ran sudo (for an
# EXIT trap; run from the repository's root).
give_back_target() {
  local dir=${CARGO_TARGET_DIR:-target}
  if [ -n "${SUDO_UID:-}" ] && [ "$SUDO_UID" != 0 ] && [ -d "$dir" ]; then
    chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$dir" || true
  fi
}
