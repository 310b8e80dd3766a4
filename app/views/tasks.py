"""Service work off the GUI thread, on asyncio (qasync): what a window is busy with.

`TaskRunner.submit(name, fn, on_done=...)` runs `fn(control)` in a worker thread (see
app.views.aio) from a coroutine on the GUI thread's loop, which then calls the view's
callbacks on the GUI thread; `async with runner.tracking(name):` marks the same busy
state around a view's own `async` method that awaits `aio.in_worker(...)`. Either way the
runner announces busyChanged / taskFinished, which the loading indicator, the tests and QA
automation wait on. There are no thread pools, relays or queued signals of our own here:
the loop hands results back.

A dialog's work that can hang (a Twilio request, a keyring, a file on a slow share) runs
on a *detached* runner instead: each task on its own daemon thread that nothing ever waits
for. Closing the dialog then never waits: the tasks are cancelled and their callbacks
dropped, a thread still inside a request finishes (or times out) on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal
from shiboken6 import isValid

from app.views import aio

log = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """Raised inside a task function when the supervisor pressed Cancel."""


class TaskControl:
    """What a running task may use: report progress and ask whether it was cancelled."""

    def __init__(self, task_id: int, report: Callable[[int, int, int], None]):
        self._task_id = task_id
        self._report = report
        self._cancel = threading.Event()

    def progress(self, done: int, total: int) -> None:
        """Callable from the worker thread: the progress reaches the GUI thread's loop."""
        try:
            self._report(self._task_id, int(done), int(total))
        except RuntimeError:  # the loop closed while the task ran
            pass

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()


_task_ids = itertools.count(1)
_detached_threads: list[threading.Thread] = []
_detached_lock = threading.Lock()


def detached_threads() -> list[threading.Thread]:
    """The detached tasks' threads still running (tests check that none is left)."""
    with _detached_lock:
        _detached_threads[:] = [t for t in _detached_threads if t.is_alive()]
        return list(_detached_threads)


@dataclass
class Task:
    id: int
    name: str
    control: TaskControl
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[BaseException], None] | None = None
    on_progress: Callable[[int, int], None] | None = None
    quiet: bool = False
    #: The object the callbacks belong to; once it is deleted they are not called.
    owner: QObject | None = None
    #: The worker's result (pool tasks), for a bounded wait at shutdown.
    future: concurrent.futures.Future[Any] | None = None

    def cancel(self) -> None:
        self.control.cancel()

    def wanted(self) -> bool:
        return self.owner is None or isValid(self.owner)


def _run_detached(
    fn: Callable[[], Any], loop: asyncio.AbstractEventLoop
) -> concurrent.futures.Future[Any]:
    """`fn()` on a daemon thread of its own ("detachedTaskThread").

    The thread's references to `fn` and to the future are handed back to `loop`'s (the
    GUI) thread to be dropped there: `fn` may hold the last reference to a dialog closed
    meanwhile (through its task's owner or its closures), and a Qt widget deleted on
    this thread crashes the process."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    held: list[Any] = [fn, future]

    def work() -> None:
        try:
            if not held[1].set_running_or_notify_cancel():
                return
            try:
                held[1].set_result(held[0]())
            except BaseException as error:  # handed to the GUI, never lost in a thread
                held[1].set_exception(error)
        finally:
            try:
                loop.call_soon_threadsafe(held.clear)
            except RuntimeError:  # the loop is closed: the application is ending
                held.clear()

    thread = threading.Thread(target=work, name="detachedTaskThread", daemon=True)
    with _detached_lock:
        _detached_threads.append(thread)
    thread.start()
    return future


class _ActiveWork:
    """What `TaskRunner.pool` answers (the QThreadPool it replaced had these two calls):
    how many of the runner's tasks are still inside a worker thread, and a bounded wait."""

    def __init__(self, runner: TaskRunner):
        self._runner = runner

    def activeThreadCount(self) -> int:
        return sum(1 for f in self._runner._futures() if not f.done())

    def waitForDone(self, timeout_ms: int = -1) -> bool:
        pending = [f for f in self._runner._futures() if not f.done()]
        if not pending:
            return True
        timeout = None if timeout_ms < 0 else timeout_ms / 1000
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done


class TaskRunner(QObject):
    """Runs functions in worker threads through the GUI thread's asyncio loop ("taskRunner"),
    or, when `detached`, each on its own daemon thread that nothing ever waits for.

    Signals: busyChanged(bool) when the first task starts / the last one ends (the window
    shows its loading indicator from it); taskFinished(str) with the task's name after its
    callbacks ran (tests wait on it).
    """

    busyChanged = Signal(bool)
    taskFinished = Signal(str)

    def __init__(
        self, parent: QObject | None = None, max_threads: int = 2, *, detached: bool = False
    ):
        super().__init__(parent)
        self.setObjectName("taskRunner")
        self._detached = detached
        self._tasks: dict[int, Task] = {}
        self._closed = False
        self._pool = _ActiveWork(self)

    @property
    def pool(self) -> _ActiveWork:
        return self._pool

    @property
    def detached(self) -> bool:
        return self._detached

    def _futures(self) -> list[concurrent.futures.Future[Any]]:
        return [t.future for t in self._tasks.values() if t.future is not None]

    def busy(self, include_quiet: bool = False) -> bool:
        return any(include_quiet or not t.quiet for t in self._tasks.values())

    def running(self, name: str) -> bool:
        return any(t.name == name for t in self._tasks.values())

    def _start(self, name: str, quiet: bool, owner: QObject | None, **callbacks: Any) -> Task:
        task_id = next(_task_ids)
        loop = aio.event_loop()

        def report(task_id: int, done: int, total: int) -> None:
            loop.call_soon_threadsafe(self._on_progress, task_id, done, total)

        task = Task(task_id, name, TaskControl(task_id, report), quiet=quiet, owner=owner)
        for key, value in callbacks.items():
            setattr(task, key, value)
        was_busy = self.busy()
        self._tasks[task_id] = task
        if not was_busy and self.busy():
            self.busyChanged.emit(True)
        return task

    def submit(
        self,
        name: str,
        fn: Callable[[TaskControl], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        quiet: bool = False,
        owner: QObject | None = None,
    ) -> Task | None:
        """Run `fn(control)` in a worker thread; None once the runner is shut down.

        `quiet` tasks (periodic refreshes) do not light the loading indicator. Callbacks
        are skipped when `owner` (a dialog, a model) was deleted meanwhile.
        """
        if self._closed:
            return None
        task = self._start(
            name, quiet, owner, on_done=on_done, on_error=on_error, on_progress=on_progress
        )
        if self._detached:
            task.future = _run_detached(lambda: fn(task.control), aio.event_loop())
        else:
            task.future = aio.executor().submit(fn, task.control)
        aio.spawn(self._deliver(task), name=name)
        return task

    async def _deliver(self, task: Task) -> None:
        """On the GUI thread: wait for the worker, then call the task's callbacks."""
        assert task.future is not None
        try:
            result = await asyncio.wrap_future(task.future)
        except asyncio.CancelledError:
            self._finish(task.id)
            raise
        except BaseException as error:
            if not isinstance(error, TaskCancelled):
                log.debug("task %s failed: %s", task.name, error)
            self._on_failed(task.id, error)
            return
        self._on_done(task.id, result)

    @contextlib.asynccontextmanager
    async def tracking(self, name: str, *, quiet: bool = False) -> AsyncIterator[None]:
        """Count a view's own async work as this runner's task `name` (busy state, the
        loading indicator, taskFinished at the end)."""
        task = self._start(name, quiet, None)
        try:
            yield
        finally:
            self._finish(task.id)
            if isValid(self):
                self.taskFinished.emit(name)

    def _finish(self, task_id: int) -> Task | None:
        if not isValid(self):
            return None
        was_busy = self.busy()
        task = self._tasks.pop(task_id, None)
        if was_busy and not self.busy():
            self.busyChanged.emit(False)
        return task

    def _on_done(self, task_id: int, result: object) -> None:
        task = self._finish(task_id)
        if task is None:
            return
        try:
            if task.on_done is not None and not self._closed and task.wanted():
                task.on_done(result)
        finally:
            if isValid(self):
                self.taskFinished.emit(task.name)

    def _on_failed(self, task_id: int, error: BaseException) -> None:
        task = self._finish(task_id)
        if task is None:
            return
        try:
            if self._closed or not task.wanted():
                return
            if task.on_error is not None:
                task.on_error(error)
            elif not isinstance(error, TaskCancelled):
                log.error("background task %s failed: %s", task.name, error)
        finally:
            if isValid(self):
                self.taskFinished.emit(task.name)

    def _on_progress(self, task_id: int, done: int, total: int) -> None:
        if not isValid(self):
            return
        task = self._tasks.get(task_id)
        if task is not None and task.on_progress is not None and not self._closed and task.wanted():
            task.on_progress(done, total)

    def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel what can be cancelled and drop every callback; a pool runner then waits
        (bounded) for its tasks' workers, a detached one never waits. True when every task
        ended."""
        self._closed = True
        self.cancel_all()
        if self._detached:
            unfinished = len(self._tasks)
            if unfinished:
                log.info("%d detached task(s) left to finish on their own", unfinished)
            self._tasks.clear()
            return unfinished == 0
        finished = self._pool.waitForDone(timeout_ms)
        if not finished:
            log.warning("background work still running after %d ms; not waiting", timeout_ms)
        self._tasks.clear()
        return finished
