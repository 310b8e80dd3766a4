"""The batch call list at scale: what the proxies read stays in C++, many rows arrive in
bulk (a handful of insert announcements, not one per row), updates re-sort once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import shiboken6
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QHeaderView
from sqlalchemy import insert

from app.models.schema import BatchCall
from app.models.status import BatchStatus, RecipientStatus
from app.views import batch_model
from app.views import main_window as main_window_module
from app.views.batch_model import (
    BatchCallFilterProxy,
    BatchCallSorter,
    BatchCallTableModel,
    Column,
    diff_rows,
    prepare_rows,
    snapshot_at,
)


def store_batch_calls(context, count: int, start: int = 0) -> None:
    """`count` batch calls stored in one statement (no recipients), oldest first."""
    service = context.service
    agent, number = service.list_agents()[0], service.list_from_numbers()[0]
    created = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "name": f"Bulk {i:05d}",
            "status": BatchStatus.COMPLETED.value,
            "agent_id": agent.id,
            "from_number_id": number.id,
            "from_number": number.phone_number,
            "send_type": "SEND_NOW",
            "timezone": "UTC",
            "window_start": "09:00",
            "window_end": "18:00",
            "allowed_days": "1,2,3,4,5",
            "reserved_concurrency": 1,
            "total_recipients": 10 + i,
            "completed_count": 10 + i,
            "created_at": created + timedelta(minutes=i),
            "updated_at": created + timedelta(minutes=i),
        }
        for i in range(start, start + count)
    ]
    with context.sessions.begin() as session:
        session.execute(insert(BatchCall), rows)


def shown_names(window) -> list[str]:
    proxy = window.proxy
    return [proxy.index(row, Column.NAME).data() for row in range(proxy.rowCount())]


def test_the_proxies_read_the_rows_without_calling_python():
    """Filtering and sorting call no Python per row: nothing they call is overridden."""
    for method in ("data", "rowCount", "columnCount", "index", "parent"):
        assert getattr(BatchCallTableModel, method) is getattr(QStandardItemModel, method), method
    for proxy in (BatchCallSorter, BatchCallFilterProxy):
        for method in ("lessThan", "filterAcceptsRow", "filterAcceptsColumn", "data"):
            assert getattr(proxy, method) is getattr(QSortFilterProxyModel, method), method


def test_cells_are_made_in_cpp_so_no_first_read_asks_python(qapp, context):
    """A QStandardItem made from Python asks Python, once per item and method, whether a
    method is overridden: the first search over 100,000 rows then took three times as long
    as the next. The cells are C++ copies."""
    store_batch_calls(context, 3)
    for row in prepare_rows(context.service.list()):
        assert [shiboken6.createdByPython(cell) for cell in row.cells] == [False] * len(Column)


def test_many_new_batch_calls_arrive_in_a_few_bulk_inserts(
    open_main_window, context, model_checks, qtbot, monkeypatch
):
    monkeypatch.setattr(main_window_module, "INSERT_CHUNK_ROWS", 40)
    store_batch_calls(context, 100)
    window = open_main_window()
    model_checks.check(window.proxy.sorter)
    assert window.model.rowCount() == 100
    inserts: list[int] = []
    window.model.rowsInserted.connect(lambda _p, first, last: inserts.append(last - first + 1))
    store_batch_calls(context, 130, start=100)
    with qtbot.waitSignal(window.reloaded, timeout=10_000):
        window.reload()
    assert inserts == [40, 40, 40, 10]  # chunks of INSERT_CHUNK_ROWS, one turn each
    assert window.model.rowCount() == 230
    names = shown_names(window)
    assert names[0] == "Bulk 00229" and names[-1] == "Bulk 00000"  # newest first


def test_a_reload_announces_changed_rows_once_and_resorts_them(
    open_main_window, context, qtbot, model_checks
):
    store_batch_calls(context, 30)
    window = open_main_window()
    model_checks.check(window.proxy.sorter)
    window.table.sortByColumn(Column.TOTAL, Qt.SortOrder.DescendingOrder)
    assert shown_names(window)[0] == "Bulk 00029"
    model = window.model
    changes: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda top, bottom, _roles: changes.append((top.row(), bottom.row())))
    first, fifth = model.snapshot(1), model.snapshot(5)
    model.update_rows(
        [
            replace(first, total_recipients=1000, counts={**first.counts}),
            replace(fifth, total_recipients=500),
        ]
    )
    rows = sorted((model.row_of(1), model.row_of(5)))
    assert changes == [(rows[0], rows[1])]  # one announcement for both rows
    assert shown_names(window)[:3] == ["Bulk 00000", "Bulk 00004", "Bulk 00029"]
    assert window.proxy.index(0, Column.TOTAL).data() == "1,000"


def test_an_unchanged_reload_changes_nothing(open_main_window, context, qtbot):
    store_batch_calls(context, 20)
    window = open_main_window()
    signals: list[str] = []
    window.model.dataChanged.connect(lambda *_: signals.append("changed"))
    window.model.rowsInserted.connect(lambda *_: signals.append("inserted"))
    window.model.rowsRemoved.connect(lambda *_: signals.append("removed"))
    with qtbot.waitSignal(window.reloaded, timeout=10_000):
        window.reload(quiet=True)
    assert signals == []


def test_diff_rows_finds_removed_changed_and_added(qapp, context):
    store_batch_calls(context, 3)
    one, two, three = sorted(context.service.list(), key=lambda s: s.id)
    shown = {one.id: one, two.id: two}
    running = replace(two, status=BatchStatus.RUNNING)
    diff = diff_rows(shown, {two.id: running, three.id: three})
    assert diff.removed == [one.id]
    assert diff.changed == [running]
    assert [row.snapshot for row in diff.added] == [three]
    assert diff.added[0].cells[Column.NAME].text() == three.name


def test_cells_hold_text_and_sort_keys(qapp, context):
    store_batch_calls(context, 1)
    (snapshot,) = context.service.list()
    snapshot = replace(
        snapshot, counts={**snapshot.counts, RecipientStatus.COMPLETED: 2}, total_recipients=8
    )
    (row,) = prepare_rows([snapshot])
    model = BatchCallTableModel()
    model.append_prepared([row])
    index = model.index(0, Column.PROGRESS)
    assert index.data() == "25% (2/8)"
    assert index.data(Qt.ItemDataRole.UserRole + 1) == pytest.approx(25.0)
    assert snapshot_at(model.index(0, Column.ACTIONS)) == snapshot
    assert not model.flags(index) & Qt.ItemFlag.ItemIsEditable


def test_a_reload_reads_again_a_row_shown_from_another_read(open_main_window, context, qtbot):
    """A reload builds snapshots only for rows stored differently since the last one; a
    row shown meanwhile from a live update is compared again even if its row did not
    change, so the list never keeps what the live update showed."""
    store_batch_calls(context, 3)
    window = open_main_window()
    shown = window.model.snapshot(2)
    window.apply_snapshot(2, replace(shown, name="Not what is stored"))
    assert shown_names(window)[1] == "Not what is stored"
    with qtbot.waitSignal(window.reloaded, timeout=10_000):
        window.reload(quiet=True)
    assert shown_names(window) == ["Bulk 00002", "Bulk 00001", "Bulk 00000"]
    assert window.model.snapshot(2) == shown


def test_a_reload_updates_only_the_cells_that_changed(open_main_window, context, qtbot):
    store_batch_calls(context, 5)
    window = open_main_window()
    with context.sessions.begin() as session:
        session.execute(
            BatchCall.__table__.update()
            .where(BatchCall.id == 4)
            .values(total_recipients=2000, completed_count=1000)
        )
    changes: list[tuple[int, int, int, int]] = []
    window.model.dataChanged.connect(
        lambda top, bottom, _roles: changes.append(
            (top.row(), bottom.row(), top.column(), bottom.column())
        )
    )
    with qtbot.waitSignal(window.reloaded, timeout=10_000):
        window.reload(quiet=True)
    row = window.model.row_of(4)
    assert changes == [(row, row, Column.NAME, Column.PROGRESS)]
    assert window.model.index(row, Column.TOTAL).data() == "2,000"
    assert window.model.index(row, Column.PROGRESS).data() == "50% (1,000/2,000)"
    assert window.model.snapshot(4) == context.service.get(4)


def test_a_search_filters_in_one_reset_keeping_order_selection_and_columns(
    open_main_window, context, qtbot, model_checks, monkeypatch
):
    monkeypatch.setattr(batch_model, "IN_PLACE_ROWS", 0)  # as with thousands of rows
    store_batch_calls(context, 30)
    context.service.rename(7, "Straße 7")
    window = open_main_window()
    model_checks.check(window.proxy)
    header = window.table.horizontalHeader()
    widths = [window.table.columnWidth(c) for c in Column if c != Column.NAME]
    assert window.select_batch(12)  # "Bulk 00011"
    resets: list[int] = []
    window.proxy.modelReset.connect(lambda: resets.append(1))
    window.proxy.layoutChanged.connect(lambda: resets.append(0))
    removed: list[int] = []
    window.proxy.rowsRemoved.connect(lambda *_: removed.append(1))
    qtbot.keyClicks(window.search_field, "1")
    # Scattered matches, newest first as sorted; one pass, no row-by-row removals.
    assert shown_names(window) == [f"Bulk {i:05d}" for i in range(29, -1, -1) if "1" in str(i)]
    assert removed == [] and 0 not in resets
    assert window.current_snapshot().id == 12  # still selected
    # The header kept its sections: widths set by hand, the name stretching.
    assert [window.table.columnWidth(c) for c in Column if c != Column.NAME] == widths
    assert header.sectionResizeMode(Column.NAME) == QHeaderView.ResizeMode.Stretch
    window.search_field.setText("  STRASSE ")  # folded: ß matches SS; spaces trimmed
    assert shown_names(window) == ["Straße 7"]
    assert window.current_snapshot() is None
    window.search_field.clear()
    assert window.proxy.rowCount() == 30
    window.table.sortByColumn(Column.TOTAL, Qt.SortOrder.AscendingOrder)
    window.search_field.setText("bulk 0002")  # a new search never re-sorts: the sorter keeps
    assert shown_names(window) == [f"Bulk {i:05d}" for i in range(20, 30)]


def test_the_first_load_shows_the_newest_rows_first_while_the_rest_are_built(
    context, qtbot, model_checks, monkeypatch
):
    """The first chunk (the newest batch calls, on top of the default order) is inserted
    as soon as it is read; the others follow a chunk per turn, each at the end of the
    sorted rows; ties in a sort show the newest first."""
    from app.views.main_window import MainWindow

    monkeypatch.setattr(main_window_module, "INSERT_CHUNK_ROWS", 40)
    store_batch_calls(context, 100)
    window = MainWindow(context)
    qtbot.addWidget(window)
    model_checks.check(window.model)
    model_checks.check(window.proxy)
    inserts: list[tuple[int, int, str]] = []

    def inserted(_parent, first: int, last: int) -> None:
        inserts.append((first, last, window.proxy.index(0, Column.NAME).data()))

    window.proxy.rowsInserted.connect(inserted)
    window.show()
    qtbot.waitUntil(lambda: window.loaded, timeout=10_000)
    assert inserts == [(0, 39, "Bulk 00099"), (40, 79, "Bulk 00099"), (80, 99, "Bulk 00099")]
    assert shown_names(window) == [f"Bulk {i:05d}" for i in range(99, -1, -1)]
    window.table.sortByColumn(Column.STATUS, Qt.SortOrder.AscendingOrder)  # all tied
    assert shown_names(window)[:2] == ["Bulk 00099", "Bulk 00098"]
    window.close()


def test_a_search_on_a_short_list_changes_the_rows_in_place(
    open_main_window, context, qtbot, monkeypatch
):
    """On a short list Qt's own range-by-range update is cheap: a keystroke that keeps
    the rows changes nothing shown (no reset, no repaint); on a long list a search that
    could move many ranges is one reset."""
    store_batch_calls(context, 30)
    window = open_main_window()
    window.search_field.setText("ulk 0002")
    assert window.select_batch(25)  # "Bulk 00024"
    signals: list[str] = []
    for name in ("modelReset", "rowsRemoved", "rowsInserted", "layoutChanged"):
        getattr(window.proxy, name).connect(lambda *_, n=name: signals.append(n))
    window.search_field.setText("Bulk 0002")  # every shown name contains it
    window.search_field.setText("Bulk 0002 ")  # the same search
    window.search_field.setText("ulk 0002")  # shorter, the same rows
    assert signals == []
    qtbot.keyClicks(window.search_field, "4")  # "ulk 00024": rows removed in place
    assert shown_names(window) == ["Bulk 00024"]
    assert "rowsRemoved" in signals and "modelReset" not in signals
    assert window.current_snapshot().id == 25
    monkeypatch.setattr(batch_model, "IN_PLACE_ROWS", 5)  # as with 100,000 rows
    monkeypatch.setattr(batch_model, "IN_PLACE_MOVES", 25)
    signals.clear()
    qtbot.keyClick(window.search_field, Qt.Key.Key_Backspace)  # "ulk 0002": 10 rows
    assert signals == ["modelReset", "modelReset"]
    assert shown_names(window) == [f"Bulk {i:05d}" for i in range(29, 19, -1)]
    assert window.current_snapshot().id == 25  # selected again
    signals.clear()
    window.search_field.setText("ulk 00024")  # longer, 10 shown > 5: a reset too
    assert signals == ["modelReset", "modelReset"]
    window.search_field.setText("")
    signals.clear()
    window.search_field.setText("b")  # every row shown, 30 > 5: one reset
    assert signals == ["modelReset", "modelReset"]
    signals.clear()
    window.search_field.setText("")  # shorter with every row shown: nothing to insert
    assert signals == []
    assert window.current_snapshot().id == 25
