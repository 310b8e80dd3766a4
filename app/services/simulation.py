"""Simulated telephony: realistic, deterministic outcomes without an account.

Simulation mode is the out-of-the-box default (SPEC §7). Each placed call draws its plan
(outcome, ring time, talk time) from a random generator keyed on (seed, call index), and
its state at any moment is a pure function of that plan and the injected clock, so a
test with a fake clock can run a day of calls in milliseconds. The local Twilio stand-in
(`app.standin`) uses the same plans.

A call id encodes everything its plan depends on, so `fetch_call` still answers for a
call placed before the application was restarted (crash reconciliation).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.services.telephony import (
    SIMULATED,
    AccountInfo,
    ApplicationInfo,
    CallRequest,
    CallState,
    NumberInfo,
    RecipientProviderError,
    TransientProviderError,
    classify_twilio_error,
    outcome_for_status,
    status_message,
)

logger = logging.getLogger(__name__)

# Twilio's magic test destinations and the error each one gives.
TEST_NUMBER_ERRORS: dict[str, int] = {
    "+15005550001": 21217,
    "+15005550002": 21214,
    "+15005550003": 21215,
    "+15005550004": 21216,
}
TEST_NUMBER_MESSAGES: dict[int, str] = {
    21217: "Phone number does not appear to be valid",
    21214: "'To' phone number cannot be reached",
    21215: "Account not authorized to call this number (geographic permissions)",
    21216: "Account not allowed to call this number (blocked)",
}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True)
class SimulationSettings:
    """The outcome mix and timing of simulated calls (rates must add up to 1)."""

    answered_rate: float = 0.65
    no_answer_rate: float = 0.15
    busy_rate: float = 0.08
    failed_rate: float = 0.04
    machine_rate: float = 0.08
    queue_seconds: tuple[float, float] = (0.2, 1.5)
    ring_seconds: tuple[float, float] = (3.0, 25.0)
    busy_ring_seconds: tuple[float, float] = (1.0, 6.0)
    failed_after_seconds: tuple[float, float] = (0.5, 3.0)
    talk_median_seconds: float = 45.0
    talk_sigma: float = 0.8
    talk_max_seconds: float = 600.0
    transient_error_rate: float = 0.0

    def __post_init__(self) -> None:
        rates = (
            self.answered_rate,
            self.no_answer_rate,
            self.busy_rate,
            self.failed_rate,
            self.machine_rate,
        )
        if any(rate < 0 for rate in rates) or not math.isclose(sum(rates), 1.0, abs_tol=1e-6):
            raise ValueError(
                "Simulation outcome rates must be non-negative and add up to 1 "
                f"(they add up to {sum(rates):.3f})."
            )
        if not 0 <= self.transient_error_rate <= 1:
            raise ValueError("The simulated transient error rate must be between 0 and 1.")
        for name in ("queue_seconds", "ring_seconds", "busy_ring_seconds", "failed_after_seconds"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(
                    f"Simulation {name} must be a range (low, high) with 0 <= low <= high."
                )
        if self.talk_median_seconds <= 0 or self.talk_max_seconds <= 0:
            raise ValueError("Simulated talk times must be positive.")


@dataclass(frozen=True)
class CallPlan:
    """How one simulated call will go, relative to its creation time."""

    final_status: str  # completed / busy / no-answer / failed
    queue_seconds: float
    ring_seconds: float
    talk_seconds: float  # 0 unless answered
    answered_by: str | None  # only reported when machine detection was asked for
    error_message: str | None = None


def plan_call(
    rng: random.Random,
    settings: SimulationSettings,
    *,
    ring_timeout: int,
    machine_detection: bool,
    time_limit: int | None,
) -> CallPlan:
    """Draw one call's outcome and timing (always the same draws in the same order)."""
    draw = rng.random()
    queue = rng.uniform(*settings.queue_seconds)
    ring = rng.uniform(*settings.ring_seconds)
    talk = rng.lognormvariate(math.log(settings.talk_median_seconds), settings.talk_sigma)
    quick = rng.random()
    talk = max(1.0, min(talk, settings.talk_max_seconds))
    if time_limit is not None:
        talk = min(talk, float(time_limit))
    cumulative = settings.answered_rate
    if draw < cumulative:
        kind = "human"
    elif draw < (cumulative := cumulative + settings.machine_rate):
        kind = "machine_start"
    elif draw < (cumulative := cumulative + settings.no_answer_rate):
        kind = "no-answer"
    elif draw < cumulative + settings.busy_rate:
        kind = "busy"
    else:
        kind = "failed"

    if kind in ("human", "machine_start"):
        if ring > ring_timeout:  # rang longer than the caller waits: nobody answered
            return CallPlan("no-answer", queue, float(ring_timeout), 0.0, None)
        return CallPlan("completed", queue, ring, talk, kind if machine_detection else None)
    if kind == "no-answer":
        return CallPlan("no-answer", queue, float(ring_timeout), 0.0, None)
    if kind == "busy":
        low, high = settings.busy_ring_seconds
        return CallPlan("busy", queue, low + (high - low) * quick, 0.0, None)
    low, high = settings.failed_after_seconds
    return CallPlan(
        "failed", queue, low + (high - low) * quick, 0.0, None, status_message("failed")
    )


@dataclass(frozen=True)
class SimulatedCall:
    """A plan placed at a moment: derives the call's status at any later moment."""

    created_at: datetime
    plan: CallPlan

    @property
    def ringing_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.plan.queue_seconds)

    @property
    def answered_at(self) -> datetime | None:
        if self.plan.final_status != "completed":
            return None
        return self.ringing_at + timedelta(seconds=self.plan.ring_seconds)

    @property
    def ended_at(self) -> datetime:
        return self.ringing_at + timedelta(seconds=self.plan.ring_seconds + self.plan.talk_seconds)

    def timeline(self) -> list[tuple[str, datetime]]:
        """Every status the call goes through, with the moment it starts."""
        events = [("queued", self.created_at), ("ringing", self.ringing_at)]
        answered = self.answered_at
        if answered is not None:
            events.append(("in-progress", answered))
        events.append((self.plan.final_status, self.ended_at))
        return events

    def status_at(self, now: datetime) -> str:
        status = "queued"
        for name, start in self.timeline():
            if now >= start:
                status = name
        return status

    def duration_seconds(self) -> int:
        """Twilio's `duration`: talk time for an answered call, 0 for the others."""
        if self.plan.final_status != "completed":
            return 0
        return max(1, round(self.plan.talk_seconds))


def call_rng(seed: int, index: int) -> random.Random:
    """The generator for call number `index` of a run with `seed` (stable across runs)."""
    return random.Random(f"batchcalls-simulation/{seed}/{index}")


class SimulationProvider:
    """A `TelephonyProvider` that places no real call."""

    name = "simulation"
    capabilities = SIMULATED

    def __init__(
        self,
        clock: Callable[[], datetime],
        seed: int = 0,
        settings: SimulationSettings | None = None,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._settings = settings or SimulationSettings()
        self._tag = hashlib.sha256(f"batchcalls-simulation/{seed}".encode()).hexdigest()[:4]
        self._lock = threading.Lock()
        self._next_index = 0
        self._fault_rng = random.Random(f"batchcalls-simulation-faults/{seed}")
        self._parties: dict[str, tuple[str, str]] = {}  # call id -> (to, from)
        self._calls_between: dict[tuple[str, str], list[str]] = {}  # (to, from) -> call ids

    def __repr__(self) -> str:
        return f"SimulationProvider(seed={self._seed})"

    # -- TelephonyProvider -------------------------------------------------------------
    def place_call(self, request: CallRequest) -> CallState:
        if not E164.match(request.from_):
            raise classify_twilio_error(400, 21212, f"Invalid From number {request.from_!r}")
        code = TEST_NUMBER_ERRORS.get(request.to)
        if code is not None:
            raise classify_twilio_error(400, code, TEST_NUMBER_MESSAGES[code])
        if not E164.match(request.to):
            raise classify_twilio_error(400, 21211, "Invalid 'To' Phone Number")
        with self._lock:
            self._maybe_fail_transiently("placing the call")
            index = self._next_index
            self._next_index += 1
            created = _to_ms(self._now())
            call_id = self._encode(created, index, request)
            self._parties[call_id] = (request.to, request.from_)
            self._calls_between.setdefault((request.to, request.from_), []).append(call_id)
        logger.debug("Simulated call %s placed (call #%d)", call_id, index)
        return self._state(call_id, created)

    def fetch_call(self, call_id: str) -> CallState:
        with self._lock:
            self._maybe_fail_transiently("checking the call")
        return self._state(call_id, self._now())

    def find_calls(self, to: str, from_: str, since: datetime) -> list[CallState]:
        cutoff = _to_ms(since.astimezone(UTC))  # call ids keep whole milliseconds
        with self._lock:
            ids = list(self._calls_between.get((to, from_), ()))
        now = self._now()
        states = [self._state(cid, now) for cid in ids]
        return [s for s in states if s.created_at is not None and s.created_at >= cutoff]

    def check_credentials(self) -> AccountInfo:
        return AccountInfo("simulation", "Simulation", "active")

    def list_from_numbers(self) -> list[NumberInfo]:
        # Simulation numbers are defined by the supervisor and stored in the database.
        return []

    def list_applications(self) -> list[ApplicationInfo]:
        return []

    # -- internals ---------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("The simulation clock must return timezone-aware datetimes.")
        return now.astimezone(UTC)

    def _maybe_fail_transiently(self, action: str) -> None:
        """Injected failure (settings.transient_error_rate); call with the lock held."""
        rate = self._settings.transient_error_rate
        if rate and self._fault_rng.random() < rate:
            raise TransientProviderError(
                f"Simulated network failure while {action}. Retrying.", http_status=503
            )

    def _encode(self, created: datetime, index: int, request: CallRequest) -> str:
        millis = (created - _EPOCH) // timedelta(milliseconds=1)
        limit = request.time_limit or 0
        return (
            f"CA{self._tag}{millis:012x}{index:08x}{min(request.ring_timeout, 255):02x}"
            f"{int(request.machine_detection):01x}{min(limit, 0xFFFFF):05x}"
        )

    def _state(self, call_id: str, now: datetime) -> CallState:
        call = self._decode(call_id)
        status = call.status_at(now)
        ended = status in TERMINAL_STATUSES
        answered = call.answered_at
        with self._lock:
            to, from_ = self._parties.get(call_id, ("", ""))
        return CallState(
            call_id=call_id,
            raw_status=status,
            outcome=outcome_for_status(status),
            to=to,
            from_=from_,
            created_at=call.created_at,
            answered_at=answered if answered is not None and now >= answered else None,
            ended_at=call.ended_at if ended else None,
            duration_seconds=call.duration_seconds() if ended else None,
            answered_by=call.plan.answered_by if answered and now >= answered else None,
            error_code=None,
            error_message=call.plan.error_message if ended else None,
        )

    def _decode(self, call_id: str) -> SimulatedCall:
        if not re.fullmatch(r"CA[0-9a-f]{32}", call_id) or call_id[2:6] != self._tag:
            raise RecipientProviderError(
                f"The simulation has no record of call {call_id!r} (it was placed by "
                "another provider or another simulation seed).",
                code=20404,
                http_status=404,
            )
        body = call_id[6:]
        created = _EPOCH + timedelta(milliseconds=int(body[0:12], 16))
        index = int(body[12:20], 16)
        ring_timeout = int(body[20:22], 16)
        machine_detection = body[22] == "1"
        limit = int(body[23:28], 16) or None
        plan = plan_call(
            call_rng(self._seed, index),
            self._settings,
            ring_timeout=ring_timeout,
            machine_detection=machine_detection,
            time_limit=limit,
        )
        return SimulatedCall(created, plan)


def _to_ms(moment: datetime) -> datetime:
    """Round down to the millisecond a call id can carry."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


__all__ = [
    "TEST_NUMBER_ERRORS",
    "TEST_NUMBER_MESSAGES",
    "CallPlan",
    "SimulatedCall",
    "SimulationProvider",
    "SimulationSettings",
    "call_rng",
    "plan_call",
]
