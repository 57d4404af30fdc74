#!/usr/bin/env python3
"""Local stand-in for the AWS AppSync GraphQL endpoint (IAM / SigV4 auth).

Launcher only: the code is the `standin` package next to this file and the spec is
dev/standin/README.md.  This path stays because dev/devkit and `uc-ops local` start
the stand-in by it (and recognise its process by the name "appsync_standin.py").
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# Run as a script, sys.path[0] is already this folder; imported any other way it may not be.
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from standin.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
