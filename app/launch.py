"""The `batchcalls` entry point (console script, `python main.py`, `python -m app`).

Stop signals are handled before anything slow is imported, so a Ctrl-C or a SIGTERM even
during start-up ends with one line and exit status 130 / 143, never a traceback.
"""

from __future__ import annotations

import sys

from app.services.interrupts import Interrupted, ignore_stop_signals, raise_on_stop_signals

PROG = "batchcalls"


def main(argv: list[str] | None = None) -> int:
    raise_on_stop_signals()
    try:
        from app.cli import main as run_command

        return run_command(argv)
    except KeyboardInterrupt as error:
        ignore_stop_signals()
        stop = error if isinstance(error, Interrupted) else Interrupted()
        print(stop.message(PROG), file=sys.stderr)
        return stop.exit_status
    finally:
        ignore_stop_signals()
