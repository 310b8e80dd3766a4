"""Saying that the database is unreachable without filling the log: once when it goes,
a reminder now and then while it stays away, and once when it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two reminders while the database stays unreachable.
REMIND_EVERY_SECONDS = 300.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class OutageLog:
    """Turns "this tick failed / succeeded" into log lines on changes of state.

    `failed()` on every failing tick logs the first failure, then a reminder every
    `remind_every` seconds; `succeeded()` logs the recovery once (with how long it lasted).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        remind_every: float = REMIND_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._remind_every = remind_every
        self._clock = clock
        self._since: float | None = None
        self._last_said = 0.0
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, reason: str) -> None:
        now = self._clock()
        self.failures += 1
        if self._since is None:
            self._since = self._last_said = now
            self.failures = 1
            self._log.warning(
                "database busy or unreachable (%s): no call is placed until it is back; "
                "trying again",
                reason,
            )
        elif now - self._last_said >= self._remind_every:
            self._last_said = now
            self._log.warning(
                "database still busy or unreachable after %s (%s, %d failed attempts); "
                "still trying",
                _duration(now - self._since),
                reason,
                self.failures,
            )

    def succeeded(self) -> None:
        if self._since is None:
            return
        self._log.info(
            "database reachable again after %s; dialing resumes",
            _duration(self._clock() - self._since),
        )
        self._since = None
        self.failures = 0
