"""An action refused because the status changed meanwhile: this window still shows the
batch call In Progress when another desktop pauses it; Pause is refused with the reason,
and the row and the actions follow what is stored."""

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction

from app.models.status import BatchStatus
from app.services.batch_calls import Actor, BatchCallService


def test_pause_is_refused_when_another_desktop_paused_first(
    open_main_window, context, seeded, answers, qtbot
):
    window = open_main_window()
    window.findChild(QTimer, "pollTimer").stop()  # keep this window's view stale
    running = seeded["running"]  # "Campaign running", In Progress
    window.select_batch(running.id)

    # A second desktop on the same database pauses it first.
    other_desktop = BatchCallService(
        context.sessions, clock=context.clock, actor=Actor("ana", "desk-2")
    )
    other_desktop.pause(running.id)
    assert window.current_snapshot().status is BatchStatus.RUNNING  # still shown

    with qtbot.waitSignal(window.actions_controller.refused, timeout=5_000):
        window.findChild(QAction, "pauseAction").trigger()
    _title, message, warning = answers.messages[-1]
    assert warning and "while it is Paused" in message and "Available now: Resume" in message

    qtbot.waitUntil(lambda: window.current_snapshot().status is BatchStatus.PAUSED, timeout=5_000)
    assert window.findChild(QAction, "resumeAction").isEnabled()
    assert not window.findChild(QAction, "pauseAction").isEnabled()
    assert context.service.get(running.id).status is BatchStatus.PAUSED
