"""A run with the Twilio stand-in: the application in Twilio mode, its engine placing real
HTTP requests to the local stand-in on a clock 300 times faster than real time, and the
list following the batch call to Completed."""

from PySide6.QtWidgets import QLabel

from app.models.status import BatchStatus
from app.services.batch_calls import NewBatchCall
from app.testing.data import make_rows
from app.views.batch_model import Column


def test_a_batch_call_runs_to_completed_through_the_standin(launch_app, twilio_standin, qtbot):
    launched = launch_app(standin=twilio_standin)
    window = launched.window
    service = launched.context.service  # the services the window uses
    sid = twilio_standin.account_sid
    assert window.findChild(QLabel, "modeLabel").text() == f"Twilio: {sid[:4]}…{sid[-4:]}"

    agent = service.list_agents()[0]  # the demo agent
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
        [make_rows(4)],  # +12025550000 ... +12025550003
    )
    window.wake_engine()  # pick it up now rather than at the next tick

    def shown_status():
        row = window.model.row_of(batch.id)
        return None if row is None else window.model.index(row, Column.STATUS).data()

    qtbot.waitUntil(lambda: shown_status() == "Completed", timeout=60_000)
    assert service.get(batch.id).status is BatchStatus.COMPLETED
    assert twilio_standin.calls_created_per_destination() == {
        f"+1202555{i:04d}": 1 for i in range(4)
    }
    assert twilio_standin.max_concurrent_in_progress() <= 2
