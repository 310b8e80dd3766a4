"""One simulated call on the stand-in: its plan, its timeline of statuses, how an update
overrides it, and the StartTime / EndTime filters on its moments."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime

from app.services.simulation import TERMINAL_STATUSES, CallPlan, SimulatedCall, SimulationSettings
from app.standin.records import CallRecord, Form, Program

_FINAL_OUTCOMES = ("completed", "busy", "no-answer", "failed")


@dataclass
class _Call:
    sid: str
    index: int
    to: str
    from_: str
    form: Form
    sim: SimulatedCall
    override: tuple[str, datetime] | None = None  # canceled / hung up by an update
    callback: _CallbackSpec | None = None
    callbacks_sent: int = 0  # how many of callback_events() were delivered (in order)
    #: The plan's timeline, worked out once (the plan never changes; an override does).
    planned: tuple[tuple[str, datetime], ...] = dataclasses.field(
        default=(), repr=False, compare=False
    )

    def timeline(self) -> list[tuple[str, datetime]]:
        if not self.planned:
            self.planned = tuple(self.sim.timeline())
        if self.override is None:
            return list(self.planned)
        status, at = self.override
        return [event for event in self.planned if event[1] < at] + [(status, at)]

    def progress(self, now: datetime) -> tuple[str, datetime | None, datetime | None]:
        """(status, start time, end time) at `now`, as the call's resource shows them."""
        events = self.timeline()
        status = "queued"
        for name, at in events:
            if at <= now:
                status = name
        ringing = self.sim.ringing_at
        started = (
            ringing
            if now >= ringing and (self.override is None or self.override[1] > ringing)
            else None
        )
        ended = events[-1][1] if status in TERMINAL_STATUSES else None
        return status, started, ended

    def status_at(self, now: datetime) -> str:
        status = "queued"
        for name, at in self.timeline():
            if now >= at:
                status = name
        return status

    def ended_at(self) -> datetime:
        return self.timeline()[-1][1]

    def callback_events(self) -> list[tuple[str, str, datetime]]:
        """(event, CallStatus, moment) of the status callbacks this call asked for."""
        if self.callback is None:
            return []
        events: list[tuple[str, str, datetime]] = []
        for status, at in self.timeline():
            if status == "queued":
                events.append(("initiated", "initiated", at))
            elif status == "ringing":
                events.append(("ringing", "ringing", at))
            elif status == "in-progress":
                events.append(("answered", "in-progress", at))
            else:
                events.append(("completed", status, at))
        return [event for event in events if event[0] in self.callback.events]

    def answered_at(self) -> datetime | None:
        for name, at in self.timeline():
            if name == "in-progress":
                return at
        return None

    def record(self, now: datetime) -> CallRecord:
        events = tuple(event for event in self.timeline() if event[1] <= now)
        status = events[-1][0] if events else "queued"
        ended = self.ended_at() if status in TERMINAL_STATUSES else None
        return CallRecord(
            self.sid, self.to, self.from_, self.sim.created_at, status, ended, events, self.form
        )


@dataclass(frozen=True)
class _CallbackSpec:
    url: str
    method: str
    events: frozenset[str]


def _programmed_plan(program: Program, settings: SimulationSettings) -> CallPlan:
    answered = program.outcome == "completed"
    return CallPlan(
        final_status=program.outcome,
        queue_seconds=settings.queue_seconds[0],
        ring_seconds=program.ring_seconds,
        talk_seconds=program.talk_seconds if answered else 0.0,
        answered_by=program.answered_by if answered else None,
    )


def _within(
    started: datetime | None, ended: datetime | None, field: str, op: str, bound: datetime | date
) -> bool:
    """Twilio's StartTime / EndTime filters (`>` means on or after, `<` on or before), on
    the whole seconds the call's resource shows."""
    moment = started if field == "StartTime" else ended
    if moment is None:
        return False
    moment = moment.astimezone(UTC).replace(microsecond=0)
    if isinstance(bound, datetime):
        return _compare(moment, op, bound)
    return _compare(moment.date(), op, bound)


def _compare(value: date, op: str, bound: date) -> bool:
    if op == ">":
        return value >= bound
    if op == "<":
        return value <= bound
    return value == bound
