"""The do-not-call list (SPEC 10): one per database, numbers in E.164 under a unique index.

Add, remove, import (a CSV read with the recipients file's rules) and export; every change
is in the list's audit trail. The dialer asks `blocked_numbers` as each call is placed,
one indexed lookup per batch of numbers, so a number added while a batch call runs is
never called after that.
"""

from __future__ import annotations

import builtins
import csv
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from app.models.phone import PhoneError, normalize_phone
from app.models.schema import DoNotCallEvent, DoNotCallNumber
from app.services.batch_calls import Actor, Clock, NotFound, ValidationError, utcnow
from app.services.csv_export import CsvExportError, neutralize_cell
from app.services.csv_import import ImportOptions, RecipientRow, RejectedRow, iter_rows

log = logging.getLogger(__name__)

IMPORT_CHUNK = 20_000
#: Rejected rows kept for the report (the count is exact).
REJECTED_KEEP = 100
EXPORT_COLUMNS = ("phone_number", "source", "added_by", "added_at")


@dataclass(frozen=True)
class DoNotCallEntry:
    phone_number: str
    source: str
    added_by: str
    added_at: datetime


@dataclass(frozen=True)
class DoNotCallEventSnapshot:
    action: str
    phone_number: str | None
    detail: str
    user: str
    host: str
    at: datetime


@dataclass(frozen=True)
class DoNotCallImport:
    """What an import did: numbers added, numbers already listed, rows refused (reasons)."""

    added: int
    already_listed: int
    rejected_count: int
    rejected: tuple[RejectedRow, ...]


def blocked_numbers(session: Session, numbers: Iterable[str]) -> set[str]:
    """Which of these E.164 numbers are on the list: one query on the unique index."""
    wanted = list(dict.fromkeys(numbers))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(
            session.scalars(
                select(DoNotCallNumber.phone_number).where(
                    DoNotCallNumber.phone_number.in_(wanted[start : start + 500])
                )
            )
        )
    return found


class DoNotCallService:
    """The list's use cases; every call opens its own short session."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utcnow,
        actor: Actor | None = None,
    ):
        self.sessions = sessions
        self.clock = clock
        self.actor = actor or Actor.current()

    def _event(self, session: Session, action: str, number: str | None, detail: str = "") -> None:
        session.add(
            DoNotCallEvent(
                action=action,
                phone_number=number,
                detail=detail,
                user=self.actor.user,
                host=self.actor.host,
                at=self.clock(),
            )
        )

    @staticmethod
    def normalize(number: str, default_country: str) -> str:
        try:
            return normalize_phone(number, default_country)
        except PhoneError as e:
            raise ValidationError({"phone_number": f"{number.strip()}: {e}"}) from None

    def add(self, number: str, default_country: str = "US") -> tuple[str, bool]:
        """Put a number on the list; (its E.164 form, False if it was already there)."""
        e164 = self.normalize(number, default_country)
        with self.sessions.begin() as session:
            if session.scalar(
                select(DoNotCallNumber.id).where(DoNotCallNumber.phone_number == e164)
            ):
                return e164, False
            session.add(
                DoNotCallNumber(
                    phone_number=e164,
                    source="manual",
                    added_by=self.actor.user,
                    added_at=self.clock(),
                )
            )
            self._event(session, "ADD", e164)
        log.info("do-not-call list: a number was added")
        return e164, True

    def remove(self, number: str, default_country: str = "US") -> str:
        """Take a number off the list (NotFound when it is not on it)."""
        e164 = self.normalize(number, default_country)
        with self.sessions.begin() as session:
            removed = session.execute(
                delete(DoNotCallNumber).where(DoNotCallNumber.phone_number == e164)
            ).rowcount  # type: ignore[attr-defined]
            if not removed:
                raise NotFound(f"{e164} is not on the do-not-call list.")
            self._event(session, "REMOVE", e164)
        log.info("do-not-call list: a number was removed")
        return e164

    def contains(self, number: str, default_country: str = "US") -> bool:
        e164 = self.normalize(number, default_country)
        with self.sessions() as session:
            return bool(blocked_numbers(session, [e164]))

    def count(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(DoNotCallNumber)) or 0)

    def entries(
        self, search: str = "", limit: int = 200, offset: int = 0
    ) -> builtins.list[DoNotCallEntry]:
        stmt = select(DoNotCallNumber).order_by(DoNotCallNumber.phone_number)
        digits = "".join(ch for ch in search if ch.isdigit())
        if digits:
            stmt = stmt.where(DoNotCallNumber.phone_number.contains(digits))
        with self.sessions() as session:
            return [
                DoNotCallEntry(n.phone_number, n.source, n.added_by, n.added_at)
                for n in session.scalars(stmt.limit(limit).offset(offset))
            ]

    def events(self, limit: int = 200) -> builtins.list[DoNotCallEventSnapshot]:
        stmt = select(DoNotCallEvent).order_by(DoNotCallEvent.id.desc()).limit(limit)
        with self.sessions() as session:
            return [
                DoNotCallEventSnapshot(e.action, e.phone_number, e.detail, e.user, e.host, e.at)
                for e in session.scalars(stmt)
            ]

    def import_csv(
        self,
        path: str | os.PathLike[str],
        default_country: str = "US",
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> DoNotCallImport:
        """Add every valid number of a CSV (section 6 rules: phone column, encodings,
        delimiters, E.164 with the default country, ignoreE164Validation). All or nothing:
        one transaction; rejected rows are reported, never half-imported."""
        rejected: list[RejectedRow] = []
        rejected_count = 0
        seen = 0
        now = self.clock()
        with self.sessions.begin() as session:
            before = int(session.scalar(select(func.count()).select_from(DoNotCallNumber)) or 0)
            chunk: list[dict[str, object]] = []
            for item in iter_rows(
                path, ImportOptions(default_country=default_country), progress, cancel
            ):
                if type(item) is RecipientRow:
                    seen += 1
                    chunk.append(
                        {
                            "phone_number": item.phone_number,
                            "source": "import",
                            "added_by": self.actor.user,
                            "added_at": now,
                        }
                    )
                    if len(chunk) >= IMPORT_CHUNK:
                        self._insert_new(session, chunk)
                        chunk = []
                else:
                    rejected_count += 1
                    if len(rejected) < REJECTED_KEEP:
                        rejected.append(item)  # type: ignore[arg-type]
            if chunk:
                self._insert_new(session, chunk)
            after = int(session.scalar(select(func.count()).select_from(DoNotCallNumber)) or 0)
            added = after - before
            self._event(
                session,
                "IMPORT",
                None,
                f"{Path(path).name}: {added} added, {seen - added} already listed or repeated, "
                f"{rejected_count} rejected",
            )
        log.info("do-not-call list: imported %d numbers (%d rejected)", added, rejected_count)
        return DoNotCallImport(added, seen - added, rejected_count, tuple(rejected))

    @staticmethod
    def _insert_new(session: Session, rows: list[dict[str, object]]) -> None:
        dialect = session.get_bind().dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(DoNotCallNumber).on_conflict_do_nothing(
            index_elements=["phone_number"]
        )
        session.connection().execute(stmt, rows)

    def export(self, path: str | os.PathLike[str]) -> int:
        """Write the list to a CSV (UTF-8 with BOM, formula-safe); return the count."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        count = 0
        try:
            with (
                self.sessions() as session,
                open(partial, "w", encoding="utf-8-sig", newline="") as handle,
            ):
                writer = csv.writer(handle, lineterminator="\r\n")
                writer.writerow(EXPORT_COLUMNS)
                rows = session.execute(
                    select(
                        DoNotCallNumber.phone_number,
                        DoNotCallNumber.source,
                        DoNotCallNumber.added_by,
                        DoNotCallNumber.added_at,
                    )
                    .order_by(DoNotCallNumber.phone_number)
                    .execution_options(yield_per=10_000)
                )
                for phone, source, added_by, added_at in rows:
                    writer.writerow(
                        [
                            phone,
                            neutralize_cell(source),
                            neutralize_cell(added_by),
                            added_at.isoformat(),
                        ]
                    )
                    count += 1
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CsvExportError(
                f"The do-not-call list could not be saved to “{target}” ({exc.strerror}). "
                "Choose another folder."
            ) from None
        return count
