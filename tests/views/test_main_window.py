"""The main window's list: what the supervisor sees, the live search, sorting, the empty
state, reload, and live updates that keep selection and search."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QPushButton, QTableView, QWidget

from app.models.status import BatchStatus, RecipientStatus
from app.services.engine import EngineState
from app.services.engine_thread import EngineHost
from app.views.batch_model import Column
from app.views.main_window import MainWindow


def visible_column(window: MainWindow, column: Column = Column.NAME) -> list[str]:
    proxy = window.proxy
    return [proxy.index(row, column).data() for row in range(proxy.rowCount())]


def row_text(window: MainWindow, name: str) -> dict[Column, str]:
    proxy = window.proxy
    for row in range(proxy.rowCount()):
        if proxy.index(row, Column.NAME).data() == name:
            return {c: proxy.index(row, c).data() for c in Column}
    raise AssertionError(f"{name} not shown")


def test_list_shows_every_batch_call_with_its_columns(open_main_window, seeded):
    window = open_main_window()
    table = window.findChild(QTableView, "batchCallTable")
    assert table is not None and table.isVisible()
    headers = [window.proxy.headerData(c, Qt.Orientation.Horizontal) for c in Column]
    assert headers[:5] == ["Batch Call Name", "Total Recipients", "Status", "Progress", "Created"]
    assert sorted(visible_column(window)) == sorted(s.name for s in seeded.values())

    running = row_text(window, "Campaign running")
    assert running[Column.STATUS] == "In Progress"
    assert running[Column.TOTAL] == "10"
    assert running[Column.PROGRESS] == "30% (3/10)"
    assert row_text(window, "Campaign completed")[Column.PROGRESS] == "100% (10/10)"
    assert row_text(window, "Campaign scheduled")[Column.STATUS] == "Scheduled"
    assert row_text(window, "Campaign paused")[Column.STATUS] == "Paused"
    # Newest first by default.
    assert visible_column(window)[0] == "Campaign failed"


def test_search_filters_as_typed_case_insensitively_by_name_only(open_main_window, seeded, qtbot):
    window = open_main_window()
    field = window.findChild(QLineEdit, "searchField")
    assert field.isClearButtonEnabled()
    qtbot.keyClicks(field, "COMPL")
    assert sorted(visible_column(window)) == ["Campaign completed", "Campaign completed-clean"]
    qtbot.keyClicks(field, "eted-c")
    assert visible_column(window) == ["Campaign completed-clean"]
    # Names only: a status word or a count does not match.
    field.clear()
    qtbot.keyClicks(field, "In Progress")
    assert visible_column(window) == []
    summary = window.findChild(QLabel, "searchSummaryLabel")
    assert summary.text() == f"No match among {len(seeded)}."
    assert "No batch call name contains “In Progress”" in window.no_match_label.text()
    # Clearing (Esc, or the clear button) shows all again.
    qtbot.keyClick(field, Qt.Key.Key_Escape)
    assert field.text() == ""
    assert len(visible_column(window)) == len(seeded)
    assert summary.text() == ""


def test_sorting_is_numeric_for_counts_and_progress(open_main_window, make_batch):
    for name, count in (("Nine", 9), ("Eighty", 80), ("Seven hundred", 700)):
        make_batch(name, recipients=count)
    window = open_main_window()
    window.table.sortByColumn(Column.TOTAL, Qt.SortOrder.AscendingOrder)
    assert visible_column(window) == ["Nine", "Eighty", "Seven hundred"]
    window.table.sortByColumn(Column.TOTAL, Qt.SortOrder.DescendingOrder)
    assert visible_column(window, Column.TOTAL) == ["700", "80", "9"]


def test_empty_state_invites_to_create_the_first_batch_call(open_main_window, qtbot):
    window = open_main_window()
    empty = window.findChild(QWidget, "emptyState")
    assert empty.isVisible()
    assert not window.table.isVisible()
    button = window.findChild(QPushButton, "emptyStateCreateButton")
    assert "first batch call" in button.text()


def test_reload_shows_loading_then_success_and_new_rows(open_main_window, make_batch, qtbot):
    window = open_main_window()
    make_batch("Made elsewhere")  # e.g. by a second desktop
    with qtbot.waitSignal(window.tasks.busyChanged) as busy:
        qtbot.mouseClick(window.reload_button, Qt.MouseButton.LeftButton)
    assert busy.args == [True]
    assert window.loading_indicator.isVisible()
    qtbot.waitUntil(lambda: not window.loading_indicator.isVisible())
    assert visible_column(window) == ["Made elsewhere"]
    assert window.statusBar().currentMessage() == "Reloaded 1 batch call."
    assert window.table.isVisible()


def test_live_update_changes_only_the_row_and_keeps_selection_and_search(
    open_main_window, set_state, seeded, qtbot
):
    window = open_main_window()
    qtbot.keyClicks(window.search_field, "campaign r")
    assert window.select_batch(seeded["running"].id)
    changed_rows: list[int] = []
    window.model.dataChanged.connect(lambda top, _bottom, _roles: changed_rows.append(top.row()))
    window.model.rowsRemoved.connect(lambda *_: changed_rows.append(-1))
    set_state(
        seeded["running"].id,
        BatchStatus.RUNNING,
        {RecipientStatus.COMPLETED: 8, RecipientStatus.IN_PROGRESS: 2},
    )
    window.mark_dirty(seeded["running"].id)  # what the engine's batchCallChanged does
    qtbot.waitUntil(lambda: row_text(window, "Campaign running")[Column.PROGRESS].startswith("80"))
    assert changed_rows == [window.model.row_of(seeded["running"].id)]
    assert window.current_snapshot().id == seeded["running"].id
    assert window.search_field.text() == "campaign r"


def test_bursts_of_changes_are_coalesced(open_main_window, context, seeded, qtbot):
    window = open_main_window()
    finished: list[str] = []
    window.tasks.taskFinished.connect(finished.append)
    for _ in range(50):
        for snapshot in seeded.values():
            window.mark_dirty(snapshot.id)
    qtbot.waitUntil(lambda: "refresh" in finished, timeout=3000)
    assert finished.count("refresh") == 1 and not window.tasks.running("refresh")
    assert not window.live_timer.isActive()  # nothing left for a second one


def test_status_bar_says_simulation_mode_and_engine_stopped(open_main_window, qtbot):
    window = open_main_window()
    qtbot.waitUntil(lambda: "Simulation mode" in window.mode_label.text(), timeout=5000)
    assert window.engine_label.text() == "Engine stopped"


def test_twilio_mode_shows_masked_account(open_main_window, context, qtbot):
    sid = "AC" + "0123456789abcdef" * 2
    context.settings.update(provider="twilio", twilio_account_sid=sid)
    window = open_main_window()
    qtbot.waitUntil(lambda: window.mode_label.text() == "Twilio: AC01…cdef", timeout=5000)
    assert sid not in window.mode_label.text()


def test_twilio_account_given_only_to_the_keyring_is_read_off_the_gui_thread(
    open_main_window, context, qtbot, monkeypatch
):
    from app.services import secrets

    sid = "AC" + "fedcba9876543210" * 2
    monkeypatch.setenv(secrets.ACCOUNT_SID_ENV, sid)
    monkeypatch.setenv(secrets.AUTH_TOKEN_ENV, "t" * 32)
    readers: list[str] = []
    real = secrets.load_twilio_credentials

    def load() -> secrets.TwilioCredentials | None:
        readers.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(secrets, "load_twilio_credentials", load)
    context.settings.update(provider="twilio", twilio_account_sid="")
    window = open_main_window()
    qtbot.waitUntil(lambda: window.mode_label.text() == "Twilio: ACfe…3210", timeout=5000)
    assert readers == ["detachedTaskThread"]  # a locked keyring never blocks the window


def test_enter_and_double_click_open_details(open_main_window, seeded, qtbot):
    window = open_main_window()
    window.select_batch(seeded["paused"].id)
    window.table.setFocus()
    with qtbot.waitSignal(window.detailsOpened) as opened:
        qtbot.keyClick(window.table, Qt.Key.Key_Return)
    assert opened.args == [seeded["paused"].id]
    window.details_dialog(seeded["paused"].id).close()
    index = window.proxy.mapFromSource(
        window.model.index(window.model.row_of(seeded["failed"].id), 0)
    )
    rect = window.table.visualRect(index)
    # A real double-click starts with a press (the view remembers the pressed row).
    qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(window.detailsOpened) as opened:
        qtbot.mouseDClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [seeded["failed"].id]


@pytest.fixture
def running_engine(context, qtbot) -> Iterator[EngineHost]:
    """The dialer engine on the test database, started (as run_gui starts it) before any
    window exists; stopped (bounded) after the test."""
    engine = EngineHost(context.database_url, clock=context.clock)
    engine.start()
    yield engine
    engine.stop(5000)
    assert not engine.isRunning(), "the engine thread is still running"


def test_engine_state_reached_before_the_window_opened_is_shown(
    open_main_window, running_engine, qtbot
):
    # The engine reports a state only when it changes; this one was reported to nobody.
    qtbot.waitUntil(lambda: running_engine.state.state is EngineState.DIALING, timeout=10_000)
    window = open_main_window(engine=running_engine)
    assert window.engine_label.text() == "Engine: dialing"


def test_engine_state_changes_reach_the_status_bar(open_main_window, context, qtbot):
    engine = EngineHost(context.database_url, clock=context.clock)
    window = open_main_window(engine=engine)
    assert window.engine_label.text() == "Engine stopped"  # not started yet
    engine.start()
    try:
        qtbot.waitUntil(lambda: window.engine_label.text() == "Engine: dialing", timeout=10_000)
    finally:
        engine.stop(5000)
    qtbot.waitUntil(lambda: window.engine_label.text() == "Engine stopped", timeout=5000)


def test_a_long_search_that_matches_nothing_never_widens_the_window(
    open_main_window, make_batch, qtbot
):
    make_batch("Alpha", recipients=1)
    window = open_main_window()
    width = window.width()
    window.search_field.setText("<b>" + "x" * 300)
    assert window.stack.currentWidget() is window.no_match_state
    qtbot.wait(50)  # the layout settles
    assert window.width() == width
    assert "&lt;b&gt;" in window.no_match_label.text()  # shown as typed, not as HTML
    assert window.search_summary.text() == "No match among 1."


def test_only_the_first_load_reads_without_the_collector_and_freezes(
    open_main_window, qtbot, monkeypatch
):
    """A reload of an empty list (every 5 s) must not freeze the garbage of the moment
    for good, as the first load's freeze does."""
    import gc

    from app.views import aio

    paused: list[int] = []
    real = aio.collector_paused

    def counted():  # type: ignore[no-untyped-def]
        paused.append(1)
        return real()

    monkeypatch.setattr(aio, "collector_paused", counted)
    window = open_main_window()
    qtbot.waitUntil(lambda: window.loaded, timeout=5000)
    assert paused == [1]
    for _ in range(2):
        with qtbot.waitSignal(window.reloaded, timeout=5000):
            window.reload(quiet=True)
    assert paused == [1]
    assert gc.isenabled()
