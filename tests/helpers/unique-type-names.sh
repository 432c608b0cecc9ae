#!/usr/bin/env bash
# One meaning per type name (issue 20): fails when a struct, enum or trait name is defined more than
# once in the workspace's sources (tests/ aside, where each suite may have its own small helpers).
# `Error` meant three things and `Refusal` a refused disk and a refused configuration; a reader who
# greps a name should land on one definition.
set -euo pipefail
cd "$(dirname "$0")/../.."
dups=$(git grep -hoE '^\s*(pub(\([a-z]+\))? )?(struct|enum|trait) [A-Z][A-Za-z0-9]*' -- '*.rs' ':!tests/' |
  awk '{print $NF}' | sort | uniq -d)
if [ -n "$dups" ]; then
  echo "type names defined more than once (give each meaning its own name):" >&2
  for name in $dups; do
    git grep -nE "^\s*(pub(\([a-z]+\))? )?(struct|enum|trait) $name\b" -- '*.rs' ':!tests/' >&2
  done
  exit 1
fi
echo "type names: each defined once"
