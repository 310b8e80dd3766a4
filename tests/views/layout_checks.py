"""Checks of what a supervisor would see as broken layout: text cut off by its label."""

from __future__ import annotations

from PySide6.QtGui import Qt
from PySide6.QtWidgets import QLabel, QWidget

from app.views.widgets import ElidedLabel


def clipped_labels(root: QWidget) -> list[str]:
    """The visible labels under `root` whose text does not fit the space they were given
    (cut off at the side, or wrapped into more lines than their height shows). An elided
    label fits by construction when what it paints fits."""
    problems = []
    for label in root.findChildren(QLabel):
        if not label.isVisible() or not label.text() or Qt.mightBeRichText(label.text()):
            continue
        shown = label.shown_text() if isinstance(label, ElidedLabel) else label.text()
        if label.buddy() is not None:  # "&Name:" is drawn "Name:" (a mnemonic)
            shown = shown.replace("&&", "\0").replace("&", "").replace("\0", "&")
        metrics = label.fontMetrics()
        room = label.contentsRect()
        name = label.objectName() or repr(shown[:30])
        if label.wordWrap():
            needed = label.heightForWidth(label.width())
            if label.height() + 1 < needed:
                problems.append(f"{name}: {label.height()} px high, needs {needed}")
        elif "\n" not in shown:
            width = metrics.horizontalAdvance(shown)
            if width > room.width() + 1:
                problems.append(f"{name}: {room.width()} px wide, needs {width}")
            if room.height() + 1 < metrics.height():
                problems.append(f"{name}: {room.height()} px high, needs {metrics.height()}")
    return problems


def assert_nothing_clipped(root: QWidget) -> None:
    """For `qtbot.waitUntil(lambda: assert_nothing_clipped(w))`: the layout settles on the
    next turns of the event loop, and a failure names the labels that are cut off."""
    problems = clipped_labels(root)
    assert not problems, f"text cut off: {problems}"
