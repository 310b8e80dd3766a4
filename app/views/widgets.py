"""Small widgets the views share.

`ElidedLabel` shows a text of any length (a 100-character batch call name, a summary of
thousands of duplicate rows) on one line that never widens its window: what does not fit
ends with "…", and the whole text is in the tooltip. `EmptyHint` says, over a table with
no row, why it is empty and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QSize, Qt, SignalInstance
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QLabel, QSizePolicy, QWidget

log = logging.getLogger(__name__)

#: The widest an elided label asks to be, in average characters: a window sized from its
#: contents' hints stays reasonable whatever the text.
HINT_CHARACTERS = 60


class ElidedLabel(QLabel):
    """A one-line plain-text label that elides instead of growing or wrapping.

    `text()` is the whole text; `shown_text()` is what is painted. The tooltip is the whole
    text when it is elided, or the explicit `tooltip` given to `setText`.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self._tooltip: str | None = None
        self.setTextFormat(Qt.TextFormat.PlainText)  # a name is never HTML
        self.setWordWrap(False)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def setText(self, text: str, tooltip: str | None = None) -> None:
        self._full = text
        self._tooltip = tooltip
        self._elide()

    def text(self) -> str:
        return self._full

    def clear(self) -> None:
        self.setText("")

    def shown_text(self) -> str:
        return super().text()

    def is_elided(self) -> bool:
        return self.shown_text() != self._full

    def sizeHint(self) -> QSize:
        """Room for the whole text, up to HINT_CHARACTERS (a layout with more room still
        gives it more), one line high."""
        metrics = self.fontMetrics()
        margins = self.contentsMargins()
        wanted = metrics.horizontalAdvance(self._full) + 2
        wanted = min(wanted, HINT_CHARACTERS * metrics.averageCharWidth())
        return QSize(
            wanted + margins.left() + margins.right(),
            metrics.height() + margins.top() + margins.bottom(),
        )

    def minimumSizeHint(self) -> QSize:
        """A few characters wide whatever the text: a long text cannot widen the window."""
        hint = self.sizeHint()
        return QSize(
            min(hint.width(), self.fontMetrics().horizontalAdvance("M…") * 3), hint.height()
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.updateGeometry()
            self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width)
        if shown != super().text():
            super().setText(shown)
        if self._tooltip is not None:
            self.setToolTip(self._tooltip)
        else:
            self.setToolTip(self._full if shown != self._full else "")


class EmptyHint(QLabel):
    """Why a table shows no row and what to do ("No recipient matches “zzzz”. Check the
    digits or the spelling, or clear the search."), centred over its empty area; hidden
    while it has rows. `text` is asked each time the table becomes empty; `when` are the
    signals after which to look again (default: the model's row signals; a model that
    empties itself before each new read passes the signal of a finished read instead, so
    the hint never flashes while rows are on their way)."""

    def __init__(
        self,
        table: QAbstractItemView,
        text: Callable[[], str],
        when: list[SignalInstance] | None = None,
    ):
        super().__init__(table.viewport())
        self._table = table
        self._text = text
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setProperty("role", "hint")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        model = table.model()
        signals = when or [model.rowsInserted, model.rowsRemoved, model.modelReset]
        for signal in signals:
            signal.connect(self.refresh)
        if when:  # rows arriving always hide it at once
            model.rowsInserted.connect(self.refresh)
        table.viewport().installEventFilter(self)
        if when:
            self.hide()  # until the first read says
        else:
            self.refresh()

    def refresh(self, *_args: object) -> None:
        empty = self._table.model().rowCount() == 0
        if empty:
            self.setText(self._text())
        self._place()
        self.setVisible(empty and bool(self.text()))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def _place(self) -> None:
        self.setGeometry(self._table.viewport().rect().adjusted(24, 24, -24, -24))
