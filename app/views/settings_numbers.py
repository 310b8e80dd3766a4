"""Settings › From numbers: the numbers batch calls are placed from. Add a simulated
number, or import the Twilio account's voice numbers, verified caller IDs and TwiML apps
(with the account typed on the Telephony tab; the apps become agents).

Every database call runs on the dialog's task runner, never in a slot.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.services.batch_calls import BatchCallService, ValidationError
from app.views import aio
from app.views.records_model import RecordsTableModel
from app.views.settings_agents import AgentsTab, RecordsTab, records_table
from app.views.settings_telephony import TelephonyTab
from app.views.tasks import BackgroundTasks

log = logging.getLogger("app.views.settings_dialog")  # one logger for the whole dialog


class FromNumbersTab(RecordsTab):
    """The from numbers. Signals: numbersImported(str) with the summary of Import from
    Twilio (or why it failed); recordsChanged() and failed(str) (see RecordsTab).

    An import adds TwiML apps as agents too: `agents` is read again after it."""

    numbersImported = Signal(str)

    def __init__(
        self,
        service: BatchCallService,
        tasks: BackgroundTasks,
        telephony: TelephonyTab,
        agents: AgentsTab,
        parent: QWidget | None = None,
    ):
        super().__init__(service, tasks, parent)
        self.setObjectName("numbersTab")
        self.telephony = telephony
        self.agents = agents
        outer = QVBoxLayout(self)
        self.numbers_model = RecordsTableModel(["Number", "Label", "Source", "Active"], self)
        self.numbers_model.setObjectName("fromNumbersModel")
        self.numbers_table = records_table(self, "fromNumbersTable", self.numbers_model)
        for column, width in ((0, 160), (1, 220), (2, 100)):
            self.numbers_table.setColumnWidth(column, width)
        outer.addWidget(self.numbers_table, 1)

        import_row = QHBoxLayout()
        self.import_label = QLabel(self)
        self.import_label.setObjectName("importResultLabel")
        self.import_label.setWordWrap(True)
        import_row.addWidget(self.import_label, 1)
        self.import_button = QPushButton("Import from Twilio", self)
        self.import_button.setObjectName("importFromTwilioButton")
        self.import_button.setToolTip(
            "Add the account's voice numbers, verified caller IDs and TwiML apps"
        )
        self.import_button.clicked.connect(self.import_from_twilio)
        import_row.addWidget(self.import_button)
        outer.addLayout(import_row)

        add = QGroupBox("Add a from number (simulation)", self)
        add.setObjectName("addFromNumberBox")
        form = QFormLayout(add)
        self.number_field = QLineEdit(add)
        self.number_field.setObjectName("numberField")
        self.number_field.setPlaceholderText("+12025550100")
        form.addRow("Number:", self.number_field)
        self.number_label_field = QLineEdit(add)
        self.number_label_field.setObjectName("numberLabelField")
        self.number_label_field.setPlaceholderText("For example: Main line")
        form.addRow("Label:", self.number_label_field)
        buttons = QHBoxLayout()
        self.number_error_label = QLabel(add)
        self.number_error_label.setObjectName("numberErrorLabel")
        self.number_error_label.setProperty("role", "error")
        self.number_error_label.setWordWrap(True)
        buttons.addWidget(self.number_error_label, 1)
        self.add_number_button = QPushButton("Add number", add)
        self.add_number_button.setObjectName("addFromNumberButton")
        self.add_number_button.clicked.connect(self.add_number)
        buttons.addWidget(self.add_number_button)
        form.addRow(buttons)
        outer.addWidget(add)

    def refresh_numbers(self) -> None:
        def show(numbers: Any) -> None:
            self.numbers_model.set_records(
                [
                    (n.phone_number, n.label, n.source.title(), "Yes" if n.active else "No")
                    for n in numbers
                ],
                numbers,
            )
            self.recordsChanged.emit()

        self._in_background("readNumbers", self.service.list_from_numbers, show)

    def add_number(self) -> None:
        phone, label = self.number_field.text(), self.number_label_field.text()
        self.tasks.start("addNumber", self._add_number(phone, label), owner=self)

    async def _add_number(self, phone: str, label: str) -> None:
        try:
            number = await aio.in_thread(
                self.service.add_from_number, phone, label, source="simulated"
            )
        except ValidationError as error:
            text = " ".join(error.problems.values())
            if "phone_number" in error.problems:
                text += ". Enter it in international form, for example +12025550100."
            self.number_error_label.setText(text)
            return
        except Exception as error:
            self.failed.emit(f"The number could not be added: {error}.")
            return
        self.number_error_label.setText(f"Added {number.display}.")
        self.number_field.clear()
        self.number_label_field.clear()
        self.refresh_numbers()

    # ----------------------------------------------------------------- import from Twilio
    def import_from_twilio(self) -> None:
        """Add the account's voice numbers, caller IDs and TwiML apps (in the background)."""
        self.telephony.with_credentials(self._import_now)

    def _import_now(self) -> None:
        from app.services.telephony import ProviderError

        try:
            provider = self.telephony.provider_from_fields()
        except ProviderError as error:
            self.import_label.setText(f"✖ {error}")
            self.numbersImported.emit(str(error))
            return
        self.import_button.setEnabled(False)
        self.import_label.setText("Reading the Twilio account…")
        self.tasks.start("importFromTwilio", self._import(provider), owner=self)

    async def _import(self, provider: Any) -> None:
        def fetch() -> str:
            try:
                numbers, applications = provider.list_from_numbers(), provider.list_applications()
            finally:
                provider.close()
            return self._store_imported(numbers, applications)  # still in the background

        try:
            summary = await aio.in_thread(fetch)
        except Exception as error:
            self.import_button.setEnabled(True)
            self.import_label.setText(f"✖ {error}")
            self.numbersImported.emit(str(error))
            return
        self.import_button.setEnabled(True)
        self.import_label.setText(summary)
        self.refresh_numbers()
        self.agents.refresh_agents()
        self.numbersImported.emit(summary)

    def _store_imported(self, numbers: list[Any], applications: list[Any]) -> str:
        """Add the imported numbers and applications (runs in the background)."""
        added = skipped = 0
        for info in numbers:
            try:
                self.service.add_from_number(info.phone_number, info.label, source=info.source)
                added += 1
            except ValidationError as error:
                skipped += 1
                log.info("number not imported: %s", error)
        existing = {a.value for a in self.service.list_agents()}
        names = {a.name.casefold() for a in self.service.list_agents()}
        apps = 0
        for app in applications:
            if app.sid in existing:
                continue
            name = app.friendly_name
            if name.casefold() in names:
                name = f"{name} ({app.sid[-6:]})"
            try:
                self.service.add_agent(name[:100], "application", app.sid)
                names.add(name.casefold())
                apps += 1
            except ValidationError as error:
                log.info("application not imported: %s", error)
        text = (
            f"✔ Imported {added} number{'s' if added != 1 else ''} and {apps} "
            f"TwiML app{'s' if apps != 1 else ''}."
        )
        if skipped:
            text += f" {skipped} number{'s' if skipped != 1 else ''} could not be used."
        return text
