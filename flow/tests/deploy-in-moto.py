#!/usr/bin/env python3
"""Deploys flow/template.yaml and flow/member-role.yaml into moto's CloudFormation and asserts
what the stacks created.

  flow/tests/deploy-in-moto.py [--definition FILE] [--keep]

Starts tests/helpers/motoserver.py on a free loopback port, then:

1. runs `aws cloudformation package` (the documented deployment step) against moto's S3 and
   asserts that it uploaded the definition and replaced DefinitionS3Location's local path with
   {Bucket, Key};
2. creates the collectors' network (VPC, subnet, security group) and takes one of moto's AMIs;
3. creates the forensic stack. moto's StateMachine reads DefinitionString only (it ignores
   DefinitionS3Location and DefinitionSubstitutions), so the definition goes in as
   `Fn::Sub: [definition, DefinitionSubstitutions]`, which substitutes the same `${Name}`s;
4. asserts each resource: the bucket's Object Lock rule, versioning, SSE-KMS key, public access
   block, lifecycle rule; the queue's redrive to the dead-letter queue (maxReceiveCount 3), SSE,
   visibility timeout; the volume job queue's SSE and timeouts, without a redrive policy; the log groups and their retention; the topic's key; the roles and their
   policies; the instance profile; the launch template's IMDSv2, shutdown behaviour, encrypted
   root volume and instance profile; the state machine with every placeholder substituted; the
   rule DISABLED with the state machine as its target; the outputs;
5. the two resource types moto's CloudFormation does not implement (AWS::S3::BucketPolicy,
   AWS::SQS::QueuePolicy: moto skips them with a warning) are applied through their APIs with the
   documents the stack renders, and read back;
6. creates the member-role stack and asserts its role, trust and policy.

Prints one line per resource type (created / skipped by moto) and exits non-zero on the first
failed assertion. Every wait is bounded. Needs moto (tests/helpers/setup-deps.sh), boto3, PyYAML
and awscli v1 (`pip install awscli`: it honours AWS_ENDPOINT_URL).
"""

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging" / "tests"))
from check_flow_stack import Loader, present  # CloudFormation YAML, rendering

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
STACK, MEMBER_STACK = "forensic-flow", "forensic-member"
# moto's CloudFormation has no model for these: it warns and creates nothing.
SKIPPED_BY_MOTO = {"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"}


class Failed(Exception):
    """An assertion about the deployed stack that did not hold."""


def expect(condition, what):
    if not condition:
        raise Failed(what)


def start_moto():
    """motoserver.py on a free port: (process, endpoint URL)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "helpers" / "motoserver.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ready "):
            return proc, f"http://127.0.0.1:{line.split()[1]}"
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise Failed("motoserver.py did not print 'ready PORT' within 60 s")


def package(endpoint, template_dir, bucket, s3):
    """`aws cloudformation package` of the template: the packaged template (a dict)."""
    out = template_dir / "packaged.yaml"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint)
    subprocess.run(["aws", "cloudformation", "package", "--region", REGION,
                    "--template-file", str(template_dir / "template.yaml"), "--s3-bucket", bucket,
                    "--output-template-file", str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=120)
    packaged = yaml.load(out.read_text(), Loader=Loader)
    location = packaged["Resources"]["StateMachine"]["Properties"]["DefinitionS3Location"]
    expect(isinstance(location, dict) and location.get("Bucket") == bucket and "Key" in location,
           f"package left DefinitionS3Location as {location!r}")
    body = s3.get_object(Bucket=bucket, Key=location["Key"])["Body"].read()
    expect(body == (template_dir / "statemachine.asl.json").read_bytes(),
           "the packaged definition in S3 differs from the file")
    return packaged


def for_moto(packaged, definition):
    """The packaged template with the definition inline (moto reads DefinitionString only)."""
    template = json.loads(json.dumps(packaged))
    props = template["Resources"]["StateMachine"]["Properties"]
    del props["DefinitionS3Location"]
    props["DefinitionString"] = {"Fn::Sub": [definition, props.pop("DefinitionSubstitutions")]}
    return template


def wait_stack(cfn, name):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            expect(stack["StackStatus"] == "CREATE_COMPLETE",
                   f"{name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
            return stack
        time.sleep(0.5)
    raise Failed(f"{name} still in progress after 120 s")


def network(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="collectors", Description="collectors",
                                      VpcId=vpc)["GroupId"]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return subnet, group, ami


def document(answer):
    """A policy document from GetRolePolicy. For a role's inline policy created by its
    CloudFormation, moto 5.1.22 answers Python's repr of the document, not JSON: read that."""
    policy = answer["PolicyDocument"]
    if isinstance(policy, dict):
        return policy
    try:
        return json.loads(policy)
    except json.JSONDecodeError:
        return ast.literal_eval(policy)


def check_forensic_stack(clients, stack, resources, definition_text, custody_key):
    s3, sqs, logs, sns, iam, ec2, sfn, events, kms = (
        clients[n] for n in ("s3", "sqs", "logs", "sns", "iam", "ec2", "stepfunctions",
                             "events", "kms"))
    ids = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    bucket = ids["EvidenceBucket"]
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    expect(lock["ObjectLockEnabled"] == "Enabled", f"Object Lock: {lock}")
    retention = lock["Rule"]["DefaultRetention"]
    expect(retention.get("Mode") == "GOVERNANCE" and retention.get("Days") == 30,
           f"default retention: {retention}")
    expect(s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled", "versioning")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    sse = rule["ApplyServerSideEncryptionByDefault"]
    expect(sse["SSEAlgorithm"] == "aws:kms" and sse["KMSMasterKeyID"] == outputs["EvidenceKmsKeyArn"],
           f"SSE: {sse}")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    expect(all(block.values()) and len(block) == 4, f"public access block: {block}")
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    expect(any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 7
               for r in lifecycle), f"lifecycle: {lifecycle}")
    for output in ("EvidenceKmsKeyArn", "SnapshotKmsKeyArn"):
        key = outputs[output]
        expect(kms.describe_key(KeyId=key)["KeyMetadata"]["Enabled"], f"{output} enabled")
        expect(kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], f"{output} rotation")
        policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        expect(all("*" not in a for s in policy["Statement"] for a in s["Action"]),
               f"{output}: a wildcard action in the key policy")

    queue = sqs.get_queue_attributes(QueueUrl=outputs["JobQueueUrl"],
                                     AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    dlq = sqs.get_queue_attributes(QueueUrl=outputs["JobDeadLetterQueueUrl"],
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    expect(redrive["deadLetterTargetArn"] == dlq and int(redrive["maxReceiveCount"]) == 3,
           f"redrive: {redrive}")
    expect(queue.get("SqsManagedSseEnabled") == "true", f"queue SSE: {queue}")
    expect(queue["VisibilityTimeout"] == "600" and queue["ReceiveMessageWaitTimeSeconds"] == "20",
           f"queue timeouts: {queue}")
    volume_queue = sqs.get_queue_attributes(QueueUrl=outputs["VolumeJobQueueUrl"],
                                            AttributeNames=["All"])["Attributes"]
    expect("RedrivePolicy" not in volume_queue, f"the volume job queue has a redrive: {volume_queue}")
    expect(volume_queue.get("SqsManagedSseEnabled") == "true", f"volume job queue SSE: {volume_queue}")
    expect(volume_queue["VisibilityTimeout"] == "600"
           and volume_queue["ReceiveMessageWaitTimeSeconds"] == "20"
           and volume_queue["MessageRetentionPeriod"] == "43200",
           f"volume job queue timeouts and retention (JobTimeoutSeconds): {volume_queue}")
    queues = sorted([queue["QueueArn"], volume_queue["QueueArn"]])

    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    for name in ("ForensicDiskReadiness", "ForensicDiskCapture", "ForensicDiskAudit",
                 f"/aws/vendedlogs/states/{STACK}-flow"):
        expect(groups.get(name, {}).get("retentionInDays") == 365, f"log group {name}")

    topic = sns.get_topic_attributes(TopicArn=outputs["FailureTopicArn"])["Attributes"]
    expect(topic.get("KmsMasterKeyId") == "alias/aws/sns", f"topic: {topic}")

    flow_role = iam.get_role(RoleName="ForensicCollectorFlow")["Role"]
    expect(flow_role["Arn"] == outputs["FlowRoleArn"], "flow role name")
    flow_policy = document(iam.get_role_policy(RoleName="ForensicCollectorFlow", PolicyName="flow"))
    sids = {s["Sid"] for s in flow_policy["Statement"]}
    expect({"LaunchCollectors", "PassOnlyTheCollectorRole", "AssumeMemberRolesOfTheListedAccounts",
            "AssumeMemberRolesOfTheOrganization"} <= sids, f"flow policy: {sorted(sids)}")
    collector_role = outputs["CollectorRoleArn"].rsplit("/", 1)[1]
    statements = document(iam.get_role_policy(RoleName=collector_role,
                                              PolicyName="collector"))["Statement"]
    sign = [s for s in statements if s["Sid"] == "SignCustodyStatements"]
    expect(len(sign) == 1 and sign[0]["Action"] in ("kms:Sign", ["kms:Sign"])
           and sign[0]["Resource"] == custody_key,
           f"the collector role signs with the custody key ({custody_key}) alone: {sign}")
    take = next(s for s in statements if s["Sid"] == "TakeJobs")
    expect(sorted(take["Resource"]) == queues, f"TakeJobs: {take}")
    send = next(s for s in flow_policy["Statement"] if s["Sid"] == "SendJobs")
    expect(sorted(send["Resource"]) == queues, f"SendJobs: {send}")

    template = ec2.describe_launch_template_versions(
        LaunchTemplateId=outputs["CollectorLaunchTemplateId"])["LaunchTemplateVersions"][0]
    data = template["LaunchTemplateData"]
    expect(data["InstanceInitiatedShutdownBehavior"] == "terminate", "shutdown behaviour")
    expect(data["MetadataOptions"]["HttpTokens"] == "required", "IMDSv2")
    expect(data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] in (True, "true"), "encrypted root")
    profile = iam.list_instance_profiles_for_role(RoleName=collector_role)["InstanceProfiles"][0]
    expect(data["IamInstanceProfile"]["Arn"] == profile["Arn"], "instance profile")

    machine = sfn.describe_state_machine(stateMachineArn=outputs["StateMachineArn"])
    expect(machine["roleArn"] == outputs["FlowRoleArn"], "state machine role")
    expect(machine.get("type") == "STANDARD", f"state machine type {machine.get('type')}")
    expect(machine["loggingConfiguration"]["level"] == "ERROR"
           and machine["tracingConfiguration"]["enabled"], "logging and tracing")
    defined = machine["definition"]
    expect("${" not in defined, "a placeholder was left unsubstituted")
    expect(json.loads(defined)["StartAt"] == json.loads(definition_text)["StartAt"],
           "the definition is not the file's")
    expect(outputs["JobQueueUrl"] in defined or "${JobQueueUrl}" not in definition_text,
           "JobQueueUrl not substituted into the definition")
    config = json.loads(defined)["States"]["Configure"]["Parameters"]["config"]
    expect(config["user_data"]["job"]["queue_url"] == outputs["JobQueueUrl"]
           and config["volume_user_data"]["job"]["queue_url"] == outputs["VolumeJobQueueUrl"]
           and config["volume_user_data"]["job"]["queue_idle_secs.$"] == "States.StringToJson('3600')",
           "the snapshot path's collectors read the job queue, the volume path's the volume job "
           f"queue and wait VolumeCollectorIdleSeconds: {config['volume_user_data']['job']}")
    expect(config.get("custody_key") == custody_key,
           f"the definition's custody key is the stack's ({config.get('custody_key')!r})")
    memory = [s for s in json.loads(defined)["States"].values()
              if s.get("Resource", "").endswith("ssm:sendCommand.waitForTaskToken")]
    expect(memory and all(s["Parameters"]["Parameters"].get("signKmsKeyId") == [custody_key]
                          for s in memory),
           f"the memory steps pass the custody key as signKmsKeyId: {memory}")
    user_data = config["user_data"]
    expect(user_data.get("cloudwatch") == {"readiness_group": "ForensicDiskReadiness",
                                           "capture_group": "ForensicDiskCapture"}
           and user_data.get("s3") == {"require_object_lock": True},
           f"the collectors' user data names the stack's log groups, requires Object Lock: {user_data}")

    rule = events.describe_rule(Name=outputs["FindingRuleName"])
    expect(rule["State"] == "DISABLED", f"rule state {rule['State']}")
    pattern = json.loads(rule["EventPattern"])
    expect(pattern["detail-type"] == ["Security Hub Findings - Imported"], f"pattern {pattern}")
    targets = events.list_targets_by_rule(Rule=outputs["FindingRuleName"])["Targets"]
    expect(targets and targets[0]["Arn"] == outputs["StateMachineArn"] and targets[0]["RoleArn"],
           f"targets {targets}")


def deployed_values(template, params, resources, clients):
    """Every Ref and Fn::GetAtt the template uses, as moto deployed them, for rendering."""
    iam, sqs, logs = clients["iam"], clients["sqs"], clients["logs"]
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    values.update(params)
    values.update({"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                   "AWS::StackName": STACK})
    keys = {k["KeyId"]: k["KeyArn"] for k in clients["kms"].list_keys()["Keys"]}
    groups = {g["logGroupName"]: g["arn"] for g in logs.describe_log_groups()["logGroups"]}
    for r in resources:
        name, physical, kind = r["LogicalResourceId"], r["PhysicalResourceId"], r["ResourceType"]
        values[name] = physical
        if kind == "AWS::S3::Bucket":
            values[f"{name}.Arn"] = f"arn:aws:s3:::{physical}"
        elif kind == "AWS::KMS::Key":
            values[f"{name}.Arn"] = keys[physical]
        elif kind == "AWS::SQS::Queue":
            values[f"{name}.Arn"] = sqs.get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        elif kind == "AWS::IAM::Role":
            values[f"{name}.Arn"] = iam.get_role(RoleName=physical)["Role"]["Arn"]
        elif kind == "AWS::IAM::InstanceProfile":
            values[f"{name}.Arn"] = iam.get_instance_profile(
                InstanceProfileName=physical)["InstanceProfile"]["Arn"]
        elif kind == "AWS::Logs::LogGroup":
            values[f"{name}.Arn"] = groups[physical]
    return values


def apply_gaps(clients, rendered, ids):
    """What moto's CloudFormation skips or ignores, put through each service's API with the
    values the template renders; returns what was applied (the caller asserts it read back).

    Checked to be absent first, so that a moto that starts implementing one is noticed."""
    s3, sqs, sns, sfn, kms = (clients[n] for n in ("s3", "sqs", "sns", "stepfunctions", "kms"))
    applied = []
    bucket = ids["EvidenceBucket"]
    props = rendered["EvidenceBucket"]["Properties"]
    expect("Status" not in s3.get_bucket_versioning(Bucket=bucket),
           "moto now applies VersioningConfiguration: assert it instead of applying it")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
    lock = props["ObjectLockConfiguration"]
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": lock["ObjectLockEnabled"],
        "Rule": {"DefaultRetention": {"Mode": lock["Rule"]["DefaultRetention"]["Mode"],
                                      "Days": int(lock["Rule"]["DefaultRetention"]["Days"])}}})
    s3.put_public_access_block(Bucket=bucket,
                               PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [{
        "ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"]}
        for rule in props["LifecycleConfiguration"]["Rules"]]})
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])
    applied.append("AWS::S3::Bucket: VersioningConfiguration, ObjectLockConfiguration, "
                   "PublicAccessBlockConfiguration, LifecycleConfiguration, OwnershipControls")

    bucket_policy = rendered["EvidenceBucketPolicy"]["Properties"]["PolicyDocument"]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(bucket_policy))
    expect(json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == bucket_policy,
           "bucket policy read back differs")
    queue_policy = rendered["JobQueuePolicy"]["Properties"]["PolicyDocument"]
    for url in rendered["JobQueuePolicy"]["Properties"]["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(queue_policy)})
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
        expect(json.loads(got["Policy"]) == queue_policy, "queue policy read back differs")
    applied.append("AWS::S3::BucketPolicy, AWS::SQS::QueuePolicy: the documents")

    topic = ids["FailureTopic"]
    expect("KmsMasterKeyId" not in sns.get_topic_attributes(TopicArn=topic)["Attributes"],
           "moto now applies the topic's KmsMasterKeyId: assert it instead")
    sns.set_topic_attributes(TopicArn=topic, AttributeName="KmsMasterKeyId",
                             AttributeValue=rendered["FailureTopic"]["Properties"]["KmsMasterKeyId"])
    applied.append("AWS::SNS::Topic: KmsMasterKeyId")

    machine = rendered["StateMachine"]["Properties"]
    logging = machine["LoggingConfiguration"]
    expect(sfn.describe_state_machine(stateMachineArn=ids["StateMachine"])
           ["loggingConfiguration"]["level"] == "OFF",
           "moto now applies LoggingConfiguration: assert it instead")
    sfn.update_state_machine(
        stateMachineArn=ids["StateMachine"],
        loggingConfiguration={
            "level": logging["Level"], "includeExecutionData": logging["IncludeExecutionData"],
            "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": d[
                "CloudWatchLogsLogGroup"]["LogGroupArn"]}} for d in logging["Destinations"]]},
        tracingConfiguration={"enabled": machine["TracingConfiguration"]["Enabled"]})
    applied.append("AWS::StepFunctions::StateMachine: LoggingConfiguration, "
                   "TracingConfiguration")

    # moto's CloudFormation stores a key's KeyPolicy as an object, after which every KMS call
    # naming the key fails with HTTP 500 (moto 5.1.22): put the rendered policy as JSON.
    for name in ("EvidenceKey", "SnapshotKey"):
        if name in rendered:
            kms.put_key_policy(KeyId=ids[name], PolicyName="default",
                               Policy=json.dumps(rendered[name]["Properties"]["KeyPolicy"]))
            kms.enable_key_rotation(KeyId=ids[name])
    applied.append("AWS::KMS::Key: KeyPolicy (as JSON), EnableKeyRotation")
    return applied


def check_member_stack(clients, resources):
    iam = clients["iam"]
    expect([r["ResourceType"] for r in resources] == ["AWS::IAM::Role"], f"member: {resources}")
    role = iam.get_role(RoleName="ForensicCollectorMember")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    condition = trust["Statement"][0]["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    expect(condition == f"arn:aws:iam::{ACCOUNT}:role/ForensicCollectorFlow",
           f"member trust: {trust}")
    statements = document(iam.get_role_policy(RoleName="ForensicCollectorMember",
                                              PolicyName="member"))["Statement"]
    share = next(s for s in statements if s["Sid"] == "ShareTaggedSnapshotsWithTheForensicAccountOnly")
    expect(share["Condition"]["StringEquals"]["ec2:Add/userId"] == ACCOUNT, f"share: {share}")


def report(resources, template):
    created = {}
    for r in resources:
        created.setdefault(r["ResourceType"], []).append(r["LogicalResourceId"])
    wanted = {}
    for name, resource in template["Resources"].items():
        wanted.setdefault(resource["Type"], []).append(name)
    for kind in sorted(wanted):
        if kind in created:
            print(f"  {kind}: created ({', '.join(sorted(created[kind]))})")
        else:
            expect(kind in SKIPPED_BY_MOTO, f"{kind} was not created and is not a known gap")
            print(f"  {kind}: skipped by moto's CloudFormation ({', '.join(wanted[kind])}); "
                  "applied through its API instead")


def run(definition, keep):
    proc, endpoint = start_moto()
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION=REGION)
        names = ["s3", "sqs", "logs", "sns", "iam", "ec2", "stepfunctions", "events", "kms",
                 "cloudformation"]
        clients = {n: boto3.client(n, endpoint_url=endpoint, region_name=REGION) for n in names}
        cfn = clients["cloudformation"]
        work = Path(tempfile.mkdtemp(prefix="flow-deploy-"))
        shutil.copy(ROOT / "flow" / "template.yaml", work / "template.yaml")
        shutil.copy(definition, work / "statemachine.asl.json")
        clients["s3"].create_bucket(Bucket="artifacts",
                                    CreateBucketConfiguration={"LocationConstraint": REGION})
        packaged = package(endpoint, work, "artifacts", clients["s3"])
        print("aws cloudformation package: DefinitionS3Location uploaded and replaced")

        subnet, group, ami = network(clients["ec2"])
        # The custody signing key is the operator's (an existing asymmetric key).
        custody_key = clients["kms"].create_key(
            KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
            Description="custody statements")["KeyMetadata"]["Arn"]
        template = for_moto(packaged, definition.read_text())
        params = {"CollectorAmiId": ami, "CollectorSubnetId": subnet,
                  "CollectorSecurityGroupId": group, "ObjectLockRetentionDays": "30",
                  "OrganizationId": "o-abcdefghij", "MemberAccountIds": "111111111111",
                  "StateMachineLogLevel": "ERROR", "TracingEnabled": "true",
                  "CustodyKmsKeyArn": custody_key}
        cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template),
                         Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                     for k, v in params.items()])
        stack = wait_stack(cfn, STACK)
        # moto lists a resource it skipped as an entry with no type or ID.
        listed = cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        resources = [r for r in listed if "ResourceType" in r]
        print(f"{STACK}: CREATE_COMPLETE, {len(resources)} resources created, "
              f"{len(listed) - len(resources)} skipped")
        report(resources, template)
        ids = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
        values = deployed_values(template, params, resources, clients)
        without_machine = json.loads(json.dumps(packaged))
        without_machine["Resources"]["StateMachine"]["Properties"].pop("DefinitionS3Location")
        rendered = present(without_machine, values)
        for line in apply_gaps(clients, rendered, ids):
            print(f"  ignored by moto's CloudFormation, applied through the API: {line}")
        check_forensic_stack(clients, stack, resources, definition.read_text(), custody_key)

        member = yaml.load((ROOT / "flow" / "member-role.yaml").read_text(), Loader=Loader)
        cfn.create_stack(StackName=MEMBER_STACK, TemplateBody=json.dumps(member),
                         Capabilities=["CAPABILITY_NAMED_IAM"],
                         Parameters=[{"ParameterKey": "ForensicAccountId", "ParameterValue": ACCOUNT},
                                     {"ParameterKey": "SnapshotKmsKeyArn",
                                      "ParameterValue": stack_output(stack, "SnapshotKmsKeyArn")}])
        wait_stack(cfn, MEMBER_STACK)
        member_resources = cfn.describe_stack_resources(StackName=MEMBER_STACK)["StackResources"]
        print(f"{MEMBER_STACK}: CREATE_COMPLETE, {len(member_resources)} resource")
        check_member_stack(clients, member_resources)
        if not keep:
            shutil.rmtree(work)
        print("deploy-in-moto: both stacks deployed and every assertion held")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def stack_output(stack, key):
    return next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--definition", type=Path, default=ROOT / "flow" / "statemachine.asl.json",
                        help="the state machine definition to deploy (default: the shipped one)")
    parser.add_argument("--keep", action="store_true", help="keep the packaged template")
    args = parser.parse_args()
    if not args.definition.exists():
        print(f"deploy-in-moto: no definition at {args.definition}", file=sys.stderr)
        return 2
    if not shutil.which("aws"):
        print("deploy-in-moto: needs the aws command, awscli v1 (`pip install awscli`; v1 honours "
              "AWS_ENDPOINT_URL, Debian's awscli 2.9 does not)", file=sys.stderr)
        return 2
    try:
        run(args.definition, args.keep)
    except (Failed, subprocess.CalledProcessError) as err:
        print(f"deploy-in-moto: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
