"""How statuses and progress look: status chips (colour *and* a symbol and the word, never
colour alone), the reason line, and the segmented progress bar (completed, no answer,
failed, still open), in light and dark palettes alike.

The list's delegate and the details dialog draw from the same tables, so a Failed batch
call looks the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.models.snapshots import BatchCallSnapshot, SendType
from app.models.status import BatchStatus, RecipientStatus
from app.views import formatting


@dataclass(frozen=True)
class Chip:
    symbol: str
    light: tuple[str, str]  # (fill, text) on a light palette
    dark: tuple[str, str]  # (fill, text) on a dark palette


#: One chip per status: the symbol and the word say it without the colour.
CHIPS: dict[BatchStatus, Chip] = {
    BatchStatus.SCHEDULED: Chip("◷", ("#dbe8fb", "#1c4587"), ("#1f3a60", "#c9dcfb")),
    BatchStatus.PENDING: Chip("…", ("#e6e6e6", "#3a3a3a"), ("#3a3a3a", "#dddddd")),
    BatchStatus.RUNNING: Chip("▶", ("#d5f0e0", "#14532d"), ("#174d30", "#c5f2d6")),
    BatchStatus.PAUSED: Chip("‖", ("#fdf0c8", "#6b4a00"), ("#5c4700", "#fbe7a6")),
    BatchStatus.COMPLETED: Chip("✔", ("#d1ecf1", "#0c4a57"), ("#164652", "#c8eef5")),
    BatchStatus.CANCELLED: Chip("⊘", ("#ececec", "#555555"), ("#444444", "#d0d0d0")),
    BatchStatus.FAILED: Chip("✖", ("#fadbd8", "#8a1c12"), ("#6b1d16", "#ffd2cc")),
}

#: The progress bar's segments, left to right, and their colours (light, dark).
SEGMENTS: tuple[tuple[RecipientStatus, str, str], ...] = (
    (RecipientStatus.COMPLETED, "#2e9e5b", "#4cc27f"),
    (RecipientStatus.NO_ANSWER, "#e0a21b", "#f0b93c"),
    (RecipientStatus.FAILED, "#d23f31", "#f06a5c"),
)
TRACK = ("#e3e6ea", "#4a4e55")
#: The outcomes, in the bar's order.
TERMINAL_ORDER = tuple(status for status, _light, _dark in SEGMENTS)


#: Text with a meaning, (light, dark): the colours resources/style.qss and style-dark.qss
#: give labels of the same roles, for text a model or a painter colours itself.
TONES = {
    "error": ("#b3261e", "#f28b82"),
    "ok": ("#1e7b34", "#81c995"),
    "muted": ("#6b6b6b", "#9aa0a6"),
}


def tone(name: str, palette: QPalette) -> QColor:
    light, dark = TONES[name]
    return QColor(dark if is_dark(palette) else light)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


#: A recipient's status as a dot of colour beside its word (light, dark): the outcomes in
#: the progress bar's colours, the waiting ones muted, a skipped or expired one grey.
RECIPIENT_DOTS: dict[RecipientStatus, tuple[str, str]] = {
    RecipientStatus.PENDING: ("#b0b4ba", "#6f747c"),
    RecipientStatus.QUEUED: ("#8fb3e8", "#4f78b8"),
    RecipientStatus.IN_PROGRESS: ("#3c8ce0", "#6aaaf0"),
    RecipientStatus.COMPLETED: (SEGMENTS[0][1], SEGMENTS[0][2]),
    RecipientStatus.NO_ANSWER: (SEGMENTS[1][1], SEGMENTS[1][2]),
    RecipientStatus.FAILED: (SEGMENTS[2][1], SEGMENTS[2][2]),
    RecipientStatus.WAITING_RETRY: ("#c58af0", "#b48ae0"),
    RecipientStatus.DO_NOT_CALL: ("#7a7a7a", "#9a9a9a"),
    RecipientStatus.EXPIRED: ("#7a7a7a", "#9a9a9a"),
}
_dot_icons: dict[tuple[RecipientStatus, bool], QIcon] = {}


def recipient_status_icon(status: RecipientStatus, palette: QPalette) -> QIcon:
    """A round dot in the status's colour, shown beside its word (never instead of it)."""
    dark = is_dark(palette)
    key = (status, dark)
    if key not in _dot_icons:
        light_color, dark_color = RECIPIENT_DOTS[status]
        pixmap = QPixmap(12, 12)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(dark_color if dark else light_color))
        painter.drawEllipse(QRectF(1, 1, 10, 10))
        painter.end()
        _dot_icons[key] = QIcon(pixmap)
    return _dot_icons[key]


def chip_text(status: BatchStatus) -> str:
    """ "✔ Completed": the symbol and the word."""
    return f"{CHIPS[status].symbol} {status.display_name}"


def chip_colors(status: BatchStatus, palette: QPalette) -> tuple[QColor, QColor]:
    fill, text = CHIPS[status].dark if is_dark(palette) else CHIPS[status].light
    return QColor(fill), QColor(text)


def chip_style_sheet(status: BatchStatus, palette: QPalette) -> str:
    """The same chip for a QLabel (the details header)."""
    fill, text = chip_colors(status, palette)
    return (
        f"QLabel {{ background: {fill.name()}; color: {text.name()}; border-radius: 9px; "
        "padding: 2px 10px; font-weight: 600; }"
    )


def paint_chip(painter: QPainter, rect: QRect, status: BatchStatus, palette: QPalette) -> None:
    fill, text = chip_colors(status, palette)
    label = chip_text(status)
    metrics = painter.fontMetrics()
    width = min(rect.width() - 4, metrics.horizontalAdvance(label) + 16)
    height = min(rect.height() - 4, metrics.height() + 6)
    chip = QRectF(rect.x() + 4, rect.y() + (rect.height() - height) / 2, width, height)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawRoundedRect(chip, height / 2, height / 2)
    painter.setPen(text)
    painter.drawText(chip, Qt.AlignmentFlag.AlignCenter, label)
    painter.restore()


def segments(snapshot: BatchCallSnapshot) -> list[tuple[RecipientStatus, int]]:
    """(status, count) of each coloured segment, left to right (the rest is open)."""
    return [(status, snapshot.counts.get(status, 0)) for status, _light, _dark in SEGMENTS]


def paint_segmented_bar(
    painter: QPainter, rect: QRectF, snapshot: BatchCallSnapshot, palette: QPalette
) -> None:
    """Completed, no answer and failed side by side on the track of what is still open:
    "100% (40/40)" with 7 failures shows a red part, never one all-green bar."""
    dark = is_dark(palette)
    radius = rect.height() / 2
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(TRACK[1] if dark else TRACK[0]))
    painter.drawRoundedRect(rect, radius, radius)
    total = snapshot.total_recipients
    if total:
        painter.setClipRect(rect)
        x = rect.x()
        for status, light, dark_color in SEGMENTS:
            count = snapshot.counts.get(status, 0)
            if not count:
                continue
            width = rect.width() * count / total
            painter.setBrush(QColor(dark_color if dark else light))
            painter.drawRect(QRectF(x, rect.y(), width, rect.height()))
            x += width
    painter.restore()


def status_reason(snapshot: BatchCallSnapshot) -> str:
    """Why nothing is being dialed (or why it failed), in the supervisor's words: the
    details' reason banner ("" when it is dialing or done)."""
    s = snapshot
    if s.status is BatchStatus.FAILED:
        return f"Failed: {s.failure_reason or 'no reason was recorded.'}"
    if s.waiting_reason:
        return s.waiting_reason
    if s.status is BatchStatus.SCHEDULED:
        if s.send_type is SendType.SCHEDULE and s.scheduled_at:
            when = formatting.local_time(s.scheduled_at, formatting.zone_named(s.timezone))
            return f"Scheduled: starts at {when} ({s.timezone})."
        return "Scheduled: the worker picks it up within a minute."
    if s.status is BatchStatus.PENDING:
        return "Recipients are still being stored; it is scheduled when that finishes."
    if s.status is BatchStatus.PAUSED:
        return "Paused: no new calls are placed until it is resumed."
    return ""


def reason_line(snapshot: BatchCallSnapshot) -> str:
    """The line under its name in the list: why a running one is not dialing ("Waiting:
    …"), why it failed, or what a scheduled, pending or paused one waits for ("" if
    none)."""
    if snapshot.status is BatchStatus.RUNNING:
        return f"Waiting: {snapshot.waiting_reason}" if snapshot.waiting_reason else ""
    if snapshot.status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED):
        return ""
    return status_reason(snapshot)


def paint_cell_background(
    delegate: QStyledItemDelegate,
    painter: QPainter,
    option: QStyleOptionViewItem,
    index: QModelIndex | QPersistentModelIndex,
) -> str:
    """The cell's background as the style draws it (selection, alternating rows), no
    text; returns the text the style would have drawn."""
    delegate.initStyleOption(option, index)
    text = option.text
    option.text = ""
    widget = option.widget
    style = widget.style() if widget is not None else QApplication.style()
    style.drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, widget)
    return text


def paint_two_lines(
    painter: QPainter,
    rect: QRect,
    first: str,
    second: str,
    first_color: QColor,
    second_color: QColor,
) -> None:
    """`first` on the top line and, smaller, `second` under it, each elided to the width;
    `first` alone is centred in the height."""
    metrics = painter.fontMetrics()
    line = metrics.height()
    top = rect.y() if second else rect.y() + (rect.height() - line) // 2
    painter.setPen(first_color)
    painter.drawText(
        QRect(rect.x(), top, rect.width(), line),
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        metrics.elidedText(first, Qt.TextElideMode.ElideRight, rect.width()),
    )
    if not second:
        return
    small = QFont(painter.font())
    small.setPointSizeF(max(7.0, small.pointSizeF() * 0.9))
    painter.setFont(small)
    painter.setPen(second_color)
    small_metrics = painter.fontMetrics()
    painter.drawText(
        QRect(rect.x(), top + line + 1, rect.width(), small_metrics.height()),
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        small_metrics.elidedText(second, Qt.TextElideMode.ElideRight, rect.width()),
    )


class BatchCallDelegate(QStyledItemDelegate):
    """Paints the list's cells that are more than text: the name with its reason line,
    the status chip, the segmented progress bar with its figures, and the "⋮" button.
    Only rows on screen are painted, so this Python runs for a screenful, never per row."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("batchCallDelegate")

    def initStyleOption(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        from app.views.batch_model import Column

        super().initStyleOption(option, index)
        if index.column() == Column.TOTAL:
            option.displayAlignment = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        elif index.column() == Column.ACTIONS:
            option.displayAlignment = Qt.AlignmentFlag.AlignCenter

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        size = super().sizeHint(option, index)
        return QSize(size.width(), row_height(option.fontMetrics.height()))

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        from app.views.batch_model import Column, snapshot_at

        snapshot = snapshot_at(index)
        column = index.column()
        if snapshot is None or column not in (Column.NAME, Column.STATUS, Column.PROGRESS):
            super().paint(painter, option, index)
            return
        paint_cell_background(self, painter, option, index)
        rect = option.rect.adjusted(6, 2, -6, -2)
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        painter.save()
        if column == Column.NAME:
            self._paint_name(painter, rect, snapshot, text_color, selected, palette)
        elif column == Column.STATUS:
            paint_chip(painter, rect, snapshot.status, palette)
        else:
            line = painter.fontMetrics().height()
            painter.setPen(text_color)
            painter.drawText(
                QRect(rect.x(), rect.y(), rect.width(), line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                formatting.progress_text(snapshot),
            )
            bar = QRectF(rect.x(), rect.y() + line + 4, rect.width(), 7)
            paint_segmented_bar(painter, bar, snapshot, palette)
        painter.restore()

    @staticmethod
    def _paint_name(
        painter: QPainter,
        rect: QRect,
        snapshot: BatchCallSnapshot,
        text_color: QColor,
        selected: bool,
        palette: QPalette,
    ) -> None:
        muted = QColor(text_color)
        if not selected:
            muted = palette.color(QPalette.ColorRole.PlaceholderText)
            if snapshot.status is BatchStatus.FAILED:
                muted = chip_colors(BatchStatus.FAILED, palette)[1]
                if is_dark(palette):
                    muted = QColor("#ff9a8f")
        paint_two_lines(painter, rect, snapshot.name, reason_line(snapshot), text_color, muted)

    def helpEvent(self, event, view, option, index):  # type: ignore[no-untyped-def]
        """Tooltips from the snapshot (the cells hold none: they are read only on hover)."""
        from PySide6.QtWidgets import QToolTip

        from app.views.batch_model import Column, snapshot_at

        snapshot = snapshot_at(index)
        if snapshot is None:
            return super().helpEvent(event, view, option, index)
        column = index.column()
        text = ""
        if column == Column.NAME:
            text = snapshot.name + (f"\n{reason_line(snapshot)}" if reason_line(snapshot) else "")
        elif column == Column.STATUS:
            text = reason_line(snapshot) or snapshot.status_display
        elif column == Column.PROGRESS:
            text = (
                "\n".join(
                    f"{status.display_name}: {formatting.count(count)}"
                    for status, count in segments(snapshot)
                )
                + f"\nStill open: {formatting.count(snapshot.remaining_count)}"
            )
        elif column == Column.ACTIONS:
            text = f"Actions for “{snapshot.name}”"
        if not text:
            return super().helpEvent(event, view, option, index)
        QToolTip.showText(event.globalPos(), text, view)
        return True


class TwoLineDelegate(QStyledItemDelegate):
    """A cell's text on its first line and, muted and smaller, the text of `second_role`
    on its second (a rejected row's reason, then how to fix it): the whole width of the
    column is used, and nothing waits for a selection or a hover to be read."""

    def __init__(self, second_role: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.second_role = second_role

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        second = index.data(self.second_role)
        if not second:
            super().paint(painter, option, index)
            return
        first = paint_cell_background(self, painter, option, index)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        painter.save()
        paint_two_lines(
            painter,
            option.rect.adjusted(4, 2, -4, -2),
            first,
            str(second),
            palette.color(
                QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
            ),
            palette.color(
                QPalette.ColorRole.HighlightedText
                if selected
                else QPalette.ColorRole.PlaceholderText
            ),
        )
        painter.restore()


def row_height(line_height: int) -> int:
    """Two lines: the name and its reason, or the figures and the bar."""
    return line_height * 2 + 10


class SegmentedBar(QWidget):
    """A progress bar in segments: the figures above the bar (the text never sits on the
    fill, so it never changes colour across the fill edge), or the bar alone
    (`show_text=False`) where the figures are written beside it (the Summary)."""

    BAR_HEIGHT = 10

    def __init__(self, parent: QWidget | None = None, show_text: bool = True):
        super().__init__(parent)
        self.setObjectName("summaryProgressBar")
        self._snapshot: BatchCallSnapshot | None = None
        self._show_text = show_text
        if show_text:
            self.setMinimumHeight(row_height(self.fontMetrics().height()))
        else:
            self.setFixedHeight(self.BAR_HEIGHT + 2)

    def set_snapshot(self, snapshot: BatchCallSnapshot) -> None:
        self._snapshot = snapshot
        self.setToolTip(
            "\n".join(
                f"{status.display_name}: {formatting.count(count)}"
                for status, count in segments(snapshot)
            )
            + f"\nStill open: {formatting.count(snapshot.remaining_count)}"
        )
        self.update()

    def format(self) -> str:
        """The bar's figures as the list writes them ("45% (450/1,000)"); drawn above the
        bar unless `show_text` is False."""
        return formatting.progress_text(self._snapshot) if self._snapshot else ""

    def paintEvent(self, _event: object) -> None:
        if self._snapshot is None:
            return
        painter = QPainter(self)
        top = 1
        if self._show_text:
            line = self.fontMetrics().height()
            painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
            painter.drawText(
                QRect(0, 0, self.width(), line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                self.format(),
            )
            top = line + 4
        paint_segmented_bar(
            painter,
            QRectF(0, top, self.width() - 1, self.BAR_HEIGHT),
            self._snapshot,
            self.palette(),
        )
        painter.end()
