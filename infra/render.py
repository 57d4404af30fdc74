#!/usr/bin/env python3
"""Writes infra/template.yaml from infra/template.src.yaml and the UserConfirmed JSON Schema.

The event contract has one source of truth, schemas/json/user-confirmed.v1.schema.json (the
Rust crate embeds the same file with include_str!). The SAM template publishes it in the
EventBridge schema registry, so the deployable template must carry the schema's text; rather
than a hand-made copy, this script embeds the file verbatim as a YAML literal block in place
of the placeholder line ``Content: __USER_CONFIRMED_SCHEMA__`` of the source template.

    python infra/render.py           # (re)write infra/template.yaml
    python infra/render.py --check   # exit 1 if infra/template.yaml is not a fresh render

Only the standard library is used, so any Python 3.9+ runs it. The test suite
(dev/tests/test_template.py) fails when the committed template is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
ROOT = INFRA.parent
SOURCE = INFRA / "template.src.yaml"
OUTPUT = INFRA / "template.yaml"
SCHEMA = ROOT / "schemas" / "json" / "user-confirmed.v1.schema.json"
PLACEHOLDER = "__USER_CONFIRMED_SCHEMA__"

HEADER = """\
# GENERATED FILE: do not edit. Source: infra/template.src.yaml; regenerate with
#   dev/.venv/bin/python infra/render.py
# The UserConfirmedSchema Content below is schemas/json/user-confirmed.v1.schema.json, verbatim.
"""


def render(source: str | None = None, schema: str | None = None) -> str:
    """The rendered template's text."""
    source = SOURCE.read_text(encoding="utf-8") if source is None else source
    schema = SCHEMA.read_text(encoding="utf-8") if schema is None else schema
    if "\t" in schema:
        raise ValueError(f"{SCHEMA.name}: tabs cannot be embedded in a YAML block; use spaces")
    if not schema.strip():
        raise ValueError(f"{SCHEMA.name} is empty")

    lines = source.splitlines(keepends=True)
    # Drop the source's leading comment block; the rendered file gets its own header.
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    out = [HEADER]
    found = 0
    for line in lines[start:]:
        stripped = line.strip()
        if PLACEHOLDER in line:
            key, sep, rest = stripped.partition(":")
            if not sep or rest.strip() != PLACEHOLDER:
                raise ValueError(f"placeholder must stand alone as `Key: {PLACEHOLDER}`: {line!r}")
            indent = line[: len(line) - len(line.lstrip(" "))]
            body_indent = indent + "  "
            # `|` keeps exactly one final newline, `|-` none: match the file byte for byte.
            indicator = "|" if schema.endswith("\n") and not schema.endswith("\n\n") else "|-"
            if schema.endswith("\n\n"):
                raise ValueError(f"{SCHEMA.name} ends with blank lines; remove them")
            out.append(f"{indent}{key}: {indicator}\n")
            for schema_line in schema.splitlines():
                out.append(f"{body_indent}{schema_line}\n" if schema_line else "\n")
            found += 1
        else:
            out.append(line)
    if found != 1:
        raise ValueError(f"expected the placeholder {PLACEHOLDER} exactly once, found it {found} times")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the output is fresh")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run infra/render.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
