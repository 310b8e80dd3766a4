"""A supervisor's whole journey through the desktop application, with the real engine and
the simulation provider on a fast clock: create from a CSV with bad rows (fix one, remove
one), watch the batch call go Scheduled, In Progress, Completed, retry it from the details,
and check the details' counts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from app.models.status import BatchStatus, RecipientStatus
from app.services.batch_calls import RecipientQuery
from app.views import ask
from app.views.batch_model import Column
from app.views.create_dialog import CreateDialog
from app.views.qa import Launched, SpeedClock, launch
from app.views.rejected_model import RowState

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support ")

JOURNEY_CSV = (
    "phone_number,name,appointment\n"
    "+12025550101,Ada,Mon 9:00\n"  # row 2
    "555-12,Bob,Mon 9:30\n"  # row 3: too short -> fixed in the dialog
    "+12025550102,Cy,Mon 10:00\n"  # row 4
    "+15005550001,Dee,Mon 10:30\n"  # row 5: valid, but the provider cannot call it
    "n/a,Eve,Mon 11:00\n"  # row 6: no number -> removed in the dialog
    "+12025550103,Fay,Mon 11:30\n"  # row 7
)


@pytest.fixture
def app_under_test(qtbot, database_url) -> Iterator[Launched]:
    """The application with its engine, on a clock 300 times faster than real time."""
    launched = launch(
        database_url,
        clock=SpeedClock(speed=300),
        settings_overrides={
            "pickup_interval_seconds": 30,
            "dial_interval_seconds": 0.05,
            "calls_per_second": 5,
        },
    )
    qtbot.addWidget(launched.window)
    qtbot.waitUntil(lambda: launched.window.loaded, timeout=10_000)
    yield launched
    launched.close()
    assert not launched.engine.isRunning(), "the engine thread is still running"


@pytest.fixture
def confirm_everything(monkeypatch) -> list[str]:
    asked: list[str] = []
    monkeypatch.setattr(ask, "ask", lambda _p, title, _t, **_k: asked.append(title) or True)
    monkeypatch.setattr(ask, "inform", lambda _p, title, text, **_k: asked.append(text))
    return asked


def test_create_watch_complete_retry(
    app_under_test, confirm_everything, qtbot, tmp_path, monkeypatch
):
    window = app_under_test.window
    service = app_under_test.context.service
    qtbot.waitUntil(lambda: window.engine_label.text() == "Engine: dialing", timeout=10_000)

    # 1. Create from a CSV with bad rows: fix one, remove the other.
    path = tmp_path / "journey.csv"
    path.write_text(JOURNEY_CSV, encoding="utf-8")
    monkeypatch.setattr(ask, "open_file", lambda *_: str(path))
    qtbot.mouseClick(
        window.findChild(QPushButton, "emptyStateCreateButton"), Qt.MouseButton.LeftButton
    )
    dialog = window.findChild(CreateDialog, "createDialog")
    with qtbot.waitSignal(dialog.scanned):
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "chooseCsvButton"), Qt.MouseButton.LeftButton
        )
    assert dialog.rejected_count() == 2
    assert dialog.rejected_model.fix(0, "+12025550177")
    dialog.select_rejected(1)
    dialog.remove_selected_row()
    assert dialog.rejected_model.count(RowState.REMOVED) == 1
    qtbot.keyClicks(dialog.name_field, "Journey reminders")
    dialog.timezone_combo.setCurrentText("UTC")
    dialog.start_edit.setTime(dialog.start_edit.time().fromString("00:00", "HH:mm"))
    dialog.end_edit.setTime(dialog.end_edit.time().fromString("23:59", "HH:mm"))
    for check in dialog.day_boxes.values():
        check.setChecked(True)
    dialog.concurrency_spin.setValue(3)

    statuses: list[str] = []

    def record_status(*_args: object) -> None:
        snapshot = window.current_snapshot()
        if snapshot is not None and (not statuses or statuses[-1] != snapshot.status_display):
            statuses.append(snapshot.status_display)

    window.model.dataChanged.connect(record_status)
    window.model.rowsInserted.connect(record_status)
    with qtbot.waitSignal(dialog.created, timeout=10_000) as created:
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "createConfirmButton"), Qt.MouseButton.LeftButton
        )
    batch = created.args[0]
    assert batch.total_recipients == 5
    record_status()

    # 2. Watch it run: Scheduled, In Progress, Completed, live in the list.
    def shown_status() -> str:
        row = window.proxy.mapFromSource(window.model.index(window.model.row_of(batch.id), 0))
        return window.proxy.index(row.row(), Column.STATUS).data()

    qtbot.waitUntil(lambda: shown_status() == "Completed", timeout=60_000)
    assert statuses[0] == "Scheduled"
    assert statuses[-1] == "Completed"
    assert "In Progress" in statuses
    assert statuses.index("Scheduled") < statuses.index("In Progress") < statuses.index("Completed")

    # 3. The details' counts.
    details = window.open_details(batch.id)
    stored = service.get(batch.id)
    assert stored.counts[RecipientStatus.FAILED] >= 1  # +15005550001 cannot be called
    qtbot.waitUntil(lambda: details.summary["completed"].text() == "5 of 5")
    assert details.summary["remaining"].text() == "0"
    assert details.count_labels[RecipientStatus.FAILED].text() == str(
        stored.counts[RecipientStatus.FAILED]
    )
    total_shown = sum(int(label.text()) for label in details.count_labels.values())
    assert total_shown == 5
    fixed = service.recipients_page(batch.id, RecipientQuery(search="Bob"))
    assert [r.phone_number for r in fixed] == ["+12025550177"]
    assert service.count_recipients(batch.id, RecipientQuery(search="Eve")) == 0

    # 4. Retry from the details header: the same batch call runs again.
    retry = details.findChild(QPushButton, "detailsRetryButton")
    assert retry.isVisible()
    qtbot.mouseClick(retry, Qt.MouseButton.LeftButton)
    assert "Retry batch call" in confirm_everything
    qtbot.waitUntil(lambda: service.get(batch.id).retry_count == 1, timeout=10_000)
    qtbot.waitUntil(
        lambda: (
            service.get(batch.id).status is BatchStatus.COMPLETED
            and details.summary["retries"].text() == "1"
            and details.status_label.text() == "Completed"
        ),
        timeout=60_000,
    )
    again = service.get(batch.id)
    assert again.id == batch.id and again.finished_count == 5
    unreachable = service.recipients_page(batch.id, RecipientQuery(search="Dee"))
    assert unreachable[0].status is RecipientStatus.FAILED
    assert unreachable[0].attempts == 2  # called again by the retry
    qtbot.waitUntil(lambda: details.summary["completed"].text() == "5 of 5")
    actions = [
        details.history_model.index(r, 1).data() for r in range(details.history_model.rowCount())
    ]
    assert actions[:2] == ["Create", "Retry"]
