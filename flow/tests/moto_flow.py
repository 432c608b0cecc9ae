#!/usr/bin/env python3
"""Runs flow/statemachine.asl.json in moto's server, with a fake collector, end to end.

  moto_flow.py run [--jobs N] [SCENARIO...]
                                     start moto (tests/helpers/motoserver.py), run the scenarios
                                     (all when none is named), print one line per check, exit 1 on
                                     any failure; --jobs N: in N processes, each with its own moto
  moto_flow.py setup --port N [--sub NAME=VALUE]...
                                     against a running motoserver.py on 127.0.0.1:N: create every
                                     resource the definition names, the state machine and a
                                     suspect instance with two volumes of known bytes; print JSON
                                     (ARNs, URLs, substitutions, the suspect) for another harness
  moto_flow.py list                  the scenarios

The pieces are functions so that another harness (the Rust e2e test, or a script that starts the
real `forensic-collector watch` instead of `FakeCollector`) can reuse them: `start_moto`,
`Flow.setup` (resources + state machine), `render`, `make_suspect` (an instance whose volumes hold
known bytes through the EBS direct APIs), `collector_user_data` (what RunInstances got, decoded),
`FakeCollector`, `run_execution`. Requires moto 5.1.22 with boto3 (tests/helpers/setup-deps.sh).
Network: 127.0.0.1 only. Every wait is bounded.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "flow" / "statemachine.asl.json"
SAMPLE_FINDING = Path(__file__).resolve().parent / "sample-finding.json"
MOTOSERVER = ROOT / "tests" / "helpers" / "motoserver.py"
MEMORY_DOCUMENT = ROOT / "packaging" / "ssm" / "forensic-collector-memory.yaml"
MEMORY_DOCUMENT_NAME = "ForensicCollectorMemory"
# What tests/helpers/motosfn.py takes for "this instance's SSM agent is registered".
SSM_MANAGED_TAG = {"Key": "motosfn:ssm-managed", "Value": "true"}
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account: every call, whatever the keys
MEMBER_ACCOUNT = "111111111111"
BLOCK = 524288
TAG_VALUE = "flow-test"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]*)\}")
# The collector's job message (flow-contract.md): the keys and their types, nothing else.
JOB_REQUIRED = {"type": str, "version": int, "task_token": str, "execution_arn": str, "incident_id": str,
                "evidence_name": str, "destination": str}
JOB_OPTIONAL = {"snapshot_id": str, "volume_id": str, "instance_id": str, "source_volume_id": str, "examiner": str}
# One audit record per capture (flow-contract.md), plus its type, time and execution.
AUDIT_FIELDS = {"type", "time", "execution", "incident_id", "finding", "account", "region", "instance_id",
                "volume_id", "snapshot_id", "copied_snapshot_id", "manifest_url", "image_sha256", "status", "error"}
# The memory capture's audit record: the same fields (no volume, no snapshots) and what it is.
MEMORY_AUDIT_FIELDS = AUDIT_FIELDS | {"evidence"}
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def start_moto(log=None):
    """Starts tests/helpers/motoserver.py on a free loopback port; returns (process, port)."""
    cmd = [sys.executable, str(MOTOSERVER), "--port", "0"] + (["--log", log] if log else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"motoserver.py did not start: {line!r}")
    return proc, int(line.split()[1])


def clients(port):
    """boto3 clients for moto on 127.0.0.1:port, by service name (ec2, ebs, sqs, ...)."""
    config = botocore.config.Config(retries={"max_attempts": 1})
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)

    class Clients(dict):
        def __missing__(self, name):
            self[name] = session.client(name, endpoint_url=f"http://127.0.0.1:{port}", config=config)
            return self[name]

    return Clients()


def enable_execution(port):
    """Asks moto to execute state machines (it only records executions by default)."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/config", method="POST",
                                 data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode())
    urllib.request.urlopen(req, timeout=10).read()


def placeholders(text):
    """The ${Name} placeholders of a definition, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render(text, substitutions):
    """The definition with every ${Name} replaced, as CloudFormation's DefinitionSubstitutions does;
    fails on a placeholder without a value (CloudFormation would leave it in)."""
    missing = [n for n in placeholders(text) if n not in substitutions]
    if missing:
        raise ValueError(f"no value for placeholders {missing}")
    rendered = PLACEHOLDER.sub(lambda m: str(substitutions[m.group(1)]), text)
    json.loads(rendered)
    return rendered


class Flow:
    """The flow's resources in moto and the state machine made from the shipped definition."""

    def __init__(self, port):
        self.port = port
        self.c = clients(port)
        self.machines = {}

    def setup(self, name="forensic-flow", overrides=None):
        """Creates the bucket (with Object Lock, as the stack's: the collectors require it), job
        queue + dead-letter queue, the volume job queue (no dead-letter queue), failure topic (with a queue subscribed to read what it
        published), log groups (audit, the collectors' readiness and capture groups), KMS key,
        launch template and the state machine's role; returns the substitutions
        (CloudFormation's DefinitionSubstitutions)."""
        c = self.c
        c["s3"].create_bucket(Bucket="forensic-evidence-flow", ObjectLockEnabledForBucket=True)
        lock = c["s3"].get_object_lock_configuration(Bucket="forensic-evidence-flow")["ObjectLockConfiguration"]
        if lock.get("ObjectLockEnabled") != "Enabled":
            raise RuntimeError(f"moto made the evidence bucket without Object Lock: {lock}")
        dlq = c["sqs"].create_queue(QueueName="forensic-jobs-dlq")["QueueUrl"]
        dlq_arn = c["sqs"].get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue = c["sqs"].create_queue(QueueName="forensic-jobs", Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
        volume_queue = c["sqs"].create_queue(QueueName="forensic-volume-jobs", Attributes={
            "VisibilityTimeout": "60"})["QueueUrl"]
        topic = c["sns"].create_topic(Name="forensic-failures")["TopicArn"]
        self.notices = c["sqs"].create_queue(QueueName="forensic-failures-read")["QueueUrl"]
        notices_arn = c["sqs"].get_queue_attributes(QueueUrl=self.notices,
                                                    AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notices_arn,
                           Attributes={"RawMessageDelivery": "true"})
        for group in ("/forensic-collector/audit", "/forensic-collector/readiness", "/forensic-collector/captures"):
            c["logs"].create_log_group(logGroupName=group)
        # The memory document, as an operator creates it in each account with suspects.
        c["ssm"].create_document(Content=MEMORY_DOCUMENT.read_text(), Name=MEMORY_DOCUMENT_NAME,
                                 DocumentType="Command", DocumentFormat="YAML")
        key = c["kms"].create_key(Description="forensic snapshot copies")["KeyMetadata"]["Arn"]
        image = c["ec2"].describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        template = c["ec2"].create_launch_template(LaunchTemplateName="forensic-collector", LaunchTemplateData={
            "ImageId": image, "InstanceType": "m6i.large",
            "InstanceInitiatedShutdownBehavior": "terminate"})["LaunchTemplate"]["LaunchTemplateId"]
        role = c["iam"].create_role(RoleName="forensic-flow", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "states.amazonaws.com"}}]}))
        self.role_arn = role["Role"]["Arn"]
        self.image = image
        self.queue = queue
        self.volume_queue = volume_queue
        self.dlq = dlq
        self.substitutions = {
            "ForensicAccount": ACCOUNT, "MemberRoleName": "forensic-collector-member",
            "EvidenceBucket": "forensic-evidence-flow", "EvidencePrefix": "evidence", "JobQueueUrl": queue,
            "VolumeJobQueueUrl": volume_queue,
            "SnapshotTagValue": TAG_VALUE, "SnapshotKmsKeyArn": key, "CollectorLaunchTemplateId": template,
            "AuditLogGroup": "/forensic-collector/audit", "ReadinessLogGroup": "/forensic-collector/readiness",
            "CaptureLogGroup": "/forensic-collector/captures", "FailureTopicArn": topic, "KeepCopiedSnapshots": "false",
            "MaxCollectors": "2", "HeartbeatSeconds": "30", "JobTimeoutSeconds": "120",
            "CollectorHeartbeatSeconds": "5", "QueueIdleSeconds": "300", "VolumeCollectorIdleSeconds": "900",
            "PollSeconds": "1", "MaxPolls": "3",
            # As a stack without MemoryToolsBucket: memory only when the input asks
            # (capture_memory true); the memory scenarios' machine says true.
            "MemoryCaptureDefault": "false", "MemoryDocumentName": MEMORY_DOCUMENT_NAME,
            "MemoryToolsBucket": "forensic-tools", "MemoryToolsPrefix": "forensic-collector/1.4.0",
            "MemorySha256X8664": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "MemorySha256Aarch64": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
            "MemoryTimeoutSeconds": "300", "MemoryAnswerSeconds": "300",
            # As a stack without CustodyKmsKeyArn: unsigned, no custody section in the user data
            # (scenario_manual's exact user data); the custody scenario's machine has a key.
            "CustodyKmsKeyId": "",
        }
        self.substitutions.update(overrides or {})
        self.machine(name)
        return self.substitutions

    def machine(self, name, **overrides):
        """The state machine `name` from the shipped definition with these substitutions changed
        (created once)."""
        if name not in self.machines:
            subs = {**self.substitutions, **overrides}
            self.machines[name] = self.c["stepfunctions"].create_state_machine(
                name=name, roleArn=self.role_arn, type="STANDARD",
                definition=render(DEFINITION.read_text(), subs))["stateMachineArn"]
        return self.machines[name]

    def notices_received(self):
        """What the failure topic published since the last call (its subscribed queue, drained)."""
        out = []
        for _ in range(10):
            got = self.c["sqs"].receive_message(QueueUrl=self.notices, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            for m in got:
                out.append(m["Body"])
                self.c["sqs"].delete_message(QueueUrl=self.notices, ReceiptHandle=m["ReceiptHandle"])
        return out

    def audit_records(self, execution_arn):
        """The audit records (parsed) written to the execution's stream."""
        name = execution_arn.rsplit(":", 1)[1]
        try:
            events = self.c["logs"].get_log_events(logGroupName="/forensic-collector/audit", logStreamName=name,
                                                   startFromHead=True)["events"]
        except self.c["logs"].exceptions.ResourceNotFoundException:
            return []
        return [json.loads(e["message"]) for e in events]

    def instances_of(self, execution_arn):
        """{instance ID: state} of the instances tagged with the execution."""
        res = self.c["ec2"].describe_instances(Filters=[{"Name": "tag:forensic-execution",
                                                         "Values": [execution_arn]}])["Reservations"]
        return {i["InstanceId"]: i["State"]["Name"] for r in res for i in r["Instances"]}


def block_checksum(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def write_snapshot(c, blocks, complete=True, size_gib=1):
    """A snapshot written through the EBS direct APIs: {block index: 512 KiB bytes}. Left pending
    when `complete` is false."""
    sid = c["ebs"].start_snapshot(VolumeSize=size_gib, Description="test bytes")["SnapshotId"]
    for index, data in blocks.items():
        c["ebs"].put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=BLOCK,
                                    Checksum=block_checksum(data), ChecksumAlgorithm="SHA256")
    if complete:
        c["ebs"].complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(blocks))
    return sid


def known_blocks(seed):
    """Two distinct 512 KiB blocks at indexes 0 and 5 derived from `seed`."""
    return {i: hashlib.sha256(f"{seed}-{i}".encode()).digest() * (BLOCK // 32) for i in (0, 5)}


def image_sha256(blocks, size_gib=1):
    """SHA-256 (hex) of the whole volume a snapshot of `blocks` restores: each block at index ×
    512 KiB, zeros elsewhere (what the real collector's image must hash to)."""
    digest, zero = hashlib.sha256(), bytes(BLOCK)
    for index in range(size_gib * 1024 * 1024 * 1024 // BLOCK):
        digest.update(blocks.get(index, zero))
    return digest.hexdigest()


def make_suspect(flow, volumes=2, zone=REGION + "a", managed=False):
    """An instance (in moto) whose attached data volumes were created from snapshots of known bytes;
    its root volume is removed so that it has exactly `volumes` volumes. `managed`: its SSM agent
    counts as registered (SendCommand reaches it). Returns
    {"instance_id", "volumes": {volume ID: {block index: bytes}}}."""
    c = flow.c
    tags = [{"ResourceType": "instance", "Tags": [SSM_MANAGED_TAG]}] if managed else []
    inst = c["ec2"].run_instances(ImageId=flow.image, MinCount=1, MaxCount=1, TagSpecifications=tags,
                                  Placement={"AvailabilityZone": zone})["Instances"][0]
    iid = inst["InstanceId"]
    for m in inst.get("BlockDeviceMappings", []):
        c["ec2"].detach_volume(VolumeId=m["Ebs"]["VolumeId"], InstanceId=iid)
        c["ec2"].delete_volume(VolumeId=m["Ebs"]["VolumeId"])
    out = {}
    for n in range(volumes):
        blocks = known_blocks(f"{iid}-{n}")
        sid = write_snapshot(c, blocks)
        vid = c["ec2"].create_volume(SnapshotId=sid, AvailabilityZone=zone, Size=1)["VolumeId"]
        c["ec2"].attach_volume(VolumeId=vid, InstanceId=iid, Device=f"/dev/sd{'fghijk'[n]}")
        out[vid] = blocks
    return {"instance_id": iid, "volumes": out}


def collector_user_data(c, instance_id):
    """The user data RunInstances gave a collector, decoded (base64 → JSON object)."""
    raw = c["ec2"].describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    return json.loads(base64.b64decode(raw))


def check_job(body):
    """The contract's checks of a job message; returns (job, problems)."""
    problems = []
    try:
        job = json.loads(body)
    except ValueError as e:
        return None, [f"not JSON: {e}"]
    if not isinstance(job, dict):
        return None, ["not an object"]
    for k in job:
        if k not in JOB_REQUIRED and k not in JOB_OPTIONAL:
            problems.append(f"unknown field {k}")
    for k, t in JOB_REQUIRED.items():
        if not isinstance(job.get(k), t) or isinstance(job.get(k), bool):
            problems.append(f"{k} missing or not {t.__name__}")
    for k, t in JOB_OPTIONAL.items():
        if job.get(k) is not None and not isinstance(job[k], t):
            problems.append(f"{k} not {t.__name__}")
    if job.get("type") != "forensic-collector.job" or job.get("version") != 1:
        problems.append("type/version")
    for k in ("incident_id", "evidence_name"):
        if isinstance(job.get(k), str) and not SAFE_NAME.fullmatch(job[k]):
            problems.append(f"{k} not a safe name")
    has_snapshot, has_volume = job.get("snapshot_id") is not None, job.get("volume_id") is not None
    if has_snapshot == has_volume:
        problems.append("exactly one of snapshot_id / volume_id")
    if has_volume and job.get("instance_id") is None:
        problems.append("volume job without instance_id")
    if len(body.encode()) > 16384:
        problems.append("body over 16 KiB")
    return job, problems


class FakeCollector(threading.Thread):
    """Plays the collectors: takes jobs from the job queue and the volume job queue, checks each
    against the contract and the snapshot (tag, blocks), heartbeats, answers. `fail` = evidence
    names answered with SendTaskFailure; `silent` = names never answered (no heartbeat: the state
    times out). `queues[evidence name]` = the URL of the queue its job came from."""

    def __init__(self, flow, destination, fail=(), silent=(), expect_blocks=None, seconds=60, hold=0,
                 on_job=None):
        """`hold`: after the first job arrives, keep taking jobs for `hold` seconds before answering
        any (`first_batch` = how many arrived meanwhile: the jobs the flow had in flight).
        `on_job(job)`: called with each job before it is answered (to look at what exists while
        the execution waits)."""
        super().__init__(daemon=True)
        self.hold, self.first_batch = hold, None
        self.flow, self.c = flow, clients(flow.port)
        self.destination = destination
        self.fail, self.silent = set(fail), set(silent)
        self.expect_blocks = expect_blocks or {}
        self.deadline = time.monotonic() + seconds
        self.jobs, self.problems = [], []
        self.queues = {}
        self.stop = threading.Event()
        self.on_job = on_job

    def image_of(self, job):
        """(sha256 hex, {index: bytes}) of what the job names: the snapshot's blocks through the EBS
        direct APIs, or for a volume job the blocks of the snapshot the volume was made from."""
        sid = job.get("snapshot_id")
        if sid is None:
            vol = self.c["ec2"].describe_volumes(VolumeIds=[job["volume_id"]])["Volumes"][0]
            att = [a["InstanceId"] for a in vol.get("Attachments", []) if a.get("Device") == "/dev/sdf"]
            if att != [job["instance_id"]]:
                self.problems.append(f"volume {job['volume_id']} not attached to {job['instance_id']} as /dev/sdf")
            tags = {t["Key"]: t["Value"] for t in vol.get("Tags", [])}
            if tags.get("forensic-temporary") != "true" or tags.get("forensic-execution") != job["execution_arn"]:
                self.problems.append(f"volume {job['volume_id']} tags {tags}")
            sid = vol["SnapshotId"]
        else:
            snap = self.c["ec2"].describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
            tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
            if tags.get("forensic-collector") != TAG_VALUE or tags.get("forensic-incident") != job["incident_id"]:
                self.problems.append(f"snapshot {sid} tags {tags}")
        listed = self.c["ebs"].list_snapshot_blocks(SnapshotId=sid)["Blocks"]
        blocks = {b["BlockIndex"]: self.c["ebs"].get_snapshot_block(
            SnapshotId=sid, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])["BlockData"].read()
            for b in listed}
        digest = hashlib.sha256(b"".join(blocks[i] for i in sorted(blocks))).hexdigest()
        return digest, blocks

    def run(self):
        sfn = self.c["stepfunctions"]
        def receive(most, wait):
            """(queue URL, message) from both queues: the job queue at once, then a long poll of
            `wait` seconds on the volume job queue."""
            return [(url, m) for url, seconds in ((self.flow.queue, 0), (self.flow.volume_queue, wait))
                    for m in self.c["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=most,
                                                           WaitTimeSeconds=seconds).get("Messages", [])]

        while not self.stop.is_set() and time.monotonic() < self.deadline:
            got = receive(1, 1)
            if got and self.first_batch is None and self.hold:
                until = time.monotonic() + self.hold
                while time.monotonic() < until:
                    got += receive(10, 1)
                self.first_batch = len(got)
            for url, m in got:
                job, problems = check_job(m["Body"])
                self.c["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                if job is None:
                    self.problems.extend(problems)
                    continue
                self.jobs.append(job)
                self.queues[job["evidence_name"]] = url
                if job["destination"] != self.destination:
                    problems.append(f"destination {job['destination']}")
                self.problems.extend(f"{job['evidence_name']}: {p}" for p in problems)
                name, token = job["evidence_name"], job["task_token"]
                if self.on_job:
                    self.on_job(job)
                if name in self.silent:
                    continue
                sfn.send_task_heartbeat(taskToken=token)
                digest, blocks = self.image_of(job)
                want = self.expect_blocks.get(job.get("source_volume_id") or name)
                if want is not None and blocks != want:
                    self.problems.append(f"{name}: the snapshot does not hold the suspect's bytes")
                if name in self.fail:
                    sfn.send_task_failure(taskToken=token, error="ForensicCollector.Source",
                                          cause=f"test: {name} could not be read")
                    continue
                sfn.send_task_success(taskToken=token, output=json.dumps({
                    "outcome": "completed", "exit_code": 0, "evidence_name": name,
                    "manifest_url": f"{job['destination']}/{job['incident_id']}/disk_evidence/{name}.manifest.json",
                    "image_sha256": digest, "snapshot_id": job.get("snapshot_id"),
                    "volume_id": job.get("volume_id"), "collector": "fake"}))


class FakeAgent(threading.Thread):
    """Plays the SSM agent and the collector on a managed suspect: finds the memory command sent
    to `instance_id` in moto (ListCommands), records it, and answers its task token as the
    collector does: a heartbeat, then SendTaskSuccess with a memory result, SendTaskFailure
    (`fail`), or nothing (`silent`). `before(command)` runs first (to look at what exists while
    the execution waits for memory)."""

    def __init__(self, flow, instance_id, fail=False, silent=False, seconds=60, before=None):
        super().__init__(daemon=True)
        self.c, self.instance_id = clients(flow.port), instance_id
        self.fail, self.silent, self.before = fail, silent, before
        self.deadline = time.monotonic() + seconds
        self.commands, self.problems = [], []
        self.stop = threading.Event()

    def answer(self, call, **kwargs):
        """`call(**kwargs)`; a refusal is a problem of the run (the token must be known)."""
        try:
            return call(**kwargs)
        except self.c["stepfunctions"].exceptions.ClientError as err:
            self.problems.append(f"{call.__name__}: {err}")
            return None

    def run(self):
        sfn = self.c["stepfunctions"]
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            commands = self.c["ssm"].list_commands(InstanceId=self.instance_id)["Commands"]
            if len(commands) <= len(self.commands):
                time.sleep(0.2)
                continue
            for command in commands[len(self.commands):]:
                self.commands.append(command)
                params = {k: v for k, v in command.get("Parameters", {}).items()}
                if any(not isinstance(v, list) or len(v) != 1 for v in params.values()):
                    self.problems.append(f"parameters are not one-value lists: {params}")
                    continue
                params = {k: v[0] for k, v in params.items()}
                if self.before:
                    self.before(command)
                if self.silent:
                    continue
                token = params.get("taskToken", "")
                self.answer(sfn.send_task_heartbeat, taskToken=token)
                if self.fail:
                    self.answer(sfn.send_task_failure, taskToken=token, error="ForensicCollector.KernelLockdown",
                                cause="test: lockdown=confidentiality forbids reading memory")
                    continue
                prefix = f"s3://{params['bucket']}/{params['prefix']}" if params.get("prefix") \
                    else f"s3://{params['bucket']}"
                self.answer(sfn.send_task_success, taskToken=token, output=json.dumps({
                    "outcome": "completed", "exit_code": 0,
                    "manifest_url": f"{prefix}/{params['incident']}/memory_evidence/"
                                    f"{self.instance_id}-memory.manifest.json",
                    "image_sha256": hashlib.sha256(self.instance_id.encode()).hexdigest(),
                    "collector": "fake"}))


def run_execution(flow, machine_arn, payload, collector=None, seconds=90):
    """Starts an execution with `payload` (an object, or raw JSON text), waits (bounded) until it
    ends; returns describe_execution's answer plus "history"."""
    sfn = flow.c["stepfunctions"]
    text = payload if isinstance(payload, str) else json.dumps(payload)
    # A name always: without one moto's context object has Execution.Name null (AWS makes one up).
    arn = sfn.start_execution(stateMachineArn=machine_arn, input=text, name=f"run-{uuid.uuid4()}")["executionArn"]
    if collector:
        collector.start()
    deadline = time.monotonic() + seconds
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if collector:
        collector.stop.set()
        collector.join(5)
    desc["history"] = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return desc


# ---------------------------------------------------------------- scenarios
class Checks:
    def __init__(self, scenario):
        self.scenario, self.failed = scenario, 0

    def __call__(self, ok, what):
        print(f"{'ok  ' if ok else 'FAIL'} {self.scenario}: {what}", flush=True)
        self.failed += 0 if ok else 1
        return ok


def failure_of(desc):
    return desc.get("error"), desc.get("cause")


def expect_run_failure(flow, check, desc, error, cause_part=None):
    """An execution that failed as a whole: its error, one audit record saying so, a notice, nothing
    left running."""
    arn = desc["executionArn"]
    err, cause = failure_of(desc)
    check(desc["status"] == "FAILED" and err == error, f"FAILED with {error} (got {desc['status']} {err}: {cause})")
    if cause_part:
        check(cause_part in (cause or ""), f"cause mentions {cause_part!r} ({cause})")
    records = flow.audit_records(arn)
    check(len(records) == 1 and records[0]["status"] == "failed" and records[0]["error"]["error"] == error,
          f"one audit record of the failure ({records})")
    notices = flow.notices_received()
    check(any(error in n for n in notices), f"failure notice published ({notices})")
    check(flow.instances_of(arn) == {}, "no collector launched")


def expect_captured(flow, check, desc, suspect, collector, failed=()):
    arn = desc["executionArn"]
    check(not collector.problems, f"jobs match the contract and the suspect's bytes ({collector.problems})")
    check(desc["status"] == "SUCCEEDED", f"SUCCEEDED ({desc['status']} {failure_of(desc)})")
    out = json.loads(desc.get("output") or "{}")
    vols = {v.get("volume_id"): v for v in out.get("volumes", [])}
    check(set(vols) == set(suspect["volumes"]), f"output lists every volume ({out})")
    for vid, v in vols.items():
        if vid in failed:
            check(set(v) == {"volume_id", "snapshot_id", "error", "cause"}, f"{vid} lists its error ({v})")
        else:
            check(set(v) == {"volume_id", "snapshot_id", "manifest_url", "image_sha256", "outcome"}
                  and v["manifest_url"].endswith(f"/{vid}.manifest.json") and len(v["image_sha256"]) == 64,
                  f"{vid} lists manifest and SHA-256 ({v})")
    records = [r for r in flow.audit_records(arn) if r.get("evidence") != "memory"]
    check(records and all(set(r) == AUDIT_FIELDS for r in records), f"audit records have the contract's fields "
          f"({[sorted(set(r) ^ AUDIT_FIELDS) for r in records]})")
    check(sorted(r["volume_id"] for r in records) == sorted(suspect["volumes"])
          and all((r["status"] == "failed") == (r["volume_id"] in failed) for r in records),
          f"one audit record per volume ({records})")
    states = flow.instances_of(arn)
    check(states and all(s == "terminated" for s in states.values()), f"collectors terminated ({states})")
    return out, records


def scenario_manual(flow):
    """A manual request for an instance with two volumes: both captured."""
    check = Checks("manual")
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-42", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "examiner": "J. Doe"}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    check(len(collector.jobs) == 2 and all(j.get("examiner") == "J. Doe" and j["incident_id"] == "INC-42"
                                           and j["source_volume_id"] == j["evidence_name"] for j in collector.jobs),
          "each job names the incident, examiner and the suspect's volume")
    check(collector.queues and set(collector.queues.values()) == {flow.queue},
          f"snapshot jobs on the job queue, none on the volume job queue ({collector.queues})")
    ids = list(flow.instances_of(desc["executionArn"]))
    launch = [json.loads(e["taskScheduledEventDetails"]["parameters"]) for e in desc["history"]
              if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "runInstances"]
    # moto launches MinCount instances where EC2 launches up to MaxCount: check the request.
    check(len(launch) == 1 and launch[0]["MinCount"] == 1 and launch[0]["MaxCount"] == 2 and ids,
          f"one RunInstances for min(2 jobs, MaxCollectors 2) collectors ({ids})")
    if ids:
        ud = collector_user_data(flow.c, ids[0])
        check(ud == {"job": {"bucket": "forensic-evidence-flow", "prefix": "evidence", "queue_url": flow.queue,
                             "snapshot_tag": TAG_VALUE, "heartbeat_secs": 5, "queue_idle_secs": 300},
                     "s3": {"require_object_lock": True},
                     "cloudwatch": {"readiness_group": "/forensic-collector/readiness",
                                    "capture_group": "/forensic-collector/captures"},
                     "watch": {"on_complete": "poweroff"}}, f"collector user data per the contract ({ud})")
    check(flow.notices_received() == [], "no failure notice")
    return check.failed


def scenario_finding(flow):
    """The sample Security Hub finding (GuardDuty UnauthorizedAccess:EC2-TorClient) for the suspect."""
    check = Checks("finding")
    suspect = make_suspect(flow)
    event = json.loads(SAMPLE_FINDING.read_text().replace("${INSTANCE_ID}", suspect["instance_id"]))
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), event, collector)
    expect_captured(flow, check, desc, suspect, collector)
    finding = event["detail"]["findings"][0]
    want = "gd-" + finding["Id"].rsplit("/", 1)[1]
    check(json.loads(desc.get("output") or "{}").get("incident_id") == want, f"incident_id {want}")
    records = flow.audit_records(desc["executionArn"])
    check(all(r["finding"] == {"id": finding["Id"], "type": finding["Types"][0]} and r["account"] == "111111111111"
              and r["copied_snapshot_id"] for r in records),
          "audit records name the finding, the member account and the copies")
    # The same finding with a Region field and the instance as its second resource.
    suspect = make_suspect(flow)
    event = json.loads(SAMPLE_FINDING.read_text().replace("${INSTANCE_ID}", suspect["instance_id"]))
    finding = event["detail"]["findings"][0]
    finding["Region"] = REGION
    finding["AwsAccountId"] = ACCOUNT
    finding["Resources"].insert(0, {"Type": "AwsEc2SecurityGroup", "Id": "arn:aws:ec2:us-east-1:123456789012:"
                                                                      "security-group/sg-0123456789abcdef0"})
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), event, collector)
    expect_captured(flow, check, desc, suspect, collector)
    return check.failed


def scenario_malformed(flow):
    """Bad requests end at the first states: InvalidInput, an audit record, nothing launched."""
    check = Checks("malformed")
    base = {"incident_id": "INC-1", "account": ACCOUNT, "region": REGION, "instance_id": "i-0123456789abcdef0"}
    cases = {
        "not an object": "[1, 2]",
        "no incident": {k: v for k, v in base.items() if k != "incident_id"},
        "unsafe incident": {**base, "incident_id": "../etc"},
        "hidden incident": {**base, "incident_id": ".x"},
        "two sources": {**base, "volume_ids": ["vol-0123456789abcdef0"]},
        "no source": {k: v for k, v in base.items() if k != "instance_id"},
        "empty volume list": {**{k: v for k, v in base.items() if k != "instance_id"}, "volume_ids": []},
        "bad capture path": {**base, "capture_path": "dd"},
        "capture_memory not a boolean": {**base, "capture_memory": "yes"},
        "numeric examiner": {**base, "examiner": 7},
        "other region": {**base, "region": "eu-west-1"},
        "finding without account": {"detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
            {"Id": "arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/f", "Region": REGION,
             "Types": ["TTPs/x"], "Resources": [{"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:"
                                                 "123456789012:instance/i-0123456789abcdef0"}]}]}},
        "finding with numeric Id": {"detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
            {"Id": 7, "AwsAccountId": ACCOUNT, "Region": REGION, "Types": ["TTPs/x"]}]}},
        "finding with an unsafe Id": {"detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
            {"Id": "arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/f$(x)", "AwsAccountId": ACCOUNT,
             "Region": REGION, "Types": ["TTPs/x"], "Resources": [{"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:"
                                                                 "us-east-1:123456789012:instance/i-0123456789abcdef0"}]}]}},
        "finding without instance": {"detail-type": "Security Hub Findings - Imported", "detail": {"findings": [
            {"Id": "arn:aws:guardduty:us-east-1:123456789012:detector/d/finding/f", "AwsAccountId": ACCOUNT,
             "Region": REGION, "Types": ["TTPs/x"], "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::b"}]}]}},
    }
    for what, payload in cases.items():
        sub = Checks(f"malformed/{what}")
        desc = run_execution(flow, flow.machine("forensic-flow"), payload)
        expect_run_failure(flow, sub, desc, "ForensicFlow.InvalidInput")
        check.failed += sub.failed
    return check.failed


def scenario_not_found(flow):
    check = Checks("not-found")
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-2", "account": ACCOUNT, "region": REGION, "instance_id": "i-0123456789abcdef0"})
    expect_run_failure(flow, check, desc, "ForensicFlow.InstanceNotFound", "i-0123456789abcdef0")
    return check.failed


def scenario_no_volumes(flow):
    check = Checks("no-volumes")
    suspect = make_suspect(flow, volumes=0)
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-3", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]})
    expect_run_failure(flow, check, desc, "ForensicFlow.NoVolumes", suspect["instance_id"])
    return check.failed


def scenario_never_completes(flow):
    """A snapshot that stays pending: the wait gives up after MaxPolls polls."""
    check = Checks("never-completes")
    sid = write_snapshot(flow.c, known_blocks("pending"), complete=False)
    started = time.monotonic()
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-4", "account": ACCOUNT, "region": REGION, "snapshot_ids": [sid]})
    expect_run_failure(flow, check, desc, "ForensicFlow.SnapshotTimeout", "snapshot never completed")
    polls = [e for e in desc["history"] if e["type"] == "TaskStateEntered"
             and e["stateEnteredEventDetails"]["name"] == "DescribeSnapshotsHere"]
    check(len(polls) == 3, f"exactly MaxPolls=3 polls ({len(polls)}, {time.monotonic() - started:.1f} s)")
    return check.failed


def scenario_job_fails(flow):
    """One collector job answers SendTaskFailure: that volume lists its error, the other is captured,
    a notice is published, the execution succeeds."""
    check = Checks("job-fails")
    suspect = make_suspect(flow)
    bad = min(suspect["volumes"])
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", fail=[bad],
                              expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-5", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    out, _ = expect_captured(flow, check, desc, suspect, collector, failed=[bad])
    v = [v for v in out.get("volumes", []) if v["volume_id"] == bad]
    check(v and v[0]["error"] == "ForensicCollector.Source" and "could not be read" in v[0]["cause"],
          f"the failed volume's error is the collector's ({v})")
    notices = flow.notices_received()
    check(len(notices) == 1 and bad in notices[0], f"one notice naming the volume ({notices})")
    return check.failed


def scenario_all_fail(flow):
    check = Checks("all-fail")
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", fail=list(suspect["volumes"]))
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-6", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    err, cause = failure_of(desc)
    check(desc["status"] == "FAILED" and err == "ForensicFlow.NoVolumeCaptured", f"FAILED ({err}: {cause})")
    check(all(v in (cause or "") for v in suspect["volumes"]), "the cause lists every volume's error")
    records = flow.audit_records(desc["executionArn"])
    check(len(records) == 2 and all(r["status"] == "failed" for r in records), "two failed audit records")
    check(len(flow.notices_received()) == 1, "one notice")
    states = flow.instances_of(desc["executionArn"])
    check(states and all(s == "terminated" for s in states.values()), f"collectors terminated ({states})")
    return check.failed


def scenario_heartbeat(flow):
    """A collector that stops heartbeating: its state times out (moto: States.Timeout; AWS:
    States.HeartbeatTimeout), the other volume is captured."""
    check = Checks("heartbeat")
    suspect = make_suspect(flow)
    quiet = sorted(suspect["volumes"])[1]
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", silent=[quiet],
                              expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow-heartbeat", HeartbeatSeconds="3"), {
        "incident_id": "INC-7", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    out, _ = expect_captured(flow, check, desc, suspect, collector, failed=[quiet])
    v = [v for v in out.get("volumes", []) if v["volume_id"] == quiet]
    check(v and v[0]["error"] in ("States.Timeout", "States.HeartbeatTimeout"), f"timed out ({v})")
    check(len(flow.notices_received()) == 1, "one notice")
    return check.failed


def scenario_volume_ids(flow):
    check = Checks("volume-ids")
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow-noprefix", EvidencePrefix=""), {
        "incident_id": "INC-8", "account": ACCOUNT, "region": REGION,
        "volume_ids": list(suspect["volumes"])}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    return check.failed


def scenario_snapshot_ids(flow):
    """Given snapshots (no instance): each job names its snapshot and is named after it."""
    check = Checks("snapshot-ids")
    blocks = known_blocks("given")
    sid = write_snapshot(flow.c, blocks)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks={sid: blocks})
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-11", "account": ACCOUNT, "region": REGION, "snapshot_ids": [sid]}, collector)
    check(not collector.problems, f"the job matches the contract and the bytes ({collector.problems})")
    out = json.loads(desc.get("output") or "{}")
    check(desc["status"] == "SUCCEEDED" and [(v["volume_id"], v["snapshot_id"]) for v in out.get("volumes", [])]
          == [(None, sid)], f"SUCCEEDED with the snapshot ({desc['status']} {out})")
    check([j["evidence_name"] for j in collector.jobs] == [sid] and "source_volume_id" not in json.dumps(
        [k for j in collector.jobs for k, v in j.items() if v is not None]), "evidence named after the snapshot")
    return check.failed


def scenario_in_flight(flow):
    """Three volumes, MaxCollectors 2: two collectors requested, at most two jobs in flight."""
    check = Checks("in-flight")
    suspect = make_suspect(flow, volumes=3)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"],
                              hold=4)
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-12", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    expect_captured(flow, check, desc, suspect, collector)
    check(collector.first_batch == 2, f"two jobs in flight while none was answered ({collector.first_batch})")
    return check.failed


def scheduled(desc):
    """(resource, parameters, credentials) of every task the execution scheduled, in order."""
    return [(d["resource"], json.loads(d["parameters"]), d.get("taskCredentials"))
            for d in (e["taskScheduledEventDetails"] for e in desc["history"] if e["type"] == "TaskScheduled")]


def snapshot_tags(snapshot):
    return {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}


def member_copies_now(flow, execution_arn):
    """{snapshot ID: (tags, KmsKeyId, the account IDs it is shared with)} of the member-side
    copies the execution has made (tagged forensic-share-with) that exist now."""
    c = flow.c["ec2"]
    found = c.describe_snapshots(Filters=[{"Name": "tag:forensic-execution", "Values": [execution_arn]},
                                          {"Name": "tag-key", "Values": ["forensic-share-with"]}])["Snapshots"]
    return {s["SnapshotId"]: (snapshot_tags(s), s.get("KmsKeyId"), sorted(
        p.get("UserId") for p in c.describe_snapshot_attribute(
            SnapshotId=s["SnapshotId"], Attribute="createVolumePermission")["CreateVolumePermissions"]))
        for s in found}


def scenario_cross_account(flow):
    """The suspect in a member account: each snapshot is copied there re-encrypted with the
    snapshot key, that copy shared with the forensic account and copied (KMS) here; the jobs name
    the forensic copies, which hold the suspect's bytes; both copies are deleted at the end
    (KeepCopiedSnapshots false), and kept with KeepCopiedSnapshots true; given snapshots of a
    member account take the same path; the member-side calls carry the member role. moto assumes
    no role: every call runs in its one account."""
    check = Checks("cross-account")
    key = flow.substitutions["SnapshotKmsKeyArn"]
    member_role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/forensic-collector-member"
    suspect = make_suspect(flow)
    seen = {}
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"],
                              on_job=lambda job: seen.update(member_copies_now(flow, job["execution_arn"])))
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-9", "account": MEMBER_ACCOUNT, "region": REGION,
        "instance_id": suspect["instance_id"]}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    calls = scheduled(desc)
    as_member = sorted({r for r, _, c in calls if c == {"roleArn": member_role}})
    check(as_member == ["copySnapshot", "createSnapshot", "deleteSnapshot", "describeInstances",
                        "describeSnapshots", "describeVolumes", "modifySnapshotAttribute"],
          f"member-side calls scheduled with the member role ({as_member})")
    check(all(c is None or c == {"roleArn": member_role} for _, _, c in calls)
          and {"copySnapshot", "runInstances", "deleteSnapshot"} <= {r for r, _, c in calls if c is None},
          "forensic-side calls without Credentials")
    arn = desc["executionArn"]
    sources = {p["SourceSnapshotId"] for r, p, c in calls if r == "copySnapshot" and c}
    member_copy = [p for r, p, c in calls if r == "copySnapshot" and c]
    check(len(member_copy) == 2 and all(p["Encrypted"] is True and p["KmsKeyId"] == key for p in member_copy),
          f"each snapshot copied in the member account, encrypted with the snapshot key ({member_copy})")
    check(len(seen) == 2 and all(
        tags.get("forensic-collector") == TAG_VALUE and tags.get("forensic-incident") == "INC-9"
        and tags.get("forensic-execution") == arn and tags.get("forensic-share-with") == ACCOUNT
        and tags.get("forensic-copy-of") in sources and kms == key and shared == [ACCOUNT]
        for tags, kms, shared in seen.values()),
        f"the member-side copies: tagged, re-encrypted with the key, shared with the forensic account ({seen})")
    shared = {p["SnapshotId"] for r, p, c in calls if r == "modifySnapshotAttribute"}
    copied_here = {p["SourceSnapshotId"] for r, p, c in calls if r == "copySnapshot" and c is None}
    check(seen and shared == set(seen) == copied_here and not shared & sources,
          f"the member-side copies (not the originals) shared and copied here ({shared}, {copied_here})")
    deleted_there = {p["SnapshotId"] for r, p, c in calls if r == "deleteSnapshot" and c}
    deleted_here = {p["SnapshotId"] for r, p, c in calls if r == "deleteSnapshot" and c is None}
    copies = [j["snapshot_id"] for j in collector.jobs]
    check(seen and deleted_there == set(seen) and deleted_here == set(copies) and not member_copies_now(flow, arn),
          f"the member-side copies deleted with the member role, the copies here without ({deleted_there}, "
          f"{deleted_here})")
    left = flow.c["ec2"].describe_snapshots(Filters=[{"Name": "tag-key", "Values": ["forensic-copy-of"]},
                                                     {"Name": "tag:forensic-incident", "Values": ["INC-9"]}])
    check(len(copies) == 2 and not set(copies) & (set(seen) | sources) and not left["Snapshots"],
          f"jobs named the copies here, deleted at the end ({left['Snapshots']})")
    originals = flow.c["ec2"].describe_snapshots(SnapshotIds=sorted(sources))["Snapshots"] if sources else []
    check(len(originals) == 2, f"the member account's own snapshots are kept ({sorted(sources)})")
    states = [e["stateEnteredEventDetails"]["name"] for e in desc["history"] if e["type"] == "TaskStateEntered"]
    check(sorted(n for n in states if n in ("CopyInMemberAccount", "ShareSnapshot", "CopySnapshot",
                                            "DeleteMemberCopy"))
          == sorted(["CopyInMemberAccount", "ShareSnapshot", "CopySnapshot", "DeleteMemberCopy"] * 2),
          f"each snapshot copied there, shared, copied here, its member-side copy deleted ({len(states)} states)")

    # KeepCopiedSnapshots true: both copies stay, nothing is deleted.
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow-keep", KeepCopiedSnapshots="true"), {
        "incident_id": "INC-9K", "account": MEMBER_ACCOUNT, "region": REGION,
        "instance_id": suspect["instance_id"]}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    kept = member_copies_now(flow, desc["executionArn"])
    here = flow.c["ec2"].describe_snapshots(SnapshotIds=[j["snapshot_id"] for j in collector.jobs])["Snapshots"]
    check(len(kept) == 2 and len(here) == 2 and not [r for r, _, _ in scheduled(desc) if r == "deleteSnapshot"],
          f"KeepCopiedSnapshots true keeps both copies ({sorted(kept)})")

    # Given snapshots of a member account (untagged: the member role may share only its tagged
    # copy): the same path, the job named after the given snapshot.
    blocks = known_blocks("given-member")
    sid = write_snapshot(flow.c, blocks)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks={sid: blocks})
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-9S", "account": MEMBER_ACCOUNT, "region": REGION, "snapshot_ids": [sid]}, collector)
    calls = scheduled(desc)
    member_copy = [p for r, p, c in calls if r == "copySnapshot" and c]
    shared = [p["SnapshotId"] for r, p, c in calls if r == "modifySnapshotAttribute"]
    check(desc["status"] == "SUCCEEDED" and not collector.problems and len(member_copy) == 1
          and member_copy[0]["SourceSnapshotId"] == sid and shared and shared[0] != sid
          and [j["evidence_name"] for j in collector.jobs] == [sid] and collector.jobs[0]["snapshot_id"] != sid,
          f"a given member snapshot: copied there, that copy shared, the copy here captured "
          f"({desc['status']} {collector.problems} {shared})")
    return check.failed


def check_volume_queue(flow, check, desc, collector):
    """The volume path's jobs went to the volume job queue (none to the job queue), and every
    dedicated collector's user data names that queue and the volume collectors' idle time."""
    check(len(collector.queues) == len(collector.jobs) == 2
          and set(collector.queues.values()) == {flow.volume_queue},
          f"volume jobs on the volume job queue, none on the job queue ({collector.queues})")
    ids = list(flow.instances_of(desc["executionArn"]))
    jobs = [collector_user_data(flow.c, i)["job"] for i in ids]
    want = {"bucket": "forensic-evidence-flow", "prefix": "evidence", "queue_url": flow.volume_queue,
            "snapshot_tag": TAG_VALUE, "heartbeat_secs": 5,
            "queue_idle_secs": int(flow.substitutions["VolumeCollectorIdleSeconds"])}
    check(len(ids) == 2 and all(j == want for j in jobs),
          f"each dedicated collector reads the volume job queue, idle {want['queue_idle_secs']} s ({jobs})")
    dead = flow.c["sqs"].receive_message(QueueUrl=flow.dlq, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=0).get("Messages", [])
    check(not dead, f"nothing in the dead-letter queue ({len(dead)} messages)")


def scenario_volume_path(flow):
    """capture_path volume: per snapshot a collector, a volume attached to it as /dev/sdf, the job
    naming volume and instance; afterwards the collector terminated and the volume deleted."""
    check = Checks("volume-path")
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-10", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "capture_path": "volume"}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    check(all(j.get("volume_id") and j.get("instance_id") and "snapshot_id" not in j for j in collector.jobs),
          f"jobs name a volume and its instance ({collector.jobs})")
    check_volume_queue(flow, check, desc, collector)
    left = flow.c["ec2"].describe_volumes(Filters=[{"Name": "tag:forensic-execution",
                                                    "Values": [desc["executionArn"]]}])["Volumes"]
    check(not left, f"temporary volumes deleted ({[v['VolumeId'] for v in left]})")
    return check.failed


def scenario_volume_path_fails(flow):
    """capture_path volume, one job failing and one collector silent: both volumes list their
    errors, the run fails (nothing captured), every collector is terminated, every temporary volume
    deleted."""
    check = Checks("volume-path-fails")
    suspect = make_suspect(flow)
    bad, quiet = sorted(suspect["volumes"])
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", fail=[bad], silent=[quiet])
    desc = run_execution(flow, flow.machine("forensic-flow-heartbeat", HeartbeatSeconds="3"), {
        "incident_id": "INC-13", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "capture_path": "volume"}, collector)
    err, cause = failure_of(desc)
    check(len(collector.jobs) == 2 and not collector.problems,
          f"two volume jobs, attached and tagged temporary ({collector.problems})")
    check_volume_queue(flow, check, desc, collector)
    check(desc["status"] == "FAILED" and err == "ForensicFlow.NoVolumeCaptured"
          and "ForensicCollector.Source" in cause and "Timeout" in cause, f"FAILED with both errors ({err}: {cause})")
    states = flow.instances_of(desc["executionArn"])
    check(len(states) == 2 and all(s == "terminated" for s in states.values()),
          f"both dedicated collectors terminated ({states})")
    left = flow.c["ec2"].describe_volumes(Filters=[{"Name": "tag:forensic-execution",
                                                    "Values": [desc["executionArn"]]}])["Volumes"]
    check(not left, f"temporary volumes deleted ({[v['VolumeId'] for v in left]})")
    records = flow.audit_records(desc["executionArn"])
    check(len(records) == 2 and all(r["status"] == "failed" for r in records), "two failed audit records")
    check(len(flow.notices_received()) == 1, "one notice")
    return check.failed


def memory_machine(flow):
    """The state machine with memory on by default (a stack with MemoryToolsBucket set)."""
    return flow.machine("forensic-flow-memory", MemoryCaptureDefault="true")


def memory_commands(flow, instance_id):
    return flow.c["ssm"].list_commands(InstanceId=instance_id)["Commands"]


def expect_memory_record(flow, check, desc, status, error=None):
    """The execution's one memory audit record: its fields, status and error."""
    records = [r for r in flow.audit_records(desc["executionArn"]) if r.get("evidence") == "memory"]
    check(len(records) == 1 and set(records[0]) == MEMORY_AUDIT_FIELDS and records[0]["status"] == status
          and (records[0]["error"] or {}).get("error") == error,
          f"one memory audit record, {status}{' ' + error if error else ''} ({records})")


def scenario_memory_captured(flow):
    """Memory on by default, a managed suspect: the document is sent to it before any snapshot
    (with the evidence bucket, prefix, incident, tools and hashes, and the task token), the fake
    agent answers, the result's memory has the manifest, and both volumes are captured after."""
    check = Checks("memory-captured")
    suspect = make_suspect(flow, managed=True)
    iid = suspect["instance_id"]
    seen = {}

    def before(command):
        vols = list(suspect["volumes"])
        seen["snapshots"] = flow.c["ec2"].describe_snapshots(
            Filters=[{"Name": "volume-id", "Values": vols}, {"Name": "tag-key", "Values": ["forensic-execution"]}]
        )["Snapshots"]
        seen["collectors"] = flow.c["ec2"].describe_instances(Filters=[
            {"Name": "tag-key", "Values": ["forensic-execution"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]

    agent = FakeAgent(flow, iid, before=before)
    agent.start()
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, memory_machine(flow), {
        "incident_id": "INC-M1", "account": ACCOUNT, "region": REGION, "instance_id": iid}, collector)
    agent.stop.set()
    agent.join(5)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    check(not agent.problems and len(agent.commands) == 1, f"one memory command ({agent.problems}, "
          f"{len(agent.commands)})")
    if agent.commands:
        cmd = agent.commands[0]
        params = {k: v[0] for k, v in cmd["Parameters"].items()}
        subs = flow.substitutions
        timeouts = [p for r, p, _ in scheduled(desc) if r == "sendCommand.waitForTaskToken"]
        task = [e["taskScheduledEventDetails"] for e in desc["history"] if e["type"] == "TaskScheduled"
                and e["taskScheduledEventDetails"]["resource"] == "sendCommand.waitForTaskToken"]
        check(len(timeouts) == 1 and timeouts[0]["TimeoutSeconds"] == 300 and len(task) == 1
              and task[0].get("timeoutInSeconds") == 600 and task[0].get("heartbeatInSeconds") is None,
              f"delivery bound 300 s; the step's timeout MemoryTimeoutSeconds + MemoryAnswerSeconds, no "
              f"heartbeat ({task})")
        check(cmd["DocumentName"] == MEMORY_DOCUMENT_NAME and cmd["InstanceIds"] == [iid],
              f"the memory document sent to the suspect ({cmd['DocumentName']}, {cmd['InstanceIds']})")
        want = {"toolsBucket": subs["MemoryToolsBucket"], "toolsPrefix": subs["MemoryToolsPrefix"],
                "sha256X8664": subs["MemorySha256X8664"], "sha256Aarch64": subs["MemorySha256Aarch64"],
                "bucket": "forensic-evidence-flow", "prefix": "evidence", "incident": "INC-M1",
                "executionTimeout": subs["MemoryTimeoutSeconds"], "signKmsKeyId": ""}
        check({k: params.get(k) for k in want} == want and params.get("taskToken"),
              f"its parameters: the stack's tools and hashes, the evidence bucket and prefix, the incident, "
              f"a task token ({params})")
        document = yaml_parameters()
        check(set(params) == set(document),
              f"exactly the document's parameters ({sorted(set(params) ^ set(document))} differ)")
        bad = [k for k, v in params.items() if not re.search(document[k]["allowedPattern"], v)]
        check(not bad, f"each value passes the document's allowedPattern ({bad})")
    check(seen.get("snapshots") == [] and seen.get("collectors") == [],
          f"no snapshot and no collector yet when the suspect got the command ({seen})")
    mem = out.get("memory") or {}
    check(set(mem) == {"manifest_url", "image_sha256", "outcome"} and mem.get("outcome") == "completed"
          and mem.get("manifest_url") == f"s3://forensic-evidence-flow/evidence/INC-M1/memory_evidence/"
                                         f"{iid}-memory.manifest.json",
          f"the result's memory names the manifest ({mem})")
    expect_memory_record(flow, check, desc, "completed")
    return check.failed


def yaml_parameters():
    """The memory document's parameters (name -> spec)."""
    import yaml

    return yaml.safe_load(MEMORY_DOCUMENT.read_text())["parameters"]


def scenario_memory_failed(flow):
    """capture_memory true in the input (the machine's default is off); the collector on the
    suspect answers SendTaskFailure: memory lists the error, the disks are captured anyway."""
    check = Checks("memory-failed")
    suspect = make_suspect(flow, managed=True)
    agent = FakeAgent(flow, suspect["instance_id"], fail=True)
    agent.start()
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, flow.machine("forensic-flow"), {
        "incident_id": "INC-M2", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "capture_memory": True}, collector)
    agent.stop.set()
    agent.join(5)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    check(len(agent.commands) == 1 and not agent.problems,
          f"capture_memory true sends the command ({len(agent.commands)}, {agent.problems})")
    check(out.get("memory") == {"error": "ForensicCollector.KernelLockdown",
                                "cause": "test: lockdown=confidentiality forbids reading memory"},
          f"the result's memory is the collector's error ({out.get('memory')})")
    expect_memory_record(flow, check, desc, "failed", "ForensicCollector.KernelLockdown")
    check(flow.notices_received() == [], "no failure notice (memory is best-effort; every volume captured)")
    return check.failed


def scenario_memory_silent(flow):
    """The command reaches the suspect but nothing answers (a binary refused by its hash, or one
    that died): after MemoryTimeoutSeconds + MemoryAnswerSeconds the step fails, the disks are
    captured."""
    check = Checks("memory-silent")
    suspect = make_suspect(flow, managed=True)
    agent = FakeAgent(flow, suspect["instance_id"], silent=True)
    agent.start()
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    started = time.monotonic()
    desc = run_execution(flow, flow.machine("forensic-flow-memory-fast", MemoryCaptureDefault="true",
                                            MemoryTimeoutSeconds="3", MemoryAnswerSeconds="2"), {
        "incident_id": "INC-M3", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    agent.stop.set()
    agent.join(5)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    mem = out.get("memory") or {}
    params = {k: v[0] for k, v in agent.commands[0]["Parameters"].items()} if agent.commands else {}
    check(mem.get("error") == "States.Timeout" and params.get("executionTimeout") == "3",
          f"memory fails by the step's timeout, the document's executionTimeout "
          f"MemoryTimeoutSeconds ({mem}, {params.get('executionTimeout')}, "
          f"{time.monotonic() - started:.0f} s)")
    return check.failed


def scenario_memory_unmanaged(flow):
    """Memory on, but the suspect has no registered SSM agent: SendCommand is refused at once
    (InvalidInstanceId), memory records it, the disks are captured without waiting."""
    check = Checks("memory-unmanaged")
    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, memory_machine(flow), {
        "incident_id": "INC-M4", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"]},
        collector)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    mem = out.get("memory") or {}
    check(set(mem) == {"error", "cause"} and "InvalidInstanceId" in (mem.get("error", "") + mem.get("cause", "")),
          f"memory names the refusal ({mem})")
    check(memory_commands(flow, suspect["instance_id"]) == [], "no command recorded")
    expect_memory_record(flow, check, desc, "failed", mem.get("error"))
    return check.failed


def scenario_memory_cross_account(flow):
    """The suspect in a member account: the memory command is sent with the member role (moto
    records it; every call runs in its one account) and answered; the disks follow."""
    check = Checks("memory-cross-account")
    member_role = f"arn:aws:iam::{MEMBER_ACCOUNT}:role/forensic-collector-member"
    suspect = make_suspect(flow, managed=True)
    agent = FakeAgent(flow, suspect["instance_id"])
    agent.start()
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, memory_machine(flow), {
        "incident_id": "INC-M7", "account": MEMBER_ACCOUNT, "region": REGION,
        "instance_id": suspect["instance_id"]}, collector)
    agent.stop.set()
    agent.join(5)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    sends = [c for r, _, c in scheduled(desc) if r == "sendCommand.waitForTaskToken"]
    check(sends == [{"roleArn": member_role}] and not agent.problems,
          f"SendCommand with the member role ({sends}, {agent.problems})")
    check((out.get("memory") or {}).get("outcome") == "completed", f"memory captured ({out.get('memory')})")
    return check.failed


def scenario_memory_off(flow):
    """capture_memory false (memory on by default), and a volume_ids request: no command, memory
    null."""
    check = Checks("memory-off")
    suspect = make_suspect(flow, managed=True)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, memory_machine(flow), {
        "incident_id": "INC-M5", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "capture_memory": False}, collector)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    check("memory" in out and out["memory"] is None, f"memory null ({out.get('memory', 'absent')})")
    check(memory_commands(flow, suspect["instance_id"]) == [], "no SendCommand")
    check(not [r for r in flow.audit_records(desc["executionArn"]) if r.get("evidence") == "memory"],
          "no memory audit record")
    suspect = make_suspect(flow, managed=True)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, memory_machine(flow), {
        "incident_id": "INC-M6", "account": ACCOUNT, "region": REGION,
        "volume_ids": sorted(suspect["volumes"])}, collector)
    out, _ = expect_captured(flow, check, desc, suspect, collector)
    check(out.get("memory", "absent") is None and memory_commands(flow, suspect["instance_id"]) == [],
          f"a volume_ids request has no host to capture: no command, memory null ({out.get('memory', 'absent')})")
    return check.failed


def scenario_custody(flow):
    """A stack with a custody signing key (an ECC_NIST_P256 SIGN_VERIFY key in moto's KMS): the
    snapshot path's collectors and the volume path's dedicated collectors get custody.kms_key_id
    in their user data, beside the rest of the contract, and the memory step passes the key as
    the document's signKmsKeyId."""
    check = Checks("custody")
    key = flow.c["kms"].create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY",
                                   Description="custody statements")["KeyMetadata"]["Arn"]
    machine = flow.machine("forensic-flow-custody", CustodyKmsKeyId=key,
                           MemoryCaptureDefault="true")
    suspect = make_suspect(flow, managed=True)
    agent = FakeAgent(flow, suspect["instance_id"])
    agent.start()
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, machine, {
        "incident_id": "INC-C1", "account": ACCOUNT, "region": REGION,
        "instance_id": suspect["instance_id"]}, collector)
    agent.stop.set()
    agent.join(5)
    expect_captured(flow, check, desc, suspect, collector)
    signing = [{k: v[0] for k, v in c["Parameters"].items()}.get("signKmsKeyId")
               for c in agent.commands]
    pattern = yaml_parameters()["signKmsKeyId"]["allowedPattern"]
    check(signing == [key] and re.search(pattern, key),
          f"the memory document gets signKmsKeyId = the stack's key, which its pattern admits ({signing})")
    ids = list(flow.instances_of(desc["executionArn"]))
    data = [collector_user_data(flow.c, i) for i in ids]
    check(ids and all(d.get("custody") == {"kms_key_id": key} and d["job"]["queue_url"] == flow.queue
                      and d["s3"] == {"require_object_lock": True} for d in data),
          f"the collectors sign with the stack's key, the rest of their user data as without ({data})")

    suspect = make_suspect(flow)
    collector = FakeCollector(flow, "s3://forensic-evidence-flow/evidence", expect_blocks=suspect["volumes"])
    desc = run_execution(flow, machine, {
        "incident_id": "INC-C2", "account": ACCOUNT, "region": REGION, "instance_id": suspect["instance_id"],
        "capture_path": "volume", "capture_memory": False}, collector)
    expect_captured(flow, check, desc, suspect, collector)
    check_volume_queue(flow, check, desc, collector)
    data = [collector_user_data(flow.c, i) for i in flow.instances_of(desc["executionArn"])]
    check(len(data) == 2 and all(d.get("custody") == {"kms_key_id": key} for d in data),
          f"the dedicated collectors sign with the stack's key ({[d.get('custody') for d in data]})")
    return check.failed


SCENARIOS = {
    "manual": scenario_manual, "finding": scenario_finding, "malformed": scenario_malformed,
    "not-found": scenario_not_found, "no-volumes": scenario_no_volumes, "never-completes": scenario_never_completes,
    "job-fails": scenario_job_fails, "all-fail": scenario_all_fail, "heartbeat": scenario_heartbeat,
    "volume-ids": scenario_volume_ids, "snapshot-ids": scenario_snapshot_ids,
    "in-flight": scenario_in_flight, "cross-account": scenario_cross_account, "volume-path": scenario_volume_path,
    "volume-path-fails": scenario_volume_path_fails,
    "memory-captured": scenario_memory_captured, "memory-failed": scenario_memory_failed,
    "memory-silent": scenario_memory_silent, "memory-unmanaged": scenario_memory_unmanaged,
    "memory-off": scenario_memory_off, "memory-cross-account": scenario_memory_cross_account,
    "custody": scenario_custody,
}


def run_in_processes(names, jobs, seconds=900):
    """Runs the scenarios in `jobs` processes of this script, each with its own moto: no scenario
    sees another's queues or instances. A scenario mostly waits on moto's interpreter, so the
    processes overlap those waits. Each process's lines are printed whole when it ends."""
    groups = [names[i::jobs] for i in range(jobs) if names[i::jobs]]
    procs = [subprocess.Popen([sys.executable, __file__, "run", *group], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for group in groups]
    failed = 0
    deadline = time.monotonic() + seconds
    for group, proc in zip(groups, procs):
        try:
            out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            out, _ = proc.communicate()
            out += f"\nmoto_flow: {' '.join(group)} did not end within {seconds} s\n"
        sys.stdout.write(out)
        failed += proc.returncode != 0
    print(f"moto_flow: {failed} of {len(groups)} processes failed" if failed
          else f"moto_flow: all checks passed in {len(groups)} processes")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("scenarios", nargs="*")
    r.add_argument("--log", help="motoserver.py's request log")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="split the scenarios over N processes, each with its own moto (they mostly wait)")
    s = sub.add_parser("setup")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sub", action="append", default=[], metavar="NAME=VALUE",
                   help="a substitution of the state machine `forensic-flow` to change (e.g. QueueIdleSeconds=5)")
    sub.add_parser("list")
    args = p.parse_args()
    if args.cmd == "list":
        for name, fn in SCENARIOS.items():
            print(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0] if fn.__doc__ else ''}")
        return 0
    if args.cmd == "setup":
        enable_execution(args.port)
        flow = Flow(args.port)
        overrides = dict(item.split("=", 1) for item in args.sub)
        unknown = set(overrides) - set(PLACEHOLDER.findall(DEFINITION.read_text()))
        if unknown:
            p.error(f"--sub names no placeholder of the definition: {sorted(unknown)}")
        subs = flow.setup(overrides=overrides)
        suspect = make_suspect(flow)
        print(json.dumps({"port": args.port, "state_machine_arn": flow.machines["forensic-flow"],
                          "queue_url": flow.queue, "dead_letter_queue_url": flow.dlq,
                          "volume_queue_url": flow.volume_queue,
                          "failure_notices_queue_url": flow.notices, "substitutions": subs,
                          "suspect": {"instance_id": suspect["instance_id"], "volume_size_gib": 1,
                                      "volumes": {v: {"image_sha256": image_sha256(blocks),
                                                      "blocks": {str(i): hashlib.sha256(b).hexdigest()
                                                                 for i, b in blocks.items()}}
                                                  for v, blocks in suspect["volumes"].items()}}}, indent=2))
        return 0
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown} (see `list`)")
    if args.jobs < 1 or (args.jobs > 1 and args.log):
        p.error("--jobs takes N >= 1, and one process to write a --log")
    if args.jobs > 1:
        return run_in_processes(args.scenarios or list(SCENARIOS), args.jobs)
    proc, port = start_moto(args.log)
    try:
        enable_execution(port)
        flow = Flow(port)
        flow.setup()
        failed = 0
        for name in args.scenarios or list(SCENARIOS):
            failed += SCENARIOS[name](flow)
        print(f"moto_flow: {failed} failed checks" if failed else "moto_flow: all checks passed")
        return 1 if failed else 0
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.exit(main())
