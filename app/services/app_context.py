"""What the windows need to reach the services: one object built at start-up (or by a test).

`build_context` opens (and migrates) the database and makes the service with the given
clock, so the application, the screenshots script and the tests all start the same way.
It lives with the services so that the views never import the database layer
(an import-linter contract); app.views.context re-exports it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.models.db import database_url, describe_url, open_database
from app.services.batch_calls import Actor, BatchCallService, ValidationError, utcnow
from app.services.settings import AppSettings, SettingsStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

DEMO_AGENT_NAME = "Demo message"
DEMO_AGENT_TWIML = (
    "<Response><Say>Hello {{name}}. This is a demonstration call from Batch Calls. "
    "Goodbye.</Say></Response>"
)
#: The simulated demo line. +1 555 010 0100 is what the product asked for; the phone
#: validation refuses area code 555, so the NANP's fictional 202-555-0100 is the fallback.
DEMO_NUMBERS = ("+15550100100", "+12025550100")
DEMO_NUMBER_LABEL = "Demo line"


@dataclass
class AppContext:
    """The database, the services on it, and the clock every view uses."""

    database_url: str
    db: Engine
    sessions: sessionmaker[Session]
    service: BatchCallService
    settings: SettingsStore
    clock: Clock
    #: Settings the engine was started with on top of the stored ones (tests, QA).
    settings_overrides: dict[str, Any] | None = None

    @property
    def database_description(self) -> str:
        """The URL without its password, as the settings dialog shows it."""
        return describe_url(self.database_url)

    def load_settings(self) -> AppSettings:
        from dataclasses import replace

        stored = self.settings.load()
        if self.settings_overrides:
            return replace(stored, **self.settings_overrides)
        return stored

    def close(self) -> None:
        self.db.dispose()


def build_context(
    database_url: str,
    *,
    clock: Clock | None = None,
    actor: Actor | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> AppContext:
    """Open and migrate the database and build the services on it."""
    db, sessions = open_database(database_url)
    service = BatchCallService(sessions, clock=clock or utcnow, actor=actor)
    return AppContext(
        database_url=database_url,
        db=db,
        sessions=sessions,
        service=service,
        settings=SettingsStore(sessions),
        clock=service.clock,
        settings_overrides=settings_overrides,
    )


def ensure_demo_defaults(service: BatchCallService) -> bool:
    """A fresh installation gets a demo agent and a simulated from number, so the first
    batch call can be created right away. Returns True when something was added."""
    if service.list_agents() or service.list_from_numbers():
        return False
    try:
        service.add_agent(DEMO_AGENT_NAME, "twiml", DEMO_AGENT_TWIML)
    except ValidationError as error:  # a concurrent first start already added it
        log.info("demo agent not added: %s", error)
    for number in DEMO_NUMBERS:
        try:
            service.add_from_number(number, DEMO_NUMBER_LABEL, source="simulated")
            break
        except ValidationError as error:
            log.info("demo number %s not accepted: %s", number, error)
    log.info("added the demo agent and simulated from number for a fresh database")
    return True


@dataclass(frozen=True)
class DatabaseKind:
    """What the settings dialog says about a database URL."""

    backend: str  # "sqlite", "postgresql", ...
    location: str  # the SQLite file, or the URL without its password

    @property
    def is_file(self) -> bool:
        return self.backend == "sqlite"


def database_kind(url: str) -> DatabaseKind:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return DatabaseKind(backend, parsed.database or ":memory:")
    return DatabaseKind(backend, describe_url(url))


__all__ = [
    "DEMO_AGENT_NAME",
    "DEMO_AGENT_TWIML",
    "DEMO_NUMBERS",
    "DEMO_NUMBER_LABEL",
    "AppContext",
    "Clock",
    "DatabaseKind",
    "build_context",
    "database_kind",
    "database_url",
    "describe_url",
    "ensure_demo_defaults",
]
