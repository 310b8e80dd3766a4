"""Every modal question the application asks goes through this module.

Views call `ask.ask(...)`, `ask.inform(...)`, `ask.open_file(...)` and `ask.save_file(...)`
through the module (never `from app.views.ask import ask`), so a test can monkeypatch one
function and answer for the supervisor without a blocking dialog.

`inform` may be called from a view's async method (a service call failed): there it opens
the message window-modal and returns, because a modal `exec()` inside an asyncio task
runs a nested event loop in which qasync cannot step any other task (the application
would stall). `ask` and the file choosers return an answer, so they are called from plain
slots only, before any background work starts.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

log = logging.getLogger(__name__)

#: Messages shown without a parent from inside a task, kept until they are closed.
_open_messages: set[QMessageBox] = set()


def inside_task() -> bool:
    """True while an asyncio task (a view's async method) is running on this thread."""
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no event loop running here
        return False


def ask(
    parent: QWidget | None,
    title: str,
    text: str,
    *,
    confirm: str = "OK",
    cancel: str = "Cancel",
    destructive: bool = False,
) -> bool:
    """A yes/no confirmation; True when the supervisor chose `confirm`."""
    box = QMessageBox(parent)
    box.setObjectName("confirmDialog")
    box.setIcon(QMessageBox.Icon.Warning if destructive else QMessageBox.Icon.Question)
    box.setWindowTitle(title)
    box.setText(text)
    yes = box.addButton(confirm, QMessageBox.ButtonRole.AcceptRole)
    yes.setObjectName("confirmButton")
    no = box.addButton(cancel, QMessageBox.ButtonRole.RejectRole)
    no.setObjectName("confirmCancelButton")
    # A destructive question defaults to the safe answer: Enter must not delete.
    box.setDefaultButton(no if destructive else yes)
    box.setEscapeButton(no)
    box.exec()
    return box.clickedButton() is yes


def inform(parent: QWidget | None, title: str, text: str, *, warning: bool = False) -> None:
    """A message the supervisor must read (an action refused, a file that cannot be used)."""
    box = QMessageBox(parent)
    box.setObjectName("messageDialog")
    box.setIcon(QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(text)
    if not inside_task():
        box.exec()
        return
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if parent is None:
        _open_messages.add(box)
        box.finished.connect(lambda _result: _open_messages.discard(box))
    box.open()


def open_file(parent: QWidget | None, title: str, name_filter: str) -> str | None:
    """A file to read, or None when the supervisor cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, title, "", name_filter)
    return path or None


def save_file(
    parent: QWidget | None, title: str, suggested_name: str, name_filter: str
) -> str | None:
    """Where to write a file, or None when the supervisor cancelled."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggested_name, name_filter)
    return path or None
