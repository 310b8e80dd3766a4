"""Checks a GUI test runs around itself: Qt's model tester on several models at once, and
no window or detached background thread left behind."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QObject, QTimer
from PySide6.QtWidgets import QApplication, QStatusBar

from app.views.aio import detached_threads

#: How long a test's detached tasks (a dialog's keyring, network or file work) get, in all,
#: to end after the test.
THREAD_GRACE_S = 5.0


class ModelChecks:
    """qtmodeltester for several models at once (pytest-qt's fixture keeps only its last
    check). Attach a model before its first change: `model_checks.check(window.model)`."""

    def __init__(self, config: Any):
        self._config = config
        self._testers: list[Any] = []

    def check(self, model: QAbstractItemModel) -> None:
        from pytestqt.modeltest import ModelTester  # needs pytest-qt's Qt set up first

        tester = ModelTester(self._config)  # type: ignore[no-untyped-call]
        tester.check(model)  # type: ignore[no-untyped-call]
        self._testers.append(tester)

    def cleanup(self) -> None:
        for tester in self._testers:
            tester._cleanup()
        self._testers.clear()


def close_visible_windows(app: QApplication) -> list[str]:
    """Close every visible top-level window; return their names (empty: none was left)."""
    QApplication.processEvents()
    visible = [w.objectName() or type(w).__name__ for w in app.topLevelWidgets() if w.isVisible()]
    for widget in app.topLevelWidgets():
        if widget.isVisible():
            widget.close()
    return visible


def timers_still_active(app: QApplication) -> list[str]:
    """The QTimers still running in any window (open, or closed but not deleted) or
    parented to the application: "timerName of parentName". A status bar's own message
    timer and Qt's internal ones ("qt_...") are not the application's."""
    roots: list[QObject] = [app, *app.topLevelWidgets()]
    active = []
    for root in roots:
        for timer in root.findChildren(QTimer):
            parent = timer.parent()
            if not timer.isActive() or isinstance(parent, QStatusBar):
                continue
            if timer.objectName().startswith("qt_"):
                continue
            owner = parent.objectName() or type(parent).__name__ if parent else "nothing"
            active.append(f"{timer.objectName() or 'an unnamed QTimer'} of {owner}")
    return sorted(set(active))


def threads_still_running(grace_s: float | None = None) -> int:
    """Wait up to `grace_s` (THREAD_GRACE_S) in all for the detached tasks to end; return
    how many did not."""
    deadline = time.monotonic() + (THREAD_GRACE_S if grace_s is None else grace_s)
    for thread in detached_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    QApplication.processEvents()  # their (dropped) results, routed on the GUI thread
    return len(detached_threads())
