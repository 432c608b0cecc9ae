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
  the script with the samples substituted passes `bash -n` and shellcheck.

run_docs.py runs the documents' scripts for real.
"""

import copy
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = sorted((ROOT / "image-builder").glob("component*.yaml"))
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
}
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
}


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


def lint_script(script, where):
    """`bash -n` and shellcheck on one script; raises Failed with their output."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
        f.write("#!/bin/bash\n" + script + "\n")
        f.flush()
        for cmd in (["bash", "-n", f.name], ["shellcheck", "--shell=bash", f.name]):
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
        hostile = [""] + SSM_REFUSED.get(name, [])
        for sample in samples(name):
            half = len(sample) // 2
            hostile += [v for h in HOSTILE for v in (
                h, h + sample, sample[:half] + h + sample[half:], sample + h)
                if v != sample + "\n"]
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
        script = inputs["runCommand"]
        for line in script:
            for m in PLACEHOLDER.finditer(line):
                if not re.fullmatch(r"[a-z_][a-z0-9_]*='\{\{ [A-Za-z0-9_]+ \}\}'", line):
                    raise Failed(f"{at}: {{{{ {m.group(1)} }}}} must only appear as a whole "
                                 f"single-quoted assignment, not in {line!r}")
        lint_script(as_run_command(step, first_samples()), at)
    same_parameters(declared, used, str(where))
    if set(SSM_REFUSED) - set(declared):
        raise Failed(f"{where}: SSM_REFUSED names no parameter: "
                     f"{sorted(set(SSM_REFUSED) - set(declared))}")


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
    ]:
        must_fail(what, check_ssm, ssm, change)


def load(path):
    return yaml.safe_load(path.read_text())  # YAML is a superset of JSON


def main(argv):
    try:
        if not COMPONENTS or not SSM_DOCUMENTS:
            raise Failed("no AWSTOE component or SSM document found")
        components = [load(p) for p in COMPONENTS]
        ssm_documents = [load(p) for p in SSM_DOCUMENTS]
        self_test(components[0], ssm_documents[0])
        for path, doc in zip(COMPONENTS, components):
            check_component(doc, path.relative_to(ROOT))
        for path, doc in zip(SSM_DOCUMENTS, ssm_documents):
            check_ssm(doc, path.relative_to(ROOT))
    except Failed as err:
        print(f"check_docs: {err}", file=sys.stderr)
        return 1
    print(f"check_docs: {len(COMPONENTS)} AWSTOE component(s) and {len(SSM_DOCUMENTS)} SSM "
          "document(s) well-formed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
