"""The two clocks a test injects into the services, the engine and the stand-in: one that
moves only when told (`FakeClock`) and real time running faster (`SpeedClock`). No Qt."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

#: A Monday afternoon (UTC): inside the default calling hours.
DEFAULT_START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to; `now()` is what services and engines call."""

    def __init__(self, start: datetime | None = None):
        self.current = start or DEFAULT_START

    def __call__(self) -> datetime:
        return self.current

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        self.current += timedelta(seconds=seconds, **kwargs)
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when


class SpeedClock:
    """Real time running `speed` times faster from `start`; safe to read from any thread.

    With speed 300 a simulated ten-minute call ends after two real seconds, so a whole
    batch call runs in a test without fixed sleeps. `jump()` moves it forward at once.
    """

    def __init__(self, start: datetime = DEFAULT_START, speed: float = 1.0):
        self._start = start
        self._origin = time.monotonic()
        self._offset = timedelta(0)
        self._lock = threading.Lock()
        self.speed = speed

    def __call__(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._origin) * self.speed
            return self._start + self._offset + timedelta(seconds=elapsed)

    def jump(self, **delta: float) -> datetime:
        with self._lock:
            self._offset += timedelta(**delta)
        return self()
