"""The `batchcalls` entry point (console script, `python main.py`, `python -m app`).

Stop signals are handled before anything slow is imported, so a Ctrl-C or a SIGTERM even
during start-up ends with one line and exit status 130 / 143, never a traceback. (Only
the interpreter's own start, before this module runs, is beyond reach.) A signal that a
shell told the process to ignore (a background job, nohup) stays ignored.
"""

from __future__ import annotations

import signal
import sys

_early: list[int] = []


def _record(signum: int, _frame: object) -> None:
    _early.append(signum)


# First thing: while the rest is imported, a stop signal is only recorded; main() then
# ends at once. Nothing has been done that would need undoing.
for _sig in (signal.SIGINT, signal.SIGTERM):
    try:
        if signal.getsignal(_sig) is not signal.SIG_IGN:
            signal.signal(_sig, _record)
    except ValueError:  # imported outside the main thread: not the entry point
        break

from app.services.interrupts import (  # noqa: E402
    Interrupted,
    ignore_stop_signals,
    raise_on_stop_signals,
)

PROG = "batchcalls"


def main(argv: list[str] | None = None) -> int:
    try:
        # Still only recorded while the application is imported: an exception thrown into
        # an extension module's set-up can abort the process (PySide6 does).
        from app.cli import main as run_command

        raise_on_stop_signals()
        if _early:
            raise Interrupted(_early[0])
        return run_command(argv)
    except KeyboardInterrupt as error:
        ignore_stop_signals()
        stop = error if isinstance(error, Interrupted) else Interrupted()
        print(stop.message(PROG), file=sys.stderr)
        return stop.exit_status
    finally:
        ignore_stop_signals()
