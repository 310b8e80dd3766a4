"""Helpers for the engine tests: batch calls to dial, tick loops, a scriptable provider."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.models.recipients import recount
from app.models.schema import CallAttempt, Recipient
from app.models.snapshots import BatchCallSnapshot
from app.models.status import RecipientStatus
from app.services.batch_calls import BatchCallService, NewBatchCall
from app.services.engine import DialerEngine, TickReport
from app.services.simulation import SimulationProvider
from app.services.telephony import (
    SIMULATED,
    CallRequest,
    CallState,
    ProviderCapabilities,
    ProviderError,
)
from tests.conftest import FakeClock, Row

ALL_DAYS = frozenset(range(1, 8))
#: A from number the Twilio stand-in owns.
STANDIN_FROM = "+14155550100"


def rows(count: int, prefix: str = "+1202555", start: int = 0) -> list[Row]:
    """`count` recipients with distinct numbers (prefix + 4 digits)."""
    return [
        Row(i + 2, f"{prefix}{start + i:04d}", f"Person {start + i}", {"city": "Austin"})
        for i in range(count)
    ]


def new_batch(
    service: BatchCallService,
    recipients: Iterable[Row] | int,
    *,
    name: str = "Reminders",
    from_number: str = "+12025550100",
    agent_kind: str = "twiml",
    agent_value: str = "<Response><Say>Hello {{name}}</Say></Response>",
    timezone: str = "UTC",
    window: tuple[str, str] = ("00:00", "23:59"),
    days: frozenset[int] = ALL_DAYS,
    reserved: int = 5,
) -> BatchCallSnapshot:
    agents = {a.name: a for a in service.list_agents()}
    agent = agents.get("Agent " + agent_kind) or service.add_agent(
        "Agent " + agent_kind, agent_kind, agent_value
    )
    number = service.add_from_number(from_number, "Main line")
    people = rows(recipients) if isinstance(recipients, int) else list(recipients)
    spec = NewBatchCall(
        name,
        agent.id,
        number.id,
        timezone=timezone,
        window_start=window[0],
        window_end=window[1],
        allowed_days=days,
        reserved_concurrency=reserved,
    )
    return service.create(spec, [people])


def run_until(
    engine: DialerEngine,
    clock: FakeClock,
    done: Callable[[], bool],
    *,
    step: float = 5.0,
    max_ticks: int = 5000,
    each: Callable[[TickReport], None] | None = None,
) -> int:
    """Tick and advance the fake clock until `done()`; returns the number of ticks."""
    for n in range(1, max_ticks + 1):
        report = engine.tick()
        if each is not None:
            each(report)
        if done():
            return n
        clock.advance(step)
    raise AssertionError(f"not done after {max_ticks} ticks (fake time {clock()})")


def finished(service: BatchCallService, *batch_ids: int) -> Callable[[], bool]:
    def check() -> bool:
        return all(service.get(b).status.value in ("COMPLETED", "FAILED") for b in batch_ids)

    return check


def assert_counters_exact(service: BatchCallService, batch_id: int) -> None:
    """The counters on the batch call equal a COUNT over its recipients."""
    snapshot = service.get(batch_id)
    with service.sessions() as session:
        assert recount(session, batch_id) == snapshot.counts


def attempts_by_recipient(service: BatchCallService, batch_id: int) -> dict[str, list[CallAttempt]]:
    with service.sessions() as session:
        result: dict[str, list[CallAttempt]] = {}
        for attempt in session.scalars(
            select(CallAttempt)
            .where(CallAttempt.batch_call_id == batch_id)
            .order_by(CallAttempt.id)
        ):
            result.setdefault(attempt.to_number, []).append(attempt)
        return result


def recipient_statuses(service: BatchCallService, batch_id: int) -> dict[str, RecipientStatus]:
    with service.sessions() as session:
        return {
            phone: RecipientStatus(status)
            for phone, status in session.execute(
                select(Recipient.phone_number, Recipient.status).where(
                    Recipient.batch_call_id == batch_id
                )
            )
        }


@dataclass
class Placement:
    to: str
    at: datetime
    call_id: str | None


@dataclass
class ScriptedProvider:
    """The simulation provider, plus scripted errors per destination and a hook that runs
    inside place_call (to race a supervisor action against a call being placed)."""

    clock: FakeClock | Callable[[], datetime]
    seed: int = 3
    #: destination -> errors to raise, one per call, in order (then the call goes through)
    errors: dict[str, list[ProviderError]] = field(default_factory=dict)
    #: raised on every place_call while set (for example a rejected credential)
    always: ProviderError | None = None
    #: errors for fetch_call, one per call, in order
    fetch_errors: list[ProviderError] = field(default_factory=list)
    on_place: Callable[[CallRequest], None] | None = None
    placements: list[Placement] = field(default_factory=list)
    name: str = "simulation"
    capabilities: ProviderCapabilities = SIMULATED

    def __post_init__(self) -> None:
        self.inner = SimulationProvider(self.clock, seed=self.seed)
        self.lock = threading.Lock()
        self.fetches = 0

    def place_call(self, request: CallRequest) -> CallState:
        if self.on_place is not None:
            self.on_place(request)
        with self.lock:
            if self.always is not None:
                self.placements.append(Placement(request.to, self.clock(), None))
                raise self.always
            queue = self.errors.get(request.to)
            if queue:
                error = queue.pop(0)
                self.placements.append(Placement(request.to, self.clock(), None))
                raise error
        state = self.inner.place_call(request)
        with self.lock:
            self.placements.append(Placement(request.to, self.clock(), state.call_id))
        return state

    def fetch_call(self, call_id: str) -> CallState:
        with self.lock:
            self.fetches += 1
            if self.fetch_errors:
                raise self.fetch_errors.pop(0)
        return self.inner.fetch_call(call_id)

    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]:
        return self.inner.find_calls(to, from_, since)

    def check_credentials(self):  # type: ignore[no-untyped-def]
        return self.inner.check_credentials()

    def list_from_numbers(self):  # type: ignore[no-untyped-def]
        return []

    def list_applications(self):  # type: ignore[no-untyped-def]
        return []

    def placed_to(self) -> list[str]:
        """Destinations of the calls that were really created."""
        with self.lock:
            return [p.to for p in self.placements if p.call_id]
