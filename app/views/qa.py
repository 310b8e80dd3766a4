"""The documented way to start the desktop application for QA automation (docs/qa.md):
against any database, with an injected clock and the simulation provider or a Twilio
stand-in, engine included or not, and a bounded shutdown that leaves nothing running.

The acceptance tests, the GUI benchmark and the screenshots script all start the
application through `launch()`, so what QA automates is what they exercise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer

from app.services.batch_calls import Actor
from app.testing.clocks import DEFAULT_START as DEFAULT_START
from app.testing.clocks import SpeedClock as SpeedClock
from app.views.app import keep_gui_responsive, prepare_application, start_engine
from app.views.context import AppContext, build_context, ensure_demo_defaults
from app.views.main_window import MainWindow

if TYPE_CHECKING:
    from app.services.engine_thread import EngineHost

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_START",
    "Launched",
    "SpeedClock",
    "StallMeter",
    "launch",
    "process_events_until",
]


@dataclass
class Launched:
    """What `launch()` started; `close()` stops all of it (bounded).

    `context` is how a test reaches the services the window uses: `context.service` (the
    BatchCallService: create, get, list, perform...), `context.sessions` (SQLAlchemy
    sessions on the same database), `context.settings` and `context.clock`.
    """

    context: AppContext
    window: MainWindow
    engine: EngineHost | None
    restore_interpreter: Callable[[], None] = field(default=lambda: None)
    closed: bool = field(default=False)

    def close(self, timeout_ms: int = 5000) -> None:
        if self.closed:
            return
        self.closed = True
        self.window.close()
        self.window.shutdown(timeout_ms)
        if self.engine is not None:
            self.engine.stop(timeout_ms)
        self.window.deleteLater()
        self.context.close()
        self.restore_interpreter()


def launch(
    database_url: str,
    *,
    clock: Callable[[], datetime] | None = None,
    with_engine: bool = True,
    provider: Any = None,
    settings_overrides: dict[str, Any] | None = None,
    demo_defaults: bool = True,
    show: bool = True,
) -> Launched:
    """Open the main window on `database_url` (migrated first) with `clock` everywhere.

    With `with_engine`, the dialer runs on its own thread with the same clock and either
    `provider` (for example a TwilioProvider pointed at a stand-in) or the one the
    settings choose (simulation by default); `settings_overrides` go to the engine (for
    example a short `pickup_interval_seconds`).
    """
    prepare_application()
    context = build_context(
        database_url,
        clock=clock,
        actor=Actor("qa", "qa-host"),
        settings_overrides=settings_overrides,
    )
    if demo_defaults:
        ensure_demo_defaults(context.service)
    engine = None
    if with_engine:
        engine = start_engine(
            database_url,
            clock=context.clock,
            provider=provider,
            settings_overrides=settings_overrides,
        )
    window = MainWindow(context, engine=engine)
    if show:
        window.show()
    restore = keep_gui_responsive()
    return Launched(context, window, engine, restore)


class StallMeter(QObject):
    """Measures how long the GUI thread goes without running its event loop.

    A QTimer ("stallMeterTimer") fires every `interval_ms`; any gap longer than that is
    time the window could not repaint or react. `worst_ms` is the longest such stall.
    """

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("stallMeter")
        self._interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setObjectName("stallMeterTimer")
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.gaps_ms: list[float] = []

    def start(self) -> None:
        self.gaps_ms.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps_ms.append((now - self._last) * 1000.0)
        self._last = now

    @property
    def worst_ms(self) -> float:
        """The longest time between two ticks, minus the timer's own interval."""
        return max(self.gaps_ms, default=0.0) - self._interval_ms

    def percentile_ms(self, fraction: float) -> float:
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] - self._interval_ms


def process_events_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """For scripts without pytest-qt: run the event loop until `condition()` holds (checked
    every 10 ms) or `timeout_s` passed; returns whether it holds."""
    if condition():
        return True
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    poll = QTimer()
    poll.setObjectName("qaPollTimer")
    poll.setInterval(10)

    def check() -> None:
        if condition() or time.monotonic() >= deadline:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    return condition()
