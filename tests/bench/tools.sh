# shellcheck shell=bash
# Sourced by tests/bench/s3.sh and tests/bench/table.sh: the clients and servers their S3 rows use,
# installed when missing (idempotent), at the versions every recorded figure was measured with.
#   ensure_awscli_v1   awscli v1 for $PYTHON; sets AWS=(PYTHON -m awscli): v1 as a module, so no
#                      other `aws` on PATH is used (Debian's v2 ignores AWS_ENDPOINT_URL)
#   ensure_s3s_fs      s3s-fs $S3S_FS_VERSION (cargo install, ≈ 1.5 min once); sets S3S_FS
# Expects PYTHON to be set. Exits the sourcing script on failure.

S3S_FS_VERSION=0.14.1

# pip install for $PYTHON; Debian's own python3 needs --break-system-packages (PEP 668).
pip_install() {
  local pip=(timeout 900 "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@") out
  echo "# pip install $*"
  if ! out=$(PIP_ROOT_USER_ACTION=ignore "${pip[@]}" 2>&1); then
    if grep -q externally-managed <<<"$out"; then
      PIP_ROOT_USER_ACTION=ignore "${pip[@]}" --break-system-packages
    else
      echo "$out" >&2; exit 1
    fi
  fi
}

ensure_awscli_v1() {
  AWS=("$PYTHON" -m awscli)
  aws_v1() { timeout 60 "${AWS[@]}" --version 2>&1 | grep -q '^aws-cli/1\.'; }
  aws_v1 || pip_install awscli
  aws_v1 || { echo "awscli v1 is not importable by $PYTHON after pip install" >&2; exit 1; }
}

ensure_s3s_fs() {
  s3s_ok() { timeout 10 "$1" --version 2>/dev/null | grep -qx "s3s-fs $S3S_FS_VERSION"; }
  S3S_FS=$(command -v s3s-fs || true)
  if [ -z "$S3S_FS" ] || ! s3s_ok "$S3S_FS"; then
    S3S_FS=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs
    if ! s3s_ok "$S3S_FS"; then
      echo "# cargo install s3s-fs --version $S3S_FS_VERSION (about 1.5 min)"
      timeout 1800 cargo install -q s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
      s3s_ok "$S3S_FS" || { echo "s3s-fs $S3S_FS_VERSION not found at $S3S_FS after cargo install" >&2; exit 1; }
    fi
  fi
}
