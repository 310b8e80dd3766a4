"""The finished look: status chips (colour, symbol and word) in light and dark palettes,
the reason under the name, the segmented progress, every allowed action in the details
header, locale percentages, icons, the no-match state and the tray notification."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QLocale, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QPushButton

from app.models.status import Action, BatchStatus, RecipientStatus
from app.views import formatting, look
from app.views.batch_model import Column
from app.views.icons import ACTION_ICONS, icon


def palette(dark: bool) -> QPalette:
    result = QPalette(QApplication.palette())
    result.setColor(QPalette.ColorRole.Window, QColor("#202124" if dark else "#f5f5f5"))
    return result


def contrast(a: QColor, b: QColor) -> float:
    def luminance(c: QColor) -> float:
        def channel(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return (
            0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())
        )

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_every_status_chip_is_readable_and_says_itself_without_colour(qapp, dark):
    fills = set()
    for status in BatchStatus:
        fill, text = look.chip_colors(status, palette(dark))
        assert contrast(fill, text) >= 4.5, status  # WCAG AA for normal text
        assert status.display_name in look.chip_text(status)
        fills.add(fill.name())
    symbols = {look.CHIPS[s].symbol for s in BatchStatus}
    assert len(symbols) == len(BatchStatus)  # never colour alone
    for a, b in (
        (BatchStatus.FAILED, BatchStatus.COMPLETED),
        (BatchStatus.FAILED, BatchStatus.CANCELLED),
    ):
        assert look.chip_colors(a, palette(dark))[0] != look.chip_colors(b, palette(dark))[0]


def test_reason_line_says_why_it_is_not_dialing_or_failed(seeded):
    assert look.reason_line(seeded["failed"]).startswith("Failed: ")
    waiting = replace(
        seeded["running"], waiting_reason="outside the calling hours; opens Mon 09:00"
    )
    assert look.reason_line(waiting) == "Waiting: outside the calling hours; opens Mon 09:00"
    assert look.reason_line(seeded["completed"]) == ""


def test_the_segmented_bar_shows_failures_in_their_own_colour(qapp, seeded):
    snapshot = replace(
        seeded["completed"],
        total_recipients=40,
        counts={
            **{s: 0 for s in RecipientStatus},
            RecipientStatus.COMPLETED: 30,
            RecipientStatus.NO_ANSWER: 3,
            RecipientStatus.FAILED: 7,
        },
    )
    image = QImage(400, 10, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    look.paint_segmented_bar(painter, QRectF(0, 0, 400, 10), snapshot, palette(False))
    painter.end()
    completed, no_answer, failed = (c for _s, c, _d in look.SEGMENTS)
    assert image.pixelColor(100, 5).name() == completed
    assert image.pixelColor(310, 5).name() == no_answer  # 30/40 .. 33/40
    assert image.pixelColor(380, 5).name() == failed  # the last 7 of 40


def test_list_paints_chips_and_reasons(open_main_window, seeded, qtbot):
    window = open_main_window()
    window.resize(1100, 600)
    qtbot.waitUntil(lambda: window.proxy.rowCount() == len(seeded))
    image = window.table.viewport().grab().toImage()
    row = next(
        r
        for r in range(window.proxy.rowCount())
        if window.proxy.index(r, Column.NAME).data() == seeded["failed"].name
    )
    rect: QRect = window.table.visualRect(window.proxy.index(row, Column.STATUS))
    fill = look.chip_colors(BatchStatus.FAILED, window.table.palette())[0].name()
    colours = {
        image.pixelColor(x, rect.center().y()).name() for x in range(rect.left(), rect.right())
    }
    assert fill in colours
    # Two lines per row: the reason is shown under the name, not only in a tooltip.
    assert window.table.rowHeight(row) >= 2 * window.table.fontMetrics().height()


@pytest.mark.parametrize(
    ("case", "shown"),
    [
        ("running", {Action.PAUSE, Action.CANCEL, Action.RENAME}),
        ("paused", {Action.RESUME, Action.CANCEL, Action.RENAME}),
        ("failed", {Action.RETRY, Action.RENAME}),
        ("scheduled", {Action.CANCEL, Action.RENAME}),
    ],
)
def test_details_header_offers_every_action_of_the_status(
    open_main_window, seeded, qtbot, case, shown
):
    window = open_main_window()
    dialog = window.open_details(seeded[case].id)
    qtbot.waitUntil(dialog.isVisible)
    visible = {
        action
        for action in (Action.PAUSE, Action.RESUME, Action.CANCEL, Action.RETRY, Action.RENAME)
        if dialog.findChild(QPushButton, f"details{action.label}Button").isVisible()
    }
    assert visible == shown
    # Delete comes last, after a separator.
    header = dialog.layout().itemAt(0).layout()
    last = header.itemAt(header.count() - 1).widget()
    assert last.objectName() == "detailsDeleteButton"
    assert header.itemAt(header.count() - 2).widget().objectName() == "detailsDeleteSeparator"
    status = dialog.findChild(QLabel, "detailsStatusLabel")
    assert look.chip_colors(seeded[case].status, dialog.palette())[0].name() in status.styleSheet()
    dialog.close()


def test_percentages_follow_the_locale():
    assert formatting.percent(6, locale=QLocale(QLocale.Language.English)) == "6%"
    assert formatting.percent(6, locale=QLocale(QLocale.Language.French)) == "6\u202f%"
    assert formatting.percent(21.9, 1, QLocale(QLocale.Language.German)) == "21,9\u202f%"


def test_icons_exist_for_the_application_and_every_action(qapp):
    assert not icon("app").isNull()
    for action in Action:
        assert not icon(ACTION_ICONS[action]).isNull(), action


def test_window_and_actions_have_icons(open_main_window):
    window = open_main_window()
    assert not window.windowIcon().isNull()
    assert all(not qaction.icon().isNull() for qaction in window.qactions.values())
    assert not window.reload_button.icon().isNull()


def test_no_match_state_says_what_to_do(open_main_window, seeded, qtbot):
    window = open_main_window()
    qtbot.keyClicks(window.search_field, "zzz")
    assert window.stack.currentWidget() is window.no_match_state
    assert (
        "zzz" in window.no_match_label.text() and "clear the search" in window.no_match_label.text()
    )
    qtbot.mouseClick(window.no_match_clear_button, Qt.MouseButton.LeftButton)
    assert window.search_field.text() == ""
    assert window.stack.currentWidget() is window.table


def test_a_notification_when_a_batch_call_completes_or_fails(
    open_main_window, seeded, set_state, qtbot
):
    window = open_main_window()
    running = seeded["running"]
    set_state(running.id, BatchStatus.COMPLETED, {RecipientStatus.COMPLETED: 10})
    with qtbot.waitSignal(window.notified, timeout=5000) as note:
        window.mark_dirty(running.id)
    assert note.args[0] == running.id
    assert note.args[1].startswith("Batch call completed: “Campaign running”")
    paused = seeded["paused"]
    set_state(paused.id, BatchStatus.FAILED, failure_reason="The from number is not on the account")
    with qtbot.waitSignal(window.notified, timeout=5000) as note:
        window.mark_dirty(paused.id)
    assert "The from number is not on the account" in note.args[1]
    # A reload that changes nothing notifies nothing.
    count = len(window.notifications)
    with qtbot.waitSignal(window.reloaded, timeout=5000):
        window.reload(quiet=True)
    assert len(window.notifications) == count


def test_the_dark_palette_keeps_text_readable(qapp):
    from app.views.app import dark_palette

    dark = dark_palette()
    assert look.is_dark(dark)
    role = QPalette.ColorRole
    for background, foreground in ((role.Window, role.WindowText), (role.Base, role.Text)):
        assert contrast(dark.color(background), dark.color(foreground)) >= 7


def test_prepare_application_sets_the_application_icon(qapp):
    from app.views.app import prepare_application

    app = prepare_application()
    assert not app.windowIcon().isNull()
