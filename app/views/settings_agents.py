"""Settings › Agents: what a recipient hears when they answer. Add an agent, activate or
deactivate one; also what the From numbers tab shares with this one (a records table, and
a service call run in the background with its problem shown where it belongs).

Every database call runs on the dialog's task runner, never in a slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.services.batch_calls import BatchCallService, ValidationError
from app.services.settings import SettingsError
from app.views import aio
from app.views.records_model import RecordsTableModel
from app.views.tasks import BackgroundTasks

log = logging.getLogger("app.views.settings_dialog")  # one logger for the whole dialog

AGENT_KINDS = (
    ("Spoken message (TwiML)", "twiml"),
    ("Voice webhook URL", "url"),
    ("TwiML App SID", "application"),
)
KIND_NAMES = {value: label for label, value in AGENT_KINDS}


def records_table(parent: QWidget, name: str, model: RecordsTableModel) -> QTableView:
    table = QTableView(parent)
    table.setObjectName(name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    return table


class RecordsTab(QWidget):
    """Signals: recordsChanged() after the records were read again; failed(str) with a
    problem for the dialog's error line (the database could not be reached)."""

    recordsChanged = Signal()
    failed = Signal(str)

    def __init__(self, service: BatchCallService, tasks: BackgroundTasks, parent: QWidget | None):
        super().__init__(parent)
        self.service = service
        self.tasks = tasks

    def _in_background(
        self,
        name: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        error_label: QLabel | None = None,
    ) -> None:
        """Run a service call in the background; a ValidationError goes to `error_label`."""
        self.tasks.start(name, self._service_call(name, work, done, error_label), owner=self)

    async def _service_call(
        self,
        name: str,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        error_label: QLabel | None,
    ) -> None:
        try:
            result = await aio.in_thread(work)
        except Exception as error:
            if isinstance(error, ValidationError) and error_label is not None:
                error_label.setText(" ".join(error.problems.values()))
            elif isinstance(error, SettingsError):
                self.failed.emit(str(error))
            else:
                log.error("%s failed: %s", name, error)
                self.failed.emit(f"That did not work: {error}. Check the database connection.")
            return
        done(result)


class AgentsTab(RecordsTab):
    """The agents; signals recordsChanged() and failed(str) (see RecordsTab)."""

    def __init__(
        self, service: BatchCallService, tasks: BackgroundTasks, parent: QWidget | None = None
    ):
        super().__init__(service, tasks, parent)
        self.setObjectName("agentsTab")
        outer = QVBoxLayout(self)
        intro = QLabel(
            "An agent is what a recipient hears when they answer. Only active agents can be "
            "chosen for a new batch call.",
            self,
        )
        intro.setWordWrap(True)
        outer.addWidget(intro)
        self.agents_model = RecordsTableModel(["Name", "Kind", "Active", "Content"], self)
        self.agents_model.setObjectName("agentsModel")
        self.agents_table = records_table(self, "agentsTable", self.agents_model)
        for column, width in ((0, 160), (1, 160), (2, 60)):
            self.agents_table.setColumnWidth(column, width)
        outer.addWidget(self.agents_table, 1)
        self.toggle_agent_button = QPushButton("Activate / deactivate", self)
        self.toggle_agent_button.setObjectName("toggleAgentActiveButton")
        self.toggle_agent_button.clicked.connect(self.toggle_agent)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.toggle_agent_button)
        outer.addLayout(row)

        add = QGroupBox("Add an agent", self)
        add.setObjectName("addAgentBox")
        form = QFormLayout(add)
        self.agent_name_field = QLineEdit(add)
        self.agent_name_field.setObjectName("agentNameField")
        form.addRow("Name:", self.agent_name_field)
        self.agent_kind_combo = QComboBox(add)
        self.agent_kind_combo.setObjectName("agentKindCombo")
        for label, value in AGENT_KINDS:
            self.agent_kind_combo.addItem(label, value)
        self.agent_kind_combo.currentIndexChanged.connect(self._agent_kind_changed)
        form.addRow("Kind:", self.agent_kind_combo)
        self.agent_value_field = QLineEdit(add)
        self.agent_value_field.setObjectName("agentValueField")
        form.addRow("Content:", self.agent_value_field)
        buttons = QHBoxLayout()
        self.agent_error_label = QLabel(add)
        self.agent_error_label.setObjectName("agentErrorLabel")
        self.agent_error_label.setProperty("role", "error")
        self.agent_error_label.setWordWrap(True)
        buttons.addWidget(self.agent_error_label, 1)
        self.add_agent_button = QPushButton("Add agent", add)
        self.add_agent_button.setObjectName("addAgentButton")
        self.add_agent_button.clicked.connect(self.add_agent)
        buttons.addWidget(self.add_agent_button)
        form.addRow(buttons)
        outer.addWidget(add)
        self._agent_kind_changed()

    def refresh_agents(self, then: Callable[[], None] | None = None) -> None:
        def show(agents: Any) -> None:
            self.agents_model.set_records(
                [
                    (a.name, KIND_NAMES.get(a.kind, a.kind), "Yes" if a.active else "No", a.value)
                    for a in agents
                ],
                agents,
            )
            if then is not None:
                then()
            self.recordsChanged.emit()

        self._in_background("readAgents", self.service.list_agents, show)

    def _agent_kind_changed(self, *_args: Any) -> None:
        kind = self.agent_kind_combo.currentData()
        self.agent_value_field.setPlaceholderText(
            {
                "twiml": "<Response><Say>Hello {{name}}</Say></Response>",
                "url": "https://example.com/voice",
                "application": "AP followed by 32 characters",
            }[kind]
        )

    def add_agent(self) -> None:
        name = self.agent_name_field.text()
        kind = str(self.agent_kind_combo.currentData())
        value = self.agent_value_field.text().strip()

        def added(agent: Any) -> None:
            self.agent_error_label.setText(f"Added “{agent.name}”.")
            self.agent_name_field.clear()
            self.agent_value_field.clear()
            self.refresh_agents()

        self._in_background(
            "addAgent",
            lambda: self.service.add_agent(name, kind, value),
            added,
            self.agent_error_label,
        )

    def toggle_agent(self) -> None:
        index = self.agents_table.currentIndex()
        agent = self.agents_model.payload(index.row()) if index.isValid() else None
        if agent is None:
            self.agent_error_label.setText("Select an agent first.")
            return
        row = index.row()
        self._in_background(
            "toggleAgent",
            lambda: self.service.set_agent_active(agent.id, not agent.active),
            lambda _agent: self.refresh_agents(then=lambda: self.agents_table.selectRow(row)),
            self.agent_error_label,
        )
