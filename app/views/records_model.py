"""A small read-only table model for short lists (agents, from numbers in Settings)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt

from app.views.table_model import AnyIndex, FlatTableModel

log = logging.getLogger(__name__)


class RecordsTableModel(FlatTableModel):
    """Rows of text with one payload object each (`Qt.UserRole` hands it out)."""

    def __init__(self, headers: Sequence[str], parent: QObject | None = None):
        super().__init__(parent)
        self._headers = list(headers)
        self._rows: list[tuple[str, ...]] = []
        self._payloads: list[Any] = []

    def row_items(self) -> Sequence[Any]:
        return self._rows

    def header_texts(self) -> Sequence[str]:
        return self._headers

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        if role == Qt.ItemDataRole.UserRole:
            return self._payloads[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._rows[index.row()][index.column()]
        return None

    def set_records(self, rows: Sequence[Sequence[str]], payloads: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = [tuple(str(cell) for cell in row) for row in rows]
        self._payloads = list(payloads)
        self.endResetModel()

    def payload(self, row: int) -> Any:
        return self._payloads[row] if 0 <= row < len(self._payloads) else None

    def column_values(self, column: int) -> list[str]:
        return [row[column] for row in self._rows]
