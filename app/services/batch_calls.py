"""Batch call use cases: create, rename, pause, resume, cancel, retry, delete, and the
queries the list, details and recipients views need.

BatchCallService is the one object the views, the command line and the engine hold; it
composes parts that each do one job, as APScheduler splits scheduler, job store and
executor:

- app.services.batch_creation: validating and storing a new batch call and its
  recipients, and removing what an interrupted creation left;
- app.services.batch_actions: the status actions (one conditional UPDATE each);
- app.services.batch_queries: reading batch calls (list, get, history, outcomes);
- app.services.recipient_queries: reading recipients (search, sort, count, pages, export);
- app.services.catalog: the agents and from numbers;
- app.services.batch_common: the errors, the actor, and the context they all share.

The names callers import from here stay importable from here (`__all__`). A test that
patches a module-level name patches it in the module that reads it.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.models.creation import CONCURRENCY_MAX, NAME_MAX
from app.models.snapshots import (
    AgentSnapshot,
    AuditSnapshot,
    BatchCallSnapshot,
    FromNumberSnapshot,
    RecipientSnapshot,
)
from app.models.status import Action, RecipientStatus
from app.models.window import CallingWindow
from app.services.batch_actions import BatchCallActions, validate_name
from app.services.batch_common import (
    Actor,
    BatchCallContext,
    Clock,
    CreationCancelled,
    NotFound,
    ValidationError,
    utcnow,
)
from app.services.batch_creation import (
    INSERT_CHUNK,
    RECIPIENT_INSERT_COLUMNS,
    BatchCallCreation,
    NewBatchCall,
    RecipientInput,
    scheduled_instant,
)
from app.services.batch_queries import BatchCallListing, BatchCallQueries, batch_snapshot
from app.services.catalog import Catalog, agent_snapshot, number_snapshot
from app.services.recipient_queries import (
    EXPORT_COLUMNS,
    EXPORT_FIXED_COLUMNS,
    PHONE_CHARS,
    RecipientQueries,
    RecipientQuery,
    RecipientSort,
    recipient_search,
    recipient_snapshot,
    search_branches,
)

__all__ = [  # what callers import from here, wherever it is defined now
    "CONCURRENCY_MAX",  # the views read it from here
    "EXPORT_COLUMNS",
    "EXPORT_FIXED_COLUMNS",
    "INSERT_CHUNK",  # the command line reads it from here
    "NAME_MAX",  # the rename dialog reads it from here
    "PHONE_CHARS",
    "RECIPIENT_INSERT_COLUMNS",
    "Actor",
    "BatchCallListing",
    "BatchCallService",
    "Clock",
    "CreationCancelled",
    "NewBatchCall",
    "NotFound",
    "RecipientInput",
    "RecipientQuery",
    "RecipientSort",
    "ValidationError",
    "agent_snapshot",
    "batch_snapshot",
    "number_snapshot",
    "recipient_search",
    "recipient_snapshot",
    "scheduled_instant",
    "search_branches",
    "utcnow",
    "validate_name",
]


class BatchCallService:
    """The batch call use cases. Thread-safe: every call opens its own short session.

    Each method hands on to the part its section names (the parts' methods carry the
    docstrings). `clock`, `actor` and `on_change` may be replaced at any time: the parts
    read them from the one context they share."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utcnow,
        actor: Actor | None = None,
        on_change: Callable[[int], None] | None = None,
    ):
        self._context = BatchCallContext(sessions, clock, actor or Actor.current(), on_change)
        self.batch_queries = BatchCallQueries(self._context)
        self.recipient_queries = RecipientQueries(sessions)
        self.creation = BatchCallCreation(self._context, self.batch_queries)
        self.actions = BatchCallActions(self._context, self.batch_queries)
        self.catalog = Catalog(sessions)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._context.sessions

    @property
    def clock(self) -> Clock:
        return self._context.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._context.clock = clock

    @property
    def actor(self) -> Actor:
        return self._context.actor

    @actor.setter
    def actor(self, actor: Actor) -> None:
        self._context.actor = actor

    @property
    def on_change(self) -> Callable[[int], None] | None:
        """Told the id of every batch call an action changed (the GUI turns it into a signal)."""
        return self._context.on_change

    @on_change.setter
    def on_change(self, on_change: Callable[[int], None] | None) -> None:
        self._context.on_change = on_change

    @property
    def calls_waited_for(self) -> int:
        """How many calls the dialer was already placing when the last Pause, Cancel or
        Delete committed (it waited for them: none starts after it answered)."""
        return self.actions.calls_waited_for

    @calls_waited_for.setter
    def calls_waited_for(self, count: int) -> None:
        self.actions.calls_waited_for = count

    # ----------------------------------------------------------------- creation
    def validate_new(self, spec: NewBatchCall, session: Session) -> dict[str, Any]:
        return self.creation.validate_new(spec, session)

    def create(
        self,
        spec: NewBatchCall,
        recipient_chunks: Iterable[Sequence[RecipientInput]],
        *,
        progress: Callable[[int], None] | None = None,
        before_scheduled: Callable[[], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> BatchCallSnapshot:
        return self.creation.create(
            spec,
            recipient_chunks,
            progress=progress,
            before_scheduled=before_scheduled,
            cancel=cancel,
        )

    def create_from_csv(
        self,
        spec: NewBatchCall,
        path: str | Path,
        options: Any = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> BatchCallSnapshot:
        return self.creation.create_from_csv(spec, path, options, progress=progress, cancel=cancel)

    def discard_abandoned_imports(self) -> builtins.list[int]:
        return self.creation.discard_abandoned_imports()

    # ----------------------------------------------------------------- actions
    def rename(self, batch_id: int, name: str) -> BatchCallSnapshot:
        return self.actions.rename(batch_id, name)

    def pause(self, batch_id: int) -> BatchCallSnapshot:
        return self.actions.pause(batch_id)

    def resume(self, batch_id: int) -> BatchCallSnapshot:
        return self.actions.resume(batch_id)

    def cancel(self, batch_id: int) -> BatchCallSnapshot:
        return self.actions.cancel(batch_id)

    def retry(self, batch_id: int) -> BatchCallSnapshot:
        return self.actions.retry(batch_id)

    def delete(self, batch_id: int) -> None:
        self.actions.delete(batch_id)

    def perform(self, batch_id: int, action: Action) -> BatchCallSnapshot | None:
        return self.actions.perform(batch_id, action)

    # ----------------------------------------------------------------- batch calls read
    def get(self, batch_id: int) -> BatchCallSnapshot:
        return self.batch_queries.get(batch_id)

    def find(self, batch_id: int) -> BatchCallSnapshot | None:
        return self.batch_queries.find(batch_id)

    def list(self, search: str = "") -> builtins.list[BatchCallSnapshot]:
        return self.batch_queries.list(search)

    def list_changed(
        self, versions: Mapping[int, int] | None = None, stale: Collection[int] = ()
    ) -> BatchCallListing:
        return self.batch_queries.list_changed(versions, stale)

    def resolve(self, reference: str) -> BatchCallSnapshot:
        return self.batch_queries.resolve(reference)

    def outcomes_since(
        self, batch_id: int, since: datetime
    ) -> builtins.list[tuple[datetime, RecipientStatus]]:
        return self.batch_queries.outcomes_since(batch_id, since)

    def history(self, batch_id: int) -> builtins.list[AuditSnapshot]:
        return self.batch_queries.history(batch_id)

    def calling_window(self, batch_id: int) -> CallingWindow:
        return self.batch_queries.calling_window(batch_id)

    def open_recipient_count(self, batch_id: int) -> int:
        return self.batch_queries.open_recipient_count(batch_id)

    # ----------------------------------------------------------------- recipients read
    def count_recipients(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int:
        return self.recipient_queries.count_recipients(batch_id, query)

    def stored_count(self, batch_id: int, query: RecipientQuery = RecipientQuery()) -> int | None:
        return self.recipient_queries.stored_count(batch_id, query)

    def recipients_page(
        self,
        batch_id: int,
        query: RecipientQuery = RecipientQuery(),
        offset: int = 0,
        limit: int = 200,
        *,
        after: RecipientSnapshot | None = None,
    ) -> builtins.list[RecipientSnapshot]:
        return self.recipient_queries.recipients_page(batch_id, query, offset, limit, after=after)

    def recipient_at(
        self, batch_id: int, query: RecipientQuery, position: int
    ) -> RecipientSnapshot | None:
        return self.recipient_queries.recipient_at(batch_id, query, position)

    def recipients_by_id(self, batch_id: int, ids: Sequence[int]) -> dict[int, RecipientSnapshot]:
        return self.recipient_queries.recipients_by_id(batch_id, ids)

    def iter_recipients(
        self, batch_id: int, query: RecipientQuery = RecipientQuery(), chunk: int = 5_000
    ) -> Iterator[RecipientSnapshot]:
        return self.recipient_queries.iter_recipients(batch_id, query, chunk)

    def export_recipients(
        self, batch_id: int, path: str | Path, query: RecipientQuery = RecipientQuery()
    ) -> int:
        return self.recipient_queries.export_recipients(batch_id, path, query)

    def call_attempts(self, recipient_id: int) -> builtins.list[dict[str, Any]]:
        return self.recipient_queries.call_attempts(recipient_id)

    # ----------------------------------------------------------------- agents and numbers
    def add_agent(self, name: str, kind: str, value: str, active: bool = True) -> AgentSnapshot:
        return self.catalog.add_agent(name, kind, value, active)

    def set_agent_active(self, agent_id: int, active: bool) -> AgentSnapshot:
        return self.catalog.set_agent_active(agent_id, active)

    def list_agents(self, active_only: bool = False) -> builtins.list[AgentSnapshot]:
        return self.catalog.list_agents(active_only)

    def add_from_number(
        self, phone_number: str, label: str = "", source: str = "simulated"
    ) -> FromNumberSnapshot:
        return self.catalog.add_from_number(phone_number, label, source)

    def list_from_numbers(self, active_only: bool = False) -> builtins.list[FromNumberSnapshot]:
        return self.catalog.list_from_numbers(active_only)
