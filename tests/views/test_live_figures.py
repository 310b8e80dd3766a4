"""The Summary's live figures: the rate over the last minutes, the answer rate, an
estimated finish inside the calling window (and no faster than the pacing), the chart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from PySide6.QtWidgets import QLabel

from app.models.status import BatchStatus, RecipientStatus
from app.views import live_figures

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def running(seeded, remaining: int = 300, completed: int = 60, failed: int = 20):
    counts = {s: 0 for s in RecipientStatus}
    counts.update(
        {
            RecipientStatus.PENDING: remaining - 5,
            RecipientStatus.IN_PROGRESS: 5,
            RecipientStatus.COMPLETED: completed,
            RecipientStatus.FAILED: failed,
        }
    )
    return replace(
        seeded["running"],
        status=BatchStatus.RUNNING,
        total_recipients=remaining + completed + failed,
        counts=counts,
        timezone="UTC",
        window_start="09:00",
        window_end="17:00",
        allowed_days=frozenset({1, 2, 3, 4, 5}),
    )


def outcomes(per_minute: int, minutes: int, now=MONDAY_10):
    return [
        (now - timedelta(minutes=m, seconds=s * 60 / per_minute), RecipientStatus.COMPLETED)
        for m in range(minutes)
        for s in range(per_minute)
    ]


def test_rate_answer_rate_and_finish_inside_the_window(seeded):
    snapshot = running(seeded)
    figures = live_figures.live_figures(snapshot, outcomes(2, 10), MONDAY_10, 1.0)
    assert figures.in_progress == 5
    assert figures.per_minute == 2.0
    assert figures.answer_rate == 60 / 80
    # 300 remaining at 2 a minute: 150 minutes, within Monday's window (closes 17:00).
    assert figures.finish == MONDAY_10 + timedelta(minutes=150)
    assert sum(sum(m.values()) for m in figures.minutes) == 20


def test_the_estimate_skips_the_closed_hours_and_the_weekend(seeded):
    friday_16 = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    snapshot = running(seeded, remaining=240)
    figures = live_figures.live_figures(snapshot, outcomes(2, 10, friday_16), friday_16, 1.0)
    # 120 minutes needed: 60 on Friday until 17:00, the other 60 from Monday 09:00.
    assert figures.finish == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_the_finish_at_the_recent_rate_is_written_like_the_estimated_finish(seeded):
    """In the batch call's timezone with the weekday, as the estimated finish above it."""
    snapshot = replace(running(seeded), timezone="America/New_York", window_end="23:00")
    figures = live_figures.live_figures(snapshot, outcomes(2, 10), MONDAY_10, 1.0)
    # 150 minutes from 10:00 UTC (05:00 in New York, before the window opens at 09:00).
    assert figures.finish is not None
    assert (
        live_figures.finish_text(figures, snapshot)
        == "About Mon 23 Nov 11:30 EST (in calling hours)."
    )


def test_the_estimate_uses_every_range_the_blackout_dates_and_the_end_date(seeded):
    """As the estimated finish above it: 08-12 and 13-20, no calls on Tuesday 24."""
    snapshot = replace(
        running(seeded, remaining=600),
        window_start="08:00",
        window_end="12:00",
        time_ranges="08:00-12:00,13:00-20:00",
        blackout_dates="2026-11-24",
    )
    figures = live_figures.live_figures(snapshot, outcomes(1, 10), MONDAY_10, 1.0)
    # 600 minutes: Monday 10-12 and 13-20 (540), then Wednesday 08:00-09:00 (60).
    assert figures.finish == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    ended = replace(snapshot, end_at=datetime(2026, 11, 24, 23, 0, tzinfo=UTC))
    figures = live_figures.live_figures(ended, outcomes(1, 10), MONDAY_10, 1.0)
    assert figures.finish is None
    assert live_figures.finish_text(figures, ended) == (
        "Not within its calling hours at the recent rate (they end first)."
    )


def test_a_call_waiting_for_another_attempt_counts_as_not_answered(seeded):
    snapshot = running(seeded)
    counts = dict(snapshot.counts, **{RecipientStatus.WAITING_RETRY: 40})
    figures = live_figures.live_figures(replace(snapshot, counts=counts), [], MONDAY_10, 1.0)
    assert figures.answer_rate == 60 / (60 + 20 + 40)


def test_the_rate_never_exceeds_the_pacing(seeded):
    snapshot = running(seeded)
    figures = live_figures.live_figures(snapshot, outcomes(120, 10), MONDAY_10, 0.5)
    assert figures.per_minute == 30.0  # 0.5 calls per second


def test_no_estimate_without_calls_or_when_not_running(seeded):
    snapshot = running(seeded)
    assert live_figures.live_figures(snapshot, [], MONDAY_10, 1.0).finish is None
    paused = replace(snapshot, status=BatchStatus.PAUSED)
    figures = live_figures.live_figures(paused, outcomes(2, 10), MONDAY_10, 1.0)
    assert figures.finish is None
    assert live_figures.finish_text(figures, paused) == "—"


def test_summary_shows_the_live_figures(open_main_window, seeded, qtbot):
    window = open_main_window()
    dialog = window.open_details(seeded["running"].id)
    with qtbot.waitSignal(dialog.liveFiguresShown, timeout=5000):
        pass

    def shown(name: str) -> str:
        return dialog.findChild(QLabel, name).text()

    snapshot = seeded["running"]
    assert shown("summaryInProgress") == str(snapshot.counts[RecipientStatus.IN_PROGRESS])
    assert shown("summaryRate") == "0.0"  # the seeded calls ended long before the clock
    reached = sum(snapshot.counts[s] for s in RecipientStatus if s.is_terminal)
    answered = round(100 * snapshot.counts[RecipientStatus.COMPLETED] / reached)
    assert shown("summaryAnswerRate") == f"{answered}%"
    assert shown("summaryFinish") == "Not enough calls yet to estimate"
    assert dialog.outcome_chart.minutes and len(dialog.outcome_chart.minutes) == 30
    image = dialog.outcome_chart.grab()
    assert not image.isNull()
    dialog.close()


def test_the_chart_has_a_legend_and_a_scale(qtbot):
    """Colour is never alone: a square of each colour beside its outcome's name under
    the bars, and the tallest bar's count."""
    from PySide6.QtGui import QColor

    from app.views import look

    chart = live_figures.OutcomeChart()
    qtbot.addWidget(chart)
    chart.resize(600, 140)
    chart.set_minutes([{RecipientStatus.COMPLETED: 3}] + [{} for _ in range(29)])
    image = chart.grab().toImage()
    bottom = range(image.height() - chart.fontMetrics().height() - 2, image.height())
    seen = {image.pixelColor(x, y).name() for x in range(image.width()) for y in bottom}
    dark = look.is_dark(chart.palette())
    for _status, light, dark_color in look.SEGMENTS:
        assert QColor(dark_color if dark else light).name() in seen
    assert chart.legend_text() == "Completed  No Answer  Failed"
