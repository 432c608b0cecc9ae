#!/usr/bin/env python3
"""Structure checks of the documents AWS runs for us, which nothing offline validates:

- AWSTOE components (image-builder/*.yaml with `phases`): schemaVersion 1.0; phases among build,
  validate and test; every step has a unique name, a known action and its inputs; every declared
  parameter is used and every `{{ X }}` used is declared; no parameter inside a shell script
  (AWSTOE substitutes them as text and cannot restrict their values); every script passes
  `bash -n` and shellcheck. The unit drop-in a component writes to select a preset is the VM
  test's (tests/vm/guest, which proves it at boot) byte for byte, and its `--config` names a
  preset the package installs; nothing assigns FORENSIC_COLLECTOR_CONFIG (the agent refuses it).
- SSM Command documents (packaging/ssm/*): schemaVersion 2.2; every step has a unique name, a known
  action and its inputs; every parameter is declared with a type, a description and an
  allowedPattern, is used, and every `{{ x }}` used is declared; in scripts a parameter appears only
  as a whole single-quoted assignment (`name='{{ x }}'`); each allowedPattern accepts its samples
  and refuses shell syntax and the values SSM_REFUSED lists (options, malformed snapshot IDs);
  the script with the samples substituted passes `bash -n`, `sh -n` and shellcheck (as bash and
  as sh: the agent runs a script without a shebang with /bin/sh, dash on Debian and Ubuntu).
  aws:downloadContent steps take parameters only in sourceInfo, which with the samples is JSON
  naming an object by its path-style S3 URL, into an absolute destinationPath on /run.
- The memory document (the one that runs `memory://`, on a suspect host): every download lands in
  the directory its first step empties and its capture step removes; the capture step installs its
  cleanup trap before anything can fail, compares the binary's SHA-256 with the parameter before
  it makes the binary executable or runs it, picks the binary by `uname -m` and refuses any other
  architecture; parameters with an empty default (prefix, taskToken) accept "" and nothing else
  hostile.

run_docs.py runs the documents' scripts for real.
"""

import copy
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = sorted((ROOT / "image-builder").glob("component*.yaml"))
PIPELINE = ROOT / "image-builder" / "pipeline.yaml"
SSM_DOCUMENTS = sorted(p for p in (ROOT / "packaging" / "ssm").glob("*")
                       if p.suffix in (".yaml", ".yml", ".json"))

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_:.-]+)\s*\}\}")

# The unit drop-in that selects the original flow's preset: where a component stages it, and the
# VM test's copy, which the VM test boots with.
PRESET_DROPIN_STAGED = "/var/tmp/forensic-collector-preset.conf"
PRESET_DROPIN_VM = (ROOT / "tests" / "vm" / "guest" / "etc" / "systemd" / "system"
                    / "forensic-collector.service.d" / "preset.conf")
PRESETS_INSTALLED = "/usr/share/forensic-collector/presets/"
# An assignment of the variable the agent refuses (issue 19): the config file is chosen by
# --config only.
PATH_VARIABLE = re.compile(r"FORENSIC_COLLECTOR_CONFIG=")


def as_run_command(step, values):
    """An aws:runShellScript step's script as Run Command runs it: each {{ name }} replaced by
    values[name] as plain text, before any shell sees it (check_docs, run_docs and the VM test
    all render it here, so they check the same text)."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], "\n".join(step["inputs"]["runCommand"]))

# AWSTOE actions this project uses and the inputs each needs (the AWSTOE action reference).
TOE_ACTIONS = {
    "ExecuteBash": lambda i: isinstance(i, dict) and _strings(i.get("commands")),
    "S3Download": lambda i: isinstance(i, list) and bool(i) and all(
        isinstance(x, dict) and {"source", "destination"} <= x.keys() for x in i),
    "CreateFile": lambda i: isinstance(i, list) and bool(i) and all(
        isinstance(x, dict) and "path" in x for x in i),
}
TOE_PHASES = ["build", "validate", "test"]
# SSM plugins this project uses and the inputs each needs.
SSM_ACTIONS = {
    "aws:runShellScript": lambda i: isinstance(i, dict) and _strings(i.get("runCommand")),
    "aws:downloadContent": lambda i: isinstance(i, dict) and i.get("sourceType") == "S3"
    and isinstance(i.get("sourceInfo"), str) and isinstance(i.get("destinationPath"), str),
}
# Where aws:downloadContent may put a file: tmpfs only (never the suspect's disks).
DOWNLOAD_ROOT = "/run/"
# A path-style S3 URL as the agent's aws:downloadContent takes it in sourceInfo.
S3_SOURCE = re.compile(r"https://s3\.amazonaws\.com/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/"
                       r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
# The memory document's own exit codes when it refuses the binary (none is the collector's).
MEMORY_REFUSALS = {"missing": 40, "hash": 41, "arch": 42, "private_dir": 43}
# Values for every SSM parameter, to check the patterns (each must be accepted, and is mixed with
# HOSTILE text) and to render the script (the first).
SSM_SAMPLES = {
    "source": ["/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1A2B3C4D",
               # The kernel's disk and partition names, and udev's other link folders.
               "/dev/nvme1n1", "/dev/nvme0n1p1", "/dev/xvdf", "/dev/xvdba1", "/dev/sdb",
               "/dev/sdb1", "/dev/loop0", "/dev/disk/by-path/pci-0000:00:1f.0-nvme-1",
               "/dev/disk/by-label/EVIDENCE", "/dev/disk/by-uuid/0a1b2c3d-4e5f",
               # Snapshot IDs: 17 hex digits now, 8 for older snapshots.
               "ebs-snapshot://snap-0123456789abcdef0", "ebs-snapshot://snap-0a1b2c3d"],
    "bucket": "evidence-bucket",
    "prefix": "cases/2026",
    "incident": "INC-2026-0042",
    "executionTimeout": "7200",
    "toolsBucket": "forensic-tools",
    "toolsPrefix": "forensic-collector/1.4.0",
    "sha256X8664": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "sha256Aarch64": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
    # The shape of a Step Functions task token (base64, long), then a short one.
    "taskToken": ["AQCEAAAAKgAAAAMAAAAAAAAAAbDj+Hs6z1xM/2rV8O3aL4gR0bP5Q1w9cN7yKe2Ut/fA==", "A1"],
    # The forms KMS takes for a key: alias, key ID (UUID, multi-Region mrk-), key and alias ARNs.
    "signKmsKeyId": ["alias/forensic-custody", "22222222-2222-2222-2222-222222222222",
                     "mrk-0123456789abcdef0123456789abcdef",
                     "arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-2222-2222-222222222222",
                     "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/forensic-custody"],
}
# Values a parameter's pattern must refuse besides HOSTILE: what acquire would take for an option,
# a snapshot ID of another length or case (acquire refuses it too, but only after the command
# started), another resource's ID, a bare ID (a relative path to acquire), paths outside /dev, and
# what under /dev is no disk: files (/dev/shm), the shell's descriptors and streams, character
# devices, and a by-* link with a folder in it.
SSM_REFUSED = {
    "source": ["--help", "--out=/tmp/x", "-v", "--dest=s3://other-bucket",
               "ebs-snapshot://", "ebs-snapshot://snap-", "ebs-snapshot://snap-0123abc",
               "ebs-snapshot://snap-0123456789abcdef", "ebs-snapshot://snap-0123456789abcdef01",
               "ebs-snapshot://snap-0123456789ABCDEF0", "ebs-snapshot://snap-0123456789abcdefg",
               "ebs-snapshot://snap-0123456789abcdef0/", "ebs-snapshot://vol-0123456789abcdef0",
               "EBS-SNAPSHOT://snap-0123456789abcdef0", "ebs-snapshot:/snap-0123456789abcdef0",
               "snap-0123456789abcdef0", "/etc/shadow", "file:///dev/sda", "/dev/",
               "/dev/shm/x", "/dev/fd/3", "/dev/stdin", "/dev/stdout", "/dev/null", "/dev/zero",
               "/dev/mem", "/dev/random", "/dev/tty", "/dev/disk/by-id/a/b", "/dev/disk/by-id/",
               "/dev/disk/x", "/dev/disk/by-id/..", "/dev/sda/x", "/dev/nvme0", "/dev/sd",
               "/dev/loop-control", "/dev/nvme1n1/../../shm/x"],
    "sha256X8664": ["9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0",
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a088",
                    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    "taskToken": ["-x", "--help", "--task-token=x", "+AQ", "/AQ", "=", "A" * 2049],
    "toolsPrefix": ["..", "a/../b", "a/./b", "/a", "a/", "a//b", ".hidden"],
    "prefix": ["..", "a/../b", "/a", "a/", "a//b"],
    "signKmsKeyId": ["--sign-kms-key-id=x", "alias/", "alias", "key/x", "alias/a.b",
                     "arn:aws:kms:eu-west-1:123456789012:key/*",
                     "arn:aws:kms:eu-west-1:123456789012:key/",
                     "arn:aws:kms:eu-west-1:1234:key/22222222-2222-2222-2222-222222222222",
                     "arn:aws:s3:::evidence-bucket", "mrk-0123", "2222"],
}
# The custody signing key (issue 23): every document that runs the collector takes it, empty by
# default, and passes it as one option only when it is not empty (the agent refuses an empty
# key; an option with an empty value is no "unsigned").
SIGN_PARAMETER = "signKmsKeyId"
SIGN_LINE = ('if [ -n "$sign_kms_key_id" ]; then set -- "$@" '
             '"--sign-kms-key-id=$sign_kms_key_id"; fi')
SSM_REFUSED["sha256Aarch64"] = SSM_REFUSED["sha256X8664"]
# Refused by every parameter's pattern, whatever its sample: a climb out of a folder, command
# substitution, quotes and a placeholder on their own.
REFUSED_BY_ALL = ["..", "$(id)", "'", '"', "{{ x }}"]
# Refused by every parameter that is a whole argument of the collector (a value that begins with
# '-' could be taken for an option). Not by the prefixes: they only ever follow "s3://BUCKET/".
OPTION_LIKE = ["-x", "--help"]
NEVER_AN_ARGUMENT = {"prefix", "toolsPrefix"}


def samples(name):
    """The sample values of parameter `name`, as a list."""
    value = SSM_SAMPLES[name]
    return value if isinstance(value, list) else [value]


def first_samples():
    """One value per parameter: what the script is rendered with."""
    return {name: samples(name)[0] for name in SSM_SAMPLES}


# Text no parameter may contain: each would end the quoting or run something. The checks try each
# alone, before, inside and after the parameter's sample. (A newline only at the very end is not
# tried: `$` matches before it, and inside single quotes it is harmless.)
HOSTILE = ["'", "$(id)", "`id`", ";", " ", "|", "&", "\\", '"', "\n", "'; reboot; '",
           # a path that climbs out of /dev (acquire images regular files too)
           "/../etc/shadow", "/./"]


class Failed(Exception):
    """A finding, naming the document and the place."""


def _strings(value):
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def strings_in(node):
    """Every string inside `node`."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)


def lint_script(script, where, posix=False):
    """`bash -n` and shellcheck on one script (and as sh, when `posix`: SSM runs a script without
    a shebang with /bin/sh); raises Failed with their output."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
        f.write("#!/bin/bash\n" + script + "\n")
        f.flush()
        cmds = [["bash", "-n", f.name], ["shellcheck", "--shell=bash", f.name]]
        if posix:
            cmds += [["sh", "-n", f.name], ["shellcheck", "--shell=sh", f.name]]
        for cmd in cmds:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if done.returncode != 0:
                raise Failed(f"{where}: {cmd[0]} fails:\n{done.stdout}{done.stderr}")


def unique_names(steps, where):
    names = [s.get("name") for s in steps]
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name):
            raise Failed(f"{where}: bad or missing step name {name!r}")
    if len(set(names)) != len(names):
        raise Failed(f"{where}: step names repeat: {names}")


def same_parameters(declared, used, where):
    if set(declared) - used:
        raise Failed(f"{where}: parameters declared but never used: {sorted(set(declared) - used)}")
    if used - set(declared):
        raise Failed(f"{where}: {{{{ }}}} names no parameter declares: {sorted(used - set(declared))}")


def check_component(doc, where):
    """Raises Failed on the first problem of the AWSTOE component `doc`."""
    if str(doc.get("schemaVersion")) != "1.0":
        raise Failed(f"{where}: schemaVersion must be 1.0, is {doc.get('schemaVersion')!r}")
    for key in ("name", "phases"):
        if not doc.get(key):
            raise Failed(f"{where}: no {key}")
    declared = {}
    for entry in doc.get("parameters") or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise Failed(f"{where}: a parameter is one NAME: {{type, description}} map")
        (name, spec), = entry.items()
        if spec.get("type") != "string" or not spec.get("description"):
            raise Failed(f"{where}: parameter {name} needs type string and a description")
        declared[name] = spec
    phases = [p.get("name") for p in doc["phases"]]
    if len(set(phases)) != len(phases) or not set(phases) <= set(TOE_PHASES):
        raise Failed(f"{where}: phases must be distinct among {TOE_PHASES}, are {phases}")
    used = set()
    for phase in doc["phases"]:
        steps = phase.get("steps") or []
        if not steps:
            raise Failed(f"{where}: phase {phase['name']} has no steps")
        unique_names(steps, f"{where}: phase {phase['name']}")
        for step in steps:
            at = f"{where}: {phase['name']}/{step['name']}"
            action = step.get("action")
            if action not in TOE_ACTIONS:
                raise Failed(f"{at}: unknown action {action!r} (known: {sorted(TOE_ACTIONS)})")
            if not TOE_ACTIONS[action](step.get("inputs")):
                raise Failed(f"{at}: {action} inputs missing or malformed")
            names = {m.group(1) for s in strings_in(step["inputs"]) for m in
                     PLACEHOLDER.finditer(s)}
            if action == "ExecuteBash":
                if names:
                    raise Failed(f"{at}: {sorted(names)} substituted into a shell script; "
                                 "pass it through a non-shell action or a file instead")
                for i, script in enumerate(step["inputs"]["commands"]):
                    lint_script(script, f"{at} command {i}")
            used |= names
    same_parameters(declared, used, str(where))
    check_preset_dropin(doc, where)
    check_custody_bake(doc, where)


# The custody signing key the component bakes (issue 23): its parameter, the file CreateFile
# writes it to, and the configuration files a collector reads.
CUSTODY_PARAMETER = "CustodyKmsKeyId"
CUSTODY_STAGED = "/var/tmp/forensic-collector-custody-key"
CONFIG_INSTALLED = "/etc/forensic-collector/config.toml"
CUSTODY_KEYS_BAKED = ["arn:aws:kms:eu-west-1:123456789012:key/22222222-2222-2222-2222-222222222222",
                      "alias/forensic-custody", "mrk-0123456789abcdef0123456789abcdef"]
CUSTODY_KEYS_REFUSED = ['alias/x"', "alias/x\nkms_key_id = \"y\"", "$(id)", "alias/a b",
                        'x" ; touch /tmp/p ; "', "", "-v", "alias/../x", "arn:aws:kms:*"]


def bake_script(doc, where):
    """The one build script of the component that reads the staged custody key."""
    scripts = [c for phase in doc["phases"] if phase["name"] == "build"
               for s in phase["steps"] if s["action"] == "ExecuteBash"
               for c in s["inputs"]["commands"] if CUSTODY_STAGED in c]
    if len(scripts) != 1:
        raise Failed(f"{where}: {len(scripts)} scripts read {CUSTODY_STAGED}, not one")
    return scripts[0]


def bake(doc, where, work, value, exec_start):
    """Runs the component's custody bake script in `work`: the staged value in work/key, the
    package's config file work/config.toml, a stand-in systemctl whose ExecStart is
    `exec_start` (empty: no --config, the package's file). Returns the finished process."""
    (work / "bin").mkdir(exist_ok=True)
    stub = work / "bin" / "systemctl"
    stub.write_text('#!/bin/sh\necho "$EXEC_START"\n')
    stub.chmod(0o755)
    script = bake_script(doc, where).replace(CUSTODY_STAGED, str(work / "key")).replace(
        CONFIG_INSTALLED, str(work / "config.toml"))
    (work / "key").write_text(value)
    env = {"PATH": f"{work / 'bin'}:/usr/bin:/bin", "EXEC_START": exec_start}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          check=False, timeout=30)


def check_custody_bake(doc, where):
    """The component bakes CustodyKmsKeyId (default none) as [custody] kms_key_id into the file
    the unit reads: run with a stand-in systemctl on copies of the package's config.toml (which
    has a commented [custody] section) and of the original-flow preset (which has none), the
    key ends up as custody.kms_key_id (TOML) and nothing else changes; `none` changes nothing;
    a value that is no KMS key ID, alias or ARN is refused (exit 1) and changes nothing; the
    staged value is removed every time."""
    spec = next((e[CUSTODY_PARAMETER] for e in doc.get("parameters") or []
                 if CUSTODY_PARAMETER in e), None)
    if not spec or spec.get("default") != "none":
        raise Failed(f"{where}: no {CUSTODY_PARAMETER} parameter with default none")
    steps = [s for phase in doc["phases"] if phase["name"] == "build" for s in phase["steps"]]
    staged = [f for s in steps if s["action"] == "CreateFile" for f in s["inputs"]
              if f.get("path") == CUSTODY_STAGED]
    if len(staged) != 1 or staged[0].get("content") != f"{{{{ {CUSTODY_PARAMETER} }}}}":
        raise Failed(f"{where}: {CUSTODY_PARAMETER} must be written by one CreateFile to "
                     f"{CUSTODY_STAGED}")
    bake_script(doc, where)
    import tomllib
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        preset = work / "preset.toml"
        cases = [(key, "config.toml", "") for key in CUSTODY_KEYS_BAKED] + [
            (CUSTODY_KEYS_BAKED[1], "preset.toml",
             (f"{{ path=/usr/bin/forensic-collector ; argv[]=/usr/bin/forensic-collector "
              f"watch --config {preset} ; ignore_errors=no }}")),
            ("none", "config.toml", "")] + [(bad, "config.toml", "") for bad in
                                             CUSTODY_KEYS_REFUSED]
        for value, name, exec_start in cases:
            (work / "config.toml").write_text(
                (ROOT / "packaging" / "config.example.toml").read_text())
            preset.write_text((ROOT / "packaging" / "presets" / "original-flow.toml").read_text())
            before = tomllib.loads((work / name).read_text())
            done = bake(doc, where, work, value, exec_start)
            at = f"{where}: baking {value!r} into {name}"
            if (work / "key").exists():
                raise Failed(f"{at}: the staged value was left in place")
            after = tomllib.loads((work / name).read_text())
            good = value in CUSTODY_KEYS_BAKED
            if done.returncode != (0 if good or value == "none" else 1):
                raise Failed(f"{at}: exit {done.returncode}: {done.stdout}{done.stderr}")
            if good:
                before["custody"] = dict(before.get("custody", {}), kms_key_id=value)
            if after != before:
                raise Failed(f"{at}: the configuration became {after}, expected {before}")


def check_pipeline_parameters(component):
    """image-builder/pipeline.yaml's recipe gives the component every parameter it declares (a
    parameter left out takes its default silently: CustodyKmsKeyId would bake no key) and no
    other."""
    import check_flow_stack
    pipeline = check_flow_stack.load(PIPELINE)
    given = [p["Name"] for c in pipeline["Resources"]["Recipe"]["Properties"]["Components"]
             for p in c.get("Parameters", [])]
    declared = [name for entry in component.get("parameters") or [] for name in entry]
    if sorted(given) != sorted(declared):
        raise Failed(f"{PIPELINE.relative_to(ROOT)}: the recipe passes {sorted(given)}, the "
                     f"component declares {sorted(declared)}")


def check_preset_dropin(doc, where):
    """The staged drop-in is the VM test's, and selects an installed preset; no text of the
    component assigns FORENSIC_COLLECTOR_CONFIG."""
    for text in strings_in(doc):
        if PATH_VARIABLE.search(text):
            raise Failed(f"{where}: assigns FORENSIC_COLLECTOR_CONFIG, which the agent refuses; "
                         "select a config file with --config in a unit drop-in")
    staged = [f for phase in doc["phases"] for step in phase.get("steps") or []
              if step.get("action") == "CreateFile" for f in step["inputs"]
              if f.get("path") == PRESET_DROPIN_STAGED]
    if len(staged) != 1:
        raise Failed(f"{where}: {len(staged)} CreateFile of {PRESET_DROPIN_STAGED}, not one")
    content = staged[0].get("content")
    if content != PRESET_DROPIN_VM.read_text():
        raise Failed(f"{where}: {PRESET_DROPIN_STAGED} differs from "
                     f"{PRESET_DROPIN_VM.relative_to(ROOT)}, the drop-in the VM test boots with")
    if "\nExecStart=\nExecStart=" not in content:
        raise Failed(f"{where}: the drop-in must reset ExecStart= before its own (a simple "
                     "service takes one)")
    configs = re.findall(r"^ExecStart=\S+ watch --config (\S+)$", content, re.MULTILINE)
    if len(configs) != 1 or not configs[0].startswith(PRESETS_INSTALLED) or not (
            ROOT / "packaging" / "presets" / configs[0][len(PRESETS_INSTALLED):]).is_file():
        raise Failed(f"{where}: the drop-in's ExecStart must be `watch --config` with a preset "
                     f"the package installs under {PRESETS_INSTALLED}, is {configs}")


def check_ssm(doc, where):
    """Raises Failed on the first problem of the SSM Command document `doc`."""
    if doc.get("schemaVersion") != "2.2":
        raise Failed(f"{where}: schemaVersion must be the string \"2.2\", is "
                     f"{doc.get('schemaVersion')!r}")
    if not doc.get("description"):
        raise Failed(f"{where}: no description")
    declared = doc.get("parameters") or {}
    for name, spec in declared.items():
        at = f"{where}: parameter {name}"
        if spec.get("type") != "String" or not spec.get("description"):
            raise Failed(f"{at}: needs type String and a description")
        pattern = spec.get("allowedPattern")
        if not pattern:
            raise Failed(f"{at}: no allowedPattern (SSM substitutes it into the script as text)")
        if name not in SSM_SAMPLES:
            raise Failed(f"{at}: no sample value in SSM_SAMPLES")
        for value in samples(name) + ([spec["default"]] if "default" in spec else []):
            if not re.search(pattern, value):
                raise Failed(f"{at}: allowedPattern refuses {value!r}")
        # Empty only where it is the default (an optional parameter).
        hostile = ([] if spec.get("default") == "" else [""]) + REFUSED_BY_ALL + \
            ([] if name in NEVER_AN_ARGUMENT else OPTION_LIKE) + SSM_REFUSED.get(name, [])
        for sample in samples(name):
            half = len(sample) // 2
            hostile += [v for h in HOSTILE for v in (
                h, h + sample, sample[:half] + h + sample[half:], sample + h)
                if v != sample + "\n" and not (v == "\n" and spec.get("default") == "")]
        for value in hostile:
            if re.search(pattern, value):
                raise Failed(f"{at}: allowedPattern accepts {value!r}")
    steps = doc.get("mainSteps") or []
    if not steps:
        raise Failed(f"{where}: no mainSteps")
    unique_names(steps, str(where))
    used = set()
    for step in steps:
        at = f"{where}: step {step['name']}"
        action = step.get("action")
        if action not in SSM_ACTIONS:
            raise Failed(f"{at}: unknown action {action!r} (known: {sorted(SSM_ACTIONS)})")
        inputs = step.get("inputs")
        if not SSM_ACTIONS[action](inputs):
            raise Failed(f"{at}: {action} inputs missing or malformed")
        names = {m.group(1) for s in strings_in(inputs) for m in PLACEHOLDER.finditer(s)}
        if names - set(declared):
            raise Failed(f"{at}: {{{{ }}}} names no parameter declares: "
                         f"{sorted(names - set(declared))}")
        used |= names
        if action == "aws:downloadContent":
            check_download(step, at)
            continue
        script = inputs["runCommand"]
        for line in script:
            for m in PLACEHOLDER.finditer(line):
                if not re.fullmatch(r"[a-z_][a-z0-9_]*='\{\{ [A-Za-z0-9_]+ \}\}'", line):
                    raise Failed(f"{at}: {{{{ {m.group(1)} }}}} must only appear as a whole "
                                 f"single-quoted assignment, not in {line!r}")
        lint_script(as_run_command(step, first_samples()), at, posix=True)
    same_parameters(declared, used, str(where))
    check_signing(doc, where)
    if is_memory_document(doc):
        check_memory(doc, where)


def check_signing(doc, where):
    """The document takes signKmsKeyId (empty by default) and its script passes
    --sign-kms-key-id only when the value is not empty, after the assignment, before the run."""
    spec = (doc.get("parameters") or {}).get(SIGN_PARAMETER)
    if spec is None or spec.get("default") != "":
        raise Failed(f"{where}: no {SIGN_PARAMETER} parameter with default \"\" (the custody "
                     "signing key, passed through to --sign-kms-key-id)")
    script = [line for step in doc["mainSteps"] if step["action"] == "aws:runShellScript"
              for line in step["inputs"]["runCommand"]]
    assigned = index_of(script, rf"^sign_kms_key_id='\{{\{{ {SIGN_PARAMETER} \}}\}}'$", where,
                        f"assignment of {SIGN_PARAMETER}")
    passed = index_of(script, "^" + re.escape(SIGN_LINE) + "$", where,
                      "--sign-kms-key-id passed only when the key is not empty")
    ran = index_of(script, r'(^exec /usr/bin/forensic-collector|^"\$binary") "\$@"', where,
                   "run of the collector with the arguments built")
    if not assigned < passed < ran:
        raise Failed(f"{where}: the key must be assigned ({assigned}), then added to the "
                     f"arguments ({passed}), then the collector run ({ran})")
    if any("--sign-kms-key-id" in line for i, line in enumerate(script) if i != passed):
        raise Failed(f"{where}: --sign-kms-key-id appears outside {SIGN_LINE!r}")


def check_download(step, at):
    """An aws:downloadContent step: parameters only in sourceInfo, which with the samples is JSON
    {"path": path-style S3 URL}; the destination an absolute path on /run without parameters."""
    inputs = step["inputs"]
    destination = inputs["destinationPath"]
    if PLACEHOLDER.search(destination) or PLACEHOLDER.search(inputs["sourceType"]):
        raise Failed(f"{at}: a parameter in destinationPath or sourceType")
    if not destination.startswith(DOWNLOAD_ROOT) or ".." in destination.split("/"):
        raise Failed(f"{at}: destinationPath {destination!r} is not under {DOWNLOAD_ROOT} "
                     "(tmpfs: nothing may land on the suspect's disks)")
    try:
        info = json.loads(PLACEHOLDER.sub(lambda m: samples(m.group(1))[0], inputs["sourceInfo"]))
    except ValueError as err:
        raise Failed(f"{at}: sourceInfo with the samples is not JSON: {err}") from None
    if set(info) != {"path"} or not S3_SOURCE.fullmatch(info["path"]):
        raise Failed(f"{at}: sourceInfo must be {{\"path\": \"https://s3.amazonaws.com/BUCKET/KEY\"}}, "
                     f"is {info}")


def is_memory_document(doc):
    return any("memory://" in line for step in doc.get("mainSteps") or []
               for line in (step.get("inputs") or {}).get("runCommand") or [])


def index_of(lines, pattern, at, what):
    """The index of the first line matching `pattern`; Failed naming `what` if none does."""
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            return i
    raise Failed(f"{at}: no {what} (a line matching {pattern!r})")


def check_memory(doc, where):
    """The memory document's order of things: the downloads land in the directory its first step
    empties and its last step removes; the cleanup trap comes before any exit; the hash check
    before the binary is made executable or run; the architecture picks the binary."""
    steps = doc["mainSteps"]
    scripts = [s for s in steps if s["action"] == "aws:runShellScript"]
    downloads = [s for s in steps if s["action"] == "aws:downloadContent"]
    if not downloads or steps[0]["action"] != "aws:runShellScript" or \
            steps[-1]["action"] != "aws:runShellScript" or \
            any(s["action"] != "aws:downloadContent" for s in steps[1:-1]):
        raise Failed(f"{where}: the memory document must be: a script that empties the download "
                     "directory, the downloads, the capture script")
    prepare, capture = scripts[0]["inputs"]["runCommand"], scripts[-1]["inputs"]["runCommand"]
    at = f"{where}: step {scripts[-1]['name']}"
    folders = {d["inputs"]["destinationPath"].rstrip("/") for d in downloads}
    if len(folders) != 1:
        raise Failed(f"{where}: the downloads go to several places: {sorted(folders)}")
    folder = folders.pop()
    for lines, name in ((prepare, scripts[0]["name"]), (capture, scripts[-1]["name"])):
        if f"download_dir={folder}" not in lines:
            raise Failed(f"{where}: step {name} does not set download_dir={folder}, where the "
                         "downloads land")
    index_of(prepare, r'^rm -rf -- "\$download_dir"$', f"{where}: step {scripts[0]['name']}",
             "removal of what an earlier run left")
    for url_end, arch in (("forensic-collector-x86_64", "x86_64"),
                          ("forensic-collector-aarch64", "aarch64")):
        if not any(d["inputs"]["sourceInfo"].endswith(f'/{url_end}"}}') for d in downloads):
            raise Failed(f"{where}: no download of {url_end}")
        index_of(capture, rf"^\s*{arch}\b.*\) arch={arch}; want=", at,
                 f"choice of the {arch} binary by uname -m")
    trap = index_of(capture, r"^trap cleanup EXIT$", at, "cleanup trap on EXIT")
    cleanup = index_of(capture, r"^cleanup\(\) \{$", at, "cleanup function")
    body = capture[cleanup:capture.index("}", cleanup) + 1]
    for removed in ('rm -rf -- "$run_dir"', 'rm -rf -- "$download_dir"', 'umount "$run_dir"'):
        if not any(removed in line for line in body):
            raise Failed(f"{at}: cleanup does not {removed}")
    in_function = set()
    for i, line in enumerate(capture):
        if re.match(r"^[a-z_]+\(\) \{", line):
            end = i if line.rstrip().endswith("}") else capture.index("}", i)
            in_function.update(range(i, end + 1))
    first_exit = min(i for i, line in enumerate(capture) if i not in in_function
                     and re.search(r"(^|[;|&)] *|\b(then|else) )(exit|refuse)\b", line))
    if trap > first_exit:
        raise Failed(f"{at}: the cleanup trap comes after an exit (line {first_exit})")
    compare = index_of(capture, r'\[ "\$got" != "\$want" \]; then refuse '
                       f'{MEMORY_REFUSALS["hash"]}', at, "refusal on a SHA-256 mismatch")
    hashed = index_of(capture, r'sha256sum -- "\$binary"', at, "SHA-256 of the binary")
    executable = index_of(capture, r'chmod [0-7]*[1357][0-7]* -- "\$binary"', at,
                          "chmod of the binary")
    run = index_of(capture, r'^"\$binary" ', at, "run of the binary")
    if not hashed < compare < executable < run:
        raise Failed(f"{at}: the SHA-256 must be computed ({hashed}) and compared ({compare}) "
                     f"before the binary is made executable ({executable}) and run ({run})")
    index_of(capture, rf"\*\) refuse {MEMORY_REFUSALS['arch']} ", at,
             "refusal of an unknown architecture")
    index_of(capture, rf"then refuse {MEMORY_REFUSALS['missing']} ", at,
             "refusal when the download is missing")


def must_fail(what, check, doc, change):
    doc = copy.deepcopy(doc)
    change(doc)
    try:
        check(doc, "self-test")
    except Failed:
        return
    raise Failed(f"self-test: the check accepted {what}")


def self_test(component, ssm):
    """Each check must refuse a document broken in the way it looks for."""
    def build(d):
        return d["phases"][0]["steps"]

    def bash(d):
        return build(d)[1]["inputs"]["commands"]

    def bake_step(d):
        return next(s["inputs"] for s in build(d) if s["action"] == "ExecuteBash"
                    and CUSTODY_STAGED in s["inputs"]["commands"][0])

    def preset_dropin(d):
        return next((f for step in build(d) if step["action"] == "CreateFile"
                     for f in step["inputs"] if f.get("path") == PRESET_DROPIN_STAGED),
                    {"content": ""})

    for what, change in [
        ("schemaVersion 2.0", lambda d: d.update(schemaVersion=2.0)),
        ("an unknown phase", lambda d: d["phases"][0].update(name="deploy")),
        ("a repeated step name", lambda d: build(d)[1].update(name=build(d)[0]["name"])),
        ("an unknown action", lambda d: build(d)[0].update(action="ExecutePowerShell")),
        ("a step without inputs", lambda d: build(d)[1].pop("inputs")),
        ("an unused parameter", lambda d: d["parameters"].append({"Unused": {
            "type": "string", "description": "x"}})),
        ("an undeclared parameter", lambda d: build(d)[0]["inputs"][0].update(
            destination="/tmp/{{ Undeclared }}")),
        ("a parameter in a script", lambda d: bash(d).append("echo '{{ PackageS3Uri }}'")),
        ("a script shellcheck refuses", lambda d: bash(d).append("rm -rf $dir/x")),
        ("a script setting FORENSIC_COLLECTOR_CONFIG", lambda d: bash(d).append(
            "echo FORENSIC_COLLECTOR_CONFIG=/x >> /etc/default/forensic-collector")),
        ("a drop-in other than the VM test's", lambda d: preset_dropin(d).update(
            content=preset_dropin(d)["content"].replace("original-flow", "other-flow"))),
        ("a drop-in without ExecStart's reset", lambda d: preset_dropin(d).update(
            content=preset_dropin(d)["content"].replace("ExecStart=\n", ""))),
        ("a custody key baked unchecked", lambda d: bake_step(d).update(
            commands=[bake_step(d)["commands"][0].replace("if ! [[ $key =~ $kms ]]", "if false")])),
        ("a custody key baked into the package's file only", lambda d: bake_step(d).update(
            commands=[bake_step(d)["commands"][0].replace(
                "config=${config:-/etc/forensic-collector/config.toml}",
                "config=/etc/forensic-collector/config.toml")])),
        ("no custody key parameter", lambda d: d["parameters"].pop(next(
            i for i, e in enumerate(d["parameters"]) if "CustodyKmsKeyId" in e))),
    ]:
        must_fail(what, check_component, component, change)

    def step(d):
        return d["mainSteps"][0]["inputs"]["runCommand"]

    for what, change in [
        ("schemaVersion 2.0", lambda d: d.update(schemaVersion="2.0")),
        ("a pattern that admits a quote", lambda d: d["parameters"]["source"].update(
            allowedPattern="^(/dev/.+|ebs-snapshot://snap-([0-9a-f]{8}|[0-9a-f]{17}))$")),
        ("a source pattern that admits options", lambda d: d["parameters"]["source"].update(
            allowedPattern=d["parameters"]["source"]["allowedPattern"].replace(
                "^(", "^(--?[a-z][a-z=/-]*|"))),
        ("a source pattern that admits any snapshot ID length", lambda d: d["parameters"][
            "source"].update(allowedPattern=d["parameters"]["source"]["allowedPattern"].replace(
                "([0-9a-f]{8}|[0-9a-f]{17})", "[0-9a-f]{8,17}"))),
        ("a source pattern without the snapshot form", lambda d: d["parameters"]["source"].update(
            allowedPattern=d["parameters"]["source"]["allowedPattern"].split("|ebs-snapshot")[0]
            .replace("^(", "^") + "$")),
        ("a source pattern that admits any path under /dev", lambda d: d["parameters"][
            "source"].update(allowedPattern="^(/dev/[A-Za-z0-9_][A-Za-z0-9_.:-]*(/[A-Za-z0-9_]"
                             "[A-Za-z0-9_.:-]*)*|ebs-snapshot://snap-([0-9a-f]{8}|[0-9a-f]{17}))$")),
        ("a parameter without a pattern", lambda d: d["parameters"]["bucket"].pop(
            "allowedPattern")),
        ("an unquoted parameter", lambda d: step(d).append("echo {{ source }}")),
        ("a parameter inside a longer string", lambda d: step(d).append(
            "echo 's3://{{ bucket }}'")),
        ("an unused parameter", lambda d: step(d).remove("incident='{{ incident }}'")),
        ("an undeclared parameter", lambda d: step(d).append("x='{{ other }}'")),
        ("an unknown action", lambda d: d["mainSteps"][0].update(action="aws:runDocument")),
        ("no signing key parameter", lambda d: (d["parameters"].pop("signKmsKeyId"), step(
            d).remove("sign_kms_key_id='{{ signKmsKeyId }}'"))),
        ("a signing key that is required", lambda d: d["parameters"]["signKmsKeyId"].pop(
            "default")),
        ("a signing key pattern admitting options", lambda d: d["parameters"][
            "signKmsKeyId"].update(allowedPattern="^([A-Za-z0-9:/_-]+)?$")),
        ("a signing key pattern admitting any ARN", lambda d: d["parameters"][
            "signKmsKeyId"].update(allowedPattern="^(arn:[a-z0-9:/*-]+|alias/[A-Za-z0-9/_-]+)?$")),
        ("the key passed even when empty", lambda d: step(d).__setitem__(
            step(d).index(SIGN_LINE), 'set -- "$@" "--sign-kms-key-id=$sign_kms_key_id"')),
        ("the key added after the run", lambda d: step(d).append(step(d).pop(
            step(d).index(SIGN_LINE)))),
    ]:
        must_fail(what, check_ssm, ssm, change)


def self_test_memory(memory):
    """Each memory-document check must refuse a document broken in the way it looks for."""
    def capture(d):
        return d["mainSteps"][-1]["inputs"]["runCommand"]

    def fetch(d):
        return d["mainSteps"][1]["inputs"]

    def line_with(d, text):
        return next(i for i, line in enumerate(capture(d)) if text in line)

    def move(d, text, after):
        lines = capture(d)
        line = lines.pop(line_with(d, text))
        lines.insert(line_with(d, after) + 1, line)

    def pattern(name, value):
        return lambda d: d["parameters"][name].update(allowedPattern=value)

    for what, change in [
        ("the hash compared after the run", lambda d: move(d, '"$got" != "$want"', "wait ")),
        ("the binary made executable before its hash", lambda d: move(
            d, "chmod 0700", "binary=$run_dir/forensic-collector")),
        ("no hash comparison", lambda d: capture(d).pop(line_with(d, '"$got" != "$want"'))),
        ("the cleanup trap after the first refusal", lambda d: move(
            d, "trap cleanup EXIT", "esac")),
        ("no cleanup trap", lambda d: capture(d).pop(line_with(d, "trap cleanup EXIT"))),
        ("a cleanup that keeps the downloads", lambda d: capture(d).pop(
            line_with(d, '  rm -rf -- "$download_dir"'))),
        ("a cleanup that keeps the private mount", lambda d: capture(d).__setitem__(
            line_with(d, 'umount "$run_dir"'), '  rm -rf -- "$run_dir"')),
        ("no refusal of an unknown architecture", lambda d: capture(d).pop(
            line_with(d, "*) refuse 42"))),
        ("no aarch64 binary", lambda d: capture(d).pop(line_with(d, "aarch64|arm64)"))),
        ("a download to the disk", lambda d: fetch(d).update(destinationPath="/var/tmp/fc/")),
        ("downloads to two places", lambda d: fetch(d).update(
            destinationPath="/run/elsewhere/")),
        ("a parameter in destinationPath", lambda d: fetch(d).update(
            destinationPath="/run/{{ incident }}/")),
        ("a sourceInfo that is not JSON", lambda d: fetch(d).update(
            sourceInfo=fetch(d)["sourceInfo"].rstrip("}"))),
        ("a sourceInfo that is not a path-style S3 URL", lambda d: fetch(d).update(
            sourceInfo='{"path": "s3://{{ toolsBucket }}/{{ toolsPrefix }}/x"}')),
        ("a download from GitHub", lambda d: fetch(d).update(sourceType="GitHub")),
        ("a task token pattern admitting options", pattern(
            "taskToken", "^([A-Za-z0-9+/=_-]{1,2048})?$")),
        ("a hash pattern admitting upper case", pattern("sha256X8664", "^[0-9a-fA-F]{64}$")),
        ("a hash pattern of any length", pattern("sha256Aarch64", "^[0-9a-f]+$")),
        ("a prefix pattern admitting '..'", pattern(
            "toolsPrefix", "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")),
        ("an empty value where the default is not empty", pattern("incident", "^[A-Za-z0-9_.-]*$")),
        ("a token passed unquoted", lambda d: capture(d).append("echo {{ taskToken }}")),
    ]:
        must_fail(what, check_ssm, memory, change)


def load(path):
    return yaml.safe_load(path.read_text())  # YAML is a superset of JSON


def main(argv):
    try:
        if not COMPONENTS or not SSM_DOCUMENTS:
            raise Failed("no AWSTOE component or SSM document found")
        components = [load(p) for p in COMPONENTS]
        ssm_documents = [load(p) for p in SSM_DOCUMENTS]
        self_test(components[0], ssm_documents[0])
        memory = [d for d in ssm_documents if is_memory_document(d)]
        if len(memory) != 1:
            raise Failed(f"{len(memory)} memory documents (running memory://), expected 1")
        self_test_memory(memory[0])
        for path, doc in zip(COMPONENTS, components):
            check_component(doc, path.relative_to(ROOT))
        check_pipeline_parameters(components[0])
        for path, doc in zip(SSM_DOCUMENTS, ssm_documents):
            check_ssm(doc, path.relative_to(ROOT))
        declared = {name for doc in ssm_documents for name in doc.get("parameters") or {}}
        if set(SSM_REFUSED) - declared:
            raise Failed(f"SSM_REFUSED names no parameter: {sorted(set(SSM_REFUSED) - declared)}")
    except Failed as err:
        print(f"check_docs: {err}", file=sys.stderr)
        return 1
    print(f"check_docs: {len(COMPONENTS)} AWSTOE component(s) and {len(SSM_DOCUMENTS)} SSM "
          "document(s) well-formed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
