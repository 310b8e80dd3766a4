"""Item models of the details dialog: the recipients (lazy, paged, filtered and sorted in
SQL) and the history (audit events).

A batch call can have a million recipients, so the recipients model holds only the pages
the supervisor scrolled to: `canFetchMore`/`fetchMore` read 200 rows at a time, and a new
filter, search or sort asks the database again instead of sorting in memory. Live updates
re-read only the rows around what is on screen (by id, a bounded amount of work however
far the supervisor scrolled), compared with what is shown off the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    Qt,
    Signal,
)
from PySide6.QtWidgets import QApplication

from app.models.snapshots import AuditSnapshot, RecipientSnapshot
from app.models.status import RecipientStatus
from app.services.batch_calls import (
    BatchCallService,
    RecipientQuery,
    RecipientSort,
)
from app.views import aio, formatting, look
from app.views.table_model import AnyIndex, FlatTableModel
from app.views.tasks import BackgroundTasks

log = logging.getLogger(__name__)

PAGE_SIZE = 200
#: A live refresh re-reads the rows on screen and this many on either side.
REFRESH_MARGIN = PAGE_SIZE


def recipients_by_id(
    service: BatchCallService, batch_id: int, ids: list[int]
) -> dict[int, RecipientSnapshot]:
    """The current state of these recipients of the batch call (runs off the GUI thread).

    The service pages recipients in the query's order; a live refresh needs the same
    recipients again wherever the engine's changes moved them, hence this read by id."""
    return service.recipients_by_id(batch_id, ids)


def changed_rows(
    start: int, shown: list[RecipientSnapshot], fresh: dict[int, RecipientSnapshot]
) -> list[tuple[int, RecipientSnapshot]]:
    """(row, new snapshot) for each shown recipient whose data changed (pure; worker side)."""
    changes = []
    for offset, old in enumerate(shown):
        new = fresh.get(old.id)
        if new is not None and new != old:
            changes.append((start + offset, new))
    return changes


class RecipientRole(IntEnum):
    SNAPSHOT = Qt.ItemDataRole.UserRole
    RECIPIENT_ID = Qt.ItemDataRole.UserRole + 1


class RecipientColumn(IntEnum):
    ROW = 0
    PHONE = 1
    NAME = 2
    STATUS = 3
    ATTEMPTS = 4
    ENDED = 5
    VARIABLES = 6


RECIPIENT_HEADERS = {
    RecipientColumn.ROW: "Row",
    RecipientColumn.PHONE: "Phone Number",
    RecipientColumn.NAME: "Name",
    RecipientColumn.STATUS: "Status",
    RecipientColumn.ATTEMPTS: "Attempts",
    RecipientColumn.ENDED: "Call Ended",
    RecipientColumn.VARIABLES: "Variables",
}
RECIPIENT_HEADER_TEXTS = tuple(RECIPIENT_HEADERS[column] for column in RecipientColumn)

#: Which SQL sort a header click asks for (Variables cannot be sorted).
SORT_FOR_COLUMN = {
    RecipientColumn.ROW: RecipientSort.ROW,
    RecipientColumn.PHONE: RecipientSort.PHONE,
    RecipientColumn.NAME: RecipientSort.NAME,
    RecipientColumn.STATUS: RecipientSort.STATUS,
    RecipientColumn.ATTEMPTS: RecipientSort.ATTEMPTS,
    RecipientColumn.ENDED: RecipientSort.ENDED,
}

_RECIPIENT_ROLES = [
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    RecipientRole.SNAPSHOT,
]


class RecipientTableModel(FlatTableModel):
    """The recipients of one batch call, a page at a time.

    A search's first page is shown before its matches are counted (counting 100,000
    matches or more takes longer than the page): until then `total` is None.

    Signals: loaded(int) after a (re)query, with the number of matching recipients or -1
    while they are being counted; counted(int) once that number is known for the query
    (with its first page, or when the count that follows it arrives); pageFetched(int)
    with the number of rows held, after fetchMore brought a page.
    """

    loaded = Signal(int)
    counted = Signal(int)
    pageFetched = Signal(int)

    def __init__(
        self,
        service: BatchCallService,
        batch_id: int,
        tasks: BackgroundTasks,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.setObjectName("recipientModel")
        #: The rows on screen, (first, last); the dialog tells it (see `set_visible_rows`).
        self._visible: tuple[int, int] = (0, PAGE_SIZE - 1)
        self._service = service
        self._batch_id = batch_id
        self._tasks = tasks
        self._rows: list[RecipientSnapshot] = []
        self._total: int | None = 0  # None: a search's matches are being counted
        #: Why the last count failed (total stays None until a reload or refresh counts).
        self.count_error: str | None = None
        self._query = RecipientQuery()
        self._generation = 0  # answers to an older query are dropped
        self._refreshing = False
        self._fetching = False

    # ----------------------------------------------------------------- Qt interface
    def row_items(self) -> Sequence[Any]:
        return self._rows

    def header_texts(self) -> Sequence[str]:
        return RECIPIENT_HEADER_TEXTS

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        recipient = self._rows[index.row()]
        if role == RecipientRole.SNAPSHOT:
            return recipient
        if role == RecipientRole.RECIPIENT_ID:
            return recipient.id
        column = RecipientColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(recipient, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is RecipientColumn.STATUS and recipient.last_error:
                return recipient.last_error
            if column is RecipientColumn.VARIABLES and recipient.variables:
                return "\n".join(f"{k}: {v}" for k, v in recipient.variables.items())
        if role == Qt.ItemDataRole.DecorationRole and column is RecipientColumn.STATUS:
            return look.recipient_status_icon(recipient.status, QApplication.palette())
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (
            RecipientColumn.ROW,
            RecipientColumn.ATTEMPTS,
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(recipient: RecipientSnapshot, column: RecipientColumn) -> str:
        if column is RecipientColumn.ROW:
            return formatting.ordinal(recipient.row_number)
        if column is RecipientColumn.PHONE:
            return recipient.phone_number
        if column is RecipientColumn.NAME:
            return recipient.name or ""
        if column is RecipientColumn.STATUS:
            return recipient.status.display_name
        if column is RecipientColumn.ATTEMPTS:
            return formatting.count(recipient.attempts)
        if column is RecipientColumn.ENDED:
            return formatting.local_time(recipient.ended_at) if recipient.ended_at else ""
        return formatting.variables_text(recipient.variables)

    def canFetchMore(self, parent: AnyIndex) -> bool:
        return not parent.isValid() and self._more_to_fetch()

    def _more_to_fetch(self) -> bool:
        """Fewer rows held than counted; before the count, until a page comes back short."""
        return self._total is None or len(self._rows) < self._total

    def fetchMore(self, parent: AnyIndex) -> None:
        """Read the next page in the background; its rows are appended when it arrives
        (never inside a view's or a tester's own signal handling)."""
        if parent.isValid() or self._fetching or not self._more_to_fetch():
            return
        self._fetching = True
        last = self._rows[-1] if self._rows else None
        page = self._fetch_page(self._generation, self._query, len(self._rows), last)
        self._tasks.start("recipientsPage", page, quiet=True, owner=self)

    async def _fetch_page(
        self,
        generation: int,
        query: RecipientQuery,
        offset: int,
        last: RecipientSnapshot | None,
    ) -> None:
        try:
            # Keyset: the page after the last row shown, as fast at row 900,000 as at 0.
            page = await aio.in_worker(
                self._service.recipients_page,
                self._batch_id,
                query,
                offset=offset,
                limit=PAGE_SIZE,
                after=last,
            )
        except Exception as error:
            log.warning("reading recipients failed: %s", error)
            return
        finally:
            self._fetching = False
        if generation != self._generation or offset != len(self._rows):
            return
        if page:
            self.beginInsertRows(QModelIndex(), offset, offset + len(page) - 1)
            self._rows.extend(page)
            self.endInsertRows()
        if len(page) < PAGE_SIZE and self._total != len(self._rows):
            # The last page: every match is held (fewer than counted when some were
            # deleted), which also answers a count still running.
            uncounted = self._total is None
            self._total = len(self._rows)
            if uncounted:
                self.counted.emit(self._total)
        if page:
            self.pageFetched.emit(len(self._rows))

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Header clicks sort in SQL; Variables keeps the current order."""
        if column not in SORT_FOR_COLUMN:
            return
        self.set_query(
            replace(
                self._query,
                sort=SORT_FOR_COLUMN[RecipientColumn(column)],
                descending=order == Qt.SortOrder.DescendingOrder,
            )
        )

    # ----------------------------------------------------------------- queries
    @property
    def query(self) -> RecipientQuery:
        return self._query

    @property
    def total(self) -> int | None:
        """How many recipients match the filter (not only the rows loaded); None while a
        search's matches are being counted."""
        return self._total

    def recipient(self, row: int) -> RecipientSnapshot | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, recipient_id: int) -> int | None:
        for row, recipient in enumerate(self._rows):
            if recipient.id == recipient_id:
                return row
        return None

    def set_filter(self, status: RecipientStatus | None, search: str) -> None:
        self.set_query(replace(self._query, status=status, search=search))

    def set_query(self, query: RecipientQuery) -> None:
        """Read the first page in the background and show it; a search whose matches
        fill more than that page is counted afterwards (see `_count`)."""
        self._query = query
        self._generation += 1
        first_page = self._read_first_page(self._generation, query)
        self._tasks.start("recipients", first_page, owner=self)

    async def _read_first_page(self, generation: int, query: RecipientQuery) -> None:
        batch_id = self._batch_id

        def read() -> tuple[int | None, list[RecipientSnapshot]]:
            page = self._service.recipients_page(batch_id, query, 0, PAGE_SIZE)
            if len(page) < PAGE_SIZE:
                return len(page), page  # every match is on the page
            return self._service.stored_count(batch_id, query), page

        total, page = await aio.in_worker(read)
        if generation != self._generation:
            return  # a newer filter, search or sort meanwhile
        self.beginResetModel()
        self._rows = list(page)
        self._total = None if total is None else max(total, len(page))
        self.count_error = None
        self.endResetModel()
        self.loaded.emit(-1 if self._total is None else self._total)
        if self._total is None:
            aio.spawn(self._count(generation, query), name="recipientsCount", owner=self)
        else:
            self.counted.emit(self._total)

    async def _count(self, generation: int, query: RecipientQuery) -> None:
        """Count the search's matches once its first page shows; a failed count leaves
        `total` unknown (the next live refresh counts again)."""
        async with self._tasks.tracking("recipientsCount", quiet=True):
            try:
                total = await aio.in_worker(self._service.count_recipients, self._batch_id, query)
            except Exception as error:
                log.warning("counting recipients failed: %s", error)
                if aio.alive(self) and generation == self._generation:
                    self.count_error = str(error) or type(error).__name__
                    self.loaded.emit(-1)
                return
            if not aio.alive(self) or generation != self._generation:
                return
            self._total = max(total, len(self._rows))
            self.counted.emit(self._total)

    def load(self) -> None:
        self.set_query(self._query)

    def set_visible_rows(self, first: int, last: int) -> None:
        """Which rows the view shows now: a live refresh re-reads them, plus a margin."""
        self._visible = (max(0, first), max(first, last))

    def refresh(self) -> None:
        """Live update: re-read, by id, the rows on screen plus REFRESH_MARGIN either side
        (never everything loaded), and the count. The worker compares; the GUI thread only
        stores the changed rows and reports their span with one dataChanged. Rows keep
        their place (a recipient that left the status filter stays until the next query)."""
        if self._refreshing:
            return
        self._refreshing = True
        first, last = self._visible
        start = max(0, min(first, len(self._rows)) - REFRESH_MARGIN)
        stop = min(len(self._rows), last + 1 + REFRESH_MARGIN)
        shown = self._rows[start:stop]  # a copy: the worker never sees the live list
        refresh = self._refresh(self._generation, self._query, start, shown)
        self._tasks.start("recipientsRefresh", refresh, quiet=True, owner=self)

    async def _refresh(
        self, generation: int, query: RecipientQuery, start: int, shown: list[RecipientSnapshot]
    ) -> None:
        batch_id = self._batch_id
        service = self._service

        def read() -> tuple[int, list[tuple[int, RecipientSnapshot]]]:
            total = service.count_recipients(batch_id, query)
            fresh = recipients_by_id(service, batch_id, [r.id for r in shown])
            return total, changed_rows(start, shown, fresh)

        try:
            total, changes = await aio.in_worker(read)
        except Exception as error:
            log.warning("recipients refresh failed: %s", error)
            return
        finally:
            self._refreshing = False
        if generation != self._generation:
            return
        self._apply_changes(changes)
        self._total = max(total, len(self._rows))
        self.loaded.emit(self._total)

    def reload_rows(self) -> None:
        """Reload (the supervisor asked): query again every row loaded so far, so rows that
        left or joined the filter or moved in the sort order are shown where they belong;
        the comparison is made off the GUI thread."""
        self._generation += 1
        reload = self._reload_rows(self._generation, self._query, list(self._rows))
        self._tasks.start("recipientsReload", reload, owner=self)

    async def _reload_rows(
        self, generation: int, query: RecipientQuery, shown: list[RecipientSnapshot]
    ) -> None:
        batch_id = self._batch_id
        service = self._service

        def read() -> tuple[int, list[RecipientSnapshot] | None, list[Any]]:
            total = service.count_recipients(batch_id, query)
            fresh = service.recipients_page(batch_id, query, 0, max(len(shown), PAGE_SIZE))
            same_rows = len(fresh) >= len(shown) and all(
                a.id == b.id for a, b in zip(shown, fresh, strict=False)
            )
            if not same_rows:
                return total, fresh, []
            return total, None, changed_rows(0, shown, {r.id: r for r in fresh[: len(shown)]})

        total, replacement, changes = await aio.in_worker(read)
        if generation != self._generation:
            return
        if replacement is not None:
            self.beginResetModel()
            self._rows = list(replacement)
            self._total = max(total, len(replacement))
            self.endResetModel()
        else:
            self._apply_changes(changes)
            self._total = max(total, len(self._rows))
        self.loaded.emit(self._total)

    def _apply_changes(self, changes: list[tuple[int, RecipientSnapshot]]) -> None:
        rows = self._rows
        changed = []
        for row, fresh in changes:
            if row < len(rows) and rows[row].id == fresh.id:
                rows[row] = fresh
                changed.append(row)
        if changed:
            # One signal for the changed span: each emit is a round trip through Qt (and,
            # with the engine busy, a wait for the interpreter lock), so never one per row.
            self.dataChanged.emit(
                self.index(min(changed), 0),
                self.index(max(changed), len(RecipientColumn) - 1),
                _RECIPIENT_ROLES,
            )


class HistoryColumn(IntEnum):
    WHEN = 0
    ACTION = 1
    USER = 2
    HOST = 3
    DETAIL = 4


HISTORY_HEADERS = {
    HistoryColumn.WHEN: "When",
    HistoryColumn.ACTION: "Action",
    HistoryColumn.USER: "By",
    HistoryColumn.HOST: "Computer",
    HistoryColumn.DETAIL: "Detail",
}
HISTORY_HEADER_TEXTS = tuple(HISTORY_HEADERS[column] for column in HistoryColumn)


class HistoryTableModel(FlatTableModel):
    """The audit trail of one batch call: who did what, from which computer, when."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("historyModel")
        self._events: list[AuditSnapshot] = []

    def row_items(self) -> Sequence[Any]:
        return self._events

    def header_texts(self) -> Sequence[str]:
        return HISTORY_HEADER_TEXTS

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._events):
            return None
        event = self._events[index.row()]
        if role == Qt.ItemDataRole.UserRole:
            return event
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        column = HistoryColumn(index.column())
        if column is HistoryColumn.WHEN:
            return formatting.local_time(event.at, seconds=True)
        if column is HistoryColumn.ACTION:
            return event.action.title()
        if column is HistoryColumn.USER:
            return event.user
        if column is HistoryColumn.HOST:
            return event.host
        return event.detail

    def set_events(self, events: list[AuditSnapshot]) -> None:
        if events == self._events:
            return
        if len(events) >= len(self._events) and events[: len(self._events)] == self._events:
            if len(events) > len(self._events):  # new events are appended
                first = len(self._events)
                self.beginInsertRows(QModelIndex(), first, len(events) - 1)
                self._events = list(events)
                self.endInsertRows()
            return
        self.beginResetModel()
        self._events = list(events)
        self.endResetModel()

    def events(self) -> list[AuditSnapshot]:
        return list(self._events)
