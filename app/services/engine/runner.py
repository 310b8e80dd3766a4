"""One runner for both hosts: it opens the engine's database, builds the engine and runs
safe ticks. The Qt thread host (app.services.engine_thread) and the headless worker
(app.services.worker) only decide when to tick and what to do with each report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.models.sqlite_file import is_damage
from app.services.engine import state as states
from app.services.engine.config import Clock, EngineConfig, utcnow
from app.services.engine.dialer import DialerEngine
from app.services.engine.state import TickReport
from app.services.engine.store import open_engine_database
from app.services.engine.tracking import CallbackSource
from app.services.engine_settings import effective_settings, engine_config_for
from app.services.outage import OutageLog
from app.services.providers import build_provider
from app.services.telephony import TelephonyProvider

log = logging.getLogger(__name__)


class EngineRunner:
    """The engine on its own connections (open it in the thread that will tick).

    With no `clock` the engine runs on the real clock and may wait for its pacing
    (cut short by `stop`); with an injected clock (tests, QA's fast clock) it never
    waits. Without a `provider` it builds the one the settings choose."""

    def __init__(
        self,
        database_url: str,
        *,
        stop: threading.Event,
        provider: TelephonyProvider | None = None,
        clock: Clock | None = None,
        config: EngineConfig | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
        status_callbacks: CallbackSource | None = None,
        status_callback_url: str | None = None,
    ) -> None:
        """`status_callbacks` / `status_callback_url`: a receiver of Twilio's status
        callbacks and the public URL Twilio is asked to post them to."""
        self._stop = stop
        #: SQLite's words when the file turned out damaged: the host stops dialing.
        self.damage: str | None = None
        self._outage = OutageLog(log)
        self.db: Engine
        self.db, sessions = open_engine_database(database_url)
        engine_clock = clock or utcnow
        try:
            # The poll interval and the lease timing are read once, here: the stored
            # settings with this host's overrides (an override out of range raises
            # SettingsError before anything starts).
            settings = effective_settings(sessions, settings_overrides)
            config = engine_config_for(settings, config)
            log.info(
                "poll interval %g s, lease heartbeat %g s, expiry %g s",
                config.poll_interval_seconds,
                config.lease_heartbeat_seconds,
                config.lease_ttl_seconds,
            )
            self.engine = DialerEngine(
                sessions,
                provider,
                clock=engine_clock,
                config=config,
                settings_overrides=settings_overrides,
                provider_factory=None
                if provider
                else (
                    lambda settings: build_provider(
                        settings, clock=engine_clock, status_callback_url=status_callback_url
                    )
                ),
                sleep=self._pace if clock is None else None,
                status_callbacks=status_callbacks,
            )
        except BaseException:
            self.db.dispose()
            raise

    def _pace(self, seconds: float) -> None:
        """The engine's wait for its pacing: cut short by a stop request."""
        if self._stop.wait(seconds):
            self.engine.request_stop()

    def tick(self) -> TickReport:
        """A tick whose database or provider trouble is logged and reported, never
        raised: the next tick tries again (a database outage is logged when it starts, now
        and then while it lasts, and when it ends); a damaged SQLite file sets `damage`."""
        try:
            report = self.engine.tick()
        except SQLAlchemyError as exc:
            if is_damage(exc):
                self.damage = str(getattr(exc, "orig", exc))
                return TickReport(
                    status=states.error(f"the database file is damaged: {self.damage}")
                )
            self._outage.failed(type(exc).__name__)  # logged on changes, not every tick
            return TickReport(
                status=states.error(f"the database is busy or unreachable ({type(exc).__name__})")
            )
        except Exception as exc:
            log.exception("engine tick failed")
            return TickReport(status=states.error(f"{type(exc).__name__}: {exc}"))
        self._outage.succeeded()
        return report

    def seconds_to_next_tick(self, report: TickReport) -> float:
        """The dialing interval, or sooner when the report asks for it."""
        try:
            interval = self.engine.settings.dial_interval_seconds
        except SQLAlchemyError:
            interval = 1.0
        if report.next_tick_in is not None:
            interval = min(interval, report.next_tick_in)
        return interval

    def request_stop(self) -> None:
        """Thread-safe: the current tick stops placing calls at once."""
        self._stop.set()
        self.engine.request_stop()

    def close(self) -> None:
        """Release the lease, the polling threads and the connections."""
        try:
            self.engine.close()
        except Exception:
            log.exception("closing the engine failed")
        finally:
            self.db.dispose()
