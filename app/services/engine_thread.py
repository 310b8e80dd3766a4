"""The desktop's engine host: the dialer engine on its own QThread, driven by a QTimer.

This is the only Qt module in `app.services`. The engine itself is plain Python
(app.services.engine); this host only calls its `tick()` on a timer that lives in the
engine thread and turns each tick's report into signals. The signals are emitted from
the engine thread, so Qt queues them to receivers in the GUI thread: no slot of the
window ever runs database or network work, and no ORM object crosses a thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal, Slot

from app.models.db import describe_url
from app.services.engine import EngineConfig, EngineRunner, EngineStatus
from app.services.engine.state import STOPPED, error
from app.services.telephony import TelephonyProvider

log = logging.getLogger(__name__)

#: Threads whose stop() timed out, with their worker: kept referenced until they finish,
#: so neither a running QThread nor the object it runs is ever destroyed.
_LINGERING: dict[QThread, QObject] = {}

#: At exit, how long to wait for engine threads still inside a provider or database call
#: (both time out well within this) before ending the process without them.
EXIT_WAIT_SECONDS = 20.0
#: The exit code when that wait was not enough (the process did not stop cleanly).
EXIT_STUCK = 1
_exit_hook_installed = False


def _finish_lingering_at_exit() -> None:
    """At interpreter exit every Qt object is destroyed, and destroying a QThread that
    still runs aborts the process ("QThread: Destroyed while thread is still running").
    So wait for the engine threads that did not stop in time; if one still runs after
    EXIT_WAIT_SECONDS, end the process here, with the logs flushed, instead."""
    if not _LINGERING:
        return
    log.warning(
        "waiting up to %g s for the engine to finish its current request before exiting",
        EXIT_WAIT_SECONDS,
    )
    until = time.monotonic() + EXIT_WAIT_SECONDS
    for thread in list(_LINGERING):
        left_ms = max(0, round((until - time.monotonic()) * 1000))
        if not thread.isFinished():
            thread.wait(left_ms)
    if all(thread.isFinished() for thread in list(_LINGERING)):
        _LINGERING.clear()  # finished: destroying them is safe
        return
    log.error(
        "the engine thread is still inside a provider or database call %g s after the "
        "application closed; exiting without it (a call it was placing is reconciled at "
        "the next start)",
        EXIT_WAIT_SECONDS,
    )
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(EXIT_STUCK)


def _linger(thread: QThread, worker: QObject) -> None:
    """Keep a thread that did not stop in time (and its worker) referenced until it
    finishes, and make sure the process never exits while it runs."""
    global _exit_hook_installed
    _LINGERING[thread] = worker
    thread.finished.connect(lambda: _LINGERING.pop(thread, None))
    if not _exit_hook_installed:
        # Registered after PySide's own exit clean-up, so it runs before it.
        atexit.register(_finish_lingering_at_exit)
        _exit_hook_installed = True


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EngineHost(QObject):
    """Runs the dialer engine on the "engineThread" QThread.

    Signals (emitted from the engine thread, queued to GUI receivers):
      batchCallChanged(int): a batch call's status, counts or waiting reason changed, or
          it disappeared; at most once per batch call per tick.
      recipientsChanged(int): recipients of that batch call changed.
      waitingReasonChanged(int, str): the new reason ("" when cleared).
      engineStateChanged(object): the engine's EngineStatus (an EngineState and its
          detail: who dials when standing by, what is wrong on error).
    """

    batchCallChanged = Signal(int)
    recipientsChanged = Signal(int)
    waitingReasonChanged = Signal(int, str)
    engineStateChanged = Signal(object)
    _wakeRequested = Signal()
    _shutdownRequested = Signal()

    def __init__(
        self,
        database_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        provider: TelephonyProvider | None = None,
        settings_overrides: dict[str, Any] | None = None,
        parent: QObject | None = None,
        engine_config: EngineConfig | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("engineHost")
        self._database_url = database_url
        self._clock = clock or _utcnow
        self._provider = provider
        self._overrides = dict(settings_overrides or {})
        self._config = engine_config
        self._thread: QThread | None = None
        self._worker: _EngineWorker | None = None
        self._state = STOPPED
        self._state_lock = threading.Lock()
        self._quit_hooked: QCoreApplication | None = None

    @property
    def state(self) -> EngineStatus:
        with self._state_lock:
            return self._state

    def _set_state(self, state: EngineStatus) -> None:
        """Called from the engine thread; emits only on a change."""
        with self._state_lock:
            if state == self._state:
                return
            self._state = state
        self.engineStateChanged.emit(state)

    def isRunning(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def start(self) -> None:
        """Start the engine thread (a no-op if it runs)."""
        if self._thread is not None:
            return
        thread = QThread()
        thread.setObjectName("engineThread")
        worker = _EngineWorker(
            self, self._database_url, self._clock, self._provider, self._overrides, self._config
        )
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        self._wakeRequested.connect(worker.wake)
        self._shutdownRequested.connect(worker.shutdown)
        self._thread, self._worker = thread, worker
        app = QCoreApplication.instance()
        if app is not None:  # never let the application quit with the thread running
            app.aboutToQuit.connect(self._stop_on_quit)
            self._quit_hooked = app
        thread.start()

    @Slot()
    def _stop_on_quit(self) -> None:
        self.stop()

    def wake(self) -> None:
        """Run a tick soon, with a pickup (after a supervisor action)."""
        if self._thread is not None:
            self._wakeRequested.emit()

    def stop(self, timeout_ms: int = 5000) -> None:
        """Stop ticking, release the lease and end the thread; waits `timeout_ms` at most."""
        thread, worker = self._thread, self._worker
        if thread is None or worker is None:
            return
        self._thread = self._worker = None
        if self._quit_hooked is not None:
            self._quit_hooked.aboutToQuit.disconnect(self._stop_on_quit)
            self._quit_hooked = None
        worker.request_stop()  # thread-safe: ends a tick's placing loop early
        self._shutdownRequested.emit()  # queued to the engine thread
        self._wakeRequested.disconnect(worker.wake)
        self._shutdownRequested.disconnect(worker.shutdown)
        if thread.wait(timeout_ms):
            return
        log.error(
            "the engine thread did not stop within %d ms (a provider or database call is "
            "still running); it will stop when that call returns",
            timeout_ms,
        )
        _linger(thread, worker)


class _EngineWorker(QObject):
    """Lives in the engine thread: owns the EngineRunner (the engine and its database
    connections) and the "engineTimer" QTimer."""

    def __init__(
        self,
        host: EngineHost,
        database_url: str,
        clock: Callable[[], datetime],
        provider: TelephonyProvider | None,
        overrides: Mapping[str, Any],
        config: EngineConfig | None,
    ) -> None:
        super().__init__()
        self.setObjectName("engineWorker")
        self._host = host
        self._database_url = database_url
        self._clock = clock
        self._provider = provider
        self._overrides = overrides
        self._config = config
        self._runner: EngineRunner | None = None
        self._timer: QTimer | None = None
        self._stopping = threading.Event()
        #: Ticks run so far (tests tell ticks apart with it).
        self.ticks = 0

    def request_stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            self._runner.request_stop()

    @Slot()
    def run(self) -> None:
        """Set up in the engine thread (connections belong to the thread that uses them)."""
        try:
            self._runner = EngineRunner(
                self._database_url,
                stop=self._stopping,
                provider=self._provider,
                clock=None if self._clock is _utcnow else self._clock,
                config=self._config,
                settings_overrides=self._overrides,
            )
        except Exception as exc:
            log.exception("the engine cannot start on %s", describe_url(self._database_url))
            self._host._set_state(error(f"the engine cannot start ({type(exc).__name__}: {exc})"))
            QThread.currentThread().quit()
            return
        if self._stopping.is_set():
            self.shutdown()
            return
        timer = QTimer(self)
        timer.setObjectName("engineTimer")
        timer.setSingleShot(True)
        timer.timeout.connect(self._tick)
        self._timer = timer
        timer.start(0)

    @Slot()
    def wake(self) -> None:
        if self._runner is None or self._timer is None or self._stopping.is_set():
            return
        self._runner.engine.request_pickup()
        self._timer.start(0)

    @Slot()
    def _tick(self) -> None:
        runner = self._runner
        if runner is None or self._stopping.is_set():
            return
        report = runner.tick()
        self.ticks += 1
        host = self._host
        self._host._set_state(report.status)
        for batch_id in sorted(report.changed | report.recipients_changed):
            host.batchCallChanged.emit(batch_id)
        for batch_id in sorted(report.recipients_changed):
            host.recipientsChanged.emit(batch_id)
        for batch_id, reason in sorted(report.waiting_reasons.items()):
            host.waitingReasonChanged.emit(batch_id, reason)
        if self._stopping.is_set() or self._timer is None:
            return
        self._timer.start(max(0, round(runner.seconds_to_next_tick(report) * 1000)))

    @Slot()
    def shutdown(self) -> None:
        """Queued from EngineHost.stop(): stop the timer, release the lease, end the thread."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._dispose()
        self._host._set_state(STOPPED)
        app = QCoreApplication.instance()
        if app is not None:  # hand the (now idle) worker back for a safe deletion
            self.moveToThread(app.thread())
        QThread.currentThread().quit()

    def _dispose(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
