#!/usr/bin/env python3
"""Checks packaging/iam-memory-policy.json, the suspect role's policy for a memory capture
(packaging/ssm/forensic-collector-memory.yaml), against the collector's own policy.

The memory capture is `forensic-collector acquire memory:// --dest s3://… --task-token …`: the
same S3 writes as a disk acquisition (check_iam_policy.py derives those from the SDK calls in
the sources and checks packaging/iam-policy.json against them), into memory_evidence/ instead of
disk_evidence/, plus the task token's answer. So for every option set (KMS key, Object Lock,
prefix or none, one incident or all) the rendered memory policy must grant exactly:

- the collector policy's evidence statements (write, read back, remove a failed run's objects,
  list open uploads, Object Lock, KMS through S3 only, kms:Sign on the custody key alone), each with its conditions, on
  PREFIX/SCOPE/memory_evidence/* where the collector has PREFIX/*/disk_evidence/*; SCOPE is the
  Incident parameter, or `*` when it is empty;
- s3:ListBucket on the evidence bucket for s3:prefix PREFIX/SCOPE/memory_evidence/* only;
- s3:GetObject on TOOLSPREFIX/forensic-collector-x86_64 and …-aarch64 and no other key, and
  s3:ListBucket on the tools bucket for s3:prefix KEY/ of those two keys only (the SSM agent's
  aws:downloadContent lists the key as a folder, prefix KEY/, before it gets the object);
- states:SendTaskSuccess and SendTaskFailure on Resource "*" (the Service Authorization
  Reference lists no resource type for them: the token names the execution), limited to the
  stack's region; not SendTaskHeartbeat (the collector sends none);
and nothing else: no logs, no snapshots, no queue, no wildcard action. check_flow_stack.py's
Service Authorization Reference rules hold too (every action exists, condition keys and ARN
shapes fit their actions, Resource "*" only for actions without a resource type — the reference
lists none for the task token actions). A self-test breaks the policy in each of these
ways and expects a failure.

`--render Bucket=… ToolsBucket=… ToolsPrefix=… Region=… [Prefix=… Incident=… KmsKeyArn=…]`
prints the plain policy document, to attach to a role without CloudFormation.
"""

import copy
import json
import sys

import check_flow_stack
from check_iam_policy import (
    OFF,
    ROOT,
    SAMPLE,
    Failed,
    grants_exactly,
    listify,
    normal,
    render,
)
from check_iam_policy import TEMPLATE as COLLECTOR_TEMPLATE

TEMPLATE = ROOT / "packaging" / "iam-memory-policy.json"
RESOURCE = "MemoryCapturePolicy"
# The collector policy's statements that write and manage evidence: the memory policy has each.
EVIDENCE_SIDS = {"WriteEvidence", "ReadOwnEvidence", "RemoveFailedRunObjects", "ListOpenUploads",
                 "CheckObjectLock", "SetRetention", "SetLegalHold", "EncryptEvidence",
                 "SignCustodyStatements"}
BINARIES = ("forensic-collector-x86_64", "forensic-collector-aarch64")
# `acquire --task-token` answers once at the end and sends no heartbeats
# (agent/src/cmd/acquire/task.rs).
TASK_TOKEN_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure")
MEMORY_SAMPLE = {"ToolsBucket": "forensic-tools", "ToolsPrefix": "forensic-collector/1.4.0",
                 "Incident": "INC-2026-0042"}


def expected(collector, params):
    """The grants the memory policy must have with `params`, from the collector's policy."""
    scope = params["Incident"] or "*"
    partition = params["AWS::Partition"]
    want = set()
    for statement in collector["Statement"]:
        if statement.get("Sid") not in EVIDENCE_SIDS:
            continue
        condition = json.dumps(normal(statement.get("Condition", {})), sort_keys=True)
        for action in listify(statement["Action"]):
            for resource in listify(statement["Resource"]):
                if resource.endswith("/*/disk_evidence/*"):
                    resource = resource.replace("/*/disk_evidence/*",
                                                f"/{scope}/memory_evidence/*")
                elif resource not in (f"arn:{partition}:s3:::{params['Bucket']}",
                                      params["KmsKeyArn"], params["CustodyKmsKeyArn"]):
                    raise Failed(f"collector policy: {statement['Sid']}: {resource} is neither "
                                 "the evidence folders nor the bucket; teach this check")
                want.add((action, resource, condition))
    listing = (f"{params['Prefix']}/" if params["Prefix"] else "") + f"{scope}/memory_evidence/*"
    want.add(("s3:ListBucket", f"arn:{partition}:s3:::{params['Bucket']}",
              json.dumps({"StringLike": {"s3:prefix": listing}}, sort_keys=True)))
    tools = f"arn:{partition}:s3:::{params['ToolsBucket']}"
    keys = [f"{params['ToolsPrefix']}/{name}" for name in BINARIES]
    want |= {("s3:GetObject", f"{tools}/{key}", "{}") for key in keys}
    want.add(("s3:ListBucket", tools, json.dumps(
        normal({"StringEquals": {"s3:prefix": [f"{key}/" for key in keys]}}), sort_keys=True)))
    region = json.dumps({"StringEquals": {"aws:RequestedRegion": params["AWS::Region"]}},
                        sort_keys=True)
    want |= {(action, "*", region) for action in TASK_TOKEN_ACTIONS}
    return want


def check(policy, collector, params):
    """Raises Failed unless `policy` grants exactly expected(collector, params)."""
    grants_exactly(policy, expected(collector, params), "a memory capture")


def variants():
    """Option sets: everything on, everything off, no prefix, every incident, another region."""
    on = dict(SAMPLE, **MEMORY_SAMPLE, SnapshotTagValue="", SnapshotKmsKeyArn="")
    off = dict(on, **OFF)
    yield "all options", on
    yield "no options", off
    yield "no prefix", dict(on, Prefix="")
    yield "every incident", dict(on, Incident="")
    yield "every incident, no prefix", dict(off, Incident="", Prefix="")
    yield "another partition", dict(on, **{"AWS::Region": "us-gov-west-1",
                                          "AWS::Partition": "aws-us-gov"})
    for key in ("KmsKeyArn", "ObjectLockRetention", "ObjectLockLegalHold", "RequireObjectLock",
                "CustodyKmsKeyArn"):
        yield f"only {key}", dict(off, **{key: SAMPLE[key]})


def self_test(template, collector_template):
    """Each way of breaking the policy must fail the check."""
    params = dict(next(variants())[1])
    base = render(template, params, RESOURCE)
    collector = render(collector_template, params)

    def sid(statements, name):
        return next(s for s in statements if s.get("Sid") == name)

    tools = "arn:aws:s3:::forensic-tools"
    for what, change in [
        ("the whole evidence bucket", lambda s: sid(s, "WriteEvidence").update(
            Resource="arn:aws:s3:::evidence-bucket/*")),
        ("every incident when one is given", lambda s: sid(s, "WriteEvidence").update(
            Resource="arn:aws:s3:::evidence-bucket/cases/collector/*/memory_evidence/*")),
        ("disk_evidence instead of memory_evidence", lambda s: sid(s, "WriteEvidence").update(
            Resource="arn:aws:s3:::evidence-bucket/cases/collector/INC-2026-0042/"
                     "disk_evidence/*")),
        ("no abort of a multipart upload", lambda s: sid(s, "WriteEvidence")["Action"].remove(
            "s3:AbortMultipartUpload")),
        ("a listing without s3:prefix", lambda s: sid(s, "ListEvidencePrefix").pop(
            "Condition")),
        ("KMS without kms:ViaService", lambda s: sid(s, "EncryptEvidence").pop("Condition")),
        ("no kms:Sign with a custody key", lambda s: s.remove(sid(s, "SignCustodyStatements"))),
        ("kms:Sign on every key", lambda s: sid(s, "SignCustodyStatements").update(
            Resource="arn:aws:kms:eu-west-1:123456789012:key/*")),
        ("kms:Sign of any message", lambda s: sid(s, "SignCustodyStatements").pop("Condition")),
        ("kms:Verify beside kms:Sign", lambda s: sid(s, "SignCustodyStatements")[
            "Action"].append("kms:Verify")),
        ("the whole tools prefix", lambda s: sid(s, "ReadCollectorBinaries").update(
            Resource=f"{tools}/forensic-collector/1.4.0/*")),
        ("one binary only", lambda s: sid(s, "ReadCollectorBinaries").update(
            Resource=f"{tools}/forensic-collector/1.4.0/forensic-collector-x86_64")),
        ("a tools listing of the whole bucket", lambda s: sid(s, "FindCollectorBinaries").pop(
            "Condition")),
        ("no failure answer", lambda s: sid(s, "AnswerTaskToken")["Action"].remove(
            "states:SendTaskFailure")),
        ("heartbeats the collector never sends", lambda s: sid(s, "AnswerTaskToken")[
            "Action"].append("states:SendTaskHeartbeat")),
        ("another Step Functions action", lambda s: sid(s, "AnswerTaskToken")["Action"].append(
            "states:StartExecution")),
        ("task tokens in every region", lambda s: sid(s, "AnswerTaskToken").pop("Condition")),
        ("a wildcard action", lambda s: sid(s, "AnswerTaskToken").update(
            Action=["states:SendTask*"])),
        ("logs the capture does not write", lambda s: s.append({
            "Sid": "Logs", "Effect": "Allow", "Action": ["logs:PutLogEvents"],
            "Resource": "arn:aws:logs:eu-west-1:123456789012:log-group:x:log-stream:*"})),
        ("a Deny", lambda s: s.append({"Effect": "Deny", "Action": "s3:GetObject",
                                       "Resource": "*"})),
    ]:
        policy = copy.deepcopy(base)
        change(policy["Statement"])
        try:
            check(policy, collector, params)
        except Failed:
            continue
        raise Failed(f"self-test: the check accepted {what}")


def main(argv):
    template = json.loads(TEMPLATE.read_text())
    collector_template = json.loads(COLLECTOR_TEMPLATE.read_text())
    if argv[1:2] == ["--render"]:
        params = dict(SAMPLE, **OFF, Prefix="", Incident="")
        for arg in argv[2:]:
            key, _, value = arg.partition("=")
            params[{"Account": "AWS::AccountId", "Region": "AWS::Region",
                    "Partition": "AWS::Partition"}.get(key, key)] = value
        given = {k.partition("=")[0] for k in argv[2:]}
        lacking = sorted({"Bucket", "ToolsBucket", "ToolsPrefix", "Region"} - given)
        if lacking:
            print(f"check_iam_memory_policy --render: give {', '.join(lacking)} (NAME=VALUE)",
                  file=sys.stderr)
            return 2
        print(json.dumps(render(template, params, RESOURCE), indent=2))
        return 0
    count = 0
    sar, sar_keys = check_flow_stack.reference()
    try:
        self_test(template, collector_template)
        for name, params in variants():
            try:
                policy = render(template, params, RESOURCE)
                check(policy, render(collector_template, params), params)
                check_flow_stack.check_wildcards(TEMPLATE.name, policy, False, sar, sar_keys)
            except (Failed, check_flow_stack.Failed) as err:
                raise Failed(f"{name}: {err}") from None
            count += 1
    except Failed as err:
        print(f"check_iam_memory_policy: {TEMPLATE.relative_to(ROOT)}: {err}", file=sys.stderr)
        return 1
    print(f"check_iam_memory_policy: the memory capture policy matches the collector's evidence "
          f"statements on memory_evidence/, the two binaries and the task token in {count} "
          "option sets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
