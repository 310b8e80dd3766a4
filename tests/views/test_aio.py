"""asyncio on the GUI thread: work awaited in worker threads, callbacks back on the GUI
thread, bounded shutdown, and no database call from the GUI thread in the main window."""

from __future__ import annotations

import ast
import asyncio
import gc
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QObject

from app.views import aio, ask
from app.views.tasks import BackgroundTasks

#: The real one (the tests' `answers` replace ask.inform with a stand-in).
real_inform = ask.inform


def test_in_worker_runs_off_the_gui_thread_and_resumes_on_it(qtbot):
    seen: dict[str, str] = {}

    async def work() -> None:
        seen["worker"] = await aio.in_worker(lambda: threading.current_thread().name)
        seen["after"] = threading.current_thread().name

    task = aio.spawn(work(), name="probe")
    assert task in aio.running_tasks()  # referenced until it ends
    qtbot.waitUntil(task.done, timeout=5000)
    assert seen["worker"].startswith("viewWorker")
    assert seen["after"] == threading.main_thread().name
    assert task not in aio.running_tasks()


def test_a_failing_task_is_logged_not_lost(qtbot, caplog):
    async def broken() -> None:
        await aio.in_worker(lambda: 1 / 0)

    task = aio.spawn(broken(), name="broken")
    qtbot.waitUntil(task.done, timeout=5000)
    assert "background task broken failed" in caplog.text


def test_started_work_shows_its_result_and_progress_on_the_gui_thread(qtbot):
    tasks = BackgroundTasks()
    seen: list[tuple[object, str]] = []
    progress: list[tuple[int, int, str]] = []

    def service_call(progress, cancel) -> str:
        progress(1, 2)
        return threading.current_thread().name

    async def work() -> None:
        with aio.WorkerControl(
            lambda d, t: progress.append((d, t, threading.current_thread().name))
        ) as control:
            result = await aio.in_worker(control.call(service_call))
        seen.append((result, threading.current_thread().name))

    with qtbot.waitSignal(tasks.taskFinished, timeout=5000) as finished:
        tasks.start("probe", work())
        assert tasks.busy() and tasks.running("probe")  # at once: the indicator shows
    ((worker, gui),) = seen
    assert finished.args == ["probe"]
    assert worker.startswith("viewWorker") and gui == threading.main_thread().name
    assert progress == [(1, 2, threading.main_thread().name)]
    assert not tasks.busy() and tasks.worker_calls() == 0
    tasks.deleteLater()


def test_quiet_work_does_not_light_the_indicator(qtbot):
    tasks = BackgroundTasks()
    states: list[bool] = []
    tasks.busyChanged.connect(states.append)
    with qtbot.waitSignal(tasks.taskFinished, timeout=5000):
        tasks.start("refresh", aio.in_worker(time.sleep, 0.01), quiet=True)
        assert not tasks.busy() and tasks.busy(include_quiet=True)
    assert states == []
    tasks.deleteLater()


def test_tracking_marks_a_views_own_async_work_busy(qtbot):
    tasks = BackgroundTasks()
    states: list[bool] = []
    tasks.busyChanged.connect(states.append)

    async def own_work() -> None:
        async with tasks.tracking("mine"):
            await aio.in_worker(time.sleep, 0.05)

    with qtbot.waitSignal(tasks.taskFinished, timeout=5000) as finished:
        aio.spawn(own_work())
    assert finished.args == ["mine"] and states == [True, False]
    tasks.deleteLater()


def test_work_of_a_deleted_owner_is_cancelled_and_its_result_dropped(qtbot):
    tasks = BackgroundTasks()
    owner = QObject()
    release = threading.Event()
    shown: list[str] = []

    async def work() -> None:
        result = await aio.in_worker(lambda: release.wait(5) and "late answer")
        shown.append(result)

    with qtbot.waitSignal(tasks.taskFinished, timeout=5000):
        task = tasks.start("details", work(), owner=owner)
        owner.deleteLater()
        qtbot.waitUntil(lambda: not aio.alive(owner))
        release.set()
    assert task is not None and task.cancelled()
    assert shown == [] and not tasks.busy(include_quiet=True)
    tasks.deleteLater()


def test_shutdown_cancels_waits_for_worker_calls_and_refuses_new_work(qtbot):
    tasks = BackgroundTasks()
    shown: list[object] = []

    async def work() -> None:
        shown.append(await aio.in_worker(time.sleep, 0.2))

    tasks.start("slow", work())
    qtbot.waitUntil(lambda: tasks.worker_calls() == 1, timeout=5000)
    assert tasks.shutdown(5000)  # waited for the call inside the worker thread
    assert tasks.worker_calls() == 0
    late = work()
    assert tasks.start("late", late) is None  # never runs (and no "never awaited" warning)
    qtbot.waitUntil(lambda: not tasks.busy(include_quiet=True), timeout=5000)
    assert shown == []
    tasks.deleteLater()


def test_a_detached_call_is_never_waited_for(qtbot):
    tasks = BackgroundTasks()
    release = threading.Event()
    names: list[str] = []

    async def hanging() -> None:
        names.append(await aio.in_thread(lambda: release.wait(5) and "x"))

    tasks.start("keyring", hanging())
    qtbot.waitUntil(lambda: len(aio.detached_threads()) == 1, timeout=5000)
    assert aio.detached_threads()[0].name == "detachedTaskThread"
    started = time.monotonic()
    assert tasks.shutdown(5000)  # nothing to wait for: a detached call is not counted
    assert time.monotonic() - started < 1
    release.set()
    qtbot.waitUntil(lambda: not aio.detached_threads(), timeout=5000)
    qtbot.waitUntil(lambda: not tasks.busy(include_quiet=True), timeout=5000)
    assert names == []
    tasks.deleteLater()


def test_a_cancelled_control_stops_the_call_and_leaving_it_stops_progress(qtbot):
    steps: list[int] = []
    reported: list[int] = []

    def long_read(progress, cancel) -> int:
        for step in range(1000):
            if cancel():
                raise InterruptedError("cancelled")
            steps.append(step)
            progress(step, 1000)
            time.sleep(0.001)
        return len(steps)

    outcome: list[object] = []

    async def work(control: aio.WorkerControl) -> None:
        with control:
            try:
                outcome.append(await aio.in_worker(control.call(long_read)))
            except InterruptedError as error:
                outcome.append(error)

    control = aio.WorkerControl(lambda done, _total: reported.append(done))
    task = aio.spawn(work(control))
    qtbot.waitUntil(lambda: len(reported) >= 3, timeout=5000)
    control.cancel()
    qtbot.waitUntil(task.done, timeout=5000)
    assert isinstance(outcome[0], InterruptedError) and len(steps) < 1000
    assert control.wait_finished(1)
    count = len(reported)
    control.progress(999, 1000)  # after the block: dropped
    QCoreApplication.processEvents()
    assert len(reported) == count


def test_shutdown_never_waits_longer_than_its_limit_for_a_stuck_call():
    release = threading.Event()
    pool = aio.DaemonExecutor(1)
    pool.submit(release.wait, 30)
    queued = pool.submit(lambda: "never")
    started = time.monotonic()
    pool.shutdown(wait=False, cancel_futures=True)
    pool.threads[0].join(0.2)
    assert time.monotonic() - started < 2
    assert queued.cancelled()
    assert pool.threads[0].daemon  # a stuck call never keeps the process from exiting
    release.set()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_the_main_window_never_calls_the_database_on_the_gui_thread(
    open_main_window, context, seeded, qtbot, monkeypatch
):
    gui_calls: list[str] = []
    service, settings = context.service, context.settings

    def watch(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if threading.current_thread() is threading.main_thread():
                gui_calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in (
        "list",
        "find",
        "get",
        "list_agents",
        "list_from_numbers",
        "count_recipients",
        "recipients_page",
        "recipients_by_id",
        "history",
        "outcomes_since",
        "call_attempts",
    ):
        watch(service, name)
    watch(settings, "load")
    window = open_main_window()
    with qtbot.waitSignal(window.reloaded, timeout=5000):
        window.reload()
    window.mark_dirty(seeded["running"].id)
    qtbot.waitUntil(lambda: not window.tasks.busy(include_quiet=True), timeout=5000)
    dialog = window.open_create_dialog()
    qtbot.waitUntil(lambda: dialog.choices_loaded, timeout=5000)
    dialog.reject()
    settings = window.open_settings_dialog()
    qtbot.waitUntil(
        lambda: settings.settings_loaded and settings.agents_model.rowCount() > 0, timeout=5000
    )
    settings.reject()
    window.update_mode_label()
    details = window.open_details(seeded["running"].id)
    qtbot.waitUntil(lambda: details.recipient_model.rowCount() > 0, timeout=5000)
    with qtbot.waitSignal(details.attemptHistoryLoaded, timeout=5000):
        details.select_recipient(0)
    with qtbot.waitSignal(details.reloaded, timeout=5000):
        details.reload()
    details.recipient_model.refresh()
    qtbot.waitUntil(lambda: details.live_figures_shown, timeout=5000)
    qtbot.waitUntil(lambda: not window.tasks.busy(include_quiet=True), timeout=5000)
    details.close()
    assert gui_calls == []


@pytest.fixture(autouse=True)
def _no_pending_tasks(qtbot):
    yield
    qtbot.waitUntil(lambda: not aio.running_tasks(), timeout=5000)


def test_the_application_loop_is_qasync():
    import qasync

    loop = aio.event_loop()
    assert isinstance(loop, qasync.QEventLoop)
    assert asyncio.get_running_loop() is loop


@pytest.mark.timeout(60)  # with a modal exec() here, the loop stalls for good
def test_a_message_after_an_await_never_stalls_the_other_tasks(qtbot):
    """A modal exec() inside a task would run a nested event loop in which no other task
    can step: inform() opens the message and returns instead."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    ticks: list[int] = []

    async def ticking() -> None:
        for tick in range(5):
            await asyncio.sleep(0.01)
            ticks.append(tick)

    async def failing_action() -> str:
        await aio.in_worker(lambda: None)
        real_inform(None, "Pause not possible", "The database is unreachable.", warning=True)
        return "returned"

    other = aio.spawn(ticking())
    action = aio.spawn(failing_action())
    qtbot.waitUntil(lambda: action.done() and other.done(), timeout=5000)
    assert action.result() == "returned" and ticks == [0, 1, 2, 3, 4]
    (box,) = [w for w in QApplication.topLevelWidgets() if w.objectName() == "messageDialog"]
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.text() == "The database is unreachable."
    box.close()
    qtbot.waitUntil(lambda: not ask._open_messages)


@pytest.mark.parametrize("run_in", ["in_worker", "in_thread"])
def test_a_closed_views_last_reference_is_dropped_on_the_gui_thread(qtbot, run_in):
    """A call may hold the last reference to a dialog closed meanwhile: Qt must never
    delete it on the worker thread (that crashes the process)."""
    deleted_on: list[str] = []
    started, release = threading.Event(), threading.Event()

    class Dialog(QObject):
        def slow_read(self) -> int:
            started.set()
            release.wait(5)
            return 1

    dialog = Dialog()
    dialog.destroyed.connect(lambda *_: deleted_on.append(threading.current_thread().name))

    async def work(call) -> None:
        await getattr(aio, run_in)(call)

    running = [aio.spawn(work(dialog.slow_read))]
    del dialog  # from now on only the call refers to it
    qtbot.waitUntil(started.is_set, timeout=5000)
    running[0].cancel()  # the dialog was closed: its work is cancelled, the call still runs
    qtbot.waitUntil(running[0].done, timeout=5000)
    running.clear()  # (the task's CancelledError refers to the call too)
    assert deleted_on == []
    release.set()
    qtbot.waitUntil(lambda: deleted_on != [], timeout=5000)
    assert deleted_on == [threading.main_thread().name]


VIEWS = Path(aio.__file__).parent
#: What starts threads or runs work on them; in app.views only aio may use it (the
#: import-linter contract forbids threading, concurrent and queue there too).
THREAD_MACHINERY = {
    "submit",
    "run_in_executor",
    "to_thread",
    "QThread",
    "QThreadPool",
    "QRunnable",
    "QtConcurrent",
    "Thread",
    "ThreadPoolExecutor",
}


def test_views_run_their_background_work_only_through_aio():
    found = []
    for path in sorted(VIEWS.glob("*.py")):
        if path.name == "aio.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else None
            )
            if name in THREAD_MACHINERY:
                found.append(f"{path.name}:{node.lineno} {name}")
            if isinstance(node, ast.ImportFrom):
                found.extend(
                    f"{path.name}:{node.lineno} {alias.name}"
                    for alias in node.names
                    if alias.name in THREAD_MACHINERY
                )
    assert found == []


def test_no_view_asks_a_question_inside_its_async_work():
    """ask.ask and the file choosers run a modal loop: inside an asyncio task no other task
    could step meanwhile. They are asked in the slot, before the work starts."""
    found = []
    for path in sorted(VIEWS.glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "ask"
                    and node.func.attr != "inform"
                ):
                    found.append(f"{path.name}:{node.lineno} ask.{node.func.attr}")
    assert found == []


def test_periodic_work_of_an_owner_does_not_pile_up_connections(qtbot):
    from PySide6.QtCore import SIGNAL

    owner = QObject()
    destroyed = SIGNAL("destroyed(QObject*)")

    async def refresh() -> None:
        await asyncio.sleep(0)

    first = aio.spawn(refresh(), owner=owner)
    qtbot.waitUntil(first.done, timeout=5000)
    after_one = owner.receivers(destroyed)
    tasks = [aio.spawn(refresh(), owner=owner) for _ in range(50)]
    qtbot.waitUntil(lambda: all(t.done() for t in tasks), timeout=5000)
    assert owner.receivers(destroyed) == after_one


def test_a_large_load_builds_without_the_collector_and_freezes_what_it_built():
    """Full collections while a worker builds 100,000 rows stalled the window; the rows
    are built with the collector paused, then frozen; an inner or a concurrent block
    does not resume it early, and a collector disabled before stays disabled."""
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    entered, inner_done = threading.Event(), threading.Event()

    def concurrent() -> None:
        with aio.collector_paused():
            entered.set()
            inner_done.wait(5)

    with aio.collector_paused():
        assert not gc.isenabled()
        thread = threading.Thread(target=concurrent)
        thread.start()
        assert entered.wait(5)
        with aio.collector_paused():
            built = [[n] for n in range(1_000)]
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other block is still building
    inner_done.set()
    thread.join(5)
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(built)
    gc.disable()
    try:
        with aio.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
