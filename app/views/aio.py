"""asyncio on the GUI thread (qasync), with the services run in worker threads.

A view's background work is an `async` method: it awaits `in_worker(service_call, ...)`,
which runs the call on a small thread pool, and continues on the GUI thread with the
result, so nothing blocks the window and no callback plumbing is needed:

    async def _reload(self) -> None:
        snapshots = await aio.in_worker(self.service.list)
        self.model.merge(snapshots)

Work that can hang (a Twilio request, the keyring, a file on a slow share) awaits
`in_thread(...)` instead: a daemon thread of its own that nothing ever waits for, so
closing a dialog or the application never waits for it. A call that reports progress or
can be cancelled (reading a CSV, creating a batch call) gets a `WorkerControl`.

`spawn()` starts such a coroutine and keeps a reference to its task until it ends (the
loop holds only weak references); a window starts its work through its
`app.views.tasks.BackgroundTasks`, which also says what the window is busy with. The
application runs the qasync loop with `asyncio.Runner(loop_factory=...)` (see
app.views.app.run_gui); a Qt event loop started by something else (pytest-qt, a QA
script) gets a qasync loop attached on first use. `shutdown()` is bounded: it cancels the
tasks and never waits more than its timeout for a worker thread still inside a database
or network call.

This is the only module of app.views that deals with threads (tests/views/test_aio.py
checks it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import qasync
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKER_THREADS = 4

_executor: DaemonExecutor | None = None
_attached_loop: asyncio.AbstractEventLoop | None = None
_tasks: set[asyncio.Task[Any]] = set()
_detached_threads: list[threading.Thread] = []
_detached_lock = threading.Lock()
_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = True


def event_loop() -> asyncio.AbstractEventLoop:
    """The running loop, or a qasync loop attached to the Qt event loop already running."""
    global _attached_loop
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    if _attached_loop is None or _attached_loop.is_closed():
        app = QApplication.instance()
        if app is None:
            raise RuntimeError("asyncio in the views needs a QApplication")
        _attached_loop = qasync.QEventLoop(app, already_running=True)
    return _attached_loop


class DaemonExecutor(Executor):
    """A fixed pool of daemon threads ("viewWorker"). Unlike ThreadPoolExecutor, whose
    threads the interpreter joins at exit, a thread stuck in a call (a database that stopped
    answering) can never keep the application from exiting."""

    def __init__(self, threads: int):
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self.threads = [
            threading.Thread(target=self._work, name=f"viewWorker-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as error:  # handed to the awaiting coroutine
                future.set_exception(error)
            else:
                future.set_result(result)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._closed:
            raise RuntimeError("the view workers are shut down")
        future: Future[T] = Future()
        self._queue.put((future, functools.partial(fn, *args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self.threads:
            self._queue.put(None)
        if wait:
            for thread in self.threads:
                thread.join()


def detach_loop() -> None:
    """Forget a loop attached to a Qt event loop started elsewhere, so the application can
    run its own with asyncio.Runner (in a test process that showed windows before)."""
    global _attached_loop
    loop, _attached_loop = _attached_loop, None
    if loop is None or loop.is_closed():
        return
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.stop()  # qasync: marks it stopped; exiting a Qt loop that is not running is a no-op
    # qasync made it the running loop of this thread (asyncio's own private setter).
    asyncio.events._set_running_loop(None)
    loop.close()


def executor() -> DaemonExecutor:
    global _executor
    if _executor is None:
        _executor = DaemonExecutor(WORKER_THREADS)
    return _executor


class WorkerCalls:
    """The worker-thread calls a window's tasks are waiting for, so that closing the window
    can wait for them (bounded) before the database goes away. `in_worker` adds its call
    to the set named by `counting(calls)` in the awaiting task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()

    def add(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._discard)

    def _discard(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def active(self) -> int:
        """How many of the calls are still queued or inside a worker thread."""
        with self._lock:
            return sum(1 for f in self._futures if not f.done())

    def wait(self, timeout_s: float | None) -> bool:
        """Wait up to `timeout_s` (None: without limit) for the calls; True when all ended."""
        with self._lock:
            pending = [f for f in self._futures if not f.done()]
        if not pending:
            return True
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout_s)
        return not not_done


_counted_calls: contextvars.ContextVar[WorkerCalls | None] = contextvars.ContextVar(
    "counted_calls", default=None
)


def counting(calls: WorkerCalls) -> contextvars.Token[WorkerCalls | None]:
    """From now on, in the current task, `in_worker` adds its calls to `calls` (undo with
    `stop_counting(token)`)."""
    return _counted_calls.set(calls)


def stop_counting(token: contextvars.Token[WorkerCalls | None]) -> None:
    _counted_calls.reset(token)


def _held_call(
    fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], Future[T]]:
    """The call and its future in a list that only the GUI thread empties (`_run_held`)."""
    future: Future[T] = Future()
    return [functools.partial(fn, *args, **kwargs), future], future


def _run_held(held: list[Any], loop: asyncio.AbstractEventLoop) -> Any:
    """In a thread: run `held[0]()` into the future `held[1]`, then hand the references
    back to `loop`'s (the GUI) thread to be dropped there. The call may hold the last
    reference to a dialog closed meanwhile (a bound method, a closure, a progress
    callback), and a Qt widget deleted on another thread crashes the process.

    The result (plain data, often thousands of snapshots) is returned as well: the
    worker thread keeps it until its next call, so that freeing it rarely falls to the GUI
    thread (a stall of its own)."""
    result = None
    try:
        if held[1].set_running_or_notify_cancel():
            try:
                result = held[0]()
            except BaseException as error:  # handed to the awaiting coroutine, never lost
                held[1].set_exception(error)  # (its traceback may refer to a dialog)
            else:
                held[1].set_result(result)
    finally:
        try:
            loop.call_soon_threadsafe(held.clear)
        except RuntimeError:  # the loop is closed: the application is ending
            held.clear()
    return result


async def in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a worker thread; the awaiting coroutine resumes on the
    GUI thread with its result (or its exception)."""
    held, future = _held_call(fn, args, kwargs)
    queued = executor().submit(_run_held, held, asyncio.get_running_loop())
    # Shut down before it ran: the call never runs, and says so.
    queued.add_done_callback(lambda done: done.cancelled() and future.cancel())
    calls = _counted_calls.get()
    if calls is not None:
        calls.add(future)
    return await asyncio.wrap_future(future)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` on a daemon thread of its own ("detachedTaskThread") that
    nothing ever waits for: for a call that can hang (a Twilio request, a locked keyring, a
    file on a slow share). If the awaiting task is cancelled (its dialog closed), the
    thread finishes or times out on its own and its answer is dropped."""
    held, future = _held_call(fn, args, kwargs)
    thread = threading.Thread(
        target=_run_held,
        args=(held, asyncio.get_running_loop()),
        name="detachedTaskThread",
        daemon=True,
    )
    with _detached_lock:
        _detached_threads.append(thread)
    thread.start()
    return await asyncio.wrap_future(future)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Build many objects that live long (a first load of 100,000 batch calls, in a
    worker) without the cyclic garbage collector, then freeze them.

    While such a read grows, the collector walks every object built so far, holding the
    GIL, again and again (each full collection longer than the last): the window stalled
    60-130 ms several times. After the block, every object is frozen (left out of later
    full collections, as the rows live as long as the list) and collection resumes. The
    few cyclic leftovers of the read are frozen too, so use it once per large load, not
    per reload. Nested and concurrent blocks resume collection when the last one ends."""
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0:
                gc.freeze()
                if _collector_was_enabled:
                    gc.enable()


def detached_threads() -> list[threading.Thread]:
    """The `in_thread` threads still running (tests check that none is left)."""
    with _detached_lock:
        _detached_threads[:] = [t for t in _detached_threads if t.is_alive()]
        return list(_detached_threads)


class WorkerControl:
    """Progress and Cancel between a view and the service call it awaits in a thread.

    The service call gets `progress(done, total)` and `cancel=cancelled` (see `call`);
    progress reaches `on_progress` on the GUI thread. Used as `with WorkerControl(...) as
    control:` around the await: leaving the block (done, failed, or the task cancelled
    because the dialog closed) stops the progress reports and tells the call to stop.
    """

    def __init__(self, on_progress: Callable[[int, int], None] | None = None):
        self._loop = event_loop()
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._called = False
        self._open = True

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Callable[[], T]:
        """`fn(*args, progress=..., cancel=..., **kwargs)` as a function of no arguments,
        for `in_worker` / `in_thread`; `wait_finished` waits for it to return."""
        self._called = True

        def run() -> T:
            try:
                return fn(*args, progress=self.progress, cancel=self.cancelled, **kwargs)
            finally:
                self._finished.set()

        return run

    def progress(self, done: int, total: int) -> None:
        """Called in the worker thread."""
        if self._on_progress is None or not self._open:
            return
        try:
            self._loop.call_soon_threadsafe(self._deliver, int(done), int(total))
        except RuntimeError:  # the loop closed while the call ran
            pass

    def _deliver(self, done: int, total: int) -> None:
        if self._open and self._on_progress is not None:
            self._on_progress(done, total)

    def cancel(self) -> None:
        """Ask the call to stop (it raises its own "cancelled" error when it notices)."""
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait_finished(self, timeout_s: float) -> bool:
        """Block until the call returned (only when the application closes: a cancelled
        creation rolling back); True if it did within `timeout_s`, or was never called."""
        return not self._called or self._finished.wait(timeout_s)

    def __enter__(self) -> WorkerControl:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._open = False
        self._cancel.set()


def spawn(
    coroutine: Coroutine[Any, Any, Any],
    *,
    name: str = "",
    owner: QObject | None = None,
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    """Start `coroutine` on the GUI thread's loop and keep its task until it ends. An error
    is logged (never lost); with `owner`, the task is cancelled once the owner is deleted
    before it resumes (check `alive(owner)` after each await that can outlast it)."""
    task = event_loop().create_task(coroutine, name=name or None, context=context)
    _tasks.add(task)

    def finished(done: asyncio.Task[Any]) -> None:
        _tasks.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error("background task %s failed: %s", done.get_name(), error, exc_info=error)

    task.add_done_callback(finished)
    if owner is not None:
        connection = owner.destroyed.connect(lambda *_: task.cancel())

        def disconnect(_task: asyncio.Task[Any]) -> None:
            # Periodic work (a refresh every 200 ms) must not pile up connections.
            if isValid(owner):
                QObject.disconnect(connection)

        task.add_done_callback(disconnect)
    return task


def alive(owner: QObject) -> bool:
    """False once the Qt object is deleted (a window closed while its work ran)."""
    return isValid(owner)


def running_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in _tasks if not t.done()]


def worker_threads() -> list[threading.Thread]:
    """The worker threads alive (tests check that shutdown leaves none busy)."""
    return [t for t in threading.enumerate() if t.name.startswith("viewWorker")]


def shutdown(timeout_s: float = 3.0) -> bool:
    """Cancel every task and stop the worker threads, waiting `timeout_s` at most (a
    thread stuck in a call is left to finish on its own). True when all ended."""
    global _executor
    for task in list(_tasks):
        task.cancel()
    pool, _executor = _executor, None
    if pool is None:
        return True
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout_s
    for thread in pool.threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in pool.threads if t.is_alive()]
    if left:
        log.warning(
            "%d worker thread(s) still busy after %.1f s; not waiting", len(left), timeout_s
        )
    return not left
