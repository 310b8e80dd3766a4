"""QA automation finds every interactive widget, action and timer by a stable lowerCamel
objectName (docs/qa.md lists them)."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QLineEdit,
    QStatusBar,
    QTabWidget,
    QWidget,
)

from app.views.create_dialog import CreateDialog
from app.views.rename_dialog import RenameDialog
from app.views.settings_dialog import SettingsDialog

LOWER_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "qa.md"
#: Layout containers without a role of their own.
UNDOCUMENTED = {"centralWidget"}
INTERACTIVE = (
    QAbstractButton,
    QLineEdit,
    QComboBox,
    QAbstractSpinBox,
    QAbstractItemView,
    QTabWidget,
)
#: Qt's own parts of composite widgets (a combo box's line edit, a table's header...).
COMPOSITES = (QComboBox, QAbstractSpinBox, QAbstractItemView, QTabWidget, QLineEdit)


def qt_internal(widget: QWidget) -> bool:
    if widget.objectName().startswith("qt_"):
        return True
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, COMPOSITES) or parent.objectName().startswith("qt_"):
            return True
        if isinstance(parent, QDialog) and parent.objectName() in (
            "confirmDialog",
            "messageDialog",
        ):
            return True
        parent = parent.parentWidget()
    return False


def unnamed(root: QObject) -> list[str]:
    problems = []
    for widget in root.findChildren(QWidget):
        if (
            isinstance(widget, INTERACTIVE)
            and not qt_internal(widget)
            and not LOWER_CAMEL.match(widget.objectName())
        ):
            parent = widget.parentWidget()
            problems.append(
                f"{type(widget).__name__} {widget.objectName()!r} in "
                f"{type(parent).__name__} {parent.objectName() if parent else ''!r}"
            )
    for action in root.findChildren(QAction):
        if action.isSeparator() or not action.text() or action.menu() is not None:
            continue
        if not LOWER_CAMEL.match(action.objectName()):
            problems.append(f"QAction {action.text()!r} {action.objectName()!r}")
    for timer in root.findChildren(QTimer):
        if isinstance(timer.parent(), QStatusBar):  # the status bar's own message timer
            continue
        if not LOWER_CAMEL.match(timer.objectName()):
            parent = timer.parent()
            problems.append(
                f"QTimer {timer.objectName()!r} of {type(parent).__name__} "
                f"{parent.objectName() if parent else ''!r}"
            )
    return problems


def test_every_window_names_its_widgets_actions_and_timers(
    open_main_window, seeded, context, qtbot
):
    window = open_main_window()
    assert unnamed(window) == []
    details = window.open_details(seeded["running"].id)
    assert details.objectName() == "detailsDialog"
    assert unnamed(details) == []
    create = CreateDialog(context, window)
    qtbot.addWidget(create)
    create.show()  # closing a dialog never shown would leave its recheck timer running
    assert unnamed(create) == []
    settings = SettingsDialog(context, window)
    qtbot.addWidget(settings)
    assert unnamed(settings) == []
    assert sorted(a.objectName() for a in window.qactions.values()) == [
        "cancelAction",
        "deleteAction",
        "pauseAction",
        "reloadAction",
        "renameAction",
        "resumeAction",
        "retryAction",
    ]


def names_given(root: QObject) -> set[str]:
    """Every lowerCamel objectName in `root` and below, Qt's own parts left out."""
    names = {root.objectName()}
    for child in root.findChildren(QObject):
        name = child.objectName()
        if isinstance(child, QWidget) and qt_internal(child):
            continue
        if LOWER_CAMEL.match(name):
            names.add(name)
    return names - UNDOCUMENTED


def test_the_qa_guide_lists_every_object_name(open_main_window, seeded, context, qtbot):
    window = open_main_window()
    details = window.open_details(seeded["running"].id)
    create = CreateDialog(context, window)
    qtbot.addWidget(create)
    create.show()  # closing a dialog never shown would leave its recheck timer running
    settings = SettingsDialog(context, window)
    qtbot.addWidget(settings)
    rename = RenameDialog("Campaign running", window)
    qtbot.addWidget(rename)
    windows = (window, details, create, settings, rename)
    given = set().union(*(names_given(w) for w in windows))
    assert {"mainWindow", "searchField", "createConfirmButton", "detailsTabs"} <= given
    guide = GUIDE.read_text(encoding="utf-8")
    section = guide[guide.index("## 9. Object names") : guide.index("## 10.")]
    listed = set(re.findall(r"`([a-z][A-Za-z0-9]*)`", section))
    assert sorted(given - listed) == [], "add these names to docs/qa.md, section 9"
