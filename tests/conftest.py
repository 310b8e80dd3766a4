"""Fixtures shared by the whole suite. The temporary database, the services, the clocks,
the windows and the guards come from the `batchcalls` pytest plugin shipped with the
application (app/testing/pytest_plugin.py, docs/qa.md), as a QA suite gets them; this file
adds what only this project's tests need."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never touch the supervisor's real keyring or data directory from a test.
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

import app.testing.pytest_plugin as batchcalls_plugin
from app.models.db import make_engine
from app.testing.clocks import FakeClock
from app.testing.data import Row, make_rows
from app.testing.keyrings import MemoryKeyring

# The tests import these from here.
__all__ = ["CliResult", "FakeClock", "MemoryKeyring", "Row", "fresh_postgres", "make_rows"]

POSTGRES_URL_ENV = "BATCHCALLS_TEST_POSTGRES_URL"


def pytest_configure(config: pytest.Config) -> None:
    """The plugin comes with the package (pytest11 entry point `batchcalls`). A virtualenv
    installed before that entry point existed (or PYTEST_DISABLE_PLUGIN_AUTOLOAD) lacks it:
    register it here, once; never a second time (pytest refuses that)."""
    manager = config.pluginmanager
    if not manager.is_registered(batchcalls_plugin) and not manager.is_blocked("batchcalls"):
        manager.register(batchcalls_plugin, "batchcalls")


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
