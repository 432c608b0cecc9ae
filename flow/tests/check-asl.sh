#!/usr/bin/env bash
# Validates flow/statemachine.asl.json: statelint (pinned by tests/helpers/setup-deps.sh) on the
# definition as written and as CloudFormation renders it (every ${Name} substituted), and
# check_asl.py's checks (placeholders: well-formed, documented in flow/README.md, inside JSON
# strings, none left after substitution; a Catch on every Task; every Wait behind the poll bound).
# First it proves that the validator catches what it must: a copy whose Next names a missing
# state has to be refused, or the check itself is broken. Exit 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
DEFINITION=${1:-flow/statemachine.asl.json}
command -v statelint >/dev/null || { echo "check-asl: statelint missing (bash tests/helpers/setup-deps.sh)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The validator must refuse a transition to a missing state (moto and cfn-lint accept one).
"$PYTHON" - "$DEFINITION" "$work/broken.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["States"][d["StartAt"]]["Next"] = "NoSuchState"
json.dump(d, open(sys.argv[2], "w"))
EOF
if out=$(statelint "$work/broken.json" 2>&1) || ! grep -q 'No state found named "NoSuchState"' <<<"$out"; then
  echo "check-asl: statelint did not refuse a Next to a missing state:" >&2
  echo "$out" >&2
  exit 1
fi

"$PYTHON" flow/tests/check_asl.py "$DEFINITION" flow/README.md "$work/rendered.json"
statelint "$DEFINITION"
statelint "$work/rendered.json"
echo "check-asl: $DEFINITION valid (statelint $(statelint --version | cut -d' ' -f1), as written and rendered)"
