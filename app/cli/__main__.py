"""`python -m app.cli`: the command line without the launcher's early signal handling."""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
