"""The list of batch calls as a Qt table model, and the proxy behind the live name search.

Rows change only through begin/end pairs and `dataChanged` names its roles, so the view
keeps its selection, its scroll position and the search text while counts change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    Qt,
)

from app.models.snapshots import BatchCallSnapshot
from app.views import formatting
from app.views.table_model import AnyIndex, FlatTableModel

log = logging.getLogger(__name__)


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
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.ForegroundRole,
    BatchCallRole.SNAPSHOT,
    BatchCallRole.SORT_KEY,
    BatchCallRole.PROGRESS,
]


class BatchCallTableModel(FlatTableModel):
    """One row per batch call; `BatchCallRole.SNAPSHOT` hands out the BatchCallSnapshot."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("batchCallModel")
        self._rows: list[BatchCallSnapshot] = []
        self._row_of: dict[int, int] = {}

    # ----------------------------------------------------------------- Qt interface
    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section == Column.ACTIONS
        ):
            return "Actions"
        return super().headerData(section, orientation, role)

    def row_items(self) -> Sequence[Any]:
        return self._rows

    def header_texts(self) -> Sequence[str]:
        return HEADER_TEXTS

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        snapshot = self._rows[index.row()]
        column = Column(index.column())
        if role == BatchCallRole.SNAPSHOT:
            return snapshot
        if role == BatchCallRole.BATCH_ID:
            return snapshot.id
        if role == BatchCallRole.PROGRESS:
            return snapshot.progress_percent
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(snapshot, column)
        if role == BatchCallRole.SORT_KEY:
            return self._sort_key(snapshot, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(snapshot, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (Column.TOTAL, Column.ACTIONS):
            if column is Column.ACTIONS:
                return int(Qt.AlignmentFlag.AlignCenter)
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(snapshot: BatchCallSnapshot, column: Column) -> str:
        if column is Column.NAME:
            return snapshot.name
        if column is Column.TOTAL:
            return formatting.count(snapshot.total_recipients)
        if column is Column.STATUS:
            return snapshot.status_display
        if column is Column.PROGRESS:
            return formatting.progress_text(snapshot)
        if column is Column.CREATED:
            return formatting.local_time(snapshot.created_at)
        return "⋮"

    @staticmethod
    def _sort_key(snapshot: BatchCallSnapshot, column: Column) -> Any:
        if column is Column.NAME:
            return snapshot.name.casefold()
        if column is Column.TOTAL:
            return snapshot.total_recipients
        if column is Column.STATUS:
            return snapshot.status_display
        if column is Column.PROGRESS:
            return snapshot.progress_percent
        if column is Column.CREATED:
            return snapshot.created_at.timestamp()
        return snapshot.id

    @staticmethod
    def _tooltip(snapshot: BatchCallSnapshot, column: Column) -> str | None:
        if column is Column.STATUS:
            return snapshot.failure_reason or snapshot.waiting_reason or None
        if column is Column.ACTIONS:
            return f'Actions for "{snapshot.name}"'
        if column is Column.NAME:
            return snapshot.name
        return None

    # ----------------------------------------------------------------- contents
    def snapshots(self) -> list[BatchCallSnapshot]:
        return list(self._rows)

    def snapshot(self, batch_id: int) -> BatchCallSnapshot | None:
        row = self._row_of.get(batch_id)
        return None if row is None else self._rows[row]

    def row_of(self, batch_id: int) -> int | None:
        return self._row_of.get(batch_id)

    def _reindex(self) -> None:
        self._row_of = {s.id: i for i, s in enumerate(self._rows)}

    def upsert(self, snapshot: BatchCallSnapshot) -> None:
        """Update the batch call's row (naming the changed roles) or append it."""
        row = self._row_of.get(snapshot.id)
        if row is None:
            position = len(self._rows)
            self.beginInsertRows(QModelIndex(), position, position)
            self._rows.append(snapshot)
            self._row_of[snapshot.id] = position
            self.endInsertRows()
            return
        if self._rows[row] == snapshot:
            return
        self._rows[row] = snapshot
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(Column) - 1), _CHANGED_ROLES)

    def remove(self, batch_id: int) -> bool:
        row = self._row_of.get(batch_id)
        if row is None:
            return False
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._reindex()
        self.endRemoveRows()
        return True

    def merge(self, snapshots: Iterable[BatchCallSnapshot]) -> None:
        """Make the rows equal to `snapshots` with the fewest changes (a reload or a poll):
        rows that vanished are removed, changed ones updated, new ones appended."""
        fresh = {s.id: s for s in snapshots}
        # Remove from the bottom up so the remaining row numbers stay right.
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].id not in fresh:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
        self._reindex()
        for snapshot in fresh.values():
            self.upsert(snapshot)


class BatchCallFilterProxy(QSortFilterProxyModel):
    """Filters by name only, case-insensitively, as the supervisor types; sorts numerically
    (numbers, percentages and dates compare as values, not as text)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("batchCallProxy")
        self.setFilterKeyColumn(Column.NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortRole(BatchCallRole.SORT_KEY)
        self.setDynamicSortFilter(True)

    def set_search(self, text: str) -> None:
        self.setFilterFixedString(text.strip())

    def lessThan(self, left: AnyIndex, right: AnyIndex) -> bool:
        a = left.data(BatchCallRole.SORT_KEY)
        b = right.data(BatchCallRole.SORT_KEY)
        if a == b:  # a stable order: older ids first
            return bool(left.data(BatchCallRole.BATCH_ID) < right.data(BatchCallRole.BATCH_ID))
        return bool(a < b)
