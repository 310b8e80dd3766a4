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
    # What the others wait for, as the details say it, without hovering.
    scheduled = seeded["scheduled"]
    assert look.reason_line(scheduled) == look.status_reason(scheduled) != ""
    assert look.reason_line(scheduled).startswith("Scheduled: ")
    pending = replace(scheduled, status=BatchStatus.PENDING)
    assert look.reason_line(pending).startswith("Recipients are still being stored")
    paused = replace(seeded["running"], status=BatchStatus.PAUSED, waiting_reason="Paused by ana.")
    assert look.reason_line(paused) == "Paused by ana."  # not "Waiting: Paused by ana."
    assert look.reason_line(replace(paused, waiting_reason=None)).startswith("Paused: ")
    assert look.reason_line(replace(seeded["running"], status=BatchStatus.CANCELLED)) == ""


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
    # No system tray here (offscreen, as on some Linux desktops): the status bar says it.
    assert not window.tray.isVisible()
    assert window.statusBar().currentMessage() == note.args[1]
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


@pytest.fixture
def color_scheme(qapp):
    """use(dark): the application's palette and style sheet as for a light or a dark
    system (app.views.app.apply_color_scheme); put back as they were afterwards."""
    from app.views.app import apply_color_scheme

    before = (QPalette(qapp.palette()), qapp.styleSheet(), qapp.property("darkLook"))
    yield lambda dark: apply_color_scheme(qapp, dark)
    apply_color_scheme(qapp, bool(before[2]))  # the palettes of single kinds of widget too
    qapp.setStyleSheet(before[1])
    qapp.setPalette(before[0])
    qapp.setProperty("darkLook", before[2])


#: Widgets the style sheets colour: (kind, role property, object name, other property).
STYLED = [
    (QLabel, "error", "", None),
    (QLabel, "ok", "", None),
    (QLabel, "hint", "", None),
    (QLabel, "notice", "", None),
    (QLabel, "alert", "", None),
    (QLabel, None, "emptyStateLabel", None),
    (QLabel, None, "searchSummaryLabel", None),
    (QLabel, None, "modeLabel", ("mode", "simulation")),
    (QLabel, None, "modeLabel", ("mode", "twilio")),
    (QPushButton, "danger", "", None),
    (QPushButton, "primary", "", None),
]


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_style_sheet_keeps_text_readable_in_both_palettes(color_scheme, qtbot, dark):
    color_scheme(dark)
    assert look.is_dark(QApplication.palette()) is dark
    for kind, role, name, extra in STYLED:
        widget = kind("Text")
        qtbot.addWidget(widget)
        if role:
            widget.setProperty("role", role)
        if name:
            widget.setObjectName(name)
        if extra:
            widget.setProperty(*extra)
        widget.ensurePolished()
        colors = widget.palette()
        ground = QPalette.ColorRole.Button if kind is QPushButton else QPalette.ColorRole.Window
        text = colors.color(widget.foregroundRole())
        assert contrast(text, colors.color(ground)) >= 4.5, (role or name, extra, dark)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_an_unticked_box_and_circle_stand_out_from_the_window(color_scheme, qtbot, dark):
    """Fusion outlines them in a darker shade of the window colour: on the dark window
    an unticked check box or radio button all but vanished."""
    from PySide6.QtWidgets import QCheckBox, QRadioButton

    color_scheme(dark)
    for kind in (QCheckBox, QRadioButton):
        widget = kind("Sat")
        qtbot.addWidget(widget)
        widget.show()
        image = widget.grab().toImage()
        window = QApplication.palette().color(QPalette.ColorRole.Window)
        box = [
            image.pixelColor(x, y)
            for x in range(min(18, image.width()))
            for y in range(image.height())
        ]
        # At least as plain as Fusion's own light look (1.65 for its grey outline).
        assert max(contrast(color, window) for color in box) >= 1.6, (kind.__name__, dark)


def test_the_dark_style_sheet_follows_the_light_one(color_scheme, qapp):
    from app.views.app import style_sheet

    color_scheme(True)
    assert qapp.styleSheet() == style_sheet(True)
    assert style_sheet(True).startswith(style_sheet(False))
    assert 'QLabel[role="error"] { color: #f28b82; }' in qapp.styleSheet()
    color_scheme(False)
    assert qapp.styleSheet() == style_sheet(False)
    assert not look.is_dark(qapp.palette())


def ink_lightness(image: QImage) -> float:
    """The mean lightness of the icon's opaque pixels."""
    values = [
        image.pixelColor(x, y).lightness()
        for x in range(image.width())
        for y in range(image.height())
        if image.pixelColor(x, y).alpha() > 200
    ]
    assert values
    return sum(values) / len(values)


def test_icons_are_drawn_light_on_a_dark_palette(color_scheme):
    light = icon("reload").pixmap(24, 24).toImage()
    color_scheme(True)
    dark = icon("reload").pixmap(24, 24).toImage()
    assert ink_lightness(light) < 100 < 180 < ink_lightness(dark)
    assert icon("delete").pixmap(24, 24).toImage() != dark
    assert icon("missing").isNull()


def test_rejected_rows_say_their_state_readably_on_a_dark_palette(color_scheme, qtmodeltester):
    from app.services.csv_import import RejectedRow
    from app.views.rejected_model import RejectedColumn, RejectedRowsModel

    model = RejectedRowsModel()
    qtmodeltester.check(model)
    model.set_rows(
        (RejectedRow(4, "call after 5pm", "contains letters", {}),),
        ("phone_number",),
        lambda _values, row: RejectedRow(row, "", "", {}),
    )
    state = model.index(0, RejectedColumn.STATE)
    for dark in (False, True):
        color_scheme(dark)
        colors = QApplication.palette()
        shown = state.data(Qt.ItemDataRole.ForegroundRole).color()
        assert shown == look.tone("error", colors)
        for name in look.TONES:
            assert contrast(look.tone(name, colors), colors.color(QPalette.ColorRole.Base)) >= 4.5


def test_open_windows_take_the_icons_of_a_new_palette(color_scheme, qtbot):
    from PySide6.QtGui import QAction

    button = QPushButton("Reload")
    qtbot.addWidget(button)
    button.setIcon(icon("reload"))
    action = QAction(icon("pause"), "Pause", button)
    button.addAction(action)
    color_scheme(True)  # the system switched to dark while the window was open
    assert ink_lightness(button.icon().pixmap(24, 24).toImage()) > 180
    assert ink_lightness(action.icon().pixmap(24, 24).toImage()) > 180
    color_scheme(False)
    assert ink_lightness(button.icon().pixmap(24, 24).toImage()) < 100


def test_the_primary_buttons_icon_is_light_on_its_blue_in_both_palettes(
    color_scheme, open_main_window
):
    window = open_main_window()
    button = window.create_button
    assert ink_lightness(button.icon().pixmap(24, 24).toImage()) > 180  # not dark grey
    color_scheme(True)
    assert ink_lightness(button.icon().pixmap(24, 24).toImage()) > 180
    color_scheme(False)
    assert ink_lightness(button.icon().pixmap(24, 24).toImage()) > 180


def test_the_details_chip_follows_a_new_palette(color_scheme, open_main_window, seeded, qtbot):
    from tests.views.test_details import details_of

    dialog = details_of(open_main_window(), seeded["failed"].id, qtbot)
    chip = dialog.findChild(QLabel, "detailsStatusLabel")
    light_fill, _text = look.chip_colors(BatchStatus.FAILED, QApplication.palette())
    assert light_fill.name() in chip.styleSheet()
    color_scheme(True)
    dark_fill, _text = look.chip_colors(BatchStatus.FAILED, QApplication.palette())
    assert dark_fill != light_fill
    assert dark_fill.name() in chip.styleSheet()
