"""Per-batch-call actions: which ones a menu offers, what their confirmations say, and the
one controller that performs them (confirm, run off the GUI thread, report the outcome).

The main window's context menu, its "⋮" button, its shortcuts and the details dialog's
header buttons all go through here, so they can never disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QWidget
from shiboken6 import isValid

from app.models.snapshots import BatchCallSnapshot
from app.models.status import CONFIRMED_ACTIONS, Action, ActionNotAllowed
from app.services.batch_calls import BatchCallService, NotFound, ValidationError
from app.views import aio, ask, formatting
from app.views.icons import ACTION_ICONS, icon
from app.views.rename_dialog import RenameDialog
from app.views.tasks import BackgroundTasks

log = logging.getLogger(__name__)

#: Keyboard access for every action (docs/qa.md lists them).
SHORTCUTS: dict[Action, str] = {
    Action.PAUSE: "Ctrl+P",
    Action.RESUME: "Ctrl+R",
    Action.CANCEL: "Ctrl+.",
    Action.RETRY: "Ctrl+Shift+R",
    Action.DELETE: "Delete",
    Action.RENAME: "F2",
    Action.RELOAD: "Shift+F5",
}

LABELS: dict[Action, str] = {
    Action.PAUSE: "Pause",
    Action.RESUME: "Resume",
    Action.CANCEL: "Cancel Batch Call",
    Action.RETRY: "Retry",
    Action.DELETE: "Delete",
    Action.RENAME: "Rename…",
    Action.RELOAD: "Reload",
}


def menu_actions(snapshot: BatchCallSnapshot) -> list[Action]:
    """Exactly the actions SPEC §3 allows for this batch call, in menu order: the table's
    order, with the destructive Delete last (menus put a separator before it)."""
    allowed = list(snapshot.actions)
    return [a for a in allowed if a is not Action.DELETE] + [
        a for a in allowed if a is Action.DELETE
    ]


def action_object_name(action: Action) -> str:
    """ "pauseAction", "retryAction", ... (stable names for QA)."""
    return f"{action.value.lower()}Action"


def confirmation(action: Action, snapshot: BatchCallSnapshot) -> tuple[str, str, str]:
    """(title, question, confirm button) saying what will happen to this batch call."""
    name = f"“{snapshot.name}”"
    open_count = snapshot.remaining_count
    retryable = sum(
        n for status, n in snapshot.counts.items() if status.value in ("FAILED", "NO_ANSWER")
    )
    if action is Action.PAUSE:
        return (
            "Pause batch call",
            f"Pause {name}?\n\nNo new call will be placed. Calls already in progress continue "
            "and their outcomes are recorded. You can resume it later; nothing is lost.",
            "Pause",
        )
    if action is Action.RESUME:
        return (
            "Resume batch call",
            f"Resume {name}?\n\nIt continues with its {formatting_count(open_count)} remaining "
            "recipients, within its calling hours and the available capacity.",
            "Resume",
        )
    if action is Action.CANCEL:
        return (
            "Cancel batch call",
            f"Cancel {name} permanently?\n\nCalls in progress finish and are recorded; the "
            f"{formatting_count(open_count)} recipients not yet called will not be called "
            "(a later Retry can still reach them).",
            "Cancel Batch Call",
        )
    if action is Action.RETRY:
        if snapshot.status.value == "COMPLETED":
            what = f"{formatting_count(retryable)} failed or unanswered recipients are called again"
        else:
            what = (
                "failed and unanswered recipients, and those never called, are called; "
                "completed recipients are not called again"
            )
        return (
            "Retry batch call",
            f"Retry {name}?\n\nIt goes back to Scheduled and starts within a minute: {what}.",
            "Retry",
        )
    if action is Action.DELETE:
        running = (
            " It is running: no further call will be placed; calls in progress are not hung up."
            if snapshot.status.value == "RUNNING"
            else ""
        )
        return (
            "Delete batch call",
            f"Delete {name} and its {formatting_count(snapshot.total_recipients)} recipients "
            f"permanently?{running}\n\nThis cannot be undone.",
            "Delete",
        )
    raise ValueError(f"{action.label} needs no confirmation")


def formatting_count(value: int) -> str:
    return formatting.count(value)


def success_message(action: Action, name: str) -> str:
    return {
        Action.PAUSE: f"Paused “{name}”.",
        Action.RESUME: f"Resumed “{name}”.",
        Action.CANCEL: f"Cancelled “{name}”.",
        Action.RETRY: f"“{name}” is scheduled again; it starts within a minute.",
        Action.DELETE: f"Deleted “{name}”.",
        Action.RENAME: f"Renamed to “{name}”.",
        Action.RELOAD: f"Reloaded “{name}”.",
    }[action]


def build_menu(
    parent: QWidget, snapshot: BatchCallSnapshot, qactions: dict[Action, QAction]
) -> QMenu:
    """The row's menu: the shared QActions for exactly `menu_actions(snapshot)`."""
    menu = QMenu(parent)
    menu.setObjectName("batchCallMenu")
    for action in menu_actions(snapshot):
        if action is Action.DELETE:
            menu.addSeparator()
        menu.addAction(qactions[action])
    return menu


def make_qactions(parent: QWidget, trigger: Callable[[Action], None]) -> dict[Action, QAction]:
    """One QAction per Action, named, with its shortcut, calling `trigger(action)`."""
    qactions: dict[Action, QAction] = {}
    for action in Action:
        qaction = QAction(icon(ACTION_ICONS[action]), LABELS[action], parent)
        qaction.setObjectName(action_object_name(action))
        qaction.setData(action.value)
        qaction.setShortcut(QKeySequence(SHORTCUTS[action]))
        qaction.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        qaction.setStatusTip(f"{action.label} the selected batch call")
        qaction.triggered.connect(lambda _checked=False, a=action: trigger(a))
        parent.addAction(qaction)
        qactions[action] = qaction
    return qactions


class ActionController(QObject):
    """Performs a batch call action the way the supervisor expects.

    Confirms first (through `ask`), awaits the service call in a worker thread, and reports:
    Signals: succeeded(Action value, id, snapshot or None), refused(Action value, id, message),
    renamed(id).
    """

    succeeded = Signal(str, int, object)
    refused = Signal(str, int, str)

    def __init__(
        self, service: BatchCallService, tasks: BackgroundTasks, parent: QObject | None = None
    ):
        super().__init__(parent)
        self.setObjectName("actionController")
        self._service = service
        self._tasks = tasks

    def perform(self, action: Action, snapshot: BatchCallSnapshot, parent: QWidget) -> bool:
        """Start the action; False when the supervisor declined or it is not offered."""
        if action not in menu_actions(snapshot):
            message = str(ActionNotAllowed(action, snapshot.status, snapshot.name))
            self._refuse(action, snapshot.id, message, parent)
            return False
        if action is Action.RENAME:
            self.rename(snapshot, parent)
            return True
        if action in CONFIRMED_ACTIONS:
            title, text, confirm = confirmation(action, snapshot)
            if not ask.ask(
                parent,
                title,
                text,
                confirm=confirm,
                cancel="Keep" if action is Action.DELETE else "Back",
                destructive=action in (Action.DELETE, Action.CANCEL),
            ):
                return False
        self._run(action, snapshot, parent, lambda: self._service.perform(snapshot.id, action))
        return True

    def rename(self, snapshot: BatchCallSnapshot, parent: QWidget) -> RenameDialog:
        """Open the rename dialog (window-modal, not blocking); Save renames."""
        dialog = RenameDialog(snapshot.name, parent)

        def save() -> None:
            name = dialog.name()
            self._run(
                Action.RENAME, snapshot, parent, lambda: self._service.rename(snapshot.id, name)
            )

        dialog.accepted.connect(save)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def _run(
        self,
        action: Action,
        snapshot: BatchCallSnapshot,
        parent: QWidget,
        call: Callable[[], BatchCallSnapshot | None],
    ) -> None:
        self._tasks.start(f"action:{action.value}", self._perform(action, snapshot, parent, call))

    async def _perform(
        self,
        action: Action,
        snapshot: BatchCallSnapshot,
        parent: QWidget,
        call: Callable[[], BatchCallSnapshot | None],
    ) -> None:
        try:
            result = await aio.in_worker(call)
        except (ActionNotAllowed, NotFound, ValidationError) as error:
            self._refuse(action, snapshot.id, str(error), parent)
            return
        except Exception as error:
            log.error("%s of batch call %s failed: %s", action.value, snapshot.id, error)
            self._refuse(
                action,
                snapshot.id,
                f"Could not {action.label.lower()} “{snapshot.name}”: {error}. "
                "Reload and try again; if it keeps failing, check the database connection.",
                parent,
            )
            return
        self.succeeded.emit(action.value, snapshot.id, result)

    def _refuse(self, action: Action, batch_id: int, message: str, parent: QWidget) -> None:
        self.refused.emit(action.value, batch_id, message)
        owner = parent if isValid(parent) and parent.isVisible() else self.parent()
        ask.inform(owner, f"{action.label} not possible", message, warning=True)  # type: ignore[arg-type]
