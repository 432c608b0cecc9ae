#!/usr/bin/env bash
# Checks the AWS documents of packaging/ and image-builder/, fast (a few seconds, no network):
# cfn-lint (pinned by tests/helpers/setup-deps.sh) on every CloudFormation template, the IAM
# policy against the SDK calls the code makes (check_iam_policy.py), the memory capture policy
# against the collector policy's evidence statements (check_iam_memory_policy.py), the examiner's
# read-only policy against what verify and custody export-key call (check_iam_examiner_policy.py),
# the flow's stack
# (flow/template.yaml, flow/member-role.yaml: its roles against those calls and the state
# machine's definition, no wildcard action; check_flow_stack.py), and the structure of the
# AWSTOE component and SSM documents (check_docs.py), the memory SSM document's script run with a
# stand-in collector (run_memory_doc.py: hash and architecture refusals, exit codes, the binary
# removed), and the systemd unit (check-unit.sh: its security exposure and `systemd-analyze
# verify`). tests/run calls it with the linters.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
# cfn-lint and PyYAML are pinned pip packages, not Debian ones: name them rather than guess a pip.
if ! command -v cfn-lint >/dev/null || ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
  echo "check-docs: needs cfn-lint and PyYAML for $PYTHON (tests/helpers/setup-deps.sh installs the pinned ones)" >&2
  exit 1
fi

templates=()
while IFS= read -r -d '' file; do
  if grep -q AWSTemplateFormatVersion "$file"; then templates+=("$file"); fi
done < <(git ls-files -z --cached --others --exclude-standard -- '*.json' '*.yaml' '*.yml')
[ ${#templates[@]} -gt 0 ] || { echo "check-docs: no CloudFormation template found" >&2; exit 1; }

cfn-lint -- "${templates[@]}"
echo "check-docs: cfn-lint clean on ${templates[*]}"
"$PYTHON" packaging/tests/check_iam_policy.py
"$PYTHON" packaging/tests/check_iam_memory_policy.py
"$PYTHON" packaging/tests/check_iam_examiner_policy.py
"$PYTHON" packaging/tests/check_flow_stack.py
"$PYTHON" packaging/tests/check_docs.py
"$PYTHON" packaging/tests/run_memory_doc.py
packaging/tests/check-unit.sh
