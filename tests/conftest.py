"""Fixtures shared by the whole suite: a temporary database file, the service, a fake clock."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never touch the supervisor's real keyring or data directory from a test.
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from app.models.db import make_engine, open_database
from app.services.batch_calls import Actor, BatchCallService

POSTGRES_URL_ENV = "BATCHCALLS_TEST_POSTGRES_URL"


class FakeClock:
    """A clock that only moves when told to; `now()` is what services and engines call."""

    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # a Monday

    def __call__(self) -> datetime:
        return self.current

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        self.current += timedelta(seconds=seconds, **kwargs)
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(tmp_path) -> str:
    """A fresh SQLite file (not :memory:, which is a different database in each thread)."""
    return f"sqlite:///{tmp_path / 'batchcalls.sqlite3'}"


@pytest.fixture
def database(database_url):
    engine, sessions = open_database(database_url)
    yield engine, sessions
    engine.dispose()


@pytest.fixture
def sessions(database):
    return database[1]


@pytest.fixture
def service(sessions, clock) -> BatchCallService:
    return BatchCallService(sessions, clock=clock, actor=Actor("qa", "test-host"))


@dataclass(frozen=True)
class Row:
    """A recipient row as the CSV importer hands it to the service."""

    row_number: int
    phone_number: str
    name: str | None = None
    variables: dict[str, str] = field(default_factory=dict)


def make_rows(count: int, start: int = 0) -> list[Row]:
    return [
        Row(i + 2, f"+1202555{(start + i) % 10000:04d}", f"Person {start + i}", {"city": "Austin"})
        for i in range(count)
    ]


@pytest.fixture
def agent_and_number(service):
    agent = service.add_agent("Reminder", "twiml", "<Response><Say>Hi {{name}}</Say></Response>")
    number = service.add_from_number("+12025550100", "Main line")
    return agent, number


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database that make test started; the test is skipped without one."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} not set (make test starts PostgreSQL)")
    yield url


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict, so no test touches the computer's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            raise PasswordDeleteError(f"no {username} in {service}")
        del self.entries[(service, username)]


def fresh_postgres(url: str) -> None:
    """Empty the test PostgreSQL database (the next open_database migrates it anew)."""
    from sqlalchemy import text

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@dataclass(frozen=True)
class CliResult:
    """What one `batchcalls` command returned and printed."""

    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run(database_url, capsys):
    """Run `batchcalls --database-url <tmp> ARGS...` in-process and capture what it printed."""
    from app.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(["--database-url", database_url, *args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
