#!/usr/bin/env bash
# Lints the repository's scripts, failing on any finding: shellcheck on every shell script (by
# name *.sh or by a sh/bash shebang) and ruff (pinned by setup-deps.sh; its default rules: pyflakes
# and pycodestyle's errors) on every Python file. Both tools come from tests/helpers/setup-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

shell=() python=()
while IFS= read -r -d '' file; do
  case $file in
    *.py) python+=("$file") ;;
    *.sh) shell+=("$file") ;;
    *) if head -n 1 "$file" | grep -qE '^#!.*[/ ](ba|da)?sh( |$)'; then shell+=("$file"); fi ;;
  esac
done < <(git ls-files -z --cached --others --exclude-standard)

# -x: follow `. tests/helpers/as-root.sh` (paths are relative to the repository's root).
shellcheck -x "${shell[@]}"
"$PYTHON" -m ruff check --no-cache --quiet "${python[@]}"
echo "lint-scripts: ${#shell[@]} shell scripts and ${#python[@]} Python files clean"
