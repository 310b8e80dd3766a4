"""The desktop application in Twilio mode against the local Twilio stand-in: the window
says which account it uses, the engine places real HTTP calls, and the list follows them
to Completed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.models.status import BatchStatus
from app.services.batch_calls import NewBatchCall
from app.services.twilio_provider import TwilioProvider
from app.standin.twilio_server import TwilioStandin
from app.views.batch_model import Column
from app.views.qa import Launched, SpeedClock, launch

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support ")


class Row:
    def __init__(self, index: int):
        self.row_number = index + 2
        self.phone_number = f"+1202555{index:04d}"
        self.name = f"Person {index}"
        self.variables: dict[str, str] = {}


@pytest.fixture
def twilio_app(qtbot, database_url) -> Iterator[tuple[Launched, TwilioStandin]]:
    clock = SpeedClock(speed=300)  # the stand-in and the engine share it
    with TwilioStandin(clock=clock) as standin:
        provider = TwilioProvider(
            standin.account_sid, standin.auth_token, base_url=standin.base_url
        )
        launched = launch(
            database_url,
            clock=clock,
            provider=provider,
            settings_overrides={
                "provider": "twilio",
                "twilio_account_sid": standin.account_sid,
                "pickup_interval_seconds": 30,
                "dial_interval_seconds": 0.05,
                "calls_per_second": 5,
            },
        )
        qtbot.addWidget(launched.window)
        qtbot.waitUntil(lambda: launched.window.loaded, timeout=10_000)
        yield launched, standin
        launched.close()
        provider.close()
        assert not launched.engine.isRunning()


def test_twilio_mode_places_calls_through_the_standin(twilio_app, qtbot):
    launched, standin = twilio_app
    window = launched.window
    service = launched.context.service
    sid = standin.account_sid
    # The window reads the settings in the background.
    qtbot.waitUntil(lambda: window.mode_label.text() == f"Twilio: {sid[:4]}…{sid[-4:]}")

    agent = service.list_agents()[0]
    number = service.add_from_number("+14155550100", "Main line", source="incoming")
    batch = service.create(
        NewBatchCall(
            name="Stand-in run",
            agent_id=agent.id,
            from_number_id=number.id,
            timezone="UTC",
            window_start="00:00",
            window_end="23:59",
            allowed_days=frozenset(range(1, 8)),
            reserved_concurrency=2,
        ),
        [[Row(i) for i in range(4)]],
    )
    window.wake_engine()

    def shown_status() -> str:
        row = window.proxy.mapFromSource(window.model.index(window.model.row_of(batch.id), 0))
        return window.proxy.index(row.row(), Column.STATUS).data()

    qtbot.waitUntil(lambda: window.model.row_of(batch.id) is not None, timeout=5_000)
    qtbot.waitUntil(lambda: shown_status() == "Completed", timeout=60_000)
    assert service.get(batch.id).status is BatchStatus.COMPLETED
    created = standin.calls_created_per_destination()
    assert created == {f"+1202555{i:04d}": 1 for i in range(4)}
    assert standin.max_concurrent_in_progress() <= 2
    assert window.model.index(window.model.row_of(batch.id), Column.PROGRESS).data() == (
        "100% (4/4)"
    )
