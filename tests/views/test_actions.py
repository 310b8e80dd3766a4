"""Per-row actions: the menu offers exactly SPEC §3's actions for every status, each one
performed through the GUI has its effect (confirmed or declined), rename validation, and an
action refused because the status changed meanwhile."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QLineEdit, QMenu, QPushButton

from app.models.status import Action, BatchStatus, RecipientStatus
from app.services.batch_calls import Actor, BatchCallService
from app.views.actions import confirmation, menu_actions
from app.views.rename_dialog import RenameDialog
from tests.views.layout_checks import assert_nothing_clipped

P, RE, C, RT, D, N, L = (
    Action.PAUSE,
    Action.RESUME,
    Action.CANCEL,
    Action.RETRY,
    Action.DELETE,
    Action.RENAME,
    Action.RELOAD,
)

#: SPEC §3, written out by hand (not computed from app.models.status); the destructive
#: Delete comes last in every menu.
EXPECTED = {
    "scheduled": [C, N, L, D],
    "pending": [C, N, L, D],
    "running": [P, C, N, L, D],
    "paused": [RE, C, N, L, D],
    "completed": [RT, N, L, D],
    "completed-clean": [N, L, D],  # every recipient completed: nothing to retry
    "cancelled": [RT, N, L, D],
    "failed": [RT, N, L, D],
}

#: Where each confirmed action leads.
EFFECT = {
    Action.PAUSE: BatchStatus.PAUSED,
    Action.RESUME: BatchStatus.RUNNING,
    Action.CANCEL: BatchStatus.CANCELLED,
    Action.RETRY: BatchStatus.SCHEDULED,
    Action.DELETE: None,
}

CONFIRMED_CASES = [
    (case, action) for case, actions in EXPECTED.items() for action in actions if action in EFFECT
]


def menu_entries(menu: QMenu) -> list[Action]:
    return [Action(a.data()) for a in menu.actions() if not a.isSeparator()]


@pytest.mark.parametrize("case", EXPECTED)
def test_menu_offers_exactly_the_actions_of_the_status(open_main_window, seeded, case):
    snapshot = seeded[case]
    assert menu_actions(snapshot) == EXPECTED[case]
    window = open_main_window()
    assert window.select_batch(snapshot.id)
    menu = window.row_menu(snapshot)
    assert menu_entries(menu) == EXPECTED[case]
    # Delete is last, set apart by a separator.
    assert menu.actions()[-2].isSeparator() and Action(menu.actions()[-1].data()) is D
    assert all(a.isEnabled() for a in menu.actions() if not a.isSeparator())
    # The window-wide actions (menu bar, shortcuts) follow the selected row too.
    enabled = {Action(a.data()) for a in window.qactions.values() if a.isEnabled()}
    assert enabled == set(EXPECTED[case])
    menu.deleteLater()


def test_row_actions_button_pops_the_same_menu(open_main_window, seeded, qtbot):
    window = open_main_window()
    window.select_batch(seeded["paused"].id)
    qtbot.mouseClick(window.row_actions_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    popup = QApplication.activePopupWidget()
    assert popup.objectName() == "batchCallMenu"
    assert menu_entries(popup) == EXPECTED["paused"]
    popup.close()


def test_context_menu_on_a_row_selects_it_and_offers_its_actions(open_main_window, seeded, qtbot):
    window = open_main_window()
    row = window.proxy.mapFromSource(
        window.model.index(window.model.row_of(seeded["running"].id), 0)
    )
    pos = window.table.visualRect(row).center()
    window.table.customContextMenuRequested.emit(pos)
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    popup = QApplication.activePopupWidget()
    assert window.current_snapshot().id == seeded["running"].id
    assert menu_entries(popup) == EXPECTED["running"]
    popup.close()


@pytest.mark.parametrize("accept", [True, False], ids=["confirmed", "declined"])
@pytest.mark.parametrize(("case", "action"), CONFIRMED_CASES)
def test_action_through_the_gui_has_its_effect(
    open_main_window, context, seeded, answers, performed, qtbot, case, action, accept
):
    snapshot = seeded[case]
    window = open_main_window()
    window.select_batch(snapshot.id)
    menu = window.row_menu(snapshot)
    (entry,) = [a for a in menu.actions() if a.data() == action.value]
    succeeded: list[tuple[str, int]] = []
    window.actions_controller.succeeded.connect(lambda kind, i, _r: succeeded.append((kind, i)))
    answers.confirm = accept
    if accept:
        with qtbot.waitSignal(window.actions_controller.succeeded, timeout=5000):
            entry.trigger()
    else:
        entry.trigger()
        # Anything the trigger started in the background has finished after this.
        qtbot.waitUntil(lambda: not window.tasks.busy(include_quiet=True), timeout=5000)
    menu.deleteLater()

    # The question said what will happen, naming the batch call.
    ((title, text),) = answers.questions
    assert snapshot.name in text
    assert title == confirmation(action, snapshot)[0]

    stored = context.service.find(snapshot.id)
    if not accept:
        assert performed == [] and succeeded == []  # declined: nothing was even attempted
        assert stored is not None and stored.status is snapshot.status
        assert window.model.snapshot(snapshot.id).status is snapshot.status
        return
    assert performed == [(snapshot.id, action)]
    assert succeeded == [(action.value, snapshot.id)]
    if EFFECT[action] is None:
        assert stored is None
        assert window.model.row_of(snapshot.id) is None
        assert window.statusBar().currentMessage() == f"Deleted “{snapshot.name}”."
    else:
        assert stored.status is EFFECT[action]
        shown = window.model.snapshot(snapshot.id)
        assert shown.status is EFFECT[action]
        assert window.current_snapshot().id == snapshot.id  # selection kept


def test_keyboard_shortcuts_perform_actions(open_main_window, context, seeded, qtbot):
    window = open_main_window()
    window.select_batch(seeded["running"].id)
    window.table.setFocus()
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.keyClick(window.table, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    assert context.service.get(seeded["running"].id).status is BatchStatus.PAUSED
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.keyClick(window.table, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert context.service.get(seeded["running"].id).status is BatchStatus.RUNNING
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.keyClick(window.table, Qt.Key.Key_Delete)
    assert context.service.find(seeded["running"].id) is None


def test_delete_key_in_the_search_field_edits_text_only(open_main_window, context, seeded, qtbot):
    window = open_main_window()
    window.select_batch(seeded["paused"].id)
    qtbot.keyClicks(window.search_field, "camp")
    window.search_field.setCursorPosition(0)
    qtbot.keyClick(window.search_field, Qt.Key.Key_Delete)
    assert window.search_field.text() == "amp"
    assert context.service.find(seeded["paused"].id) is not None


def test_rename_through_the_gui(open_main_window, context, seeded, qtbot):
    window = open_main_window()
    window.select_batch(seeded["scheduled"].id)
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_F2)
    dialog = window.findChild(QDialog, "renameDialog")
    assert dialog is not None and dialog.isVisible()
    field = dialog.findChild(QLineEdit, "renameField")
    assert field.text() == "Campaign scheduled"
    field.clear()
    qtbot.keyClicks(field, "  Winter reminders  ")
    with qtbot.waitSignal(window.actions_controller.succeeded):
        qtbot.mouseClick(
            dialog.findChild(QPushButton, "renameSaveButton"), Qt.MouseButton.LeftButton
        )
    assert context.service.get(seeded["scheduled"].id).name == "Winter reminders"
    assert window.current_snapshot().name == "Winter reminders"


@pytest.mark.parametrize(
    ("text", "valid", "reason"),
    [
        ("", False, "Enter a name"),
        ("   ", False, "Enter a name"),
        ("A", True, ""),
        ("x" * 100, True, ""),
        ("x" * 101, False, "101 characters long; the maximum is 100"),
        ("  " + "x" * 100 + "  ", True, ""),  # trimmed before counting
    ],
    ids=["0 chars", "whitespace only", "1 char", "100 chars", "101 chars", "100 with spaces"],
)
def test_rename_validation(qtbot, text, valid, reason):
    dialog = RenameDialog("Old name")
    qtbot.addWidget(dialog)
    dialog.show()
    field = dialog.findChild(QLineEdit, "renameField")
    save = dialog.findChild(QPushButton, "renameSaveButton")
    field.setText(text)
    assert save.isEnabled() is valid
    problem = dialog.problem_label
    assert problem.isVisible() is (not valid)
    assert reason in problem.text()
    # Enter does not save an invalid name either.
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert dialog.result() == (
        QDialog.DialogCode.Accepted if valid else QDialog.DialogCode.Rejected
    )


def test_rename_dialog_with_a_long_current_name(qtbot):
    name = (
        "Quarterly appointment reminders for the north-east region clinics, second wave, "
        "December 2026 tuvwxy"
    )
    assert len(name) == 100
    dialog = RenameDialog(name)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: assert_nothing_clipped(dialog), timeout=3000)
    field = dialog.findChild(QLineEdit, "renameField")
    field.setText(name + "!")  # 101 characters: the reason shows, and nothing is cut off
    assert dialog.problem_label.isVisible()
    qtbot.waitUntil(lambda: assert_nothing_clipped(dialog), timeout=3000)
    assert dialog.width() < 700
    current = dialog.findChild(QLabel, "renameCurrentName")
    assert current.toolTip() == f"Renaming “{name}”"  # elided on screen, whole here


def test_action_refused_because_status_changed_meanwhile(
    open_main_window, context, seeded, answers, qtbot
):
    window = open_main_window()
    window.poll_timer.stop()  # the stale view is the point of this test
    snapshot = seeded["running"]
    window.select_batch(snapshot.id)
    # A second desktop pauses it; this window still shows In Progress.
    other_desktop = BatchCallService(context.sessions, clock=context.clock, actor=Actor("b", "h2"))
    other_desktop.pause(snapshot.id)
    assert window.current_snapshot().status is BatchStatus.RUNNING

    with qtbot.waitSignal(window.actions_controller.refused):
        window.qactions[Action.PAUSE].trigger()
    (_title, message, warning) = answers.messages[-1]
    assert warning and "while it is Paused" in message and "Available now: Resume" in message
    # The row is refreshed to what is stored, and nothing else changed.
    qtbot.waitUntil(lambda: window.current_snapshot().status is BatchStatus.PAUSED)
    assert context.service.get(snapshot.id).status is BatchStatus.PAUSED
    assert window.qactions[Action.RESUME].isEnabled()


def test_action_on_a_batch_call_deleted_elsewhere_removes_the_row(
    open_main_window, context, seeded, answers, qtbot
):
    window = open_main_window()
    window.poll_timer.stop()
    snapshot = seeded["paused"]
    window.select_batch(snapshot.id)
    BatchCallService(context.sessions, clock=context.clock).delete(snapshot.id)
    with qtbot.waitSignal(window.actions_controller.refused):
        window.qactions[Action.RESUME].trigger()
    assert "no longer exists" in answers.messages[-1][1]
    qtbot.waitUntil(lambda: window.model.row_of(snapshot.id) is None)


def test_an_action_that_fails_in_the_database_says_what_to_do(
    open_main_window, context, seeded, answers, qtbot, monkeypatch
):
    window = open_main_window()
    window.poll_timer.stop()
    snapshot = seeded["paused"]
    window.select_batch(snapshot.id)

    def unreachable(*_args, **_kwargs):
        raise ConnectionError("the database server is unreachable")

    monkeypatch.setattr(context.service, "perform", unreachable)
    with qtbot.waitSignal(window.actions_controller.refused) as refused:
        window.qactions[Action.RESUME].trigger()
    title, text, warning = answers.messages[-1]
    assert title == "Resume not possible" and warning
    assert text.startswith("Could not resume “Campaign paused”: the database server is")
    assert "check the database connection" in text and refused.args[2] == text
    assert window.model.row_of(snapshot.id) is not None  # nothing lost


def test_row_reload_rereads_the_batch_call_with_a_message(
    open_main_window, seeded, set_state, qtbot
):
    window = open_main_window()
    window.poll_timer.stop()
    snapshot = seeded["paused"]
    window.select_batch(snapshot.id)
    set_state(snapshot.id, BatchStatus.PAUSED, {RecipientStatus.COMPLETED: 9})
    assert window.current_snapshot().finished_count == 4
    with qtbot.waitSignal(window.tasks.taskFinished):
        window.qactions[Action.RELOAD].trigger()
        assert window.loading_indicator.isVisible()
    assert window.current_snapshot().finished_count == 9
    assert window.statusBar().currentMessage() == "Reloaded “Campaign paused”."
