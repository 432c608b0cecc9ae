#!/usr/bin/env python3
"""Checks the flow's CloudFormation templates (flow/template.yaml, flow/member-role.yaml) against
the code and the state machine they serve.

- **The collector role** of flow/template.yaml is rendered for sample parameters (with and
  without an evidence prefix) and checked by check_iam_policy.py's own `check`: exactly the
  actions the collector's SDK calls need (scanned from imaging/src and agent/src), each on its
  scope (this stack's bucket and prefix, keys, log groups, the two job queues, the tagged
  snapshots).
  In the flow the collector runs with SSE-KMS (the bucket's default key), with
  `require_object_lock` (the bucket has Object Lock; retention comes from the bucket's default
  rule, so no retention or legal-hold header), reading tagged and encrypted snapshots, in queue
  mode.
- **No wildcard action** in any policy of either template (roles, key, bucket and queue
  policies; packaging/iam-policy.json's rendered policy is held to the same rules), except `SERVICE:*` in a Deny whose only condition is `aws:SecureTransport` false —
  a deny must cover every action, present and future. Every action must exist in the Service
  Authorization Reference as cfn-lint ships it, and an Allow with Resource "*" (outside key
  policies, where "*" means the key itself) may hold only actions that support no resource type.
  Every condition key is a global key, a request key of its actions, or a key of a resource type
  they act on; every resource of an Allow has the ARN format of such a type; a statement
  conditioned on kms:GrantIsForAWSResource holds grant actions only. (Each of these mistakes makes
  a grant silently void: IAM raises no error for it.)
- **The state machine's role and the member role against the definition**
  (flow/statemachine.asl.json, when present): every service action a Task calls is granted, to
  the member role when the Task carries `Credentials`, else to the flow role; neither role grants
  an action that no Task calls, apart from what those calls imply (IMPLIED below). A Task that
  creates a resource carries every tag its role's statements require (aws:RequestTag), and a
  role acting on a resource by tag (aws:ResourceTag) acts on what some Task creates with that
  tag: a mismatch there is an AccessDenied in AWS that moto, which enforces no IAM, never shows.
  A grant listed as made ahead of the definition (AHEAD_OF_DEFINITION) that a Task now calls is
  an error: the list must say what is still unused.
- **The collectors' user data** (every `config.*` object a runInstances Task passes, rendered
  with the DefinitionSubstitutions) is what the collector role was checked for:
  `s3.require_object_lock` true on a bucket with Object Lock, `cloudwatch.readiness_group`/
  `capture_group` the log groups the role may write, `job.bucket`/`prefix`/`snapshot_tag` the
  role's bucket, prefix and tag, and `custody.kms_key_id` the custody key the role may sign with
  (no `custody` section without one). The user data is what the run has once the states right
  after `Configure` that only shape `$.config` are done (a Choice on the custody key, the Passes
  that add the section); every memory step passes that key as `signKmsKeyId`.
- **The queues**: every job a sqs:sendMessage Task sends goes to a queue that the collectors
  launched for it (the runInstances Task of its Map, else of the enclosing scope) read
  (`job.queue_url`); the flow role may send to exactly the queues the definition sends to, the
  collector role take jobs from exactly the queues the collectors read. Volume jobs (a message
  with `volume_id`) have a queue of their own without a redrive policy: only the collector the
  volume is attached to can do such a job, and the others pass it over, so a dead-letter queue
  after a few receives would take it away.
  Every
  `${Name}` placeholder of the definition has a DefinitionSubstitutions entry, and every entry
  is used.

Queue-mode calls (sqs:ReceiveMessage, …, states:SendTask*) are the collector's side of issue
21's contract. Until the agent makes them, the scan finds none; the check then takes them from
QUEUE_MODE (the contract's list) and says so, and ignores that list as soon as one of them is in
the sources.
"""

import copy
import json
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_iam_policy as iam

ROOT = iam.ROOT
FLOW = ROOT / "flow" / "template.yaml"
MEMBER = ROOT / "flow" / "member-role.yaml"
ASL = ROOT / "flow" / "statemachine.asl.json"

# The collector's calls in queue mode (the contract of issue 21; see the docstring).
QUEUE_MODE = ["receive_message", "delete_message", "change_message_visibility",
              "send_task_success", "send_task_failure", "send_task_heartbeat"]

# What a Task's call implies besides its own action, per role. RunInstances with an instance
# profile passes the collector role; a TagSpecifications tags at creation (ec2:CreateTags with
# ec2:CreateAction); EBS copies and volumes of encrypted snapshots use the key through EC2;
# Credentials make the flow role assume the member role. Step Functions' own log delivery and
# X-Ray need theirs (options of the template).
KMS_THROUGH_EC2 = {"kms:DescribeKey", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                   "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
IMPLIED = {
    "ec2:RunInstances": {"iam:PassRole", "ec2:CreateTags"},
    "ec2:CreateSnapshot": {"ec2:CreateTags"},
    "ec2:CopySnapshot": {"ec2:CreateTags"} | KMS_THROUGH_EC2,
    "ec2:CreateVolume": {"ec2:CreateTags"} | KMS_THROUGH_EC2,
}
PLATFORM = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}
# Granted to a role before the definition calls them, and why: {role: {action: reason}}. The
# check names them on every run, and fails on an entry the definition now calls (drop it then).
# Empty since the definition makes the member-side copy that re-encrypts with the forensic key
# (CopySnapshot, its KMS use through EC2, DeleteSnapshot of that copy).
AHEAD_OF_DEFINITION = {}
# Actions on a resource the definition made, and the calls that make it (for aws:ResourceTag).
CREATED_BY = {
    "ec2:AttachVolume": ["ec2:CreateVolume"],
    "ec2:DeleteVolume": ["ec2:CreateVolume"],
    "ec2:DeleteSnapshot": ["ec2:CreateSnapshot", "ec2:CopySnapshot"],
    "ec2:ModifySnapshotAttribute": ["ec2:CreateSnapshot", "ec2:CopySnapshot"],
    "ec2:CreateVolume": ["ec2:CreateSnapshot", "ec2:CopySnapshot"],
}
# Step Functions' service names in aws-sdk integrations that differ from the IAM prefix.
SDK_PREFIX = {"cloudwatchlogs": "logs", "sfn": "states"}
# Optimized integrations (arn:aws:states:::SERVICE:API[.pattern]) -> IAM action.
OPTIMIZED = {"sqs:sendMessage": "sqs:SendMessage", "sns:publish": "sns:Publish"}

# Sample values of the flow template's parameters, pseudo parameters and resources.
ACCOUNT, REGION = "123456789012", "eu-west-1"
SAMPLE = {
    "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "forensic-flow", "AWS::NoValue": None,
    "EvidenceBucketName": "", "EvidencePrefix": "cases/collector", "EvidenceKmsKeyArn": "",
    "ObjectLockMode": "GOVERNANCE", "ObjectLockRetentionDays": "365",
    "SnapshotTagValue": "flow", "SnapshotKmsKeyArn": "", "KeepCopiedSnapshots": "true",
    "MemberRoleName": "ForensicCollectorMember", "OrganizationId": "o-abcdefghij",
    "MemberAccountIds": "111111111111,222222222222",
    "CollectorAmiId": "ami-0123456789abcdef0", "CollectorInstanceType": "c6in.large",
    "CollectorSubnetId": "subnet-0123456789abcdef0",
    "CollectorSecurityGroupId": "sg-0123456789abcdef0", "RootDeviceName": "/dev/xvda",
    "MaxCollectors": "4", "HeartbeatSeconds": "300", "JobTimeoutSeconds": "43200",
    "JobVisibilitySeconds": "600", "QueueIdleSeconds": "300", "CollectorHeartbeatSeconds": "60",
    "VolumeCollectorIdleSeconds": "3600",
    "SnapshotPollSeconds": "30", "SnapshotMaxPolls": "480",
    "FlowRoleName": "ForensicCollectorFlow", "StateMachineLogLevel": "ERROR",
    "TracingEnabled": "true", "LogRetentionDays": "365",
    "ReadinessLogGroupName": "ForensicDiskReadiness", "CaptureLogGroupName": "ForensicDiskCapture",
    "AuditLogGroupName": "ForensicDiskAudit", "FailureTopicKmsKeyId": "alias/aws/sns",
    "MemoryDocumentName": "ForensicCollectorMemory", "MemoryToolsBucket": "forensic-tools",
    "MemoryToolsPrefix": "forensic-collector/1.4.0", "MemorySha256X8664": "0" * 64,
    "MemorySha256Aarch64": "1" * 64, "MemoryTimeoutSeconds": "3600",
    "CustodyKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/22222222-2222-2222-2222-222222222222",
    # member-role.yaml
    "ForensicAccountId": ACCOUNT, "Regions": "", "ExternalId": "",
    # Resources: Ref and Fn::GetAtt.
    "EvidenceBucket": "evidence-bucket",
    "EvidenceBucket.Arn": "arn:aws:s3:::evidence-bucket",
    "EvidenceKey.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
    "SnapshotKey.Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-1111-1111-1111-111111111111",
    "JobQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/forensic-flow-JobQueue",
    "JobQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensic-flow-JobQueue",
    "JobDeadLetterQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/forensic-flow-Dlq",
    "JobDeadLetterQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensic-flow-Dlq",
    "VolumeJobQueue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/forensic-flow-VolumeJobQueue",
    "VolumeJobQueue.Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:forensic-flow-VolumeJobQueue",
    "ReadinessLogGroup": "ForensicDiskReadiness", "CaptureLogGroup": "ForensicDiskCapture",
    "AuditLogGroup": "ForensicDiskAudit",
    "FlowLogGroup.Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/f:*",
    "FlowRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/ForensicCollectorFlow",
    "FindingRuleRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/forensic-flow-FindingRuleRole",
    "MemberRole.Arn": "arn:aws:iam::111111111111:role/ForensicCollectorMember",
    "FindingRule": "forensic-flow-FindingRule",
    "CollectorRole": "forensic-flow-CollectorRole",
    "CollectorInstanceProfile": "forensic-flow-Profile",
    "CollectorLaunchTemplate": "lt-0123456789abcdef0",
    "CollectorRole.Arn": f"arn:aws:iam::{ACCOUNT}:role/forensic-flow-CollectorRole",
    "CollectorInstanceProfile.Arn": f"arn:aws:iam::{ACCOUNT}:instance-profile/forensic-flow-Profile",
    "FailureTopic": f"arn:aws:sns:{REGION}:{ACCOUNT}:forensic-flow-FailureTopic",
    "StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:forensic-flow",
}


class Failed(Exception):
    """A finding: the message says what is wrong and where."""


# What a passing run still says (grants ahead of the definition), printed once at the end.
NOTES = []


# ---- Reading and rendering ---------------------------------------------------------------

class Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !GetAtt, …) as their long forms."""


def _tag(name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for _short in ["Ref", "Condition"]:
    Loader.add_constructor(f"!{_short}", _tag(_short))
for _short in ["Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Split", "Join", "Select",
               "FindInMap", "Base64", "GetAZs", "ImportValue", "Cidr"]:
    Loader.add_constructor(f"!{_short}", _tag(f"Fn::{_short}"))


def load(path):
    return yaml.load(path.read_text(), Loader=Loader)


NO_VALUE = object()


def resolver(template, params):
    """A function resolving the intrinsic functions of `template` with `params`."""
    conditions = {}

    def condition(name):
        if name not in conditions:
            conditions[name] = resolve(template["Conditions"][name])
        return conditions[name]

    def lookup(name, where):
        if name not in params:
            raise Failed(f"no sample value for {name} ({where}); add it to SAMPLE")
        return params[name]

    def sub(text, local):
        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            return str(local[name] if name in local else lookup(name, "Fn::Sub"))
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(node):
        if isinstance(node, list):
            return [v for v in (resolve(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else lookup(arg, "Ref")
            if key == "Fn::GetAtt":
                return lookup(".".join(arg), "Fn::GetAtt")
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return sub(arg[0], {k: resolve(v) for k, v in arg[1].items()})
                return sub(arg, {})
            if key == "Fn::If":
                return resolve(arg[1] if condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return str(resolve(arg[0])) == str(resolve(arg[1]))
            if key == "Fn::Not":
                return not resolve(arg[0])
            if key == "Fn::Or":
                return any(resolve(a) for a in arg)
            if key == "Fn::And":
                return all(resolve(a) for a in arg)
            if key == "Condition":
                return condition(arg)
            if key == "Fn::Split":
                return resolve(arg[1]).split(arg[0])
            if key == "Fn::Join":
                return arg[0].join(resolve(arg[1]))
            if key.startswith("Fn::"):
                raise Failed(f"the checker does not know {key}; extend resolver()")
        out = {}
        for k, v in node.items():
            v = resolve(v)
            if v is not NO_VALUE:
                out[k] = v
        return out

    return resolve


def present(template, params):
    """The template's resources that exist with `params`, resolved."""
    resolve = resolver(template, params)
    out = {}
    for name, resource in template["Resources"].items():
        cond = resource.get("Condition")
        if cond and not resolve({"Condition": cond}):
            continue
        out[name] = resolve(resource)
    return out


def policies(resources):
    """(where, document, is key policy) for every policy document among `resources`."""
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            yield f"{name} trust", props["AssumeRolePolicyDocument"], False
            for policy in props.get("Policies", []):
                yield f"{name}/{policy['PolicyName']}", policy["PolicyDocument"], False
        elif kind == "AWS::IAM::ManagedPolicy":
            yield name, props["PolicyDocument"], False
        elif kind == "AWS::KMS::Key":
            yield name, props["KeyPolicy"], True
        elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"):
            yield name, props["PolicyDocument"], False


def statements(resources, role):
    return resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def granted(resources, role):
    return {a for s in statements(resources, role) for a in iam.listify(s["Action"])}


# ---- The Service Authorization Reference (as cfn-lint ships it) ------------------------------

class Reference:
    """Per service and resource type: its condition keys (`keys`) and ARN patterns (`arns`)."""

    def __init__(self, keys, arns):
        self.keys, self.arns = keys, arns


def reference():
    """service -> {action (lower case): [resource types]}, and the resource types' condition
    keys and ARN formats (a Reference), from cfn-lint's Policies.json."""
    import cfnlint
    data = json.loads((Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" /
                       "Policies.json").read_text())
    actions = {service: {action: spec.get("Resources", [])
                         for action, spec in body["Actions"].items()}
               for service, body in data.items()}
    keys = {service: {kind: spec.get("ConditionKeys", [])
                      for kind, spec in body.get("Resources", {}).items()}
            for service, body in data.items()}
    arns = {service: {kind: [arn_pattern(f) for f in spec.get("ARNFormats", [])]
                      for kind, spec in body.get("Resources", {}).items()}
            for service, body in data.items()}
    return actions, Reference(keys, arns)


def arn_pattern(form):
    """A regular expression for one of the reference's ARN formats: `${Name}` is one ARN field
    (a policy's `*` in that field included), `.*` anything."""
    parts = re.split(r"(\$\{[^}]+\}|\.\*)", form)
    return re.compile("".join("[^:]*" if p.startswith("${") else ".*" if p == ".*"
                              else re.escape(p) for p in parts))


def check_arns(sid, statement, sar, sar_keys):
    """Every resource of an Allow is an ARN of a resource type each of its actions acts on: an
    ARN of the wrong shape (a snapshot ARN with an account, a log group without its prefix)
    matches nothing, and the grant is silently void."""
    arns = sar_keys.arns
    for resource in iam.listify(statement.get("Resource", [])):
        if resource == "*":
            continue
        for action in iam.listify(statement.get("Action", [])):
            service, _, name = action.partition(":")
            kinds = sar.get(service, {}).get(name.lower(), [])
            if not any(p.fullmatch(resource) for k in kinds for p in arns[service].get(k, [])):
                raise Failed(f"{sid}: {resource} is no ARN {action} acts on ({', '.join(kinds)})")


# Global condition keys the templates use (IAM's "AWS global condition context keys").
GLOBAL_KEYS = {"aws:SecureTransport", "aws:RequestedRegion", "aws:PrincipalOrgID",
               "aws:PrincipalArn", "aws:SourceAccount", "aws:ResourceAccount", "aws:ResourceOrgID"}
GLOBAL_TAG_KEYS = ("aws:RequestTag/", "aws:ResourceTag/")
# Service keys that belong to a request, not to a resource type (Policies.json lists only the
# latter), with the actions they apply to.
REQUEST_KEYS = {
    "kms:ViaService": "kms:", "kms:GrantIsForAWSResource": "kms:CreateGrant",
    "kms:EncryptionContext:aws:ebs:id": "kms:", "ec2:CreateAction": "ec2:CreateTags",
    "iam:PassedToService": "iam:PassRole", "s3:prefix": "s3:ListBucket",
    "sts:ExternalId": "sts:AssumeRole",
    "kms:MessageType": ("kms:Sign", "kms:Verify"),
    "kms:SigningAlgorithm": ("kms:Sign", "kms:Verify"),
}


def check_condition_keys(sid, statement, sar_keys, sar):
    """Every condition key is a global key, a request key of the statement's actions, or a key
    of a resource type those actions act on: a misspelt key is never present, so the condition
    would silently refuse (or, under a Deny, never apply)."""
    actions = iam.listify(statement.get("Action", []))
    for operator, keys in statement.get("Condition", {}).items():
        for key in keys:
            if key in GLOBAL_KEYS or key.startswith(GLOBAL_TAG_KEYS):
                continue
            if key in REQUEST_KEYS:
                scope = REQUEST_KEYS[key]
                if all(a.startswith(scope) for a in actions):
                    continue
                raise Failed(f"{sid}: {key} applies to {scope} only, not to {actions}")
            known = set()
            for action in actions:
                service, _, name = action.partition(":")
                for kind in sar.get(service, {}).get(name.lower(), []):
                    known.update(sar_keys.keys.get(service, {}).get(kind, []))
            if key not in known:
                raise Failed(f"{sid}: condition key {key} ({operator}) is not one of "
                             f"{actions}' resource types")


# ---- The checks --------------------------------------------------------------------------

def check_wildcards(where, document, key_policy, sar, sar_keys=None):
    """No wildcard action but a TLS deny's; actions that exist; "*" only where no resource type
    exists (or in a key policy)."""
    for statement in iam.listify(document["Statement"]):
        sid = f"{where} {statement.get('Sid', '?')}"
        actions = iam.listify(statement.get("Action", []))
        if "NotAction" in statement or "NotResource" in statement:
            raise Failed(f"{sid}: NotAction/NotResource are not expected")
        for action in actions:
            if "*" in action or "?" in action:
                tls_deny = (statement["Effect"] == "Deny" and statement.get("Condition") ==
                            {"Bool": {"aws:SecureTransport": "false"}}
                            and re.fullmatch(r"[a-z0-9-]+:\*", action))
                if not tls_deny:
                    raise Failed(f"{sid}: wildcard action {action}")
                continue
            service, _, name = action.partition(":")
            if name.lower() not in sar.get(service, {}):
                raise Failed(f"{sid}: {action} is not an action of the Service Authorization "
                             "Reference")
        if sar_keys is not None:
            check_condition_keys(sid, statement, sar_keys, sar)
            if statement["Effect"] == "Allow" and not key_policy and "Principal" not in statement:
                check_arns(sid, statement, sar, sar_keys)
        # A condition on a key that a request lacks is false: kms:GrantIsForAWSResource exists
        # only in grant requests, so beside it any other action would be silently refused.
        bools = statement.get("Condition", {}).get("Bool", {})
        if "kms:GrantIsForAWSResource" in bools and \
                set(actions) - {"kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"}:
            raise Failed(f"{sid}: kms:GrantIsForAWSResource conditions non-grant actions "
                         f"{sorted(set(actions) - {'kms:CreateGrant'})}, which it would refuse")
        if statement["Effect"] == "Allow" and "*" in iam.listify(statement.get("Resource", [])) \
                and not key_policy:
            scoped = [a for a in actions if sar[a.split(":")[0]][a.split(":")[1].lower()]]
            if scoped:
                raise Failed(f"{sid}: Resource \"*\" for {', '.join(scoped)}, which support a "
                             "resource type: name the resources")


def calls_for_flow():
    """The collector's SDK calls; the contract's queue-mode calls while the sources lack them."""
    calls = iam.scan_calls(iam.SOURCES)
    found = {op for op, _, _ in calls}
    note = ""
    if not found & set(QUEUE_MODE):
        for op in QUEUE_MODE:
            actions, kind, option = iam.TABLE[op]
            calls.append((op, {(a, kind): option for a in actions}, "issue 21's contract"))
        note = " (queue-mode calls from the contract: the sources make none yet)"
    return calls, note


def collector_params(params):
    """check_iam_policy's parameters for the flow's collector role."""
    return {
        "Bucket": params["EvidenceBucket"], "Prefix": params["EvidencePrefix"],
        "ReadinessLogGroup": params["ReadinessLogGroupName"],
        "CaptureLogGroup": params["CaptureLogGroupName"],
        "KmsKeyArn": params["EvidenceKey.Arn"], "ObjectLockRetention": "false",
        "ObjectLockLegalHold": "false", "RequireObjectLock": "true",
        "SnapshotTagValue": params["SnapshotTagValue"],
        "SnapshotKmsKeyArn": params["SnapshotKey.Arn"], "JobQueueArns": [params["JobQueue.Arn"], params["VolumeJobQueue.Arn"]],
        "CustodyKmsKeyArn": params["CustodyKmsKeyArn"],
        "AWS::Partition": params["AWS::Partition"], "AWS::Region": params["AWS::Region"],
        "AWS::AccountId": params["AWS::AccountId"],
    }


def check_collector(resources, params, calls):
    policy = {"Statement": statements(resources, "CollectorRole")}
    iam.check(policy, collector_params(params), calls)


def literal_tags(state):
    """{key: value} of a Task's TagSpecifications whose value is literal (`Value`, not
    `Value.$`), placeholders left as `${Name}`."""
    tags = {}
    for spec in state.get("Parameters", {}).get("TagSpecifications", []):
        for tag in spec.get("Tags", []):
            if "Value" in tag:
                tags[tag["Key"]] = tag["Value"]
    return tags


def task_calls(definition):
    """(IAM action, uses Credentials, state name, literal tags) for every Task of an ASL
    definition."""
    found = []

    def walk(states):
        for name, state in states.items():
            if state.get("Type") == "Task":
                resource = state["Resource"]
                # AWS SDK integrations take Request Response or .waitForTaskToken (not .sync);
                # either way the role needs the API's action.
                m = re.fullmatch(
                    r"arn:aws:states:::aws-sdk:([a-z0-9]+):([A-Za-z0-9]+)(\.waitForTaskToken)?",
                    resource)
                if m:
                    service = SDK_PREFIX.get(m.group(1), m.group(1))
                    action = f"{service}:{m.group(2)[0].upper()}{m.group(2)[1:]}"
                else:
                    m = re.fullmatch(r"arn:aws:states:::([a-z0-9]+:[A-Za-z0-9]+)(\.\w+)?",
                                     resource)
                    if not m or m.group(1) not in OPTIMIZED:
                        raise Failed(f"state {name}: the checker does not know {resource}")
                    action = OPTIMIZED[m.group(1)]
                found.append((action, "Credentials" in state, name, literal_tags(state)))
            for branch in state.get("Branches", []):
                walk(branch["States"])
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    walk(state[key]["States"])
    walk(definition["States"])
    return found


def tag_conditions(statement, operator_key):
    """{tag key: value} that `statement` requires through StringEquals aws:RequestTag/KEY or
    aws:ResourceTag/KEY (`operator_key` names which)."""
    prefix = f"aws:{operator_key}/"
    return {k[len(prefix):]: v for k, v in statement.get("Condition", {})
            .get("StringEquals", {}).items() if k.startswith(prefix)}


def check_tags(role, resources, own, substitutions):
    """A Task creating tagged resources must carry every tag its role's statements require
    (aws:RequestTag), and a resource a role acts on by tag (aws:ResourceTag) must be one some Task
    of the same role creates with that tag: otherwise IAM refuses the call in AWS, which no
    moto run shows."""
    def value(text):
        return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: str(substitutions[m.group(1)]), text)

    created = {}
    for action, _, state, tags in own:
        tags = {k: value(v) for k, v in tags.items()}
        created.setdefault(action, []).append(tags)
        for statement in statements(resources, role):
            if action not in iam.listify(statement["Action"]):
                continue
            for key, want in tag_conditions(statement, "RequestTag").items():
                if tags.get(key) != want:
                    raise Failed(f"{role} {statement.get('Sid')}: {action} needs the tag "
                                 f"{key}={want}, which state {state} does not set")
    for acting, creators in CREATED_BY.items():
        for statement in statements(resources, role):
            if acting not in iam.listify(statement["Action"]):
                continue
            for key, want in tag_conditions(statement, "ResourceTag").items():
                made = [t for c in creators for t in created.get(c, [])]
                if made and not any(t.get(key) == want for t in made):
                    raise Failed(f"{role} {statement.get('Sid')}: {acting} needs {key}={want} on "
                                 f"the resource, which no {'/'.join(creators)} state sets")


def check_roles_against_definition(flow, member, definition):
    calls = task_calls(definition)
    flow_granted, member_granted = granted(flow, "FlowRole"), granted(member, "MemberRole")
    substitutions = flow["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    for role, resources, granted_, extra, own in [
            ("FlowRole", flow, flow_granted, PLATFORM, [c for c in calls if not c[1]]),
            ("MemberRole", member, member_granted, set(), [c for c in calls if c[1]])]:
        check_tags(role, resources, own, substitutions)
        needed = {a for a, _, _, _ in own}
        missing = {(a, s) for a, _, s, _ in own if a not in granted_}
        if missing:
            raise Failed(f"{role} lacks " + ", ".join(f"{a} (state {s})"
                                                     for a, s in sorted(missing)))
        implied = set(extra)
        for action in needed:
            implied |= IMPLIED.get(action, set())
        if role == "FlowRole" and any(c[1] for c in calls):
            implied.add("sts:AssumeRole")
        stale = sorted(set(AHEAD_OF_DEFINITION.get(role, {})) & (needed | implied))
        if stale:
            raise Failed(f"AHEAD_OF_DEFINITION lists {', '.join(stale)} for {role}, which "
                         f"{ASL.name} now calls: drop the entries")
        unused = granted_ - needed - implied
        ahead = {a for a in unused if a in AHEAD_OF_DEFINITION.get(role, {})}
        if ahead:
            NOTES.append(f"{role} grants {', '.join(sorted(ahead))} ahead of the definition "
                         "(AHEAD_OF_DEFINITION)")
        unused -= ahead
        if unused:
            raise Failed(f"{role} grants {', '.join(sorted(unused))}, which no state of "
                         f"{ASL.name} calls")


USER_DATA = re.compile(r"States\.Base64Encode\(States\.JsonToString\(\$\.config\.(\w+)\)\)")


def user_data_of(name, state):
    """The `config` key whose object a runInstances Task passes as user data (None for another
    state)."""
    if state.get("Type") != "Task" or not state["Resource"].endswith(":ec2:runInstances"):
        return None
    m = USER_DATA.fullmatch(state["Parameters"].get("UserData.$", ""))
    if not m:
        raise Failed(f"state {name}: user data not `States.Base64Encode(States.JsonToString("
                     "$.config.NAME))`; the checker cannot tell what the collectors get")
    return m.group(1)


def user_data_keys(definition):
    """Every `config` key a runInstances Task of the definition passes as user data."""
    keys = set()

    def walk(states):
        for name, state in states.items():
            key = user_data_of(name, state)
            if key:
                keys.add(key)
            for inner in ("ItemProcessor", "Iterator"):
                if inner in state:
                    walk(state[inner]["States"])
    walk(definition["States"])
    return sorted(keys)


def rendered_user_data(flow, definition, key="user_data"):
    """The collectors' user data `config.KEY` as the definition builds it: the Configure state,
    then the states after it that only shape $.config (configured()), with the stack's
    DefinitionSubstitutions (keys computed by an intrinsic, `NAME.$`, left out)."""
    config = configured(flow, definition)
    if key not in config:
        raise Failed(f"a runInstances Task passes $.config.{key}, which Configure does not set")
    return config[key]


def configured(flow, definition):
    """$.config as the run has it once the states right after Configure that only shape it are
    done: Choices comparing a $.config value with StringEquals, and Passes whose Parameters (from
    $.config values or literals) go to a ResultPath under $.config (the custody key's section in
    the user data, set only when the stack has a key). The first other state ends the walk."""
    substitutions = flow["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    states = definition["States"]

    def render(node):
        if isinstance(node, dict):
            return {k: render(v) for k, v in node.items() if not k.endswith(".$")}
        if isinstance(node, str):
            return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: str(substitutions[m.group(1)]), node)
        return node

    config = render(states["Configure"]["Parameters"]["config"])

    def at(path, where):
        if not path.startswith("$.config."):
            raise Failed(f"state {where}: {path} is not under $.config; teach configured()")
        node = config
        for part in path[len("$.config."):].split("."):
            if not isinstance(node, dict) or part not in node:
                raise Failed(f"state {where}: {path} is not set")
            node = node[part]
        return node

    name = states["Configure"].get("Next")
    for _ in range(len(states)):
        state = states[name]
        if state["Type"] == "Choice" and all(
                set(c) == {"Variable", "StringEquals", "Next"}
                and c["Variable"].startswith("$.config.") for c in state["Choices"]):
            name = next((c["Next"] for c in state["Choices"]
                         if at(c["Variable"], name) == render(c["StringEquals"])),
                        state.get("Default"))
        elif state["Type"] == "Pass" and state.get("ResultPath", "").startswith("$.config.") \
                and "Parameters" in state:
            value = {}
            for k, v in state["Parameters"].items():
                if k.endswith(".$"):
                    value[k[:-2]] = at(v, name)
                else:
                    value[k] = render(v)
            *parents, last = state["ResultPath"][len("$.config."):].split(".")
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
            name = state["Next"]
        else:
            return config
    raise Failed("the states after Configure loop")


def check_user_data(flow, params, definition):
    """Every collector (each user data a runInstances Task passes) runs with the settings the
    collector role was checked for."""
    keys = user_data_keys(definition)
    if not keys:
        raise Failed("no runInstances Task passes user data")
    for key in keys:
        try:
            check_one_user_data(rendered_user_data(flow, definition, key), flow, params)
        except Failed as err:
            raise Failed(f"config.{key}: {err}") from None


def check_one_user_data(data, flow, params):
    """The collectors run with the settings the collector role was checked for
    (collector_params): Object Lock required on a bucket that has it, the two log groups the role
    may write, the role's bucket, prefix and snapshot tag."""
    want = collector_params(params)
    bucket = flow["EvidenceBucket"]["Properties"]
    if (data.get("s3", {}).get("require_object_lock") is not True
            or want["RequireObjectLock"] != "true"
            or bucket.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled"):
        raise Failed("the collectors' user data must set s3.require_object_lock true (the "
                     f"bucket has Object Lock and the role was checked for it): {data.get('s3')}")
    groups = data.get("cloudwatch", {})
    for key, group in [("readiness_group", want["ReadinessLogGroup"]),
                       ("capture_group", want["CaptureLogGroup"])]:
        if groups.get(key) != group:
            raise Failed(f"the collectors' user data names cloudwatch.{key} "
                         f"{groups.get(key)!r}; the collector role may write {group!r}")
    job = data.get("job", {})
    for key, value in [("bucket", want["Bucket"]), ("prefix", want["Prefix"]),
                       ("snapshot_tag", want["SnapshotTagValue"])]:
        if job.get(key) != value:
            raise Failed(f"the collectors' user data has job.{key} {job.get(key)!r}; the "
                         f"collector role is scoped to {value!r}")
    # The custody key: exactly the one the role may sign with; no section without one (the
    # collector refuses an empty key ID, and a section naming another key fails every capture).
    key = want["CustodyKmsKeyArn"]
    custody = data.get("custody")
    if key and custody != {"kms_key_id": key}:
        raise Failed(f"the collectors' user data has custody {custody!r}; the stack's custody "
                     f"key is {key!r}, which the collector role may sign with")
    if not key and custody is not None:
        raise Failed(f"the collectors' user data has custody {custody!r} though the stack has "
                     "no custody key")


def check_memory_signing(flow, params, definition):
    """Every memory step (ssm:sendCommand Task) passes the stack's custody key as the document's
    signKmsKeyId (empty without one)."""
    substitutions = flow["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    sends = [(n, s) for n, s, _ in all_states(definition["States"]) if s.get("Type") == "Task"
             and s["Resource"].startswith("arn:aws:states:::aws-sdk:ssm:sendCommand")]
    if not sends:
        raise Failed("no memory step (ssm:sendCommand Task)")
    for name, state in sends:
        given = state["Parameters"].get("Parameters", {}).get("signKmsKeyId")
        rendered = [render_placeholders(v, substitutions) for v in given or []]
        if rendered != [params["CustodyKmsKeyArn"]]:
            raise Failed(f"state {name} passes signKmsKeyId {given!r} ({rendered}); the stack's "
                         f"custody key is {params['CustodyKmsKeyArn']!r}")


def render_placeholders(text, substitutions):
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: str(substitutions[m.group(1)]), text)


def queue_named(flow, params, url, where):
    """The stack's queue resource whose URL is `url` (its name), or Failed."""
    names = [n for n, r in flow.items() if r["Type"] == "AWS::SQS::Queue" and params.get(n) == url]
    if len(names) != 1:
        raise Failed(f"{where}: {url!r} is not one of the stack's queues")
    return names[0]


def job_sends(definition):
    """(state, QueueUrl as written, user data key of the collectors launched for these jobs, is a
    volume job) for every sqs:sendMessage Task: the collectors are those of the runInstances
    Task in the same states, else in the nearest enclosing ones."""
    found = []

    def walk(states, launched):
        here = [k for k in (user_data_of(n, s) for n, s in states.items()) if k]
        if len(here) > 1:
            raise Failed(f"several runInstances Tasks side by side ({here}): the checker cannot "
                         "tell which collectors take which jobs")
        launched = here[0] if here else launched
        for name, state in states.items():
            if state.get("Type") == "Task" and state["Resource"].startswith(
                    "arn:aws:states:::sqs:sendMessage"):
                body = state["Parameters"].get("MessageBody", {})
                found.append((name, state["Parameters"].get("QueueUrl"), launched,
                              "volume_id.$" in body or "volume_id" in body))
            for inner in ("ItemProcessor", "Iterator"):
                if inner in state:
                    walk(state[inner]["States"], launched)
    walk(definition["States"], None)
    return found


def check_queues(flow, params, definition):
    """Jobs go to the queue their collectors read; the flow role sends to exactly those queues
    and the collector role takes from exactly those; volume jobs have a queue of their own
    without a redrive policy (see the docstring)."""
    substitutions = flow["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    sends = job_sends(definition)
    if not sends:
        raise Failed("no sqs:sendMessage Task: the checker found no job")
    sent, read, kinds = set(), set(), {}
    for state, written, launched, volume in sends:
        if not isinstance(written, str):
            raise Failed(f"state {state}: QueueUrl must be a literal placeholder")
        url = render_placeholders(written, substitutions)
        queue = queue_named(flow, params, url, f"state {state}")
        if launched is None:
            raise Failed(f"state {state}: no runInstances Task launches collectors for its jobs")
        reads = rendered_user_data(flow, definition, launched).get("job", {}).get("queue_url")
        if reads != url:
            raise Failed(f"state {state} sends jobs to {queue} ({url}), but the collectors "
                         f"launched for them (config.{launched}) read {reads!r}")
        sent.add(params[f"{queue}.Arn"])
        read.add(params[f"{queue}.Arn"])
        kinds.setdefault(queue, set()).add("volume" if volume else "snapshot")
        if volume and "RedrivePolicy" in flow[queue]["Properties"]:
            raise Failed(f"state {state} sends volume jobs to {queue}, which has a redrive "
                         "policy: other collectors pass a volume job over, and after "
                         "maxReceiveCount of those the job would go to the dead-letter queue")
    for key in user_data_keys(definition):
        url = rendered_user_data(flow, definition, key).get("job", {}).get("queue_url")
        read.add(params[f"{queue_named(flow, params, url, f'config.{key}')}.Arn"])
    for queue, what in kinds.items():
        if len(what) > 1:
            raise Failed(f"{queue} carries both snapshot and volume jobs: volume jobs need a "
                         "queue of their own (no redrive policy)")
    may_send = {r for s in statements(flow, "FlowRole")
                if "sqs:SendMessage" in iam.listify(s["Action"])
                for r in iam.listify(s["Resource"])}
    if may_send != sent:
        raise Failed(f"FlowRole may send to {sorted(may_send)}; the definition sends to "
                     f"{sorted(sent)}")
    if read != set(collector_params(params)["JobQueueArns"]):
        raise Failed(f"the collectors read {sorted(read)}; the collector role was checked for "
                     f"{collector_params(params)['JobQueueArns']}")


def check_substitutions(flow_template, text):
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    given = set(flow_template["Resources"]["StateMachine"]["Properties"]
                ["DefinitionSubstitutions"])
    if used - given:
        raise Failed(f"the definition's placeholders {sorted(used - given)} have no "
                     "DefinitionSubstitutions entry")
    if given - used:
        raise Failed(f"DefinitionSubstitutions {sorted(given - used)} are not used by the "
                     "definition")


def variants():
    """Every option of the flow template that changes a policy."""
    yield "all options", dict(SAMPLE)
    yield "no prefix", dict(SAMPLE, EvidencePrefix="")
    yield "given keys", dict(SAMPLE, EvidenceKmsKeyArn=SAMPLE["EvidenceKey.Arn"],
                             SnapshotKmsKeyArn=SAMPLE["SnapshotKey.Arn"])
    yield "one account, no logs, no tracing", dict(
        SAMPLE, OrganizationId="", MemberAccountIds="", StateMachineLogLevel="OFF",
        TracingEnabled="false")
    yield "no custody key", dict(SAMPLE, CustodyKmsKeyArn="")
    yield "given snapshot key; member: regions, external ID", dict(
        SAMPLE, Regions="eu-west-1,us-east-1", ExternalId="x-123",
        SnapshotKmsKeyArn=SAMPLE["SnapshotKey.Arn"])


def must_fail(name, check):
    try:
        check()
    except Failed:
        return
    except iam.Failed:
        return
    raise Failed(f"self-test: the check accepted {name}")


def self_test(flow, params, calls, sar, sar_keys, shipped=None):
    """The checks must refuse what they are for: a wildcard action, an unneeded or a missing
    queue permission, a '*' resource for a scoped action, an unknown action, a definition
    calling an action no role grants; with the shipped definition (`shipped`), user data that
    is not what the collector role was checked for, jobs on a queue their collectors do not
    read, volume jobs on a queue with a dead-letter queue, a flow role sending to other queues,
    and a stale AHEAD_OF_DEFINITION entry."""
    def mutated(change):
        resources = copy.deepcopy(flow)
        change(resources)
        return resources

    def collector_statement(resources, sid):
        return next(s for s in statements(resources, "CollectorRole") if s.get("Sid") == sid)

    must_fail("a queue action on another queue", lambda: check_collector(mutated(
        lambda r: collector_statement(r, "TakeJobs").update(
            Resource="arn:aws:sqs:eu-west-1:123456789012:other")), params, calls))
    must_fail("queue actions on the job queue only", lambda: check_collector(mutated(
        lambda r: collector_statement(r, "TakeJobs").update(
            Resource=params["JobQueue.Arn"])), params, calls))
    must_fail("a missing queue action", lambda: check_collector(mutated(
        lambda r: collector_statement(r, "TakeJobs")["Action"].remove("sqs:DeleteMessage")),
        params, calls))
    must_fail("an extra queue action", lambda: check_collector(mutated(
        lambda r: collector_statement(r, "TakeJobs")["Action"].append("sqs:SendMessage")),
        params, calls))
    must_fail("task token actions in every region", lambda: check_collector(mutated(
        lambda r: collector_statement(r, "AnswerJobs").pop("Condition")), params, calls))
    must_fail("a wildcard allow", lambda: check_wildcards(
        "self-test", {"Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "x"}]},
        False, sar))
    must_fail("a wildcard deny without the TLS condition", lambda: check_wildcards(
        "self-test", {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                     "Resource": "x"}]}, False, sar))
    must_fail("an action that does not exist", lambda: check_wildcards(
        "self-test", {"Statement": [{"Effect": "Allow", "Action": "ec2:CreateSnapshotz",
                                     "Resource": "x"}]}, False, sar))
    must_fail("a misspelt condition key", lambda: check_condition_keys(
        "self-test", {"Effect": "Allow", "Action": "ec2:ModifySnapshotAttribute",
                      "Resource": "x", "Condition": {"StringEquals": {"ec2:Add/UserIds": "1"}}},
        sar_keys, sar))
    must_fail("a request key on another action", lambda: check_condition_keys(
        "self-test", {"Effect": "Allow", "Action": "ec2:DeleteSnapshot", "Resource": "x",
                      "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSnapshot"}}},
        sar_keys, sar))
    must_fail("a snapshot ARN with an account", lambda: check_arns(
        "self-test", {"Effect": "Allow", "Action": "ebs:GetSnapshotBlock",
                      "Resource": "arn:aws:ec2:eu-west-1:123456789012:snapshot/*"}, sar, sar_keys))
    must_fail("a log group ARN for a queue action", lambda: check_arns(
        "self-test", {"Effect": "Allow", "Action": "sqs:SendMessage",
                      "Resource": "arn:aws:logs:eu-west-1:123456789012:log-group:x"}, sar, sar_keys))
    must_fail("kms:Decrypt beside a grant condition", lambda: check_wildcards(
        "self-test", {"Statement": [{"Effect": "Allow", "Action": ["kms:CreateGrant", "kms:Decrypt"],
                                     "Resource": "x", "Condition": {"Bool": {
                                         "kms:GrantIsForAWSResource": "true"}}}]}, False, sar))
    must_fail("'*' for an action with a resource type", lambda: check_wildcards(
        "self-test", {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage",
                                     "Resource": "*"}]}, False, sar))
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:ec2:stopInstances",
              "End": True}}}
    substitutions = flow["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    must_fail("a snapshot created without the flow's tag", lambda: check_tags(
        "FlowRole", flow, [("ec2:CreateSnapshot", False, "A", {"forensic-incident": "x"})],
        substitutions))
    must_fail("a snapshot tagged with another value", lambda: check_tags(
        "FlowRole", flow, [("ec2:CopySnapshot", False, "A", {"forensic-collector": "other"})],
        substitutions))
    must_fail("a definition calling an action no role grants",
              lambda: check_roles_against_definition(flow, flow_member_sample(params),
                                                     definition))
    if shipped is None:
        return

    def definition_changed(change):
        changed = copy.deepcopy(shipped)
        change(changed)
        return changed

    def user_data_changed(change):
        return definition_changed(
            lambda d: change(d["States"]["Configure"]["Parameters"]["config"]["user_data"]))

    must_fail("user data without s3.require_object_lock", lambda: check_user_data(
        flow, params, user_data_changed(lambda u: u.pop("s3"))))
    must_fail("user data naming the audit group as the capture group", lambda: check_user_data(
        flow, params, user_data_changed(
            lambda u: u["cloudwatch"].update(capture_group="${AuditLogGroup}"))))
    must_fail("user data with the log groups swapped", lambda: check_user_data(
        flow, params, user_data_changed(lambda u: u["cloudwatch"].update(
            readiness_group=u["cloudwatch"]["capture_group"],
            capture_group=u["cloudwatch"]["readiness_group"]))))
    must_fail("dedicated collectors' user data without s3.require_object_lock",
              lambda: check_user_data(flow, params, definition_changed(
                  lambda d: d["States"]["Configure"]["Parameters"]["config"]
                  ["volume_user_data"].pop("s3"))))

    must_fail("collectors that do not sign with the stack's custody key", lambda: check_user_data(
        flow, params, definition_changed(lambda d: d["States"]["CustodySigning"].update(
            Default="CreateAuditStream"))))
    must_fail("dedicated collectors that do not sign", lambda: check_user_data(
        flow, params, definition_changed(lambda d: d["States"]["SignedUserData"].update(
            Next="CreateAuditStream"))))
    must_fail("collectors signing with another key", lambda: check_user_data(
        flow, params, definition_changed(lambda d: d["States"]["SignedUserData"].update(
            Parameters={"kms_key_id": "alias/other"}))))
    no_key = dict(params, CustodyKmsKeyArn="")
    unsigned = present(load(FLOW), no_key)
    must_fail("a custody section without a custody key", lambda: check_user_data(
        unsigned, no_key, user_data_changed(lambda u: u.update(
            custody={"kms_key_id": "${CustodyKmsKeyId}"}))))
    must_fail("a memory step without signKmsKeyId", lambda: check_memory_signing(
        flow, params, definition_changed(lambda d: [
            s["Parameters"]["Parameters"].pop("signKmsKeyId") for _, s, _ in all_states(
                d["States"]) if s.get("Resource", "").endswith("sendCommand.waitForTaskToken")])))
    must_fail("a collector role without kms:Sign on the custody key", lambda: check_collector(
        mutated(lambda r: statements(r, "CollectorRole").remove(collector_statement(
            r, "SignCustodyStatements"))), params, calls))

    def send_volume_job(d):
        return next(s for n, s, _ in all_states(d["States"]) if n == "SendVolumeJob")

    must_fail("volume jobs sent to the job queue", lambda: check_queues(
        flow, params, definition_changed(lambda d: send_volume_job(d)["Parameters"].update(
            QueueUrl="${JobQueueUrl}"))))

    def volume_path_on_job_queue(d):
        send_volume_job(d)["Parameters"].update(QueueUrl="${JobQueueUrl}")
        d["States"]["Configure"]["Parameters"]["config"]["volume_user_data"]["job"].update(
            queue_url="${JobQueueUrl}")
    must_fail("the volume path on the job queue, collectors and jobs", lambda: check_queues(
        flow, params, definition_changed(volume_path_on_job_queue)))
    must_fail("dedicated collectors reading the job queue", lambda: check_queues(
        flow, params, definition_changed(
            lambda d: d["States"]["Configure"]["Parameters"]["config"]["volume_user_data"]
            ["job"].update(queue_url="${JobQueueUrl}"))))
    must_fail("a redrive policy on the volume job queue", lambda: check_queues(mutated(
        lambda r: r["VolumeJobQueue"]["Properties"].update(RedrivePolicy={
            "deadLetterTargetArn": params["JobDeadLetterQueue.Arn"], "maxReceiveCount": 3})),
        params, shipped))
    must_fail("the flow role sending to the job queue only", lambda: check_queues(mutated(
        lambda r: next(s for s in statements(r, "FlowRole") if s.get("Sid") == "SendJobs")
        .update(Resource=params["JobQueue.Arn"])), params, shipped))
    must_fail("the flow role sending to the dead-letter queue too", lambda: check_queues(mutated(
        lambda r: next(s for s in statements(r, "FlowRole") if s.get("Sid") == "SendJobs")
        ["Resource"].append(params["JobDeadLetterQueue.Arn"])), params, shipped))
    AHEAD_OF_DEFINITION["MemberRole"] = {"ec2:CopySnapshot": "self-test"}
    try:
        must_fail("an AHEAD_OF_DEFINITION entry the definition calls",
                  lambda: check_roles_against_definition(flow, flow_member_sample(params),
                                                         shipped))
    finally:
        AHEAD_OF_DEFINITION.pop("MemberRole")


def all_states(states):
    """(name, state, its scope) for every state, those of Maps included."""
    for name, state in states.items():
        yield name, state, states
        for inner in ("ItemProcessor", "Iterator"):
            if inner in state:
                yield from all_states(state[inner]["States"])


def flow_member_sample(params):
    return present(load(MEMBER), params)


def main(argv):
    """`check_flow_stack.py [--definition FILE]`: FILE instead of flow/statemachine.asl.json."""
    global ASL
    if argv[1:2] == ["--definition"] and len(argv) == 3:
        ASL = Path(argv[2]).resolve()
    elif argv[1:]:
        raise Failed("usage: check_flow_stack.py [--definition FILE]")
    sar, sar_keys = reference()
    flow_template, member_template = load(FLOW), load(MEMBER)
    calls, note = calls_for_flow()
    definition_text = ASL.read_text() if ASL.exists() else None
    checked = 0
    for name, params in variants():
        try:
            flow = present(flow_template, params)
            member = present(member_template, params)
            for template, resources in [(FLOW, flow), (MEMBER, member)]:
                for where, document, key_policy in policies(resources):
                    check_wildcards(f"{template.name} {where}", document, key_policy, sar,
                                    sar_keys)
            check_collector(flow, params, calls)
            if definition_text is not None:
                check_roles_against_definition(flow, member, json.loads(definition_text))
                check_user_data(flow, params, json.loads(definition_text))
                check_memory_signing(flow, params, json.loads(definition_text))
                check_queues(flow, params, json.loads(definition_text))
            checked += 1
        except (Failed, iam.Failed) as err:
            raise Failed(f"{name}: {err}") from None
    # The same rules hold for the collector policy the flow's role copies.
    packaged = load(iam.TEMPLATE)
    for name, params in iam.variants():
        resources = present(packaged, dict(params, CollectorPolicy="collector-policy",
                                           CollectorRole="collector-role"))
        for where, document, key_policy in policies(resources):
            try:
                check_wildcards(f"{iam.TEMPLATE.name} {where}", document, key_policy, sar,
                                sar_keys)
            except Failed as err:
                raise Failed(f"{name}: {err}") from None
    self_test(present(flow_template, SAMPLE), SAMPLE, calls, sar, sar_keys,
              json.loads(definition_text) if definition_text is not None else None)
    if definition_text is not None:
        check_substitutions(flow_template, definition_text)
        against = f"and {ASL.name}"
    else:
        against = f"(no {ASL.name} yet: the roles were not checked against it)"
    for note_ in sorted(set(NOTES)):
        print(f"check_flow_stack: note: {note_}")
    print(f"check_flow_stack: the flow's roles match the collector's calls{note} {against}, "
          f"no wildcard action, in {checked} option sets (and {iam.TEMPLATE.name}'s policy by the "
          "same rules)")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (Failed, iam.Failed) as err:
        print(f"check_flow_stack: {err}", file=sys.stderr)
        sys.exit(1)
