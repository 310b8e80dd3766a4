"""What the engine is doing, as a value: an enum and its detail, not free text.

The window and the headless worker branch on `EngineStatus.state`; `text` is what they
show or log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class EngineState(StrEnum):
    """The engine's state, as the hosts report it."""

    #: The host's thread runs but the engine has not ticked yet.
    STARTING = "starting"
    #: This engine holds the lease and works (it may have nothing to dial).
    DIALING = "dialing"
    #: Another engine holds the lease; this one stands by (the detail names it).
    STANDBY = "standby"
    #: The provider or the database cannot be used (the detail says why).
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True)
class EngineStatus:
    """An engine state with its detail (who dials, what the error is)."""

    state: EngineState
    detail: str = ""

    @property
    def text(self) -> str:
        """ "dialing", "standby: dialing is done by ...", "error: ..." (logs, tooltips)."""
        return f"{self.state.value}: {self.detail}" if self.detail else self.state.value

    def __str__(self) -> str:
        return self.text


DIALING = EngineStatus(EngineState.DIALING)
STOPPED = EngineStatus(EngineState.STOPPED)
STARTING = EngineStatus(EngineState.STARTING)


def standby(holder: str | None) -> EngineStatus:
    return EngineStatus(EngineState.STANDBY, f"dialing is done by {holder}")


def error(detail: str) -> EngineStatus:
    return EngineStatus(EngineState.ERROR, detail)


@dataclass
class TickReport:
    """What one tick did, for the host to turn into signals and log lines."""

    status: EngineStatus = DIALING
    #: Batch calls whose status, counts or waiting reason changed (or that disappeared).
    changed: set[int] = field(default_factory=set)
    #: Batch calls whose recipients changed.
    recipients_changed: set[int] = field(default_factory=set)
    #: New waiting reasons ("" when cleared).
    waiting_reasons: dict[int, str] = field(default_factory=dict)
    picked_up: list[int] = field(default_factory=list)
    placed: int = 0
    settled: int = 0
    #: Placing stopped because the tick's placing time budget was used up.
    budget_used: bool = False
    #: Seconds until the next tick is useful when sooner than the usual interval
    #: (the pacing frees a slot), else None.
    next_tick_in: float | None = None

    @property
    def state(self) -> EngineState:
        return self.status.state

    def touch(self, batch_id: int, recipients: bool = True) -> None:
        self.changed.add(batch_id)
        if recipients:
            self.recipients_changed.add(batch_id)
