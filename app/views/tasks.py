"""What a window is busy with: its background work, started as asyncio tasks (qasync).

A view's background work is an `async` method that awaits the service call in a thread
(`aio.in_worker`, or `aio.in_thread` for calls that can hang) and carries on with the
result on the GUI thread. `BackgroundTasks.start(name, coroutine)` runs it: it keeps the
task, cancels it when its owner (a dialog, a model) is deleted or the window shuts down,
and logs an error nothing handled. `async with tasks.tracking(name):` counts a part of a
coroutine the same way.

Why this module stays although asyncio runs the work: asyncio knows nothing of what the
supervisor sees. The window shows its loading indicator from `busyChanged`; tests and QA
scripts wait for `taskFinished(name)` or `busy(include_quiet=True)` to go False; and
closing the window waits (bounded) for the worker calls its tasks still run before the
database is closed. That is all this does: there are no threads, pools, queues or
callbacks of our own here (those were the TaskRunner it replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from shiboken6 import isValid

from app.views import aio

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass
class _Work:
    name: str
    quiet: bool
    task: asyncio.Task[Any] | None = field(default=None, repr=False)


class BackgroundTasks(QObject):
    """A window's background work ("taskRunner"; the dialogs' have their own names).

    Signals: busyChanged(bool) when the first non-quiet task starts / the last one ends
    (the loading indicator); taskFinished(str) with the task's name once it ended, after
    it showed its result (tests wait on it).
    """

    busyChanged = Signal(bool)
    taskFinished = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("taskRunner")
        self._work: dict[int, _Work] = {}
        self._calls = aio.WorkerCalls()
        self._closed = False

    # ----------------------------------------------------------------- state
    def busy(self, include_quiet: bool = False) -> bool:
        """Whether work is running (quiet work, periodic refreshes, only if asked)."""
        return any(include_quiet or not w.quiet for w in self._work.values())

    def running(self, name: str) -> bool:
        return any(w.name == name for w in self._work.values())

    def worker_calls(self) -> int:
        """How many worker-thread calls the tasks started are still running."""
        return self._calls.active()

    # ----------------------------------------------------------------- starting work
    def start(
        self,
        name: str,
        coroutine: Coroutine[Any, Any, Any],
        *,
        quiet: bool = False,
        owner: QObject | None = None,
    ) -> asyncio.Task[Any] | None:
        """Run `coroutine` as task `name`; None (and it never runs) once shut down.

        `quiet` work (periodic refreshes) does not light the loading indicator. With
        `owner`, the task is cancelled when the owner is deleted (the coroutine should
        still check `aio.alive(owner)` after each await that can outlast it)."""
        if self._closed:
            coroutine.close()
            return None
        work_id = self._begin(name, quiet)
        context = contextvars.copy_context()
        context.run(aio.counting, self._calls)
        task = aio.spawn(coroutine, name=name, owner=owner, context=context)
        self._work[work_id].task = task
        task.add_done_callback(lambda _task: self._end(work_id))
        return task

    @contextlib.asynccontextmanager
    async def tracking(self, name: str, *, quiet: bool = False) -> AsyncIterator[None]:
        """Count a part of a coroutine as task `name` (busy state, taskFinished at the end,
        its worker calls waited for at shutdown, cancelled by shutdown)."""
        work_id = self._begin(name, quiet)
        self._work[work_id].task = asyncio.current_task()
        token = aio.counting(self._calls)
        try:
            yield
        finally:
            aio.stop_counting(token)
            self._end(work_id)

    def _begin(self, name: str, quiet: bool) -> int:
        was_busy = self.busy()
        work_id = next(_ids)
        self._work[work_id] = _Work(name, quiet)
        if not was_busy and self.busy():
            self.busyChanged.emit(True)
        return work_id

    def _end(self, work_id: int) -> None:
        if not isValid(self):  # the window was deleted meanwhile
            return
        was_busy = self.busy()
        work = self._work.pop(work_id, None)
        if work is None:
            return
        if was_busy and not self.busy():
            self.busyChanged.emit(False)
        self.taskFinished.emit(work.name)

    # ----------------------------------------------------------------- closing
    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every task (their results are dropped) and wait up to `timeout_ms` for
        the worker calls they still run (never for `aio.in_thread` calls). True when every
        worker call ended."""
        self._closed = True
        for work in list(self._work.values()):
            if work.task is not None and work.task is not asyncio.current_task():
                work.task.cancel()
        finished = self._calls.wait(max(0, timeout_ms) / 1000)
        if not finished:
            log.warning("background work still running after %d ms; not waiting", timeout_ms)
        return finished
