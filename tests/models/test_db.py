"""Connecting: PostgreSQL sessions carry timeouts and keepalives, so nothing waits forever."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.models.db import POSTGRES_SESSION_SETTINGS, _postgres_connect_args, make_engine


@pytest.mark.postgres
def test_postgres_sessions_have_lock_statement_idle_timeouts_and_keepalives(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as connection:
            shown = {
                name: connection.execute(text(f"SHOW {name}")).scalar_one()
                for name in POSTGRES_SESSION_SETTINGS
            }
            client = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()

    assert shown == {
        "lock_timeout": "10s",
        "statement_timeout": "5min",
        "idle_in_transaction_session_timeout": "25s",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }
    assert client["keepalives"] == "1" and client["keepalives_idle"] == "30"
    assert client["connect_timeout"] == "10"


@pytest.mark.postgres
def test_a_lock_wait_gives_up_instead_of_hanging(postgres_url):
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as holder, engine.connect() as waiter:
            holder.execute(text("SELECT pg_advisory_lock(4242)"))
            waiter.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                waiter.execute(text("SELECT pg_advisory_lock(4242)"))
            holder.execute(text("SELECT pg_advisory_unlock(4242)"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_settings_in_the_url_win(postgres_url):
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}options=-c%20lock_timeout%3D3s&keepalives_idle=60"
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            lock_timeout = connection.execute(text("SHOW lock_timeout")).scalar_one()
            statement_timeout = connection.execute(text("SHOW statement_timeout")).scalar_one()
            client = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()

    assert (lock_timeout, statement_timeout) == ("3s", "5min")
    assert client["keepalives_idle"] == "60"


def test_connect_arguments_keep_the_callers_options_last():
    args = _postgres_connect_args({}, {"options": "-c search_path=app"})

    assert args["options"].endswith("-c search_path=app")
    assert "-c lock_timeout=10s" in args["options"]
    assert args["keepalives"] == 1
