"""Fixtures for the Twilio stand-in tests: a running stand-in on the fake clock and an
authenticated HTTP session to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from app.standin import TwilioStandin


@pytest.fixture
def standin(clock) -> Iterator[TwilioStandin]:
    with TwilioStandin(clock=clock, seed=7) as server:
        yield server


@pytest.fixture
def http(standin: TwilioStandin) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (standin.account_sid, standin.auth_token)
    yield session
    session.close()
