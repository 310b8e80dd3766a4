"""asyncio on the GUI thread: work awaited in worker threads, callbacks back on the GUI
thread, bounded shutdown, and no database call from the GUI thread in the main window."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.views import aio
from app.views.tasks import TaskRunner


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


def test_task_runner_delivers_results_and_progress_on_the_gui_thread(qtbot):
    runner = TaskRunner()
    progress: list[tuple[int, int, str]] = []
    results: list[tuple[object, str]] = []

    def fn(control):
        control.progress(1, 2)
        return threading.current_thread().name

    with qtbot.waitSignal(runner.taskFinished, timeout=5000):
        runner.submit(
            "probe",
            fn,
            on_done=lambda r: results.append((r, threading.current_thread().name)),
            on_progress=lambda d, t: progress.append((d, t, threading.current_thread().name)),
        )
        assert runner.busy() and runner.running("probe")
    ((worker, gui),) = results
    assert worker.startswith("viewWorker") and gui == threading.main_thread().name
    assert progress == [(1, 2, threading.main_thread().name)]
    assert not runner.busy() and runner.pool.activeThreadCount() == 0
    runner.deleteLater()


def test_tracking_marks_a_views_own_async_work_busy(qtbot):
    runner = TaskRunner()
    states: list[bool] = []
    runner.busyChanged.connect(states.append)

    async def own_work() -> None:
        async with runner.tracking("mine"):
            await aio.in_worker(time.sleep, 0.05)

    with qtbot.waitSignal(runner.taskFinished, timeout=5000) as finished:
        aio.spawn(own_work())
    assert finished.args == ["mine"] and states == [True, False]
    runner.deleteLater()


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
        "history",
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
    qtbot.waitUntil(lambda: not window.tasks.busy(include_quiet=True), timeout=5000)
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
