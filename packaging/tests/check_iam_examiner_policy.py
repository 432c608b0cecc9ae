#!/usr/bin/env python3
"""Checks packaging/iam-examiner-policy.json, the examiner's read-only policy, against what
`verify` and `custody export-key` call.

For every option set (custody key or none, SSE-KMS key or none, prefix or none) the rendered
policy must grant exactly:

- s3:GetObject and s3:GetObjectVersion (verify reads the version a manifest names) on
  PREFIX/*/disk_evidence/* and PREFIX/*/memory_evidence/*, the folders the collectors write;
  these are the actions of the S3 calls under agent/src/cmd/verify (check_iam_policy.py's
  scanner), which must need nothing else;
- s3:ListBucket on the evidence bucket, unconditioned: S3 answers a GetObject of a missing key
  with 404 only to a caller that may list the bucket, and a condition on s3:prefix is absent from
  that request (so false). Without it an unsigned capture's absent NAME.custody.json reads as
  403, which verify cannot tell from a file that is there;
- with a custody key: kms:Verify on that key for RAW messages with ECDSA_SHA_256 or
  RSASSA_PSS_SHA_256 (check_iam_policy.SIGNING_CONDITION, the collector's Sign condition), and
  kms:GetPublicKey on it unconditioned (the request has neither key): exactly the actions
  check_iam_policy.TABLE marks as the examiner's;
- with an SSE-KMS key: kms:Decrypt on it through S3 only;
and nothing else: no write, delete, tagging, kms:Sign, no wildcard action, no Deny.
check_flow_stack.py's Service Authorization Reference rules hold too. A self-test breaks the
policy in each of these ways and expects a failure.
"""

import copy
import json
import sys

import check_flow_stack
import check_iam_policy as iam
from check_iam_policy import (
    ROOT,
    SAMPLE,
    SIGNING_CONDITION,
    Failed,
    grants_exactly,
    normal,
    render,
)

TEMPLATE = ROOT / "packaging" / "iam-examiner-policy.json"
RESOURCE = "ExaminerPolicy"
VERIFY_SOURCES = [ROOT / "agent" / "src" / "cmd" / "verify"]
FOLDERS = ("disk_evidence", "memory_evidence")


def examiner_calls():
    """The actions of verify's own S3 calls, and the KMS actions TABLE gives the examiner."""
    s3 = {action for _, needed, _ in iam.scan_calls(VERIFY_SOURCES) for action, _ in needed
          if not action.startswith("kms:")}
    kms = {a for actions, _, option in iam.TABLE.values() if option == "examiner"
           for a in actions}
    return s3, kms


def expected(params):
    partition, bucket = params["AWS::Partition"], params["Bucket"]
    base = f"arn:{partition}:s3:::{bucket}/" + (f"{params['Prefix']}/" if params["Prefix"] else "")
    s3_actions, kms_actions = examiner_calls()
    if s3_actions != {"s3:GetObject", "s3:GetObjectVersion"}:
        raise Failed(f"verify's S3 calls need {sorted(s3_actions)}; teach this check")
    if kms_actions != {"kms:Verify", "kms:GetPublicKey"}:
        raise Failed(f"TABLE gives the examiner {sorted(kms_actions)}; teach this check")
    want = {(a, f"{base}*/{folder}/*", "{}") for a in s3_actions for folder in FOLDERS}
    want.add(("s3:ListBucket", f"arn:{partition}:s3:::{bucket}", "{}"))
    key = params["CustodyKmsKeyArn"]
    if key:
        want.add(("kms:Verify", key, json.dumps({"StringEquals": normal(SIGNING_CONDITION)},
                                                sort_keys=True)))
        want.add(("kms:GetPublicKey", key, "{}"))
    if params["KmsKeyArn"]:
        via = {"StringEquals": {"kms:ViaService": f"s3.{params['AWS::Region']}.amazonaws.com"}}
        want.add(("kms:Decrypt", params["KmsKeyArn"], json.dumps(via, sort_keys=True)))
    return want


def check(policy, params):
    grants_exactly(policy, expected(params), "an examiner")


def variants():
    on = {k: SAMPLE[k] for k in ("Bucket", "Prefix", "CustodyKmsKeyArn", "KmsKeyArn",
                                 "AWS::Partition", "AWS::Region", "AWS::AccountId")}
    yield "all options", on
    yield "no options", dict(on, Prefix="", CustodyKmsKeyArn="", KmsKeyArn="")
    yield "no prefix", dict(on, Prefix="")
    yield "no custody key", dict(on, CustodyKmsKeyArn="")
    yield "another partition", dict(on, **{"AWS::Region": "us-gov-west-1",
                                          "AWS::Partition": "aws-us-gov"})


def self_test(template):
    params = dict(next(variants())[1])
    base = render(template, params, RESOURCE)

    def sid(statements, name):
        return next(s for s in statements if s.get("Sid") == name)

    for what, change in [
        ("a write", lambda s: sid(s, "ReadEvidence")["Action"].append("s3:PutObject")),
        ("a delete", lambda s: sid(s, "ReadEvidence")["Action"].append("s3:DeleteObject")),
        ("the whole bucket", lambda s: sid(s, "ReadEvidence").update(
            Resource="arn:aws:s3:::evidence-bucket/*")),
        ("memory evidence left out", lambda s: sid(s, "ReadEvidence")["Resource"].pop()),
        ("no version reads", lambda s: sid(s, "ReadEvidence")["Action"].remove(
            "s3:GetObjectVersion")),
        ("a listing by prefix only (absent custody files read as 403)", lambda s: sid(
            s, "TellAbsentFromDenied").update(Condition={"StringLike": {
                "s3:prefix": "cases/collector/*"}})),
        ("kms:Sign", lambda s: sid(s, "VerifyCustodySignatures")["Action"].append("kms:Sign")),
        ("kms:Verify on every key", lambda s: sid(s, "VerifyCustodySignatures").update(
            Resource="arn:aws:kms:eu-west-1:123456789012:key/*")),
        ("kms:Verify of any message", lambda s: sid(s, "VerifyCustodySignatures").pop(
            "Condition")),
        ("kms:GetPublicKey under a message-type condition (void)", lambda s: sid(
            s, "ExportCustodyPublicKey").update(Condition={"StringEquals": {
                "kms:MessageType": "RAW"}})),
        ("no kms:GetPublicKey", lambda s: s.remove(sid(s, "ExportCustodyPublicKey"))),
        ("kms:DescribeKey", lambda s: sid(s, "ExportCustodyPublicKey")["Action"].append(
            "kms:DescribeKey")),
        ("decrypt outside S3", lambda s: sid(s, "DecryptEvidence").pop("Condition")),
        ("a wildcard action", lambda s: sid(s, "ReadEvidence").update(Action=["s3:Get*"])),
        ("a Deny", lambda s: s.append({"Effect": "Deny", "Action": "s3:GetObject",
                                       "Resource": "*"})),
    ]:
        policy = copy.deepcopy(base)
        change(policy["Statement"])
        try:
            check(policy, params)
        except Failed:
            continue
        raise Failed(f"self-test: the check accepted {what}")


def main():
    template = json.loads(TEMPLATE.read_text())
    sar, sar_keys = check_flow_stack.reference()
    count = 0
    try:
        self_test(template)
        for name, params in variants():
            try:
                policy = render(template, params, RESOURCE)
                check(policy, params)
                check_flow_stack.check_wildcards(TEMPLATE.name, policy, False, sar, sar_keys)
            except (Failed, check_flow_stack.Failed) as err:
                raise Failed(f"{name}: {err}") from None
            count += 1
    except Failed as err:
        print(f"check_iam_examiner_policy: {TEMPLATE.relative_to(ROOT)}: {err}", file=sys.stderr)
        return 1
    print(f"check_iam_examiner_policy: the examiner's policy reads the evidence folders and "
          f"checks custody signatures, nothing more, in {count} option sets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
