"""Start-up only: `python main.py` is `batchcalls` (no arguments opens the desktop app)."""

from __future__ import annotations

import sys

from app.launch import main

if __name__ == "__main__":
    sys.exit(main())
