"""The desktop's creation is all or nothing too: Cancel in the create dialog, the window
closing, or a SIGTERM to the application while recipients are being stored leave nothing
(SPEC sections 3 and 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from sqlalchemy import func, select

from app.models.schema import BatchCall, Recipient
from app.services import batch_creation
from app.views.create_dialog import CreateDialog
from tests.views.test_create_dialog import big_csv, load, text

ROOT = Path(__file__).resolve().parents[2]
ROWS = 40_000


@pytest.fixture
def small_chunks(monkeypatch):
    """Many short transactions, so the test can act while recipients are being stored."""
    monkeypatch.setattr(batch_creation, "INSERT_CHUNK", 200)
    monkeypatch.setattr(batch_creation, "COMMIT_ROWS", 200)


@pytest.fixture
def open_create(qtbot, context, model_checks):
    def opener() -> CreateDialog:
        dialog = CreateDialog(context)
        qtbot.addWidget(dialog)
        model_checks.check(dialog.rejected_model)
        dialog.show()
        return dialog

    return opener


def stored(context) -> tuple[int, int]:
    """(batch calls, recipients) in the database."""
    with context.sessions() as session:
        batches = session.scalar(select(func.count()).select_from(BatchCall)) or 0
        recipients = session.scalar(select(func.count()).select_from(Recipient)) or 0
    return int(batches), int(recipients)


def start_creating(dialog: CreateDialog, context, qtbot, path, answers) -> None:
    load(dialog, qtbot, path, answers)
    dialog.name_field.setText("Interrupted")
    dialog.findChild(QPushButton, "createConfirmButton").click()
    # Some recipients are committed, the rest are still to come.
    qtbot.waitUntil(lambda: 0 < stored(context)[1] < ROWS, timeout=20_000)
    (partial,) = context.service.list()
    assert partial.status_display == "Importing…"


def test_cancel_while_storing_removes_the_partial_batch_call(
    open_create, context, tmp_path, answers, qtbot, small_chunks
):
    path = tmp_path / "big.csv"
    big_csv(path, ROWS)
    dialog = open_create()
    start_creating(dialog, context, qtbot, path, answers)
    qtbot.mouseClick(dialog.findChild(QPushButton, "createCancelButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: text(dialog, "createProblemsLabel").startswith("Creation cancelled"))
    assert stored(context) == (0, 0)
    assert dialog.isVisible()


def test_closing_the_window_while_storing_leaves_nothing(
    open_main_window, context, tmp_path, answers, qtbot, small_chunks
):
    path = tmp_path / "big.csv"
    big_csv(path, ROWS)
    window = open_main_window()
    dialog = window.open_create_dialog()
    start_creating(dialog, context, qtbot, path, answers)
    window.close()  # waits (bounded) for the creation to roll back
    assert stored(context) == (0, 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "moment"),
    [
        (signal.SIGINT, "database schema up to date"),  # start-up, no window yet
        (signal.SIGTERM, "telephony provider"),  # the engine's first tick: all running
    ],
)
def test_a_stop_signal_closes_the_application_with_one_line(tmp_path, signum, moment):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    env.pop("BATCHCALLS_DATABASE_URL", None)
    database = f"sqlite:///{tmp_path / 'gui.sqlite3'}"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--database-url", database],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    for line in process.stderr:
        lines.append(line)
        if moment in line or time.monotonic() > deadline:
            break
    process.send_signal(signum)
    try:
        _, rest = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()  # never leave it running for the tests after this one
        process.communicate()
        raise
    err = "".join(lines) + rest
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"batchcalls: interrupted ({signum.name}): the window was closed."
    )
