"""Starting the desktop application: a fresh database gets the demo agent and number, the
engine starts and stops with the window, and a database that cannot be opened says why."""

from __future__ import annotations

import argparse
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.views.app import run_gui
from app.views.context import DEMO_AGENT_NAME, build_context, ensure_demo_defaults
from app.views.main_window import MainWindow


def close_main_window_when_dialing(seen: dict, deadline_s: float = 15.0) -> None:
    """Runs inside run_gui's event loop: note what the window shows, then close it; after
    `deadline_s` it closes whatever is open (the test then fails instead of hanging)."""
    deadline = time.monotonic() + deadline_s

    def check() -> None:
        late = time.monotonic() > deadline
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible() and widget.loaded:
                seen["engine"] = widget.engine_label.text()
                seen["mode"] = widget.mode_label.text()
                if seen["engine"] == "Engine: dialing" or late:
                    widget.close()
                    return
        if late:
            seen["late"] = f"no loaded main window after {deadline_s} s"
            QApplication.quit()
            return
        QTimer.singleShot(20, check)

    QTimer.singleShot(20, check)


def test_run_gui_on_a_fresh_database(qapp, database_url):
    seen: dict = {}
    close_main_window_when_dialing(seen)
    code = run_gui(argparse.Namespace(database_url=database_url, verbose=False))
    assert code == 0
    assert seen == {"engine": "Engine: dialing", "mode": "Simulation mode: no real calls"}
    context = build_context(database_url)
    try:
        assert [a.name for a in context.service.list_agents()] == [DEMO_AGENT_NAME]
        (number,) = context.service.list_from_numbers()
        assert number.label == "Demo line" and number.source == "simulated"
        assert not ensure_demo_defaults(context.service)  # only on a fresh database
    finally:
        context.close()
    assert not [w for w in QApplication.topLevelWidgets() if w.isVisible()]


def test_run_gui_explains_a_database_it_cannot_open(answers, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    url = f"sqlite:///{blocker / 'batchcalls.sqlite3'}"
    assert run_gui(argparse.Namespace(database_url=url, verbose=False)) == 1
    ((title, text, warning),) = answers.messages
    assert title == "Batch Calls cannot start" and warning
    assert "is a file, not a folder" in text and str(blocker) in text
    assert "--database-url" in text


def test_run_gui_refuses_a_damaged_database_and_says_what_to_do(answers, tmp_path):
    from tests.models.test_sqlite_file import corrupt_recipients_table, make_batch

    path = tmp_path / "batchcalls.sqlite3"
    make_batch(f"sqlite:///{path}")
    corrupt_recipients_table(path)
    assert run_gui(argparse.Namespace(database_url=f"sqlite:///{path}", verbose=False)) == 1
    ((title, text, warning),) = answers.messages
    assert title == "Batch Calls cannot start" and warning
    assert str(path) in text and "damaged" in text and "restore a backup" in text
