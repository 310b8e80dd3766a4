"""Pacing and concurrency figures over the calls a test made: the most created in any
window, and the most alive at once."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime, timedelta


def _most_created_within(stamps: Iterable[datetime], window: timedelta) -> int:
    """The most of `stamps` (creation moments) in any `window`."""
    ordered = sorted(stamps)
    best = 0
    for end, stamp in enumerate(ordered):
        start = bisect.bisect_right(ordered, stamp - window, 0, end)
        best = max(best, end - start + 1)
    return best


def _most_alive(spans: Iterable[tuple[datetime, datetime]], now: datetime) -> int:
    """The most (created, ended) spans open at once up to `now`."""
    events: list[tuple[datetime, int]] = []
    for created, ended in spans:
        if created > now:
            continue
        events.append((created, 1))
        if ended <= now:
            events.append((ended, -1))
    events.sort(key=lambda event: (event[0], event[1]))  # ends before starts at a tie
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best
