#!/usr/bin/env python3
"""Keeps docs/app-clients.md honest: every TypeScript block it shows is the type-checked file
under docs/app-clients/src/ it names, byte for byte, and every such file is shown; and the
client's copy of the data schema (src/schema.ts) is the model of docs/amplify-gen2/.

A block is bound to its file by the line just above its opening fence:
    <!-- snippet: src/client.ts -->
`--write` rewrites the page's blocks from the files (the files are the source of truth).
Standard library only, so `make` needs nothing installed to run it.
"""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "app-clients.md"
BACKEND_SCHEMA = HERE.parent / "amplify-gen2" / "amplify" / "data" / "resource.ts"

BLOCK = re.compile(
    r"^<!-- snippet: (?P<path>[^ ]+) -->\n```ts\n(?P<body>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)
# From `a.schema({` to the `});` that closes it at the start of a line.
SCHEMA_LITERAL = re.compile(r"a\.schema\(\{\n.*?^\}\);", re.DOTALL | re.MULTILINE)


def snippet_files() -> list[str]:
    return sorted(str(p.relative_to(HERE)) for p in (HERE / "src").glob("*.ts"))


def check(page: str) -> list[str]:
    problems = []
    shown: dict[str, int] = {}
    for match in BLOCK.finditer(page):
        path = match["path"]
        shown[path] = shown.get(path, 0) + 1
        file = HERE / path
        if not file.is_file():
            problems.append(f"{PAGE.name} shows {path}, which does not exist")
        elif file.read_text() != match["body"]:
            problems.append(f"{PAGE.name}: the block for {path} differs from the file")
    for path in snippet_files():
        count = shown.get(path, 0)
        if count != 1:
            problems.append(f"{PAGE.name} shows {path} {count} times, expected once")

    client = SCHEMA_LITERAL.search((HERE / "src" / "schema.ts").read_text())
    backend = SCHEMA_LITERAL.search(BACKEND_SCHEMA.read_text())
    if client is None or backend is None:
        problems.append("no `a.schema({ … });` literal found in src/schema.ts or the backend")
    elif client[0] != backend[0]:
        problems.append(
            f"src/schema.ts's model differs from {BACKEND_SCHEMA.relative_to(HERE.parent.parent)}"
        )
    return problems


def write(page: str) -> str:
    def from_file(match: re.Match[str]) -> str:
        body = (HERE / match["path"]).read_text()
        return f"<!-- snippet: {match['path']} -->\n```ts\n{body}```"

    return BLOCK.sub(from_file, page)


def main() -> int:
    page = PAGE.read_text()
    if sys.argv[1:] == ["--write"]:
        page = write(page)
        PAGE.write_text(page)
    elif sys.argv[1:]:
        print("usage: check-sync.py [--write]", file=sys.stderr)
        return 2
    problems = check(page)
    for problem in problems:
        print(f"check-sync: {problem}", file=sys.stderr)
    if not problems:
        print(f"check-sync: {len(snippet_files())} snippets in {PAGE.name} match src/, schema matches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
