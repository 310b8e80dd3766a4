"""`python -m app`: the same entry point as the `batchcalls` console script."""

from __future__ import annotations

import sys

from app.launch import main

if __name__ == "__main__":
    sys.exit(main())
