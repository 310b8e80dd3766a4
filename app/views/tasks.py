"""Service work off the GUI thread, with results handed back on the GUI thread.

Database and network calls can wait (a busy SQLite writer, a slow Twilio answer), so the
views never make them in a slot. `TaskRunner.submit` runs a function on a private
QThreadPool; its result, error and progress come back through queued signals to the
runner (a GUI-thread object), which then calls the view's callbacks on the GUI thread.

A dialog's work that can hang (a Twilio request, a keyring, a file on a slow share) runs
on a *detached* runner instead: each task on its own daemon thread, its results routed
through one relay that lives as long as the application. Closing the dialog then never
waits: the tasks are cancelled and their callbacks dropped, a thread still inside a
request finishes (or times out) on its own, and nothing blocks when the dialog, the
window or the process goes away (a QThreadPool's destructor waits for every thread).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal, Slot
from shiboken6 import isValid

log = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """Raised inside a task function when the supervisor pressed Cancel."""


class TaskControl:
    """What a running task may use: report progress and ask whether it was cancelled."""

    def __init__(self, task_id: int, relay: _Relay):
        self._task_id = task_id
        self._relay = relay
        self._cancel = threading.Event()

    def progress(self, done: int, total: int) -> None:
        try:
            self._relay.progress.emit(self._task_id, int(done), int(total))
        except RuntimeError:  # the window closed while the task ran
            pass

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()


class _Relay(QObject):
    """Lives on the GUI thread; emitted from pool threads, so its slots run queued."""

    done = Signal(int, object)
    failed = Signal(int, object)
    progress = Signal(int, int, int)


class _SharedRelay(_Relay):
    """The detached runners' relay: created once on the GUI thread and never deleted while
    the application runs, so a thread that outlives its dialog can always emit into it.
    It hands each result to the runner that submitted the task, if that still exists."""

    def __init__(self) -> None:
        super().__init__(None)
        self.setObjectName("detachedTaskRelay")
        self.runners: dict[int, TaskRunner] = {}
        self.done.connect(self._route_done)
        self.failed.connect(self._route_failed)
        self.progress.connect(self._route_progress)

    def _runner(self, task_id: int, finished: bool) -> TaskRunner | None:
        runner = self.runners.pop(task_id, None) if finished else self.runners.get(task_id)
        return runner if runner is not None and isValid(runner) else None

    @Slot(int, object)
    def _route_done(self, task_id: int, result: object) -> None:
        runner = self._runner(task_id, True)
        if runner is not None:
            runner._on_done(task_id, result)

    @Slot(int, object)
    def _route_failed(self, task_id: int, error: object) -> None:
        runner = self._runner(task_id, True)
        if runner is not None:
            runner._on_failed(task_id, error)

    @Slot(int, int, int)
    def _route_progress(self, task_id: int, done: int, total: int) -> None:
        runner = self._runner(task_id, False)
        if runner is not None:
            runner._on_progress(task_id, done, total)


_shared_relay: _SharedRelay | None = None
_task_ids = itertools.count(1)  # unique across runners: the shared relay routes by id
_detached_threads: list[threading.Thread] = []
_detached_lock = threading.Lock()


def _relay_for_detached() -> _SharedRelay:
    global _shared_relay
    if _shared_relay is None:
        _shared_relay = _SharedRelay()
    return _shared_relay


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

    def cancel(self) -> None:
        self.control.cancel()

    def wanted(self) -> bool:
        return self.owner is None or isValid(self.owner)


def _execute(task: Task, fn: Callable[[TaskControl], Any], relay: _Relay) -> None:
    """Run one task and hand its result or error to the relay (from the worker thread)."""
    try:
        result = fn(task.control)
    except BaseException as error:  # handed to the GUI, never lost in a thread
        if not isinstance(error, TaskCancelled):
            log.debug("task %s failed: %s", task.name, error)
        try:
            relay.failed.emit(task.id, error)
        except RuntimeError:  # the window closed while the task ran
            pass
        return
    try:
        relay.done.emit(task.id, result)
    except RuntimeError:
        pass


class _Runnable(QRunnable):
    def __init__(self, task: Task, fn: Callable[[TaskControl], Any], relay: _Relay):
        super().__init__()
        self.setAutoDelete(True)
        self._task = task
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        thread = QThread.currentThread()
        if not thread.objectName():
            thread.setObjectName("taskPoolThread")
        _execute(self._task, self._fn, self._relay)


class TaskRunner(QObject):
    """Runs functions on a private thread pool ("taskPool"), or, when `detached`, each on
    its own daemon thread ("detachedTaskThread") that nothing ever waits for.

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
        self._pool: QThreadPool | None = None
        self._relay: _Relay
        if detached:
            self._relay = _relay_for_detached()
        else:
            self._pool = QThreadPool(self)
            self._pool.setObjectName("taskPool")
            self._pool.setMaxThreadCount(max_threads)
            self._pool.setExpiryTimeout(2000)
            self._relay = _Relay(self)
            self._relay.done.connect(self._on_done)
            self._relay.failed.connect(self._on_failed)
            self._relay.progress.connect(self._on_progress)
        self._tasks: dict[int, Task] = {}
        self._closed = False

    @property
    def pool(self) -> QThreadPool:
        if self._pool is None:
            raise RuntimeError("a detached task runner has no thread pool")
        return self._pool

    @property
    def detached(self) -> bool:
        return self._detached

    def busy(self, include_quiet: bool = False) -> bool:
        return any(include_quiet or not t.quiet for t in self._tasks.values())

    def running(self, name: str) -> bool:
        return any(t.name == name for t in self._tasks.values())

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
        """Run `fn(control)` in the pool; None once the runner is shut down.

        `quiet` tasks (periodic refreshes) do not light the loading indicator. Callbacks
        are skipped when `owner` (a dialog, a model) was deleted meanwhile.
        """
        if self._closed:
            return None
        task_id = next(_task_ids)
        task = Task(
            task_id,
            name,
            TaskControl(task_id, self._relay),
            on_done=on_done,
            on_error=on_error,
            on_progress=on_progress,
            quiet=quiet,
            owner=owner,
        )
        was_busy = self.busy()
        self._tasks[task_id] = task
        if not was_busy and self.busy():
            self.busyChanged.emit(True)
        if self._pool is not None:
            self._pool.start(_Runnable(task, fn, self._relay))
            return task
        relay = self._relay
        assert isinstance(relay, _SharedRelay)
        relay.runners[task_id] = self
        thread = threading.Thread(
            target=_execute, args=(task, fn, relay), name="detachedTaskThread", daemon=True
        )
        with _detached_lock:
            _detached_threads.append(thread)
        thread.start()
        return task

    def _finish(self, task_id: int) -> Task | None:
        was_busy = self.busy()
        task = self._tasks.pop(task_id, None)
        if was_busy and not self.busy():
            self.busyChanged.emit(False)
        return task

    @Slot(int, object)
    def _on_done(self, task_id: int, result: object) -> None:
        task = self._finish(task_id)
        if task is None:
            return
        try:
            if task.on_done is not None and not self._closed and task.wanted():
                task.on_done(result)
        finally:
            self.taskFinished.emit(task.name)

    @Slot(int, object)
    def _on_failed(self, task_id: int, error: object) -> None:
        task = self._finish(task_id)
        if task is None:
            return
        try:
            if self._closed or not task.wanted():
                return
            if task.on_error is not None:
                assert isinstance(error, BaseException)
                task.on_error(error)
            elif not isinstance(error, TaskCancelled):
                log.error("background task %s failed: %s", task.name, error)
        finally:
            self.taskFinished.emit(task.name)

    @Slot(int, int, int)
    def _on_progress(self, task_id: int, done: int, total: int) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.on_progress is not None and not self._closed and task.wanted():
            task.on_progress(done, total)

    def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel what can be cancelled and drop every callback; a pool runner then waits
        (bounded) for its threads, a detached one never waits. True when every task ended."""
        self._closed = True
        self.cancel_all()
        if self._pool is None:
            unfinished = len(self._tasks)
            if unfinished:
                log.info("%d detached task(s) left to finish on their own", unfinished)
            self._tasks.clear()
            return unfinished == 0
        finished = self._pool.waitForDone(timeout_ms)
        if not finished:
            log.warning("background work still running after %d ms; not waiting", timeout_ms)
        self._tasks.clear()
        return bool(finished)
