"""Reading a batch call's recipients: filtered by status, searched by number or name,
sorted, counted, paged (by keyset: row 900,000 comes as fast as row 0), refreshed by id,
exported to CSV, and each one's call attempts. Search and sort run in SQL on the indexes
app.models.search_keys fills."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from app.models import search_keys
from app.models.policy import timezones_from_text
from app.models.recipients import COUNT_COLUMNS
from app.models.schema import BatchCall, CallAttempt, Recipient
from app.models.snapshots import RecipientSnapshot
from app.models.status import RecipientStatus
from app.services.batch_common import NotFound


class RecipientSort(StrEnum):
    ROW = "row"
    PHONE = "phone"
    NAME = "name"
    STATUS = "status"
    ATTEMPTS = "attempts"
    ENDED = "ended"


_SORT_COLUMNS: dict[RecipientSort, Any] = {
    # Recipients are inserted in file order, so the id orders rows like row_number does,
    # and (batch_call_id[, status], id) indexes serve it without a sort.
    RecipientSort.ROW: Recipient.id,
    RecipientSort.PHONE: Recipient.phone_number,
    RecipientSort.NAME: Recipient.name_key,
    RecipientSort.STATUS: Recipient.status,
    RecipientSort.ATTEMPTS: Recipient.attempts,
    RecipientSort.ENDED: Recipient.ended_at,
}


_NULLABLE_SORTS = frozenset({RecipientSort.NAME, RecipientSort.ENDED})


def _sort_value(sort: RecipientSort, recipient: RecipientSnapshot) -> Any:
    """The value of the sorted column for a recipient (what a keyset cursor compares)."""
    if sort is RecipientSort.ROW:
        return recipient.id
    if sort is RecipientSort.PHONE:
        return recipient.phone_number
    if sort is RecipientSort.NAME:
        return search_keys.name_key(recipient.name)
    if sort is RecipientSort.STATUS:
        return RecipientStatus(recipient.status).value
    if sort is RecipientSort.ATTEMPTS:
        return recipient.attempts
    return recipient.ended_at


def _after(sort: RecipientSort, descending: bool, cursor: RecipientSnapshot) -> ColumnElement[bool]:
    """Rows after `cursor` in the order (sorted column, then id; empty values last)."""
    column = _SORT_COLUMNS[sort]
    value = _sort_value(sort, cursor)

    def beyond(a: Any, b: Any) -> ColumnElement[bool]:
        result: ColumnElement[bool] = a < b if descending else a > b
        return result

    if sort is RecipientSort.ROW:
        return beyond(Recipient.id, cursor.id)
    if value is None:  # among the empty values, which come last either way
        return and_(column.is_(None), beyond(Recipient.id, cursor.id))
    after_value = or_(beyond(column, value), and_(column == value, beyond(Recipient.id, cursor.id)))
    if sort in _NULLABLE_SORTS:
        return or_(after_value, column.is_(None))
    return after_value


#: A search matching at least this many recipients is "common": its first page is found
#: by walking the batch call's rows in order (200 matches come quickly), and its count by
#: counting each index range; a rarer one collects its matches from the indexes.
COMMON_SEARCH = 2_000

#: A search made only of these characters (with a digit among them) looks for numbers.
PHONE_CHARS = frozenset("+0123456789 -().")


def search_branches(batch_id: int, text: str) -> list[ColumnElement[bool]]:
    """The ways `text` finds recipients, each a range scan on an index:

    - digits (with spaces, dashes, brackets): numbers that end with them; numbers that
      start with them when the text starts with "+" (an international number);
    - anything else too: names that start with the text, or whose last word does.
    """
    branches: list[ColumnElement[bool]] = []

    def starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
        # The range is what the index serves; LIKE keeps the match exact under any
        # database collation.
        return and_(
            Recipient.batch_call_id == batch_id,
            column >= prefix,
            column < search_keys.prefix_upper_bound(prefix),
            column.startswith(prefix, autoescape=True),
        )

    digits = "".join(ch for ch in text if ch.isdigit())
    if digits and all(ch in PHONE_CHARS for ch in text):
        if text.startswith("+"):
            branches.append(starts_with(Recipient.phone_number, "+" + digits))
        else:
            branches.append(starts_with(Recipient.phone_digits_reversed, digits[::-1]))
    folded = search_keys.name_key(text)
    if folded:
        branches.append(starts_with(Recipient.name_key, folded))
        branches.append(starts_with(Recipient.name_last_word_key, folded))
    return branches


def recipient_search(batch_id: int, text: str, common: bool = False) -> ColumnElement[bool]:
    """Recipients found by `text` (see search_branches). A rare search is a union of index
    range scans (each way its own SELECT, so each uses its own index); a common one is
    the same conditions ORed, which the database checks row by row in the page's order
    and stops after a page."""
    branches = search_branches(batch_id, text)
    if not branches:
        return false()
    if common:
        return or_(*branches)
    selects = [select(Recipient.id).where(b) for b in branches]
    return Recipient.id.in_(union_all(*selects) if len(selects) > 1 else selects[0])


@dataclass(frozen=True)
class RecipientQuery:
    status: RecipientStatus | None = None
    search: str = ""
    sort: RecipientSort = RecipientSort.ROW
    descending: bool = False


def recipient_snapshot(r: Recipient) -> RecipientSnapshot:
    return RecipientSnapshot(
        id=r.id,
        row_number=r.row_number,
        phone_number=r.phone_number,
        name=r.name,
        variables=dict(r.variables or {}),
        status=RecipientStatus(r.status),
        attempts=r.attempts,
        last_error=r.last_error,
        provider_call_id=r.provider_call_id,
        requested_at=r.requested_at,
        answered_at=r.answered_at,
        ended_at=r.ended_at,
        duration_seconds=r.duration_seconds,
        answered_by=r.answered_by,
        timezones=timezones_from_text(r.timezones),
        next_try_at=r.next_try_at,
    )


EXPORT_COLUMNS = (
    "phone_number",
    "name",
    "status",
    "attempts",
    "last_error",
    "provider_call_id",
    "requested_at",
    "answered_at",
    "ended_at",
    "duration_seconds",
    "answered_by",
    "status_display",
    "next_attempt_at",
    "timezones",
)
EXPORT_FIXED_COLUMNS = frozenset(EXPORT_COLUMNS)


class RecipientQueries:
    """The reads of recipients. Thread-safe: every call opens its own short session."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _recipient_filter(
        self, batch_id: int, query: RecipientQuery, common: bool = False
    ) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = [Recipient.batch_call_id == batch_id]
        if query.status is not None:
            conditions.append(Recipient.status == RecipientStatus(query.status).value)
        text = query.search.strip()
        if text:
            conditions.append(recipient_search(batch_id, text, common))
        return conditions

    def _common_search(self, session: Session, batch_id: int, text: str) -> bool:
        """Whether `text` matches COMMON_SEARCH recipients or more (a few capped index
        range counts, a millisecond or two)."""
        found = 0
        for branch in search_branches(batch_id, text):
            capped = select(Recipient.id).where(branch).limit(COMMON_SEARCH).subquery()
            found += int(session.scalar(select(func.count()).select_from(capped)) or 0)
            if found >= COMMON_SEARCH:
                return True
        return False

    def _count_search(self, session: Session, batch_id: int, query: RecipientQuery) -> int:
        """Matches of a search: each index range counted on its own, a recipient found by
        two ways counted once (its later way excludes the earlier ones' ranges)."""
        branches = search_branches(batch_id, query.search.strip())
        status = (
            [Recipient.status == RecipientStatus(query.status).value]
            if query.status is not None
            else []
        )
        total = 0
        found_by: list[ColumnElement[bool]] = []  # earlier ways that found someone
        for branch in branches:
            earlier = [not_(b) for b in found_by]
            found = int(
                session.scalar(
                    select(func.count())
                    .select_from(Recipient)
                    .where(branch, *status, *[or_(e, e.is_(None)) for e in earlier])
                )
                or 0
            )
            if found:
                found_by.append(branch)
            total += found
        return total

    def count_recipients(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int:
        """How many recipients match: a search counts its index ranges (10-400 ms at a
        million recipients and 100,000 matches or more), the rest reads the counters."""
        if query.search.strip():
            with self.sessions() as session:
                return self._count_search(session, batch_id, query)
        return self.stored_count(batch_id, query) or 0

    def stored_count(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int | None:
        """The count the counters kept with every status change answer at once (all, or one
        status: never a count of the rows); None for a search, which only
        `count_recipients` counts (a view shows its first page before)."""
        if query.search.strip():
            return None
        with self.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                return 0
            if query.status is None:
                return int(batch.total_recipients)
            return int(getattr(batch, COUNT_COLUMNS[RecipientStatus(query.status)].key))

    def recipients_page(
        self,
        batch_id: int,
        query: RecipientQuery = RecipientQuery(),
        offset: int = 0,
        limit: int = 200,
        *,
        after: RecipientSnapshot | None = None,
    ) -> list[RecipientSnapshot]:
        """A page of recipients in the query's order: the page that follows the recipient
        `after` (keyset paging: as fast at row 900,000 as at row 0), else from `offset`."""
        sort = RecipientSort(query.sort)
        column = _SORT_COLUMNS[sort]
        ordered = column.desc() if query.descending else column.asc()
        # Empty names and times sort last either way, on SQLite and PostgreSQL alike.
        order = [ordered.nulls_last()] if sort in _NULLABLE_SORTS else [ordered]
        if sort is RecipientSort.ROW:
            order = []
        tiebreak = Recipient.id.desc() if query.descending else Recipient.id.asc()
        with self.sessions() as session:
            common = bool(query.search.strip()) and self._common_search(
                session, batch_id, query.search.strip()
            )
        conditions = self._recipient_filter(batch_id, query, common=common)
        if after is not None:
            conditions.append(_after(sort, query.descending, after))
            offset = 0
        stmt = (
            select(Recipient)
            .where(*conditions)
            .order_by(*order, tiebreak)
            .offset(offset)
            .limit(limit)
        )
        with self.sessions() as session:
            return [recipient_snapshot(r) for r in session.scalars(stmt)]

    def recipient_at(
        self, batch_id: int, query: RecipientQuery, position: int
    ) -> RecipientSnapshot | None:
        """The recipient at `position` (0-based) in the query's order, or None (a cursor for
        `recipients_page(after=...)`; reading it counts the rows before it once)."""
        page = self.recipients_page(batch_id, query, offset=position, limit=1)
        return page[0] if page else None

    def recipients_by_id(self, batch_id: int, ids: Sequence[int]) -> dict[int, RecipientSnapshot]:
        """The current state of these recipients of the batch call (a live refresh of the
        rows a view shows, whatever page they came from)."""
        if not ids:
            return {}
        stmt = select(Recipient).where(
            Recipient.batch_call_id == batch_id, Recipient.id.in_(list(ids))
        )
        with self.sessions() as session:
            return {r.id: recipient_snapshot(r) for r in session.scalars(stmt)}

    def iter_recipients(
        self, batch_id: int, query: RecipientQuery = RecipientQuery(), chunk: int = 5_000
    ) -> Iterator[RecipientSnapshot]:
        """Every matching recipient in row order, read in keyset pages (memory stays flat)."""
        last_id = 0
        conditions = self._recipient_filter(batch_id, query)
        while True:
            with self.sessions() as session:
                rows = session.scalars(
                    select(Recipient)
                    .where(*conditions, Recipient.id > last_id)
                    .order_by(Recipient.id)
                    .limit(chunk)
                ).all()
                snapshots = [recipient_snapshot(r) for r in rows]
            if not snapshots:
                return
            yield from snapshots
            last_id = snapshots[-1].id

    def export_recipients(
        self, batch_id: int, path: str | Path, query: RecipientQuery = RecipientQuery()
    ) -> int:
        """Write the recipients (with outcomes and variables) to a CSV; returns the count."""
        from app.services.csv_export import export_recipients

        with self.sessions() as session:
            batch = session.get(BatchCall, batch_id)
            if batch is None:
                raise NotFound(f"No batch call with id {batch_id}.")
            variables = list(batch.variable_columns or [])
        # A CSV column named like an outcome column ("status") is exported as "var_status".
        headers = {v: f"var_{v}" if v in EXPORT_FIXED_COLUMNS else v for v in variables}
        columns = [*EXPORT_COLUMNS, *headers.values()]

        def rows() -> Iterator[dict[str, object]]:
            for r in self.iter_recipients(batch_id, query):
                row: dict[str, object] = {
                    "phone_number": r.phone_number,
                    "name": r.name or "",
                    "status": r.status.value,
                    "attempts": r.attempts,
                    "last_error": r.last_error or "",
                    "provider_call_id": r.provider_call_id or "",
                    "requested_at": _iso(r.requested_at),
                    "answered_at": _iso(r.answered_at),
                    "ended_at": _iso(r.ended_at),
                    "duration_seconds": "" if r.duration_seconds is None else r.duration_seconds,
                    "answered_by": r.answered_by or "",
                    # "Skipped: do not call", "Expired", "Waiting for retry" as shown.
                    "status_display": r.status.display_name,
                    "next_attempt_at": _iso(r.next_try_at)
                    if r.status is RecipientStatus.WAITING_RETRY
                    else "",
                    "timezones": " ".join(r.timezones),
                }
                for key, header in headers.items():
                    row[header] = r.variables.get(key, "")
                yield row

        return export_recipients(rows(), columns, path)

    def call_attempts(self, recipient_id: int) -> list[dict[str, Any]]:
        with self.sessions() as session:
            attempts = session.scalars(
                select(CallAttempt)
                .where(CallAttempt.recipient_id == recipient_id)
                .order_by(CallAttempt.attempt_number)
            ).all()
            return [
                {
                    "attempt": a.attempt_number,
                    "provider_call_id": a.provider_call_id,
                    "provider_status": a.provider_status,
                    "outcome": a.outcome,
                    "error": a.error,
                    "requested_at": a.requested_at,
                    "answered_at": a.answered_at,
                    "ended_at": a.ended_at,
                    "duration_seconds": a.duration_seconds,
                    "answered_by": a.answered_by,
                }
                for a in attempts
            ]


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""
