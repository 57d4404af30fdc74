"""Command line of the stand-in: parses the arguments and STANDIN_CREDENTIALS, sets up
scrubbed logging on stderr, starts the server, prints the READY line and serves until
SIGTERM/SIGINT (exit status 0).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .common import LOG, ScrubFormatter
from .graphql import StandIn
from .server import StandInServer
from .sigv4 import Verifier
from .state import State

# dev/standin/cli.py -> the repository root.
DEFAULT_SCHEMA = (
    Path(__file__).resolve().parent.parent.parent / "schemas" / "graphql" / "schema.graphql"
)


def parse_credential(spec: str) -> tuple[str, tuple[str, str | None]]:
    parts = spec.strip().split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("credential must be AKID:SECRET[:SESSION_TOKEN]")
    token = parts[2] if len(parts) == 3 and parts[2] else None
    return parts[0], (parts[1], token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local AppSync (IAM/SigV4) stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--credential", action="append", default=[], metavar="AKID:SECRET[:SESSION_TOKEN]"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    parser.add_argument("--quiet", action="store_true", help="no per-request access log lines")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubFormatter("%(asctime)s appsync-standin %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False

    credentials: dict[str, tuple[str, str | None]] = {}
    specs = list(args.credential)
    env = os.environ.get("STANDIN_CREDENTIALS", "")
    specs += [s for s in env.split(",") if s.strip()]
    try:
        for spec in specs:
            akid, cred = parse_credential(spec)
            credentials[akid] = cred
    except ValueError as e:
        parser.error(str(e))

    schema_sdl = Path(args.schema).read_text(encoding="utf-8")
    state = State(args.seed)
    standin = StandIn(schema_sdl, state)
    verifier = Verifier(args.region, credentials)
    server = StandInServer((args.host, args.port), state, standin, verifier, args.quiet)
    host, port = server.server_address[:2]
    shown_host = f"[{host}]" if ":" in host else host

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    LOG.info(
        "serving region=%s credentials=%s seed=%d",
        args.region,
        ",".join(sorted(credentials)) or "(none)",
        args.seed,
    )
    print(f"READY http://{shown_host}:{port}/graphql", flush=True)
    while not stop.wait(0.5):
        pass
    LOG.info("shutting down")
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0
