#!/usr/bin/env python3
"""Checks packaging/iam-policy.json against the AWS calls the code makes.

The policy is a CloudFormation template (parameters for the bucket, prefix, log groups, KMS key
and Object Lock options). This script renders its policy document for sample parameters (a
small resolver for the intrinsic functions the template uses) and fails when:

- an action or resource is a wildcard, or a resource reaches beyond its scope (another bucket,
  prefix, log group or key; a snapshot of another region or without the collector's tag);
- the policy grants an action no SDK call in the code needs, or lacks one a call needs.

The custody signing key (CustodyKmsKeyArn, issue 23) gets kms:Sign alone, on that key ARN, for RAW
messages with ECDSA_SHA_256 or RSASSA_PSS_SHA_256 only, and no kms:ViaService (the agent calls KMS
itself); kms:Verify, kms:GetPublicKey and kms:DescribeKey are refused here: the first two are the
examiner's (packaging/iam-examiner-policy.json), the agent never calls the third.

One resource "*" is allowed, for the actions in STAR_ONLY alone (each says why: the action has no
resource-level permission), and only limited to the stack's region (`aws:RequestedRegion`).

The calls are found by scanning imaging/src and agent/src for SDK operation builders
(`client.put_object()`, `ebs.get_snapshot_block()`, …: a receiver named `client` or after its
service) and the request options that change the permission they need (`version_id`, Object Lock
headers); TABLE maps them to IAM actions. A `.send()` the scanner cannot tie to an operation, or an
operation missing from TABLE, is a failure: a new AWS call must be added here and to the policy
together.

`--render Bucket=… Prefix=… [Account=… Region=… KmsKeyArn=… ObjectLockRetention=true
SnapshotTagValue=… SnapshotKmsKeyArn=… …]` prints the plain policy document instead, for attaching
to an existing role.
"""

import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "packaging" / "iam-policy.json"
SOURCES = [ROOT / "imaging" / "src", ROOT / "agent" / "src"]

# SDK operation -> (IAM actions, resource kind, option that makes the call happen or None).
# Kinds: object (under the evidence prefix), bucket, group (log group), stream (log stream),
# snapshot (this region's snapshots carrying the collector's tag), any ("*", see STAR_ONLY).
# Sources: the Amazon S3, CloudWatch Logs, Amazon EBS and Amazon EC2 "Actions, resources and
# condition keys" pages of the Service Authorization Reference.
TABLE = {
    # PutObject, and every step of a multipart upload, is s3:PutObject.
    "put_object": (["s3:PutObject"], "object", None),
    "create_multipart_upload": (["s3:PutObject"], "object", None),
    "upload_part": (["s3:PutObject"], "object", None),
    "complete_multipart_upload": (["s3:PutObject"], "object", None),
    "abort_multipart_upload": (["s3:AbortMultipartUpload"], "object", None),
    # HeadObject is authorised as s3:GetObject.
    "head_object": (["s3:GetObject"], "object", None),
    "get_object": (["s3:GetObject"], "object", None),
    "delete_object": (["s3:DeleteObject"], "object", None),
    "put_object_tagging": (["s3:PutObjectTagging"], "object", None),
    "put_object_retention": (["s3:PutObjectRetention"], "object", "retention"),
    "put_object_legal_hold": (["s3:PutObjectLegalHold"], "object", "legal_hold"),
    "list_objects_v2": (["s3:ListBucket"], "bucket", None),
    "list_multipart_uploads": (["s3:ListBucketMultipartUploads"], "bucket", None),
    "get_object_lock_configuration": (
        ["s3:GetBucketObjectLockConfiguration"], "bucket", "object_lock"),
    "create_log_group": (["logs:CreateLogGroup"], "group", None),
    "create_log_stream": (["logs:CreateLogStream"], "group", None),
    "put_log_events": (["logs:PutLogEvents"], "stream", None),
    # The EBS direct APIs authorise on the snapshot: arn:${Partition}:ec2:${Region}::snapshot/ID
    # (no account in the ARN), condition keys aws:ResourceTag/KEY only.
    "list_snapshot_blocks": (["ebs:ListSnapshotBlocks"], "snapshot", "snapshots"),
    "get_snapshot_block": (["ebs:GetSnapshotBlock"], "snapshot", "snapshots"),
    # Optional to the agent (the manifest's volume ID and start time; without it the run goes on
    # and records why), granted with the snapshot permissions.
    "describe_snapshots": (["ec2:DescribeSnapshots"], "any", "snapshots"),
    # Queue mode (`watch` with job.queue_url, issue 21): jobs from an SQS queue, results and
    # heartbeats through the job's Step Functions task token. Only the flow's collector role
    # (flow/template.yaml, checked by check_flow_stack.py) has queues (the job queue and the
    # volume job queue, its collectors reading one each); this template has none.
    "receive_message": (["sqs:ReceiveMessage"], "queue", "queue"),
    "delete_message": (["sqs:DeleteMessage"], "queue", "queue"),
    "change_message_visibility": (["sqs:ChangeMessageVisibility"], "queue", "queue"),
    "send_task_success": (["states:SendTaskSuccess"], "any", "queue"),
    "send_task_failure": (["states:SendTaskFailure"], "any", "queue"),
    "send_task_heartbeat": (["states:SendTaskHeartbeat"], "any", "queue"),
    # Custody (issue 23). Who the run's calls are made as: STS GetCallerIdentity needs no
    # permission (IAM cannot deny it), so it grants nothing.
    "get_caller_identity": ([], "any", None),
    # The statement's signature, and the probe signature before the first byte: RAW, with
    # ECDSA_SHA_256 or RSASSA_PSS_SHA_256 (agent/src/custody/kms.rs), on the custody key alone.
    "sign": (["kms:Sign"], "custody_key", "custody"),
    # `verify` (online) and `custody export-key`: the examiner's, never the collector role's
    # (packaging/iam-examiner-policy.json, check_iam_examiner_policy.py).
    "verify": (["kms:Verify"], "custody_key", "examiner"),
    "get_public_key": (["kms:GetPublicKey"], "custody_key", "examiner"),
}
# The custody key's actions: called directly (never through another service, so no
# kms:ViaService), on the one key the CustodyKmsKeyArn parameter names.
CUSTODY_KEY_ACTIONS = {"kms:Sign", "kms:Verify", "kms:GetPublicKey"}
# What a Sign or Verify statement must be limited to: the messages and algorithms the agent
# signs with (imaging's SigningAlgorithm::ALL, always RAW), so the role cannot sign digests
# made elsewhere.
SIGNING_CONDITION = {"kms:MessageType": "RAW",
                     "kms:SigningAlgorithm": ["ECDSA_SHA_256", "RSASSA_PSS_SHA_256"]}

# The only actions that may have Resource "*", and why. Each must also be limited to the stack's
# region with aws:RequestedRegion, the one narrowing IAM offers such an action.
STAR_ONLY = {
    "ec2:DescribeSnapshots": "EC2's Describe* actions support no resource-level permission: "
                             "the Service Authorization Reference lists no resource type for it",
    **{f"states:{name}": "the Service Authorization Reference lists no resource type for the "
                          "task token actions: the token itself names the execution"
       for name in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")},
}
# The tag whose value (SnapshotTagValue) admits a snapshot. CloudFormation cannot put a parameter
# into a condition key's name, so the key is fixed.
SNAPSHOT_TAG = "aws:ResourceTag/forensic-collector"

# A request option (seen between the operation and its `.send()`) -> what it adds.
# A version ID turns an object action into its *Version form.
VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
}
# Object Lock headers on a write need the matching permission besides s3:PutObject.
LOCK_OPTIONS = {
    "object_lock_mode": ("s3:PutObjectRetention", "retention"),
    "object_lock_retain_until_date": ("s3:PutObjectRetention", "retention"),
    "object_lock_legal_hold_status": ("s3:PutObjectLegalHold", "legal_hold"),
}
# With an SSE-KMS key, S3 calls KMS on the caller's behalf: writes need a data key, multipart
# uploads and reads (including HeadObject with checksum mode) need to decrypt it.
KMS = {
    "put_object": ["kms:GenerateDataKey"],
    "create_multipart_upload": ["kms:GenerateDataKey", "kms:Decrypt"],
    "upload_part": ["kms:GenerateDataKey", "kms:Decrypt"],
    "complete_multipart_upload": ["kms:Decrypt"],
    "head_object": ["kms:Decrypt"],
    "get_object": ["kms:Decrypt"],
}
# On an encrypted snapshot, EBS decrypts the snapshot's data key with the caller's permission
# (encryption context aws:ebs:id = the snapshot ID) before it returns a block.
SNAPSHOT_KMS = {
    "get_snapshot_block": ["kms:Decrypt"],
}

# kms:ViaService of each kind of key: the evidence key through S3, the snapshots' key through
# EBS. Which name EBS presents for the direct APIs is not documented; policies in the field that
# read snapshots through them (Datadog's agentless scanner) use ec2.REGION.
VIA = {
    "key": lambda region: {f"s3.{region}.amazonaws.com"},
    "snapshot_key": lambda region: {f"ec2.{region}.amazonaws.com",
                                    f"ebs.{region}.amazonaws.com"},
}

# The receiver is a client variable: `client`, or named after its service.
OPERATION = re.compile(r"\b(?:client|ebs|ec2|sqs|sfn|sts|kms)\s*\.\s*([a-z0-9_]+)\s*\(\s*\)")
# Methods of a client that are not AWS operations.
NOT_OPERATIONS = {"clone", "config"}
SEND = re.compile(r"\.\s*send\s*\(\s*\)")

SAMPLE = {
    "Bucket": "evidence-bucket",
    "Prefix": "cases/collector",
    "ReadinessLogGroup": "ForensicDiskReadiness",
    "CaptureLogGroup": "ForensicDiskCapture",
    "KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    "ObjectLockRetention": "true",
    "ObjectLockLegalHold": "true",
    "RequireObjectLock": "true",
    "AttachSsmManagedPolicy": "true",
    "SnapshotTagValue": "acquire",
    "SnapshotKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/11111111-1111-1111-1111-111111111111",
    "CustodyKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-2222-2222-222222222222",
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
}
OPTIONS = {
    "kms": lambda p: p["KmsKeyArn"] != "",
    "retention": lambda p: p["ObjectLockRetention"] == "true",
    "legal_hold": lambda p: p["ObjectLockLegalHold"] == "true",
    "object_lock": lambda p: "true" in (
        p["ObjectLockRetention"], p["ObjectLockLegalHold"], p["RequireObjectLock"]),
    "snapshots": lambda p: p["SnapshotTagValue"] != "",
    "snapshot_kms": lambda p: p["SnapshotTagValue"] != "" and p["SnapshotKmsKeyArn"] != "",
    # Job queues exist only in the flow's stack (JobQueueArns, its queues' ARNs, is its sample
    # parameter there).
    "queue": lambda p: bool(p.get("JobQueueArns")),
    "custody": lambda p: p.get("CustodyKmsKeyArn", "") != "",
    # Calls only `verify` and `custody export-key` make: no collector role needs them.
    "examiner": lambda p: False,
}
# Every option off (the --render default and the "no options" variant).
OFF = {"KmsKeyArn": "", "ObjectLockRetention": "false", "ObjectLockLegalHold": "false",
       "RequireObjectLock": "false", "SnapshotTagValue": "", "SnapshotKmsKeyArn": "",
       "CustodyKmsKeyArn": ""}


class Failed(Exception):
    """A finding: the message says what is wrong and where."""


def scan_calls(sources):
    """(operation, {(IAM action, resource kind): option or None}, where) for every SDK call in
    `sources`."""
    calls = []
    for root in sources:
        for path in sorted(root.rglob("*.rs")):
            text = path.read_text()
            ops = [m for m in OPERATION.finditer(text) if m.group(1) not in NOT_OPERATIONS]
            sends = SEND.findall(text)
            if len(sends) != len(ops):
                raise Failed(
                    f"{path.relative_to(ROOT)}: {len(sends)} .send() calls but {len(ops)} "
                    "`client.<operation>()` builders; the scanner cannot name every AWS call")
            for match in ops:
                op = match.group(1)
                where = f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
                if op not in TABLE:
                    raise Failed(f"{where}: SDK operation {op} is not in TABLE "
                                 "(add its IAM actions here and to the policy)")
                end = SEND.search(text, match.end())
                request = text[match.end():end.start() if end else len(text)]
                actions, kind, option = TABLE[op]
                needed = {(a, kind): option for a in actions}
                if re.search(r"\.\s*(?:set_)?version_id\s*\(", request):
                    needed.update({(VERSIONED[a], kind): option for a in actions
                                   if a in VERSIONED})
                for name, (action, lock) in LOCK_OPTIONS.items():
                    if re.search(rf"\.\s*(?:set_)?{name}\s*\(", request):
                        needed[(action, "object")] = lock
                for action in KMS.get(op, []):
                    needed[(action, "key")] = "kms"
                for action in SNAPSHOT_KMS.get(op, []):
                    needed[(action, "snapshot_key")] = "snapshot_kms"
                calls.append((op, needed, where))
    return calls


def kind_of(action, statement, region):
    """The resource kind an action applies to: from TABLE; a KMS action's from the statement's
    kms:ViaService (the evidence key through S3, the snapshots' key through EBS)."""
    if action in CUSTODY_KEY_ACTIONS:
        if "kms:ViaService" in json.dumps(statement.get("Condition", {})):
            raise Failed(f"{statement.get('Sid', '?')}: {action} is called directly, never through "
                         "another service: a kms:ViaService condition would refuse it")
        return "custody_key"
    if action.startswith("kms:"):
        via = set(listify(statement.get("Condition", {}).get("StringEquals", {})
                          .get("kms:ViaService", [])))
        for kind, services in VIA.items():
            if via and via <= services(region):
                return kind
        raise Failed(f"{statement.get('Sid', '?')}: {action} must be limited with kms:ViaService "
                     f"to one service ({sorted(via) or 'none given'})")
    for actions, kind, _ in TABLE.values():
        if action in actions:
            return kind
    for plain, versioned in VERSIONED.items():
        if action == versioned:
            return kind_of(plain, statement, region)
    if action in ("s3:PutObjectRetention", "s3:PutObjectLegalHold"):
        return "object"
    raise Failed(f"{action}: no SDK call in TABLE needs this action")


# ---- Rendering the template ------------------------------------------------------------------

NO_VALUE = object()


def render(template, params, resource="CollectorPolicy"):
    """The managed policy's (`resource`'s) document with `params`, intrinsic functions
    resolved."""
    conditions = {}

    def condition(name):
        if name not in conditions:
            conditions[name] = resolve(template["Conditions"][name])
        return conditions[name]

    def sub(text, variables=None):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            return (variables or {}).get(name, params.get(name))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(node):
        if isinstance(node, list):
            return [v for v in (resolve(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else params[arg]
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return sub(arg[0], {k: resolve(v) for k, v in arg[1].items()})
                return sub(arg)
            if key == "Fn::If":
                return resolve(arg[1] if condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return resolve(arg[0]) == resolve(arg[1])
            if key == "Fn::Not":
                return not resolve(arg[0])
            if key == "Fn::Or":
                return any(resolve(a) for a in arg)
            if key == "Fn::And":
                return all(resolve(a) for a in arg)
            if key == "Condition":
                return condition(arg)
            if key.startswith("Fn::"):
                raise Failed(f"the checker does not know {key}; extend render()")
        out = {}
        for k, v in node.items():
            v = resolve(v)
            if v is not NO_VALUE:
                out[k] = v
        return out

    return resolve(template["Resources"][resource]["Properties"]["PolicyDocument"])


# ---- The checks ------------------------------------------------------------------------------

def grants(policy):
    """{(action, resource, conditions as sorted JSON)} of `policy` (the memory and examiner checks
    compare policies by these); Failed on a statement that
    is not a plain Allow or on a wildcard action."""
    out = set()
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "?")
        if statement.get("Effect") != "Allow" or "NotAction" in statement \
                or "NotResource" in statement:
            raise Failed(f"{sid}: only plain Allow statements are expected")
        condition = json.dumps(normal(statement.get("Condition", {})), sort_keys=True)
        for action in listify(statement["Action"]):
            if "*" in action or "?" in action:
                raise Failed(f"{sid}: wildcard action {action}")
            for resource in listify(statement["Resource"]):
                out.add((action, resource, condition))
    return out


def grants_exactly(policy, want, who):
    """Raises Failed unless `policy`'s grants() are exactly `want`, naming each grant too many
    ("more than `who` needs") and each one missing."""
    have = grants(policy)
    if have - want:
        raise Failed(f"grants what {who} does not need (or too widely): " +
                     "; ".join(f"{a} on {r} {c}" for a, r, c in sorted(have - want)))
    if want - have:
        raise Failed("lacks: " + "; ".join(f"{a} on {r} {c}" for a, r, c in sorted(want - have)))


def normal(node):
    """Lists sorted, so that the order of values in a condition does not matter."""
    if isinstance(node, dict):
        return {k: normal(v) for k, v in node.items()}
    if isinstance(node, list):
        return sorted(normal(v) for v in node)
    return node


def listify(value):
    return value if isinstance(value, list) else [value]


def scopes(params):
    """Resource kind -> predicate for a resource ARN in that kind's allowed scope."""
    s3 = f"arn:{params['AWS::Partition']}:s3:::{params['Bucket']}"
    logs = (f"arn:{params['AWS::Partition']}:logs:{params['AWS::Region']}:"
            f"{params['AWS::AccountId']}:log-group:")
    groups = [logs + params["ReadinessLogGroup"], logs + params["CaptureLogGroup"]]
    if params["Prefix"]:
        # PREFIX/… only, with no wildcard in the prefix itself.
        evidence = f"{s3}/{params['Prefix']}/"
        in_evidence = lambda r: r.startswith(evidence) and "*" not in r[:len(evidence)]
    else:
        # The original flow's layout: only the incidents' disk_evidence/ folders at the top.
        in_evidence = lambda r: r.startswith(f"{s3}/*/disk_evidence/")
    region = params["AWS::Region"]
    snapshots = f"arn:{params['AWS::Partition']}:ec2:{region}::snapshot/*"

    def conditions(statement, operator):
        return statement.get("Condition", {}).get(operator, {})

    def tagged(r, s):
        tag = conditions(s, "StringEquals").get(SNAPSHOT_TAG)
        return r == snapshots and tag == params["SnapshotTagValue"] and tag != ""

    def in_region(r, s):
        return r == "*" and conditions(s, "StringEquals").get("aws:RequestedRegion") == region

    def snapshot_key(r, s):
        context = conditions(s, "StringLike").get("kms:EncryptionContext:aws:ebs:id")
        return r == params["SnapshotKmsKeyArn"] and r != "" and context == "snap-*"

    def custody_key(r, s):
        # Sign/Verify limited to SIGNING_CONDITION exactly; GetPublicKey, which has neither
        # request key, unconditioned (a condition on a key the request lacks refuses it).
        actions = set(listify(s["Action"]))
        if r != params.get("CustodyKmsKeyArn") or r == "":
            return False
        condition = s.get("Condition", {})
        if actions & {"kms:Sign", "kms:Verify"}:
            if actions - {"kms:Sign", "kms:Verify"} or set(condition) != {"StringEquals"}:
                return False
            given = condition["StringEquals"]
            return set(given) == set(SIGNING_CONDITION) and \
                given["kms:MessageType"] == SIGNING_CONDITION["kms:MessageType"] and \
                sorted(listify(given["kms:SigningAlgorithm"])) == \
                SIGNING_CONDITION["kms:SigningAlgorithm"]
        return not condition

    return {
        "object": lambda r, s: in_evidence(r),
        "bucket": lambda r, s: r == s3,
        "group": lambda r, s: r in groups or any(r == g + ":log-stream:*" for g in groups),
        "stream": lambda r, s: any(r.startswith(g + ":log-stream:") for g in groups),
        "key": lambda r, s: r == params["KmsKeyArn"] and r != "",
        "snapshot": tagged,
        "any": in_region,
        "snapshot_key": snapshot_key,
        "queue": lambda r, s: r in params.get("JobQueueArns", []),
        "custody_key": custody_key,
    }


def check(policy, params, calls):
    """Raises Failed on the first problem of `policy` rendered with `params`."""
    allowed = scopes(params)
    granted = set()
    # Queue actions: on which queues, each (every queue its collectors read, no other).
    on_queues = {}
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "?")
        if statement.get("Effect") != "Allow" or "NotAction" in statement \
                or "NotResource" in statement:
            raise Failed(f"{sid}: only plain Allow statements are expected")
        actions = listify(statement["Action"])
        resources = listify(statement["Resource"])
        for action in actions:
            if "*" in action or "?" in action:
                raise Failed(f"{sid}: wildcard action {action}")
            kind = kind_of(action, statement, params["AWS::Region"])
            if kind == "any" and action not in STAR_ONLY:
                raise Failed(f"{action}: TABLE gives it Resource \"*\" but STAR_ONLY does not "
                             "say why")
            for resource in resources:
                if not allowed[kind](resource, statement):
                    raise Failed(f"{sid}: {action} on {resource} is beyond its scope ({kind}, "
                                 "or its condition is missing)")
            granted.add((action, kind))
            if kind == "queue":
                on_queues.setdefault(action, set()).update(resources)
        if "s3:ListBucket" in actions:
            prefix = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            want = f"{params['Prefix']}/*" if params["Prefix"] else "*/disk_evidence/*"
            if prefix != want:
                raise Failed(f"{sid}: s3:ListBucket must be limited to s3:prefix {want}, "
                             f"found {prefix!r}")
    needed = {}
    for op, actions, where in calls:
        for action, option in actions.items():
            if option is None or OPTIONS[option](params):
                needed.setdefault(action, f"{op} at {where}")
    missing = sorted(set(needed) - granted)
    if missing:
        raise Failed("the policy lacks " + ", ".join(
            f"{a} on the {k} ({needed[(a, k)]})" for a, k in missing))
    extra = sorted(granted - set(needed))
    if extra:
        raise Failed("the policy grants " + ", ".join(f"{a} on the {k}" for a, k in extra) +
                     ", which no call made with these options needs")
    queues = set(params.get("JobQueueArns", []))
    for action, resources in sorted(on_queues.items()):
        if resources != queues:
            raise Failed(f"{action} is granted on {sorted(resources)}; the collectors read "
                         f"exactly {sorted(queues)}")


def variants():
    """Sample parameters: every option on, every option off, and each option alone."""
    on = dict(SAMPLE)
    off = dict(SAMPLE, **OFF)
    yield "all options", on
    yield "no options", off
    # The original flow's preset writes INCIDENT/disk_evidence/ at the bucket's top.
    yield "no prefix", dict(on, Prefix="")
    # Snapshots from another partition's region (the ARN and the services' names follow it).
    yield "another region", dict(on, **{"AWS::Region": "us-gov-west-1",
                                       "AWS::Partition": "aws-us-gov"})
    for key in ["KmsKeyArn", "ObjectLockRetention", "ObjectLockLegalHold", "RequireObjectLock",
                "SnapshotTagValue", "SnapshotKmsKeyArn", "CustodyKmsKeyArn"]:
        # SnapshotKmsKeyArn alone must grant nothing: there is no snapshot to decrypt.
        yield f"only {key}", dict(off, **{key: SAMPLE[key]})


def must_fail(name, policy, params, calls):
    try:
        check(policy, params, calls)
    except Failed:
        return
    raise Failed(f"self-test: the check accepted {name}")


def self_test(template, calls):
    """The check must refuse a wildcard resource, a wildcard action, a missing and an extra
    action, another prefix and an unconditioned listing: otherwise it proves nothing."""
    params = dict(SAMPLE)
    base = render(template, params)

    def mutated(change):
        policy = copy.deepcopy(base)
        change(policy["Statement"])
        return policy

    must_fail("a '*' resource", mutated(lambda s: s[0].update(Resource="*")), params, calls)
    must_fail("a wildcard bucket", mutated(
        lambda s: s[0].update(Resource="arn:aws:s3:::*/cases/collector/x")), params, calls)
    must_fail("another prefix", mutated(
        lambda s: s[0].update(Resource="arn:aws:s3:::evidence-bucket/other/*")), params, calls)
    must_fail("a wildcard action", mutated(lambda s: s[0].update(Action=["s3:Put*"])),
              params, calls)
    must_fail("a missing action", mutated(lambda s: s[0]["Action"].remove("s3:PutObject")),
              params, calls)
    must_fail("an extra action", mutated(lambda s: s[1]["Action"].append("s3:GetObjectAcl")),
              params, calls)
    must_fail("a listing without s3:prefix", mutated(
        lambda s: [st.pop("Condition", None) for st in s if st["Action"] == ["s3:ListBucket"]]),
        params, calls)
    no_prefix = dict(params, Prefix="")
    must_fail("the whole bucket when there is no prefix", mutated(
        lambda s: s[0].update(Resource="arn:aws:s3:::evidence-bucket/*")), no_prefix, calls)
    must_fail("a call not in TABLE", base, params,
              calls + [("copy_object", {("s3:CopyObject", "object"): None}, "self-test")])

    def sid(statements, name):
        return next(s for s in statements if s.get("Sid") == name)

    def condition(name, operator):
        return lambda s: sid(s, name)["Condition"][operator]

    must_fail("snapshots without the tag condition", mutated(
        lambda s: sid(s, "ReadTaggedSnapshots").pop("Condition")), params, calls)
    must_fail("snapshots with another tag value", mutated(
        lambda s: condition("ReadTaggedSnapshots", "StringEquals")(s).update(
            {SNAPSHOT_TAG: "other"})), params, calls)
    must_fail("snapshots of every region", mutated(
        lambda s: sid(s, "ReadTaggedSnapshots").update(Resource="arn:aws:ec2:*::snapshot/*")),
        params, calls)
    must_fail("another action on '*'", mutated(
        lambda s: sid(s, "DescribeSnapshots")["Action"].append("ebs:GetSnapshotBlock")),
        params, calls)
    must_fail("'*' in every region", mutated(
        lambda s: sid(s, "DescribeSnapshots").pop("Condition")), params, calls)
    must_fail("the snapshots' key without its encryption context", mutated(
        lambda s: sid(s, "DecryptSnapshots")["Condition"].pop("StringLike")), params, calls)
    must_fail("the snapshots' key through S3", mutated(
        lambda s: condition("DecryptSnapshots", "StringEquals")(s).update(
            {"kms:ViaService": "s3.eu-west-1.amazonaws.com"})), params, calls)
    must_fail("the evidence key through EBS", mutated(
        lambda s: sid(s, "DecryptSnapshots").update(Resource=params["KmsKeyArn"])),
        params, calls)
    must_fail("no snapshot key", mutated(
        lambda s: s.remove(sid(s, "DecryptSnapshots"))), params, calls)
    must_fail("a KMS grant without kms:ViaService", mutated(
        lambda s: sid(s, "EncryptEvidence").pop("Condition")), params, calls)
    custody = SAMPLE["CustodyKmsKeyArn"]
    must_fail("kms:Sign on another key", mutated(
        lambda s: sid(s, "SignCustodyStatements").update(Resource=params["KmsKeyArn"])),
        params, calls)
    must_fail("kms:Sign on every key", mutated(
        lambda s: sid(s, "SignCustodyStatements").update(
            Resource="arn:aws:kms:eu-west-1:123456789012:key/*")), params, calls)
    must_fail("kms:Sign of any message type and algorithm", mutated(
        lambda s: sid(s, "SignCustodyStatements").pop("Condition")), params, calls)
    must_fail("kms:Sign of digests", mutated(
        lambda s: condition("SignCustodyStatements", "StringEquals")(s).update(
            {"kms:MessageType": "DIGEST"})), params, calls)
    must_fail("kms:Sign with another algorithm", mutated(
        lambda s: condition("SignCustodyStatements", "StringEquals")(s).update(
            {"kms:SigningAlgorithm": ["ECDSA_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"]})),
        params, calls)
    must_fail("kms:Sign through S3", mutated(
        lambda s: condition("SignCustodyStatements", "StringEquals")(s).update(
            {"kms:ViaService": "s3.eu-west-1.amazonaws.com"})), params, calls)
    must_fail("no kms:Sign with a custody key", mutated(
        lambda s: s.remove(sid(s, "SignCustodyStatements"))), params, calls)
    for action in ("kms:Verify", "kms:GetPublicKey", "kms:DescribeKey"):
        must_fail(f"the collector given {action}", mutated(
            lambda s, a=action: sid(s, "SignCustodyStatements")["Action"].append(a)),
            params, calls)
    must_fail("the collector given kms:GetPublicKey alone", mutated(
        lambda s: s.append({"Sid": "Export", "Effect": "Allow", "Action": ["kms:GetPublicKey"],
                            "Resource": custody})), params, calls)
    must_fail("kms:Sign without a custody key", base, dict(params, CustodyKmsKeyArn=""), calls)


def main(argv):
    template = json.loads(TEMPLATE.read_text())
    if argv[1:2] == ["--render"]:
        params = dict(SAMPLE, **OFF)
        for arg in argv[2:]:
            key, _, value = arg.partition("=")
            params[{"Account": "AWS::AccountId", "Region": "AWS::Region",
                    "Partition": "AWS::Partition"}.get(key, key)] = value
        given = {k.partition("=")[0] for k in argv[2:]}
        lacking = sorted({"Bucket", "Prefix", "Account", "Region"} - given)
        if lacking:
            print(f"check_iam_policy --render: give {', '.join(lacking)} (NAME=VALUE)",
                  file=sys.stderr)
            return 2
        print(json.dumps(render(template, params), indent=2))
        return 0
    try:
        calls = scan_calls(SOURCES)
        if not calls:
            raise Failed("no SDK calls found; is the scanner looking in the right place?")
        self_test(template, calls)
        for name, params in variants():
            try:
                check(render(template, params), params, calls)
            except Failed as err:
                raise Failed(f"{name}: {err}") from None
    except Failed as err:
        print(f"check_iam_policy: {TEMPLATE.relative_to(ROOT)}: {err}", file=sys.stderr)
        return 1
    ops = sorted({op for op, _, _ in calls})
    print(f"check_iam_policy: {len(calls)} SDK calls ({len(ops)} operations) match the policy "
          f"in {sum(1 for _ in variants())} option sets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
