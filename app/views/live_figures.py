"""The Summary's live figures: calls in progress, calls per minute lately, the answer rate,
an estimated finish and the outcomes of the last half hour, and the chart that draws them.

The figures are computed from the snapshot and the outcomes of recent calls (read in the
background), so they can be checked without a window. The estimate is the recent rate,
never above what the pacing allows, spent only while the calling window is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QWidget

from app.models.policy import after_open_seconds
from app.models.snapshots import BatchCallSnapshot
from app.models.status import BatchStatus, RecipientStatus
from app.views import formatting, look

#: The rate is measured over this many minutes; the chart shows CHART_MINUTES.
RATE_MINUTES = 10
CHART_MINUTES = 30


@dataclass(frozen=True)
class LiveFigures:
    in_progress: int
    per_minute: float
    #: Answered / called (an outcome, or waiting for another attempt); None before any.
    answer_rate: float | None
    #: None: finished, not dialing, no rate yet, or the calling hours end first.
    finish: datetime | None
    #: Per minute of the last CHART_MINUTES (oldest first): counts per outcome.
    minutes: list[dict[RecipientStatus, int]] = field(default_factory=list)


def live_figures(
    snapshot: BatchCallSnapshot,
    outcomes: list[tuple[datetime, RecipientStatus]],
    now: datetime,
    calls_per_second: float,
) -> LiveFigures:
    """The figures at `now` from the outcomes (end time, outcome) of recent calls."""
    counts = snapshot.counts
    # Called and not answered, waiting for another attempt, counts as not answered.
    reached = sum(counts.get(s, 0) for s in look.TERMINAL_ORDER) + counts.get(
        RecipientStatus.WAITING_RETRY, 0
    )
    answered = counts.get(RecipientStatus.COMPLETED, 0)
    recent = [o for o in outcomes if now - timedelta(minutes=RATE_MINUTES) <= o[0] <= now]
    per_minute = len(recent) / RATE_MINUTES
    per_minute = min(per_minute, calls_per_second * 60)  # never faster than the pacing
    minutes: list[dict[RecipientStatus, int]] = [{} for _ in range(CHART_MINUTES)]
    start = now - timedelta(minutes=CHART_MINUTES)
    for ended, status in outcomes:
        if start <= ended <= now:
            slot = min(CHART_MINUTES - 1, int((ended - start).total_seconds() // 60))
            minutes[slot][status] = minutes[slot].get(status, 0) + 1
    finish = None
    if snapshot.status is BatchStatus.RUNNING and snapshot.remaining_count and per_minute > 0:
        finish = estimated_finish(now, snapshot.remaining_count / per_minute, snapshot)
    return LiveFigures(
        in_progress=counts.get(RecipientStatus.IN_PROGRESS, 0),
        per_minute=per_minute,
        answer_rate=answered / reached if reached else None,
        finish=finish,
        minutes=minutes,
    )


def estimated_finish(
    now: datetime, minutes_needed: float, snapshot: BatchCallSnapshot
) -> datetime | None:
    """`minutes_needed` of dialing placed inside the batch call's calling hours: every
    range, the allowed days, the blackout dates and the end date, as the estimated finish
    above it counts them (None: the calling hours end for good first)."""
    try:
        schedule = snapshot.schedule
    except ValueError:  # stored rules that no longer parse: the plain time needed
        return now + timedelta(minutes=minutes_needed)
    return after_open_seconds(schedule, now, minutes_needed * 60)


def finish_text(figures: LiveFigures, snapshot: BatchCallSnapshot) -> str:
    """ "About Mon 23 Nov 11:50 EST (in calling hours)": written as the estimated finish
    above it is (the batch call's timezone, the weekday), so the two compare at a glance."""
    if snapshot.status is not BatchStatus.RUNNING:
        return "—" if snapshot.remaining_count else "Finished"
    if figures.finish is None:
        if figures.per_minute > 0 and snapshot.remaining_count:
            return "Not within its calling hours at the recent rate (they end first)."
        return "Not enough calls yet to estimate"
    finish = figures.finish.astimezone(formatting.zone_named(snapshot.timezone))
    return f"About {formatting.weekday_time(finish)} (in calling hours)."


#: The chart's legend, in the order of the stacked bars (bottom first).
LEGEND = tuple((status.display_name, light, dark) for status, light, dark in look.SEGMENTS)


class OutcomeChart(QWidget):
    """Outcomes per minute over the last half hour, stacked (completed, no answer,
    failed), drawn with QPainter (QtCharts is not part of PySide6-Essentials)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("summaryOutcomeChart")
        self.setMinimumHeight(110)
        self.minutes: list[dict[RecipientStatus, int]] = []

    def set_minutes(self, minutes: list[dict[RecipientStatus, int]]) -> None:
        self.minutes = minutes
        peak = max((sum(m.values()) for m in minutes), default=0)
        self.setToolTip(
            f"Calls that ended per minute over the last {CHART_MINUTES} minutes "
            f"(busiest minute: {formatting.count(peak)})"
        )
        self.update()

    def legend_text(self) -> str:
        """What the legend says, beside a square of each colour (colour is never alone)."""
        return "  ".join(name for name, _light, _dark in LEGEND)

    def _paint_legend(self, painter: QPainter, rect: QRectF, dark: bool) -> None:
        """■ Completed ■ No Answer ■ Failed, centred under the bars."""
        metrics = self.fontMetrics()
        box = metrics.ascent() * 0.8
        gap = metrics.horizontalAdvance("  ")
        widths = [box + 4 + metrics.horizontalAdvance(name) for name, _l, _d in LEGEND]
        x = rect.x() + (rect.width() - sum(widths) - gap * (len(LEGEND) - 1)) / 2
        for (name, light, dark_color), width in zip(LEGEND, widths, strict=True):
            top = rect.y() + (rect.height() - box) / 2
            painter.fillRect(QRectF(x, top, box, box), QColor(dark_color if dark else light))
            painter.drawText(
                QRectF(x + box + 4, rect.y(), width, rect.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                name,
            )
            x += width + gap

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        palette = self.palette()
        dark = look.is_dark(palette)
        text = palette.color(QPalette.ColorRole.WindowText)
        line = self.fontMetrics().height()
        plot = QRectF(0, 0, self.width() - 1, self.height() - line - 4)
        painter.setPen(QColor(look.TRACK[1] if dark else look.TRACK[0]))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        peak = max((sum(m.values()) for m in self.minutes), default=0)
        if self.minutes and peak:
            width = plot.width() / len(self.minutes)
            for n, minute in enumerate(self.minutes):
                y = plot.bottom()
                for status, light, dark_color in look.SEGMENTS:
                    count = minute.get(status, 0)
                    if not count:
                        continue
                    height = plot.height() * count / peak
                    painter.fillRect(
                        QRectF(plot.x() + n * width + 1, y - height, max(1.0, width - 2), height),
                        QColor(dark_color if dark else light),
                    )
                    y -= height
        painter.setPen(text)
        painter.drawText(
            QRectF(0, plot.bottom() + 2, self.width(), line),
            Qt.AlignmentFlag.AlignLeft,
            f"{CHART_MINUTES} min ago",
        )
        painter.drawText(
            QRectF(0, plot.bottom() + 2, self.width(), line), Qt.AlignmentFlag.AlignRight, "now"
        )
        self._paint_legend(painter, QRectF(0, plot.bottom() + 2, self.width(), line), dark)
        if peak:  # the scale: the tallest bar's count
            painter.setPen(look.tone("muted", palette))
            painter.drawText(
                plot.adjusted(2, 0, 0, 0),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                f"{formatting.count(peak)} in the busiest minute",
            )
            painter.setPen(text)
        if not peak:
            painter.drawText(
                plot, Qt.AlignmentFlag.AlignCenter, "No call ended in the last 30 minutes"
            )
        painter.end()
