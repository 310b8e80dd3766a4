"""The list of batch calls as a Qt item model, and the proxies behind sorting and the live
name search.

At 10,000 batch calls a model written in Python is called from C++ for every row and
every comparison each time the search text changes (about 400,000 calls for 18
keystrokes). So the rows live in a `QStandardItemModel`: each cell (a plain C++ item, see
`build_row`) holds its text and its sort key, set once per row, and the proxies read them
without calling Python. Sorting and
filtering are two `QSortFilterProxyModel`s: the sorter sits on the rows, the name filter on
top of the sorter, so a keystroke only tests names (it never re-sorts the rows it shows
again), and a change of sort never re-tests names.

Rows' cells are built in a worker thread (`prepare_rows`); the first load inserts the
newest rows at once and the rest a chunk per turn of the event loop (one `rowsInserted`
each); later reloads change only the rows that differ, each through one begin/end pair or
one `dataChanged` naming its roles, so the view keeps its selection, its scroll position
and the search text while counts change.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QStandardItem, QStandardItemModel

from app.models.snapshots import BatchCallSnapshot
from app.views import formatting

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex


class BatchCallRole(IntEnum):
    """Custom roles: the snapshot itself, a sort key, and the id."""

    SNAPSHOT = Qt.ItemDataRole.UserRole
    SORT_KEY = Qt.ItemDataRole.UserRole + 1
    BATCH_ID = Qt.ItemDataRole.UserRole + 2
    PROGRESS = Qt.ItemDataRole.UserRole + 3


class Column(IntEnum):
    NAME = 0
    TOTAL = 1
    STATUS = 2
    PROGRESS = 3
    CREATED = 4
    ACTIONS = 5


HEADERS = {
    Column.NAME: "Batch Call Name",
    Column.TOTAL: "Total Recipients",
    Column.STATUS: "Status",
    Column.PROGRESS: "Progress",
    Column.CREATED: "Created",
    Column.ACTIONS: "",
}
HEADER_TEXTS = tuple(HEADERS[column] for column in Column)

_CHANGED_ROLES = [
    Qt.ItemDataRole.DisplayRole,
    BatchCallRole.SNAPSHOT,
    BatchCallRole.SORT_KEY,
    BatchCallRole.PROGRESS,
]

#: A search changes the filter in place (Qt removes or inserts the rows that change, one
#: contiguous range at a time) only while at most this many rows are shown: each range
#: costs microseconds and moves the rows after it, so a word in every third name of 10,000
#: (thousands of ranges) took 13-14 ms in place against 2-3 ms for one reset.
IN_PLACE_ROWS = 2_000

#: ... and while the rows moved stay under about this many (ranges inserted times rows).
IN_PLACE_MOVES = 10_000 * 10_000

#: More new rows than this in one reload rebuild the model in the background and swap it
#: in (one reset) instead of inserting them one by one on the GUI thread.
BULK_INSERT_ROWS = 500


def row_values(snapshot: BatchCallSnapshot) -> list[tuple[str, Any]]:
    """(text, sort key) of each cell of the batch call's row, in column order."""
    return [
        (snapshot.name, snapshot.name.casefold()),
        (formatting.count(snapshot.total_recipients), snapshot.total_recipients),
        (snapshot.status_display, snapshot.status_display),
        (formatting.progress_text(snapshot), snapshot.progress_percent),
        (formatting.local_time(snapshot.created_at), snapshot.created_at.timestamp()),
        ("⋮", snapshot.id),
    ]


#: Every cell is a copy of this one. An item made from Python (`QStandardItem(text)`) is a
#: binding subclass whose C++ methods first ask Python, once per item and method, whether
#: Python overrides them: the first search over 100,000 rows took 150-190 ms instead of
#: 50 ms (and waited for the GIL). A copy made in C++ (`clone()`) is a plain QStandardItem.
_CELL = QStandardItem()


def build_row(snapshot: BatchCallSnapshot) -> list[QStandardItem]:
    """The cells of one batch call (safe in a worker thread: items are not QObjects).

    The name cell also carries the snapshot and the id; every cell carries its sort key."""
    cells = []
    for text, sort_key in row_values(snapshot):
        item = _CELL.clone()
        item.setText(text)
        item.setData(sort_key, BatchCallRole.SORT_KEY)
        cells.append(item)
    cells[Column.NAME].setData(snapshot, BatchCallRole.SNAPSHOT)
    cells[Column.NAME].setData(snapshot.id, BatchCallRole.BATCH_ID)
    return cells


class BatchCallTableModel(QStandardItemModel):
    """One row per batch call; the name cell hands out the BatchCallSnapshot through
    `BatchCallRole.SNAPSHOT` (`snapshot_at` reads it from any cell of the row).

    Cells are not editable; nothing but `upsert`, `remove`, `merge` and `load` changes rows.
    """

    def __init__(self, parent: QObject | None = None):
        super().__init__(0, len(Column), parent)
        self.setObjectName("batchCallModel")
        self.setHorizontalHeaderLabels(list(HEADER_TEXTS))
        header = self.horizontalHeaderItem(Column.ACTIONS)
        if header is not None:
            header.setToolTip("Actions")
        self._snapshots: list[BatchCallSnapshot] = []
        self._row_of: dict[int, int] = {}

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        # Read by views for the cells on screen only; the proxies never ask.
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # ----------------------------------------------------------------- contents
    def snapshots(self) -> list[BatchCallSnapshot]:
        return list(self._snapshots)

    def snapshot(self, batch_id: int) -> BatchCallSnapshot | None:
        row = self._row_of.get(batch_id)
        return None if row is None else self._snapshots[row]

    def row_of(self, batch_id: int) -> int | None:
        return self._row_of.get(batch_id)

    def by_id(self) -> dict[int, BatchCallSnapshot]:
        """A copy of the rows by id (a reload compares against it in a worker thread)."""
        return {s.id: s for s in self._snapshots}

    def _reindex(self) -> None:
        self._row_of = {s.id: i for i, s in enumerate(self._snapshots)}

    def append_prepared(self, rows: Sequence[PreparedRow]) -> None:
        """Append many rows with one rowsInserted: the proxies then sort and filter them
        in one pass instead of once per row."""
        self.insert_prepared(rows, self.rowCount())

    def insert_prepared(self, rows: Sequence[PreparedRow], at: int) -> int:
        """Insert many rows before row `at` with one rowsInserted; returns the row after
        the last one inserted.

        The rows are kept newest first (as `prepare_rows` gives them, and new batch calls
        go on top): ties in the sort show the newest first, and a first load inserted in
        that order adds each chunk at the end of the sorted rows, the cheapest place."""
        # A row shown meanwhile (a live update) is at least as fresh: keep it.
        new = [r for r in rows if r.snapshot.id not in self._row_of]
        if not new:
            return at
        end = at + len(new)
        self.beginInsertRows(QModelIndex(), at, end - 1)
        blocked = self.blockSignals(True)  # the nested per-row inserts stay quiet
        try:
            for offset, row in enumerate(new):
                self.insertRow(at + offset, row.cells)
            self._snapshots[at:at] = [row.snapshot for row in new]
            for position in range(at, len(self._snapshots)):
                self._row_of[self._snapshots[position].id] = position
        finally:
            self.blockSignals(blocked)
        self.endInsertRows()
        return end

    def upsert(self, snapshot: BatchCallSnapshot) -> None:
        """Update the batch call's row (one dataChanged naming the roles) or append it."""
        if snapshot.id not in self._row_of:
            self.insert_prepared([PreparedRow(snapshot, build_row(snapshot))], 0)
        else:
            self.update_rows([snapshot])

    def update_rows(
        self,
        snapshots: Sequence[BatchCallSnapshot],
        cells: dict[int, list[ChangedCell]] | None = None,
    ) -> None:
        """Update rows already shown, announced by one dataChanged over the rows and
        columns that changed: the sorter then re-sorts once (not once per row), and not
        at all when the sorted column did not change. `cells` (by id, from `diff_rows` in
        a worker) says which cells changed; without it they are worked out here."""
        rows: list[int] = []
        columns: set[int] = set()
        blocked = self.blockSignals(True)  # each setData would announce (and re-sort) itself
        try:
            for snapshot in snapshots:
                row = self._row_of.get(snapshot.id)
                if row is None:
                    continue
                changed = cells.get(snapshot.id) if cells is not None else None
                if changed is None:
                    if self._snapshots[row] == snapshot:
                        continue
                    changed = changed_cells(self._snapshots[row], snapshot)
                self._snapshots[row] = snapshot
                rows.append(row)
                name_item = self.item(row, Column.NAME)
                if name_item is not None:
                    name_item.setData(snapshot, BatchCallRole.SNAPSHOT)
                    columns.add(Column.NAME)
                for column, text, sort_key in changed:
                    item = self.item(row, column)
                    if item is None:
                        continue
                    columns.add(column)
                    item.setText(text)
                    item.setData(sort_key, BatchCallRole.SORT_KEY)
        finally:
            self.blockSignals(blocked)
        if rows:
            self.dataChanged.emit(
                self.index(min(rows), min(columns)),
                self.index(max(rows), max(columns)),
                _CHANGED_ROLES,
            )

    def remove(self, batch_id: int) -> bool:
        row = self._row_of.get(batch_id)
        if row is None:
            return False
        del self._snapshots[row]
        self._reindex()
        self.removeRow(row)
        return True

    def merge(self, snapshots: Iterable[BatchCallSnapshot]) -> None:
        """Make the rows equal to `snapshots` with the fewest changes (a reload or a poll):
        rows that vanished are removed, changed ones updated, new ones appended."""
        fresh = {s.id: s for s in snapshots}
        self.apply_diff(diff_rows(self.by_id(), fresh))

    def apply_diff(self, diff: RowDiff) -> None:
        """Apply what a worker found different (see `diff_rows`)."""
        for batch_id in diff.removed:
            self.remove(batch_id)
        self.update_rows(diff.changed, diff.cells)
        self.insert_prepared(diff.added + prepare_rows(diff.pending), 0)


#: (column, text, sort key) of a cell whose contents changed.
ChangedCell = tuple[int, str, Any]


def changed_cells(old: BatchCallSnapshot, new: BatchCallSnapshot) -> list[ChangedCell]:
    return [
        (column, *value)
        for column, (value, before) in enumerate(zip(row_values(new), row_values(old), strict=True))
        if value != before
    ]


@dataclass
class RowDiff:
    """What a fresh read changes in the rows shown: removed ids, changed snapshots (and
    by id the cells of theirs that changed), new rows with their cells built, and, newest
    first, new batch calls whose cells are still to build (`diff_rows(prepare=...)`)."""

    removed: list[int]
    changed: list[BatchCallSnapshot]
    added: list[PreparedRow]
    cells: dict[int, list[ChangedCell]] = field(default_factory=dict)
    pending: list[BatchCallSnapshot] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.removed or self.changed or self.added or self.pending)


def diff_rows(
    shown: dict[int, BatchCallSnapshot],
    fresh: dict[int, BatchCallSnapshot],
    stored: Collection[int] | None = None,
    prepare: int | None = None,
) -> RowDiff:
    """What differs between the rows shown and a fresh read, with the new rows' cells
    built and the changed cells worked out (runs in a worker thread). `stored` is every
    id still stored when `fresh` holds only the rows read as changed (`list_changed`).
    With `prepare`, only the newest `prepare` new rows get their cells now; the others are
    left `pending` (a first load shows its first rows while the rest are built)."""
    present = fresh if stored is None else stored
    removed = [batch_id for batch_id in shown if batch_id not in present]
    changed: list[BatchCallSnapshot] = []
    cells: dict[int, list[ChangedCell]] = {}
    added: list[BatchCallSnapshot] = []
    for batch_id, snapshot in fresh.items():
        old = shown.get(batch_id)
        if old is None:
            added.append(snapshot)
        elif old != snapshot:
            changed.append(snapshot)
            cells[batch_id] = changed_cells(old, snapshot)
    added.sort(key=lambda s: s.id, reverse=True)
    if prepare is None:
        prepare = len(added)
    return RowDiff(removed, changed, prepare_rows(added[:prepare]), cells, added[prepare:])


@dataclass
class PreparedRow:
    """A batch call and the cells of its row, built in a worker thread."""

    snapshot: BatchCallSnapshot
    cells: list[QStandardItem]


def prepare_rows(snapshots: Iterable[BatchCallSnapshot]) -> list[PreparedRow]:
    """Build the rows' cells in a worker thread, newest first (see `insert_prepared`), so
    the GUI thread only inserts them."""
    ordered = sorted(snapshots, key=lambda s: s.id, reverse=True)
    return [PreparedRow(s, build_row(s)) for s in ordered]


def snapshot_at(index: AnyIndex) -> BatchCallSnapshot | None:
    """The snapshot of the row of `index` (any column, any of the models or proxies)."""
    if not index.isValid():
        return None
    value = index.sibling(index.row(), Column.NAME).data(BatchCallRole.SNAPSHOT)
    return value if isinstance(value, BatchCallSnapshot) else None


class BatchCallSorter(QSortFilterProxyModel):
    """Sorts the rows by the sort key of the sorted column (numbers, percentages and dates
    compare as values, names case-insensitively); ties keep the id order (stable sort)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("batchCallSorter")
        self.setSortRole(BatchCallRole.SORT_KEY)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setDynamicSortFilter(True)


class BatchCallFilterProxy(QSortFilterProxyModel):
    """Filters by name only, case-insensitively, as the supervisor types.

    It sits on a `BatchCallSorter` and keeps its order; `sort()` (a header click) is passed
    down to the sorter. `mapFromSource`/`mapToSource` also accept and give indexes of the
    batch call model itself, so callers need not know about the sorter in between.

    It matches the search, folded, against the name cell's sort key (the folded name), case
    sensitively: a plain substring search in C++. A new search re-filters every row in one
    pass, behind one reset (see `set_search`)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("batchCallProxy")
        self.sorter = BatchCallSorter(self)
        # Shown for an instant while the search changes: as many columns as the rows, so
        # the header keeps its sections (sizes, resize modes).
        self._between = QStandardItemModel(0, len(Column), self)
        self._between.setObjectName("batchCallSearchPlaceholder")
        self._search = ""
        super().setSourceModel(self.sorter)
        self.setFilterKeyColumn(Column.NAME)
        self.setFilterRole(BatchCallRole.SORT_KEY)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseSensitive)
        self.setDynamicSortFilter(True)

    def setSourceModel(self, model: Any) -> None:
        """Show `model` (a BatchCallTableModel) through the sorter."""
        self.sorter.setSourceModel(model)

    def rows_model(self) -> Any:
        return self.sorter.sourceModel()

    def set_search(self, text: str) -> bool:
        """Show the rows whose name contains `text` (case-insensitively; spaces around it
        do not count). True when the rows were read again (one reset of the views).

        Changing the filter in place removes and inserts the rows that change one
        contiguous range at a time, each range moving the rows shown after it: cheap for
        a short list (few ranges, often none: then no repaint either), but a search
        matching every third of 100,000 rows took 1 to 2 s, and 13 ms of 10,000. So when
        the ranges could be that costly (see `_cheap_in_place`), the proxy lets go of the
        rows instead (an empty model in between), takes the new pattern and reads them
        again: one pass, one reset."""
        search = text.strip().casefold()
        if search == self._search:
            return False
        previous, self._search = self._search, search
        if self._cheap_in_place(previous, search):
            self.setFilterFixedString(search)
            return False
        super().setSourceModel(self._between)
        self.setFilterFixedString(search)
        super().setSourceModel(self.sorter)
        return True

    def _cheap_in_place(self, previous: str, search: str) -> bool:
        """Whether changing the pattern in place is cheaper than one reset: a longer search
        removes at most one range per row shown, each moving at most the rows shown; a
        shorter one inserts nothing when every row is shown already, otherwise at most one
        range more than the rows shown, each moving at most all the rows."""
        shown, rows = self.rowCount(), self.sorter.rowCount()
        if search in previous and shown == rows:
            return True
        if shown > IN_PLACE_ROWS:
            return False
        if previous in search:
            return True
        if search in previous:
            return (shown + 1) * rows <= IN_PLACE_MOVES
        return rows <= IN_PLACE_ROWS

    def search(self) -> str:
        """The search the rows are filtered by, folded."""
        return self._search

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sorter.sort(column, order)

    def sortColumn(self) -> int:
        return self.sorter.sortColumn()

    def sortOrder(self) -> Qt.SortOrder:
        return self.sorter.sortOrder()

    def mapFromSource(self, index: AnyIndex) -> QModelIndex:
        if index.isValid() and index.model() is not self.sorter:
            index = self.sorter.mapFromSource(index)
        return super().mapFromSource(index)

    def map_to_rows(self, index: AnyIndex) -> QModelIndex:
        """The batch call model's index for one of this proxy's."""
        return self.sorter.mapToSource(super().mapToSource(index))
