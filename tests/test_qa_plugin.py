"""The `batchcalls` pytest plugin's guards fail a test that leaves a window, a detached
thread or a running timer behind, its `answers` stand-in answers for the supervisor,
`launched` stops the engine it started; and this project's suite gets the plugin exactly
once, with or without the entry point. Each runs in a pytest of its own, as a QA suite
would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

import app.testing.guards
from app.views import ask
from app.views import aio
from app.views.tasks import BackgroundTasks

KEEP = []


def test_a_window_left_open_fails(no_window_left):
    window = QWidget()
    window.setObjectName("forgottenWindow")
    window.show()
    KEEP.append(window)


def test_a_detached_task_left_running_fails(monkeypatch, no_thread_left):
    # (monkeypatch first: it is undone after the guard ran, with a short grace)
    monkeypatch.setattr(app.testing.guards, "THREAD_GRACE_S", 0.1)
    tasks = BackgroundTasks()
    tasks.start("slowKeyring", aio.in_thread(time.sleep, 1))
    KEEP.append(tasks)


def test_answers_answers_every_question(answers):
    assert ask.ask(None, "Delete batch call", "Delete it?") is True
    answers.confirm = False
    assert ask.ask(None, "Cancel batch call", "Cancel it?") is False
    ask.inform(None, "Refused", "Not now.", warning=True)
    answers.open_path = "/tmp/recipients.csv"
    assert ask.open_file(None, "Open", "CSV (*.csv)") == "/tmp/recipients.csv"
    assert ask.save_file(None, "Save", "out.csv", "CSV (*.csv)") is None
    assert [q[0] for q in answers.questions] == ["Delete batch call", "Cancel batch call"]
    assert answers.messages == [("Refused", "Not now.", True)]


def test_launched_runs_the_engine_and_a_clean_test_passes(launched, qtbot):
    assert launched.engine is not None and launched.engine.isRunning()
    assert launched.window.isVisible() and launched.window.loaded
    assert launched.context.service.list_agents()[0].name == "Demo message"
    KEEP.append(launched.engine)


def test_the_engine_was_stopped_after_the_previous_test():
    assert not KEEP[-1].isRunning()


def test_a_timer_left_running_fails(no_timer_left):
    window = QWidget()  # never shown, or closed: still there
    window.setObjectName("closedWindow")
    timer = QTimer(window)
    timer.setObjectName("forgottenTimer")
    timer.start(60_000)
    KEEP.append(window)
"""


def run_pytest(cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(QT_QPA_PLATFORM="offscreen", **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_guards_fail_leaks_and_the_fixtures_work(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nqt_api = pyside6\n", encoding="utf-8")
    (tmp_path / "test_plugin.py").write_text(SUITE, encoding="utf-8")
    result = run_pytest(tmp_path, "-rA")
    output = result.stdout + result.stderr
    assert "6 passed, 3 errors" in result.stdout, output  # errors: at teardown
    assert "ERROR test_plugin.py::test_a_window_left_open_fails" in result.stdout
    assert "windows left open: ['forgottenWindow']" in result.stdout
    assert "ERROR test_plugin.py::test_a_detached_task_left_running_fails" in result.stdout
    assert "detached tasks still running: 1" in result.stdout
    assert "ERROR test_plugin.py::test_a_timer_left_running_fails" in result.stdout
    assert "timers still running: ['forgottenTimer of closedWindow']" in result.stdout


def test_this_suite_registers_the_plugin_once_without_the_entry_point():
    # As in a virtualenv installed before the entry point existed: tests/conftest.py
    # registers the plugin itself (and with the entry point, it does not: every run).
    result = run_pytest(
        ROOT,
        "-q",
        "-p",
        "pytestqt.plugin",
        "-p",
        "pytest_timeout",
        "tests/views/test_qa_doc.py",
        "tests/views/test_actions.py::test_action_refused_because_status_changed_meanwhile",
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
