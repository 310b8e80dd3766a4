"""The rejected rows of a recipients CSV, as the create dialog's validation view shows them.

The supervisor can fix a row by editing its phone number (re-checked at once with
`csv_import.validate_fix`) or remove it; the dialog turns both into ImportOptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from PySide6.QtCore import (
    QObject,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QGuiApplication

from app.services.csv_import import PHONE_COLUMN_NAMES, RecipientRow, RejectedRow
from app.views import formatting, look
from app.views.fix_hints import fix_hint
from app.views.table_model import AnyIndex, FlatTableModel

log = logging.getLogger(__name__)

_PHONE_NAMES = frozenset(name.casefold() for name in PHONE_COLUMN_NAMES)

#: Re-checks one edited row: (values by header, row number) -> accepted or rejected.
Checker = Callable[[Mapping[str, str], int], RecipientRow | RejectedRow]


class RowState(StrEnum):
    REJECTED = "Rejected"
    FIXED = "Fixed"
    REMOVED = "Removed"


#: The Reason cell's second line: what to do about it (`fix_hints.fix_hint`), for a row
#: still rejected.
HINT_ROLE = Qt.ItemDataRole.UserRole + 1


class RejectedColumn(IntEnum):
    ROW = 0
    PHONE = 1
    REASON = 2
    STATE = 3


HEADERS = {
    RejectedColumn.ROW: "Row",
    RejectedColumn.PHONE: "Phone Number",
    RejectedColumn.REASON: "Reason",
    RejectedColumn.STATE: "State",
}
HEADER_TEXTS = tuple(HEADERS[column] for column in RejectedColumn)


_CHANGED_ROLES = [
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.EditRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.ForegroundRole,
    Qt.ItemDataRole.UserRole,
]


@dataclass
class RejectedEntry:
    rejected: RejectedRow
    phone: str
    reason: str
    state: RowState = RowState.REJECTED
    accepted_as: str | None = None


def phone_key(columns: tuple[str, ...] | list[str]) -> str:
    """The header of the phone column (the file's own spelling)."""
    for name in columns:
        if name.strip().casefold() in _PHONE_NAMES:
            return name
    return "phone_number"


class RejectedRowsModel(FlatTableModel):
    """Rejected rows with their reason; the phone cell is editable.

    Signals: edited() after a fix or a removal changed the counts.
    """

    edited = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("rejectedRowsModel")
        self._entries: list[RejectedEntry] = []
        self._columns: tuple[str, ...] = ()
        self._checker: Checker | None = None

    # ----------------------------------------------------------------- Qt interface
    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if (
            index.column() == RejectedColumn.PHONE
            and self._entries[index.row()].state is not RowState.REMOVED
        ):
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def row_items(self) -> Sequence[Any]:
        return self._entries

    def header_texts(self) -> Sequence[str]:
        return HEADER_TEXTS

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        column = RejectedColumn(index.column())
        if role == Qt.ItemDataRole.UserRole:
            return entry
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column is RejectedColumn.ROW:
                return formatting.ordinal(entry.rejected.row_number)
            if column is RejectedColumn.PHONE:
                return entry.phone
            if column is RejectedColumn.REASON:
                if entry.state is RowState.FIXED:
                    return f"Fixed: will be called as {entry.accepted_as}"
                if entry.state is RowState.REMOVED:
                    return "Removed: will not be imported"
                return entry.reason
            return entry.state.value
        if role == HINT_ROLE and column is RejectedColumn.REASON:
            return fix_hint(entry.reason) if entry.state is RowState.REJECTED else ""
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is RejectedColumn.PHONE:
                return "Double-click to correct the number"
            if column is RejectedColumn.REASON:
                if entry.state is RowState.REJECTED:
                    return f"{entry.reason}\nHow to fix it: {fix_hint(entry.reason)}"
                return entry.reason
        if role == Qt.ItemDataRole.ForegroundRole and column is RejectedColumn.STATE:
            tone = {RowState.REJECTED: "error", RowState.FIXED: "ok", RowState.REMOVED: "muted"}
            return QBrush(look.tone(tone[entry.state], QGuiApplication.palette()))
        return None

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if (
            not index.isValid()
            or role != Qt.ItemDataRole.EditRole
            or index.column() != RejectedColumn.PHONE
        ):
            return False
        return self.fix(index.row(), str(value))

    # ----------------------------------------------------------------- contents
    def set_rows(
        self, rejected: tuple[RejectedRow, ...], columns: tuple[str, ...], checker: Checker
    ) -> None:
        self.beginResetModel()
        self._entries = [RejectedEntry(r, r.phone_raw, r.reason) for r in rejected]
        self._columns = columns
        self._checker = checker
        self.endResetModel()

    def clear(self) -> None:
        self.set_rows((), (), lambda _v, _r: RejectedRow(0, "", "", {}))

    def entry(self, row: int) -> RejectedEntry:
        return self._entries[row]

    def row_for(self, row_number: int) -> int | None:
        for row, entry in enumerate(self._entries):
            if entry.rejected.row_number == row_number:
                return row
        return None

    def fix(self, row: int, phone: str) -> bool:
        """Re-check the row with a new phone number; True when it is now accepted."""
        if self._checker is None or not 0 <= row < len(self._entries):
            return False
        entry = self._entries[row]
        if entry.state is RowState.REMOVED:
            return False
        key = phone_key(self._columns)
        values = {k: v for k, v in entry.rejected.values.items() if k in self._columns}
        values[key] = phone
        result = self._checker(values, entry.rejected.row_number)
        entry.phone = phone
        if isinstance(result, RecipientRow):
            entry.state = RowState.FIXED
            entry.accepted_as = result.phone_number
            entry.reason = entry.rejected.reason
        else:
            entry.state = RowState.REJECTED
            entry.accepted_as = None
            entry.reason = result.reason
        self.dataChanged.emit(
            self.index(row, 0), self.index(row, len(RejectedColumn) - 1), _CHANGED_ROLES
        )
        self.edited.emit()
        return entry.state is RowState.FIXED

    def remove(self, row: int) -> None:
        """Mark the row removed (it stays listed, greyed, so the supervisor sees it)."""
        if not 0 <= row < len(self._entries):
            return
        self._entries[row].state = RowState.REMOVED
        self.dataChanged.emit(
            self.index(row, 0), self.index(row, len(RejectedColumn) - 1), _CHANGED_ROLES
        )
        self.edited.emit()

    def restore(self, row: int) -> None:
        if not 0 <= row < len(self._entries) or self._entries[row].state is not RowState.REMOVED:
            return
        entry = self._entries[row]
        entry.state = RowState.REJECTED
        self.fix(row, entry.phone)

    # ----------------------------------------------------------------- for ImportOptions
    def fixes(self) -> dict[int, dict[str, str]]:
        key = phone_key(self._columns)
        return {
            e.rejected.row_number: {key: e.phone}
            for e in self._entries
            if e.state is RowState.FIXED
        }

    def removed_rows(self) -> frozenset[int]:
        return frozenset(
            e.rejected.row_number for e in self._entries if e.state is RowState.REMOVED
        )

    def count(self, state: RowState) -> int:
        return sum(1 for e in self._entries if e.state is state)
