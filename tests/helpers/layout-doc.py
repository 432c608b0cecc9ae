#!/usr/bin/env python3
"""layout-doc: docs/architecture.md's "Layout" names every source file of the engine and the agent,
and names no file that does not exist (issue 20: the layout had omitted modules and shown folders
as files). A file is named by its own name (`plan.rs`) or with its folder (`validate/fuzz.rs`); a
folder's `mod.rs` by the folder (`snapshot/`). Run by tests/run; exits 1 with what is missing.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRATES = ("imaging", "agent")


def layout_names(text):
    """Every backticked `name.rs` and `folder/` of the Layout's sections on the two crates."""
    section = text.split("\n## Layout", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### Around them", 1)[0]
    return set(re.findall(r"`([A-Za-z0-9_/]+(?:\.rs|/))`", section))


def sources():
    out = subprocess.run(["git", "ls-files", "--", *(f"{c}/src/*.rs" for c in CRATES)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [pathlib.PurePosixPath(line) for line in out.split()]


def main():
    names = layout_names((ROOT / "docs/architecture.md").read_text())
    files = sources()
    missing = []
    for path in files:
        if path.name == "mod.rs":
            wanted = {f"{path.parent.name}/"}
        else:
            wanted = {path.name, f"{path.parent.name}/{path.name}"}
        if not names & wanted:
            missing.append(str(path))
    known = {p.name for p in files} | {f"{p.parent.name}/{p.name}" for p in files}
    known |= {f"{p.parent.name}/" for p in files} | {f"{c}/" for c in CRATES}
    stale = sorted(n for n in names if n not in known)
    for path in missing:
        print(f"layout-doc: docs/architecture.md's Layout does not name {path}", file=sys.stderr)
    for name in stale:
        print(f"layout-doc: docs/architecture.md's Layout names {name}, which is no source file",
              file=sys.stderr)
    if missing or stale:
        return 1
    print(f"layout-doc: the Layout names all {len(files)} source files of {', '.join(CRATES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
