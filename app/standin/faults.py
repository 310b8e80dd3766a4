"""The stand-in's fault injection and the account's limits: seeded 429s, 500s, dropped
and lost answers, the create latency, and the calls-per-second rate limit."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.services.simulation import CallPlan
from app.standin.shapes import _ApiError


@dataclass(frozen=True)
class Faults:
    """Seeded fault injection; rates are per request and add up to at most 1.

    `drop_rate`: the connection is closed before the request is acted on.
    `lost_response_rate`: the request is acted on (a call is created) and then the
    connection is closed without an answer, the ambiguous case a dialer must reconcile.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    delay_seconds: float = 0.0
    seed: int = 0
    retry_after_seconds: int | None = None  # a Retry-After header on the injected 429s

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.drop_rate, self.lost_response_rate)
        if any(r < 0 for r in rates) or sum(rates) > 1:
            raise ValueError("Fault rates must be non-negative and add up to at most 1.")
        if self.delay_seconds < 0:
            raise ValueError("The fault delay must not be negative.")
        if self.retry_after_seconds is not None and self.retry_after_seconds < 0:
            raise ValueError("Retry-After must not be negative.")


def _fault_streams(seed: int) -> tuple[random.Random, random.Random]:
    """(other requests, creates): two seeded streams of fault draws."""
    return random.Random(f"standin-faults/{seed}"), random.Random(f"standin-create-faults/{seed}")


def _check_rate_limit(cps: float | None, mode: str) -> None:
    if cps is not None and cps <= 0:
        raise ValueError("The stand-in calls-per-second limit must be positive.")
    if mode not in ("queue", "reject"):
        raise ValueError(f"Unknown rate limit mode {mode!r}: use 'queue' or 'reject'.")


def _check_create_delay(seconds: float, up_to: float | None = None) -> None:
    if not 0 <= seconds <= 60:
        raise ValueError("The create delay must be 0 to 60 seconds.")
    if up_to is not None and not seconds <= up_to <= 60:
        raise ValueError("The longest create delay must be from the shortest to 60 seconds.")


def _take_rate_slot(recent: deque[datetime], cps: float, now: datetime) -> None:
    """Count a create against the account's rate (`recent`: the creates accepted in the
    last second), or refuse it with 429 / 20429 and Retry-After."""
    window = timedelta(seconds=1)
    while recent and (recent[0] <= now - window or recent[0] > now):
        recent.popleft()
    if len(recent) >= cps:
        wait = (recent[0] + window - now).total_seconds()
        raise _ApiError(
            429,
            20429,
            "Too Many Requests: calls are created faster than the account's rate",
        ).with_retry_after(max(1, math.ceil(wait)))
    recent.append(now)


def _queue_for_rate(
    plan: CallPlan, now: datetime, next_dial: datetime | None, cps: float
) -> tuple[CallPlan, datetime]:
    """Twilio queues calls beyond the account's rate: they ring later. (The plan with its
    queue time, the moment the next call may be dialed.)"""
    dial_at = max(now + timedelta(seconds=plan.queue_seconds), next_dial or now)
    plan = dataclasses.replace(plan, queue_seconds=(dial_at - now).total_seconds())
    return plan, dial_at + timedelta(seconds=1 / cps)
