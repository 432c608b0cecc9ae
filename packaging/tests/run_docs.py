#!/usr/bin/env python3
"""Runs the scripts of the AWS documents here, with a freshly built binary (root, loop devices):

  run_docs.py BIN_DIR

- the AWSTOE component's test phase (image-builder/component.yaml): image a loop device to a local
  directory and verify it, as on an instance launched from the new AMI;
- the SSM Command document (packaging/ssm/), as Run Command would: its parameters substituted as
  text, the script run by bash, against moto on 127.0.0.1 (tests/helpers/motoserver.py), once with
  a loop device as its source and once with an EBS snapshot written through moto's EBS direct APIs
  (1 GiB volume, three blocks, the rest holes). Only the binary's path and one flag differ:
  /usr/bin/forensic-collector becomes a wrapper around BIN_DIR's binary adding
  --s3-force-path-style, which the local server needs. The device run signs its custody statement
  with a moto KMS key (signKmsKeyId) and `verify` checks it; the snapshot run passes no key. The
  result line on stdout must say
  `completed`, the evidence must be in the bucket under the prefix, named after the device or the
  snapshot, and the snapshot's image hash must be the SHA-256 of the volume it restores to.

check_docs.py checks the documents' structure first; tests/run runs this after `cargo build`.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from botocore.config import Config
from check_docs import (
    COMPONENTS,
    CUSTODY_KEYS_BAKED,
    ROOT,
    SSM_DOCUMENTS,
    SSM_REFUSED,
    as_run_command,
    bake,
    is_memory_document,
    load,
    samples,
)

BINARY = "/usr/bin/forensic-collector"
# Seconds a single script may take (at most the 1 GiB snapshot volume; the bound keeps a hang from
# stalling CI).
SCRIPT_TIMEOUT = 300
# The snapshot's volume: 1 GiB, the smallest EBS volume, so the image is 1 GiB (mostly holes).
SNAPSHOT_GIB = 1
# Bytes per EBS snapshot block.
SNAPSHOT_BLOCK = 524288


class Failed(Exception):
    """What did not work, with the script's output."""


def run(script, env):
    done = subprocess.run(["bash", "-c", script], check=False, env=env, capture_output=True,
                          text=True, timeout=SCRIPT_TIMEOUT)
    if done.returncode != 0:
        raise Failed(f"exit {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def run_test_phase(component, bin_dir):
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    for phase in component["phases"]:
        if phase["name"] == "test":
            for step in phase["steps"]:
                for script in step["inputs"]["commands"]:
                    out = run(script, env)
                    print(f"run_docs: component test phase {step['name']}: "
                          f"{out.strip().splitlines()[-1]}")


def run_custody_bake(component, bin_dir):
    """The component's custody bake, then `config check` of the result by the binary: the key is
    custody.kms_key_id from the file, in the package's config.toml and in the preset alike."""
    key = CUSTODY_KEYS_BAKED[0]
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        preset = work / "preset.toml"
        for name, source, exec_start in [
                ("config.toml", ROOT / "packaging" / "config.example.toml", ""),
                ("preset.toml", ROOT / "packaging" / "presets" / "original-flow.toml",
                 f"{{ argv[]=/usr/bin/forensic-collector watch --config {preset} ; }}")]:
            config = work / name
            config.write_text(source.read_text())
            config.chmod(0o600)
            done = bake(component, "component", work, key, exec_start)
            if done.returncode != 0:
                raise Failed(f"baking {key} into {name}: {done.stdout}{done.stderr}")
            out = run(f"'{bin_dir}/forensic-collector' config check --allow-missing-job "
                      f"--config '{config}'", dict(os.environ, AWS_EC2_METADATA_DISABLED="true"))
            if not re.search(rf'^kms_key_id = "{re.escape(key)}" +# file ', out, re.MULTILINE):
                raise Failed(f"config check of the baked {name} does not show the key:\n{out}")
    print("run_docs: component bakes the custody key into config.toml and the preset; "
          "config check reads it")


class Moto:
    """motoserver.py on a free loopback port, stopped on exit."""

    def __enter__(self):
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "helpers" / "motoserver.py")],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.process.kill()
            raise Failed(f"motoserver.py did not start: {line!r}")
        self.endpoint = f"http://127.0.0.1:{line.split()[1]}"
        return self

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait(timeout=10)


def run_steps(doc, values, wrapper, env):
    """Every step of `doc` as Run Command runs it, with /usr/bin/forensic-collector replaced by
    `wrapper`; each must print a `completed` result line. Returns the last result."""
    result = None
    for step in doc["mainSteps"]:
        script = as_run_command(step, values)
        if BINARY not in script:
            raise Failed(f"step {step['name']} does not run {BINARY}")
        out = run(script.replace(BINARY, str(wrapper)), env)
        result = json.loads(out.strip().splitlines()[-1])
        if result.get("status") != "completed" or result.get("exit_code") != 0:
            raise Failed(f"step {step['name']}: result {result}")
    return result


def evidence_keys(s3, prefix, incident):
    listed = s3.list_objects_v2(Bucket="evidence-bucket", Prefix=f"{prefix}/{incident}/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def expect_evidence(s3, prefix, incident, name, signed=False):
    keys = evidence_keys(s3, prefix, incident)
    suffixes = [".image.dd", ".image.dd.sha256", ".capture.log", ".manifest.json"]
    if signed:
        suffixes += [".custody.json", ".custody.sig"]
    want = sorted(f"{prefix}/{incident}/disk_evidence/{name}{suffix}" for suffix in suffixes)
    if keys != want:
        raise Failed(f"objects in the bucket: {keys}, expected {want}")
    return keys


def write_snapshot(ebs, blocks):
    """A snapshot of a SNAPSHOT_GIB GiB volume holding `blocks` ({index: 512 KiB of data}),
    written through the EBS direct APIs as EBS takes them (each block with its base64 SHA-256);
    every other block is a hole. Returns its ID and the SHA-256 of the volume it restores to."""
    snapshot = ebs.start_snapshot(VolumeSize=SNAPSHOT_GIB, Description="run_docs.py")["SnapshotId"]
    for index, data in sorted(blocks.items()):
        ebs.put_snapshot_block(
            SnapshotId=snapshot, BlockIndex=index, BlockData=data, DataLength=len(data),
            Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ChecksumAlgorithm="SHA256")
    ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=len(blocks))
    volume = hashlib.sha256()
    hole = bytes(SNAPSHOT_BLOCK)
    for index in range((SNAPSHOT_GIB << 30) // SNAPSHOT_BLOCK):
        volume.update(blocks.get(index, hole))
    return snapshot, volume.hexdigest()


def pattern_agrees_with_acquire(doc, bin_dir, env, work):
    """The source pattern and acquire's own parsing agree on snapshot IDs: every
    `ebs-snapshot://` sample the pattern admits is taken for a snapshot (unknown to the server:
    exit 10), every `ebs-snapshot://` value it refuses is a usage error (exit 2), and neither
    writes anything. A document that admitted what the binary refuses would fail only on the
    instance, after the command was sent; one that refused IDs the binary takes would lock
    snapshots out."""
    pattern = doc["parameters"]["source"]["allowedPattern"]
    values = [v for v in samples("source") + SSM_REFUSED["source"]
              if v.startswith("ebs-snapshot://")]
    for value in values:
        admitted = re.search(pattern, value) is not None
        out = work / "agree"
        out.mkdir()
        done = subprocess.run([str(bin_dir / "forensic-collector"), "acquire", value, "--out",
                               str(out), "--incident", "INC-agree"], check=False, env=env,
                              capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
        want = 10 if admitted else 2
        if done.returncode != want or any(out.iterdir()):
            raise Failed(f"acquire {value} (the document's pattern "
                         f"{'admits' if admitted else 'refuses'} it): exit {done.returncode}, "
                         f"expected {want} with nothing written; {done.stderr[-1000:]}")
        out.rmdir()
    print(f"run_docs: the source pattern and acquire agree on {len(values)} snapshot sources")


def run_ssm_document(doc, bin_dir, work):
    """The document with each kind of source: a loop device, then an EBS snapshot."""
    image = work / "disk.raw"
    image.write_bytes(os.urandom(16 << 20))
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        with Moto() as moto:
            env = dict(os.environ, AWS_ENDPOINT_URL=moto.endpoint, AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                       AWS_EC2_METADATA_DISABLED="true")
            clients = {"endpoint_url": moto.endpoint, "region_name": "us-east-1",
                       "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **clients)
            s3.create_bucket(Bucket="evidence-bucket")
            wrapper = work / "forensic-collector"
            wrapper.write_text(f'#!/bin/sh\nexec "{bin_dir}/forensic-collector" "$@" '
                               "--s3-force-path-style\n")
            wrapper.chmod(0o755)
            # The custody signing key (issue 23): moto's KMS signs RAW with an ECC key.
            key = boto3.client("kms", **clients).create_key(
                KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
            values = {"source": loop, "bucket": "evidence-bucket", "prefix": "cases/ssm",
                      "incident": "INC-ssm-1", "executionTimeout": "600", "signKmsKeyId": key}
            result = run_steps(doc, values, wrapper, env)
            keys = expect_evidence(s3, "cases/ssm", "INC-ssm-1", Path(loop).name, signed=True)
            manifest = next(k for k in keys if k.endswith(".manifest.json"))
            checked = run(f"'{wrapper}' verify 's3://evidence-bucket/{manifest}'", env)
            if f"custody: OK signed by {key} (ECDSA_SHA_256)" not in checked:
                raise Failed(f"verify of the signed capture does not report its signature:\n"
                             f"{checked}")
            print(f"run_docs: SSM document imaged {loop} to s3://evidence-bucket/cases/ssm/ "
                  f"({len(keys)} objects, custody signed with {key}, verified; result "
                  f"{result['status']})")

            # The first, second and last blocks of the volume written, the rest holes.
            last = (SNAPSHOT_GIB << 30) // SNAPSHOT_BLOCK - 1
            blocks = {i: os.urandom(SNAPSHOT_BLOCK) for i in (0, 1, last)}
            snapshot, sha256 = write_snapshot(boto3.client("ebs", **clients), blocks)
            pattern_agrees_with_acquire(doc, bin_dir, env, work)
            # No key: nothing signed, no --sign-kms-key-id (the agent refuses an empty one).
            values = dict(values, source=f"ebs-snapshot://{snapshot}", incident="INC-ssm-2",
                          signKmsKeyId="")
            result = run_steps(doc, values, wrapper, env)
            keys = expect_evidence(s3, "cases/ssm", "INC-ssm-2", snapshot)
            if result.get("hashes", {}).get("sha256") != sha256:
                raise Failed(f"snapshot {snapshot}: result {result}, expected SHA-256 {sha256} "
                             "(the restored volume's)")
            print(f"run_docs: SSM document imaged ebs-snapshot://{snapshot} to "
                  f"s3://evidence-bucket/cases/ssm/ ({len(keys)} objects, SHA-256 of the "
                  f"{SNAPSHOT_GIB} GiB volume)")
    finally:
        subprocess.run(["blockdev", "--setrw", loop], check=False)
        subprocess.run(["losetup", "-d", loop], check=False)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = Path(argv[1]).resolve()
    try:
        for path in COMPONENTS:
            run_test_phase(load(path), bin_dir)
            run_custody_bake(load(path), bin_dir)
        # The memory document runs on a suspect host, not here: run_memory_doc.py runs it.
        for path in (p for p in SSM_DOCUMENTS if not is_memory_document(load(p))):
            with tempfile.TemporaryDirectory() as work:
                run_ssm_document(load(path), bin_dir, Path(work))
    except (Failed, subprocess.SubprocessError) as err:
        print(f"run_docs: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
