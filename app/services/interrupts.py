"""Stopping on SIGINT (Ctrl-C) and SIGTERM without a traceback and without half-stored data.

A command runs inside `deferred_stop_signals()`: a signal only *records* the request, and
the code acts on it at safe points (`stop_point()`, or a `cancel` callback asked before
each commit), rolling back on its own connection and cleaning up; the entry point turns
`Interrupted` (a KeyboardInterrupt) into one line and exit status 128 + signal (130, 143).
An exception thrown from a signal handler into the middle of a database driver, a
connection pool or an extension module's import is what left half-stored batch calls,
held locks, logged tracebacks and aborted processes behind. A second signal stops at once.
Outside a command (before it, and after), a signal raises Interrupted directly.

Standard library only: the entry point imports this before anything slow.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """What a shell reports for a process stopped by that signal: 130 for SIGINT, 143 for
    SIGTERM."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop. `outcome` says what that left (for the message)."""

    def __init__(self, signum: int = signal.SIGINT, outcome: str = ""):
        super().__init__(signal_name(signum))
        self.signum = int(signum)
        self.outcome = outcome

    @property
    def exit_status(self) -> int:
        return exit_status(self.signum)

    def message(self, prog: str) -> str:
        outcome = f": {self.outcome}" if self.outcome else ""
        return f"{prog}: interrupted ({signal_name(self.signum)}){outcome}."


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_stop_signals() -> None:
    """SIGINT and SIGTERM raise Interrupted (start-up, and work that may stop anywhere).
    A signal the process was started to ignore (a background job, nohup) stays ignored."""
    if _in_main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _raise)


def ignore_stop_signals() -> None:
    """The command is over: a late signal must not turn the exit into a traceback."""
    if _in_main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


class StopRequest:
    """A stop signal received while it was deferred. Call it (or `requested()`) to ask."""

    def __init__(self, prog: str):
        self.prog = prog
        self.signum: int | None = None
        self._listeners: list[Callable[[], None]] = []

    def requested(self) -> bool:
        return self.signum is not None

    __call__ = requested

    def on_request(self, listener: Callable[[], None]) -> None:
        """Call `listener` when a stop is requested (at once if it already was)."""
        self._listeners.append(listener)
        if self.signum is not None:
            listener()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            for listener in self._listeners:
                listener()
            return
        # A second signal: the user insists. Leave at once; whatever was not committed is
        # rolled back by the database, and what is committed stays incomplete (never
        # dialed) until the next process removes it.
        sys.stderr.write(
            f"{self.prog}: interrupted again ({signal_name(signum)}): stopping now; the "
            "unfinished batch call is never dialed and is removed at the next start.\n"
        )
        sys.stderr.flush()
        os._exit(exit_status(signum))


_active: StopRequest | None = None


@contextmanager
def deferred_stop_signals(prog: str = "batchcalls") -> Iterator[StopRequest]:
    """Inside, SIGINT and SIGTERM only record a stop request (see StopRequest); the
    previous handlers come back at the end. Nested, it is the same request. Outside the
    main thread nothing changes and the request is never set."""
    global _active
    if _active is not None:
        yield _active
        return
    stop = StopRequest(prog)
    if not _in_main_thread():
        yield stop
        return
    previous = {
        sig: signal.signal(sig, stop._handle)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_requested() -> bool:
    """Whether a deferred stop signal is waiting (a `cancel` callback for long work)."""
    return _active is not None and _active.requested()


def stop_point(outcome: str = "") -> None:
    """Act on a deferred stop signal here: raise Interrupted if one arrived."""
    if _active is not None and _active.signum is not None:
        raise Interrupted(_active.signum, outcome)


@contextmanager
def held_stop_signals(prog: str = "batchcalls") -> Iterator[None]:
    """A stop signal inside waits for the block to end, then raises Interrupted. For imports
    of extension modules that abort the process when an exception interrupts their set-up
    (PySide6's shiboken: "Fatal Python error: libshiboken/signature")."""
    with deferred_stop_signals(prog) as stop:
        yield
    if stop.signum is not None:
        raise Interrupted(stop.signum)
