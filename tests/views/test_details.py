"""The details dialog: header actions, Summary, Configuration, Recipients (lazy pages, SQL
filter/search/sort, call details, export) and History, updating live while open."""

from __future__ import annotations

import csv
from datetime import date, time

import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QWidget,
)

from app.models.snapshots import SendType
from app.models.status import Action, BatchStatus, RecipientStatus
from app.services.batch_calls import scheduled_instant
from app.views import detail_models, formatting
from app.views.batch_model import Column
from app.views.detail_models import PAGE_SIZE, REFRESH_MARGIN, RecipientColumn
from tests.views.layout_checks import assert_nothing_clipped


def details_of(window, batch_id: int, qtbot):
    """The details dialog of `batch_id`, opened at once if the list shows it, else once
    the window has read it in the background."""
    dialog = window.open_details(batch_id)
    if dialog is None:
        qtbot.waitUntil(lambda: window.details_dialog(batch_id) is not None, timeout=5000)
        dialog = window.details_dialog(batch_id)
    return dialog


@pytest.fixture
def open_details(open_main_window, model_checks, qtbot):
    """open_details(batch_id) -> the dialog, its models under qtmodeltester, loaded."""
    window = None

    def opener(batch_id: int):
        nonlocal window
        window = window or open_main_window()
        dialog = details_of(window, batch_id, qtbot)
        model_checks.check(dialog.recipient_model)
        model_checks.check(dialog.history_model)
        with qtbot.waitSignal(dialog.recipient_model.loaded, timeout=5000):
            pass
        qtbot.waitUntil(lambda: dialog.history_model.rowCount() > 0)
        dialog.window_under_test = window
        return dialog

    return opener


def label(dialog, name: str) -> str:
    widget = dialog.findChild(QLabel, name)
    assert widget is not None, name
    return widget.text()


def column(dialog, which: RecipientColumn) -> list[str]:
    model = dialog.recipient_model
    return [model.index(row, which).data() for row in range(model.rowCount())]


def test_summary_tab(open_details, seeded):
    snapshot = seeded["completed"]
    dialog = open_details(snapshot.id)
    assert dialog.objectName() == "detailsDialog"
    tabs = dialog.findChild(QTabWidget, "detailsTabs")
    assert [tabs.tabText(i) for i in range(tabs.count())] == [
        "Summary",
        "Configuration",
        "Recipients",
        "History",
    ]
    assert label(dialog, "detailsNameLabel") == "Campaign completed"
    assert label(dialog, "summaryStatus") == "Completed"
    assert label(dialog, "summaryTotal") == "10"
    assert label(dialog, "summaryAgent") == "Demo message"
    # Its times in its own zone, named, as its estimates are.
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(snapshot.timezone)
    for name, moment in (
        ("summaryStarted", snapshot.started_at),
        ("summaryFinished", snapshot.finished_at),
    ):
        if moment is not None:
            assert label(dialog, name) == formatting.zoned_time(moment, zone)
            assert label(dialog, name).endswith(moment.astimezone(zone).tzname())
    # The number, then its label once read with the live figures.
    assert label(dialog, "summaryFromNumber").startswith(snapshot.from_number)
    assert label(dialog, "summaryCompleted") == "10 of 10"
    assert label(dialog, "summaryRemaining") == "0"
    assert label(dialog, "summaryPercent") == "100.0%"
    assert dialog.progress_bar.format() == "100% (10/10)"
    assert label(dialog, "countCompleted") == "7"
    assert label(dialog, "countFailed") == "2"
    assert label(dialog, "countNoAnswer") == "1"
    assert label(dialog, "countPending") == "0"
    assert dialog.findChild(QPushButton, "detailsRetryButton").isVisible()
    assert dialog.findChild(QPushButton, "detailsDeleteButton").isVisible()


def test_the_summary_says_each_figure_once_and_the_from_numbers_label(open_details, seeded, qtbot):
    """The bar carries no text of its own: processed, percentage and remaining are
    written once beside it; the from number shows with its label once that is read."""
    snapshot = seeded["completed"]
    dialog = open_details(snapshot.id)
    qtbot.waitUntil(lambda: dialog.live_figures_shown, timeout=5000)
    labels = [w for w in dialog.summary_tab.findChildren(QLabel) if w.isVisibleTo(dialog)]
    texts = [w.text() for w in labels]
    assert sum(text.startswith("100") and text.endswith("%") for text in texts) == 1
    assert sum("10 of 10" in text for text in texts) == 1
    line = dialog.findChild(QWidget, "summaryProgress")
    words = " ".join(w.text() for w in line.findChildren(QLabel))
    assert words == "10 of 10 processed · 100.0% complete · 0 remaining"
    assert dialog.progress_bar.height() < dialog.fontMetrics().height()  # no room for text
    number = next(
        n for n in dialog.service.list_from_numbers() if n.phone_number == snapshot.from_number
    )
    assert number.label  # the seeded number has one
    assert label(dialog, "summaryFromNumber") == f"{number.phone_number} ({number.label})"


def test_the_details_fit_a_768_pixel_screen_the_summary_scrolls(open_details, seeded):
    """The Summary (live box, chart, counts) is taller than a laptop's screen allows."""
    dialog = open_details(seeded["running"].id)
    assert dialog.minimumSizeHint().height() <= 600
    page = dialog.findChild(QWidget, "summaryTab")
    assert page.widget().objectName() == "summaryContent"
    assert page.widget().minimumSizeHint().height() > 500  # all of it, within the page


def test_the_live_box_waits_for_the_first_call(open_details, seeded):
    """A scheduled batch call that never dialed has nothing to show "now"."""
    scheduled = open_details(seeded["scheduled"].id)
    assert seeded["scheduled"].started_at is None
    assert scheduled.live_box.isHidden()
    running = open_details(seeded["running"].id)
    assert not running.live_box.isHidden()


def test_summary_of_a_running_batch_says_why_nothing_is_dialed(open_details, seeded, set_state):
    reason = "Outside the calling hours (09:00 to 18:00 UTC, Monday to Friday)."
    set_state(
        seeded["running"].id,
        BatchStatus.RUNNING,
        {RecipientStatus.COMPLETED: 3},
        waiting_reason=reason,
    )
    dialog = open_details(seeded["running"].id)
    assert label(dialog, "summaryReasonLabel") == reason
    assert dialog.findChild(QLabel, "summaryReasonLabel").property("role") == "notice"
    assert label(dialog, "summaryRemaining") == "7"
    assert label(dialog, "summaryPercent") == "30.0%"
    assert not dialog.findChild(QPushButton, "detailsRetryButton").isVisible()


def test_failed_batch_shows_its_reason_and_clean_completion_offers_no_retry(open_details, seeded):
    dialog = open_details(seeded["failed"].id)
    assert label(dialog, "summaryReasonLabel") == "Failed: Twilio rejected the credentials."
    # In the colours of an error, not the amber of a wait.
    assert dialog.findChild(QLabel, "summaryReasonLabel").property("role") == "alert"
    dialog.close()
    clean = open_details(seeded["completed-clean"].id)
    assert not clean.findChild(QPushButton, "detailsRetryButton").isVisible()


def test_configuration_tab_is_read_only_and_complete(open_details, make_batch, context):
    start = scheduled_instant(date(2026, 12, 1), time(8, 30), "America/New_York")
    snapshot = make_batch(
        "Scheduled reminders",
        send_type=SendType.SCHEDULE,
        scheduled_at=start,
        timezone="America/New_York",
        window_start="08:30",
        window_end="17:00",
        allowed_days=frozenset({1, 3, 5}),
        reserved_concurrency=3,
    )
    dialog = open_details(snapshot.id)
    assert label(dialog, "configSendType") == "Schedule"
    assert label(dialog, "configScheduled") == "2026-12-01 08:30 (America/New_York)"
    assert label(dialog, "configTimezone") == "America/New_York"
    assert label(dialog, "configTimeRange") == "08:30 to 17:00"
    assert label(dialog, "configAllowedDays") == "Monday, Wednesday, Friday"
    assert label(dialog, "configConcurrency") == "3"
    assert dialog.configuration_tab.findChildren(QLineEdit) == []  # nothing editable
    send_now = open_details(make_batch("Now").id)
    assert label(send_now, "configSendType") == "Send Now"
    assert label(send_now, "configScheduled") == "Not scheduled (Send Now)"
    assert label(send_now, "configAllowedDays") == "Monday to Friday"
    # A batch call without policy reads as one window, no local hours, one attempt.
    assert label(send_now, "configLocalHours") == "Off (the batch call's window only)"
    assert label(send_now, "configRetries") == "One attempt (no automatic retry)"
    assert label(send_now, "configEndDate") == "None"
    assert label(send_now, "configBlackoutDates") == "None"


def test_configuration_tab_shows_the_campaign_policy(open_details, make_batch):
    snapshot = make_batch(
        "Policy",
        timezone="America/New_York",
        time_ranges="09:00-12:00,14:00-18:00",
        blackout_dates="2026-12-25",
        end_at=scheduled_instant(date(2027, 1, 31), time(18, 0), "America/New_York"),
        local_hours="08:00-21:00",
        max_attempts=3,
        retry_delay_minutes=30,
        retry_outcomes="no-answer",
    )
    dialog = open_details(snapshot.id)
    assert label(dialog, "configTimeRange") == "09:00 to 12:00, 14:00 to 18:00"
    assert label(dialog, "configBlackoutDates") == "2026-12-25"
    assert label(dialog, "configEndDate") == "2027-01-31 18:00 (America/New_York); then Expired"
    assert label(dialog, "configLocalHours") == ("08:00 to 21:00 in each recipient's own timezone")
    assert label(dialog, "configRetries") == "Up to 3 attempts, 30 min apart, after: no answer"


def test_recipients_filter_search_and_sort(open_details, seeded, qtbot):
    dialog = open_details(seeded["completed"].id)
    model = dialog.recipient_model
    assert model.rowCount() == 10
    assert column(dialog, RecipientColumn.PHONE)[0] == "+12025550000"
    assert column(dialog, RecipientColumn.VARIABLES)[0] == "city: Austin"

    combo = dialog.findChild(QComboBox, "recipientStatusFilter")
    with qtbot.waitSignal(model.loaded):
        combo.setCurrentIndex(combo.findText("Failed"))
    assert column(dialog, RecipientColumn.STATUS) == ["Failed", "Failed"]
    assert label(dialog, "recipientCountLabel") == "2 matching recipients"

    with qtbot.waitSignal(model.loaded):
        combo.setCurrentIndex(combo.findText("All statuses"))
    search = dialog.findChild(QLineEdit, "recipientSearch")
    with qtbot.waitSignal(model.loaded):
        qtbot.keyClicks(search, "person 8")
    assert column(dialog, RecipientColumn.NAME) == ["Person 8"]
    search.clear()
    hint = dialog.findChild(QLabel, "recipientsEmptyHint")
    with qtbot.waitSignal(model.loaded):
        qtbot.keyClicks(search, "zzzz")
    assert model.rowCount() == 0 and not hint.isHidden()
    assert hint.text().startswith("No recipient matches “zzzz”.")
    search.clear()
    with qtbot.waitSignal(model.loaded):
        qtbot.keyClicks(search, "555 0003")  # a phone number, as people type it
    assert column(dialog, RecipientColumn.PHONE) == ["+12025550003"]
    assert hint.isHidden()
    with qtbot.waitSignal(model.loaded):
        search.clear()

    header = dialog.recipient_table.horizontalHeader()
    status_x = header.sectionViewportPosition(RecipientColumn.STATUS) + 5
    with qtbot.waitSignal(model.loaded):
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(status_x, 5))
    assert column(dialog, RecipientColumn.STATUS)[0] == "Completed"
    with qtbot.waitSignal(model.loaded):
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(status_x, 5))
    assert column(dialog, RecipientColumn.STATUS)[0] == "No Answer"


def test_a_recipients_status_has_a_dot_of_its_colour_beside_the_word(open_details, seeded):
    """Failed, No Answer and Completed no longer look alike; the word stays."""
    from PySide6.QtGui import QIcon

    dialog = open_details(seeded["completed"].id)
    model = dialog.recipient_model
    colours: dict[str, str] = {}
    for row in range(model.rowCount()):
        index = model.index(row, RecipientColumn.STATUS)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        assert isinstance(icon, QIcon) and not icon.isNull()
        image = icon.pixmap(12, 12).toImage()
        colours[index.data()] = image.pixelColor(6, 6).name()
    assert set(colours) == {"Completed", "Failed", "No Answer"}
    assert len(set(colours.values())) == 3
    # The longest status word fits beside its dot ("Waiting fo…" was cut).
    widest = max(dialog.fontMetrics().horizontalAdvance(s.display_name) for s in RecipientStatus)
    assert dialog.recipient_table.columnWidth(RecipientColumn.STATUS) >= widest + 12 + 16


def test_call_details_for_completed_failed_and_uncalled(open_details, seeded, qtbot):
    dialog = open_details(seeded["running"].id)
    statuses = column(dialog, RecipientColumn.STATUS)
    dialog.select_recipient(statuses.index("Completed"))
    assert label(dialog, "callDuration") == "42 s"
    assert label(dialog, "callAnsweredBy") == "human"
    assert label(dialog, "callCallId").startswith("SIM")
    assert label(dialog, "callError") == "—"
    dialog.select_recipient(statuses.index("Pending"))
    assert label(dialog, "callRequested") == "Not called yet."
    assert label(dialog, "callDuration") == ""
    dialog.close()

    failed = open_details(seeded["completed"].id)
    failed.select_recipient(column(failed, RecipientColumn.STATUS).index("Failed"))
    assert label(failed, "callError") == "The recipient's phone number cannot be reached."
    assert label(failed, "callAttempts") == "1"


def test_recipients_are_fetched_lazily_in_pages(open_main_window, make_batch, qtbot):
    # No model tester here: it asks for every page on each change, which is its job.
    window = open_main_window()
    dialog = details_of(window, make_batch("Big list", recipients=450).id, qtbot)
    model = dialog.recipient_model
    with qtbot.waitSignal(model.loaded):
        pass
    assert model.rowCount() == PAGE_SIZE
    assert model.total == 450
    assert label(dialog, "recipientCountLabel") == "200 of 450 recipients loaded"
    # Scrolling to the end of what is loaded brings the next page.
    dialog.tabs.setCurrentWidget(dialog.recipients_tab)
    with qtbot.waitSignal(model.pageFetched) as fetched:
        dialog.recipient_table.scrollToBottom()
    assert fetched.args == [400]
    assert label(dialog, "recipientCountLabel") == "400 of 450 recipients loaded"
    while model.canFetchMore(QModelIndex()):
        with qtbot.waitSignal(model.pageFetched):
            model.fetchMore(QModelIndex())
    assert model.rowCount() == 450
    assert column(dialog, RecipientColumn.ROW)[-1] == "451"
    assert label(dialog, "recipientCountLabel") == "450 recipients"


def test_live_refresh_reads_only_the_rows_on_screen(
    open_main_window, make_batch, set_state, context, qtbot, monkeypatch
):
    # No model tester here either (it would fetch every page). 1,000 rows loaded, the
    # supervisor looks at rows around 700: a live refresh must not re-read all 1,000
    # (with 50,000 loaded that stalled the window for 100-240 ms every second).
    window = open_main_window()
    snapshot = make_batch("Long list", recipients=1000)
    dialog = details_of(window, snapshot.id, qtbot)
    dialog.tabs.setCurrentWidget(dialog.recipients_tab)
    model = dialog.recipient_model
    table = dialog.recipient_table
    qtbot.waitUntil(lambda: model.rowCount() == PAGE_SIZE, timeout=5000)
    while model.canFetchMore(QModelIndex()):
        with qtbot.waitSignal(model.pageFetched):
            model.fetchMore(QModelIndex())
    assert model.rowCount() == 1000
    dialog.select_recipient(700)
    table.scrollTo(model.index(700, 0), QAbstractItemView.ScrollHint.PositionAtCenter)
    scrolled = table.verticalScrollBar().value()
    first, last = dialog.visible_recipient_rows()
    assert first <= 700 <= last

    read: list[int] = []  # recipients read from the database by the refresh
    by_id = detail_models.recipients_by_id
    page = context.service.recipients_page

    def counting_by_id(service, batch_id, ids):
        found = by_id(service, batch_id, ids)
        read.append(len(found))
        return found

    def counting_page(*args, **kwargs):
        found = page(*args, **kwargs)
        read.append(len(found))
        return found

    monkeypatch.setattr(detail_models, "recipients_by_id", counting_by_id)
    monkeypatch.setattr(context.service, "recipients_page", counting_page)
    set_state(snapshot.id, BatchStatus.RUNNING, {RecipientStatus.COMPLETED: 1000})
    with qtbot.waitSignal(model.loaded, timeout=5000):
        dialog.recipients_changed()  # what the engine's recipientsChanged signal does
    assert [model.index(row, RecipientColumn.STATUS).data() for row in (first, 700, last)] == [
        "Completed"
    ] * 3
    assert label(dialog, "callDuration") != ""  # the selected recipient's call details
    assert 0 < sum(read) <= (last - first + 1) + 2 * REFRESH_MARGIN
    assert table.currentIndex().row() == 700
    assert table.verticalScrollBar().value() == scrolled


def test_export_writes_the_filtered_recipients(open_details, seeded, answers, qtbot, tmp_path):
    dialog = open_details(seeded["completed"].id)
    combo = dialog.findChild(QComboBox, "recipientStatusFilter")
    with qtbot.waitSignal(dialog.recipient_model.loaded):
        combo.setCurrentIndex(combo.findText("Completed"))
    answers.save_path = str(tmp_path / "out")
    qtbot.mouseClick(dialog.findChild(QPushButton, "exportButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: label(dialog, "detailsMessageLabel").startswith("Exported"))
    assert label(dialog, "detailsMessageLabel") == "Exported 7 recipients to out.csv."
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7 and {r["status"] for r in rows} == {"COMPLETED"}
    assert rows[0]["phone_number"] == "+12025550000"
    assert rows[0]["city"] == "Austin"


def test_export_cancelled_writes_nothing(open_details, seeded, answers, qtbot, tmp_path):
    dialog = open_details(seeded["completed"].id)
    answers.save_path = None
    qtbot.mouseClick(dialog.findChild(QPushButton, "exportButton"), Qt.MouseButton.LeftButton)
    assert label(dialog, "detailsMessageLabel") == ""
    assert list(tmp_path.glob("*.csv")) == []


def test_details_update_live_and_keep_the_selected_recipient(
    open_details, seeded, set_state, qtbot
):
    snapshot = seeded["running"]
    dialog = open_details(snapshot.id)
    statuses = column(dialog, RecipientColumn.STATUS)
    in_progress_row = statuses.index("In Progress")
    dialog.select_recipient(in_progress_row)
    set_state(
        snapshot.id,
        BatchStatus.RUNNING,
        {RecipientStatus.COMPLETED: 9, RecipientStatus.NO_ANSWER: 1},
    )
    # What the engine's signals do:
    dialog.window_under_test.mark_dirty(snapshot.id)
    dialog.window_under_test._recipients_changed(snapshot.id)
    qtbot.waitUntil(lambda: label(dialog, "summaryCompleted") == "10 of 10")
    assert label(dialog, "countInProgress") == "0"
    qtbot.waitUntil(lambda: "In Progress" not in column(dialog, RecipientColumn.STATUS))
    assert dialog.recipient_table.currentIndex().row() == in_progress_row
    assert label(dialog, "callDuration") != ""  # the call details follow the new outcome


def test_an_empty_history_says_what_will_appear(open_main_window, make_batch, context, qtbot):
    from app.models.schema import AuditEvent

    snapshot = make_batch("Quiet one")
    with context.sessions.begin() as session:  # as if nothing was ever recorded
        session.query(AuditEvent).filter(AuditEvent.batch_call_id == snapshot.id).delete()
    dialog = details_of(open_main_window(), snapshot.id, qtbot)
    hint = dialog.findChild(QLabel, "historyEmptyHint")
    qtbot.waitUntil(lambda: not hint.isHidden(), timeout=5000)
    assert dialog.history_model.rowCount() == 0
    assert hint.text().startswith("No action is recorded for this batch call.")


def test_history_lists_supervisor_actions(open_details, context, seeded, qtbot):
    snapshot = seeded["running"]
    context.service.pause(snapshot.id)
    context.service.resume(snapshot.id)
    dialog = open_details(snapshot.id)
    model = dialog.history_model
    actions = [model.index(r, 1).data() for r in range(model.rowCount())]
    assert actions == ["Create", "Pause", "Resume"]
    assert model.index(1, 2).data() == "qa"
    assert model.index(1, 3).data() == "test-host"
    context.service.rename(snapshot.id, "Renamed campaign")  # relayed as a change
    qtbot.waitUntil(lambda: model.rowCount() == 4)
    assert label(dialog, "detailsNameLabel") == "Renamed campaign"


def test_header_retry_and_delete(open_details, context, seeded, answers, performed, qtbot):
    snapshot = seeded["failed"]
    dialog = open_details(snapshot.id)
    window = dialog.window_under_test
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "detailsRetryButton"), Qt.MouseButton.LeftButton
        )
    assert answers.questions[-1][0] == "Retry batch call"
    assert context.service.get(snapshot.id).status is BatchStatus.SCHEDULED
    qtbot.waitUntil(lambda: label(dialog, "detailsStatusLabel") == "Scheduled")
    assert not dialog.findChild(QPushButton, "detailsRetryButton").isVisible()

    assert performed == [(snapshot.id, Action.RETRY)]

    answers.confirm = False
    qtbot.mouseClick(
        dialog.findChild(QPushButton, "detailsDeleteButton"), Qt.MouseButton.LeftButton
    )
    assert answers.questions[-1][0] == "Delete batch call"
    qtbot.waitUntil(lambda: not window.tasks.busy(include_quiet=True), timeout=5000)
    assert performed == [(snapshot.id, Action.RETRY)]  # declined: Delete never attempted
    assert context.service.find(snapshot.id) is not None
    assert dialog.isVisible()
    answers.confirm = True
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "detailsDeleteButton"), Qt.MouseButton.LeftButton
        )
    assert context.service.find(snapshot.id) is None
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert window.model.row_of(snapshot.id) is None


def test_header_reload_shows_progress_then_success(open_details, seeded, set_state, qtbot):
    snapshot = seeded["paused"]
    dialog = open_details(snapshot.id)
    set_state(snapshot.id, BatchStatus.PAUSED, {RecipientStatus.COMPLETED: 6})
    with qtbot.waitSignal(dialog.reloaded):
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "detailsReloadButton"), Qt.MouseButton.LeftButton
        )
        assert dialog.loading.isVisible()
    assert not dialog.loading.isVisible()
    assert label(dialog, "detailsMessageLabel") == "Reloaded."
    assert label(dialog, "summaryCompleted") == "6 of 10"
    assert QApplication.activeModalWidget() is None


def test_a_100_character_name_is_elided_not_widening_the_dialog(open_details, make_batch, qtbot):
    name = "W" * 100  # the longest name allowed, in the widest letter
    dialog = open_details(make_batch(name).id)
    assert dialog.minimumSizeHint().width() < 900
    assert dialog.width() == 900  # not forced wider (it was 1,436 px and more)
    qtbot.waitUntil(lambda: assert_nothing_clipped(dialog), timeout=3000)
    title = dialog.name_label
    assert title.text() == name and title.toolTip() == name
    assert title.shown_text().endswith("…")
    assert dialog.windowTitle().startswith(name)
    reload_button = dialog.findChild(QPushButton, "detailsReloadButton")
    assert reload_button.geometry().right() < dialog.width()  # the header buttons still show


def test_percentages_agree_everywhere(open_details, make_batch, set_state, qtbot):
    # 9 of 41 is 21.95 %: rounding the decimal ("22.0%") beside the truncated whole
    # ("21%") made the summary contradict itself.
    snapshot = make_batch("Odd total", recipients=41)
    set_state(snapshot.id, BatchStatus.RUNNING, {RecipientStatus.COMPLETED: 9})
    dialog = open_details(snapshot.id)
    assert label(dialog, "summaryPercent") == "21.9%"
    assert dialog.progress_bar.format() == "21% (9/41)"
    window = dialog.window_under_test
    qtbot.waitUntil(lambda: window.model.snapshot(snapshot.id) is not None, timeout=5000)
    row = window.model.row_of(snapshot.id)
    assert window.model.index(row, Column.PROGRESS).data() == "21% (9/41)"


def test_summary_shows_an_estimated_finish_while_it_runs(
    open_details, make_batch, set_state, qtbot
):
    every_day = {
        "window_start": "00:00",
        "window_end": "23:59",
        "allowed_days": frozenset(range(1, 8)),
    }
    snapshot = make_batch("Forecast", recipients=10, timezone="UTC", **every_day)
    finished = make_batch("Finished", recipients=10, timezone="UTC", **every_day)
    set_state(finished.id, BatchStatus.COMPLETED, {RecipientStatus.COMPLETED: 10})
    dialog = open_details(snapshot.id)
    # The pacing setting is read off the GUI thread with the live figures, then:
    qtbot.waitUntil(lambda: label(dialog, "summaryForecast") != formatting.NO_VALUE)
    # Scheduled (Send Now): 10 calls on one line of 60-second calls, 10 minutes.
    assert label(dialog, "summaryForecast").startswith("About Mon 23 Nov 14:1")
    assert "about 60 calls an hour" in label(dialog, "summaryForecast")
    dialog.close()
    done = open_details(finished.id)
    qtbot.waitUntil(lambda: done.live_figures_shown, timeout=5000)
    assert label(done, "summaryForecast") == formatting.NO_VALUE


def test_call_details_show_the_attempt_history_and_the_next_attempt(
    open_details, make_batch, context, qtbot
):
    from datetime import timedelta

    from sqlalchemy import select, update

    from app.models.recipients import move_recipient
    from app.models.schema import CallAttempt, Recipient

    snapshot = make_batch("Retries", recipients=2, max_attempts=3, retry_delay_minutes=10)
    now = context.clock()
    with context.sessions.begin() as session:
        first = session.scalars(
            select(Recipient.id)
            .where(Recipient.batch_call_id == snapshot.id)
            .order_by(Recipient.id)
        ).first()
        for number, status in ((1, "busy"), (2, "no-answer")):
            session.add(
                CallAttempt(
                    recipient_id=first, batch_call_id=snapshot.id, attempt_number=number,
                    provider="simulation", provider_call_id=f"CA{number}",
                    to_number="+12025550000", from_number="+12025550100",
                    provider_status=status, outcome="NO_ANSWER", created_at=now,
                    requested_at=now, ended_at=now + timedelta(minutes=number),
                )
            )  # fmt: skip
        move_recipient(
            session, first, snapshot.id, [RecipientStatus.PENDING], RecipientStatus.WAITING_RETRY
        )
        session.execute(
            update(Recipient)
            .where(Recipient.id == first)
            .values(attempts=2, next_try_at=now + timedelta(minutes=12))
        )
    dialog = open_details(snapshot.id)
    with qtbot.waitSignal(dialog.attemptHistoryLoaded, timeout=5000):
        dialog.select_recipient(0)
    assert label(dialog, "callRequested") == (
        f"Next attempt at {formatting.local_time(now + timedelta(minutes=12), seconds=True)}."
    )
    history = label(dialog, "callHistory").splitlines()
    assert history[0].startswith("1. Busy, ") and history[1].startswith("2. No Answer, ")
    dialog.select_recipient(1)
    assert label(dialog, "callHistory") == "No call yet."
