#!/usr/bin/env python3
"""Writes infra/template.yaml from infra/template.src.yaml and the events' JSON Schemas.

Each event contract has one source of truth, its file in schemas/json/ (the Rust crate embeds the
same files with include_str!). The SAM template publishes them in the EventBridge schema
registry, so the deployable template must carry the schemas' text; rather than hand-made copies,
this script embeds each file verbatim as a YAML literal block in place of its placeholder line
in the source template:

    Content: __USER_CONFIRMED_SCHEMA__    schemas/json/user-confirmed.v1.schema.json
    Content: __PROFILE_CREATED_SCHEMA__   schemas/json/profile-created.v1.schema.json
    Content: __USER_DELETED_SCHEMA__      schemas/json/user-deleted.v1.schema.json
    Content: __PROFILE_DELETED_SCHEMA__   schemas/json/profile-deleted.v1.schema.json

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
SCHEMAS_DIR = ROOT / "schemas" / "json"
# placeholder -> the schema file embedded in its place (each placeholder exactly once)
SCHEMAS = {
    "__USER_CONFIRMED_SCHEMA__": SCHEMAS_DIR / "user-confirmed.v1.schema.json",
    "__PROFILE_CREATED_SCHEMA__": SCHEMAS_DIR / "profile-created.v1.schema.json",
    "__USER_DELETED_SCHEMA__": SCHEMAS_DIR / "user-deleted.v1.schema.json",
    "__PROFILE_DELETED_SCHEMA__": SCHEMAS_DIR / "profile-deleted.v1.schema.json",
}

HEADER = """\
# GENERATED FILE: do not edit. Source: infra/template.src.yaml; regenerate with
#   dev/.venv/bin/python infra/render.py
# The Content of UserConfirmedSchema, ProfileCreatedSchema, UserDeletedSchema and
# ProfileDeletedSchema below is schemas/json/user-confirmed.v1.schema.json,
# schemas/json/profile-created.v1.schema.json, schemas/json/user-deleted.v1.schema.json and
# schemas/json/profile-deleted.v1.schema.json, verbatim.
"""


def render(source: str | None = None, schemas: dict[str, str] | None = None) -> str:
    """The rendered template's text. ``schemas`` maps each placeholder to the text embedded in
    its place (default: the files of SCHEMAS)."""
    source = SOURCE.read_text(encoding="utf-8") if source is None else source
    if schemas is None:
        schemas = {placeholder: path.read_text(encoding="utf-8") for placeholder, path in SCHEMAS.items()}
    for placeholder, schema in schemas.items():
        name = SCHEMAS[placeholder].name if placeholder in SCHEMAS else placeholder
        if "\t" in schema:
            raise ValueError(f"{name}: tabs cannot be embedded in a YAML block; use spaces")
        if not schema.strip():
            raise ValueError(f"{name} is empty")
        if schema.endswith("\n\n"):
            raise ValueError(f"{name} ends with blank lines; remove them")

    lines = source.splitlines(keepends=True)
    # Drop the source's leading comment block; the rendered file gets its own header.
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    out = [HEADER]
    found = {placeholder: 0 for placeholder in schemas}
    for line in lines[start:]:
        stripped = line.strip()
        placeholder = next((p for p in schemas if p in line), None)
        if placeholder is None:
            out.append(line)
            continue
        schema = schemas[placeholder]
        key, sep, rest = stripped.partition(":")
        if not sep or rest.strip() != placeholder:
            raise ValueError(f"placeholder must stand alone as `Key: {placeholder}`: {line!r}")
        indent = line[: len(line) - len(line.lstrip(" "))]
        body_indent = indent + "  "
        # `|` keeps exactly one final newline, `|-` none: match the file byte for byte.
        indicator = "|" if schema.endswith("\n") else "|-"
        out.append(f"{indent}{key}: {indicator}\n")
        for schema_line in schema.splitlines():
            out.append(f"{body_indent}{schema_line}\n" if schema_line else "\n")
        found[placeholder] += 1
    wrong = {p: n for p, n in found.items() if n != 1}
    if wrong:
        raise ValueError("expected each placeholder exactly once, found " +
                         ", ".join(f"{p} {n} times" for p, n in sorted(wrong.items())))
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
