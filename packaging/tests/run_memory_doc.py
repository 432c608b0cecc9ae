#!/usr/bin/env python3
"""Runs the memory SSM document (packaging/ssm/forensic-collector-memory.yaml) as Run Command
would, with a stand-in for the collector, here (no AWS, no binary build):

  run_memory_doc.py

Each scenario renders the document's steps with parameters (check_docs.as_run_command: each
{{ name }} replaced as text) and runs them in order with /bin/sh, as the SSM agent runs a script
without a shebang. Two things differ from an instance, and only these:
- the download directory /run/forensic-collector-memory is a fresh directory under a temporary
  folder (the literal path is replaced in the rendered scripts), so runs do not meet;
- aws:downloadContent is not a shell step: it is emulated by copying each architecture's
  stand-in to the file name the step's S3 key ends with, in its destinationPath, which is what the
  agent's S3 download does (the key's last segment, into the destination directory).
`uname` is a stub on PATH printing the architecture of the scenario.

The stand-in is a shell script: it records its own path and arguments, prints one JSON result
line (as `--result-json` does) and exits with the scenario's code; one variant waits for SIGTERM
and exits 130 as the collector does. Asserted:
- success: exit 0, the last stdout line is the stand-in's result, the arguments are
  `acquire memory:// --dest s3://BUCKET/PREFIX --incident ID --result-json --task-token=TOKEN`
  (no --task-token when the parameter is empty; `s3://BUCKET` when the prefix is empty), the
  binary for `uname -m` ran (x86_64 and aarch64), and it ran from outside the download directory;
- the collector's exit code propagates (12, 30);
- a SHA-256 that is not the binary's: exit 41, the stand-in never ran;
- an architecture other than x86_64/aarch64: exit 42, nothing ran;
- the download missing: exit 40, nothing ran;
- SIGTERM to the script mid-capture: the stand-in gets SIGTERM, the script exits 130;
- after EVERY scenario: the download directory and the private run directory are gone, and no
  mount is left under the temporary folder (as root the script mounts a private tmpfs).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from check_docs import SSM_DOCUMENTS, as_run_command, is_memory_document, load

DOWNLOAD_DIR = "/run/forensic-collector-memory"
# Seconds one scenario's script may take (the stand-in answers at once; the SIGTERM one waits).
SCRIPT_TIMEOUT = 60
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAbDj+Hs6z1xM/2rV8O3aL4gR0bP5Q1w9cN7yKe2Ut/fA=="

STAND_IN = """#!/bin/sh
# Stand-in for forensic-collector-{arch}: records where it ran and with what, answers like
# --result-json, exits {code}.
printf '%s\\n' "$0" >> "$STAND_IN_LOG"
printf '%s\\n' "$@" > "$STAND_IN_ARGS"
if [ -n "$STAND_IN_WAIT" ]; then
  trap 'echo "{{\\"status\\": \\"interrupted\\", \\"exit_code\\": 130}}"; exit 130' TERM
  : > "$STAND_IN_WAIT"
  sleep 30 &
  wait $!
fi
echo '{{"status": "{status}", "exit_code": {code}, "arch": "{arch}", "manifest_url": "s3://evidence-bucket/cases/2026/INC-1/memory_evidence/i-0abc-memory.manifest.json"}}'
exit {code}
"""


class Failed(Exception):
    """A scenario's finding."""


def memory_document():
    docs = [p for p in SSM_DOCUMENTS if is_memory_document(load(p))]
    if len(docs) != 1:
        raise Failed(f"{len(docs)} memory documents in packaging/ssm, expected 1")
    return load(docs[0])


class Host:
    """A temporary stand-in for the suspect: its /run, a stub uname, the stand-in binaries."""

    def __init__(self, root, machine, code):
        self.root = root
        self.download_dir = root / "run" / "forensic-collector-memory"
        (root / "run").mkdir()
        bin_dir = root / "bin"
        bin_dir.mkdir()
        uname = bin_dir / "uname"
        uname.write_text(f"#!/bin/sh\necho {machine}\n")
        uname.chmod(0o755)
        self.binaries = {}
        for arch in ("x86_64", "aarch64"):
            text = STAND_IN.format(arch=arch, code=code,
                                   status="completed" if code == 0 else "failed")
            self.binaries[arch] = text.encode()
        self.log = root / "ran.log"
        self.args = root / "args"
        self.env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
                        STAND_IN_LOG=str(self.log), STAND_IN_ARGS=str(self.args),
                        STAND_IN_WAIT="")

    def sha256(self, arch):
        return hashlib.sha256(self.binaries[arch]).hexdigest()

    def download(self, step, skip=()):
        """aws:downloadContent, emulated: the object the sourceInfo names, into destinationPath
        under the key's last segment."""
        source = json.loads(step["inputs"]["sourceInfo"])["path"]
        name = source.rsplit("/", 1)[1]
        arch = name.rsplit("-", 1)[1]
        if arch in skip:
            return
        destination = Path(step["inputs"]["destinationPath"].replace(
            DOWNLOAD_DIR, str(self.download_dir)))
        (destination / name).write_bytes(self.binaries[arch])

    def ran(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def unmount(self):
        """Whatever a broken document left mounted here, so the folder can be removed."""
        for mount in self.leftovers():
            if Path(mount).is_mount():
                subprocess.run(["umount", mount], check=False)

    def leftovers(self):
        """What of the binary is left: the download and run directories, and mounts."""
        left = [str(p) for p in (self.root / "run").iterdir()]
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        return left + mounts


def run_document(doc, host, values, skip=(), terminate=False):
    """Every step in order, as the agent runs it; returns (exit code, stdout, stderr) of the
    capture step (the last), after the earlier ones succeeded."""
    for step in doc["mainSteps"]:
        if step["action"] == "aws:downloadContent":
            host.download(dict(step, inputs={
                k: as_run_command({"inputs": {"runCommand": [v]}}, values)
                for k, v in step["inputs"].items()}), skip)
            continue
        script = as_run_command(step, values).replace(DOWNLOAD_DIR, str(host.download_dir))
        if step is not doc["mainSteps"][-1]:
            done = subprocess.run(["sh", "-c", script], env=host.env, capture_output=True,
                                  text=True, timeout=SCRIPT_TIMEOUT, check=False)
            if done.returncode != 0:
                raise Failed(f"step {step['name']}: exit {done.returncode}: {done.stderr}")
            continue
        env = host.env
        if terminate:
            env = dict(env, STAND_IN_WAIT=str(host.root / "waiting"))
        process = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        if terminate:
            deadline = time.monotonic() + SCRIPT_TIMEOUT
            while not (host.root / "waiting").exists():
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise Failed("the stand-in never started waiting")
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=SCRIPT_TIMEOUT)
        return process.returncode, out, err
    raise Failed("no steps")


def values_for(host, **overrides):
    values = {"toolsBucket": "forensic-tools", "toolsPrefix": "forensic-collector/1.4.0",
              "sha256X8664": host.sha256("x86_64"), "sha256Aarch64": host.sha256("aarch64"),
              "bucket": "evidence-bucket", "prefix": "cases/2026", "incident": "INC-1",
              "taskToken": TOKEN, "executionTimeout": "600", "signKmsKeyId": ""}
    values.update(overrides)
    return values


def scenario(doc, name, machine="x86_64", code=0, expect=0, ran=True, skip=(), terminate=False,
             values=None, args=None):
    """One run on a fresh host; raises Failed with what differs."""
    with tempfile.TemporaryDirectory() as work:
        host = Host(Path(work), machine, code)
        try:
            return check_scenario(doc, host, name, machine, code, expect, ran, skip, terminate,
                                  values, args)
        finally:
            host.unmount()


def check_scenario(doc, host, name, machine, code, expect, ran, skip, terminate, values, args):
    """scenario() on `host`."""
    given = values_for(host, **(values(host) if values else {}))
    status, out, err = run_document(doc, host, given, skip, terminate)
    what = f"{name}: exit {status}, stdout {out!r}, stderr {err!r}"
    if status != expect:
        raise Failed(f"{what}; expected exit {expect}")
    runs = host.ran()
    if ran and len(runs) != 1:
        raise Failed(f"{what}; the stand-in ran {len(runs)} times, expected once")
    if not ran and runs:
        raise Failed(f"{what}; the stand-in ran ({runs}) though the document refused")
    if ran:
        if runs[0].startswith(str(host.download_dir) + "/"):
            raise Failed(f"{what}; ran from the download directory {runs[0]}")
        result = json.loads(out.strip().splitlines()[-1])
        arch = {"aarch64": "aarch64", "arm64": "aarch64"}.get(machine, "x86_64")
        if terminate:
            if result != {"status": "interrupted", "exit_code": 130}:
                raise Failed(f"{what}; the stand-in did not get SIGTERM")
        elif result.get("arch") != arch or result.get("exit_code") != code:
            raise Failed(f"{what}; result {result}, expected the {arch} binary's")
        if args is not None and host.args.read_text().splitlines() != args:
            raise Failed(f"{what}; arguments {host.args.read_text().splitlines()}, "
                         f"expected {args}")
    if ran and os.geteuid() == 0 and "no private tmpfs" in err:
        raise Failed(f"{what}; as root the binary must run from a private tmpfs")
    left = host.leftovers()
    if left:
        raise Failed(f"{what}; left behind: {left}")
    return err


def main():
    try:
        doc = memory_document()
        full = ["acquire", "memory://", "--dest", "s3://evidence-bucket/cases/2026", "--incident",
                "INC-1", "--result-json", f"--task-token={TOKEN}"]
        scenario(doc, "x86_64 success", args=full)
        scenario(doc, "aarch64 success", machine="aarch64", args=full)
        scenario(doc, "no prefix, no token", values=lambda h: {"prefix": "", "taskToken": ""},
                 args=["acquire", "memory://", "--dest", "s3://evidence-bucket", "--incident",
                       "INC-1", "--result-json"])
        key = "arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-2222-2222-222222222222"
        scenario(doc, "a custody signing key", values=lambda h: {"signKmsKeyId": key},
                 args=full + [f"--sign-kms-key-id={key}"])
        scenario(doc, "collector exit 12 propagates", code=12, expect=12)
        scenario(doc, "collector exit 30 propagates", code=30, expect=30)
        err = scenario(doc, "wrong SHA-256", expect=41, ran=False,
                       values=lambda h: {"sha256X8664": h.sha256("aarch64")})
        if "SHA-256" not in err:
            raise Failed(f"wrong SHA-256: the refusal does not say why: {err!r}")
        scenario(doc, "the other architecture's hash wrong does not matter",
                 values=lambda h: {"sha256Aarch64": "0" * 64})
        err = scenario(doc, "unknown architecture", machine="riscv64", expect=42, ran=False)
        if "riscv64" not in err:
            raise Failed(f"unknown architecture: the refusal does not name it: {err!r}")
        scenario(doc, "download missing", skip=("x86_64",), expect=40, ran=False)
        scenario(doc, "SIGTERM mid-capture", terminate=True, expect=130)
    except (Failed, subprocess.SubprocessError) as err:
        print(f"run_memory_doc: {err}", file=sys.stderr)
        return 1
    print("run_memory_doc: the memory document ran 11 scenarios with a stand-in collector: "
          "hash and architecture refusals before any run, exit codes propagated, the binary "
          "removed every time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
