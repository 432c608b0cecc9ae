#!/usr/bin/env python3
"""Checks flow/statemachine.asl.json beyond what an ASL validator sees (check-asl.sh runs it).

  check_asl.py DEFINITION README RENDERED_OUT

- The definition is JSON before substitution, and every `${...}` in it is a placeholder
  `${Name}` (letters and digits) that flow/README.md's placeholder table lists; every listed
  placeholder is used. A placeholder only inside a JSON string (so that the file stays JSON).
- Rendered with a sample value for each placeholder (numbers for the numeric ones), nothing like
  `${` is left, and the result is JSON (written to RENDERED_OUT for the validator).
- Every Task state has a Catch of States.ALL, or sits in a Map whose own Catch covers it
  (a Catch inside a Map item can only lead to that item's states).
- Every Wait waits SecondsPath `$.config.poll_seconds` (the bounded polls), and every state
  that loops back (a Wait's Next) is reached only through a Choice that checks
  `$.config.max_polls` (the bound).
"""

import json
import re
import sys
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
TABLE_ROW = re.compile(r"^\|\s*`\$\{([A-Za-z0-9]+)\}`\s*\|\s*(number|string|boolean)\s*\|")
SAMPLE = {"number": "1", "string": "sample", "boolean": "true"}


def documented(readme):
    """{placeholder: "number" | "string" | "boolean"} from flow/README.md's table rows
    "| `${Name}` | number | meaning |"."""
    rows = {}
    for line in readme.splitlines():
        m = TABLE_ROW.match(line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def strings_in(value):
    """Every string (keys too) in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def tasks_uncaught(states, covered=False, where="States"):
    """Task states without a Catch of States.ALL that no enclosing Map's Catch covers."""
    for name, st in states.items():
        catches = [e for c in st.get("Catch", []) for e in c["ErrorEquals"]]
        if st["Type"] == "Task" and "States.ALL" not in catches and not covered:
            yield f"{where}.{name}"
        if st["Type"] == "Map":
            inner = st.get("ItemProcessor") or st.get("Iterator")
            yield from tasks_uncaught(inner["States"], covered or "States.ALL" in catches, f"{where}.{name}")


def all_states(states):
    for name, st in states.items():
        yield name, st, states
        if st["Type"] == "Map":
            yield from all_states((st.get("ItemProcessor") or st.get("Iterator"))["States"])


def main():
    definition_path, readme_path, out_path = sys.argv[1:4]
    text = Path(definition_path).read_text()
    problems = []
    try:
        definition = json.loads(text)
    except ValueError as e:
        print(f"check_asl: {definition_path} is not JSON before substitution: {e}")
        return 1
    docs = documented(Path(readme_path).read_text())
    used = PLACEHOLDER.findall(text)
    for name in sorted(set(used)):
        if not NAME.fullmatch(name):
            problems.append(f"malformed placeholder ${{{name}}}")
        elif name not in docs:
            problems.append(f"placeholder ${{{name}}} is not in {readme_path}'s table")
    for name in sorted(set(docs) - set(used)):
        problems.append(f"{readme_path} lists ${{{name}}}, which the definition does not use")
    in_strings = sum(len(PLACEHOLDER.findall(s)) for s in strings_in(definition))
    if in_strings != len(used):
        problems.append("a placeholder outside a JSON string")
    rendered = PLACEHOLDER.sub(lambda m: SAMPLE[docs.get(m.group(1), "string")], text)
    if "${" in rendered:
        problems.append("'${' left after substitution")
    try:
        json.loads(rendered)
    except ValueError as e:
        problems.append(f"not JSON after substitution: {e}")
    Path(out_path).write_text(rendered)
    problems += [f"Task {t} has no Catch of States.ALL (nor a Map's around it)"
                 for t in tasks_uncaught(definition["States"])]
    for name, st, scope in all_states(definition["States"]):
        if st["Type"] == "Wait":
            if st.get("SecondsPath") != "$.config.poll_seconds":
                problems.append(f"Wait {name} is not the bounded poll's wait")
            guards = [n for n, s in scope.items() if s["Type"] == "Choice"
                      and "$.config.max_polls" in json.dumps(s) and json.dumps(s).count(f'"{name}"')]
            if not guards:
                problems.append(f"Wait {name} is not behind a Choice that checks $.config.max_polls")
    for p in problems:
        print(f"check_asl: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
